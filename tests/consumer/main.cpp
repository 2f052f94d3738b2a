// The program every consumer test builds: through find_package on an installed tree (cmake_import), through
// add_subdirectory (cmake_add_subdirectory), and against single_include/ alone (single_header_compiles).
// It uses the library as a user would: a small LSTM model trained a few Adam steps, whose loss must fall.
#include <xrnn/xrnn.hpp>

#include <iostream>
#include <string>

#ifndef XRNN_VERSION_MAJOR
#error "XRNN_VERSION_MAJOR is not defined by <xrnn/xrnn.hpp>"
#endif

int main()
{
    const std::string version = std::to_string(XRNN_VERSION_MAJOR) + "." + std::to_string(XRNN_VERSION_MINOR) + "."
                                + std::to_string(XRNN_VERSION_PATCH);
#ifdef XRNN_EXPECTED_VERSION
    if (version != XRNN_EXPECTED_VERSION)
    {
        std::cerr << "header version " << version << " but CMake package version " << XRNN_EXPECTED_VERSION << '\n';
        return 1;
    }
#endif
    xrnn::random_engine rng(1);
    xrnn::embedding<float, 5, 4> embed(rng);
    xrnn::lstm<float, 4, 8> lstm(rng);
    xrnn::dense<float, 8, 1> head(rng);
    xrnn::assert_connectable<decltype(embed), decltype(lstm)>();
    xrnn::assert_connectable<decltype(lstm), decltype(head)>();
    xrnn::adam<float> optimizer(0.05);
    const xt::xtensor<int, 2> ids = {{1, 2}, {3, 4}, {0, 1}};  // (steps 3, batch 2)
    const xt::xtensor<float, 2> labels = {{1.0f}, {0.0f}};
    xt::xtensor<float, 2> dlogits;
    float first_loss = 0.0f;
    float loss = 0.0f;
    for (int step = 0; step < 20; ++step)
    {
        xrnn::zero_grad(embed, lstm, head);
        const auto& logits = head.forward(
            lstm.forward(embed.forward(ids, xrnn::mode::training), xrnn::mode::training), xrnn::mode::training);
        loss = xrnn::binary_cross_entropy_with_logits(logits, labels, &dlogits);
        first_loss = step == 0 ? loss : first_loss;
        embed.backward(lstm.backward(head.backward(dlogits)));
        optimizer.step(embed, lstm, head);
    }
    if (!(loss < 0.5f * first_loss))
    {
        std::cerr << "loss did not fall: " << first_loss << " -> " << loss << '\n';
        return 1;
    }
    try
    {
        const xt::xtensor<int, 2> bad = {{7}};
        embed.forward(bad);
        std::cerr << "an id outside the vocabulary was accepted\n";
        return 1;
    }
    catch (const xrnn::value_error&)
    {
    }
    std::cout << "xrnn " << version << " consumer ok: loss " << first_loss << " -> " << loss << '\n';
    return 0;
}
