// xtensor-rnn: vocabulary, words <-> integer ids, numbered as keras.datasets.imdb numbers them.
//
//   id 0  padding ("<pad>"), what pad_sequences fills with
//   id 1  start of sequence ("<start>"), put first by encode()
//   id 2  out of vocabulary ("<oov>"), every word not in the vocabulary
//   id 3, 4, ...  the words, most frequent first (occurrences counted over the training texts)
//
// Ties in frequency are broken by the words' byte order, so one corpus always gives one vocabulary (Keras leaves
// ties to dictionary insertion order, which depends on the order the texts were read).
// num_words has Keras's meaning: only ids below num_words are used, so num_words = 10000 keeps ids 0..9999, that
// is 9997 words; a word ranked beyond that is encoded as 2. This bounds the embedding: V = num_words rows suffice.
#ifndef XRNN_TEXT_VOCABULARY_HPP
#define XRNN_TEXT_VOCABULARY_HPP

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <xrnn/config.hpp>
#include <xrnn/io/binary.hpp>
#include <xrnn/text/tokenizer.hpp>

namespace xrnn
{
    class vocabulary
    {
    public:
        static constexpr std::int32_t padding_id = 0;
        static constexpr std::int32_t start_id = 1;
        static constexpr std::int32_t oov_id = 2;
        static constexpr std::int32_t first_word_id = 3;

        /// The reserved ids only: every word encodes as oov_id.
        vocabulary()
            : m_num_words(3), m_words{"<pad>", "<start>", "<oov>"}
        {
        }

        /// Counts every token of tokenized_texts and keeps the (num_words - 3) most frequent.
        /// value_error if num_words < 3 (the reserved ids need three) or if a token could not be saved to a
        /// vocabulary file (empty, or holding a line break).
        static vocabulary build(const std::vector<std::vector<std::string>>& tokenized_texts, std::size_t num_words)
        {
            check_num_words("vocabulary::build", num_words);
            std::unordered_map<std::string, std::size_t> counts;
            for (const auto& tokens : tokenized_texts)
            {
                for (const auto& token : tokens)
                {
                    ++counts[token];
                }
            }
            return from_counts(counts, num_words);
        }

        /// The same ranking from counts made elsewhere (incrementally, over a corpus too large to hold as strings).
        /// Words with a count of zero are ignored.
        static vocabulary from_counts(const std::unordered_map<std::string, std::size_t>& counts,
                                      std::size_t num_words)
        {
            check_num_words("vocabulary::from_counts", num_words);
            std::vector<std::pair<const std::string*, std::size_t>> ranked;
            ranked.reserve(counts.size());
            for (const auto& [word, count] : counts)
            {
                check_word("vocabulary::from_counts", word);
                if (count > 0)
                {
                    ranked.emplace_back(&word, count);
                }
            }
            // (count descending, word ascending) is a total order on distinct words: the ranking is deterministic.
            const auto before = [](const auto& a, const auto& b) {
                return a.second != b.second ? a.second > b.second : *a.first < *b.first;
            };
            const std::size_t kept = std::min(ranked.size(), num_words - 3);
            std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(kept), ranked.end(), before);
            vocabulary vocab;
            vocab.m_num_words = num_words;
            vocab.m_words.reserve(3 + kept);
            for (std::size_t r = 0; r < kept; ++r)
            {
                vocab.add_word(*ranked[r].first);
            }
            return vocab;
        }

        /// The id of word, or oov_id when it is not in the vocabulary (the reserved names "<pad>"... included).
        std::int32_t id(std::string_view word) const
        {
            const auto it = m_ids.find(std::string(word));
            return it == m_ids.end() ? oov_id : it->second;
        }

        /// The word of an id: "<pad>", "<start>" and "<oov>" for 0, 1, 2. value_error outside [0, size()).
        const std::string& word(std::int32_t id) const
        {
            if (!detail::index_in_range(id, m_words.size()))
            {
                throw value_error("vocabulary::word: id expected in [0, " + std::to_string(m_words.size())
                                  + ") but got " + std::to_string(id));
            }
            return m_words[static_cast<std::size_t>(id)];
        }

        /// Number of ids in use, reserved ones included: every id this vocabulary produces is below size(), and
        /// size() <= num_words() (smaller when the texts had fewer distinct words).
        std::size_t size() const noexcept
        {
            return m_words.size();
        }

        /// The bound asked for at build time (Keras's num_words).
        std::size_t num_words() const noexcept
        {
            return m_num_words;
        }

        /// tokenize(text), then {start_id, id(token)...}: the start token first, as keras.datasets.imdb does.
        std::vector<std::int32_t> encode(std::string_view text) const
        {
            std::vector<std::int32_t> ids{start_id};
            std::string key;
            detail::for_each_token(text, [&](std::string_view token) {
                key.assign(token);  // one reused buffer: no allocation per token
                const auto it = m_ids.find(key);
                ids.push_back(it == m_ids.end() ? oov_id : it->second);
            });
            return ids;
        }

        /// The words of ids joined by single spaces, padding ids skipped, for printing a (padded) sequence:
        /// decode({0, 0, 1, 14, 2}) -> "<start> movie <oov>". Ids takes any range of integers (a std::vector, a
        /// row of an xtensor). value_error for an id outside [0, size()).
        template <class Ids>
        std::string decode(const Ids& ids) const
        {
            std::string text;
            for (const auto raw : ids)
            {
                const auto id = static_cast<std::int64_t>(raw);
                if (id == padding_id)
                {
                    continue;
                }
                if (id < 0 || id >= static_cast<std::int64_t>(m_words.size()))
                {
                    throw value_error("vocabulary::decode: id expected in [0, " + std::to_string(m_words.size())
                                      + ") but got " + std::to_string(id));
                }
                text += text.empty() ? "" : " ";
                text += m_words[static_cast<std::size_t>(id)];
            }
            return text;
        }

        /// Writes the vocabulary as text, atomically (temporary file + rename): a header line
        /// "xrnn-vocabulary 1 <num_words> <size>", then one word per line in id order, id 0 first, so the word of
        /// id k is on line k + 2. io_error if the file cannot be written.
        void save(const std::string& path) const
        {
            io::atomic_write_file(path, serialize(), "vocabulary");
        }

        /// Reads what save() wrote. io_error, naming the file and what was expected and found, if it is missing,
        /// truncated, or garbled (wrong header, not UTF-8, reserved words out of place, an empty or repeated word,
        /// data after the last word).
        static vocabulary load(const std::string& path)
        {
            return deserialize(io::read_file(path, max_file_bytes, "vocabulary file"), path);
        }

        /// The text save() writes, for embedding a vocabulary in another file (the IMDB cache does).
        std::string serialize() const
        {
            std::string text = std::string(magic) + " " + std::to_string(format_version) + " "
                               + std::to_string(m_num_words) + " " + std::to_string(m_words.size()) + "\n";
            for (const auto& w : m_words)
            {
                text += w;
                text += '\n';
            }
            return text;
        }

        /// Parses serialize()'s text, with load()'s checks; source_name is used in the messages.
        static vocabulary deserialize(std::string_view text, const std::string& source_name)
        {
            const auto fail = [&](const std::string& what) {
                throw io_error("vocabulary::load: '" + source_name + "' is not a vocabulary file: " + what);
            };
            validate_utf8(text, source_name);
            std::size_t pos = 0;
            const auto next_line = [&](std::string_view& line) {
                const std::size_t end = text.find('\n', pos);
                if (end == std::string::npos)
                {
                    return false;  // no line, or a last line cut before its '\n'
                }
                line = text.substr(pos, end - pos);
                pos = end + 1;
                return true;
            };
            std::string_view line;
            if (!next_line(line))
            {
                fail("expected a header line \"" + std::string(magic) + " <version> <num_words> <size>\" but the file "
                     + (text.empty() ? std::string("is empty") : "has no complete line"));
            }
            const auto fields = split_spaces(line);
            std::uint64_t version = 0;
            std::uint64_t num_words = 0;
            std::uint64_t count = 0;
            if (fields.size() != 4 || fields[0] != magic || !parse_u64(fields[1], version)
                || !parse_u64(fields[2], num_words) || !parse_u64(fields[3], count))
            {
                fail("expected a header line \"" + std::string(magic) + " <version> <num_words> <size>\" but found "
                     + quoted(line.substr(0, 80)));
            }
            if (version != format_version)
            {
                fail("expected format version " + std::to_string(format_version) + " but found "
                     + std::to_string(version));
            }
            if (num_words < 3 || count < 3 || count > num_words)
            {
                fail("expected 3 <= size <= num_words in the header but found num_words " + std::to_string(num_words)
                     + " and size " + std::to_string(count));
            }
            vocabulary vocab;
            vocab.m_num_words = static_cast<std::size_t>(num_words);
            for (std::uint64_t k = 0; k < count; ++k)
            {
                if (!next_line(line))
                {
                    fail("truncated: expected " + std::to_string(count) + " words but found " + std::to_string(k));
                }
                if (k < 3)
                {
                    if (line != vocab.m_words[k])
                    {
                        fail("expected " + quoted(vocab.m_words[k]) + " for id " + std::to_string(k) + " but found "
                             + quoted(line.substr(0, 80)));
                    }
                    continue;
                }
                const std::string w(line);
                if (w.empty() || w.find('\r') != std::string::npos)
                {
                    fail("the word of id " + std::to_string(k) + " is empty or holds a carriage return");
                }
                if (vocab.m_ids.count(w) != 0)
                {
                    fail("the word " + quoted(w) + " appears twice (ids " + std::to_string(vocab.m_ids.at(w)) + " and "
                         + std::to_string(k) + ")");
                }
                vocab.add_word(w);
            }
            if (pos != text.size())
            {
                fail("expected the file to end after " + std::to_string(count) + " words but found "
                     + std::to_string(text.size() - pos) + " more bytes");
            }
            return vocab;
        }

        friend bool operator==(const vocabulary& a, const vocabulary& b)
        {
            return a.m_num_words == b.m_num_words && a.m_words == b.m_words;
        }

        friend bool operator!=(const vocabulary& a, const vocabulary& b)
        {
            return !(a == b);
        }

    private:
        static constexpr const char* magic = "xrnn-vocabulary";
        static constexpr std::uint64_t format_version = 1;
        static constexpr std::size_t max_file_bytes = std::size_t(1) << 30;  // a larger file is refused unread

        void add_word(const std::string& w)
        {
            m_ids.emplace(w, static_cast<std::int32_t>(m_words.size()));
            m_words.push_back(w);
        }

        static void check_num_words(const char* where, std::size_t num_words)
        {
            if (num_words < 3)
            {
                throw value_error(std::string(where) + ": num_words expected >= 3 (ids 0, 1, 2 are reserved) but got "
                                  + std::to_string(num_words));
            }
        }

        /// text in double quotes, with what cannot be seen escaped: control characters (\r, \n, \t, \xNN), a
        /// byte-order mark (\uFEFF), and the quote and backslash themselves.
        static std::string quoted(std::string_view text)
        {
            static const char* const hex = "0123456789ABCDEF";
            std::string out = "\"";
            for (std::size_t i = 0; i < text.size(); ++i)
            {
                const auto c = static_cast<unsigned char>(text[i]);
                if (c == 0xEF && text.substr(i, 3) == "\xEF\xBB\xBF")
                {
                    out += "\\uFEFF";
                    i += 2;
                }
                else if (c == '\r' || c == '\n' || c == '\t')
                {
                    out += c == '\r' ? "\\r" : c == '\n' ? "\\n" : "\\t";
                }
                else if (c < 0x20 || c == 0x7F)
                {
                    out += "\\x";
                    out += hex[c >> 4];
                    out += hex[c & 15];
                }
                else if (c == '"' || c == '\\')
                {
                    out += '\\';
                    out += static_cast<char>(c);
                }
                else
                {
                    out += static_cast<char>(c);
                }
            }
            return out + "\"";
        }

        static void check_word(const char* where, const std::string& w)
        {
            if (w.empty() || w.find_first_of("\r\n") != std::string::npos)
            {
                throw value_error(std::string(where) + ": words expected non-empty and without line breaks but got "
                                  + quoted(w));
            }
        }

        static std::vector<std::string_view> split_spaces(std::string_view line)
        {
            std::vector<std::string_view> fields;
            std::size_t i = 0;
            while (i < line.size())
            {
                while (i < line.size() && line[i] == ' ')
                {
                    ++i;
                }
                const std::size_t start = i;
                while (i < line.size() && line[i] != ' ')
                {
                    ++i;
                }
                if (i > start)
                {
                    fields.push_back(line.substr(start, i - start));
                }
            }
            return fields;
        }

        static bool parse_u64(std::string_view field, std::uint64_t& value)
        {
            const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), value);
            return ec == std::errc() && end == field.data() + field.size();
        }

        std::size_t m_num_words;
        std::vector<std::string> m_words;                        // by id, the reserved three first
        std::unordered_map<std::string, std::int32_t> m_ids;    // word -> id, words only (ids >= 3)
    };
}  // namespace xrnn

#endif
