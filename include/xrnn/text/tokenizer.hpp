// xtensor-rnn: text -> word tokens, and the UTF-8 check that guards every file the text pipeline reads.
//
// The tokenizer is deliberately simple and byte-based, so it gives the same tokens on every platform and locale:
//   1. ASCII letters are lowercased (std::tolower would depend on the C locale; bytes >= 0x80 are left as they are).
//   2. The HTML line breaks the IMDB reviews are full of (<br />, <br/>, <br>, any case) become a space, so that
//      "br" does not end up as one of the most frequent words.
//   3. A token is a maximal run of ASCII letters, digits, apostrophes and bytes >= 0x80 (the bytes of UTF-8
//      multibyte characters such as "é", which keeps "café" one word); every other byte separates tokens.
//   4. Apostrophes at either end of a token are quotes, not part of the word: "'hello'" -> "hello", while
//      "don't" keeps its inner apostrophe. A token of apostrophes only is dropped.
#ifndef XRNN_TEXT_TOKENIZER_HPP
#define XRNN_TEXT_TOKENIZER_HPP

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <xrnn/config.hpp>

namespace xrnn
{
    namespace detail
    {
        inline char ascii_lower(char c) noexcept
        {
            return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
        }

        /// Letters, digits, apostrophes and bytes >= 0x80 make up words; everything else separates them.
        inline bool is_word_byte(char c) noexcept
        {
            const auto u = static_cast<unsigned char>(c);
            return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || u == '\''
                   || u >= 0x80;
        }

        /// Length of the <br>, <br/> or <br /> tag (any case) that starts at text[pos], or 0 if there is none.
        inline std::size_t br_tag_length(std::string_view text, std::size_t pos) noexcept
        {
            static constexpr std::string_view tags[] = {"<br />", "<br/>", "<br>"};
            for (std::string_view tag : tags)
            {
                if (text.size() - pos < tag.size())
                {
                    continue;
                }
                bool match = true;
                for (std::size_t k = 0; k < tag.size() && match; ++k)
                {
                    match = ascii_lower(text[pos + k]) == tag[k];
                }
                if (match)
                {
                    return tag.size();
                }
            }
            return 0;
        }

        /// Calls f(std::string_view token) for each token of text, in order (the views point into a buffer that
        /// is reused: copy what you keep). tokenize() and the IMDB reader share this, so they cannot disagree.
        template <class F>
        void for_each_token(std::string_view text, F&& f)
        {
            std::string token;
            const auto flush = [&]() {
                std::size_t begin = 0;
                std::size_t end = token.size();
                while (begin < end && token[begin] == '\'')
                {
                    ++begin;
                }
                while (end > begin && token[end - 1] == '\'')
                {
                    --end;
                }
                if (begin < end)
                {
                    f(std::string_view(token).substr(begin, end - begin));
                }
                token.clear();
            };
            for (std::size_t i = 0; i < text.size();)
            {
                const char c = text[i];
                if (c == '<')
                {
                    const std::size_t tag = br_tag_length(text, i);
                    if (tag != 0)
                    {
                        flush();
                        i += tag;
                        continue;
                    }
                }
                if (is_word_byte(c))
                {
                    token.push_back(ascii_lower(c));
                }
                else
                {
                    flush();
                }
                ++i;
            }
            flush();
        }
    }  // namespace detail

    /// Splits text into lowercase word tokens (rules at the top of this header).
    /// tokenize("I didn't like it.<br /><br />'Great' acting, though!") ->
    ///   {"i", "didn't", "like", "it", "great", "acting", "though"}
    inline std::vector<std::string> tokenize(std::string_view text)
    {
        std::vector<std::string> tokens;
        detail::for_each_token(text, [&](std::string_view token) { tokens.emplace_back(token); });
        return tokens;
    }

    namespace detail
    {
        /// Byte offset of the first invalid UTF-8 sequence in text (text.size() when it is all valid), and why.
        /// Follows Table 3-7 of the Unicode Standard: no overlong forms, no surrogates (U+D800..U+DFFF), nothing
        /// above U+10FFFF, no stray continuation bytes, no sequence cut short.
        inline std::size_t find_invalid_utf8(std::string_view text, const char** reason) noexcept
        {
            const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
            const auto is_cont = [](unsigned char b) { return (b & 0xC0u) == 0x80u; };
            std::size_t i = 0;
            const std::size_t n = text.size();
            while (i < n)
            {
                const unsigned char b0 = byte(i);
                if (b0 < 0x80)
                {
                    ++i;
                    continue;
                }
                std::size_t length = 0;
                unsigned char low = 0x80;  // allowed range of the second byte
                unsigned char high = 0xBF;
                const char* second_error = "truncated sequence";
                if (b0 >= 0x80 && b0 <= 0xBF)
                {
                    *reason = "unexpected continuation byte";
                    return i;
                }
                else if (b0 == 0xC0 || b0 == 0xC1)
                {
                    *reason = "overlong encoding";
                    return i;
                }
                else if (b0 <= 0xDF)
                {
                    length = 2;
                }
                else if (b0 <= 0xEF)
                {
                    length = 3;
                    if (b0 == 0xE0)
                    {
                        low = 0xA0;
                        second_error = "overlong encoding";
                    }
                    else if (b0 == 0xED)
                    {
                        high = 0x9F;
                        second_error = "surrogate code point";
                    }
                }
                else if (b0 <= 0xF4)
                {
                    length = 4;
                    if (b0 == 0xF0)
                    {
                        low = 0x90;
                        second_error = "overlong encoding";
                    }
                    else if (b0 == 0xF4)
                    {
                        high = 0x8F;
                        second_error = "code point above U+10FFFF";
                    }
                }
                else
                {
                    *reason = b0 <= 0xF7 ? "code point above U+10FFFF" : "invalid lead byte";
                    return i;
                }
                // Second byte: a continuation byte, within the lead byte's narrower range when it has one.
                if (i + 1 >= n || !is_cont(byte(i + 1)))
                {
                    *reason = "truncated sequence";
                    return i;
                }
                if (byte(i + 1) < low || byte(i + 1) > high)
                {
                    *reason = second_error;
                    return i;
                }
                for (std::size_t k = 2; k < length; ++k)
                {
                    if (i + k >= n || !is_cont(byte(i + k)))
                    {
                        *reason = "truncated sequence";
                        return i;
                    }
                }
                i += length;
            }
            *reason = nullptr;
            return n;
        }
    }  // namespace detail

    /// Throws io_error unless text is valid UTF-8. The message names source (a file name, say) and the byte offset
    /// of the first invalid sequence, so the culprit can be found with a hex viewer:
    ///   "validate_utf8: 'train/pos/7_8.txt' is not valid UTF-8: surrogate code point at byte offset 120 (bytes ed a0 80)"
    inline void validate_utf8(std::string_view text, const std::string& source_name)
    {
        const char* reason = nullptr;
        const std::size_t offset = detail::find_invalid_utf8(text, &reason);
        if (offset == text.size())
        {
            return;
        }
        std::string bytes;
        for (std::size_t k = offset; k < text.size() && k < offset + 4; ++k)
        {
            char hex[4];
            std::snprintf(hex, sizeof hex, "%02x", static_cast<unsigned>(static_cast<unsigned char>(text[k])));
            bytes += (k == offset ? "" : " ");
            bytes += hex;
        }
        throw io_error("validate_utf8: '" + source_name + "' is not valid UTF-8: " + reason + " at byte offset "
                       + std::to_string(offset) + " (bytes " + bytes + ")");
    }
}  // namespace xrnn

#endif
