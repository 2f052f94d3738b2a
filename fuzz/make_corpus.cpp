// Writes the seed corpus of the fuzz targets into fuzz/corpus/ (committed; run again when a format changes):
//   g++ -std=c++17 -O1 -Iinclude fuzz/make_corpus.cpp -o /tmp/make_corpus -lopenblas && /tmp/make_corpus fuzz/corpus
// fuzz_weights: a valid weight file and a valid checkpoint of the fuzzed model (fuzz_model.hpp), and damaged ones.
// fuzz_safetensors: valid safetensors files of the fuzzed model (PyTorch and Keras names) and damaged ones.
// fuzz_text: short texts of our own (never IMDB reviews), <br /> tags, quotes, valid and invalid UTF-8, a
// vocabulary file and a small IMDB cache.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include <xrnn/io/safetensors.hpp>
#include <xrnn/text/imdb.hpp>

#include "fuzz_model.hpp"

namespace fs = std::filesystem;

namespace
{
    void write(const fs::path& path, const std::string& bytes)
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        if (!out)
        {
            throw std::runtime_error("cannot write " + path.string());
        }
    }

    std::string flipped(std::string bytes, std::size_t at)
    {
        bytes[at] = static_cast<char>(bytes[at] ^ 0x10);
        return bytes;
    }

    void weights_corpus(const fs::path& dir)
    {
        xrnn_fuzz::model model = xrnn_fuzz::make_model(2);
        const std::string weights = xrnn::save_weights_to_bytes(model);
        write(dir / "weights_valid.xrnnw", weights);
        write(dir / "weights_truncated.xrnnw", weights.substr(0, weights.size() / 2));
        write(dir / "weights_flipped_value.xrnnw", flipped(weights, weights.size() - 20));
        write(dir / "weights_flipped_shape.xrnnw", flipped(weights, 200));

        using other_model = xrnn::sequential<xrnn::embedding<float, 6, 4>, xrnn::lstm<float, 4, 3>, xrnn::dense<float, 3, 1>>;
        xrnn::random_engine rng(3);
        other_model other(rng);
        write(dir / "weights_other_model.xrnnw", xrnn::save_weights_to_bytes(other));

        // A checkpoint from a short fit: optimizer buffers, history with validation, best weights, engines.
        model.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<float>(0.01));
        xt::xtensor<int, 2> x = {{1, 2, 3}, {4, 5, 0}, {2, 2, 2}, {5, 1, 0}, {3, 3, 1}};
        xt::xtensor<float, 2> y = {{1}, {0}, {1}, {0}, {1}};
        const fs::path scratch = fs::temp_directory_path() / "xrnn_make_corpus.xrnnc";
        xrnn::fit_options f;
        f.epochs = 2;
        f.batch_size = 2;
        f.validation_split = 0.2;
        f.verbosity = xrnn::progress::silent;
        f.early_stop = xrnn::early_stopping{"val_loss", 0.0, 5, true};
        f.checkpoint_path = scratch.string();
        model.fit(x, y, f);
        std::ifstream in(scratch, std::ios::binary);
        const std::string checkpoint((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        fs::remove(scratch);
        write(dir / "checkpoint_valid.xrnnc", checkpoint);
        write(dir / "checkpoint_truncated.xrnnc", checkpoint.substr(0, checkpoint.size() - 100));
        write(dir / "checkpoint_flipped.xrnnc", flipped(checkpoint, checkpoint.size() / 2));

        // Before any step: no optimizer buffers, no history.
        xrnn_fuzz::model fresh = xrnn_fuzz::make_model(4);
        xrnn::adam<float> optimizer;
        xrnn::training_progress<float> progress;
        progress.shuffle_engine = xrnn::random_engine(5).state();
        progress.order = {1, 0, 2};
        write(dir / "checkpoint_fresh.xrnnc", xrnn::save_checkpoint_to_bytes(fresh, optimizer, progress));
    }

    void safetensors_corpus(const fs::path& dir)
    {
        xrnn_fuzz::model model = xrnn_fuzz::make_model(6);
        const std::string torch = xrnn::save_safetensors_to_bytes(model, xrnn::weight_convention::torch);
        const std::string keras = xrnn::save_safetensors_to_bytes(model, xrnn::weight_convention::keras);
        write(dir / "torch_valid.safetensors", torch);
        write(dir / "keras_valid.safetensors", keras);
        write(dir / "torch_truncated.safetensors", torch.substr(0, torch.size() / 2));
        write(dir / "torch_flipped_header.safetensors", flipped(torch, 40));
        using other_model =
            xrnn::sequential<xrnn::embedding<float, 6, 4>, xrnn::gru<float, 4, 3>, xrnn::dense<float, 3, 1>>;
        xrnn::random_engine rng(7);
        other_model other(rng);
        write(dir / "torch_other_model.safetensors", xrnn::save_safetensors_to_bytes(other));
        write(dir / "metadata_only.safetensors", std::string("\x1a\0\0\0\0\0\0\0", 8)
                                                     + "{\"__metadata__\":{\"a\":\"b\"}}");
    }

    void text_corpus(const fs::path& dir)
    {
        write(dir / "sentence.txt", "A film I had not seen before. I didn't expect much, but it was fine!<br /><br />7/10");
        write(dir / "br_tags.txt", "one<BR>two<br/>three<br />four<Br / >five<br");
        write(dir / "quotes.txt", "'quoted' ''' don't 'tis rock'n'roll'' O'NEIL");
        write(dir / "utf8_valid.txt", "caf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 end");
        write(dir / "utf8_overlong.bin", std::string("ab \xc0\xaf cd"));
        write(dir / "utf8_surrogate.bin", std::string("ab \xed\xa0\x80 cd"));
        write(dir / "utf8_truncated.bin", std::string("ab \xe2\x82"));
        write(dir / "utf8_continuation.bin", std::string("\x80 ab"));
        write(dir / "utf8_above_max.bin", std::string("ab \xf4\x90\x80\x80 \xf8"));
        write(dir / "empty.txt", "");
        write(dir / "numbers_and_punctuation.txt", "1,000 ... --- 42 3.14 (x) [y] {z} #tag @user");

        const auto tokens = xrnn::tokenize("the cat sat on the mat and the dog sat too");
        const xrnn::vocabulary vocab = xrnn::vocabulary::build({tokens}, 8);
        write(dir / "vocabulary.txt", vocab.serialize());

        // A tiny IMDB cache: 2 training and 2 test reviews of maxlen 4.
        xrnn::imdb_options options;
        options.num_words = 8;
        options.maxlen = 4;
        xrnn::imdb_dataset data;
        data.vocab = vocab;
        data.x_train = {{0, 1, 3, 4}, {1, 5, 6, 2}};
        data.y_train = {{0}, {1}};
        data.x_test = {{0, 0, 1, 7}, {1, 3, 3, 3}};
        data.y_test = {{1}, {0}};
        xrnn::detail::imdb::fingerprint print{4, 1234, 0x1234567890abcdefull};
        write(dir / "imdb_cache.bin", xrnn::detail::imdb::cache_bytes(data, options, print));
    }
}  // namespace

int main(int argc, char** argv)
{
    if (argc != 2)
    {
        std::cerr << "usage: make_corpus <corpus directory, e.g. fuzz/corpus>\n";
        return 2;
    }
    const fs::path root(argv[1]);
    fs::create_directories(root / "fuzz_weights");
    fs::create_directories(root / "fuzz_text");
    fs::create_directories(root / "fuzz_safetensors");
    weights_corpus(root / "fuzz_weights");
    text_corpus(root / "fuzz_text");
    safetensors_corpus(root / "fuzz_safetensors");
    std::cout << "make_corpus: wrote " << root.string() << "/fuzz_weights, fuzz_text and fuzz_safetensors\n";
    return 0;
}
