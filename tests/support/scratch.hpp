// Test helpers for files: a scratch directory removed at the end of the test, and whole-file reads and writes.
#ifndef XRNN_TESTS_SUPPORT_SCRATCH_HPP
#define XRNN_TESTS_SUPPORT_SCRATCH_HPP

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>

#include <xrnn/config.hpp>

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
    /// How many damaged copies of `good` a loader refuses with xrnn::io_error: every proper prefix (truncations) and
    /// every copy with one byte XORed with `flip`. A loader that catches all damage refuses good.size() of each.
    struct refusals
    {
        std::size_t truncations = 0;
        std::size_t flips = 0;
    };

    template <class Load>
    refusals count_refusals(const std::string& good, char flip, Load&& load)
    {
        refusals counted;
        auto refused = [&](const std::string& bytes) {
            try
            {
                load(bytes);
            }
            catch (const xrnn::io_error&)
            {
                return true;
            }
            return false;
        };
        for (std::size_t length = 0; length < good.size(); ++length)
        {
            counted.truncations += refused(good.substr(0, length));
        }
        for (std::size_t at = 0; at < good.size(); ++at)
        {
            std::string bytes = good;
            bytes[at] = static_cast<char>(bytes[at] ^ flip);
            counted.flips += refused(bytes);
        }
        return counted;
    }
}  // namespace xrnn_test

#endif
