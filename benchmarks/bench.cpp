// xtensor-rnn benchmark: every case of benchmarks/README.md, one line each:
//   case=<name> impl=xrnn ms=<median> min=<min> max=<max> reps=<n>
// Shapes are the IMDB sentiment model's: vocabulary V = 10000, embedding D = 128, hidden H = 128, S = 200 steps,
// batch B = 64, Dense(128 -> 1), binary cross-entropy on logits, Adam. float throughout.
//
// Usage: xrnn_bench [case ...]      (no argument: every case; lstm_train_phases, rnn_train_phases and gru_train_phases, the median
//                                   time of each phase of a training step, and lstm_forward_floor and
//                                   rnn_forward_floor, the GEMMs of an inference forward alone, only when named)
//        XRNN_BENCH_REPS=n xrnn_bench ...   n timed repetitions per case, one warm-up (for profilers)
// Threads: 2 for OpenBLAS (openblas_set_num_threads; compare.sh also exports OPENBLAS_NUM_THREADS=2) and 2 for
// xrnn's recurrent layers (xrnn::set_num_threads); XRNN_BENCH_THREADS=n sets n for both instead.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <xrnn/detail/blas.hpp>
#include <xrnn/layers/bidirectional.hpp>
#include <xrnn/layers/dense.hpp>
#include <xrnn/layers/embedding.hpp>
#include <xrnn/layers/gru.hpp>
#include <xrnn/layers/lstm.hpp>
#include <xrnn/layers/rnn.hpp>
#include <xrnn/loss.hpp>
#include <xrnn/optim.hpp>
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

    void report(const char* name, const stats& s)
    {
        std::printf("case=%s impl=xrnn ms=%.6g min=%.6g max=%.6g reps=%zu\n", name, s.median, s.min, s.max, s.reps);
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
    void phases_case(const char* name, std::size_t reps)
    {
        imdb_model<Recurrent> model;
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
    const std::vector<std::string> only(argv + 1, argv + argc);
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
    if (wanted(only, "sgemm_floor"))
    {
        sgemm_floor_case(21);
    }
    if (named(only, "lstm_train_phases"))
    {
        phases_case<lstm>("lstm_train_phases", 21);
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
