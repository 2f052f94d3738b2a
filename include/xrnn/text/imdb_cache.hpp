// xtensor-rnn: the binary cache of load_imdb (text/imdb.hpp): the parsed dataset, with the options and the
// fingerprint of the review files it was made from. A cache is never trusted: its header is checked first (magic,
// version, options, fingerprint, and the exact size these imply) before the rest is read, then the checksum and
// every id and label; one that is stale, truncated or corrupted is ignored and rebuilt, and why is told.
#ifndef XRNN_TEXT_IMDB_CACHE_HPP
#define XRNN_TEXT_IMDB_CACHE_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include <xtensor/xtensor.hpp>

#include <xrnn/config.hpp>
#include <xrnn/io/binary.hpp>
#include <xrnn/text/imdb_reviews.hpp>
#include <xrnn/text/vocabulary.hpp>

namespace xrnn
{
    namespace detail
    {
        namespace imdb
        {
            /// cache_format: every integer little-endian, whatever the host (io::binary_writer).
            ///   "XRNNIMDB"  u32 version
            ///   u64 num_words, maxlen, seed, limit_per_split         the options that shape the result
            ///   u64 files, bytes, names                              the source's fingerprint
            ///   u64 vocabulary bytes, then the vocabulary file text  (vocabulary::save's format, validated alike)
            ///   u64 n_train, n_test                                  n_train + n_test = files
            ///   i32 x_train[n_train][maxlen], u8 y_train[n_train], i32 x_test[n_test][maxlen], u8 y_test[n_test]
            ///   u64 FNV-1a 64 of every byte before it
            constexpr char cache_magic[8] = {'X', 'R', 'N', 'N', 'I', 'M', 'D', 'B'};
            constexpr std::uint32_t cache_version = 1;
            constexpr std::size_t cache_header_bytes = sizeof cache_magic + 4;
            constexpr std::uint64_t max_vocabulary_bytes = std::uint64_t(1) << 30;

            inline void put_split(io::binary_writer& out, const xt::xtensor<std::int32_t, 2>& x,
                                  const xt::xtensor<float, 2>& y)
            {
                out.put_array(x.data(), x.size());
                std::string labels(y.shape()[0], '\0');
                for (std::size_t i = 0; i < labels.size(); ++i)
                {
                    labels[i] = y(i, 0) > 0.5f ? '\1' : '\0';
                }
                out.put_raw(labels.data(), labels.size());
            }

            inline std::string cache_bytes(const imdb_dataset& data, const imdb_options& options, const fingerprint& print)
            {
                const std::string vocab_text = data.vocab.serialize();
                io::binary_writer out;
                out.bytes().reserve(128 + vocab_text.size() + print.files * (options.maxlen * 4 + 1));
                out.put_raw(cache_magic, sizeof cache_magic);
                out.put(cache_version);
                for (const std::uint64_t v : {std::uint64_t(options.num_words), std::uint64_t(options.maxlen),
                                              options.seed, std::uint64_t(options.limit_per_split), print.files,
                                              print.bytes, print.names, std::uint64_t(vocab_text.size())})
                {
                    out.put(v);
                }
                out.put_raw(vocab_text.data(), vocab_text.size());
                out.put(std::uint64_t(data.x_train.shape()[0]));
                out.put(std::uint64_t(data.x_test.shape()[0]));
                put_split(out, data.x_train, data.y_train);
                put_split(out, data.x_test, data.y_test);
                out.put(io::fnv1a64(out.bytes().data(), out.bytes().size()));
                return std::move(out.bytes());
            }

            /// Reads one split's x and y (sizes checked against the bytes left before allocating); io_error if an
            /// id or a label is out of range.
            inline void read_split(io::binary_reader& in, std::uint64_t n, std::size_t maxlen, std::size_t vocab_size,
                                   xt::xtensor<std::int32_t, 2>& x, xt::xtensor<float, 2>& y)
            {
                if (n > in.remaining() / (std::uint64_t(maxlen) * 4 + 1))
                {
                    in.fail(std::to_string(n) + " rows of " + std::to_string(maxlen) + " ids claim more bytes than the file has");
                }
                x = xt::xtensor<std::int32_t, 2>::from_shape({std::size_t(n), maxlen});
                in.get_array(x.data(), x.size(), "ids");
                if (!std::all_of(x.begin(), x.end(), [&](std::int32_t id) { return index_in_range(id, vocab_size); }))
                {
                    in.fail("an id is outside [0, " + std::to_string(vocab_size) + ")");
                }
                std::string labels(std::size_t(n), '\0');
                in.get_array(&labels[0], labels.size(), "labels");
                y = xt::xtensor<float, 2>::from_shape({std::size_t(n), 1});
                for (std::size_t i = 0; i < labels.size(); ++i)
                {
                    if (labels[i] != '\0' && labels[i] != '\1')
                    {
                        in.fail("a label is neither 0 nor 1");
                    }
                    y(i, 0) = labels[i] == '\1' ? 1.0f : 0.0f;
                }
            }

            /// Checks the fixed header of a cache (magic, version, the options, the source's fingerprint, the
            /// vocabulary's size) in its first header_bytes bytes: the vocabulary's size, or nullopt with why.
            constexpr std::size_t cache_fixed_bytes = cache_header_bytes + 8 * 8;
            inline std::optional<std::uint64_t> check_cache_header(const std::string& head, const std::string& path,
                                                                   const imdb_options& options,
                                                                   const fingerprint& print, std::string& why)
            {
                if (head.size() < cache_fixed_bytes || std::memcmp(head.data(), cache_magic, sizeof cache_magic) != 0)
                {
                    why = "'" + path + "' is not an IMDB cache (bad magic or too short)";
                    return std::nullopt;
                }
                io::binary_reader in(head.data(), cache_fixed_bytes, "IMDB cache '" + path + "'");
                in.skip(sizeof cache_magic, "magic");
                const auto version = in.get<std::uint32_t>("format version");
                if (version != cache_version)
                {
                    why = "cache '" + path + "' has format version " + std::to_string(version) + ", expected "
                          + std::to_string(cache_version);
                    return std::nullopt;
                }
                std::uint64_t header[8];
                for (auto& v : header)
                {
                    v = in.get<std::uint64_t>("header");
                }
                if (header[0] != options.num_words || header[1] != options.maxlen || header[2] != options.seed
                    || header[3] != options.limit_per_split)
                {
                    why = "cache '" + path + "' is stale (made with other options)";
                    return std::nullopt;
                }
                if (!(fingerprint{header[4], header[5], header[6]} == print))
                {
                    why = "cache '" + path + "' is stale (the review files changed)";
                    return std::nullopt;
                }
                // the vocabulary's words come from the reviews: its text cannot be much longer than they are
                if (header[7] > std::min<std::uint64_t>(max_vocabulary_bytes, 2 * print.bytes + 4096))
                {
                    why = "cache '" + path + "' is corrupted (its vocabulary claims " + std::to_string(header[7])
                          + " bytes, more than the reviews could give)";
                    return std::nullopt;
                }
                return header[7];
            }

            /// The cached dataset, or nullopt with why (for cache_note) when there is none usable.
            inline std::optional<imdb_dataset> read_cache(const std::string& path, const imdb_options& options,
                                                          const fingerprint& print, std::string& why)
            {
                std::error_code ec;
                if (!fs::exists(path, ec))
                {
                    why = "no cache at '" + path + "'";
                    return std::nullopt;
                }
                // The header first (magic, version, the options, the source's fingerprint, the vocabulary's size):
                // a cache made otherwise, or whose size is not the one its header implies, is refused having read
                // only its first bytes, whatever its size.
                std::uint64_t expected_bytes = 0;
                try
                {
                    const std::size_t file_bytes = io::regular_file_size(path, "IMDB cache");
                    const auto vocab_bytes = check_cache_header(io::read_prefix(path, cache_fixed_bytes, "IMDB cache"),
                                                                path, options, print, why);
                    if (!vocab_bytes)
                    {
                        return std::nullopt;
                    }
                    expected_bytes = cache_fixed_bytes + *vocab_bytes + 16 + print.files * (options.maxlen * 4 + 1) + 8;
                    if (file_bytes != expected_bytes)
                    {
                        why = "cache '" + path + "' is truncated or corrupted (" + std::to_string(file_bytes)
                              + " bytes, its header implies " + std::to_string(expected_bytes) + ")";
                        return std::nullopt;
                    }
                }
                catch (const error& e)
                {
                    why = std::string("cache not usable (") + e.what() + ")";
                    return std::nullopt;
                }
                std::string bytes;
                try
                {
                    bytes = io::read_file(path, static_cast<std::size_t>(expected_bytes), "IMDB cache");
                }
                catch (const io_error& e)
                {
                    why = std::string("cache not usable (") + e.what() + ")";
                    return std::nullopt;
                }
                // the whole file: the header again (the file may have changed meanwhile), then the checksum
                const auto vocab_bytes_again = check_cache_header(bytes, path, options, print, why);
                if (!vocab_bytes_again)
                {
                    return std::nullopt;
                }
                const std::size_t payload = bytes.size() - 8;
                io::binary_reader in(bytes.data(), payload, "IMDB cache '" + path + "'");
                io::binary_reader tail(bytes.data() + payload, 8, "IMDB cache '" + path + "'");
                try
                {
                    if (bytes.size() != expected_bytes
                        || tail.get<std::uint64_t>("checksum") != io::fnv1a64(bytes.data(), payload))
                    {
                        why = "cache '" + path + "' is corrupted or truncated (checksum mismatch)";
                        return std::nullopt;
                    }
                    in.skip(cache_fixed_bytes, "header");
                    const std::uint64_t vocab_bytes = *vocab_bytes_again;
                    if (vocab_bytes > in.remaining())
                    {
                        in.fail("the vocabulary claims more bytes than the file has");
                    }
                    imdb_dataset data;
                    data.vocab = vocabulary::deserialize(std::string_view(bytes.data() + in.offset(), vocab_bytes), path);
                    in.skip(static_cast<std::size_t>(vocab_bytes), "vocabulary");
                    if (data.vocab.num_words() != options.num_words)
                    {
                        in.fail("the vocabulary has num_words " + std::to_string(data.vocab.num_words()));
                    }
                    const auto n_train = in.get<std::uint64_t>("n_train");
                    const auto n_test = in.get<std::uint64_t>("n_test");
                    if (n_train == 0 || n_test == 0 || n_train > print.files || n_test != print.files - n_train)
                    {
                        in.fail("expected " + std::to_string(print.files) + " reviews in both splits but found "
                                + std::to_string(n_train) + " + " + std::to_string(n_test));
                    }
                    read_split(in, n_train, options.maxlen, data.vocab.size(), data.x_train, data.y_train);
                    read_split(in, n_test, options.maxlen, data.vocab.size(), data.x_test, data.y_test);
                    if (in.remaining() != 0)
                    {
                        in.fail(std::to_string(in.remaining()) + " bytes after the data");
                    }
                    return data;
                }
                catch (const error& e)
                {
                    why = std::string("cache not usable (") + e.what() + ")";
                    return std::nullopt;
                }
            }
        }  // namespace imdb
    }      // namespace detail
}  // namespace xrnn

#endif
