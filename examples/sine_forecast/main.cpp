// sine_forecast: a stacked LSTM or GRU learns to forecast the next value of a (noisy) sine wave.
//
// What it shows: many-to-one regression on a time series. The wave x_t = sin(0.1 t) + noise is cut into
// windows: the last --seq-length values are the input, shape (N, seq_length, 1), and the value right after them
// is the target, shape (N, 1). The first 80% of the windows train the model; the last 20%, later in time, are
// held out to test it, so the model is judged on a part of the wave it has never seen (nothing is shuffled
// across that split; only the training windows are shuffled between epochs).
//
//   LSTM or GRU (--cell; --layers stacked, 32 hidden units) -> its last hidden state -> Dense -> the next value
//
// trained with mean squared error and Adam. It prints the train and test MSE next to two baselines (the untrained
// model, and "the next value equals the last one") and the noise floor, writes the held-out forecast to
// sine_forecast.csv (t, actual, predicted) and the training history to sine_forecast_history.csv, and draws them
// as sine_forecast.png and sine_forecast_history.png when gnuplot is installed.
//
//   sine_forecast                              # 1000 points, noise 0.05, 1 LSTM layer
//   sine_forecast --layers 2 --noise 0.1 --out results
//   sine_forecast --cell gru
//   sine_forecast --help
//   mpirun -np 2 sine_forecast                 # data-parallel on 2 processes (when built with MPI)
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include <xrnn/xrnn.hpp>

#include "../common/cli.hpp"
#include "../common/distributed.hpp"
#include "../common/plot.hpp"

namespace
{
    // Layer sizes are template parameters in xtensor-rnn, fixed when the program is compiled: the hidden size is
    // this constant, and each cell and layer count is its own model type (train_and_report below).
    constexpr std::size_t hidden_size = 32;

    template <std::size_t Layers>
    using lstm_forecaster =
        xrnn::sequential<xrnn::lstm<float, 1, hidden_size, Layers>, xrnn::dense<float, hidden_size, 1>>;
    template <std::size_t Layers>
    using gru_forecaster = xrnn::sequential<xrnn::gru<float, 1, hidden_size, Layers>, xrnn::dense<float, hidden_size, 1>>;

    constexpr double angular_step = 0.1;  // x_t = sin(0.1 t): one period is 2 pi / 0.1 = 62.8 points
    constexpr double train_fraction = 0.8;

    const char* const usage =
        "usage: sine_forecast [--cell lstm|gru] [--length N] [--noise STD] [--seq-length N] [--layers 1|2|3]\n"
        "                     [--epochs N] [--batch-size N] [--learning-rate R] [--seed S] [--out DIR]\n"
        "\n"
        "Trains a stacked LSTM or GRU to forecast the next value of sin(0.1 t) + noise from the values before it.\n"
        "\n"
        "  --cell C            the recurrent cell, lstm or gru (default lstm)\n"
        "\n"
        "  --length N          points of the wave (default 1000)\n"
        "  --noise STD         standard deviation of the Gaussian noise added to each point (default 0.05)\n"
        "  --seq-length N      lookback window: values the model sees before each forecast (default 20)\n"
        "  --layers L          stacked recurrent layers, 1, 2 or 3 (default 1); 32 hidden units each\n"
        "  --epochs N          passes over the training windows (default 20)\n"
        "  --batch-size N      windows per optimizer step (default 32)\n"
        "  --learning-rate R   Adam's learning rate (default 0.005)\n"
        "  --seed S            seed of the noise, the initial weights and the shuffling (default 1)\n"
        "  --out DIR           where the CSV files and PNGs go (default: the current directory)\n"
        "  --help              this text\n";

    struct settings
    {
        std::string cell;
        std::size_t length;
        double noise;
        std::size_t seq_length;
        std::size_t layers;
        std::size_t epochs;
        std::size_t batch_size;
        double learning_rate;
        std::uint64_t seed;
        std::filesystem::path out;
    };

    /// What is wrong with the settings, or "" when nothing is.
    std::string check(const settings& s)
    {
        if (s.cell != "lstm" && s.cell != "gru")
        {
            return "--cell must be lstm or gru, not '" + s.cell + "'";
        }
        if (s.layers < 1 || s.layers > 3)
        {
            return "--layers must be 1, 2 or 3 (each is a model type compiled into this program), not "
                   + std::to_string(s.layers);
        }
        if (s.seq_length == 0)
        {
            return "--seq-length must be at least 1";
        }
        if (s.length < s.seq_length + 5)  // at least 5 windows, so that the test's 20% is at least one
        {
            return "--length must be at least seq-length + 5 = " + std::to_string(s.seq_length + 5);
        }
        if (s.noise < 0.0)
        {
            return "--noise is a standard deviation and cannot be negative";
        }
        if (s.epochs == 0 || s.batch_size == 0)
        {
            return "--epochs and --batch-size must be at least 1";
        }
        if (!(s.learning_rate > 0.0))
        {
            return "--learning-rate must be greater than 0";
        }
        return "";
    }

    /// sin(0.1 t) + N(0, noise^2) for t = 0 .. length-1.
    std::vector<float> make_wave(std::size_t length, double noise, xrnn::random_engine& rng)
    {
        std::vector<float> wave(length);
        for (std::size_t t = 0; t < length; ++t)
        {
            wave[t] = static_cast<float>(std::sin(angular_step * static_cast<double>(t)) + noise * rng.normal());
        }
        return wave;
    }

    /// Windows x (N, S, 1) = wave[i, i+S) and targets y (N, 1) = wave[i+S], for i in [first, last).
    struct windows
    {
        xt::xtensor<float, 3> x;
        xt::xtensor<float, 2> y;
        std::size_t first_target_t;  // the time step of y(0, 0)
    };

    windows make_windows(const std::vector<float>& wave, std::size_t seq_length, std::size_t first, std::size_t last)
    {
        const std::size_t n = last - first;
        windows data{xt::xtensor<float, 3>({n, seq_length, 1}), xt::xtensor<float, 2>({n, 1}), first + seq_length};
        for (std::size_t i = 0; i < n; ++i)
        {
            for (std::size_t t = 0; t < seq_length; ++t)
            {
                data.x(i, t, 0) = wave[first + i + t];
            }
            data.y(i, 0) = wave[first + i + seq_length];
        }
        return data;
    }

    /// MSE of the naive forecast "the next value equals the last one seen": a model must beat this to be useful.
    double persistence_mse(const windows& data)
    {
        const std::size_t n = data.y.shape()[0];
        const std::size_t last = data.x.shape()[1] - 1;
        double sum = 0.0;
        for (std::size_t i = 0; i < n; ++i)
        {
            const double error = static_cast<double>(data.x(i, last, 0)) - data.y(i, 0);
            sum += error * error;
        }
        return sum / static_cast<double>(n);
    }

    void write_forecast_csv(const std::string& path, const windows& test, const xt::xtensor<float, 2>& predicted)
    {
        std::FILE* file = std::fopen(path.c_str(), "w");
        if (file == nullptr)
        {
            throw xrnn::io_error("cannot open '" + path + "' for writing");
        }
        std::fprintf(file, "t,actual,predicted\n");
        for (std::size_t i = 0; i < test.y.shape()[0]; ++i)
        {
            std::fprintf(file, "%zu,%.6f,%.6f\n", test.first_target_t + i, static_cast<double>(test.y(i, 0)),
                         static_cast<double>(predicted(i, 0)));
        }
        if (std::fclose(file) != 0)
        {
            throw xrnn::io_error("writing '" + path + "' failed");
        }
    }

    void draw_plots(const settings& s, const std::string& forecast_csv, const std::string& history_csv)
    {
        const std::string forecast_png = (s.out / "sine_forecast.png").string();
        const std::string title = "Held-out forecast, " + std::to_string(s.layers) + "-layer "
                                  + (s.cell == "gru" ? "GRU" : "LSTM") + ", lookback "
                                  + std::to_string(s.seq_length);
        if (examples::draw_png(forecast_csv, forecast_png, "t",
                               {{title, "time step t", "x_t = sin(0.1 t) + noise",
                                 {{"actual", "actual"}, {"predicted", "predicted (one step ahead)"}}}}))
        {
            std::printf("wrote %s\n", forecast_png.c_str());
        }
        const std::string history_png = (s.out / "sine_forecast_history.png").string();
        const std::string train = "train (mean over the epoch)";
        const std::string held_out = "held-out test (end of epoch)";
        if (examples::draw_png(history_csv, history_png, "epoch",
                               {{"Loss per epoch", "epoch", "mean squared error",
                                 {{"loss", train}, {"val_loss", held_out}}},
                                {"Mean absolute error per epoch", "epoch", "mean absolute error",
                                 {{"mae", train}, {"val_mae", held_out}}}}))
        {
            std::printf("wrote %s\n", history_png.c_str());
        }
    }

    /// Builds, trains and evaluates the Model (a forecaster with its cell and layer count); writes the CSVs and plots.
    template <class Model>
    void train_and_report(const settings& s, const windows& train, const windows& test, xrnn::random_engine& rng,
                          examples::ranks& ranks)
    {
        Model model(rng);
        model.compile(xrnn::objective::mean_squared_error, xrnn::adam<float>(s.learning_rate));
        ranks.distribute(model);  // under mpirun: every rank trains on its part of each batch
        std::printf("%s", model.summary().c_str());
        const double untrained_mse = model.evaluate(test.x, test.y).loss;

        xrnn::fit_options options;
        options.epochs = s.epochs;
        options.batch_size = s.batch_size;
        options.shuffle = true;
        options.seed = s.seed;
        // The test windows are passed as validation data only to record the held-out loss after each epoch
        // for the plot; nothing is chosen by it (no early stopping), so it stays a fair test.
        std::printf("training (val_ = the held-out test windows):\n");
        const xrnn::history history = model.fit(train.x, train.y, test.x, test.y, options);

        const xrnn::evaluation on_train = model.evaluate(train.x, train.y);
        const xrnn::evaluation on_test = model.evaluate(test.x, test.y);
        // %.4g: a clean wave's MSE is about 1e-5, which a fixed six decimals would print as 0.000000
        std::printf("\ntrain MSE %.4g   test MSE %.4g   (test MAE %.4g)\n", on_train.loss, on_test.loss,
                    on_test.metric);
        std::printf("on the test windows, for comparison: the untrained model's MSE %.4g, \"next = last value\" %.4g; "
                    "no forecast can beat the noise's variance %.4g\n",
                    untrained_mse, persistence_mse(test), s.noise * s.noise);

        const std::string forecast_csv = (s.out / "sine_forecast.csv").string();
        const std::string history_csv = (s.out / "sine_forecast_history.csv").string();
        const xt::xtensor<float, 2> predicted = model.predict(test.x);  // on every rank: a collective
        if (!ranks.root())
        {
            return;  // files are rank 0's
        }
        write_forecast_csv(forecast_csv, test, predicted);
        history.write_csv(history_csv);
        std::printf("wrote %s and %s\n", forecast_csv.c_str(), history_csv.c_str());
        draw_plots(s, forecast_csv, history_csv);
    }

    /// The whole run: the wave, its windows, the split, then training with the requested layer count.
    void forecast(const settings& s, examples::ranks& ranks)
    {
        std::filesystem::create_directories(s.out);
        xrnn::random_engine rng(s.seed);
        xrnn::random_engine noise_rng = rng.split();
        const std::vector<float> wave = make_wave(s.length, s.noise, noise_rng);
        const std::size_t count = s.length - s.seq_length;
        const auto train_count = static_cast<std::size_t>(train_fraction * static_cast<double>(count));
        const windows train = make_windows(wave, s.seq_length, 0, train_count);
        const windows test = make_windows(wave, s.seq_length, train_count, count);
        std::printf("wave: %zu points of sin(0.1 t) + N(0, %g^2); windows of %zu values -> the next value\n", s.length,
                    s.noise, s.seq_length);
        std::printf("train: %zu windows (targets t = %zu..%zu)   test: %zu windows (targets t = %zu..%zu)\n",
                    train_count, train.first_target_t, train.first_target_t + train_count - 1, count - train_count,
                    test.first_target_t, s.length - 1);

        // The cell and the layer count are part of the model's type, so each choice is its own compiled instantiation.
        const bool gru = s.cell == "gru";
        switch (s.layers)
        {
        case 1:
            gru ? train_and_report<gru_forecaster<1>>(s, train, test, rng, ranks)
                : train_and_report<lstm_forecaster<1>>(s, train, test, rng, ranks);
            break;
        case 2:
            gru ? train_and_report<gru_forecaster<2>>(s, train, test, rng, ranks)
                : train_and_report<lstm_forecaster<2>>(s, train, test, rng, ranks);
            break;
        default:
            gru ? train_and_report<gru_forecaster<3>>(s, train, test, rng, ranks)
                : train_and_report<lstm_forecaster<3>>(s, train, test, rng, ranks);
            break;
        }
    }
}  // namespace

int main(int argc, char** argv)
{
    examples::ranks ranks(argc, argv);  // under mpirun (and built with MPI): data-parallel on its ranks
    examples::cli args(argc, argv, usage);
    settings s;
    s.cell = args.get("cell", "lstm");
    s.length = args.number<std::size_t>("length", 1000);
    s.noise = args.number<double>("noise", 0.05);
    s.seq_length = args.number<std::size_t>("seq-length", 20);
    s.layers = args.number<std::size_t>("layers", 1);
    s.epochs = args.number<std::size_t>("epochs", 20);
    s.batch_size = args.number<std::size_t>("batch-size", 32);
    s.learning_rate = args.number<double>("learning-rate", 0.005);
    s.seed = args.number<std::uint64_t>("seed", 1);
    s.out = args.get("out", ".");
    args.finish();

    const std::string problem = check(s);
    if (!problem.empty())
    {
        std::fprintf(stderr, "sine_forecast: %s\n\n%s", problem.c_str(), usage);
        return 2;
    }
    try
    {
        if (ranks.size() > 1)
        {
            std::printf("data-parallel on %zu processes (MPI): --batch-size %zu windows per step in all\n",
                        ranks.size(), s.batch_size);
        }
        forecast(s, ranks);
    }
    catch (const std::exception& e)  // a file that cannot be written, say
    {
        return ranks.fail(std::string("sine_forecast: ") + e.what());
    }
    return 0;
}
