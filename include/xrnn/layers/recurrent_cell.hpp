// xtensor-rnn: what every recurrent cell shares: the affine pre-activation, dropout masks, the per-step
// cache, and backpropagation through time over a whole sequence. A cell (rnn_cell, lstm_cell) adds only its
// gate equations, through two static functions called once per step:
//   Cell::activate<Keep>(z, b -> gates, c_{t-1} -> c_t, h_t)       the cell's forward equations of z + b; with
//                                                                  Keep the post-activation gates stay in z
//   Cell::activate_backward(gates -> dz, c_{t-1}, c_t, h_t, dh_t, dc)  their backward, giving dz_t (written over
//                                                                  the gates of step t) and dc_{t-1}
//
// Dimensions: S steps, B batch, I inputs, H hidden units, G = Gates * H pre-activation width.
// Sequences are time-major (S, B, .), row-major; step t of a buffer starts at data + t * B * width.
//
// Forward, for t = 1..S (one layer):
//   (R1) x~_t     = x_t * m_x                 m_x (B, I): input dropout mask, one per sequence (1 when off)
//   (R2) h~_{t-1} = h_{t-1} * m_h             m_h (B, H): recurrent dropout mask, one per sequence
//   (R3) z_t      = x~_t W_x + h~_{t-1} W_h + b          W_x (I, G), W_h (H, G), b (G) -> z_t (B, G)
//   (R4) (h_t, c_t) = cell equations of z_t and c_{t-1}   (rnn_cell.hpp, lstm_cell.hpp)
// The sequences of the batch are independent here, so each thread takes a part of the batch through all S
// steps (threads.hpp). Per step and tile of 8 rows, (R3) sums both products in registers (detail/small_gemm.hpp)
// and (R4) follows on those rows while z_t is in L1; W_x and W_h stay in L2 for all steps. Layers whose weights
// do not fit in L2 (register_blocked_steps is false) run (R3) through BLAS instead: one GEMM over many steps'
// rows for x~ W_x, then one GEMM per step for h~ W_h. + b is added by the cell's activation pass, which reads
// z_t anyway.
//
// Backward (BPTT), for t = S..1, with dh_t = dy_t (from the output or the layer above) + the recurrent part:
//   (Q1) dz_t, dc_{t-1} = cell backward of dh_t, dc_t     ("dz" is the gradient before the nonlinearities)
//   (Q2) dh_{t-1} = (dz_t W_h^T) * m_h         (+ dy_{t-1} at the next iteration)
//   (Q3) truncation: with bptt_steps = k > 0, dh_{t-1} and dc_{t-1} are set to 0 when t > 1 and
//        (S - t + 1) % k == 0, i.e. the sequence is cut into chunks of k steps aligned at its END, and no
//        gradient crosses a chunk boundary (as detaching the state there would). The last-step output of a
//        many-to-one model then backpropagates through exactly the last k steps.
//   (Q6) db   += sum over rows of dz_t          (accumulated inside the loop while dz_t is in cache)
// and then, over all steps at once:
//   (Q4) dW_x += X~^T dZ        X~ (S*B, I), dZ (S*B, G)
//   (Q5) dW_h += H~_prev^T dZ   H~_prev (S*B, H): h~_0 .. h~_{S-1}
//   (Q7) dx    = (dZ W_x^T) * m_x
//   (Q8) dh_0, dc_0: what (Q2) and (Q1) leave after t = 1 (the initial-state gradients)
// The loop over t runs like the forward, each thread's rows on their own ((Q2) in register tiles), on the
// register-blocked path; (Q4), (Q5) and (Q7) are large GEMMs and go to BLAS on both paths.
//
// Memory. A training forward keeps, per layer (e = sizeof(T)), and nothing else grows with S x B:
//   gates/dZ  S * B * G * e            z_t, then the post-activation gates, then dz_t written over them
//   h         (S + 1) * B * H * e      h_0 .. h_S
//   c         (S + 1) * B * H * e      c_0 .. c_S (cells with a cell state)
//   x~        S * B * I * e            the layer's input: a copy for the first layer of a stack (the caller's
//                                      tensor may change before backward); none for upper layers, which read
//                                      the h of the layer below, unless input dropout makes it a masked copy
//   h~        S * B * H * e            only with recurrent dropout
// and backward adds dx, S * B * I * e (the layer's result). Everything else is (B, .) or smaller, but for the
// register-blocked backward's W_h^T (G * H * e) and per-tile bias sums (ceil(B / tile rows) * G * e). An
// inference forward keeps h (the layer's output) and a gate buffer of B rows (at most max(B,
// inference_chunk_rows) rows on the BLAS path), c ping-pongs between two (B, H) rows, and the input is not
// copied. workspace_bytes() returns what the buffers hold.
// Backward consumes the gate cache (dz overwrites it): a second backward needs a new training forward.
#ifndef XRNN_LAYERS_RECURRENT_CELL_HPP
#define XRNN_LAYERS_RECURRENT_CELL_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <type_traits>

#include <xtensor/xnoalias.hpp>
#include <xtensor/xtensor.hpp>

#include <xrnn/config.hpp>
#include <xrnn/detail/blas.hpp>
#include <xrnn/detail/simd.hpp>
#include <xrnn/detail/small_gemm.hpp>
#include <xrnn/detail/tensor.hpp>
#include <xrnn/init.hpp>
#include <xrnn/layers/dropout.hpp>
#include <xrnn/random.hpp>
#include <xrnn/threads.hpp>

/// Largest W_x plus W_h, in bytes, that a recurrent layer runs on its register-blocked path (see
/// register_blocked_steps); a layer with larger weights goes through BLAS. Set it to the L2 size of the target CPU
/// if that differs much from 1 MiB, or to 0 for BLAS everywhere.
#ifndef XRNN_REGISTER_BLOCKED_MAX_BYTES
#define XRNN_REGISTER_BLOCKED_MAX_BYTES 1048576
#endif

namespace xrnn
{
    /// Runtime settings of a recurrent layer (all its stacked layers share them).
    struct recurrent_options
    {
        double dropout = 0.0;            // input dropout rate, one mask per sequence (Keras `dropout`)
        double recurrent_dropout = 0.0;  // dropout on h_{t-1} before W_h, one mask per sequence (Keras)
        std::size_t bptt_steps = 0;      // truncated BPTT length; 0 = through all steps
        init_scheme init = init_scheme::keras;
    };

    /// Parameters of one recurrent layer; the same struct holds their gradients.
    template <class T, std::size_t I, std::size_t H, std::size_t Gates>
    struct recurrent_params
    {
        static constexpr std::size_t G = Gates * H;
        xt::xtensor<T, 2> w_x;  // (I, G) = weight_ih^T in PyTorch
        xt::xtensor<T, 2> w_h;  // (H, G) = weight_hh^T
        xt::xtensor<T, 1> b;    // (G)    = bias_ih + bias_hh (one bias: the pair is redundant)

        recurrent_params()
            : w_x({I, G}, T(0))
            , w_h({H, G}, T(0))
            , b({G}, T(0))
        {
        }

        template <class F, class... Ps>
        static void zip(F&& f, Ps&... ps)
        {
            f("w_x", ps.w_x...);
            f("w_h", ps.w_h...);
            f("b", ps.b...);
        }
    };

    /// Hidden state, and cell state where the cell has one. Tensor is (B, H) for a cell, (L, B, H) for a layer.
    template <class Tensor, bool WithCellState>
    struct basic_state
    {
        Tensor h;
    };

    template <class Tensor>
    struct basic_state<Tensor, true>
    {
        Tensor h;
        Tensor c;
    };

    /// Gradients of one cell step: of its input and of its previous state.
    template <class T, bool WithCellState>
    struct step_gradients
    {
        xt::xtensor<T, 2> dx;
        basic_state<xt::xtensor<T, 2>, WithCellState> d_prev;
    };

    /// CRTP base of rnn_cell and lstm_cell. Cell provides:
    ///   static constexpr const char* name;
    ///   static void initial_bias(xt::xtensor<T, 1>& b)              (Keras scheme adjustments, e.g. forget bias)
    ///   template <bool Keep> static void activate(T* z, const T* b, const T* c_prev, T* c, T* h, std::size_t batch)
    ///   static void activate_backward(T* gates_dz, const T* c_prev, const T* c, const T* h, const T* dh, T* dc,
    ///                                 std::size_t batch)
    /// CellState says whether the cell carries c_t besides h_t (a template argument: Cell is incomplete here).
    template <class Cell, class T, std::size_t I, std::size_t H, std::size_t Gates, bool CellState>
    class recurrent_cell
    {
        static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value,
                      "xrnn: recurrent cells take T = float or double");
        static_assert(I > 0, "xrnn: a recurrent cell needs at least one input feature");
        static_assert(H > 0, "xrnn: a recurrent cell needs at least one hidden unit");

    public:
        using value_type = T;
        using params_type = recurrent_params<T, I, H, Gates>;
        static constexpr std::size_t input_size = I;
        static constexpr std::size_t hidden_size = H;
        static constexpr std::size_t gate_count = Gates;
        static constexpr std::size_t G = Gates * H;
        static constexpr bool has_cell_state = CellState;
        using state_type = basic_state<xt::xtensor<T, 2>, CellState>;  // (B, H) each
        using gradients_type = step_gradients<T, CellState>;

        params_type p;
        params_type dp;

        explicit recurrent_cell(random_engine& rng, const recurrent_options& options = {})
            : m_options(options)
            , m_mask_rng(0)
        {
            detail::check_rate(Cell::name, "dropout", options.dropout);
            detail::check_rate(Cell::name, "recurrent_dropout", options.recurrent_dropout);
            if (options.init == init_scheme::keras)
            {
                init::glorot_uniform(p.w_x, rng);
                init::orthogonal(p.w_h, rng);
                p.b.fill(T(0));
                Cell::initial_bias(p.b);
            }
            else
            {
                // PyTorch: every weight and both biases uniform(-1/sqrt(H), 1/sqrt(H)); our one bias is their sum.
                const double bound = 1.0 / std::sqrt(static_cast<double>(H));
                init::uniform(p.w_x, bound, rng);
                init::uniform(p.w_h, bound, rng);
                for (auto& v : p.b)
                {
                    const double b_ih = rng.uniform(-bound, bound);
                    const double b_hh = rng.uniform(-bound, bound);
                    v = static_cast<T>(b_ih + b_hh);
                }
            }
            m_mask_rng = rng.split();
        }

        const recurrent_options& options() const noexcept
        {
            return m_options;
        }

        /// The engine of this cell's dropout masks (checkpoints save and restore its state).
        random_engine& mask_engine() noexcept
        {
            return m_mask_rng;
        }

        template <class F>
        void for_each_random_engine(F&& f)
        {
            f(std::string("mask"), m_mask_rng);
        }

        template <class F>
        void for_each_parameter(F&& f)
        {
            params_type::zip(f, p, dp);
        }

        // ---- sequence interface, used by the layers in recurrent.hpp ------------------------------------------

        /// Whether (R3) and (R4) run step by step on register tiles of each thread's rows (detail/small_gemm.hpp,
        /// threads.hpp): when W_x and W_h together fit in XRNN_REGISTER_BLOCKED_MAX_BYTES (default 1 MiB, a
        /// core's L2 cache), where they stay for all steps. Larger layers take the BLAS path: one GEMM for the
        /// input part of many steps, one per step for h W_h.
        static constexpr bool register_blocked_steps =
            (I + H) * G * sizeof(T) <= static_cast<std::size_t>(XRNN_REGISTER_BLOCKED_MAX_BYTES);

        /// BLAS path: rows (steps x batch) of the gate buffer of an inference forward. The input part of (R3)
        /// runs as one GEMM per chunk of max(1, inference_chunk_rows / B) steps, so that the chunk stays in cache.
        static constexpr std::size_t inference_chunk_rows = 512;

        /// Runs (R1)-(R4) over x (S, B, I) from h0, c0 (B, H each; nullptr means zeros). With input_persists, x
        /// stays valid and unchanged until backward (the hidden sequence of the layer below, in a stack): a
        /// training forward then keeps no copy of it, and backward_sequence must be given it again.
        void forward_sequence(const T* x, std::size_t steps, std::size_t batch, const T* h0, const T* c0, mode m,
                              bool input_persists = false)
        {
            const std::size_t S = steps;
            const std::size_t B = batch;
            detail::flush_denormals_scope flush_denormals;
            m_steps = S;
            m_batch = B;
            m_training = m == mode::training;
            m_input_dropout = m_training && m_options.dropout > 0.0;
            m_recurrent_dropout = m_training && m_options.recurrent_dropout > 0.0;
            // grow-only: alternating training and inference forwards (fit, then evaluate) does not reallocate.
            // Training keeps every step's gates; inference needs one step's (register-blocked path) or a chunk
            // of steps' (BLAS path).
            const std::size_t chunk = m_training ? S
                                      : register_blocked_steps
                                          ? 1
                                          : std::min(S, std::max<std::size_t>(1, inference_chunk_rows / B));
            detail::ensure_capacity(m_gates, chunk * B * G);
            detail::ensure_shape(m_h, {S + 1, B, H});
            m_all_cell_states = m_training;
            if constexpr (CellState)
            {
                detail::ensure_capacity(m_c, (m_training ? S + 1 : 2) * B * H);
            }

            // (R1) masked input, kept for (Q4)
            if (m_input_dropout)
            {
                detail::ensure_shape(m_x, {S, B, I});
                detail::ensure_shape(m_input_mask, {B, I});
                detail::sample_dropout_mask(m_input_mask.data(), m_input_mask.size(), m_options.dropout, m_mask_rng);
                for (std::size_t t = 0; t < S; ++t)
                {
                    xt::noalias(step_view(m_x.data(), t, I)) = step_view(x, t, I) * m_input_mask;
                }
            }
            else if (m_training && !input_persists)
            {
                detail::ensure_shape(m_x, {S, B, I});
                std::copy(x, x + S * B * I, m_x.data());
            }
            // inference reads x once below and keeps nothing; a persistent input is read where it is
            m_input_copied = m_input_dropout || (m_training && !input_persists);
            const T* input = m_input_copied ? m_x.data() : x;
            if (m_recurrent_dropout)
            {
                detail::ensure_shape(m_recurrent_mask, {B, H});
                detail::ensure_shape(m_h_masked, {S, B, H});
                detail::sample_dropout_mask(m_recurrent_mask.data(), m_recurrent_mask.size(),
                                            m_options.recurrent_dropout, m_mask_rng);
            }

            copy_or_zero(h0, m_h.data(), B * H);
            if constexpr (CellState)
            {
                copy_or_zero(c0, m_c.data(), B * H);
            }
            if constexpr (register_blocked_steps)
            {
                forward_by_rows(input);
            }
            else
            {
                forward_by_blas(input, chunk);
            }
        }

        /// BPTT (Q1)-(Q8) for the last training forward. dy_seq (S, B, H): gradient of every step's output, or
        /// nullptr; dh_last, dc_last (B, H): gradient of the final state, or nullptr; x: the forward's input again
        /// when the forward was told input_persists (ignored otherwise). Accumulates dp. Consumes the gate cache:
        /// another backward needs another training forward first.
        void backward_sequence(const T* dy_seq, const T* dh_last, const T* dc_last, const T* x = nullptr)
        {
            if (!m_training || m_steps == 0)
            {
                throw state_error(std::string(Cell::name)
                                  + "::backward: call forward(x, mode::training) before backward");
            }
            const T* input = m_input_copied ? m_x.data() : x;  // x~ for (Q4)
            if (input == nullptr)
            {
                throw state_error(std::string(Cell::name) + "::backward: the forward's input is needed again");
            }
            m_training = false;  // dz is written over the gates below
            detail::flush_denormals_scope flush_denormals;
            const std::size_t S = m_steps;
            const std::size_t B = m_batch;
            detail::ensure_shape(m_dx, {S, B, I});
            detail::ensure_shape(m_dh, {B, H});
            copy_or_zero(dh_last, m_dh.data(), B * H);
            if constexpr (CellState)
            {
                detail::ensure_shape(m_dc, {B, H});
                copy_or_zero(dc_last, m_dc.data(), B * H);
            }
            if constexpr (register_blocked_steps)
            {
                backward_by_rows(dy_seq);
            }
            else
            {
                backward_by_blas(dy_seq);
            }
            const T* dz_all = m_gates.data();
            const T* h_prev_all = m_recurrent_dropout ? m_h_masked.data() : m_h.data();
            detail::accumulate_weight_gradient(input, dz_all, dp.w_x.data(), S * B, I, G);          // (Q4)
            detail::accumulate_weight_gradient(h_prev_all, dz_all, dp.w_h.data(), S * B, H, G);     // (Q5)
            detail::matmul_transposed_weight(dz_all, p.w_x.data(), m_dx.data(), S * B, G, I);      // (Q7)
            if (m_input_dropout)
            {
                for (std::size_t t = 0; t < S; ++t)
                {
                    auto dx_t = step_view(m_dx.data(), t, I);
                    xt::noalias(dx_t) *= m_input_mask;
                }
            }
        }

        std::size_t steps() const noexcept
        {
            return m_steps;
        }

        std::size_t batch() const noexcept
        {
            return m_batch;
        }

        /// h_1 .. h_S of the last forward, (S, B, H) contiguous.
        const T* hidden_sequence() const noexcept
        {
            return m_h.data() + m_batch * H;
        }

        const T* final_hidden() const noexcept
        {
            return m_h.data() + m_steps * m_batch * H;
        }

        const T* final_cell() const noexcept
        {
            return cell_state(m_steps);
        }

        /// dx (S, B, I) of the last backward.
        const xt::xtensor<T, 3>& input_gradient() const noexcept
        {
            return m_dx;
        }

        /// (Q8) dh_0 and dc_0 (B, H) of the last backward.
        const T* initial_hidden_gradient() const noexcept
        {
            return m_dh.data();
        }

        const T* initial_cell_gradient() const noexcept
        {
            return m_dc.data();
        }

        /// Bytes held by this cell's buffers now (caches, workspaces, results; not the parameters): see "Memory"
        /// at the top of this file for what a forward and a backward of S steps and batch B leave here.
        std::size_t workspace_bytes() const noexcept
        {
            std::size_t values = m_x.size() + m_gates.size() + m_h.size() + m_c.size() + m_h_masked.size()
                                 + m_input_mask.size() + m_recurrent_mask.size() + m_dx.size() + m_dh.size()
                                 + m_dc.size() + m_w_h_transposed.size() + m_bias_sums.size() + m_step_z.size()
                                 + m_next.h.size() + m_step_grads.dx.size() + m_step_grads.d_prev.h.size();
            if constexpr (CellState)
            {
                values += m_next.c.size() + m_step_grads.d_prev.c.size();
            }
            return values * sizeof(T);
        }

        // ---- one-step interface ----------------------------------------------------------------------------------

        /// x (B, I) and prev (h, and c for cells that have it; (B, H) each) -> the next state. prev may be the
        /// state this cell returned last (streaming: state = &cell.forward(x, *state)). With B = 1 in inference
        /// mode the step runs on a path of its own (one matrix-vector product over [x, h] and the fused gate
        /// equations, nothing cached), which allocates nothing once the cell has run one step.
        const state_type& forward(const xt::xtensor<T, 2>& x, const state_type& prev, mode m = mode::inference)
        {
            const std::size_t B = x.shape()[0];
            detail::check_positive(Cell::name, "batch (x.shape()[0])", B);
            detail::check_shape(Cell::name, "x", x.shape(), {B, I});
            detail::check_shape(Cell::name, "previous h", prev.h.shape(), {B, H});
            const T* c0 = nullptr;
            if constexpr (CellState)
            {
                detail::check_shape(Cell::name, "previous c", prev.c.shape(), {B, H});
                c0 = prev.c.data();
            }
            if (B == 1 && m == mode::inference)
            {
                step_batch1(x.data(), prev.h.data(), c0);
                return m_next;
            }
            forward_sequence(x.data(), 1, B, prev.h.data(), c0, m);
            copy_out(final_hidden(), m_next.h, B);
            if constexpr (CellState)
            {
                copy_out(final_cell(), m_next.c, B);
            }
            return m_next;
        }

        /// Backward of the last one-step training forward, given the gradient of the next state: accumulates dp
        /// and returns dx (B, I) and the gradient of the previous state.
        const gradients_type& backward(const state_type& d_next)
        {
            const std::size_t B = m_batch;
            detail::check_shape(Cell::name, "gradient of h", d_next.h.shape(), {B, H});
            const T* dc = nullptr;
            if constexpr (CellState)
            {
                detail::check_shape(Cell::name, "gradient of c", d_next.c.shape(), {B, H});
                dc = d_next.c.data();
            }
            backward_sequence(nullptr, d_next.h.data(), dc);
            detail::ensure_shape(m_step_grads.dx, {B, I});
            std::copy(m_dx.data(), m_dx.data() + B * I, m_step_grads.dx.data());
            copy_out(initial_hidden_gradient(), m_step_grads.d_prev.h, B);
            if constexpr (CellState)
            {
                copy_out(initial_cell_gradient(), m_step_grads.d_prev.c, B);
            }
            return m_step_grads;
        }

    private:
        /// Rows of the batch one part of a parallel pass takes: whole register tiles, and at least enough
        /// work per part (2^22 multiply-adds over all steps) to pay for waking a thread.
        static std::size_t rows_per_part(std::size_t steps, std::size_t batch) noexcept
        {
            constexpr std::size_t tile = detail::gemm_tile<T>::rows;
            constexpr std::size_t min_work = std::size_t(1) << 22;
            const std::size_t work_per_row = std::max<std::size_t>(1, steps * (I + H) * G);
            const std::size_t min_rows = (min_work + work_per_row - 1) / work_per_row;
            const std::size_t threads = std::max<std::size_t>(1, num_threads());
            std::size_t rows = std::max((batch + threads - 1) / threads, min_rows);
            rows = (rows + tile - 1) / tile * tile;
            return std::min(rows, batch);
        }

        /// (R2)-(R4) for all steps, each part of the batch on a thread of its own (the rows are independent until
        /// backward): per step and tile of rows, z = x~_t W_x + h~_{t-1} W_h in registers, then the cell's
        /// equations on those rows while z is in L1. z is the step's rows of the gate cache when training, else
        /// a (B, G) scratch row per sequence.
        void forward_by_rows(const T* input)
        {
            const std::size_t S = m_steps;
            const std::size_t B = m_batch;
            const std::size_t rows = rows_per_part(S, B);
            detail::parallel_for((B + rows - 1) / rows, [&](std::size_t part) {
                detail::flush_denormals_scope flush_denormals;  // on this thread too
                constexpr std::size_t tile = detail::gemm_tile<T>::rows;
                const std::size_t part_end = std::min(B, (part + 1) * rows);
                for (std::size_t t = 0; t < S; ++t)
                {
                    T* z_step = m_gates.data() + (m_training ? t * B * G : 0);
                    for (std::size_t r = part * rows; r < part_end; r += tile)
                    {
                        const std::size_t n = std::min(tile, part_end - r);
                        const T* h_prev = previous_hidden(t, r, n);  // (R2)
                        T* z = z_step + r * G;
                        const detail::gemm_term<T> terms[2] = {{input + (t * B + r) * I, I, p.w_x.data(), I},
                                                               {h_prev, H, p.w_h.data(), H}};
                        detail::gemm_rows<T, G>(n, z, G, terms);  // (R3)
                        activate_rows(z, row_of(cell_state(t), r), row_of(cell_state(t + 1), r),
                                      m_h.data() + ((t + 1) * B + r) * H, n);  // (R4)
                    }
                }
            });
        }

        /// (R2)-(R4) through BLAS: Z = X~ W_x for a chunk of steps (all S when training) in one GEMM, then per
        /// step Z_t += h~_{t-1} W_h and the cell's equations.
        void forward_by_blas(const T* input, std::size_t chunk)
        {
            const std::size_t S = m_steps;
            const std::size_t B = m_batch;
            for (std::size_t begin = 0; begin < S; begin += chunk)
            {
                const std::size_t rows = std::min(chunk, S - begin) * B;
                detail::matmul(input + begin * B * I, p.w_x.data(), m_gates.data(), rows, I, G);
                for (std::size_t t = begin; t < begin + rows / B; ++t)
                {
                    const T* h_prev = previous_hidden(t, 0, B);  // (R2)
                    T* z = m_gates.data() + (t - begin) * B * G;
                    if (B == 1)  // (R3), recurrent part
                    {
                        const detail::gemv_term<T> term{h_prev, p.w_h.data(), H};
                        detail::gemv_rows<T, G>(z, z, &term, 1);
                    }
                    else
                    {
                        detail::matmul(h_prev, p.w_h.data(), z, B, H, G, T(1));
                    }
                    activate_rows(z, cell_state(t), cell_state(t + 1), m_h.data() + (t + 1) * B * H, B);  // (R4)
                }
            }
        }

        /// (Q1)-(Q3) and (Q6) for t = S..1, each part of the batch on a thread of its own: per step and tile of rows,
        /// the cell's backward gives dz_t, then dh_{t-1} = dz_t W_h^T in registers (from a transposed copy of W_h,
        /// so that W is read row by row as in the forward). db is summed per tile of rows, and the tiles' sums
        /// are added in tile order at the end, so it does not depend on the number of threads either.
        void backward_by_rows(const T* dy_seq)
        {
            const std::size_t S = m_steps;
            const std::size_t B = m_batch;
            constexpr std::size_t tile = detail::gemm_tile<T>::rows;
            const std::size_t tiles = (B + tile - 1) / tile;
            detail::ensure_shape(m_w_h_transposed, {G, H});
            for (std::size_t i = 0; i < H; ++i)
            {
                for (std::size_t j = 0; j < G; ++j)
                {
                    m_w_h_transposed.data()[j * H + i] = p.w_h.data()[i * G + j];
                }
            }
            detail::ensure_shape(m_bias_sums, {tiles, G});
            m_bias_sums.fill(T(0));
            const std::size_t rows = rows_per_part(S, B);
            detail::parallel_for((B + rows - 1) / rows, [&](std::size_t part) {
                detail::flush_denormals_scope flush_denormals;  // on this thread too
                const std::size_t part_end = std::min(B, (part + 1) * rows);
                for (std::size_t t = S; t-- > 0;)  // 0-based step t computes h_{t+1} from h_t
                {
                    for (std::size_t r = part * rows; r < part_end; r += tile)
                    {
                        const std::size_t n = std::min(tile, part_end - r);
                        const T* dz = gate_gradient(dy_seq, t, r, n);                                  // (Q1)
                        detail::accumulate_column_sums(dz, n, G, m_bias_sums.data() + (r / tile) * G);  // (Q6)
                        const detail::gemm_term<T> term[1] = {{dz, G, m_w_h_transposed.data(), G}};
                        detail::gemm_rows<T, H>(n, m_dh.data() + r * H, H, term);                     // (Q2)
                        finish_hidden_gradient(t, r, n);
                    }
                }
            });
            detail::accumulate_column_sums(m_bias_sums.data(), tiles, G, dp.b.data());
        }

        /// (Q1)-(Q3) and (Q6) for t = S..1 on the whole batch, with one BLAS call per step for (Q2).
        void backward_by_blas(const T* dy_seq)
        {
            const std::size_t S = m_steps;
            const std::size_t B = m_batch;
            for (std::size_t t = S; t-- > 0;)  // 0-based step t computes h_{t+1} from h_t
            {
                const T* dz = gate_gradient(dy_seq, t, 0, B);                                  // (Q1)
                detail::accumulate_column_sums(dz, B, G, dp.b.data());                         // (Q6)
                detail::matmul_transposed_weight(dz, p.w_h.data(), m_dh.data(), B, G, H);     // (Q2)
                finish_hidden_gradient(t, 0, B);
            }
        }

        /// (R2) for rows [r, r + n) of step t (0-based, reading h_t): h~ = h * m_h into the cache of h~ with
        /// recurrent dropout, else h itself.
        const T* previous_hidden(std::size_t t, std::size_t r, std::size_t n)
        {
            const T* h = m_h.data() + (t * m_batch + r) * H;
            if (!m_recurrent_dropout)
            {
                return h;
            }
            T* masked = m_h_masked.data() + (t * m_batch + r) * H;
            const T* mask = m_recurrent_mask.data() + r * H;
            for (std::size_t j = 0; j < n * H; ++j)
            {
                masked[j] = h[j] * mask[j];
            }
            return masked;
        }

        /// dh += dy_t, then (Q1) for rows [r, r + n) of step t: dz_t written over the step's gates, dc updated.
        /// Returns those rows of dz_t.
        const T* gate_gradient(const T* dy_seq, std::size_t t, std::size_t r, std::size_t n)
        {
            T* dh = m_dh.data() + r * H;
            if (dy_seq != nullptr)
            {
                const T* dy = dy_seq + (t * m_batch + r) * H;
                for (std::size_t j = 0; j < n * H; ++j)
                {
                    dh[j] += dy[j];
                }
            }
            T* dz = m_gates.data() + (t * m_batch + r) * G;  // the gates of step t, then dz_t
            Cell::activate_backward(dz, row_of(cell_state(t), r), row_of(cell_state(t + 1), r),
                                    m_h.data() + ((t + 1) * m_batch + r) * H, dh, row_of(cell_state_gradient(), r),
                                    n);
            return dz;
        }

        /// After (Q2) for rows [r, r + n) of step t: dh_{t-1} *= m_h, and (Q3), the truncation of dh and dc.
        void finish_hidden_gradient(std::size_t t, std::size_t r, std::size_t n)
        {
            T* dh = m_dh.data() + r * H;
            if (m_recurrent_dropout)
            {
                const T* mask = m_recurrent_mask.data() + r * H;
                for (std::size_t j = 0; j < n * H; ++j)
                {
                    dh[j] *= mask[j];
                }
            }
            const std::size_t k = m_options.bptt_steps;
            if (k > 0 && t > 0 && (m_steps - t) % k == 0)  // (Q3)
            {
                std::fill(dh, dh + n * H, T(0));
                if (T* dc = row_of(cell_state_gradient(), r))
                {
                    std::fill(dc, dc + n * H, T(0));
                }
            }
        }

        /// (R4) of z_t + b on n rows; a training forward keeps the post-activation gates in z for backward.
        void activate_rows(T* z, const T* c_prev, T* c, T* h, std::size_t n) const
        {
            if (m_training)
            {
                Cell::template activate<true>(z, p.b.data(), c_prev, c, h, n);
            }
            else
            {
                Cell::template activate<false>(z, p.b.data(), c_prev, c, h, n);
            }
        }

        /// Row r of a (B, H) state, or nullptr for cells without a cell state.
        static T* row_of(T* state, std::size_t r) noexcept
        {
            return state != nullptr ? state + r * H : nullptr;
        }

        /// The batch-1 inference step: (R3) as z = x W_x + h_{t-1} W_h in one register-blocked pass over both
        /// weight matrices, then (R4) of z + b into m_next. h_prev is read completely before m_next.h is written, and
        /// c elementwise, so prev may alias m_next.
        void step_batch1(const T* x, const T* h_prev, const T* c_prev)
        {
            detail::flush_denormals_scope flush_denormals;
            m_training = false;  // nothing is cached for backward
            m_steps = 0;
            m_batch = 1;
            detail::ensure_shape(m_step_z, {G});
            const detail::gemv_term<T> terms[2] = {{x, p.w_x.data(), I}, {h_prev, p.w_h.data(), H}};
            detail::gemv_rows<T, G>(nullptr, m_step_z.data(), terms, 2);  // (R3)
            detail::ensure_shape(m_next.h, {1, H});
            T* c = nullptr;
            if constexpr (CellState)
            {
                detail::ensure_shape(m_next.c, {1, H});
                c = m_next.c.data();
            }
            Cell::template activate<false>(m_step_z.data(), p.b.data(), c_prev, c, m_next.h.data(), 1);  // (R4)
        }

        template <class P>
        static auto step_view(P* data, std::size_t t, std::size_t width, std::size_t batch)
        {
            return detail::matrix_view(data + t * batch * width, batch, width);
        }

        template <class P>
        auto step_view(P* data, std::size_t t, std::size_t width) const
        {
            return step_view(data, t, width, m_batch);
        }

        static void copy_or_zero(const T* from, T* to, std::size_t n)
        {
            if (from != nullptr)
            {
                std::copy(from, from + n, to);
            }
            else
            {
                std::fill(to, to + n, T(0));
            }
        }

        static void copy_out(const T* from, xt::xtensor<T, 2>& to, std::size_t batch)
        {
            detail::ensure_shape(to, {batch, H});
            std::copy(from, from + batch * H, to.data());
        }

        /// c_t: row t of the (S + 1, B, H) cache when training; one of two (B, H) rows otherwise.
        T* cell_state(std::size_t t) noexcept
        {
            if constexpr (CellState)
            {
                return m_c.data() + (m_all_cell_states ? t : t % 2) * m_batch * H;
            }
            else
            {
                return nullptr;
            }
        }

        const T* cell_state(std::size_t t) const noexcept
        {
            return const_cast<recurrent_cell*>(this)->cell_state(t);
        }

        T* cell_state_gradient() noexcept
        {
            return CellState ? m_dc.data() : nullptr;
        }

        recurrent_options m_options;
        random_engine m_mask_rng;
        std::size_t m_steps = 0;
        std::size_t m_batch = 0;
        bool m_training = false;
        bool m_input_dropout = false;
        bool m_recurrent_dropout = false;
        bool m_all_cell_states = false;  // m_c holds c_0 .. c_S (training), or two rows used in turn (inference)
        bool m_input_copied = false;  // x~ of the last training forward is m_x (else the caller keeps x)

        // per-sequence cache of the last forward
        xt::xtensor<T, 3> m_x;         // (S, B, I)   x~, the masked or copied input (first layer, training)
        xt::xtensor<T, 1> m_gates;     // (S, B, G)   z, then the post-activation gates, then dz (training);
                                       //             (chunk, B, G) z of a chunk of steps (inference); grow-only
        xt::xtensor<T, 3> m_h;         // (S+1, B, H) h_0 .. h_S
        xt::xtensor<T, 1> m_c;         // (S+1, B, H) c_0 .. c_S (training); (2, B, H) (inference); grow-only
        xt::xtensor<T, 3> m_h_masked;  // (S, B, H)   h~_0 .. h~_{S-1} (recurrent dropout only)
        xt::xtensor<T, 2> m_input_mask;      // (B, I)
        xt::xtensor<T, 2> m_recurrent_mask;  // (B, H)

        // backward workspaces
        xt::xtensor<T, 3> m_dx;      // (S, B, I)
        xt::xtensor<T, 2> m_dh;      // (B, H) running dh_t, dh_0 at the end
        xt::xtensor<T, 2> m_dc;      // (B, H) running dc_t, dc_0 at the end
        xt::xtensor<T, 2> m_w_h_transposed;  // (G, H) W_h^T for (Q2) on the register-blocked path
        xt::xtensor<T, 2> m_bias_sums;       // (tiles of B, G) (Q6) per tile of rows, added in tile order

        // the one-step API: z of the batch-1 path, and the results
        xt::xtensor<T, 1> m_step_z;  // (G)
        state_type m_next;
        gradients_type m_step_grads;
    };
}  // namespace xrnn

#endif
