// imdb_sentiment: is a movie review positive or negative? The third and fourth seed programs.
//
//   --model rnn:   Embedding(10000, 128) -> SimpleRNN(128, dropout 0.2)                         -> Dense(1, sigmoid)
//   --model lstm:  Embedding(10000, 128) -> LSTM(128, dropout 0.2, recurrent_dropout 0.2)       -> Dense(1, sigmoid)
//   --model gru:   Embedding(10000, 128) -> GRU(128, dropout 0.2, recurrent_dropout 0.2)        -> Dense(1, sigmoid)
//   --bidirectional: the recurrent layer reads both ways (Keras's Bidirectional, concat: Dense(256 -> 1))
//   --mask:          id 0 is padding that the recurrent layer skips (Keras's Embedding(mask_zero=True)); the
//                    default with --bidirectional, whose reverse direction would otherwise end on the padding
//                    (--no-mask turns it off)
//   --bucket:        batches of reviews of similar length (fit_options::bucket_by_length)
//   --pool max:      with --bidirectional, the classifier reads the largest value of each feature over the steps
//                    (the recurrent layer's output::sequence -> global_max_pool) instead of the last states
//
// trained with binary cross-entropy and Adam (learning rate 0.001, halved after every epoch) on the 25,000
// labelled training reviews of the Large Movie Review Dataset (5 epochs, batch 64, reviews cut to their last 200
// words, 20% of the training data held out for validation; the weights of the best validation epoch are kept),
// then scored on the 25,000 test reviews. The sigmoid is applied by the loss and by predict()
// (the Dense layer outputs a logit), which is the numerically stable way to write the same model.
//
//   imdb_sentiment --data path/to/aclImdb [--model rnn|lstm|gru] [--epochs 5] [--batch-size 64] [--maxlen 200] ...
//   imdb_sentiment --data path/to/aclImdb --model lstm --predict "A wonderful, moving film."
//   imdb_sentiment --load imdb_lstm.xrnnw --predict "Two hours I will never get back."
//   mpirun -np 4 imdb_sentiment --data path/to/aclImdb   # data-parallel on 4 processes (when built with MPI):
//                                                       # --batch-size is the global batch, cut among the ranks
//
// Outputs (in --out, default the current directory): imdb_<model>.xrnnw (weights), imdb_vocab.txt (the vocabulary
// the ids come from), imdb_<model>_history.csv and imdb_<model>_history.png (accuracy and loss per epoch, training
// vs validation). The encoded data set is cached in imdb_cache_<num_words>_<maxlen>.bin so later runs start fast.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>

#include <xtensor/xview.hpp>

#include <xrnn/xrnn.hpp>
#include <xrnn/text.hpp>

#include "../common/cli.hpp"
#include "../common/distributed.hpp"
#include "../common/plot.hpp"

namespace
{
    constexpr std::size_t vocabulary_capacity = 10000;  // Embedding(10000, 128): ids must stay below this
    constexpr std::size_t embedding_width = 128;
    constexpr std::size_t hidden = 128;

    using embedding_layer = xrnn::embedding<float, vocabulary_capacity, embedding_width>;
    template <class Recurrent>
    using head_layer = xrnn::dense<float, Recurrent::output_size, 1>;
    template <class Recurrent>
    using model_of = xrnn::sequential<embedding_layer, Recurrent, head_layer<Recurrent>>;
    // --pool max: every step's output, the largest of each feature over the (real) steps, then the classifier
    template <class Recurrent>
    using pool_layer = xrnn::global_max_pool<float, Recurrent::output_size>;
    template <class Recurrent>
    using pooled_model_of = xrnn::sequential<embedding_layer, Recurrent, pool_layer<Recurrent>, head_layer<Recurrent>>;

    struct settings
    {
        std::string model = "lstm";
        std::string data;
        std::string out = ".";
        std::string load;
        std::string predict;
        std::size_t epochs = 5;
        std::size_t batch_size = 64;
        std::size_t maxlen = 200;
        std::size_t num_words = vocabulary_capacity;
        std::size_t limit = 0;
        double validation_split = 0.2;
        double learning_rate = 1e-3;
        double dropout = 0.2;
        double recurrent_dropout = 0.2;
        double clip_norm = 1.0;
        double lr_decay = 0.5;  // halving per epoch: +0.6 to +0.8 points of LSTM test accuracy over a constant rate
        bool keep_last = false;
        bool bidirectional = false;
        bool mask = false;
        bool bucket = false;
        bool bf16 = false;
        std::string pool = "last";
        std::uint64_t seed = 1;
    };

    const char* usage =
        "usage: imdb_sentiment --data DIR [options]\n"
        "  --data DIR              the aclImdb folder (train/ and test/ with pos/ and neg/ inside), or its parent\n"
        "  --model rnn|lstm|gru    SimpleRNN, LSTM or GRU (default lstm; with --load, the file's own)\n"
        "  --epochs N              (default 5)\n"
        "  --batch-size N          (default 64)\n"
        "  --maxlen N              words kept per review, the last ones (default 200)\n"
        "  --num-words N           vocabulary size, at most 10000 (default 10000)\n"
        "  --validation-split F    fraction of the training reviews held out (default 0.2)\n"
        "  --learning-rate F       Adam's learning rate (default 0.001)\n"
        "  --dropout F             input dropout of the recurrent layer (default 0.2)\n"
        "  --recurrent-dropout F   recurrent dropout, LSTM only (default 0.2)\n"
        "  --clip-norm F           gradient norm clipping, 0 = off (default 1)\n"
        "  --lr-decay F            multiply the learning rate by F after every epoch (default 0.5; 1 = constant)\n"
        "  --keep-last             keep the last epoch's weights (default: the epoch with the best validation\n"
        "                          accuracy, as Keras's ModelCheckpoint(save_best_only=True) keeps)\n"
        "  --limit N               use only N reviews of each split, for a quick run (default all)\n"
        "  --seed N                initialisation, dropout and shuffling (default 1)\n"
        "  --out DIR               where weights, vocabulary, history and plot go (default .)\n"
        "  --load FILE             skip training: load these weights (and imdb_vocab.txt beside them)\n"
        "  --predict TEXT          print the probability that TEXT is a positive review\n"
        "  --bidirectional         read each review both ways (concat of the two directions' last states)\n"
        "  --mask                  skip the padding (id 0): each review runs for its own length only (the\n"
        "                          default with --bidirectional; --no-mask turns it off)\n"
        "  --bucket                batches of reviews of similar length (fit's bucket_by_length; with --mask)\n"
        "  --pool last|max         with --bidirectional: the last states (default) or the maximum over the steps\n"
        "  --bf16                  LSTM or GRU (one direction) with bfloat16 matrix products (xrnn::precision::bf16;\n"
        "                          AMX where the CPU has it); weights, states and gradients stay float\n"
        "The data set: bash examples/imdb_sentiment/download.sh (needs internet), or unpack the archive you have.\n";

    settings parse(int argc, char** argv)
    {
        examples::cli args(argc, argv, usage);
        settings s;
        s.model = args.get("model", "");
        s.data = args.get("data", s.data);
        s.out = args.get("out", s.out);
        s.load = args.get("load", s.load);
        s.predict = args.get("predict", s.predict);
        s.epochs = args.number<std::size_t>("epochs", s.epochs);
        s.batch_size = args.number<std::size_t>("batch-size", s.batch_size);
        s.maxlen = args.number<std::size_t>("maxlen", s.maxlen);
        s.num_words = args.number<std::size_t>("num-words", s.num_words);
        s.limit = args.number<std::size_t>("limit", s.limit);
        s.validation_split = args.number<double>("validation-split", s.validation_split);
        s.learning_rate = args.number<double>("learning-rate", s.learning_rate);
        s.dropout = args.number<double>("dropout", s.dropout);
        s.recurrent_dropout = args.number<double>("recurrent-dropout", s.recurrent_dropout);
        s.clip_norm = args.number<double>("clip-norm", s.clip_norm);
        s.lr_decay = args.number<double>("lr-decay", s.lr_decay);
        s.seed = args.number<std::uint64_t>("seed", s.seed);
        s.keep_last = args.flag("keep-last");
        s.bidirectional = args.flag("bidirectional");
        s.bf16 = args.flag("bf16");
        const bool mask = args.flag("mask");
        const bool no_mask = args.flag("no-mask");
        s.bucket = args.flag("bucket");
        s.pool = args.get("pool", s.pool);
        args.finish();
        if (mask && no_mask)
        {
            std::fprintf(stderr, "imdb_sentiment: --mask and --no-mask contradict each other\n");
            std::exit(2);
        }
        if (s.model.empty() && !s.load.empty())
        {
            // a weight file knows its model: its signature names the recurrent layer
            std::string signature;
            try
            {
                signature = xrnn::weights_signature(s.load);
            }
            catch (const std::exception& e)
            {
                std::fprintf(stderr, "imdb_sentiment: %s\n", e.what());
                std::exit(1);
            }
            for (const char* kind : {"rnn", "lstm", "gru"})
            {
                if (signature.find(std::string(",") + kind + "<") != std::string::npos)
                {
                    s.model = kind;
                }
                if (signature.find(std::string(",bidirectional_") + kind + "<") != std::string::npos)
                {
                    s.model = kind;
                    s.bidirectional = true;
                }
            }
            if (signature.find(",global_max_pool<") != std::string::npos)
            {
                s.pool = "max";
            }
            if (s.model.empty())
            {
                std::fprintf(stderr, "imdb_sentiment: '%s' holds the weights of %s, not of an IMDB model\n",
                             s.load.c_str(), signature.c_str());
                std::exit(1);
            }
        }
        if (s.model.empty())
        {
            s.model = "lstm";
        }
        s.mask = mask || (s.bidirectional && !no_mask);  // after --load, which may have set bidirectional
        if (s.model != "rnn" && s.model != "lstm" && s.model != "gru")
        {
            std::fprintf(stderr, "imdb_sentiment: --model must be rnn, lstm or gru, not '%s'\n%s", s.model.c_str(),
                         usage);
            std::exit(2);
        }
        if (s.pool != "last" && s.pool != "max")
        {
            std::fprintf(stderr, "imdb_sentiment: --pool must be last or max, not '%s'\n%s", s.pool.c_str(), usage);
            std::exit(2);
        }
        if (s.bf16 && (s.model == "rnn" || s.bidirectional))
        {
            std::fprintf(stderr, "imdb_sentiment: --bf16 is built for the one-direction LSTM and GRU models\n");
            std::exit(2);
        }
        if (s.pool == "max" && !s.bidirectional)
        {
            std::fprintf(stderr, "imdb_sentiment: --pool max is built for the bidirectional models: add --bidirectional\n");
            std::exit(2);
        }
        if (s.num_words > vocabulary_capacity)
        {
            std::fprintf(stderr, "imdb_sentiment: --num-words is at most %zu (the embedding's compile-time size)\n",
                         vocabulary_capacity);
            std::exit(2);
        }
        if (s.data.empty() && s.load.empty())
        {
            std::fprintf(stderr, "imdb_sentiment: give --data DIR (to train) or --load FILE (to predict)\n%s", usage);
            std::exit(2);
        }
        if (!s.load.empty() && s.predict.empty())
        {
            std::fprintf(stderr, "imdb_sentiment: --load is for --predict; to evaluate, train with --data\n");
            std::exit(2);
        }
        return s;
    }

    std::string path_in(const settings& s, const std::string& name)
    {
        return (std::filesystem::path(s.out) / name).string();
    }

    /// The model for --model, its recurrent layer configured as the seed programs had it.
    template <class Model, class Recurrent>
    Model build(const settings& s)
    {
        xrnn::random_engine rng(s.seed);
        xrnn::recurrent_options options;
        options.dropout = s.dropout;
        options.recurrent_dropout = s.model == "rnn" ? 0.0  // the seed's SimpleRNN had input dropout only
                                                     : s.recurrent_dropout;
        if constexpr (Recurrent::output_kind == xrnn::output::sequence)  // --pool max
        {
            Model model{embedding_layer(rng, xrnn::init_scheme::keras, s.mask), Recurrent(rng, options),
                        pool_layer<Recurrent>(), head_layer<Recurrent>(rng)};
            model.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<float>(s.learning_rate));
            return model;
        }
        else
        {
            Model model{embedding_layer(rng, xrnn::init_scheme::keras, s.mask), Recurrent(rng, options),
                        head_layer<Recurrent>(rng)};
            model.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<float>(s.learning_rate));
            return model;
        }
    }

    template <class Model>
    void print_prediction(Model& model, const xrnn::vocabulary& vocab, const settings& s)
    {
        const std::vector<std::int32_t> ids = vocab.encode(s.predict);
        const xt::xtensor<std::int32_t, 2> padded = xrnn::pad_sequences({ids}, s.maxlen);
        const xt::xtensor<std::int32_t, 1> review = xt::view(padded, 0, xt::all());
        const float positive = model.predict_one(review)(0);
        std::printf("review: \"%s\"\n  %zu words, %zu known; P(positive) = %.4f -> %s\n", s.predict.c_str(),
                    ids.size() - 1,
                    static_cast<std::size_t>(std::count_if(ids.begin() + 1, ids.end(), [](std::int32_t id) { return id > 2; })),
                    positive, positive >= 0.5f ? "positive" : "negative");
    }

    /// What --bf16 runs on: " with bf16 products (amx)" or "(portable)".
    std::string bf16_note()
    {
        return std::string(" with bf16 products (") + xrnn::to_string(xrnn::bf16_backend()) + ")";
    }

    template <class Model, class Recurrent>
    int run(const settings& s, examples::ranks& ranks)
    {
        const std::string name = std::string(s.bidirectional ? "Bidirectional " : "")
                                 + (s.model == "rnn" ? "RNN" : s.model == "gru" ? "GRU" : "LSTM")
                                 + (s.mask ? " (masked)" : "") + (s.pool == "max" ? " max-pooled" : "")
                                 + (s.bf16 ? bf16_note() : std::string());
        const std::string stem = "imdb_" + std::string(s.bidirectional ? "bi" : "") + s.model
                                 + (s.pool == "max" ? "_maxpool" : "") + (s.bf16 ? "_bf16" : "");
        const std::string weights = s.load.empty() ? path_in(s, stem + ".xrnnw") : s.load;
        Model model = build<Model, Recurrent>(s);
        ranks.distribute(model);  // under mpirun: every rank trains on its part of each batch
        if (!s.load.empty())
        {
            model.load(s.load);
            const auto vocab_file = std::filesystem::path(s.load).parent_path() / "imdb_vocab.txt";
            print_prediction(model, xrnn::vocabulary::load(vocab_file.string()), s);
            return 0;
        }

        xrnn::imdb_options data_options;
        data_options.num_words = s.num_words;
        data_options.maxlen = s.maxlen;
        data_options.limit_per_split = s.limit;
        data_options.cache_path = path_in(s, "imdb_cache_" + std::to_string(s.num_words) + "_" + std::to_string(s.maxlen)
                                                 + (s.limit ? "_limit" + std::to_string(s.limit) : "") + ".bin");
        const auto load_start = std::chrono::steady_clock::now();
        xrnn::imdb_dataset data;
        ranks.root_first([&] { data = xrnn::load_imdb(s.data, data_options); });  // rank 0 writes the cache
        std::printf("data: %zu training and %zu test reviews, %zu words kept, maxlen %zu (%s in %.1f s)\n",
                    data.x_train.shape()[0], data.x_test.shape()[0], data.vocab.size() - 3, s.maxlen,
                    data.from_cache ? "from the cache" : "parsed",
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count());
        if (!data.cache_note.empty())
        {
            std::printf("cache: %s\n", data.cache_note.c_str());
        }
        {
            // what a training epoch costs: with --mask the real words, without it the padded rectangle
            const std::size_t words = static_cast<std::size_t>(
                std::count_if(data.x_train.begin(), data.x_train.end(), [](std::int32_t id) { return id != 0; }));
            std::printf("training reviews: %zu words of %zu padded steps (%.1f%%)\n", words, data.x_train.size(),
                        100.0 * static_cast<double>(words) / static_cast<double>(data.x_train.size()));
        }
        if (ranks.root())
        {
            data.vocab.save(path_in(s, "imdb_vocab.txt"));
        }
        if (ranks.size() > 1)
        {
            std::printf("data-parallel on %zu processes (MPI): %zu reviews per step in all, about %zu per rank\n",
                        ranks.size(), s.batch_size, s.batch_size / ranks.size());
        }

        std::printf("%s", model.summary().c_str());
        xrnn::fit_options fit;
        fit.epochs = s.epochs;
        fit.batch_size = s.batch_size;
        fit.validation_split = s.validation_split;
        fit.clip_norm = s.clip_norm;
        fit.seed = s.seed;
        fit.bucket_by_length = s.bucket;
        if (!s.keep_last && s.validation_split > 0.0)
        {
            // Never stops early (patience = all epochs); only restores the best validation epoch at the end.
            fit.early_stop = xrnn::early_stopping{"val_accuracy", 0.0, s.epochs, true};
        }
        if (s.lr_decay != 1.0)
        {
            fit.on_epoch_end([&model, &s](const xrnn::epoch_logs&) {
                model.template optimizer<xrnn::adam<float>>().learning_rate *= s.lr_decay;
            });
        }
        const xrnn::history history = model.fit(data.x_train, data.y_train, fit);

        if (fit.early_stop)
        {
            std::size_t best = 0;
            for (std::size_t e = 1; e < history.size(); ++e)
            {
                best = history.epochs()[e].val_metric > history.epochs()[best].val_metric ? e : best;
            }
            std::printf("kept the weights of epoch %zu (best validation accuracy %.4f)\n", best + 1,
                        history.epochs()[best].val_metric);
        }
        const xrnn::evaluation test = model.evaluate(data.x_test, data.y_test, 256);
        std::printf("%s Test Accuracy: %.2f%% | Loss: %.4f\n", name.c_str(), 100.0 * test.metric, test.loss);

        if (!ranks.root())
        {
            return 0;  // files and the printed prediction are rank 0's
        }
        model.save(weights);
        const std::string csv = path_in(s, stem + "_history.csv");
        history.write_csv(csv);
        std::printf("wrote %s, %s and %s\n", weights.c_str(), path_in(s, "imdb_vocab.txt").c_str(), csv.c_str());
        const std::string png = path_in(s, stem + "_history.png");
        const bool has_validation = !history.empty() && history.back().has_validation;
        std::vector<examples::plot_panel> panels(2);
        panels[0] = {name + " accuracy per epoch", "epoch", "accuracy", {{"accuracy", "training"}}};
        panels[1] = {name + " loss per epoch", "epoch", "binary cross-entropy", {{"loss", "training"}}};
        if (has_validation)
        {
            panels[0].lines.push_back({"val_accuracy", "validation"});
            panels[1].lines.push_back({"val_loss", "validation"});
        }
        if (examples::draw_png(csv, png, "epoch", panels))
        {
            std::printf("wrote %s\n", png.c_str());
        }
        if (!s.predict.empty())
        {
            print_prediction(model, data.vocab, s);
        }
        return 0;
    }
}  // namespace

int main(int argc, char** argv)
{
    examples::ranks ranks(argc, argv);  // under mpirun (and built with MPI): data-parallel on its ranks
    const settings s = parse(argc, argv);
    try
    {
        std::filesystem::create_directories(s.out);
        using rnn = xrnn::rnn<float, embedding_width, hidden>;
        using lstm = xrnn::lstm<float, embedding_width, hidden>;
        using gru = xrnn::gru<float, embedding_width, hidden>;
        using birnn = xrnn::birnn<float, embedding_width, hidden>;
        using bilstm = xrnn::bilstm<float, embedding_width, hidden>;
        using bigru = xrnn::bigru<float, embedding_width, hidden>;
        using bilstm_steps = xrnn::bilstm<float, embedding_width, hidden, 1, xrnn::output::sequence>;
        using bigru_steps = xrnn::bigru<float, embedding_width, hidden, 1, xrnn::output::sequence>;
        using birnn_steps = xrnn::birnn<float, embedding_width, hidden, 1, xrnn::output::sequence>;
        if (s.bf16)  // one-direction LSTM or GRU only (checked in parse)
        {
            using lstm_bf16 = xrnn::lstm<float, embedding_width, hidden, 1, xrnn::output::last, xrnn::precision::bf16>;
            using gru_bf16 = xrnn::gru<float, embedding_width, hidden, 1, xrnn::output::last, xrnn::precision::bf16>;
            return s.model == "gru" ? run<model_of<gru_bf16>, gru_bf16>(s, ranks)
                                    : run<model_of<lstm_bf16>, lstm_bf16>(s, ranks);
        }
        if (s.pool == "max")  // --bidirectional only (checked in parse)
        {
            if (s.model == "rnn")
            {
                return run<pooled_model_of<birnn_steps>, birnn_steps>(s, ranks);
            }
            if (s.model == "gru")
            {
                return run<pooled_model_of<bigru_steps>, bigru_steps>(s, ranks);
            }
            return run<pooled_model_of<bilstm_steps>, bilstm_steps>(s, ranks);
        }
        if (s.model == "rnn")
        {
            return s.bidirectional ? run<model_of<birnn>, birnn>(s, ranks) : run<model_of<rnn>, rnn>(s, ranks);
        }
        if (s.model == "gru")
        {
            return s.bidirectional ? run<model_of<bigru>, bigru>(s, ranks) : run<model_of<gru>, gru>(s, ranks);
        }
        return s.bidirectional ? run<model_of<bilstm>, bilstm>(s, ranks) : run<model_of<lstm>, lstm>(s, ranks);
    }
    catch (const std::exception& e)
    {
        std::string message = std::string("imdb_sentiment: ") + e.what();
        if (s.load.empty())
        {
            message += "\nTo get the data set: bash examples/imdb_sentiment/download.sh DIR (needs internet)";
        }
        return ranks.fail(message);
    }
}
