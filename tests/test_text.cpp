// text/: tokenizer and UTF-8 check, vocabulary (numbering, ties, num_words, files), pad_sequences against Keras's
// results, and load_imdb on a small aclImdb tree written to a temporary directory (layout, labels, padding,
// shuffle, cache, errors). Set XRNN_IMDB_DIR to an unpacked aclImdb to also check the real dataset.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <numeric>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <sys/resource.h>

#include <doctest/doctest.h>

#include <xtensor/xmath.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <xrnn/io/binary.hpp>
#include <xrnn/random.hpp>
#include <xrnn/text/imdb.hpp>
#include <xrnn/text/padding.hpp>
#include <xrnn/text/tokenizer.hpp>
#include <xrnn/text/vocabulary.hpp>

namespace fs = std::filesystem;

namespace
{
    using strings = std::vector<std::string>;
    using ids = std::vector<std::int32_t>;

    /// Runs f, requires an exception of type E, and returns its message.
    template <class E, class F>
    std::string message_of(F&& f)
    {
        try
        {
            f();
        }
        catch (const E& e)
        {
            return e.what();
        }
        FAIL("expected an exception");
        return {};
    }

    bool contains(const std::string& text, const std::string& part)
    {
        return text.find(part) != std::string::npos;
    }

    /// A fresh directory under the system's temporary directory, removed with everything in it at scope exit.
    struct temp_dir
    {
        fs::path path;

        temp_dir()
        {
            static int counter = 0;
            const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
            path = fs::temp_directory_path()
                   / ("xrnn_test_text_" + std::to_string(stamp) + "_" + std::to_string(counter++));
            fs::create_directories(path);
        }

        ~temp_dir()
        {
            std::error_code ec;
            fs::remove_all(path, ec);
        }

        temp_dir(const temp_dir&) = delete;
        temp_dir& operator=(const temp_dir&) = delete;
    };

    void write_file(const fs::path& path, const std::string& bytes)
    {
        fs::create_directories(path.parent_path());
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        REQUIRE(out.good());
    }

    std::string read_bytes(const fs::path& path)
    {
        std::ifstream in(path, std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }

    /// Files in dir whose name holds ".tmp" (what an atomic write must not leave behind).
    std::size_t leftover_temporaries(const fs::path& dir)
    {
        std::size_t n = 0;
        for (const auto& entry : fs::directory_iterator(dir))
        {
            n += contains(entry.path().filename().string(), ".tmp") ? 1 : 0;
        }
        return n;
    }

    template <class A, class B>
    bool same_array(const A& a, const B& b)
    {
        return a.shape() == b.shape() && std::equal(a.begin(), a.end(), b.begin());
    }

    // ---- a small aclImdb tree -----------------------------------------------------------------------------------
    // Every positive review holds "great" and no negative one does, so a row's label can be read from its words.
    // File names are chosen so that sorted order is not the order they are written in.
    const std::vector<std::pair<std::string, std::string>> train_pos = {
        {"3_9.txt", "Great movie, GREAT acting!<br /><br />Loved it."},
        {"10_8.txt", "A great film. Loved the cast, loved the music, loved the story and the ending."},
        {"1_10.txt", "Wonderful! great great story"},
    };
    const std::vector<std::pair<std::string, std::string>> train_neg = {
        {"2_1.txt", "Terrible movie. Bad acting, bad plot."},
        {"0_3.txt", "Bad. Boring and bad.<br/>The worst film of the year, and the music was bad too."},
        {"11_2.txt", "The worst film; terrible"},
    };
    const std::vector<std::pair<std::string, std::string>> test_pos = {
        {"5_7.txt", "Great cast and a great unseenword story."},
        {"4_10.txt", "Loved it: great!"},
    };
    const std::vector<std::pair<std::string, std::string>> test_neg = {
        {"7_2.txt", "Bad film, anotherunseenword."},
        {"6_1.txt", "Boring. The worst."},
    };

    /// Writes <root>/aclImdb/{train,test}/{pos,neg}/*.txt (plus files load_imdb must ignore) and returns aclImdb.
    fs::path write_tree(const fs::path& root)
    {
        const fs::path acl = root / "aclImdb";
        const auto put = [&](const char* split, const char* label, const auto& reviews) {
            for (const auto& [name, text] : reviews)
            {
                write_file(acl / split / label / name, text);
            }
        };
        put("train", "pos", train_pos);
        put("train", "neg", train_neg);
        put("test", "pos", test_pos);
        put("test", "neg", test_neg);
        write_file(acl / "README", "not a review");
        write_file(acl / "train" / "pos" / "notes.md", "not a review either: not *.txt");
        fs::create_directories(acl / "train" / "neg" / "subdir.txt");  // a directory named like a review
        return acl;
    }

    /// The texts of reviews in the order load_imdb reads them: sorted by file name.
    strings sorted_texts(std::vector<std::pair<std::string, std::string>> reviews, std::size_t limit = 0)
    {
        std::sort(reviews.begin(), reviews.end());
        strings texts;
        for (const auto& r : reviews)
        {
            texts.push_back(r.second);
        }
        if (limit != 0 && texts.size() > limit)
        {
            texts.resize(limit);
        }
        return texts;
    }

    /// The rows load_imdb must produce for texts with a label (before shuffling): encode, then front pad/truncate.
    std::multiset<std::pair<ids, float>> expected_rows(const xrnn::vocabulary& vocab, const strings& neg,
                                                       const strings& pos, std::size_t maxlen)
    {
        std::multiset<std::pair<ids, float>> rows;
        for (const auto* texts : {&neg, &pos})
        {
            for (const auto& text : *texts)
            {
                const auto padded = xrnn::pad_sequences({vocab.encode(text)}, maxlen);
                rows.insert({ids(padded.begin(), padded.end()), texts == &pos ? 1.0f : 0.0f});
            }
        }
        return rows;
    }

    std::multiset<std::pair<ids, float>> actual_rows(const xt::xtensor<std::int32_t, 2>& x,
                                                     const xt::xtensor<float, 2>& y)
    {
        std::multiset<std::pair<ids, float>> rows;
        const std::size_t maxlen = x.shape()[1];
        for (std::size_t i = 0; i < x.shape()[0]; ++i)
        {
            rows.insert({ids(x.data() + i * maxlen, x.data() + (i + 1) * maxlen), y(i, 0)});
        }
        return rows;
    }

    /// Every row is [0...0, 1, w...] (padding, start, words with no padding among them) or, if the review was cut,
    /// words only; every id is a word id below the vocabulary's size and num_words.
    void check_row_structure(const xt::xtensor<std::int32_t, 2>& x, const xrnn::vocabulary& vocab)
    {
        std::size_t bad = 0;
        for (std::size_t i = 0; i < x.shape()[0]; ++i)
        {
            std::size_t k = 0;
            while (k < x.shape()[1] && x(i, k) == 0)
            {
                ++k;
            }
            if (k > 0 && (k == x.shape()[1] || x(i, k) != 1))
            {
                ++bad;  // padding must be followed by the start token
            }
            for (std::size_t j = k; j < x.shape()[1]; ++j)
            {
                const auto id = x(i, j);
                bad += (id <= 0 || static_cast<std::size_t>(id) >= vocab.size()
                        || static_cast<std::size_t>(id) >= vocab.num_words() || (j > k && id == 1))
                           ? 1
                           : 0;
            }
        }
        CHECK(bad == 0);
    }

    /// The Fisher-Yates permutation documented in imdb.hpp, written out again here so that a change of the
    /// algorithm (which would change every user's data order) fails this test.
    std::vector<std::size_t> reference_shuffle(std::size_t n, xrnn::random_engine& rng)
    {
        std::vector<std::size_t> order(n);
        std::iota(order.begin(), order.end(), std::size_t(0));
        for (std::size_t i = n - 1; i >= 1; --i)
        {
            std::swap(order[i], order[static_cast<std::size_t>(rng.below(i + 1))]);
        }
        return order;
    }

    void check_same_dataset(const xrnn::imdb_dataset& a, const xrnn::imdb_dataset& b)
    {
        CHECK(same_array(a.x_train, b.x_train));
        CHECK(same_array(a.y_train, b.y_train));
        CHECK(same_array(a.x_test, b.x_test));
        CHECK(same_array(a.y_test, b.y_test));
        CHECK(a.vocab == b.vocab);
    }
}  // namespace

// ---- tokenizer ------------------------------------------------------------------------------------------------

TEST_CASE("tokenize: HTML line breaks in every spelling separate words and leave no 'br' token")
{
    CHECK(xrnn::tokenize("Great<br /><br />movie<br/>really<br>good<BR />fun<Br/>end")
          == strings{"great", "movie", "really", "good", "fun", "end"});
    // Other tags are not special: their brackets and slashes are punctuation.
    CHECK(xrnn::tokenize("<b>bold</b> <brother>") == strings{"b", "bold", "b", "brother"});
    // A tag cut short at the end of the text is punctuation plus a word.
    CHECK(xrnn::tokenize("end<br") == strings{"end", "br"});
}

TEST_CASE("tokenize: punctuation and whitespace separate tokens; digits stay in words")
{
    CHECK(xrnn::tokenize("Hello, world! It's 10/10...\t(really)\n\"yes\"-no;ok:fine?")
          == strings{"hello", "world", "it's", "10", "10", "really", "yes", "no", "ok", "fine"});
    CHECK(xrnn::tokenize("b-movie 1950s") == strings{"b", "movie", "1950s"});
    CHECK(xrnn::tokenize("").empty());
    CHECK(xrnn::tokenize(" \t\n.,;!? <br /> ").empty());
}

TEST_CASE("tokenize: apostrophes inside words stay, at the ends they are stripped")
{
    CHECK(xrnn::tokenize("'hello' don't ''' rock'n'roll' 'tis ''quoted''")
          == strings{"hello", "don't", "rock'n'roll", "tis", "quoted"});
}

TEST_CASE("tokenize: ASCII letters are lowercased, UTF-8 letters kept whole inside words")
{
    CHECK(xrnn::tokenize("ThE MoViE") == strings{"the", "movie"});
    // "Café Déjà-vu naïve": é = c3 a9, à = c3 a0, ï = c3 af.
    CHECK(xrnn::tokenize("Caf\xC3\xA9 D\xC3\xA9j\xC3\xA0-vu na\xC3\xAF" "ve")
          == strings{"caf\xC3\xA9", "d\xC3\xA9j\xC3\xA0", "vu", "na\xC3\xAF" "ve"});
    // Only ASCII is lowercased: "CAFÉ" -> "cafÉ" (É = c3 89), the same on every locale.
    CHECK(xrnn::tokenize("CAF\xC3\x89") == strings{"caf\xC3\x89"});
}

TEST_CASE("validate_utf8: accepts ASCII and well-formed sequences up to U+10FFFF")
{
    CHECK_NOTHROW(xrnn::validate_utf8("", "empty"));
    CHECK_NOTHROW(xrnn::validate_utf8("plain ASCII, with <br /> and \t\n", "ascii"));
    CHECK_NOTHROW(xrnn::validate_utf8("caf\xC3\xA9", "2 bytes"));                  // U+00E9
    CHECK_NOTHROW(xrnn::validate_utf8("\xC2\x80 \xDF\xBF", "2-byte bounds"));     // U+0080, U+07FF
    CHECK_NOTHROW(xrnn::validate_utf8("\xE2\x82\xAC", "euro"));                   // U+20AC
    CHECK_NOTHROW(xrnn::validate_utf8("\xE0\xA0\x80 \xED\x9F\xBF \xEE\x80\x80 \xEF\xBF\xBF", "3-byte bounds"));
    CHECK_NOTHROW(xrnn::validate_utf8("\xF0\x9D\x84\x9E", "clef"));               // U+1D11E
    CHECK_NOTHROW(xrnn::validate_utf8("\xF0\x90\x80\x80 \xF4\x8F\xBF\xBF", "4-byte bounds"));  // U+10000, U+10FFFF
}

TEST_CASE("validate_utf8: each kind of invalid sequence is an io_error naming the source, the offset and why")
{
    const auto reject = [](const std::string& text) {
        return message_of<xrnn::io_error>([&] { xrnn::validate_utf8(text, "reviews/7_8.txt"); });
    };
    const struct
    {
        std::string text;
        const char* reason;
        const char* offset;
    } cases[] = {
        {"ab\x80", "unexpected continuation byte", "at byte offset 2 "},
        {"\xBF", "unexpected continuation byte", "at byte offset 0 "},
        {"x\xC0\xAF", "overlong encoding", "at byte offset 1 "},          // '/' in two bytes
        {"xy\xC1\xBF", "overlong encoding", "at byte offset 2 "},
        {"\xE0\x80\xAF", "overlong encoding", "at byte offset 0 "},       // '/' in three bytes
        {"\xE0\x9F\xBF", "overlong encoding", "at byte offset 0 "},       // U+07FF in three bytes
        {"\xF0\x80\x80\xAF", "overlong encoding", "at byte offset 0 "},   // '/' in four bytes
        {"\xF0\x8F\xBF\xBF", "overlong encoding", "at byte offset 0 "},   // U+FFFF in four bytes
        {"ok \xED\xA0\x80", "surrogate code point", "at byte offset 3 "}, // U+D800
        {"\xED\xBF\xBF", "surrogate code point", "at byte offset 0 "},    // U+DFFF
        {"\xF4\x90\x80\x80", "code point above U+10FFFF", "at byte offset 0 "},
        {"\xF5\x80\x80\x80", "code point above U+10FFFF", "at byte offset 0 "},
        {"\xF8\x88\x80\x80\x80", "invalid lead byte", "at byte offset 0 "},
        {"\xFF", "invalid lead byte", "at byte offset 0 "},
        {"caf\xC3", "truncated sequence", "at byte offset 3 "},           // cut at the end of the text
        {"\xE2\x82", "truncated sequence", "at byte offset 0 "},
        {"\xF0\x9D\x84", "truncated sequence", "at byte offset 0 "},
        {"\xE2\x28\xA1", "truncated sequence", "at byte offset 0 "},      // a non-continuation byte inside
        {"\xC3" "a", "truncated sequence", "at byte offset 0 "},
        {"\xC3\xA9\xC3\xA9 \xF0\x9D\x84\x9E x\xE2\x82\xACz\x80", "unexpected continuation byte", "at byte offset 15 "},
    };
    for (const auto& c : cases)
    {
        const std::string reason = c.reason;
        const std::string offset = c.offset;
        CAPTURE(reason);
        CAPTURE(offset);
        const std::string text = reject(c.text);
        CHECK(contains(text, "'reviews/7_8.txt' is not valid UTF-8"));
        CHECK(contains(text, c.reason));
        CHECK(contains(text, c.offset));
    }
    CHECK(reject("ok \xED\xA0\x80")
          == "validate_utf8: 'reviews/7_8.txt' is not valid UTF-8: surrogate code point at byte offset 3 (bytes ed a0 80)");
}

// ---- vocabulary -----------------------------------------------------------------------------------------------

TEST_CASE("vocabulary: reserved ids 0, 1, 2, then words by decreasing count, ties in byte order")
{
    // Counts: a 3, b 2, then c, d, "é", z once each; byte order puts "z" (7a) before "é" (c3 a9).
    const std::vector<strings> texts = {{"b", "a", "z", "a"}, {"d", "b", "\xC3\xA9", "a", "c"}};
    const auto vocab = xrnn::vocabulary::build(texts, 100);
    CHECK(vocab.size() == 9);
    CHECK(vocab.num_words() == 100);
    CHECK(vocab.word(0) == "<pad>");
    CHECK(vocab.word(1) == "<start>");
    CHECK(vocab.word(2) == "<oov>");
    const strings by_id = {"a", "b", "c", "d", "z", "\xC3\xA9"};
    for (std::size_t k = 0; k < by_id.size(); ++k)
    {
        CAPTURE(k);
        CHECK(vocab.word(static_cast<std::int32_t>(k + 3)) == by_id[k]);
        CHECK(vocab.id(by_id[k]) == static_cast<std::int32_t>(k + 3));
    }
    CHECK(vocab.id("unknown") == xrnn::vocabulary::oov_id);
    CHECK(vocab.id("") == xrnn::vocabulary::oov_id);
    CHECK(vocab.id("<pad>") == xrnn::vocabulary::oov_id);  // the reserved names are not words
}

TEST_CASE("vocabulary: the ranking does not depend on the order of the texts or of the tokens")
{
    const std::vector<strings> texts = {{"x", "y", "w", "v"}, {"y", "v", "u"}, {"w", "t", "s"}};
    std::vector<strings> reordered = {texts[2], texts[0], texts[1]};
    for (auto& t : reordered)
    {
        std::reverse(t.begin(), t.end());
    }
    const auto a = xrnn::vocabulary::build(texts, 50);
    const auto b = xrnn::vocabulary::build(reordered, 50);
    CHECK(a == b);
    // v, w, y twice (in byte order), then s, t, u, x once.
    CHECK(a.decode(ids{3, 4, 5, 6, 7, 8, 9}) == "v w y s t u x");
}

TEST_CASE("vocabulary: num_words keeps ids below it; less frequent words become <oov>")
{
    const std::vector<strings> texts = {{"a", "a", "a", "b", "b", "c", "d"}};
    const auto vocab = xrnn::vocabulary::build(texts, 5);  // ids 0..4: the words a and b
    CHECK(vocab.size() == 5);
    CHECK(vocab.num_words() == 5);
    CHECK(vocab.id("a") == 3);
    CHECK(vocab.id("b") == 4);
    CHECK(vocab.id("c") == 2);
    CHECK(vocab.id("d") == 2);
    CHECK_THROWS_AS(vocab.word(5), xrnn::value_error);

    const auto reserved_only = xrnn::vocabulary::build(texts, 3);
    CHECK(reserved_only.size() == 3);
    CHECK(reserved_only.id("a") == 2);

    const std::string text = message_of<xrnn::value_error>([&] { xrnn::vocabulary::build(texts, 2); });
    CHECK(text == "vocabulary::build: num_words expected >= 3 (ids 0, 1, 2 are reserved) but got 2");
    CHECK_THROWS_AS(xrnn::vocabulary::build(texts, 0), xrnn::value_error);
}

TEST_CASE("vocabulary: word() of an id outside [0, size) is a value_error naming the range")
{
    const auto vocab = xrnn::vocabulary::build({{"a"}}, 10);
    CHECK(message_of<xrnn::value_error>([&] { vocab.word(4); })
          == "vocabulary::word: id expected in [0, 4) but got 4");
    CHECK(message_of<xrnn::value_error>([&] { vocab.word(-1); })
          == "vocabulary::word: id expected in [0, 4) but got -1");
    CHECK_THROWS_AS(xrnn::vocabulary::build({{"a", ""}}, 10), xrnn::value_error);          // could not be saved
    CHECK_THROWS_AS(xrnn::vocabulary::build({{"a", "line\nbreak"}}, 10), xrnn::value_error);
}

TEST_CASE("vocabulary: from_counts ranks like build and ignores zero counts")
{
    const auto counted = xrnn::vocabulary::from_counts({{"b", 2}, {"a", 2}, {"c", 5}, {"never", 0}}, 10);
    CHECK(counted == xrnn::vocabulary::build({{"c", "a", "b", "c", "c", "b"}, {"c", "a", "c"}}, 10));
    CHECK(counted.decode(ids{3, 4, 5}) == "c a b");
    CHECK(counted.size() == 6);
}

TEST_CASE("vocabulary: encode tokenizes and puts the start token first; decode prints ids back")
{
    const auto vocab = xrnn::vocabulary::build({xrnn::tokenize("the film, the cast: the end. A film!")}, 100);
    // the 3, film 4, a 5, cast 6, end 7.
    CHECK(vocab.encode("The FILM<br />was... unknown; a cast") == ids{1, 3, 4, 2, 2, 5, 6});
    CHECK(vocab.encode("") == ids{1});
    CHECK(vocab.encode("?!") == ids{1});
    CHECK(vocab.decode(ids{0, 0, 1, 3, 4, 2, 7}) == "<start> the film <oov> end");
    CHECK(vocab.decode(ids{}) == "");
    // decode takes any range of integers, a row of an xtensor included.
    const xt::xtensor<std::int32_t, 2> batch{{0, 1, 6}, {1, 5, 4}};
    CHECK(vocab.decode(xt::row(batch, 1)) == "<start> a film");
    CHECK(message_of<xrnn::value_error>([&] { vocab.decode(ids{1, 8}); })
          == "vocabulary::decode: id expected in [0, 8) but got 8");
    CHECK_THROWS_AS(vocab.decode(ids{-3}), xrnn::value_error);
}

TEST_CASE("vocabulary: save and load round trip, through an atomic write")
{
    temp_dir dir;
    const auto vocab = xrnn::vocabulary::build({xrnn::tokenize("b a a c caf\xC3\xA9 don't b a")}, 6);
    const std::string path = (dir.path / "vocab.txt").string();
    vocab.save(path);
    CHECK(read_bytes(path) == "xrnn-vocabulary 1 6 6\n<pad>\n<start>\n<oov>\na\nb\nc\n");
    const auto loaded = xrnn::vocabulary::load(path);
    CHECK(loaded == vocab);
    CHECK(loaded.num_words() == 6);
    CHECK(loaded.id("b") == 4);
    CHECK(loaded.id("caf\xC3\xA9") == 2);

    // Saving again replaces the file and leaves no temporary behind.
    const auto bigger = xrnn::vocabulary::build({xrnn::tokenize("b a a c caf\xC3\xA9 don't b a")}, 100);
    bigger.save(path);
    CHECK(xrnn::vocabulary::load(path) == bigger);
    CHECK(xrnn::vocabulary::load(path).id("caf\xC3\xA9") != 2);
    CHECK(leftover_temporaries(dir.path) == 0);
    CHECK(xrnn::vocabulary::load(path) != vocab);
}

TEST_CASE("vocabulary: a missing, truncated or garbled file is an io_error naming it")
{
    temp_dir dir;
    const std::string path = (dir.path / "vocab.txt").string();
    const std::string good = "xrnn-vocabulary 1 10 5\n<pad>\n<start>\n<oov>\nthe\nfilm\n";
    write_file(path, good);
    REQUIRE(xrnn::vocabulary::load(path).size() == 5);

    CHECK(contains(message_of<xrnn::io_error>([&] { xrnn::vocabulary::load((dir.path / "none.txt").string()); }),
                   "none.txt"));
    const struct
    {
        std::string bytes;
        const char* expected;
    } cases[] = {
        {"", "is empty"},
        {good.substr(0, good.size() - 5), "truncated: expected 5 words but found 4"},     // last line gone
        {good.substr(0, good.size() - 1), "truncated: expected 5 words but found 4"},     // its '\n' gone
        {"xrnn-vocabulary 1 10 5", "has no complete line"},
        {"vocabulary 1 10 5\n<pad>\n<start>\n<oov>\nthe\nfilm\n", "expected a header line"},
        {"xrnn-vocabulary 2 10 5\n<pad>\n<start>\n<oov>\nthe\nfilm\n", "expected format version 1 but found 2"},
        {"xrnn-vocabulary 1 ten 5\n<pad>\n<start>\n<oov>\nthe\nfilm\n", "expected a header line"},
        {"xrnn-vocabulary 1 4 5\n<pad>\n<start>\n<oov>\nthe\nfilm\n", "3 <= size <= num_words"},
        {"xrnn-vocabulary 1 10 2\n<pad>\n<start>\n", "3 <= size <= num_words"},
        {"xrnn-vocabulary 1 10 5\n<pad>\n<oov>\n<start>\nthe\nfilm\n", "expected \"<start>\" for id 1"},
        {"xrnn-vocabulary 1 10 5\n<pad>\n<start>\n<oov>\nthe\nthe\n", "appears twice (ids 3 and 4)"},
        {"xrnn-vocabulary 1 10 5\n<pad>\n<start>\n<oov>\n\nfilm\n", "empty"},
        {"xrnn-vocabulary 1 10 5\n<pad>\n<start>\n<oov>\nthe\r\nfilm\n", "carriage return"},
        {good + "extra\n", "to end after 5 words but found 6 more bytes"},
        {"xrnn-vocabulary 1 10 5\n<pad>\n<start>\n<oov>\nth\xC3\n", "not valid UTF-8"},
    };
    for (const auto& c : cases)
    {
        const std::string expected = c.expected;
        CAPTURE(expected);
        write_file(path, c.bytes);
        const std::string text = message_of<xrnn::io_error>([&] { xrnn::vocabulary::load(path); });
        CHECK(contains(text, path));
        CHECK(contains(text, c.expected));
    }
}

// ---- pad_sequences (expected arrays are what keras.utils.pad_sequences returns) --------------------------------

TEST_CASE("pad_sequences: pre/post padding and truncation as Keras")
{
    const std::vector<ids> seqs = {{1, 2, 3}, {1, 2, 3, 4, 5, 6}, {}, {7}, {8, 9, 10, 11}};
    using array = xt::xtensor<std::int32_t, 2>;
    // pad_sequences(seqs, maxlen=4)  (padding='pre', truncating='pre')
    CHECK(xrnn::pad_sequences(seqs, 4)
          == array{{0, 1, 2, 3}, {3, 4, 5, 6}, {0, 0, 0, 0}, {0, 0, 0, 7}, {8, 9, 10, 11}});
    // padding='post'
    CHECK(xrnn::pad_sequences(seqs, 4, xrnn::padding::post)
          == array{{1, 2, 3, 0}, {3, 4, 5, 6}, {0, 0, 0, 0}, {7, 0, 0, 0}, {8, 9, 10, 11}});
    // truncating='post'
    CHECK(xrnn::pad_sequences(seqs, 4, xrnn::padding::pre, xrnn::truncating::post)
          == array{{0, 1, 2, 3}, {1, 2, 3, 4}, {0, 0, 0, 0}, {0, 0, 0, 7}, {8, 9, 10, 11}});
    // padding='post', truncating='post', value=-1
    CHECK(xrnn::pad_sequences(seqs, 4, xrnn::padding::post, xrnn::truncating::post, -1)
          == array{{1, 2, 3, -1}, {1, 2, 3, 4}, {-1, -1, -1, -1}, {7, -1, -1, -1}, {8, 9, 10, 11}});
    // maxlen=1 and a maxlen longer than every sequence
    CHECK(xrnn::pad_sequences(seqs, 1) == array{{3}, {6}, {0}, {7}, {11}});
    CHECK(xrnn::pad_sequences({{5, 6}}, 7) == array{{0, 0, 0, 0, 0, 5, 6}});
    CHECK(xrnn::pad_sequences({{5, 6}}, 7, xrnn::padding::post) == array{{5, 6, 0, 0, 0, 0, 0}});
}

TEST_CASE("pad_sequences: no sequences give (0, maxlen); maxlen 0 is a value_error")
{
    const auto empty = xrnn::pad_sequences({}, 5);
    CHECK(empty.shape()[0] == 0);
    CHECK(empty.shape()[1] == 5);
    CHECK(message_of<xrnn::value_error>([] { xrnn::pad_sequences({{1}}, 0); })
          == "pad_sequences: maxlen expected >= 1 but got 0");
}

// ---- load_imdb on a small synthetic tree -----------------------------------------------------------------------

TEST_CASE("load_imdb: shapes, labels, vocabulary from training reviews only, encoding and front padding")
{
    temp_dir dir;
    const fs::path acl = write_tree(dir.path);
    xrnn::imdb_options options;
    options.maxlen = 12;
    const auto data = xrnn::load_imdb(acl.string(), options);
    CHECK_FALSE(data.from_cache);
    CHECK(data.cache_note.empty());
    REQUIRE(data.x_train.shape()[0] == 6);
    REQUIRE(data.x_train.shape()[1] == 12);
    REQUIRE(data.y_train.shape()[0] == 6);
    REQUIRE(data.y_train.shape()[1] == 1);
    REQUIRE(data.x_test.shape()[0] == 4);
    REQUIRE(data.x_test.shape()[1] == 12);
    REQUIRE(data.y_test.shape()[0] == 4);
    CHECK(std::count(data.y_train.begin(), data.y_train.end(), 1.0f) == 3);
    CHECK(std::count(data.y_train.begin(), data.y_train.end(), 0.0f) == 3);
    CHECK(std::count(data.y_test.begin(), data.y_test.end(), 1.0f) == 2);

    // The vocabulary is the one build() gives on the training reviews' tokens, and knows no test-only word.
    std::vector<strings> train_tokens;
    for (const auto* reviews : {&train_pos, &train_neg})
    {
        for (const auto& r : *reviews)
        {
            train_tokens.push_back(xrnn::tokenize(r.second));
        }
    }
    CHECK(data.vocab == xrnn::vocabulary::build(train_tokens, options.num_words));
    CHECK(data.vocab.word(3) == "the");  // the most frequent training word
    CHECK(data.vocab.id("unseenword") == xrnn::vocabulary::oov_id);
    CHECK(data.vocab.id("bad") > 2);

    // Each row is its review encoded with the start token and padded/truncated at the front, with its label.
    CHECK(actual_rows(data.x_train, data.y_train)
          == expected_rows(data.vocab, sorted_texts(train_neg), sorted_texts(train_pos), 12));
    CHECK(actual_rows(data.x_test, data.y_test)
          == expected_rows(data.vocab, sorted_texts(test_neg), sorted_texts(test_pos), 12));
    check_row_structure(data.x_train, data.vocab);
    check_row_structure(data.x_test, data.vocab);

    // Spot checks written out: the short test review "Loved it: great!" is [0 x 8, 1, loved, it, great].
    const ids loved_row = {0, 0, 0, 0, 0, 0, 0, 0, 1, data.vocab.id("loved"), data.vocab.id("it"),
                           data.vocab.id("great")};
    CHECK(actual_rows(data.x_test, data.y_test).count({loved_row, 1.0f}) == 1);
    // The long review (start + 15 words) keeps its last 12 ids: truncated at the front, start token gone.
    const auto long_ids = data.vocab.encode(train_pos[1].second);
    REQUIRE(long_ids.size() == 16);
    const ids long_row(long_ids.end() - 12, long_ids.end());
    CHECK(actual_rows(data.x_train, data.y_train).count({long_row, 1.0f}) == 1);
    // Only positive reviews hold "great" (all but the truncated one keep it): a row's words and label agree.
    const auto great = data.vocab.id("great");
    std::size_t rows_with_great = 0;
    for (std::size_t i = 0; i < 6; ++i)
    {
        if (std::count(&data.x_train(i, 0), &data.x_train(i, 0) + 12, great) > 0)
        {
            ++rows_with_great;
            CHECK(data.y_train(i, 0) == 1.0f);
        }
    }
    CHECK(rows_with_great == 2);
}

TEST_CASE("load_imdb: num_words bounds every id; a test-only word is <oov>")
{
    temp_dir dir;
    const fs::path acl = write_tree(dir.path);
    xrnn::imdb_options options;
    options.num_words = 6;  // ids 3, 4, 5: the three most frequent training words; the others are <oov>
    options.maxlen = 30;
    const auto data = xrnn::load_imdb(acl.string(), options);
    CHECK(data.vocab.size() == 6);
    CHECK(xt::amax(data.x_train)() <= 5);
    CHECK(xt::amax(data.x_test)() <= 5);
    CHECK(std::count(data.x_train.begin(), data.x_train.end(), xrnn::vocabulary::oov_id) > 0);
    check_row_structure(data.x_train, data.vocab);
    check_row_structure(data.x_test, data.vocab);
    CHECK(actual_rows(data.x_test, data.y_test)
          == expected_rows(data.vocab, sorted_texts(test_neg), sorted_texts(test_pos), 30));
}

TEST_CASE("load_imdb: the shuffle is Fisher-Yates with random_engine(seed), train then test, and deterministic")
{
    temp_dir dir;
    const fs::path acl = write_tree(dir.path);
    xrnn::imdb_options options;
    options.maxlen = 40;  // no truncation: each row identifies its review
    const auto data = xrnn::load_imdb(acl.string(), options);

    // Before shuffling, rows are neg then pos, each sorted by file name.
    std::vector<ids> unshuffled_train;
    for (const auto& text : sorted_texts(train_neg))
    {
        unshuffled_train.push_back(data.vocab.encode(text));
    }
    for (const auto& text : sorted_texts(train_pos))
    {
        unshuffled_train.push_back(data.vocab.encode(text));
    }
    std::vector<ids> unshuffled_test;
    for (const auto* reviews : {&test_neg, &test_pos})
    {
        for (const auto& text : sorted_texts(*reviews))
        {
            unshuffled_test.push_back(data.vocab.encode(text));
        }
    }
    xrnn::random_engine rng(options.seed);
    const auto train_order = reference_shuffle(6, rng);
    const auto test_order = reference_shuffle(4, rng);
    std::vector<ids> train_expected;
    std::vector<ids> test_expected;
    xt::xtensor<float, 2> y_train_expected({6, 1});
    for (std::size_t i = 0; i < 6; ++i)
    {
        train_expected.push_back(unshuffled_train[train_order[i]]);
        y_train_expected(i, 0) = train_order[i] < 3 ? 0.0f : 1.0f;
    }
    for (std::size_t i = 0; i < 4; ++i)
    {
        test_expected.push_back(unshuffled_test[test_order[i]]);
    }
    CHECK(data.x_train == xrnn::pad_sequences(train_expected, 40));
    CHECK(data.y_train == y_train_expected);
    CHECK(data.x_test == xrnn::pad_sequences(test_expected, 40));
    // The order is mixed: the labels are not the unshuffled 0 0 0 1 1 1.
    CHECK(data.y_train != xt::xtensor<float, 2>{{0}, {0}, {0}, {1}, {1}, {1}});

    // Same seed, same arrays; another seed, another order of the same rows.
    check_same_dataset(xrnn::load_imdb(acl.string(), options), data);
    options.seed = 7;
    const auto other = xrnn::load_imdb(acl.string(), options);
    CHECK_FALSE(same_array(other.x_train, data.x_train));
    CHECK(actual_rows(other.x_train, other.y_train) == actual_rows(data.x_train, data.y_train));
    CHECK(other.vocab == data.vocab);
}

TEST_CASE("load_imdb: accepts the folder that contains aclImdb/")
{
    temp_dir dir;
    const fs::path acl = write_tree(dir.path);
    check_same_dataset(xrnn::load_imdb(dir.path.string()), xrnn::load_imdb(acl.string()));
}

TEST_CASE("load_imdb: limit_per_split takes the first reviews by file name, half of each class")
{
    temp_dir dir;
    const fs::path acl = write_tree(dir.path);
    xrnn::imdb_options options;
    options.maxlen = 40;
    options.limit_per_split = 4;
    const auto data = xrnn::load_imdb(acl.string(), options);
    REQUIRE(data.x_train.shape()[0] == 4);
    REQUIRE(data.x_test.shape()[0] == 4);
    CHECK(std::count(data.y_train.begin(), data.y_train.end(), 1.0f) == 2);
    // The vocabulary comes from the four reviews read, the rows are those reviews.
    std::vector<strings> tokens;
    for (const auto& text : sorted_texts(train_neg, 2))
    {
        tokens.push_back(xrnn::tokenize(text));
    }
    for (const auto& text : sorted_texts(train_pos, 2))
    {
        tokens.push_back(xrnn::tokenize(text));
    }
    CHECK(data.vocab == xrnn::vocabulary::build(tokens, options.num_words));
    CHECK(actual_rows(data.x_train, data.y_train)
          == expected_rows(data.vocab, sorted_texts(train_neg, 2), sorted_texts(train_pos, 2), 40));

    options.limit_per_split = 3;  // one negative, two positives
    const auto odd = xrnn::load_imdb(acl.string(), options);
    CHECK(odd.x_train.shape()[0] == 3);
    CHECK(std::count(odd.y_train.begin(), odd.y_train.end(), 1.0f) == 2);
    CHECK(odd.x_test.shape()[0] == 3);

    options.limit_per_split = 1000;  // more than there are: everything
    CHECK(xrnn::load_imdb(acl.string(), options).x_train.shape()[0] == 6);

    options.limit_per_split = 1;
    CHECK(message_of<xrnn::value_error>([&] { xrnn::load_imdb(acl.string(), options); })
          == "load_imdb: limit_per_split expected 0 (all) or >= 2 (one review per class) but got 1");
}

TEST_CASE("load_imdb: the cache is written, then read back identically; a stale or damaged cache is rebuilt")
{
    temp_dir dir;
    const fs::path acl = write_tree(dir.path);
    xrnn::imdb_options options;
    options.maxlen = 16;
    options.num_words = 20;
    options.cache_path = (dir.path / "cache" / "imdb.bin").string();  // the directory is created

    const auto parsed = xrnn::load_imdb(acl.string(), options);
    CHECK_FALSE(parsed.from_cache);
    CHECK(contains(parsed.cache_note, "no cache at"));
    REQUIRE(fs::exists(options.cache_path));
    CHECK(leftover_temporaries(dir.path / "cache") == 0);

    const auto cached = xrnn::load_imdb(acl.string(), options);
    CHECK(cached.from_cache);
    CHECK(contains(cached.cache_note, "read from cache"));
    check_same_dataset(cached, parsed);
    CHECK(cached.vocab.num_words() == 20);

    const std::string good = read_bytes(options.cache_path);
    const auto expect_rebuilt = [&](const std::string& bytes, const std::string& why) {
        CAPTURE(why);
        write_file(options.cache_path, bytes);
        const auto data = xrnn::load_imdb(acl.string(), options);
        CHECK_FALSE(data.from_cache);
        CHECK(contains(data.cache_note, why));
        check_same_dataset(data, parsed);
        CHECK(read_bytes(options.cache_path) == good);  // rewritten, valid again
        CHECK(xrnn::load_imdb(acl.string(), options).from_cache);
    };
    std::string flipped = good;
    flipped[good.size() / 2] = static_cast<char>(flipped[good.size() / 2] ^ 0x10);
    expect_rebuilt(flipped, "checksum mismatch");
    expect_rebuilt(good.substr(0, good.size() / 2), "truncated or corrupted");  // refused from its header
    expect_rebuilt(good.substr(0, 10), "not an IMDB cache");
    expect_rebuilt("", "not an IMDB cache");
    expect_rebuilt(std::string(4096, 'x'), "not an IMDB cache");
    std::string other_version = good;
    other_version[8] = 9;
    expect_rebuilt(other_version, "format version");

    // Other options: rebuilt for them (and the cache now holds them).
    options.maxlen = 9;
    const auto shorter = xrnn::load_imdb(acl.string(), options);
    CHECK_FALSE(shorter.from_cache);
    CHECK(contains(shorter.cache_note, "other options"));
    CHECK(shorter.x_train.shape()[1] == 9);
    CHECK(xrnn::load_imdb(acl.string(), options).from_cache);
    options.seed = 1;
    CHECK_FALSE(xrnn::load_imdb(acl.string(), options).from_cache);
    options.limit_per_split = 2;
    CHECK_FALSE(xrnn::load_imdb(acl.string(), options).from_cache);
    options.num_words = 21;
    CHECK_FALSE(xrnn::load_imdb(acl.string(), options).from_cache);
    CHECK(xrnn::load_imdb(acl.string(), options).from_cache);

    // Changed source: a review added, then a review renamed.
    options.limit_per_split = 0;
    CHECK_FALSE(xrnn::load_imdb(acl.string(), options).from_cache);
    write_file(acl / "train" / "pos" / "12_9.txt", "Great fun.");
    const auto added = xrnn::load_imdb(acl.string(), options);
    CHECK_FALSE(added.from_cache);
    CHECK(contains(added.cache_note, "review files changed"));
    CHECK(added.x_train.shape()[0] == 7);
    CHECK(xrnn::load_imdb(acl.string(), options).from_cache);
    fs::rename(acl / "train" / "pos" / "12_9.txt", acl / "train" / "pos" / "13_9.txt");
    CHECK_FALSE(xrnn::load_imdb(acl.string(), options).from_cache);
    CHECK(leftover_temporaries(dir.path / "cache") == 0);
}

TEST_CASE("load_imdb: a cache with a valid checksum but impossible contents is not trusted")
{
    temp_dir dir;
    const fs::path acl = write_tree(dir.path);
    xrnn::imdb_options options;
    options.maxlen = 8;
    options.cache_path = (dir.path / "imdb.bin").string();
    const auto parsed = xrnn::load_imdb(acl.string(), options);
    const std::string good = read_bytes(options.cache_path);

    // Little-endian u64 at offset, and the file with its checksum recomputed over a changed payload.
    const auto u64_at = [](const std::string& bytes, std::size_t offset) {
        std::uint64_t v = 0;
        for (int k = 7; k >= 0; --k)
        {
            v = (v << 8) | static_cast<unsigned char>(bytes[offset + static_cast<std::size_t>(k)]);
        }
        return v;
    };
    const auto resealed = [](std::string payload) {
        std::uint64_t sum = xrnn::io::fnv1a64(payload.data(), payload.size());
        for (int k = 0; k < 8; ++k, sum >>= 8)
        {
            payload.push_back(static_cast<char>(sum & 0xFFu));
        }
        return payload;
    };
    const std::string payload = good.substr(0, good.size() - 8);
    REQUIRE(resealed(payload) == good);
    const std::size_t vocab_offset = 8 + 4 + 8 * 8;
    const std::size_t counts_offset = vocab_offset + static_cast<std::size_t>(u64_at(good, vocab_offset - 8));
    REQUIRE(u64_at(good, counts_offset) == 6);
    REQUIRE(u64_at(good, counts_offset + 8) == 4);
    const std::size_t first_id = counts_offset + 16;

    std::string big_id = payload;
    big_id[first_id + 2] = '\x7f';  // an id far beyond the vocabulary
    std::string label = payload;
    label[payload.size() - 1] = '\2';  // the last test label
    std::string rows = payload;
    rows[counts_offset + 7] = '\x10';  // n_train = 6 + 2^60
    std::string vocab = payload;
    vocab[vocab_offset + 4] = 'X';  // "xrnn-vocabulary" -> "xrnnXvocabulary"
    const std::vector<std::pair<std::string, std::string>> cases = {
        {resealed(big_id), "an id is outside [0, "},
        {resealed(label), "a label is neither 0 nor 1"},
        {resealed(rows), "expected 10 reviews in both splits"},
        {resealed(vocab), "is not a vocabulary file"},
        {resealed(payload + "xxxx"), "its header implies"},  // refused by its size before it is read
    };
    for (const auto& [bytes, why] : cases)
    {
        const std::string reason = why;  // a copy: C++17 lambdas (CAPTURE) cannot capture structured bindings
        CAPTURE(reason);
        write_file(options.cache_path, bytes);
        const auto data = xrnn::load_imdb(acl.string(), options);
        CHECK_FALSE(data.from_cache);
        CHECK(contains(data.cache_note, why));
        check_same_dataset(data, parsed);
    }
}

TEST_CASE("load_imdb: a cache that cannot be written is an io_error")
{
    temp_dir dir;
    const fs::path acl = write_tree(dir.path);
    xrnn::imdb_options options;
    write_file(dir.path / "a_file", "x");
    options.cache_path = (dir.path / "a_file" / "imdb.bin").string();  // its "directory" is a file
    CHECK_THROWS_AS(xrnn::load_imdb(acl.string(), options), xrnn::io_error);
}

TEST_CASE("load_imdb: a missing or incomplete layout is an io_error naming what was expected and found")
{
    temp_dir dir;
    const fs::path missing = dir.path / "nowhere";
    CHECK(message_of<xrnn::io_error>([&] { xrnn::load_imdb(missing.string()); })
          == "load_imdb: expected the aclImdb directory (or its parent) at '" + missing.string()
                 + "' but it does not exist");
    write_file(dir.path / "file.txt", "x");
    CHECK(contains(message_of<xrnn::io_error>([&] { xrnn::load_imdb((dir.path / "file.txt").string()); }),
                   "is not a directory"));

    // A directory with neither train/ nor aclImdb/: the first folder looked for is named.
    const fs::path empty = dir.path / "empty";
    fs::create_directories(empty);
    CHECK(message_of<xrnn::io_error>([&] { xrnn::load_imdb(empty.string()); })
          == "load_imdb: expected the directory '" + (empty / "train" / "neg").string()
                 + "' (layout aclImdb/{train,test}/{pos,neg}/*.txt) but it is missing");

    const fs::path acl = write_tree(dir.path / "tree");
    fs::remove_all(acl / "test" / "pos");
    CHECK(contains(message_of<xrnn::io_error>([&] { xrnn::load_imdb(acl.string()); }),
                   "'" + (acl / "test" / "pos").string() + "' (layout"));
    fs::remove_all(acl / "test");
    CHECK(contains(message_of<xrnn::io_error>([&] { xrnn::load_imdb(acl.string()); }),
                   (acl / "test" / "neg").string()));
}

TEST_CASE("load_imdb: an empty split and a split with one class are io_errors")
{
    temp_dir dir;
    const fs::path acl = write_tree(dir.path);
    for (const auto& entry : fs::directory_iterator(acl / "test" / "pos"))
    {
        fs::remove(entry.path());
    }
    CHECK(message_of<xrnn::io_error>([&] { xrnn::load_imdb(acl.string()); })
          == "load_imdb: split 'test' has one class only: expected reviews in both pos/ and neg/ but found 0 in pos/ "
             "and 2 in neg/");
    for (const auto& entry : fs::directory_iterator(acl / "test" / "neg"))
    {
        fs::remove(entry.path());
    }
    CHECK(message_of<xrnn::io_error>([&] { xrnn::load_imdb(acl.string()); })
          == "load_imdb: split 'test' is empty: expected *.txt reviews in '" + (acl / "test" / "neg").string()
                 + "' and '" + (acl / "test" / "pos").string() + "' but found none");

    temp_dir dir2;
    const fs::path acl2 = write_tree(dir2.path);
    fs::remove_all(acl2 / "train" / "neg");
    fs::create_directories(acl2 / "train" / "neg");
    CHECK(contains(message_of<xrnn::io_error>([&] { xrnn::load_imdb(acl2.string()); }),
                   "split 'train' has one class only: expected reviews in both pos/ and neg/ but found 3 in pos/ and 0 "
                   "in neg/"));
}

TEST_CASE("load_imdb: an empty, wordless or non-UTF-8 review is an io_error naming the file")
{
    for (const auto& [split, bytes, expected] :
         std::vector<std::tuple<std::string, std::string, std::string>>{
             {"train", "", "holds no words: expected a non-empty review but found an empty file"},
             {"test", "", "holds no words: expected a non-empty review but found an empty file"},
             {"train", " <br /><br /> ... ", "holds no words: expected a non-empty review but found 18 bytes without a word"},
             {"train", "Good but \xED\xA0\x80 here", "is not valid UTF-8: surrogate code point at byte offset 9"},
             {"test", "fine\xC3", "is not valid UTF-8: truncated sequence at byte offset 4"},
         })
    {
        const std::string message = expected;  // a copy: C++17 lambdas (CAPTURE) cannot capture structured bindings
        CAPTURE(message);
        temp_dir dir;
        const fs::path acl = write_tree(dir.path);
        const fs::path bad = acl / split / "neg" / "99_1.txt";
        write_file(bad, bytes);
        const std::string text = message_of<xrnn::io_error>([&] { xrnn::load_imdb(acl.string()); });
        CHECK(contains(text, bad.string()));
        CHECK(contains(text, expected));
    }
}

TEST_CASE("load_imdb: options out of range are value_errors")
{
    temp_dir dir;
    const fs::path acl = write_tree(dir.path);
    xrnn::imdb_options options;
    options.num_words = 2;
    CHECK(message_of<xrnn::value_error>([&] { xrnn::load_imdb(acl.string(), options); })
          == "load_imdb: num_words expected >= 3 (ids 0, 1, 2 are reserved) but got 2");
    options.num_words = 100;
    options.maxlen = 0;
    CHECK(message_of<xrnn::value_error>([&] { xrnn::load_imdb(acl.string(), options); })
          == "load_imdb: maxlen expected >= 1 but got 0");
}

// ---- the real dataset, when XRNN_IMDB_DIR points at an unpacked aclImdb ----------------------------------------

TEST_CASE("load_imdb: the real Large Movie Review Dataset (only with XRNN_IMDB_DIR set)")
{
    const char* dir = std::getenv("XRNN_IMDB_DIR");
    if (dir == nullptr || *dir == '\0')
    {
        MESSAGE("XRNN_IMDB_DIR is not set: the real IMDB data is not checked");
        return;
    }
    xrnn::imdb_options options;  // num_words 10000, maxlen 200, seed 113
    options.limit_per_split = 2000;
    const auto data = xrnn::load_imdb(dir, options);
    CHECK(data.x_train.shape()[0] == 2000);
    CHECK(data.x_test.shape()[0] == 2000);
    CHECK(data.x_train.shape()[1] == 200);
    CHECK(data.vocab.size() == 10000);
    CHECK(data.vocab.word(3) == "the");
    CHECK(std::count(data.y_train.begin(), data.y_train.end(), 1.0f) == 1000);
    CHECK(std::count(data.y_test.begin(), data.y_test.end(), 1.0f) == 1000);
    CHECK(data.vocab.id("br") == xrnn::vocabulary::oov_id);  // line breaks are gone
    check_row_structure(data.x_train, data.vocab);
    check_row_structure(data.x_test, data.vocab);
    // Labels are shuffled: the first and the last 100 training rows both hold each class.
    const auto first = xt::view(data.y_train, xt::range(0, 100));
    const auto last = xt::view(data.y_train, xt::range(1900, 2000));
    CHECK(xt::sum(first)() > 20);
    CHECK(xt::sum(first)() < 80);
    CHECK(xt::sum(last)() > 20);
    CHECK(xt::sum(last)() < 80);
}

TEST_CASE("vocabulary: invisible characters in a file's lines are shown escaped in the error, not quoted raw")
{
    temp_dir dir;
    const std::string path = (dir.path / "vocab.txt").string();
    const std::string words = "<pad>\n<start>\n<oov>\nthe\nfilm\n";
    // a byte-order mark that an editor put before the header, and Windows line ends
    write_file(path, "\xEF\xBB\xBFxrnn-vocabulary 1 10 5\n" + words);
    CHECK(contains(message_of<xrnn::io_error>([&] { xrnn::vocabulary::load(path); }),
                   "but found \"\\uFEFFxrnn-vocabulary 1 10 5\""));
    write_file(path, "xrnn-vocabulary 1 10 5\r\n" + words);
    CHECK(contains(message_of<xrnn::io_error>([&] { xrnn::vocabulary::load(path); }),
                   "but found \"xrnn-vocabulary 1 10 5\\r\""));
    write_file(path, "xrnn-vocabulary 1 10 5\n<pad>\n<start\t>\n<oov>\nthe\nfilm\n");
    CHECK(contains(message_of<xrnn::io_error>([&] { xrnn::vocabulary::load(path); }),
                   "expected \"<start>\" for id 1 but found \"<start\\t>\""));
}

TEST_CASE("load_imdb: a huge file posing as the cache is refused from its header, not read whole")
{
    temp_dir dir;
    const fs::path acl = write_tree(dir.path);
    xrnn::imdb_options options;
    options.maxlen = 16;
    options.num_words = 20;
    options.cache_path = (dir.path / "imdb.bin").string();
    const auto parsed = xrnn::load_imdb(acl.string(), options);
    REQUIRE(xrnn::load_imdb(acl.string(), options).from_cache);

    // the cache's own header (right options and source), then 1 GiB of zeros (a sparse file)
    const std::string good = read_bytes(options.cache_path);
    write_file(options.cache_path, good.substr(0, 200));
    fs::resize_file(options.cache_path, std::uintmax_t(1) << 30);
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    const long peak_before_kib = usage.ru_maxrss;
    const auto start = std::chrono::steady_clock::now();
    const auto data = xrnn::load_imdb(acl.string(), options);
    getrusage(RUSAGE_SELF, &usage);
    CHECK_FALSE(data.from_cache);
    CHECK(contains(data.cache_note, "is truncated or corrupted (1073741824 bytes, its header implies"));
    CHECK(usage.ru_maxrss - peak_before_kib < 64 * 1024);  // KiB: the 1 GiB was never read
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
    check_same_dataset(data, parsed);
    CHECK(read_bytes(options.cache_path) == good);  // rebuilt

    // a header whose vocabulary claims more bytes than the reviews have is refused the same way
    std::string claims = good;
    const std::uint64_t huge = std::uint64_t(1) << 29;
    std::memcpy(&claims[12 + 7 * 8], &huge, 8);
    write_file(options.cache_path, claims);
    CHECK(contains(xrnn::load_imdb(acl.string(), options).cache_note, "more than the reviews could give"));
}
