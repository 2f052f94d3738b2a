// The opt-in text pipeline from the single header alone: single_include/xrnn/xrnn_text.hpp includes xrnn.hpp
// beside it, so one include gives the library and the text pipeline (test single_header_text_compiles).
#include <xrnn/xrnn_text.hpp>

#include <iostream>

int main()
{
    const auto words = xrnn::tokenize("Hello, world! Hello<br />again");
    if (words.size() != 4 || words[0] != "hello")
    {
        std::cerr << "tokenize gave " << words.size() << " words\n";
        return 1;
    }
    const auto padded = xrnn::pad_sequences({{5, 6}, {7}}, 3);  // the text part and...
    xrnn::random_engine rng(1);
    xrnn::sequential<xrnn::embedding<float, 10, 4>, xrnn::dense<float, 4, 1>> model(rng);  // ...the library
    (void)model;
    return padded(1, 2) == 7 && padded(0, 0) == 0 ? 0 : 1;
}
