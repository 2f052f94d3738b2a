// Built with only single_include/ (plus xtensor and xtensor-blas) on the include path: checks that the generated
// single header is self-contained. Run by the ctest test single_header_compiles.
#include <xrnn/xrnn.hpp>

#include <iostream>
#include <string>

#ifndef XRNN_VERSION_MAJOR
#error "XRNN_VERSION_MAJOR is not defined by the single header"
#endif

int main()
{
    try
    {
        throw xrnn::error("single header");
    }
    catch (const xrnn::error& e)
    {
        if (std::string(e.what()) != "single header")
        {
            std::cerr << "unexpected xrnn::error message: " << e.what() << '\n';
            return 1;
        }
    }
    std::cout << "xrnn single header " << XRNN_VERSION_MAJOR << '.' << XRNN_VERSION_MINOR << '.' << XRNN_VERSION_PATCH
              << " ok\n";
    return 0;
}
