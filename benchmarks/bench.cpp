// xtensor-rnn benchmark: every case of benchmarks/README.md, one line each:
//   case=<name> impl=xrnn ms=<median> min=<min> max=<max> reps=<n>
// Shapes are the IMDB sentiment model's: vocabulary V = 10000, embedding D = 128, hidden H = 128, S = 200 steps,
// batch B = 64, Dense(128 -> 1), binary cross-entropy on logits, Adam. float throughout. The {rnn,lstm,gru}_layer_train
// and _layer_forward cases time the recurrent layer alone, as onednn_reference.cpp does with oneDNN. The first line,
// "# peak_fma isa=... gflops_per_core=...", is one core's measured peak multiply-add rate (compare.sh's FLOP floors).
//
// Usage: xrnn_bench [case ...]      (no argument: every case; lstm_train_phases, lstm_train_phases_masked, rnn_train_phases and
//                                   gru_train_phases, the median
//                                   time of each phase of a training step, and lstm_forward_floor and
//                                   rnn_forward_floor, the GEMMs of an inference forward alone, only when named)
//        XRNN_BENCH_REPS=n xrnn_bench ...   n timed repetitions per case, one warm-up (for profilers)
// Threads: 2 for OpenBLAS (openblas_set_num_threads; compare.sh also exports OPENBLAS_NUM_THREADS=2) and 2 for
// xrnn's recurrent layers (xrnn::set_num_threads); XRNN_BENCH_THREADS=n sets n for both instead.
// bf16 kernel: the machine's (the "# bf16_kernel" line); XRNN_BENCH_BF16_KERNEL=avx512_bf16 skips AMX (to time the
// AVX512-BF16 kernel on a CPU that has both), =portable forces the portable loops.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <immintrin.h>

#include <xrnn/detail/blas.hpp>
#include <xrnn/detail/tensor.hpp>
#include <xrnn/layers/bidirectional.hpp>
#include <xrnn/layers/dense.hpp>
#include <xrnn/layers/embedding.hpp>
#include <xrnn/layers/gru.hpp>
#include <xrnn/layers/lstm.hpp>
#include <xrnn/layers/rnn.hpp>
#include <xrnn/loss.hpp>
#include <xrnn/optim.hpp>
#include <xrnn/precision.hpp>
#include <xrnn/threads.hpp>

extern "C"
{
    // OpenBLAS's own controls; weak so that the program still links against another BLAS.
    void openblas_set_num_threads(int) __attribute__((weak));
    int openblas_get_num_threads() __attribute__((weak));
    char* openblas_get_config() __attribute__((weak));
}

namespace
{
    constexpr std::size_t V = 10000;
    constexpr std::size_t D = 128;
    constexpr std::size_t H = 128;
    constexpr std::size_t S = 200;
    constexpr std::size_t B = 64;

    using clock_type = std::chrono::steady_clock;

    struct stats
    {
        double median = 0;
        double min = 0;
        double max = 0;
        std::size_t reps = 0;
    };

    /// Runs f `warmup` times untimed, then `reps` times timed; f returns how many units of work it did (the
    /// reported times are per unit: per training step, per forward, per cell step).
    template <class F>
    stats measure(std::size_t warmup, std::size_t reps, F&& f)
    {
        if (const char* override_reps = std::getenv("XRNN_BENCH_REPS"))
        {
            reps = std::max<std::size_t>(1, std::strtoul(override_reps, nullptr, 10));
            warmup = 1;
        }
        for (std::size_t r = 0; r < warmup; ++r)
        {
            f();
        }
        std::vector<double> ms;
        for (std::size_t r = 0; r < reps; ++r)
        {
            const auto start = clock_type::now();
            const std::size_t units = f();
            const auto stop = clock_type::now();
            ms.push_back(std::chrono::duration<double, std::milli>(stop - start).count() / static_cast<double>(units));
        }
        std::sort(ms.begin(), ms.end());
        stats s;
        s.reps = reps;
        s.min = ms.front();
        s.max = ms.back();
        s.median = reps % 2 == 1 ? ms[reps / 2] : 0.5 * (ms[reps / 2 - 1] + ms[reps / 2]);
        return s;
    }

    void report(const char* name, const stats& s, const char* impl = "xrnn")
    {
        std::printf("case=%s impl=%s ms=%.6g min=%.6g max=%.6g reps=%zu\n", name, impl, s.median, s.min, s.max,
                    s.reps);
        std::fflush(stdout);
    }

    xt::xtensor<int, 2> random_ids(xrnn::random_engine& rng)
    {
        xt::xtensor<int, 2> ids({S, B});
        for (auto& id : ids)
        {
            id = static_cast<int>(rng.below(V));
        }
        return ids;
    }

    xt::xtensor<float, 2> random_labels(xrnn::random_engine& rng)
    {
        xt::xtensor<float, 2> labels({B, 1});
        for (auto& y : labels)
        {
            y = static_cast<float>(rng.below(2));
        }
        return labels;
    }

    /// Embedding(V, D) -> Recurrent(D, H) -> Dense(H, 1), trained with BCE on logits and Adam(1e-3).
    template <class Recurrent>
    struct imdb_model
    {
        xrnn::random_engine rng{42};
        xrnn::embedding<float, V, D> embed{rng};
        Recurrent recurrent{rng};
        xrnn::dense<float, Recurrent::output_size, 1> head{rng};
        xrnn::adam<float> adam{1e-3};
        std::vector<std::size_t> lengths;  // empty: every sequence S steps
        xt::xtensor<int, 2> ids;
        xt::xtensor<float, 2> labels;
        xt::xtensor<float, 2> dlogits;

        imdb_model()
        {
            xrnn::random_engine data(7);
            ids = random_ids(data);
            labels = random_labels(data);
        }

        float train_step()
        {
            xrnn::zero_grad(embed, recurrent, head);
            recurrent.set_lengths(lengths.empty() ? nullptr : lengths.data(), lengths.size());
            const auto& logits = head.forward(
                recurrent.forward(embed.forward(ids, xrnn::mode::training), xrnn::mode::training),
                xrnn::mode::training);
            const float loss = xrnn::binary_cross_entropy_with_logits(logits, labels, &dlogits);
            embed.backward(recurrent.backward(head.backward(dlogits)));
            adam.step(embed, recurrent, head);
            return loss;
        }

        float forward()
        {
            const auto& logits = head.forward(recurrent.forward(embed.forward(ids)));
            return logits(0, 0);
        }
    };

    volatile float g_sink = 0;  // keeps results alive

    /// The lengths of the first 64 training reviews of IMDB (imdb_sentiment's loader, 10000 words, cut at 200;
    /// mean 158.7): lstm_train_step_masked's batch, padded after each review (torch_reference.py has the same).
    const std::vector<std::size_t> imdb_lengths = {
        200, 167, 70,  185, 200, 200, 200, 200, 200, 75,  138, 200, 175, 200, 166, 116, 200, 130, 114, 200, 200, 133,
        135, 200, 50,  200, 200, 200, 187, 43,  92,  200, 200, 133, 121, 154, 200, 65,  200, 155, 181, 200, 123, 200,
        175, 124, 200, 81,  200, 74,  193, 35,  200, 200, 200, 200, 113, 200, 112, 54,  200, 200, 177, 113};

    template <class Recurrent>
    void masked_train_case(const char* name, std::size_t reps)
    {
        imdb_model<Recurrent> model;
        model.lengths = imdb_lengths;
        for (std::size_t b = 0; b < B; ++b)  // padding id 0 after each review
        {
            for (std::size_t t = imdb_lengths[b]; t < S; ++t)
            {
                model.ids(t, b) = 0;
            }
        }
        report(name, measure(2, reps, [&] {
                   g_sink = model.train_step();
                   return std::size_t(1);
               }));
    }

    template <class Recurrent>
    void train_case(const char* name, std::size_t reps)
    {
        imdb_model<Recurrent> model;
        report(name, measure(2, reps, [&] {
                   g_sink = model.train_step();
                   return std::size_t(1);
               }));
    }

    /// The median time of each phase of a training step, as one comment line (not a case of compare.sh).
    template <class Recurrent>
    void phases_case(const char* name, std::size_t reps, bool masked = false)
    {
        imdb_model<Recurrent> model;
        if (masked)  // lstm_train_step_masked's batch
        {
            model.lengths = imdb_lengths;
            for (std::size_t b = 0; b < B; ++b)
            {
                for (std::size_t t = imdb_lengths[b]; t < S; ++t)
                {
                    model.ids(t, b) = 0;
                }
            }
        }
        model.recurrent.set_lengths(masked ? model.lengths.data() : nullptr, model.lengths.size());
        const char* phases[] = {"zero_grad", "embedding_forward", "recurrent_forward", "dense_forward", "loss",
                                "dense_backward", "recurrent_backward", "embedding_backward", "adam"};
        constexpr std::size_t count = sizeof(phases) / sizeof(phases[0]);
        std::vector<std::vector<double>> ms(count);
        for (std::size_t r = 0; r < reps + 2; ++r)
        {
            clock_type::time_point marks[count + 1];
            std::size_t m = 0;
            marks[m++] = clock_type::now();
            xrnn::zero_grad(model.embed, model.recurrent, model.head);
            marks[m++] = clock_type::now();
            const auto& x = model.embed.forward(model.ids, xrnn::mode::training);
            marks[m++] = clock_type::now();
            const auto& y = model.recurrent.forward(x, xrnn::mode::training);
            marks[m++] = clock_type::now();
            const auto& logits = model.head.forward(y, xrnn::mode::training);
            marks[m++] = clock_type::now();
            g_sink = xrnn::binary_cross_entropy_with_logits(logits, model.labels, &model.dlogits);
            marks[m++] = clock_type::now();
            const auto& dy = model.head.backward(model.dlogits);
            marks[m++] = clock_type::now();
            const auto& dx = model.recurrent.backward(dy);
            marks[m++] = clock_type::now();
            model.embed.backward(dx);
            marks[m++] = clock_type::now();
            model.adam.step(model.embed, model.recurrent, model.head);
            marks[m++] = clock_type::now();
            for (std::size_t k = 0; r >= 2 && k < count; ++k)  // two warm-up steps
            {
                ms[k].push_back(std::chrono::duration<double, std::milli>(marks[k + 1] - marks[k]).count());
            }
        }
        std::printf("# %s:", name);
        double total = 0;
        for (std::size_t k = 0; k < count; ++k)
        {
            std::sort(ms[k].begin(), ms[k].end());
            const double median = ms[k][ms[k].size() / 2];
            total += median;
            std::printf(" %s=%.3g", phases[k], median);
        }
        std::printf(" sum=%.4g ms (medians of %zu steps)\n", total, reps);
        std::fflush(stdout);
    }

    template <class Recurrent>
    void forward_case(const char* name, std::size_t reps)
    {
        imdb_model<Recurrent> model;
        report(name, measure(2, reps, [&] {
                   g_sink = model.forward();
                   return std::size_t(1);
               }));
    }

    /// The recurrent layer alone (the cases of onednn_reference.cpp): zero_grad, forward in training mode and backward
    /// from a gradient of the last step's output (many-to-one), on x (S, B, D) of uniform(-1, 1).
    template <class Recurrent>
    struct layer_model
    {
        xrnn::random_engine rng{42};
        Recurrent recurrent{rng};
        xt::xtensor<float, 3> x;
        xt::xtensor<float, 2> dy;

        layer_model() : x({S, B, D}), dy({B, H})
        {
            for (auto& v : x)
            {
                v = static_cast<float>(rng.uniform(-1.0, 1.0));
            }
            for (auto& v : dy)
            {
                v = static_cast<float>(rng.uniform(-0.1, 0.1));
            }
        }
    };

    /// impl: "xrnn", or "xrnn_bf16" for a layer with precision::bf16 (its kernel is printed once).
    template <class Recurrent>
    void layer_train_case(const char* name, std::size_t reps, const char* impl)
    {
        layer_model<Recurrent> model;
        report(name,
               measure(2, reps,
                       [&] {
                           xrnn::zero_grad(model.recurrent);
                           model.recurrent.forward(model.x, xrnn::mode::training);
                           g_sink = model.recurrent.backward(model.dy)(0, 0, 0);
                           return std::size_t(1);
                       }),
               impl);
    }

    template <class Recurrent>
    void layer_forward_case(const char* name, std::size_t reps, const char* impl)
    {
        layer_model<Recurrent> model;
        report(name,
               measure(2, reps,
                       [&] {
                           g_sink = model.recurrent.forward(model.x)(0, 0);
                           return std::size_t(1);
                       }),
               impl);
    }

    /// The peak multiply-add rate of one core, in GFLOP/s (2 per lane and FMA): independent FMA chains on
    /// registers, AVX-512 or AVX2 + FMA as the CPU has them (detected at run time; the functions are compiled for
    /// those instructions whatever -march says), best of 5 runs of 2^24 FMAs per chain set.
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __attribute__((target("avx512f"))) double fma_peak_avx512(std::size_t iterations)
    {
        __m512 acc[16];
        for (int k = 0; k < 16; ++k)
        {
            acc[k] = _mm512_set1_ps(static_cast<float>(k) * 1e-3f);
        }
        const __m512 a = _mm512_set1_ps(0.999999f);
        const __m512 b = _mm512_set1_ps(1e-7f);
        const auto start = clock_type::now();
        for (std::size_t n = 0; n < iterations; ++n)
        {
            for (int k = 0; k < 16; ++k)
            {
                acc[k] = _mm512_fmadd_ps(acc[k], a, b);
            }
        }
        const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
        __m512 sum = acc[0];
        for (int k = 1; k < 16; ++k)
        {
            sum = _mm512_add_ps(sum, acc[k]);
        }
        g_sink = _mm512_reduce_add_ps(sum);
        return static_cast<double>(iterations) * 16 * 16 * 2 / seconds * 1e-9;
    }

    __attribute__((target("avx2,fma"))) double fma_peak_avx2(std::size_t iterations)
    {
        __m256 acc[12];
        for (int k = 0; k < 12; ++k)
        {
            acc[k] = _mm256_set1_ps(static_cast<float>(k) * 1e-3f);
        }
        const __m256 a = _mm256_set1_ps(0.999999f);
        const __m256 b = _mm256_set1_ps(1e-7f);
        const auto start = clock_type::now();
        for (std::size_t n = 0; n < iterations; ++n)
        {
            for (int k = 0; k < 12; ++k)
            {
                acc[k] = _mm256_fmadd_ps(acc[k], a, b);
            }
        }
        const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
        float lanes[8];
        __m256 sum = acc[0];
        for (int k = 1; k < 12; ++k)
        {
            sum = _mm256_add_ps(sum, acc[k]);
        }
        _mm256_storeu_ps(lanes, sum);
        g_sink = lanes[0];
        return static_cast<double>(iterations) * 12 * 8 * 2 / seconds * 1e-9;
    }

    /// One read of `floats` floats (already in cache) with 8 independent AVX-512 sums, in ns: the batch-1 step's
    /// streaming floor when `floats` is the size of its weights, which it reads once per step.
    __attribute__((target("avx512f"))) double stream_avx512(const float* data, std::size_t floats, std::size_t passes)
    {
        __m512 acc[8];
        for (int k = 0; k < 8; ++k)
        {
            acc[k] = _mm512_setzero_ps();
        }
        const auto start = clock_type::now();
        for (std::size_t pass = 0; pass < passes; ++pass)
        {
            for (std::size_t j = 0; j + 128 <= floats; j += 128)
            {
                for (int k = 0; k < 8; ++k)
                {
                    acc[k] = _mm512_add_ps(acc[k], _mm512_load_ps(data + j + 16 * k));
                }
            }
        }
        const double ns = std::chrono::duration<double, std::nano>(clock_type::now() - start).count();
        for (int k = 1; k < 8; ++k)
        {
            acc[0] = _mm512_add_ps(acc[0], acc[k]);
        }
        g_sink = _mm512_reduce_add_ps(acc[0]);
        return ns / static_cast<double>(passes);
    }

    __attribute__((target("avx2"))) double stream_avx2(const float* data, std::size_t floats, std::size_t passes)
    {
        __m256 acc[8];
        for (int k = 0; k < 8; ++k)
        {
            acc[k] = _mm256_setzero_ps();
        }
        const auto start = clock_type::now();
        for (std::size_t pass = 0; pass < passes; ++pass)
        {
            for (std::size_t j = 0; j + 64 <= floats; j += 64)
            {
                for (int k = 0; k < 8; ++k)
                {
                    acc[k] = _mm256_add_ps(acc[k], _mm256_load_ps(data + j + 8 * k));
                }
            }
        }
        const double ns = std::chrono::duration<double, std::nano>(clock_type::now() - start).count();
        float lanes[8];
        for (int k = 1; k < 8; ++k)
        {
            acc[0] = _mm256_add_ps(acc[0], acc[k]);
        }
        _mm256_storeu_ps(lanes, acc[0]);
        g_sink = lanes[0];
        return ns / static_cast<double>(passes);
    }

    /// "# stream_floor rnn=<us> lstm=<us> gru=<us>": reading each cell's W_x and W_h once from this core's cache
    /// (L2 for these sizes), the fastest of 21 runs of 2000 passes (a floor); compare.sh shows it beside the
    /// batch-1 steps.
    void stream_floor_case()
    {
        const bool avx512 = __builtin_cpu_supports("avx512f");
        if (!avx512 && !__builtin_cpu_supports("avx2"))
        {
            return;
        }
        std::printf("# stream_floor");
        const std::pair<const char*, std::size_t> cells[] = {{"rnn", 1}, {"lstm", 4}, {"gru", 3}};
        for (const auto& [name, gates] : cells)
        {
            // on 64-byte lines, as the layers keep them (xrnn::cache_aligned_allocator): from malloc's 16-byte
            // alignment every 64-byte load straddles two lines, 1.8x slower here (5.6 against 3.1 us for the LSTM's)
            const std::size_t floats = (D + H) * gates * H;
            const std::vector<float, xrnn::cache_aligned_allocator<float>> storage(floats, 0.5f);
            const float* weights = storage.data();
            std::vector<double> ns;
            for (int run = 0; run < 21; ++run)
            {
                ns.push_back(avx512 ? stream_avx512(weights, floats, 2000) : stream_avx2(weights, floats, 2000));
            }
            std::sort(ns.begin(), ns.end());
            std::printf(" %s=%.3f", name, ns.front() * 1e-3);
        }
        std::printf(" (us)\n");
        std::fflush(stdout);
    }

    /// "# peak_fma isa=<avx512|avx2> gflops_per_core=<best>": compare.sh divides each case's FLOPs by it.
    void fma_peak_case()
    {
        const bool avx512 = __builtin_cpu_supports("avx512f");
        if (!avx512 && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
        {
            std::printf("# peak_fma isa=none\n");
            return;
        }
        double best = 0;
        for (int run = 0; run < 5; ++run)
        {
            const std::size_t iterations = std::size_t(1) << 24;
            best = std::max(best, avx512 ? fma_peak_avx512(iterations) : fma_peak_avx2(iterations));
        }
        std::printf("# peak_fma isa=%s gflops_per_core=%.1f\n", avx512 ? "avx512" : "avx2", best);
        std::fflush(stdout);
    }
#else
    void fma_peak_case()
    {
        std::printf("# peak_fma isa=none\n");
    }

    void stream_floor_case()
    {
    }
#endif

    /// Streaming: one cell step on batch 1, the state fed back in (the returned state aliases the cell's buffer).
    template <class Cell>
    void cell_step_case(const char* name, std::size_t reps)
    {
        xrnn::random_engine rng(3);
        Cell cell(rng);
        constexpr std::size_t inputs = 64;  // a few different inputs, cycled
        std::vector<xt::xtensor<float, 2>> xs;
        for (std::size_t k = 0; k < inputs; ++k)
        {
            xt::xtensor<float, 2> x({1, Cell::input_size});
            for (auto& v : x)
            {
                v = static_cast<float>(rng.uniform(-1.0, 1.0));
            }
            xs.push_back(std::move(x));
        }
        typename Cell::state_type start;
        start.h = xt::zeros<float>({std::size_t(1), Cell::hidden_size});
        if constexpr (Cell::has_cell_state)
        {
            start.c = xt::zeros<float>({std::size_t(1), Cell::hidden_size});
        }
        constexpr std::size_t steps = 2000;
        report(name, measure(3, reps, [&] {
                   const typename Cell::state_type* state = &start;
                   for (std::size_t t = 0; t < steps; ++t)
                   {
                       state = &cell.forward(xs[t % inputs], *state);
                   }
                   g_sink = state->h(0, 0);
                   return steps;
               }));
    }

    /// The matrix products of one LSTM training step (lstm_train_step), alone, with the same BLAS and the same
    /// shapes and calls as the layer: the floor a training step cannot go below without doing fewer FLOPs.
    ///   forward:  Z = X W_x (S*B x I x G), then per step Z_t += H_{t-1} W_h (B x H x G)
    ///   backward: per step dH_{t-1} = dZ_t W_h^T (B x G x H), then dW_x += X^T dZ, dW_h += H^T dZ, dX = dZ W_x^T
    void sgemm_floor_case(std::size_t reps)
    {
        constexpr std::size_t G = 4 * H;
        xrnn::random_engine rng(5);
        auto filled = [&](std::size_t n) {
            std::vector<float> v(n);
            for (auto& e : v)
            {
                e = static_cast<float>(rng.uniform(-0.1, 0.1));
            }
            return v;
        };
        auto x = filled(S * B * D);
        auto h = filled((S + 1) * B * H);
        auto z = filled(S * B * G);
        auto dh = filled(B * H);
        auto dx = filled(S * B * D);
        auto w_x = filled(D * G);
        auto w_h = filled(H * G);
        auto dw_x = filled(D * G);
        auto dw_h = filled(H * G);
        using xrnn::detail::matmul;
        report("sgemm_floor", measure(2, reps, [&] {
                   matmul(x.data(), w_x.data(), z.data(), S * B, D, G);
                   for (std::size_t t = 0; t < S; ++t)
                   {
                       matmul(h.data() + t * B * H, w_h.data(), z.data() + t * B * G, B, H, G, 1.0f);
                   }
                   for (std::size_t t = S; t-- > 0;)
                   {
                       xrnn::detail::matmul_transposed_weight(z.data() + t * B * G, w_h.data(), dh.data(), B, G, H);
                   }
                   xrnn::detail::accumulate_weight_gradient(x.data(), z.data(), dw_x.data(), S * B, D, G);
                   xrnn::detail::accumulate_weight_gradient(h.data(), z.data(), dw_h.data(), S * B, H, G);
                   xrnn::detail::matmul_transposed_weight(z.data(), w_x.data(), dx.data(), S * B, G, D);
                   g_sink = dx[0] + dh[0];
                   return std::size_t(1);
               }));
    }

    /// The BLAS products of an inference forward of a recurrent layer with G = gates * H, alone, as a layer on the
    /// BLAS path calls them (weights larger than L2; the IMDB shapes take the register-blocked path instead): the
    /// input projection in chunks of inference_chunk_rows rows, then per step Z_t += H_{t-1} W_h.
    template <std::size_t Gates>
    void forward_floor_case(const char* name, std::size_t reps)
    {
        constexpr std::size_t G = Gates * H;
        constexpr std::size_t chunk = xrnn::lstm_cell<float, D, H>::inference_chunk_rows / B;
        xrnn::random_engine rng(6);
        auto filled = [&](std::size_t n) {
            std::vector<float> v(n);
            for (auto& e : v)
            {
                e = static_cast<float>(rng.uniform(-0.1, 0.1));
            }
            return v;
        };
        auto x = filled(S * B * D);
        auto h = filled((S + 1) * B * H);
        auto z = filled(chunk * B * G);
        auto w_x = filled(D * G);
        auto w_h = filled(H * G);
        using xrnn::detail::matmul;
        report(name, measure(2, reps, [&] {
                   for (std::size_t begin = 0; begin < S; begin += chunk)
                   {
                       const std::size_t steps = std::min(chunk, S - begin);
                       matmul(x.data() + begin * B * D, w_x.data(), z.data(), steps * B, D, G);
                       for (std::size_t t = begin; t < begin + steps; ++t)
                       {
                           matmul(h.data() + t * B * H, w_h.data(), z.data() + (t - begin) * B * G, B, H, G, 1.0f);
                       }
                   }
                   g_sink = z[0];
                   return std::size_t(1);
               }));
    }

    bool wanted(const std::vector<std::string>& only, const char* name)
    {
        return only.empty() || std::find(only.begin(), only.end(), name) != only.end();
    }

    bool named(const std::vector<std::string>& only, const char* name)
    {
        return std::find(only.begin(), only.end(), name) != only.end();
    }
}  // namespace

int main(int argc, char** argv)
{
    const char* bench_threads = std::getenv("XRNN_BENCH_THREADS");
    const int threads = bench_threads != nullptr ? std::max(1, std::atoi(bench_threads)) : 2;
    if (openblas_set_num_threads != nullptr)
    {
        openblas_set_num_threads(threads);
    }
    xrnn::set_num_threads(static_cast<std::size_t>(threads));  // the recurrent layers' own threads, as many
    if (openblas_get_num_threads != nullptr && openblas_get_config != nullptr)
    {
        std::fprintf(stderr, "xrnn_bench: OpenBLAS %s, %d threads; xrnn %zu threads\n", openblas_get_config(),
                     openblas_get_num_threads(), xrnn::num_threads());
    }
    const char* bf16_kernel = std::getenv("XRNN_BENCH_BF16_KERNEL");
    if (bf16_kernel != nullptr && std::string(bf16_kernel) == "avx512_bf16")
    {
        xrnn::detail::bf16_skip_amx() = true;  // the AVX512-BF16 kernel on a CPU that also has AMX
    }
    else if (bf16_kernel != nullptr && std::string(bf16_kernel) == "portable")
    {
        xrnn::detail::bf16_force_portable() = true;
    }
    const std::vector<std::string> only(argv + 1, argv + argc);
    if (only.empty() || named(only, "peak_fma"))
    {
        fma_peak_case();
    }
    if (only.empty() || named(only, "stream_floor"))
    {
        stream_floor_case();
    }
    using lstm = xrnn::lstm<float, D, H>;
    using rnn = xrnn::rnn<float, D, H>;
    using gru = xrnn::gru<float, D, H>;
    if (wanted(only, "rnn_train_step"))
    {
        train_case<rnn>("rnn_train_step", 21);
    }
    if (wanted(only, "lstm_train_step"))
    {
        train_case<lstm>("lstm_train_step", 21);
    }
    if (wanted(only, "lstm_train_step_masked"))
    {
        masked_train_case<lstm>("lstm_train_step_masked", 21);
    }
    if (wanted(only, "bilstm_train_step"))
    {
        train_case<xrnn::bilstm<float, D, H>>("bilstm_train_step", 21);
    }
    if (wanted(only, "lstm_forward"))
    {
        forward_case<lstm>("lstm_forward", 31);
    }
    if (wanted(only, "rnn_forward"))
    {
        forward_case<rnn>("rnn_forward", 31);
    }
    if (wanted(only, "lstm_cell_step_b1"))
    {
        cell_step_case<xrnn::lstm_cell<float, D, H>>("lstm_cell_step_b1", 31);
    }
    if (wanted(only, "rnn_cell_step_b1"))
    {
        cell_step_case<xrnn::rnn_cell<float, D, H>>("rnn_cell_step_b1", 31);
    }
    if (wanted(only, "gru_train_step"))
    {
        train_case<gru>("gru_train_step", 21);
    }
    if (wanted(only, "gru_forward"))
    {
        forward_case<gru>("gru_forward", 31);
    }
    if (wanted(only, "gru_cell_step_b1"))
    {
        cell_step_case<xrnn::gru_cell<float, D, H>>("gru_cell_step_b1", 31);
    }
    // each layer case in float, then with bf16 products (impl=xrnn_bf16, same case name)
    using bf16 = xrnn::precision::bf16;
    using lstm_bf16 = xrnn::lstm<float, D, H, 1, xrnn::output::last, bf16>;
    using rnn_bf16 = xrnn::rnn<float, D, H, 1, xrnn::output::last, xrnn::nonlinearity::tanh, bf16>;
    using gru_bf16 = xrnn::gru<float, D, H, 1, xrnn::output::last, bf16>;
    const struct
    {
        const char* train;
        const char* forward;
        void (*train_case)(const char*, std::size_t, const char*);
        void (*forward_case)(const char*, std::size_t, const char*);
        void (*train_bf16)(const char*, std::size_t, const char*);
        void (*forward_bf16)(const char*, std::size_t, const char*);
    } layer_cases[] = {{"rnn_layer_train", "rnn_layer_forward", layer_train_case<rnn>, layer_forward_case<rnn>,
                        layer_train_case<rnn_bf16>, layer_forward_case<rnn_bf16>},
                       {"lstm_layer_train", "lstm_layer_forward", layer_train_case<lstm>, layer_forward_case<lstm>,
                        layer_train_case<lstm_bf16>, layer_forward_case<lstm_bf16>},
                       {"gru_layer_train", "gru_layer_forward", layer_train_case<gru>, layer_forward_case<gru>,
                        layer_train_case<gru_bf16>, layer_forward_case<gru_bf16>}};
    std::printf("# bf16_kernel %s\n", xrnn::to_string(xrnn::bf16_backend()));
    for (const auto& c : layer_cases)
    {
        if (wanted(only, c.train))
        {
            c.train_case(c.train, 21, "xrnn");
            c.train_bf16(c.train, 21, "xrnn_bf16");
        }
        if (wanted(only, c.forward))
        {
            c.forward_case(c.forward, 31, "xrnn");
            c.forward_bf16(c.forward, 31, "xrnn_bf16");
        }
    }
    if (wanted(only, "sgemm_floor"))
    {
        sgemm_floor_case(21);
    }
    if (named(only, "lstm_train_phases"))
    {
        phases_case<lstm>("lstm_train_phases", 21);
    }
    if (named(only, "lstm_train_phases_masked"))
    {
        phases_case<lstm>("lstm_train_phases_masked", 21, true);
    }
    if (named(only, "rnn_train_phases"))
    {
        phases_case<rnn>("rnn_train_phases", 21);
    }
    if (named(only, "gru_train_phases"))
    {
        phases_case<gru>("gru_train_phases", 21);
    }
    if (named(only, "lstm_forward_floor"))
    {
        forward_floor_case<4>("lstm_forward_floor", 31);
    }
    if (named(only, "rnn_forward_floor"))
    {
        forward_floor_case<1>("rnn_forward_floor", 31);
    }
    return 0;
}
