// Data-parallel training of the IMDB LSTM (Embedding(10000, 128) -> LSTM(128) -> Dense(1), as examples/imdb_sentiment,
// float, dropout 0.2/0.2, batch 64, reviews cut to 200 words): run it alone and under mpirun to compare.
//
//   XRNN_NUM_THREADS=2 xrnn_bench_distributed --data DIR/aclImdb [--limit N] [--epochs 1]          # 1 process x 2
//   mpirun -np 2 -x XRNN_NUM_THREADS=1 xrnn_bench_distributed --data DIR/aclImdb [--limit N]         # 2 processes x 1
//   mpirun -np 2 xrnn_bench_distributed --data DIR/aclImdb --reduce-only 200                         # the allreduce
//   xrnn_bench_distributed --data DIR/aclImdb --union-stats 20     # embedding rows touched by a global batch
//
// Prints, on rank 0: the time of each epoch (training on 80% of the training reviews and validating on the rest),
// the steps, and the time reduce_gradients took per step (scaling, packing, MPI, unpacking) with the values it
// moved. --reduce-only S skips training: it runs S steps of forward and backward on real batches (timed apart)
// and reduces each step's gradient once with every sparse_reduction (dense, rows, union_rows), so that the three
// are timed on the same gradients, interleaved.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <xrnn/mpi.hpp>
#include <xrnn/text.hpp>
#include <xrnn/xrnn.hpp>

namespace
{
    using model_type = xrnn::sequential<xrnn::embedding<float, 10000, 128>, xrnn::lstm<float, 128, 128>,
                                        xrnn::dense<float, 128, 1>>;

    model_type build(std::uint64_t seed)
    {
        xrnn::random_engine rng(seed);
        xrnn::recurrent_options o;
        o.dropout = 0.2;
        o.recurrent_dropout = 0.2;
        model_type model{xrnn::embedding<float, 10000, 128>(rng), xrnn::lstm<float, 128, 128>(rng, o),
                         xrnn::dense<float, 128, 1>(rng)};
        model.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<float>(1e-3f));
        return model;
    }

    const char* name(xrnn::mpi::sparse_reduction r)
    {
        return r == xrnn::mpi::sparse_reduction::dense ? "dense" : r == xrnn::mpi::sparse_reduction::rows ? "rows"
                                                                                                          : "union_rows";
    }
}  // namespace

int main(int argc, char** argv)
{
    xrnn::mpi::environment env(argc, argv);
    auto world = xrnn::mpi::world();
    std::string data_dir;
    std::size_t limit = 0;
    std::size_t epochs = 1;
    std::size_t batch_size = 64;
    std::size_t reduce_only = 0;
    std::size_t union_stats = 0;  // > 0: print the distinct ids of global batches of 32 .. 8192 reviews, no training
    for (int i = 1; i + 1 < argc; i += 2)
    {
        const std::string key = argv[i];
        const char* value = argv[i + 1];
        if (key == "--data") data_dir = value;
        else if (key == "--limit") limit = std::strtoul(value, nullptr, 10);
        else if (key == "--epochs") epochs = std::strtoul(value, nullptr, 10);
        else if (key == "--batch-size") batch_size = std::strtoul(value, nullptr, 10);
        else if (key == "--reduce-only") reduce_only = std::strtoul(value, nullptr, 10);
        else if (key == "--union-stats") union_stats = std::strtoul(value, nullptr, 10);
        else
        {
            std::fprintf(stderr, "unknown option %s\n", key.c_str());
            return 2;
        }
    }
    const bool root = world->rank() == 0;
    xrnn::imdb_options o;
    o.num_words = 10000;
    o.maxlen = 200;
    o.limit_per_split = limit;
    o.cache_path = "/tmp/xrnn_bench_imdb_cache_" + std::to_string(limit) + ".bin";
    xrnn::imdb_dataset data;
    if (root)
    {
        data = xrnn::load_imdb(data_dir, o);
    }
    MPI_Barrier(world->comm());
    if (!root)
    {
        data = xrnn::load_imdb(data_dir, o);
    }
    model_type model = build(1);
    if (root)
    {
        std::printf("%zu processes x %zu threads; %zu training reviews, batch %zu (%zu per rank); %zu parameters, "
                    "%zu in the embedding\n",
                    world->size(), xrnn::num_threads(), data.x_train.shape()[0], batch_size, batch_size / world->size(),
                    model.parameter_count(), std::size_t(10000 * 128));
    }

    if (union_stats > 0)
    {
        // U(B), the embedding rows that a global batch of B reviews touches (the union of all ranks' rows): what
        // union_rows puts in the allreduce. Averaged over `union_stats` batches of consecutive reviews.
        if (root)
        {
            const std::size_t n = data.x_train.shape()[0];
            const std::size_t maxlen = data.x_train.shape()[1];
            for (std::size_t b = 32; b <= 8192 && b <= n; b *= 2)
            {
                double total = 0.0;
                for (std::size_t k = 0; k < union_stats; ++k)
                {
                    std::vector<char> seen(10000, 0);
                    const std::size_t first = (k * b) % (n - b + 1);
                    for (std::size_t i = first; i < first + b; ++i)
                    {
                        for (std::size_t t = 0; t < maxlen; ++t)
                        {
                            seen[static_cast<std::size_t>(data.x_train(i, t))] = 1;
                        }
                    }
                    total += static_cast<double>(std::count(seen.begin(), seen.end(), 1));
                }
                std::printf("global batch %5zu reviews: %7.0f distinct ids of 10000 (padding id 0 included)\n", b,
                            total / static_cast<double>(union_stats));
            }
        }
        return 0;
    }

    if (reduce_only > 0)
    {
        // Real gradients: forward and backward on this rank's part of consecutive batches, each reduced three
        // ways (the gradient is restored before each), the ways interleaved.
        const std::size_t per_rank = batch_size / world->size();
        const std::vector<std::size_t> index = xrnn::detail::all_indices(data.x_train.shape()[0]);
        model_type::batch_input_t<std::int32_t, 2> batch;
        xt::xtensor<float, 2> target;
        xt::xtensor<float, 2> grad;
        xrnn::gradient_set gradients;
        const xrnn::mpi::sparse_reduction ways[3] = {xrnn::mpi::sparse_reduction::dense,
                                                     xrnn::mpi::sparse_reduction::rows,
                                                     xrnn::mpi::sparse_reduction::union_rows};
        double seconds[3] = {0, 0, 0};
        std::size_t dense_values[3] = {0, 0, 0};
        std::size_t sparse_values[3] = {0, 0, 0};
        std::size_t rows[3] = {0, 0, 0};
        double compute = 0.0;
        std::vector<float> saved;
        for (std::size_t step = 0; step < reduce_only; ++step)
        {
            const std::size_t first = (step * batch_size + world->rank() * per_rank) % (index.size() - per_rank);
            const auto start = std::chrono::steady_clock::now();
            xrnn::detail::gather<true>(data.x_train, index, first, per_rank, batch);
            xrnn::detail::gather<false>(data.y_train, index, first, per_rank, target);
            xrnn::zero_grad(model);
            xrnn::detail::running_score score;
            xrnn::detail::score_batch(xrnn::objective::binary_cross_entropy, model.forward(batch, xrnn::mode::training),
                                      target, &grad, score, per_rank);
            model.backward(grad);
            compute += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            gradients.collect(model);
            saved.clear();
            gradients.for_each([&](const std::string&, float* g, std::size_t n) { saved.insert(saved.end(), g, g + n); });
            for (std::size_t w = 0; w < 3; ++w)
            {
                std::size_t offset = 0;
                gradients.for_each([&](const std::string&, float* g, std::size_t n) {
                    std::copy(saved.begin() + offset, saved.begin() + offset + n, g);
                    offset += n;
                });
                world->sparse_gradients = ways[w];
                world->reset_stats();
                MPI_Barrier(world->comm());
                world->reduce_gradients(gradients, 1.0 / static_cast<double>(world->size()));
                seconds[w] += world->stats().gradient_seconds;
                dense_values[w] += world->stats().dense_values;
                sparse_values[w] += world->stats().sparse_values;
                rows[w] += world->stats().sparse_rows;
            }
        }
        if (root)
        {
            const double steps = static_cast<double>(reduce_only);
            std::printf("forward+backward of a rank's part: %.2f ms/step\n", 1e3 * compute / steps);
            for (std::size_t w = 0; w < 3; ++w)
            {
                std::printf("reduce_gradients %-10s %7.2f ms/step; per step %9.0f values in the fused allreduce, "
                            "%9.0f values (+ row ids) gathered as rows, %6.0f embedding rows\n",
                            name(ways[w]), 1e3 * seconds[w] / steps, static_cast<double>(dense_values[w]) / steps,
                            static_cast<double>(sparse_values[w]) / steps, static_cast<double>(rows[w]) / steps);
            }
        }
        return 0;
    }

    model.distribute(world);
    xrnn::fit_options f;
    f.epochs = epochs;
    f.batch_size = batch_size;
    f.validation_split = 0.2;
    f.clip_norm = 1.0;
    f.seed = 1;
    f.verbosity = xrnn::progress::per_epoch;
    world->reset_stats();
    const xrnn::history h = model.fit(data.x_train, data.y_train, f);
    if (root)
    {
        for (const auto& e : h.epochs())
        {
            std::printf("epoch %zu: %.2f s (%zu steps, %.1f ms/step with validation), loss %.4f, accuracy %.4f, "
                        "val_accuracy %.4f\n",
                        e.epoch, e.seconds, e.steps, 1e3 * e.seconds / static_cast<double>(e.steps), e.loss, e.metric,
                        e.val_metric);
        }
        const auto& s = world->stats();
        if (world->size() > 1)
        {
            std::printf("reduce_gradients (%s): %.2f ms/step over %zu steps; per step %.0f values in the fused "
                        "allreduce, %.0f values gathered as rows\n",
                        name(world->sparse_gradients), 1e3 * s.gradient_seconds / static_cast<double>(s.steps), s.steps,
                        static_cast<double>(s.dense_values) / static_cast<double>(s.steps),
                        static_cast<double>(s.sparse_values) / static_cast<double>(s.steps));
        }
    }
    return 0;
}
