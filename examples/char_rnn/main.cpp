// char_rnn: a character-level RNN learns to predict the next character of a text.
//
// What it shows: the smallest complete sequence-to-sequence training run. The text's distinct characters make a
// vocabulary (char2idx, idx2char); the model reads the text without its last character and learns, at every
// step, the character that comes next:
//
//   input   h e l l o _ w o r l        (text[:-1] as ids; _ is the space)
//   target  e l l o _ w o r l d        (text[1:])
//
// Embedding -> RNN (one output per step) -> Dense gives one score per vocabulary character at each step, trained
// with softmax cross-entropy and Adam. "hello world" needs memory, not just the current character: after an
// 'l' comes 'l', 'o' or 'd', depending on what came before, and that is what the RNN's hidden state carries.
//
// A short text is one training sequence. A longer one is cut into windows of --seq-length characters with
// stride 1, trained in shuffled batches, and each character is then predicted from at most --seq-length
// characters of context, as in training.
//
//   char_rnn                                   # learns "hello world"
//   char_rnn --text "the quick brown fox jumps over the lazy dog" --epochs 100
//   char_rnn --help
//
// It prints the loss per epoch, the predicted text under the target, the character accuracy, and saves the
// weights to char_rnn.xrnnw (in the working directory), which a fresh model then loads and checks.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <map>
#include <string>
#include <vector>

#include <xrnn/xrnn.hpp>

#include "../common/cli.hpp"

namespace
{
    // Layer sizes are template parameters in xtensor-rnn, fixed when the program is compiled. The output layer
    // therefore has room for max_vocabulary characters; a text with more distinct characters is refused (a
    // larger constant here fixes that). Classes beyond the text's vocabulary are never targets, so training
    // simply learns to give them no probability.
    constexpr std::size_t max_vocabulary = 64;
    constexpr std::size_t embedding_size = 16;
    constexpr std::size_t hidden_size = 64;
    constexpr std::size_t batch_size = 32;  // windows per step, for texts longer than one window

    using model_type = xrnn::sequential<xrnn::embedding<float, max_vocabulary, embedding_size>,
                                        xrnn::rnn<float, embedding_size, hidden_size, 1, xrnn::output::sequence>,
                                        xrnn::dense<float, hidden_size, max_vocabulary>>;

    const char* const usage =
        "usage: char_rnn [--text TEXT] [--epochs N] [--seq-length N] [--learning-rate R] [--seed S]\n"
        "\n"
        "Trains Embedding -> RNN -> Dense to predict each next character of TEXT and prints the prediction.\n"
        "\n"
        "  --text TEXT         text to learn (default \"hello world\"; at most 64 distinct characters)\n"
        "  --epochs N          passes over the text (default 50)\n"
        "  --seq-length N      characters per training window for longer texts (default 25)\n"
        "  --learning-rate R   Adam's learning rate (default 0.01)\n"
        "  --seed S            seed of the initial weights and the shuffling (default 1)\n"
        "  --help              this text\n";

    /// The two lookup tables of the seed program: character -> class id, and back.
    struct vocabulary
    {
        std::map<char, int> char2idx;
        std::string idx2char;  // idx2char[id] is the character of class id
    };

    /// The text's distinct characters, sorted, so that the ids do not depend on the order of first appearance.
    vocabulary build_vocabulary(const std::string& text)
    {
        vocabulary vocab;
        vocab.idx2char = text;
        std::sort(vocab.idx2char.begin(), vocab.idx2char.end());
        vocab.idx2char.erase(std::unique(vocab.idx2char.begin(), vocab.idx2char.end()), vocab.idx2char.end());
        for (std::size_t id = 0; id < vocab.idx2char.size(); ++id)
        {
            vocab.char2idx[vocab.idx2char[id]] = static_cast<int>(id);
        }
        return vocab;
    }

    /// Training pairs, batch-major as fit() takes them: x (N, S) ids of text[i, i+S), y (N, S) ids of
    /// text[i+1, i+S+1). One window (S = length - 1) when the text is short, else windows with stride 1.
    struct training_data
    {
        xt::xtensor<int, 2> x;
        xt::xtensor<int, 2> y;
    };

    training_data make_windows(const std::string& text, const vocabulary& vocab, std::size_t seq_length)
    {
        const std::size_t steps = std::min(seq_length, text.size() - 1);
        const std::size_t windows = text.size() - steps;
        training_data data{xt::xtensor<int, 2>({windows, steps}), xt::xtensor<int, 2>({windows, steps})};
        for (std::size_t w = 0; w < windows; ++w)
        {
            for (std::size_t t = 0; t < steps; ++t)
            {
                data.x(w, t) = vocab.char2idx.at(text[w + t]);
                data.y(w, t) = vocab.char2idx.at(text[w + t + 1]);
            }
        }
        return data;
    }

    /// The most probable class at every step: probabilities (N, S, C) -> ids (N, S).
    xt::xtensor<int, 2> most_probable(const xt::xtensor<float, 3>& probabilities)
    {
        const std::size_t windows = probabilities.shape()[0];
        const std::size_t steps = probabilities.shape()[1];
        const std::size_t classes = probabilities.shape()[2];
        xt::xtensor<int, 2> ids({windows, steps});
        for (std::size_t w = 0; w < windows; ++w)
        {
            for (std::size_t t = 0; t < steps; ++t)
            {
                const float* row = &probabilities(w, t, 0);
                ids(w, t) = static_cast<int>(std::max_element(row, row + classes) - row);
            }
        }
        return ids;
    }

    /// The predicted text, aligned with text[1:]: character j comes from the first window that reaches it
    /// within its first S steps (window 0 for j < S, else the window ending at j), so each prediction sees the
    /// same amount of context as in training.
    std::string decode_predictions(const xt::xtensor<int, 2>& ids, const vocabulary& vocab)
    {
        const std::size_t windows = ids.shape()[0];
        const std::size_t steps = ids.shape()[1];
        std::string predicted;
        for (std::size_t j = 0; j < windows + steps - 1; ++j)
        {
            const std::size_t w = j < steps ? 0 : j - steps + 1;
            const auto id = static_cast<std::size_t>(ids(w, j - w));
            // A class beyond the text's vocabulary is a wrong guess; show it as '?'.
            predicted += id < vocab.idx2char.size() ? vocab.idx2char[id] : '?';
        }
        return predicted;
    }

    /// Control characters (and the bytes of non-ASCII characters) print as '~' so the three rows stay aligned.
    std::string visible(const std::string& text)
    {
        std::string shown = text;
        for (char& c : shown)
        {
            const auto byte = static_cast<unsigned char>(c);
            c = byte >= 32 && byte < 127 ? c : '~';
        }
        return shown;
    }

    /// input / target / predicted rows, 64 characters a block, with ^ under each wrong prediction.
    void print_comparison(const std::string& input, const std::string& target, const std::string& predicted)
    {
        constexpr std::size_t width = 64;
        for (std::size_t first = 0; first < target.size(); first += width)
        {
            const std::size_t count = std::min(width, target.size() - first);
            std::string marks;
            for (std::size_t j = first; j < first + count; ++j)
            {
                marks += predicted[j] == target[j] ? ' ' : '^';
            }
            std::printf("input:     %s\n", visible(input.substr(first, count)).c_str());
            std::printf("target:    %s\n", visible(target.substr(first, count)).c_str());
            std::printf("predicted: %s\n", visible(predicted.substr(first, count)).c_str());
            if (marks.find('^') != std::string::npos)
            {
                marks.erase(marks.find_last_not_of(' ') + 1);
                std::printf("wrong:     %s\n", marks.c_str());
            }
            if (first + width < target.size())
            {
                std::printf("\n");
            }
        }
    }

    /// fit's per-epoch callback: the losses ten to a line, "epochs   1-10   4.1576 3.9812 ...".
    void print_loss(const xrnn::epoch_logs& logs)
    {
        if ((logs.epoch - 1) % 10 == 0)
        {
            const std::size_t last = std::min(logs.epoch + 9, logs.epochs);
            std::printf("epochs %4zu-%-4zu", logs.epoch, last);
        }
        std::printf(" %.4f", logs.loss);
        if (logs.epoch % 10 == 0 || logs.epoch == logs.epochs)
        {
            std::printf("\n");
        }
        std::fflush(stdout);
    }

    /// Adam on softmax cross-entropy through fit(), with the loss of each epoch printed by print_loss.
    void train(model_type& model, const training_data& data, std::size_t epochs, double learning_rate,
               std::uint64_t seed)
    {
        model.compile(xrnn::objective::softmax_cross_entropy, xrnn::adam<float>(learning_rate));
        std::printf("%s", model.summary().c_str());
        xrnn::fit_options options;
        options.epochs = epochs;
        options.batch_size = batch_size;
        options.seed = seed;
        options.verbosity = xrnn::progress::silent;  // print_loss writes a compact line instead
        options.on_epoch_end(print_loss);
        std::printf("softmax cross-entropy per epoch (a uniform guess over the %zu classes scores ln %zu = %.2f):\n",
                    max_vocabulary, max_vocabulary, std::log(static_cast<double>(max_vocabulary)));
        model.fit(data.x, data.y, options);
    }

    /// Predicts every next character, prints it under the target, and returns the probabilities (N, S, classes).
    xt::xtensor<float, 3> show_predictions(model_type& model, const std::string& text, const training_data& data,
                                           const vocabulary& vocab)
    {
        // predict() applies the softmax: (N, S, classes) probabilities, batch-major like x.
        xt::xtensor<float, 3> probabilities = model.predict(data.x);
        const std::string predicted = decode_predictions(most_probable(probabilities), vocab);
        const std::string target = text.substr(1);
        std::size_t correct = 0;
        for (std::size_t j = 0; j < target.size(); ++j)
        {
            correct += predicted[j] == target[j] ? 1 : 0;
        }
        std::printf("\n");
        print_comparison(text.substr(0, text.size() - 1), target, predicted);
        std::printf("character accuracy: %.1f%% (%zu of %zu)\n",
                    100.0 * static_cast<double>(correct) / static_cast<double>(target.size()), correct, target.size());
        return probabilities;
    }

    /// Train once, predict later: saves the weights, loads them into a model built with other random weights,
    /// and checks that it predicts exactly the same probabilities.
    bool check_saved_weights(model_type& model, const training_data& data, const xt::xtensor<float, 3>& probabilities,
                             std::uint64_t seed)
    {
        const std::string weights_path = "char_rnn.xrnnw";
        model.save(weights_path);
        xrnn::random_engine other_rng(seed + 1);
        model_type loaded(other_rng);
        // predict() takes the softmax from the objective, so the loaded model is compiled too (the optimizer is
        // not used).
        loaded.compile(xrnn::objective::softmax_cross_entropy, xrnn::adam<float>());
        loaded.load(weights_path);
        const xt::xtensor<float, 3> reloaded = loaded.predict(data.x);
        const float difference = xt::amax(xt::abs(reloaded - probabilities))();
        std::printf("saved %s; a fresh model that loads it predicts %s (largest probability difference %g)\n",
                    weights_path.c_str(), difference == 0.0f ? "the same" : "DIFFERENTLY",
                    static_cast<double>(difference));
        return difference == 0.0f;
    }
}  // namespace

int main(int argc, char** argv)
{
    examples::cli args(argc, argv, usage);
    const std::string text = args.get("text", "hello world");
    const auto epochs = args.number<std::size_t>("epochs", 50);
    const auto seq_length = args.number<std::size_t>("seq-length", 25);
    const auto learning_rate = args.number<double>("learning-rate", 0.01);
    const auto seed = args.number<std::uint64_t>("seed", 1);
    args.finish();

    const char* problem = nullptr;
    if (text.size() < 2)
    {
        problem = "--text needs at least 2 characters (an input and a target)";
    }
    else if (epochs == 0 || seq_length == 0)
    {
        problem = "--epochs and --seq-length must be at least 1";
    }
    else if (!(learning_rate > 0.0))
    {
        problem = "--learning-rate must be greater than 0";
    }
    if (problem != nullptr)
    {
        std::fprintf(stderr, "char_rnn: %s\n\n%s", problem, usage);
        return 2;
    }
    const vocabulary vocab = build_vocabulary(text);
    if (vocab.idx2char.size() > max_vocabulary)
    {
        std::fprintf(stderr, "char_rnn: the text has %zu distinct characters, but this program was compiled for at "
                             "most %zu (max_vocabulary in examples/char_rnn/main.cpp)\n",
                     vocab.idx2char.size(), max_vocabulary);
        return 2;
    }
    const training_data data = make_windows(text, vocab, seq_length);
    std::printf("text: \"%s\" (%zu characters, %zu distinct: \"%s\")\n", visible(text).c_str(), text.size(),
                vocab.idx2char.size(), visible(vocab.idx2char).c_str());
    std::printf("training data: %zu sequence%s of %zu steps\n", data.x.shape()[0], data.x.shape()[0] == 1 ? "" : "s",
                data.x.shape()[1]);

    try
    {
        xrnn::random_engine rng(seed);
        model_type model(rng);
        train(model, data, epochs, learning_rate, seed);
        const xt::xtensor<float, 3> probabilities = show_predictions(model, text, data, vocab);
        return check_saved_weights(model, data, probabilities, seed) ? 0 : 1;
    }
    catch (const std::exception& e)  // the weight file cannot be written, say
    {
        std::fprintf(stderr, "char_rnn: %s\n", e.what());
        return 1;
    }
}
