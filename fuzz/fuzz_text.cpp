// libFuzzer target: the text pipeline (include/xrnn/text/) on arbitrary bytes.
//
// Each input goes through validate_utf8, tokenize, a vocabulary built from its tokens (encode, decode, pad_sequences,
// and a round trip through the vocabulary file format), vocabulary::deserialize of the input itself, and, when it
// starts with the cache's magic, the IMDB cache reader (through a temporary file: the reader takes a path). Allowed
// outcomes are success and xrnn::io_error where the API documents it; other exceptions, broken invariants (a token
// with an upper-case letter, an id outside the vocabulary...), crashes, leaks and undefined behaviour are findings.
//
// Built and run by tools/fuzz.sh; seeds in fuzz/corpus/fuzz_text (short texts, <br /> tags, invalid UTF-8, a
// vocabulary file, a small IMDB cache), made by fuzz/make_corpus.cpp.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <unistd.h>
#include <vector>

#include <xrnn/text/imdb.hpp>
#include <xrnn/text/padding.hpp>
#include <xrnn/text/tokenizer.hpp>
#include <xrnn/text/vocabulary.hpp>

namespace
{
    [[noreturn]] void finding(const char* what, const std::string& detail)
    {
        std::fprintf(stderr, "fuzz_text: %s: %s\n", what, detail.c_str());
        std::abort();
    }

    void check_tokens(const std::vector<std::string>& tokens)
    {
        for (const std::string& token : tokens)
        {
            if (token.empty() || token.front() == '\'' || token.back() == '\'')
            {
                finding("a token is empty or starts or ends with an apostrophe", token);
            }
            for (const char c : token)
            {
                const auto u = static_cast<unsigned char>(c);
                const bool word_byte = (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') || u == '\'' || u >= 0x80;
                if (!word_byte)
                {
                    finding("a token holds an upper-case letter or a separator", token);
                }
            }
        }
    }

    void check_vocabulary(std::string_view text, const std::vector<std::string>& tokens, std::size_t num_words,
                          std::size_t maxlen, bool valid_utf8)
    {
        const xrnn::vocabulary vocab = xrnn::vocabulary::build({tokens}, num_words);
        if (vocab.size() > num_words)
        {
            finding("the vocabulary is larger than num_words", std::to_string(vocab.size()));
        }
        const std::vector<std::int32_t> ids = vocab.encode(text);
        if (ids.size() != tokens.size() + 1 || ids.front() != xrnn::vocabulary::start_id)
        {
            finding("encode does not give the start id and one id per token", std::to_string(ids.size()));
        }
        for (const std::int32_t id : ids)
        {
            if (id < 0 || static_cast<std::size_t>(id) >= vocab.size())
            {
                finding("encode gave an id outside the vocabulary", std::to_string(id));
            }
        }
        (void)vocab.decode(ids);
        const auto padded = xrnn::pad_sequences({ids}, maxlen);
        if (padded.shape()[0] != 1 || padded.shape()[1] != maxlen)
        {
            finding("pad_sequences gave another shape", std::to_string(padded.size()));
        }
        if (valid_utf8)  // the file format is UTF-8: only a vocabulary of UTF-8 words round-trips
        {
            if (!(xrnn::vocabulary::deserialize(vocab.serialize(), "round trip") == vocab))
            {
                finding("a vocabulary does not survive serialize and deserialize", "");
            }
        }
    }

    void check_vocabulary_file(std::string_view text)
    {
        try
        {
            const xrnn::vocabulary vocab = xrnn::vocabulary::deserialize(text, "fuzz input");
            if (!(xrnn::vocabulary::deserialize(vocab.serialize(), "round trip") == vocab))
            {
                finding("a loaded vocabulary does not survive serialize and deserialize", "");
            }
        }
        catch (const xrnn::io_error&)
        {
        }
    }

    /// A file for the cache reader, in memory-backed /dev/shm when there is one; removed at exit.
    const std::string& cache_path()
    {
        static const std::string path = [] {
            namespace fs = std::filesystem;
            const fs::path dir = fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
            return (dir / ("xrnn_fuzz_text_" + std::to_string(getpid()) + ".cache")).string();
        }();
        static const bool registered = (std::atexit([] { std::remove(cache_path().c_str()); }), true);
        (void)registered;
        return path;
    }

    std::uint64_t u64_at(std::string_view bytes, std::size_t offset)
    {
        std::uint64_t v = 0;
        for (std::size_t k = 0; k < 8; ++k)
        {
            v |= std::uint64_t(static_cast<unsigned char>(bytes[offset + k])) << (8 * k);
        }
        return v;
    }

    void check_imdb_cache(std::string_view bytes)
    {
        namespace imdb = xrnn::detail::imdb;
        if (bytes.size() < 12 + 7 * 8 || std::memcmp(bytes.data(), imdb::cache_magic, sizeof imdb::cache_magic) != 0)
        {
            return;
        }
        // The options and the source's fingerprint come from the caller, not the file; taking them from the input's
        // header (within the sizes a real call could have) lets the fuzzer past the staleness checks.
        xrnn::imdb_options options;
        imdb::fingerprint print;
        const std::uint64_t num_words = u64_at(bytes, 12);
        const std::uint64_t maxlen = u64_at(bytes, 20);
        const std::uint64_t files = u64_at(bytes, 44);
        if (num_words >= 3 && num_words <= (1u << 20) && maxlen >= 1 && maxlen <= 4096 && files <= 1000000)
        {
            options.num_words = num_words;
            options.maxlen = maxlen;
            options.seed = u64_at(bytes, 28);
            options.limit_per_split = u64_at(bytes, 36);
            print = imdb::fingerprint{files, u64_at(bytes, 52), u64_at(bytes, 60)};
        }
        {
            std::ofstream out(cache_path(), std::ios::binary | std::ios::trunc);
            out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        }
        std::string why;
        const auto data = imdb::read_cache(cache_path(), options, print, why);
        if (!data)
        {
            return;
        }
        for (const auto* x : {&data->x_train, &data->x_test})
        {
            if (x->shape()[1] != options.maxlen)
            {
                finding("a cached split has another maxlen", std::to_string(x->shape()[1]));
            }
            for (const std::int32_t id : *x)
            {
                if (id < 0 || static_cast<std::size_t>(id) >= data->vocab.size())
                {
                    finding("a cached id is outside the vocabulary", std::to_string(id));
                }
            }
        }
    }
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try
    {
        bool valid = true;
        try
        {
            xrnn::validate_utf8(text, "fuzz input");
        }
        catch (const xrnn::io_error&)
        {
            valid = false;
        }
        const std::vector<std::string> tokens = xrnn::tokenize(text);
        check_tokens(tokens);
        const std::size_t num_words = 3 + (size > 0 ? data[0] % 16 : 0);
        const std::size_t maxlen = 1 + (size > 1 ? data[1] % 8 : 0);
        check_vocabulary(text, tokens, num_words, maxlen, valid);
        check_vocabulary_file(text);
        check_imdb_cache(text);
    }
    catch (const std::exception& e)
    {
        finding("unexpected exception", e.what());
    }
    return 0;
}
