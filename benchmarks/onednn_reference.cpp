// oneDNN reference for benchmarks/bench.cpp: the recurrent-layer cases with Intel's oneDNN (libdnnl-dev), in the same
// line format with impl=onednn (float) and, for the LSTM and GRU cases, impl=onednn_bf16 (bfloat16 data
// and weights, f32 bias; in training the gradients of data and weights in f32; AMX or AVX512-BF16 where the CPU
// has them):
//   case=<name> impl=onednn ms=<median> min=<min> max=<max> reps=<n>
//
// Cases (shapes of bench.cpp: S = 200 steps, B = 64, I = H = 128, one layer, time-major):
//   {lstm,gru,rnn}_layer_train     forward_training then backward of the layer alone; the gradient comes in at the
//                                  last step only (a many-to-one model), the weight gradients are zeroed first
//   {lstm,gru,rnn}_layer_forward   forward_inference of the layer alone
//   {lstm,gru,rnn}_cell_step_b1    one step on batch 1 (S = 1, B = 1, forward_inference), its state fed back in
// GRU is oneDNN's linear-before-reset GRU (lbr_gru), the form of PyTorch and of xrnn's gru_cell; RNN is the vanilla
// cell with tanh.
//
// As a user who cares runs it: the primitives are created once, weights are reordered once into the layout the
// primitive asks for (format_tag::any), outside the timed loop; flush-to-zero and denormals-are-zero are set on
// every OpenMP thread of oneDNN. Threads: OMP_NUM_THREADS (compare.sh exports 2).
// Usage: onednn_reference [case ...]   (no argument: every case);  XRNN_BENCH_REPS=n as in bench.cpp
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include <immintrin.h>
#include <omp.h>

#include <dnnl.hpp>

namespace
{
    using dnnl::algorithm;
    using dnnl::memory;
    using dnnl::prop_kind;
    using dnnl::rnn_direction;
    using dt = memory::data_type;
    using tag = memory::format_tag;

    constexpr memory::dim S = 200;
    constexpr memory::dim B = 64;
    constexpr memory::dim I = 128;
    constexpr memory::dim H = 128;

    using clock_type = std::chrono::steady_clock;

    struct stats
    {
        double median = 0;
        double min = 0;
        double max = 0;
        std::size_t reps = 0;
    };

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

    void report(const std::string& name, const char* impl, const stats& s)
    {
        std::printf("case=%s impl=%s ms=%.6g min=%.6g max=%.6g reps=%zu\n", name.c_str(), impl, s.median, s.min, s.max,
                    s.reps);
        std::fflush(stdout);
    }

    enum class cell_kind
    {
        lstm,
        gru,
        rnn
    };

    /// Gates of the weights and of the bias (lbr_gru has one bias row more: the reset gate's recurrent bias).
    memory::dim weight_gates(cell_kind k)
    {
        return k == cell_kind::lstm ? 4 : k == cell_kind::gru ? 3 : 1;
    }

    memory::dim bias_gates(cell_kind k)
    {
        return k == cell_kind::gru ? 4 : weight_gates(k);
    }

    struct context
    {
        dnnl::engine engine{dnnl::engine::kind::cpu, 0};
        dnnl::stream stream{engine};
        std::mt19937 rng{11};

        /// A memory of md filled with uniform(-0.1, 0.1) (through an f32 plain copy and a reorder: outside timing).
        memory random(const memory::desc& md, const memory::dims& dims, tag plain)
        {
            memory user({dims, dt::f32, plain}, engine);
            auto* data = static_cast<float*>(user.get_data_handle());
            std::uniform_real_distribution<float> uniform(-0.1f, 0.1f);
            const std::size_t n = user.get_desc().get_size() / sizeof(float);
            for (std::size_t k = 0; k < n; ++k)
            {
                data[k] = uniform(rng);
            }
            return converted(user, md);
        }

        memory zeros(const memory::desc& md)
        {
            memory m(md, engine);
            std::memset(m.get_data_handle(), 0, md.get_size());
            return m;
        }

        /// m in layout md (a reorder when they differ).
        memory converted(const memory& m, const memory::desc& md)
        {
            if (m.get_desc() == md)
            {
                return m;
            }
            memory out(md, engine);
            dnnl::reorder(m, out).execute(stream, const_cast<memory&>(m), out);
            stream.wait();
            return out;
        }
    };

    /// The descriptors of one layer; `d` is the data type of the data and weights (f32 or bf16), bias always f32.
    struct layer_descs
    {
        memory::dims src_layer, src_iter, weights_layer, weights_iter, bias, dst_layer, dst_iter;
        memory::desc src_layer_md, src_iter_md, weights_any_layer, weights_any_iter, bias_md, dst_layer_md, dst_iter_md;

        layer_descs(cell_kind k, memory::dim steps, memory::dim batch, dt d)
            : src_layer{steps, batch, I}, src_iter{1, 1, batch, H}, weights_layer{1, 1, I, weight_gates(k), H},
              weights_iter{1, 1, H, weight_gates(k), H}, bias{1, 1, bias_gates(k), H}, dst_layer{steps, batch, H},
              dst_iter{1, 1, batch, H}, src_layer_md(src_layer, d, tag::tnc), src_iter_md(src_iter, d, tag::ldnc),
              weights_any_layer(weights_layer, d, tag::any), weights_any_iter(weights_iter, d, tag::any),
              bias_md(bias, dt::f32, tag::ldgo), dst_layer_md(dst_layer, d, tag::tnc),
              dst_iter_md(dst_iter, d, tag::ldnc)
        {
        }
    };

    /// The forward primitive descriptor of kind k for prop (forward_training or forward_inference).
    dnnl::primitive_desc forward_pd(context& ctx, cell_kind k, prop_kind prop, const layer_descs& l)
    {
        const auto dir = rnn_direction::unidirectional_left2right;
        const memory::desc none;
        switch (k)
        {
        case cell_kind::lstm:
            return dnnl::lstm_forward::primitive_desc(
                {prop, dir, l.src_layer_md, l.src_iter_md, l.src_iter_md, l.weights_any_layer, l.weights_any_iter,
                 l.bias_md, l.dst_layer_md, l.dst_iter_md, l.dst_iter_md},
                ctx.engine);
        case cell_kind::gru:
            return dnnl::lbr_gru_forward::primitive_desc({prop, dir, l.src_layer_md, l.src_iter_md, l.weights_any_layer,
                                                          l.weights_any_iter, l.bias_md, l.dst_layer_md,
                                                          l.dst_iter_md},
                                                         ctx.engine);
        case cell_kind::rnn:
            return dnnl::vanilla_rnn_forward::primitive_desc({prop, algorithm::eltwise_tanh, dir, l.src_layer_md,
                                                              l.src_iter_md, l.weights_any_layer, l.weights_any_iter,
                                                              l.bias_md, l.dst_layer_md, l.dst_iter_md},
                                                             ctx.engine);
        }
        throw std::logic_error("cell kind");
    }

    dnnl::primitive_desc backward_pd(context& ctx, cell_kind k, const layer_descs& l, const dnnl::primitive_desc& fwd)
    {
        const auto dir = rnn_direction::unidirectional_left2right;
        const dt d = l.src_layer_md.data_type();
        // bf16 training (oneDNN's mixed precision, as ours): the gradients of the data and of the weights in f32
        const memory::desc dsrc_layer(l.src_layer, dt::f32, tag::tnc), dsrc_iter(l.src_iter, dt::f32, tag::ldnc);
        const memory::desc dw_layer(l.weights_layer, dt::f32, tag::any), dw_iter(l.weights_iter, dt::f32, tag::any);
        const memory::desc dbias(l.bias, dt::f32, tag::ldgo);
        const memory::desc ddst_layer(l.dst_layer, dt::f32, tag::tnc), ddst_iter(l.dst_iter, dt::f32, tag::ldnc);
        switch (k)
        {
        case cell_kind::lstm:
            return dnnl::lstm_backward::primitive_desc(
                {prop_kind::backward, dir, l.src_layer_md, l.src_iter_md, l.src_iter_md, l.weights_any_layer,
                 l.weights_any_iter, l.bias_md, l.dst_layer_md, l.dst_iter_md, l.dst_iter_md, dsrc_layer, dsrc_iter,
                 dsrc_iter, dw_layer, dw_iter, dbias, ddst_layer, ddst_iter, ddst_iter},
                ctx.engine, dnnl::lstm_forward::primitive_desc(fwd.get()));
        case cell_kind::gru:
            return dnnl::lbr_gru_backward::primitive_desc(
                {prop_kind::backward, dir, l.src_layer_md, l.src_iter_md, l.weights_any_layer, l.weights_any_iter,
                 l.bias_md, l.dst_layer_md, l.dst_iter_md, dsrc_layer, dsrc_iter, dw_layer, dw_iter, dbias,
                 ddst_layer, ddst_iter},
                ctx.engine, dnnl::lbr_gru_forward::primitive_desc(fwd.get()));
        case cell_kind::rnn:
            return dnnl::vanilla_rnn_backward::primitive_desc(
                {prop_kind::backward, algorithm::eltwise_tanh, dir, l.src_layer_md, l.src_iter_md,
                 l.weights_any_layer, l.weights_any_iter, l.bias_md, l.dst_layer_md, l.dst_iter_md, dsrc_layer,
                 dsrc_iter, dw_layer, dw_iter, dbias, ddst_layer, ddst_iter},
                ctx.engine, dnnl::vanilla_rnn_forward::primitive_desc(fwd.get()));
        }
        throw std::logic_error("cell kind");
    }

    dnnl::primitive make_primitive(cell_kind k, const dnnl::primitive_desc& pd, bool backward)
    {
        switch (k)
        {
        case cell_kind::lstm:
            return backward ? dnnl::primitive(dnnl::lstm_backward(dnnl::lstm_backward::primitive_desc(pd.get())))
                            : dnnl::primitive(dnnl::lstm_forward(dnnl::lstm_forward::primitive_desc(pd.get())));
        case cell_kind::gru:
            return backward ? dnnl::primitive(dnnl::lbr_gru_backward(dnnl::lbr_gru_backward::primitive_desc(pd.get())))
                            : dnnl::primitive(dnnl::lbr_gru_forward(dnnl::lbr_gru_forward::primitive_desc(pd.get())));
        case cell_kind::rnn:
            return backward ? dnnl::primitive(
                                  dnnl::vanilla_rnn_backward(dnnl::vanilla_rnn_backward::primitive_desc(pd.get())))
                            : dnnl::primitive(
                                  dnnl::vanilla_rnn_forward(dnnl::vanilla_rnn_forward::primitive_desc(pd.get())));
        }
        throw std::logic_error("cell kind");
    }

    memory::desc query(const dnnl::primitive_desc& pd, int arg)
    {
        return pd.query_md(dnnl::query::exec_arg_md, arg);
    }

    /// Forward (training or inference) of the layer on S x B, and backward when training.
    void layer_case(context& ctx, const std::string& name, const char* impl, cell_kind k, bool training, dt d,
                    std::size_t reps)
    {
        const layer_descs l(k, S, B, d);
        const auto fwd = forward_pd(ctx, k, training ? prop_kind::forward_training : prop_kind::forward_inference, l);
        const auto fwd_prim = make_primitive(k, fwd, false);
        const memory src_layer = ctx.random(l.src_layer_md, l.src_layer, tag::tnc);
        const memory src_iter = ctx.zeros(l.src_iter_md);
        const memory w_layer = ctx.random(query(fwd, DNNL_ARG_WEIGHTS_LAYER), l.weights_layer, tag::ldigo);
        const memory w_iter = ctx.random(query(fwd, DNNL_ARG_WEIGHTS_ITER), l.weights_iter, tag::ldigo);
        const memory bias = ctx.random(l.bias_md, l.bias, tag::ldgo);
        const memory dst_layer(l.dst_layer_md, ctx.engine);
        const memory dst_iter(l.dst_iter_md, ctx.engine);
        const memory dst_iter_c(l.dst_iter_md, ctx.engine);
        std::unordered_map<int, memory> fwd_args = {
            {DNNL_ARG_SRC_LAYER, src_layer}, {DNNL_ARG_SRC_ITER, src_iter},   {DNNL_ARG_WEIGHTS_LAYER, w_layer},
            {DNNL_ARG_WEIGHTS_ITER, w_iter}, {DNNL_ARG_BIAS, bias},           {DNNL_ARG_DST_LAYER, dst_layer},
            {DNNL_ARG_DST_ITER, dst_iter}};
        if (k == cell_kind::lstm)
        {
            fwd_args[DNNL_ARG_SRC_ITER_C] = ctx.zeros(l.src_iter_md);
            fwd_args[DNNL_ARG_DST_ITER_C] = dst_iter_c;
        }
        const memory::desc workspace_md = query(fwd, DNNL_ARG_WORKSPACE);
        if (workspace_md.get_size() > 0)
        {
            fwd_args[DNNL_ARG_WORKSPACE] = memory(workspace_md, ctx.engine);
        }
        dnnl::primitive bwd_prim;
        std::unordered_map<int, memory> bwd_args;
        memory dw_layer, dw_iter, dbias;
        if (training)
        {
            const auto bwd = backward_pd(ctx, k, l, fwd);
            bwd_prim = make_primitive(k, bwd, true);
            bwd_args = fwd_args;
            bwd_args.erase(DNNL_ARG_DST_ITER_C);
            bwd_args[DNNL_ARG_DST_ITER] = dst_iter;
            // backward may want the weights in another layout than forward: reordered once, here
            bwd_args[DNNL_ARG_WEIGHTS_LAYER] = ctx.converted(w_layer, query(bwd, DNNL_ARG_WEIGHTS_LAYER));
            bwd_args[DNNL_ARG_WEIGHTS_ITER] = ctx.converted(w_iter, query(bwd, DNNL_ARG_WEIGHTS_ITER));
            if (k == cell_kind::lstm)
            {
                bwd_args[DNNL_ARG_DST_ITER_C] = dst_iter_c;
            }
            bwd_args[DNNL_ARG_DIFF_SRC_LAYER] = memory(query(bwd, DNNL_ARG_DIFF_SRC_LAYER), ctx.engine);
            bwd_args[DNNL_ARG_DIFF_SRC_ITER] = memory(query(bwd, DNNL_ARG_DIFF_SRC_ITER), ctx.engine);
            dw_layer = memory(query(bwd, DNNL_ARG_DIFF_WEIGHTS_LAYER), ctx.engine);
            dw_iter = memory(query(bwd, DNNL_ARG_DIFF_WEIGHTS_ITER), ctx.engine);
            dbias = memory(query(bwd, DNNL_ARG_DIFF_BIAS), ctx.engine);
            bwd_args[DNNL_ARG_DIFF_WEIGHTS_LAYER] = dw_layer;
            bwd_args[DNNL_ARG_DIFF_WEIGHTS_ITER] = dw_iter;
            bwd_args[DNNL_ARG_DIFF_BIAS] = dbias;
            // many-to-one: the gradient of the last step's output only (as the Dense head of bench.cpp gives it)
            bwd_args[DNNL_ARG_DIFF_DST_LAYER] = ctx.zeros(query(bwd, DNNL_ARG_DIFF_DST_LAYER));
            bwd_args[DNNL_ARG_DIFF_DST_ITER] = ctx.random(query(bwd, DNNL_ARG_DIFF_DST_ITER), l.dst_iter, tag::ldnc);
            if (k == cell_kind::lstm)
            {
                bwd_args[DNNL_ARG_DIFF_SRC_ITER_C] = memory(query(bwd, DNNL_ARG_DIFF_SRC_ITER_C), ctx.engine);
                bwd_args[DNNL_ARG_DIFF_DST_ITER_C] = ctx.zeros(query(bwd, DNNL_ARG_DIFF_DST_ITER_C));
            }
        }
        report(name, impl, measure(2, reps, [&] {
                   fwd_prim.execute(ctx.stream, fwd_args);
                   if (training)
                   {
                       // oneDNN accumulates into the weight gradients: zeroed per step, as a training loop does
                       std::memset(dw_layer.get_data_handle(), 0, dw_layer.get_desc().get_size());
                       std::memset(dw_iter.get_data_handle(), 0, dw_iter.get_desc().get_size());
                       std::memset(dbias.get_data_handle(), 0, dbias.get_desc().get_size());
                       bwd_prim.execute(ctx.stream, bwd_args);
                   }
                   ctx.stream.wait();
                   return std::size_t(1);
               }));
    }

    /// Streaming: one step on batch 1, forward_inference with S = 1, the state fed back in (two state buffers
    /// swapped per step), 2000 steps per repetition.
    void step_case(context& ctx, const std::string& name, cell_kind k, std::size_t reps)
    {
        const layer_descs l(k, 1, 1, dt::f32);
        const auto fwd = forward_pd(ctx, k, prop_kind::forward_inference, l);
        const auto prim = make_primitive(k, fwd, false);
        constexpr std::size_t inputs = 64;
        std::vector<memory> xs;
        for (std::size_t n = 0; n < inputs; ++n)
        {
            xs.push_back(ctx.random(l.src_layer_md, l.src_layer, tag::tnc));
        }
        const memory w_layer = ctx.random(query(fwd, DNNL_ARG_WEIGHTS_LAYER), l.weights_layer, tag::ldigo);
        const memory w_iter = ctx.random(query(fwd, DNNL_ARG_WEIGHTS_ITER), l.weights_iter, tag::ldigo);
        const memory bias = ctx.random(l.bias_md, l.bias, tag::ldgo);
        const memory y(l.dst_layer_md, ctx.engine);
        memory h[2] = {ctx.zeros(l.src_iter_md), ctx.zeros(l.src_iter_md)};
        memory c[2] = {ctx.zeros(l.src_iter_md), ctx.zeros(l.src_iter_md)};
        std::unordered_map<int, memory> args = {{DNNL_ARG_WEIGHTS_LAYER, w_layer},
                                                {DNNL_ARG_WEIGHTS_ITER, w_iter},
                                                {DNNL_ARG_BIAS, bias},
                                                {DNNL_ARG_DST_LAYER, y}};
        constexpr std::size_t steps = 2000;
        report(name, "onednn", measure(3, reps, [&] {
                   for (std::size_t t = 0; t < steps; ++t)
                   {
                       args[DNNL_ARG_SRC_LAYER] = xs[t % inputs];
                       args[DNNL_ARG_SRC_ITER] = h[t % 2];
                       args[DNNL_ARG_DST_ITER] = h[(t + 1) % 2];
                       if (k == cell_kind::lstm)
                       {
                           args[DNNL_ARG_SRC_ITER_C] = c[t % 2];
                           args[DNNL_ARG_DST_ITER_C] = c[(t + 1) % 2];
                       }
                       prim.execute(ctx.stream, args);
                   }
                   ctx.stream.wait();
                   return steps;
               }));
    }

    bool wanted(const std::vector<std::string>& only, const std::string& name)
    {
        return only.empty() || std::find(only.begin(), only.end(), name) != only.end();
    }
}  // namespace

int main(int argc, char** argv)
{
    // flush-to-zero and denormals-are-zero on this thread and on every OpenMP thread oneDNN will use
    _mm_setcsr(_mm_getcsr() | 0x8040);
#pragma omp parallel
    {
        _mm_setcsr(_mm_getcsr() | 0x8040);
    }
    const std::vector<std::string> only(argv + 1, argv + argc);
    const dnnl_version_t* v = dnnl_version();
    std::fprintf(stderr, "onednn_reference: oneDNN %d.%d.%d, %d OpenMP threads, %s\n", v->major, v->minor, v->patch,
                 omp_get_max_threads(), v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other runtime");
    context ctx;
    const struct
    {
        const char* prefix;
        cell_kind kind;
        bool bf16;  // also in bfloat16 (training: bf16 data and weights, f32 gradients; bf16 gradients are refused)
    } cells[] = {{"rnn", cell_kind::rnn, false}, {"lstm", cell_kind::lstm, true}, {"gru", cell_kind::gru, true}};
    for (const auto& c : cells)
    {
        const std::string prefix = c.prefix;
        for (const bool training : {true, false})
        {
            const std::string name = prefix + (training ? "_layer_train" : "_layer_forward");
            if (!wanted(only, name))
            {
                continue;
            }
            layer_case(ctx, name, "onednn", c.kind, training, dt::f32, training ? 21 : 31);
            if (c.bf16)
            {
                try
                {
                    layer_case(ctx, name, "onednn_bf16", c.kind, training, dt::bf16, training ? 21 : 31);
                }
                catch (const dnnl::error& e)  // no bf16 implementation on this CPU
                {
                    std::fprintf(stderr, "onednn_reference: %s in bf16: %s\n", name.c_str(), e.what());
                }
            }
        }
        const std::string step = prefix + "_cell_step_b1";
        if (wanted(only, step))
        {
            step_case(ctx, step, c.kind, 31);
        }
    }
    return 0;
}
