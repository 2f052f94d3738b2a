// examples/from_pytorch: run a model trained in PyTorch, keep training it here, and give it back to PyTorch.
//
//   python3 examples/from_pytorch/train.py        # PyTorch: trains, writes model.safetensors + predictions.txt
//   from_pytorch --weights examples/from_pytorch/model.safetensors --out results
//   python3 examples/from_pytorch/train.py --check results/continued.safetensors
//
// The model is train.py's Forecaster: nn.LSTM(1, 16) whose last step goes through nn.Linear(16, 1), here
//   xrnn::sequential<xrnn::lstm<float, 1, 16>, xrnn::dense<float, 16, 1>>
// and its state_dict names are read with the prefixes {"lstm", "fc"} (lstm.weight_ih_l0, ..., fc.weight, fc.bias).
// The program prints its predictions next to PyTorch's (predictions.txt beside the weights), trains one more epoch
// with Adam on the same windows, and writes continued.safetensors (PyTorch's names; load_state_dict(strict=True)
// accepts it) and continued_predictions.txt, which train.py --check compares with PyTorch's own.
//
// One difference to know: PyTorch's LSTM has two biases (bias_ih, bias_hh) where xrnn keeps their sum. The outputs
// are the same; training on from here moves the sum as one parameter, so Adam's path differs slightly from the one
// PyTorch would take. The export writes the sum to bias_ih and zeros to bias_hh.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <xrnn/io/safetensors.hpp>
#include <xrnn/xrnn.hpp>

#include "../common/cli.hpp"

namespace
{
    constexpr std::size_t seq = 20, hidden = 16, length = 500, train_windows = 380, shown = 5;
    using forecaster = xrnn::sequential<xrnn::lstm<float, 1, hidden>, xrnn::dense<float, hidden, 1>>;
    const std::vector<std::string> prefixes{"lstm", "fc"};  // train.py's attribute names

    const char* usage =
        "usage: from_pytorch [--weights FILE] [--epochs N] [--out DIR]\n"
        "  --weights FILE   the PyTorch model as safetensors (default examples/from_pytorch/model.safetensors);\n"
        "                   predictions.txt beside it holds PyTorch's predictions, when present\n"
        "  --epochs N       epochs of training here (default 1)\n"
        "  --out DIR        where continued.safetensors goes (default .)\n";

    struct windows
    {
        xt::xtensor<float, 3> x;  // (N, seq, 1)
        xt::xtensor<float, 2> y;  // (N, 1)
    };

    /// train.py's data: windows of s(t) = sin(0.2 t) + 0.5 sin(0.07 t), the first 380 for training.
    windows make_windows(std::size_t first, std::size_t count)
    {
        windows w{xt::xtensor<float, 3>({count, seq, 1}), xt::xtensor<float, 2>({count, 1})};
        auto s = [](std::size_t t) {
            return static_cast<float>(std::sin(0.2 * double(t)) + 0.5 * std::sin(0.07 * double(t)));
        };
        for (std::size_t i = 0; i < count; ++i)
        {
            for (std::size_t j = 0; j < seq; ++j)
            {
                w.x(i, j, 0) = s(first + i + j);
            }
            w.y(i, 0) = s(first + i + seq);
        }
        return w;
    }

    std::vector<double> read_predictions(const std::string& path)
    {
        std::vector<double> values;
        std::ifstream in(path);
        std::size_t index;
        double value;
        while (in >> index >> value)
        {
            values.push_back(value);
        }
        return values;
    }

    void write_predictions(const std::string& path, const xt::xtensor<float, 2>& p)
    {
        std::ofstream out(path);
        out.precision(9);
        for (std::size_t i = 0; i < p.shape()[0]; ++i)
        {
            out << i << " " << p(i, 0) << "\n";
        }
    }
}  // namespace

int main(int argc, char** argv)
{
    examples::cli args(argc, argv, usage);
    const std::string weights = args.get("weights", "examples/from_pytorch/model.safetensors");
    const auto epochs = args.number<std::size_t>("epochs", 1);
    const std::string out = args.get("out", ".");
    args.finish();

    try
    {
        xrnn::random_engine rng(1);
        forecaster model(rng);
        model.compile(xrnn::objective::mean_squared_error, xrnn::adam<float>(1e-3));
        xrnn::load_safetensors(weights, model, xrnn::weight_convention::torch, prefixes);
        std::printf("loaded %s (PyTorch names: lstm.weight_ih_l0 ... fc.bias)\n", weights.c_str());

        const windows train = make_windows(0, train_windows);
        const windows test = make_windows(train_windows, length - seq - train_windows);
        const windows first = make_windows(train_windows, shown);

        // 1. The same predictions as PyTorch.
        const xt::xtensor<float, 2> mine = model.predict(first.x);
        const auto theirs =
            read_predictions((std::filesystem::path(weights).parent_path() / "predictions.txt").string());
        double worst = 0;
        std::printf("window  PyTorch     xrnn\n");
        for (std::size_t i = 0; i < shown; ++i)
        {
            const double t = i < theirs.size() ? theirs[i] : NAN;
            std::printf("%6zu  %9.6f  %9.6f\n", i, t, static_cast<double>(mine(i, 0)));
            worst = std::max(worst, std::fabs(t - mine(i, 0)));
        }
        if (theirs.size() == shown)
        {
            std::printf("max |difference| %.2e: %s\n", worst,
                        worst < 1e-5 ? "same predictions as PyTorch" : "DIFFERENT from PyTorch");
            if (!(worst < 1e-5))
            {
                return 1;
            }
        }

        // 2. Keep training here (Adam, learning rate 1e-3, batches of 32).
        const double before = model.evaluate(test.x, test.y).loss;
        xrnn::fit_options options;
        options.epochs = epochs;
        options.batch_size = 32;
        options.seed = 1;
        options.verbosity = xrnn::progress::silent;
        model.fit(train.x, train.y, options);
        const double after = model.evaluate(test.x, test.y).loss;
        std::printf("test MSE: %.6f from PyTorch, %.6f after %zu more epoch(s) here\n", before, after, epochs);

        // 3. Back to PyTorch.
        std::filesystem::create_directories(out);
        const std::string exported = (std::filesystem::path(out) / "continued.safetensors").string();
        xrnn::save_safetensors(exported, model, xrnn::weight_convention::torch, prefixes);
        write_predictions((std::filesystem::path(out) / "continued_predictions.txt").string(), model.predict(first.x));
        std::printf("wrote %s: python3 examples/from_pytorch/train.py --check %s\n", exported.c_str(),
                    exported.c_str());
    }
    catch (const std::exception& e)
    {
        std::fprintf(stderr, "from_pytorch: %s\n", e.what());
        return 1;
    }
    return 0;
}
