// Serving: predictions per second of the IMDB LSTM (embedding 10000 x 128, LSTM 128, dense 1; reviews of 200 ids)
// from 1 and 2 threads sharing one model through predictors (model/predictor.hpp), at batch 1 and batch 64, and the
// memory of a predictor against that of a copy of the model. Prints one line per case:
//   case=serve_b64 threads=2 pool=1 predictions_per_s=... calls=... seconds=...
// Usage: xrnn_serving [seconds per case, default 3]
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include <xrnn/model.hpp>

namespace
{
    using imdb_lstm = xrnn::sequential<xrnn::embedding<float, 10000, 128>, xrnn::lstm<float, 128, 128>,
                                       xrnn::dense<float, 128, 1>>;
    constexpr std::size_t maxlen = 200;

    xt::xtensor<int, 2> reviews(std::size_t n, std::uint64_t seed)
    {
        xrnn::random_engine rng(seed);
        xt::xtensor<int, 2> x({n, maxlen});
        for (auto& id : x)
        {
            id = static_cast<int>(rng.below(10000));
        }
        return x;
    }

    /// Runs `threads` threads, each with its own predictor, predicting batches of `batch` for about `seconds`.
    void serve(imdb_lstm& model, std::size_t threads, std::size_t batch, double seconds)
    {
        const auto x = reviews(batch, 7);
        std::vector<xrnn::predictor<imdb_lstm>> predictors(threads, xrnn::predictor(model));
        for (auto& p : predictors)
        {
            p.predict(x, batch);  // warm: workspaces sized
        }
        std::atomic<bool> go{false};
        std::atomic<bool> stop{false};
        std::vector<std::size_t> calls(threads, 0);
        std::vector<std::thread> pool;
        for (std::size_t k = 0; k < threads; ++k)
        {
            pool.emplace_back([&, k] {
                while (!go.load())
                {
                }
                while (!stop.load(std::memory_order_relaxed))
                {
                    predictors[k].predict(x, batch);
                    ++calls[k];
                }
            });
        }
        const auto start = std::chrono::steady_clock::now();
        go = true;
        std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
        stop = true;
        for (auto& t : pool)
        {
            t.join();
        }
        const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::size_t total = 0;
        for (std::size_t c : calls)
        {
            total += c;
        }
        std::printf("case=serve_b%zu threads=%zu pool=%zu predictions_per_s=%.1f calls=%zu seconds=%.2f\n", batch,
                    threads, xrnn::num_threads(), static_cast<double>(total * batch) / elapsed, total, elapsed);
        std::fflush(stdout);
    }
}  // namespace

int main(int argc, char** argv)
{
    const double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
    xrnn::random_engine rng(42);
    imdb_lstm model(rng);
    model.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<float>(1e-3));

    std::size_t weight_bytes = 0;
    model.for_each_parameter([&](const auto&, auto& value, auto&) { weight_bytes += value.size() * sizeof(float); });
    xrnn::predictor single(model);
    single.predict(reviews(1, 3), 1);
    xrnn::predictor one(model);
    one.predict(reviews(64, 3), 64);
    std::printf("memory: weights %.2f MiB; one predictor after a batch-1 predict %.3f MiB, after a batch-64 predict "
                "%.2f MiB; a copy of the model per thread holds the same workspaces plus the weights again\n",
                weight_bytes / 1048576.0, single.workspace_bytes() / 1048576.0, one.workspace_bytes() / 1048576.0);

    for (std::size_t pool : {std::size_t(1), std::size_t(2)})
    {
        xrnn::set_num_threads(pool);  // xrnn's pool for the batch split inside one call
        for (std::size_t batch : {std::size_t(1), std::size_t(64)})
        {
            for (std::size_t threads : {std::size_t(1), std::size_t(2)})
            {
                serve(model, threads, batch, seconds);
            }
        }
    }
    return 0;
}
