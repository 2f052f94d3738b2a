// Consumer program for the CMake packaging tests (cmake_add_subdirectory and cmake_import share this content).
#include <xrnn/xrnn.hpp>

#include <iostream>
#include <string>

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
    try
    {
        throw xrnn::error("consumer check");
    }
    catch (const xrnn::error& e)
    {
        if (std::string(e.what()) != "consumer check")
        {
            std::cerr << "unexpected xrnn::error message: " << e.what() << '\n';
            return 1;
        }
    }
    std::cout << "xrnn " << version << " consumer ok\n";
    return 0;
}
