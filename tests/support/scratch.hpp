// Test helpers for files: a scratch directory removed at the end of the test, and whole-file reads and writes.
#ifndef XRNN_TESTS_SUPPORT_SCRATCH_HPP
#define XRNN_TESTS_SUPPORT_SCRATCH_HPP

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>

namespace xrnn_test
{
    /// A fresh directory under the system's temporary directory, removed when the object goes.
    struct scratch_dir
    {
        std::filesystem::path path;

        explicit scratch_dir(const std::string& name)
            // A clock stamp in the name: two builds' tests (say build/ and build-sanitize/) may run at once.
            : path(std::filesystem::temp_directory_path()
                   / ("xrnn_test_" + name + "_"
                      + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count())))
        {
            std::filesystem::remove_all(path);
            std::filesystem::create_directories(path);
        }

        ~scratch_dir()
        {
            std::error_code ignored;
            std::filesystem::remove_all(path, ignored);
        }

        scratch_dir(const scratch_dir&) = delete;
        scratch_dir& operator=(const scratch_dir&) = delete;

        std::string file(const std::string& name) const
        {
            return (path / name).string();
        }
    };

    inline std::string read_bytes(const std::string& path)
    {
        std::ifstream in(path, std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(in), {});
    }

    inline void write_bytes(const std::string& path, const std::string& bytes)
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
}  // namespace xrnn_test

#endif
