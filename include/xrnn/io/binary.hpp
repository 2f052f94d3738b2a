// xtensor-rnn: the byte-level pieces shared by the library's binary files (weight files, checkpoints, caches):
// little-endian encoding, a bounds-checked reader, a checksum, atomic writes and size-bounded reads.
//
// Files are always little-endian, whatever the host, so a file written on one machine loads on another.
#ifndef XRNN_IO_BINARY_HPP
#define XRNN_IO_BINARY_HPP

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <type_traits>

#if defined(_WIN32)
#include <io.h>
#include <process.h>
#else
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>
#endif

#include <xrnn/config.hpp>

namespace xrnn
{
    namespace io
    {
        /// FNV-1a, 64 bits: detects truncation and corruption (not tampering; it is not a cryptographic hash).
        inline std::uint64_t fnv1a64(const char* data, std::size_t size, std::uint64_t hash = 0xcbf29ce484222325ull)
        {
            for (std::size_t i = 0; i < size; ++i)
            {
                hash ^= static_cast<unsigned char>(data[i]);
                hash *= 0x100000001b3ull;
            }
            return hash;
        }

        inline bool host_is_little_endian() noexcept
        {
            const std::uint32_t probe = 1;
            unsigned char first = 0;
            std::memcpy(&first, &probe, 1);
            return first == 1;
        }

        /// Appends little-endian values to a byte string.
        class binary_writer
        {
        public:
            template <class U>
            void put(U value)
            {
                static_assert(std::is_arithmetic<U>::value, "binary_writer::put: arithmetic values only");
                char bytes[sizeof(U)];
                std::memcpy(bytes, &value, sizeof(U));
                if (!host_is_little_endian())
                {
                    std::reverse(bytes, bytes + sizeof(U));
                }
                m_bytes.append(bytes, sizeof(U));
            }

            /// A length-prefixed (u32) string.
            void put_string(const std::string& text)
            {
                put(static_cast<std::uint32_t>(text.size()));
                m_bytes += text;
            }

            void put_raw(const char* data, std::size_t size)
            {
                m_bytes.append(data, size);
            }

            template <class U>
            void put_array(const U* values, std::size_t count)
            {
                if (count == 0)  // values may be null then (an empty vector's data())
                {
                    return;
                }
                if (host_is_little_endian())
                {
                    m_bytes.append(reinterpret_cast<const char*>(values), count * sizeof(U));
                }
                else
                {
                    for (std::size_t i = 0; i < count; ++i)
                    {
                        put(values[i]);
                    }
                }
            }

            const std::string& bytes() const noexcept
            {
                return m_bytes;
            }

            std::string& bytes() noexcept
            {
                return m_bytes;
            }

        private:
            std::string m_bytes;
        };

        /// Reads little-endian values from a byte range; every read is bounds-checked and a short read throws
        /// io_error naming the file and what was being read.
        class binary_reader
        {
        public:
            binary_reader(const char* data, std::size_t size, std::string source)
                : m_data(data)
                , m_size(size)
                , m_source(std::move(source))
            {
            }

            template <class U>
            U get(const char* what)
            {
                static_assert(std::is_arithmetic<U>::value, "binary_reader::get: arithmetic values only");
                require(sizeof(U), what);
                char bytes[sizeof(U)];
                std::memcpy(bytes, m_data + m_offset, sizeof(U));
                if (!host_is_little_endian())
                {
                    std::reverse(bytes, bytes + sizeof(U));
                }
                m_offset += sizeof(U);
                U value;
                std::memcpy(&value, bytes, sizeof(U));
                return value;
            }

            /// A length-prefixed string of at most max_length bytes.
            std::string get_string(const char* what, std::size_t max_length)
            {
                const auto length = get<std::uint32_t>(what);
                if (length > max_length)
                {
                    fail(std::string(what) + " is " + std::to_string(length) + " bytes long, more than the "
                         + std::to_string(max_length) + " allowed");
                }
                require(length, what);
                std::string text(m_data + m_offset, length);
                m_offset += length;
                return text;
            }

            template <class U>
            void get_array(U* values, std::size_t count, const char* what)
            {
                if (count != 0 && m_size / count < sizeof(U))
                {
                    fail(std::string(what) + " claims more bytes than the file has");
                }
                require(count * sizeof(U), what);
                if (count == 0)  // values may be null then, and memcpy must not be given a null pointer
                {
                    return;
                }
                if (host_is_little_endian())
                {
                    std::memcpy(values, m_data + m_offset, count * sizeof(U));
                    m_offset += count * sizeof(U);
                }
                else
                {
                    for (std::size_t i = 0; i < count; ++i)
                    {
                        values[i] = get<U>(what);
                    }
                }
            }

            void skip(std::size_t bytes, const char* what)
            {
                require(bytes, what);
                m_offset += bytes;
            }

            std::size_t offset() const noexcept
            {
                return m_offset;
            }

            std::size_t remaining() const noexcept
            {
                return m_size - m_offset;
            }

            const std::string& source() const noexcept
            {
                return m_source;
            }

            [[noreturn]] void fail(const std::string& problem) const
            {
                throw io_error(m_source + ": " + problem + " (at byte " + std::to_string(m_offset) + ")");
            }

        private:
            void require(std::size_t bytes, const char* what) const
            {
                if (bytes > m_size - m_offset)
                {
                    fail(std::string("the file ends inside ") + what + " (needs " + std::to_string(bytes)
                         + " more bytes, has " + std::to_string(m_size - m_offset) + "): truncated");
                }
            }

            const char* m_data;
            std::size_t m_size;
            std::size_t m_offset = 0;
            std::string m_source;
        };

        /// The size of a regular file; io_error naming `what` and the cause when it is missing, not a regular file, or
        /// cannot be reached (a symlink loop, a directory without permission: the system's own words, not "no such
        /// file").
        inline std::size_t regular_file_size(const std::string& path, const char* what)
        {
            std::error_code error;
            const auto status = std::filesystem::status(path, error);
            if (error && error != std::errc::no_such_file_or_directory)
            {
                throw io_error(std::string("cannot read ") + what + " '" + path + "': " + error.message());
            }
            if (!std::filesystem::exists(status))
            {
                throw io_error(std::string("cannot read ") + what + " '" + path + "': no such file");
            }
            if (!std::filesystem::is_regular_file(status))
            {
                throw io_error(std::string("cannot read ") + what + " '" + path + "': not a regular file");
            }
            const auto size = std::filesystem::file_size(path, error);
            if (error)
            {
                throw io_error(std::string("cannot read ") + what + " '" + path + "': " + error.message());
            }
            return static_cast<std::size_t>(size);
        }

        /// The first `bytes` bytes of a file (all of it when shorter).
        inline std::string read_prefix(const std::string& path, std::size_t bytes, const char* what)
        {
            bytes = std::min(bytes, regular_file_size(path, what));
            errno = 0;
            std::ifstream in(path, std::ios::binary);
            if (!in)
            {
                throw io_error(std::string("cannot read ") + what + " '" + path + "': cannot open it"
                               + (errno != 0 ? std::string(": ") + std::strerror(errno) : std::string()));
            }
            std::string prefix(bytes, '\0');
            errno = 0;
            if (!in.read(prefix.data(), static_cast<std::streamsize>(bytes)))
            {
                const std::string cause = errno != 0 ? std::string(": ") + std::strerror(errno) : " (it ended early)";
                throw io_error(std::string("cannot read ") + what + " '" + path + "': reading it failed" + cause);
            }
            return prefix;
        }

        /// The whole file, refusing files over max_bytes before reading them (a hostile size never allocates).
        inline std::string read_file(const std::string& path, std::size_t max_bytes, const char* what)
        {
            const std::size_t size = regular_file_size(path, what);
            if (size > max_bytes)
            {
                throw io_error(std::string(what) + " '" + path + "' is " + std::to_string(size)
                               + " bytes, more than the " + std::to_string(max_bytes) + " expected at most");
            }
            std::string bytes = read_prefix(path, size, what);
            if (bytes.size() != size)
            {
                throw io_error(std::string("cannot read ") + what + " '" + path + "': the file changed while read");
            }
            return bytes;
        }

        /// Where a save to path writes: path itself, or, when path is a symlink, the file it finally points to (the
        /// link stays a link). A chain of more than 40 links is a loop.
        inline std::filesystem::path save_target(const std::string& path, const char* what)
        {
            namespace fs = std::filesystem;
            fs::path target = path;
            for (int hops = 0;; ++hops)
            {
                std::error_code error;
                const auto link_status = fs::symlink_status(target, error);
                if (error || !fs::is_symlink(link_status))
                {
                    return target;
                }
                if (hops == 40)
                {
                    throw io_error(std::string("cannot save ") + what + " to '" + path
                                   + "': too many levels of symbolic links; the previous file, if any, is unchanged");
                }
                fs::path next = fs::read_symlink(target, error);
                if (error)
                {
                    throw io_error(std::string("cannot save ") + what + " to '" + path + "': " + error.message());
                }
                target = next.is_absolute() ? next : target.parent_path() / next;
            }
        }

        /// Removes the temporary files that earlier saves to target left when their process died before renaming
        /// them ("<name>.tmp-<pid>-<n>" of a process that no longer exists). Temporaries of live processes (a save
        /// running now) are left alone. POSIX only; elsewhere nothing is removed.
        inline void remove_stale_temporaries(const std::filesystem::path& target)
        {
#if !defined(_WIN32)
            namespace fs = std::filesystem;
            const std::string prefix = target.filename().string() + ".tmp-";
            const fs::path directory = target.parent_path().empty() ? fs::path(".") : target.parent_path();
            std::error_code error;
            for (fs::directory_iterator it(directory, error), end; !error && it != end; it.increment(error))
            {
                const std::string name = it->path().filename().string();
                if (name.compare(0, prefix.size(), prefix) != 0)
                {
                    continue;
                }
                const std::string rest = name.substr(prefix.size());  // "<pid>-<n>"
                const std::size_t dash = rest.find('-');
                if (dash == 0 || dash == std::string::npos
                    || rest.find_first_not_of("0123456789") != dash
                    || rest.find_first_not_of("0123456789", dash + 1) != std::string::npos || dash > 9)
                {
                    continue;  // not a name this function's saves make
                }
                const long pid = std::stol(rest.substr(0, dash));
                if (pid > 0 && kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
                {
                    std::error_code ignored;
                    fs::remove(it->path(), ignored);
                }
            }
#else
            (void)target;
#endif
        }

        /// Writes bytes to path atomically: a temporary file in the same directory is written, flushed to disk
        /// and renamed over path, so a crash or a full disk leaves either the old file or the new one, never half.
        /// A symlink is written through (its final target is replaced, the link stays), the replaced file's
        /// permissions are kept (a 0600 file stays 0600), and temporaries that crashed saves to the same target
        /// left behind are removed.
        inline void atomic_write_file(const std::string& path, const std::string& bytes, const char* what)
        {
            namespace fs = std::filesystem;
            static std::atomic<unsigned> counter{0};
#if defined(_WIN32)
            const long pid = _getpid();
#else
            const long pid = static_cast<long>(getpid());
#endif
            const fs::path target = save_target(path, what);
            remove_stale_temporaries(target);
            const std::string temporary =
                target.string() + ".tmp-" + std::to_string(pid) + "-" + std::to_string(counter++);
            auto fail = [&](const std::string& problem) {
                std::error_code ignored;
                fs::remove(temporary, ignored);
                throw io_error(std::string("cannot save ") + what + " to '" + path + "': " + problem
                               + "; the previous file, if any, is unchanged");
            };
            std::FILE* file = std::fopen(temporary.c_str(), "wb");
            if (file == nullptr)
            {
                throw io_error(std::string("cannot save ") + what + " to '" + path + "': cannot create '" + temporary
                               + "': " + std::strerror(errno));
            }
            const bool written = std::fwrite(bytes.data(), 1, bytes.size(), file) == bytes.size();
            bool flushed = std::fflush(file) == 0;
#if defined(_WIN32)
            flushed = flushed && _commit(_fileno(file)) == 0;
#else
            flushed = flushed && fsync(fileno(file)) == 0;
#endif
            const bool closed = std::fclose(file) == 0;
            if (!written || !flushed || !closed)
            {
                fail(std::string("writing the temporary file failed: ") + std::strerror(errno));
            }
            std::error_code error;
            const auto existing = fs::status(target, error);
            if (!error && fs::is_regular_file(existing))
            {
                fs::permissions(temporary, existing.permissions(), fs::perm_options::replace, error);
                if (error)
                {
                    fail("keeping the file's permissions failed: " + error.message());
                }
            }
            fs::rename(temporary, target, error);
            if (error)
            {
                fail("renaming the temporary file failed: " + error.message());
            }
        }
    }  // namespace io
}  // namespace xrnn

#endif
