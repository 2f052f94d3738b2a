// xtensor-rnn: the Large Movie Review Dataset (Maas et al., 2011) read from its official layout
//
//     aclImdb/train/pos/*.txt   aclImdb/train/neg/*.txt   aclImdb/test/pos/*.txt   aclImdb/test/neg/*.txt
//
// into padded id arrays and labels, as keras.datasets.imdb.load_data gives them, but from the raw text:
//   1. list the *.txt files of each folder, sorted by file name (directory order differs between file systems);
//   2. read each review, check it is UTF-8 and holds at least one word, tokenize it (text/tokenizer.hpp);
//   3. build the vocabulary from the TRAINING reviews only (the test set must not leak into it);
//   4. encode each review as {1 (start), ids...}, then pad and truncate at the front to maxlen (Keras's defaults);
//   5. shuffle train, then test, by Fisher-Yates with random_engine(seed): before shuffling all negatives come
//      first, so without it a validation split taken from the end of the training data would hold one class.
// load_imdb (text/imdb.hpp) runs these, and keeps the result in the binary cache of text/imdb_cache.hpp.
#ifndef XRNN_TEXT_IMDB_REVIEWS_HPP
#define XRNN_TEXT_IMDB_REVIEWS_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include <xtensor/xtensor.hpp>

#include <xrnn/config.hpp>
#include <xrnn/random.hpp>
#include <xrnn/io/binary.hpp>
#include <xrnn/text/padding.hpp>
#include <xrnn/text/tokenizer.hpp>
#include <xrnn/text/vocabulary.hpp>

namespace xrnn
{
    struct imdb_options
    {
        std::size_t num_words = 10000;  // Keras's num_words: ids < num_words, so num_words - 3 words
        std::size_t maxlen = 200;       // steps per review, after front padding/truncation
        std::uint64_t seed = 113;       // of the shuffles (Keras's imdb uses 113 too)
        std::size_t limit_per_split = 0;  // 0 = every review; else the first n of each split by file name, half
                                          // negative and half positive (positive gets the odd one), for quick runs
        std::string cache_path;         // binary cache file; empty = no cache
    };

    struct imdb_dataset
    {
        xt::xtensor<std::int32_t, 2> x_train;  // (N_train, maxlen) ids, batch-major as Keras; every id < vocab.size()
        xt::xtensor<float, 2> y_train;         // (N_train, 1), 1 = positive review, 0 = negative
        xt::xtensor<std::int32_t, 2> x_test;   // (N_test, maxlen)
        xt::xtensor<float, 2> y_test;          // (N_test, 1)
        vocabulary vocab;                      // built from the training reviews
        bool from_cache = false;               // true when read from options.cache_path instead of the text files
        std::string cache_note;                // what happened to the cache, for the caller to print; empty if none
    };

    namespace detail
    {
        namespace imdb
        {
            namespace fs = std::filesystem;

            struct review_file
            {
                fs::path path;
                std::uint64_t size;
            };

            /// The review files of one split, in the order they are read: neg/ then pos/, each by file name.
            struct split_files
            {
                std::vector<review_file> neg;
                std::vector<review_file> pos;
            };

            /// What identifies the source in the cache: renaming, adding, removing or resizing a review changes it.
            struct fingerprint
            {
                std::uint64_t files = 0;
                std::uint64_t bytes = 0;
                std::uint64_t names = 0xcbf29ce484222325ull;  // FNV-1a over "split/class/name size\n" lines

                bool operator==(const fingerprint& o) const noexcept
                {
                    return files == o.files && bytes == o.bytes && names == o.names;
                }
            };

            struct source
            {
                split_files train;
                split_files test;
                fingerprint print;
            };

            inline void check_options(const imdb_options& options)
            {
                if (options.num_words < 3)
                {
                    throw value_error("load_imdb: num_words expected >= 3 (ids 0, 1, 2 are reserved) but got "
                                      + std::to_string(options.num_words));
                }
                if (options.maxlen == 0)
                {
                    throw value_error("load_imdb: maxlen expected >= 1 but got 0");
                }
                if (options.limit_per_split == 1)
                {
                    throw value_error("load_imdb: limit_per_split expected 0 (all) or >= 2 (one review per class) but got 1");
                }
            }

            /// directory is the aclImdb folder, or a folder that holds aclImdb/.
            inline fs::path find_root(const std::string& directory)
            {
                const fs::path dir(directory);
                std::error_code ec;
                if (!fs::exists(dir, ec))
                {
                    throw io_error("load_imdb: expected the aclImdb directory (or its parent) at '" + directory
                                   + "' but it does not exist");
                }
                if (!fs::is_directory(dir, ec))
                {
                    throw io_error("load_imdb: expected the aclImdb directory (or its parent) at '" + directory
                                   + "' but it is not a directory");
                }
                if (!fs::is_directory(dir / "train", ec) && !fs::is_directory(dir / "test", ec)
                    && fs::is_directory(dir / "aclImdb", ec))
                {
                    return dir / "aclImdb";
                }
                return dir;
            }

            /// The *.txt regular files of folder, sorted by file name (byte order).
            inline std::vector<review_file> list_reviews(const fs::path& folder)
            {
                std::error_code ec;
                if (!fs::is_directory(folder, ec))
                {
                    throw io_error("load_imdb: expected the directory '" + folder.string()
                                   + "' (layout aclImdb/{train,test}/{pos,neg}/*.txt) but it is missing");
                }
                std::vector<std::pair<std::string, review_file>> named;
                fs::directory_iterator it(folder, ec);
                for (; !ec && it != fs::directory_iterator(); it.increment(ec))
                {
                    const fs::path& p = it->path();
                    if (p.extension() != ".txt" || !it->is_regular_file(ec))
                    {
                        continue;
                    }
                    const std::uint64_t size = it->file_size(ec);
                    if (ec)
                    {
                        break;
                    }
                    named.push_back({p.filename().string(), review_file{p, size}});
                }
                if (ec)
                {
                    throw io_error("load_imdb: cannot list the directory '" + folder.string() + "': " + ec.message());
                }
                std::sort(named.begin(), named.end(),
                          [](const auto& a, const auto& b) { return a.first < b.first; });
                std::vector<review_file> files;
                files.reserve(named.size());
                for (auto& entry : named)
                {
                    files.push_back(std::move(entry.second));
                }
                return files;
            }

            inline split_files list_split(const fs::path& root, const char* split, std::size_t limit)
            {
                split_files files{list_reviews(root / split / "neg"), list_reviews(root / split / "pos")};
                const std::size_t nneg = files.neg.size();
                const std::size_t npos = files.pos.size();
                if (nneg + npos == 0)
                {
                    throw io_error(std::string("load_imdb: split '") + split + "' is empty: expected *.txt reviews in '"
                                   + (root / split / "neg").string() + "' and '" + (root / split / "pos").string()
                                   + "' but found none");
                }
                if (nneg == 0 || npos == 0)
                {
                    throw io_error(std::string("load_imdb: split '") + split
                                   + "' has one class only: expected reviews in both pos/ and neg/ but found "
                                   + std::to_string(npos) + " in pos/ and " + std::to_string(nneg) + " in neg/");
                }
                if (limit != 0)
                {
                    files.neg.resize(std::min(nneg, limit / 2));
                    files.pos.resize(std::min(npos, limit - limit / 2));
                }
                return files;
            }

            inline void add_to_fingerprint(fingerprint& print, const char* split, const char* label,
                                           const std::vector<review_file>& files)
            {
                for (const auto& f : files)
                {
                    ++print.files;
                    print.bytes += f.size;
                    const std::string line = std::string(split) + "/" + label + "/" + f.path.filename().string() + " "
                                             + std::to_string(f.size) + "\n";
                    print.names = io::fnv1a64(line.data(), line.size(), print.names);
                }
            }

            inline source scan(const std::string& directory, std::size_t limit)
            {
                const fs::path root = find_root(directory);
                source src{list_split(root, "train", limit), list_split(root, "test", limit), fingerprint{}};
                add_to_fingerprint(src.print, "train", "neg", src.train.neg);
                add_to_fingerprint(src.print, "train", "pos", src.train.pos);
                add_to_fingerprint(src.print, "test", "neg", src.test.neg);
                add_to_fingerprint(src.print, "test", "pos", src.test.pos);
                return src;
            }

            /// Reviews are a few kB (the longest about 14 kB); a file over this is refused before it is read.
            constexpr std::size_t max_review_bytes = std::size_t(1) << 26;

            /// A review's bytes, checked to be UTF-8 (the caller checks that it holds a word).
            inline std::string read_review(const review_file& file)
            {
                std::string text = io::read_file(file.path.string(), max_review_bytes, "IMDB review");
                validate_utf8(text, file.path.string());
                return text;
            }

            [[noreturn]] inline void throw_no_words(const review_file& file, std::size_t bytes)
            {
                throw io_error("load_imdb: review file '" + file.path.string()
                               + "' holds no words: expected a non-empty review but found "
                               + (bytes == 0 ? std::string("an empty file") : std::to_string(bytes) + " bytes without a word"));
            }

            /// Fisher-Yates: order[i] is the source row of row i. One engine drives both splits, train first.
            inline std::vector<std::size_t> shuffled_order(std::size_t n, random_engine& rng)
            {
                std::vector<std::size_t> order(n);
                std::iota(order.begin(), order.end(), std::size_t(0));
                for (std::size_t i = n; i > 1; --i)
                {
                    const auto j = static_cast<std::size_t>(rng.below(i));
                    std::swap(order[i - 1], order[j]);
                }
                return order;
            }

            /// Pads the sequences (front padding and truncation, as Keras), shuffles the rows, labels them.
            inline void finish_split(std::vector<std::vector<std::int32_t>>& sequences, std::size_t nneg,
                                     std::size_t maxlen, random_engine& rng, xt::xtensor<std::int32_t, 2>& x,
                                     xt::xtensor<float, 2>& y)
            {
                const std::size_t n = sequences.size();
                const auto padded = pad_sequences(sequences, maxlen);
                sequences.clear();
                sequences.shrink_to_fit();
                const auto order = shuffled_order(n, rng);
                x = xt::xtensor<std::int32_t, 2>::from_shape({n, maxlen});
                y = xt::xtensor<float, 2>::from_shape({n, 1});
                for (std::size_t i = 0; i < n; ++i)
                {
                    std::memcpy(x.data() + i * maxlen, padded.data() + order[i] * maxlen, maxlen * sizeof(std::int32_t));
                    y(i, 0) = order[i] < nneg ? 0.0f : 1.0f;
                }
            }

            /// Parses the text files: the slow path.
            inline imdb_dataset parse(const source& src, const imdb_options& options)
            {
                // Training reviews: words are interned as provisional ids while counting, so the corpus is held
                // as integers rather than strings until the vocabulary fixes the final ids.
                std::unordered_map<std::string, std::uint32_t> index;
                std::vector<const std::string*> words;  // provisional id -> word (keys of index: stable addresses)
                std::vector<std::size_t> counts;        // provisional id -> occurrences
                std::vector<std::vector<std::uint32_t>> provisional;
                provisional.reserve(src.train.neg.size() + src.train.pos.size());
                std::string key;
                for (const auto* files : {&src.train.neg, &src.train.pos})
                {
                    for (const auto& file : *files)
                    {
                        const std::string text = read_review(file);
                        std::vector<std::uint32_t> seq;
                        for_each_token(text, [&](std::string_view token) {
                            key.assign(token);
                            auto found = index.find(key);
                            if (found == index.end())
                            {
                                found = index.emplace(key, static_cast<std::uint32_t>(words.size())).first;
                                words.push_back(&found->first);
                                counts.push_back(0);
                            }
                            ++counts[found->second];
                            seq.push_back(found->second);
                        });
                        if (seq.empty())
                        {
                            throw_no_words(file, text.size());
                        }
                        provisional.push_back(std::move(seq));
                    }
                }

                imdb_dataset data;
                {
                    std::unordered_map<std::string, std::size_t> word_counts;
                    word_counts.reserve(words.size());
                    for (std::size_t p = 0; p < words.size(); ++p)
                    {
                        word_counts.emplace(*words[p], counts[p]);
                    }
                    data.vocab = vocabulary::from_counts(word_counts, options.num_words);
                }
                std::vector<std::int32_t> final_id(words.size());
                for (std::size_t p = 0; p < words.size(); ++p)
                {
                    final_id[p] = data.vocab.id(*words[p]);
                }
                index.clear();

                std::vector<std::vector<std::int32_t>> train;
                train.reserve(provisional.size());
                for (auto& seq : provisional)
                {
                    std::vector<std::int32_t> ids;
                    ids.reserve(seq.size() + 1);
                    ids.push_back(vocabulary::start_id);
                    for (const auto p : seq)
                    {
                        ids.push_back(final_id[p]);
                    }
                    train.push_back(std::move(ids));
                    std::vector<std::uint32_t>().swap(seq);
                }

                std::vector<std::vector<std::int32_t>> test;
                test.reserve(src.test.neg.size() + src.test.pos.size());
                for (const auto* files : {&src.test.neg, &src.test.pos})
                {
                    for (const auto& file : *files)
                    {
                        const std::string text = read_review(file);
                        auto ids = data.vocab.encode(text);
                        if (ids.size() == 1)
                        {
                            throw_no_words(file, text.size());
                        }
                        test.push_back(std::move(ids));
                    }
                }

                random_engine rng(options.seed);
                finish_split(train, src.train.neg.size(), options.maxlen, rng, data.x_train, data.y_train);
                finish_split(test, src.test.neg.size(), options.maxlen, rng, data.x_test, data.y_test);
                return data;
            }
        }  // namespace imdb
    }      // namespace detail
}  // namespace xrnn

#endif
