// xtensor-rnn: the engine every recurrent cell runs on: the two projections, dropout masks, the per-step cache,
// and backpropagation through time over a whole sequence. A cell (rnn_cell, lstm_cell, gru_cell) declares its
// layout and supplies its gate equations on the rows of one step: the contract is in recurrent_params.hpp.
// This header holds the class, its public interface and its buffers ("Memory"); the other definitions, with their
// equations, are in the headers included at its end: recurrent_forward.hpp (R1)-(R4), recurrent_backward.hpp
// (Q1)-(Q8), recurrent_masking.hpp (M1)-(M4) and recurrent_bf16.hpp (precision::bf16).
//
// Dimensions: S steps, B batch, I inputs, H hidden units; Gx, Gh, Gs, Gz the widths of the input projection, the
// recurrent projection, their summed part and z (recurrent_params.hpp). Sequences are time-major (S, B, .),
// row-major; step t of a buffer starts at data + t * B * width.
//
// Memory. A training forward keeps, per layer (e = sizeof(T)), and nothing else grows with S x B:
//   gates/dZ  S * B * Gz * e           z_t, then what the cell keeps for backward, then dz_t written over it
//   h         (S + 1) * B * H * e      h_0 .. h_S
//   c         (S + 1) * B * H * e      c_0 .. c_S (cells with a cell state)
//   x~        S * B * I * e            the layer's input: a copy for the first layer of a stack (the caller's
//                                      tensor may change before backward); none for upper layers, which read
//                                      the h of the layer below, unless input dropout makes it a masked copy
//   h~        S * B * H * e            only with recurrent dropout
// and backward adds dx, S * B * I * e (the layer's result). Everything else is (B, .) or smaller: the running dh
// and dc, the cell's direct dh' (cells that have one), the register-blocked backward's W_h^T (Gh * H * e), (Q7)'s
// W_x^T (Gx * I * e) (where a long forward packs W_h and W_x), per-tile bias sums (ceil(B / tile rows) * Gz * e)
// and the packed chunks of (Q4), (Q5) (outer_chunk_rows * (about Gz / threads + I + H) * e per thread: 256 KB each
// for the IMDB LSTM). An inference forward keeps h (the layer's output) and a gate buffer of B rows (at most
// max(B, inference_chunk_rows) rows on the BLAS path), c ping-pongs between two (B, H) rows, and the input is not
// copied; one of at least packed_steps steps on the register-blocked path also keeps W_x and W_h packed for (R3),
// (I Gx + H Gh) * e (in the buffers of backward's W^T; not in a predictor's cells, which share the model's
// weights). workspace_bytes() returns what the buffers hold.
// Backward consumes the gate cache (dz overwrites it): a second backward needs a new training forward.
#ifndef XRNN_LAYERS_RECURRENT_CELL_HPP
#define XRNN_LAYERS_RECURRENT_CELL_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <type_traits>

#include <xtensor/xtensor.hpp>

#include <xrnn/config.hpp>
#include <xrnn/detail/small_gemm.hpp>
#include <xrnn/detail/tensor.hpp>
#include <xrnn/init.hpp>
#include <xrnn/layers/recurrent_params.hpp>
#include <xrnn/precision.hpp>
#include <xrnn/random.hpp>

/// Largest W_x plus W_h, in bytes, that a recurrent layer runs on its register-blocked path (see
/// register_blocked_steps); a layer with larger weights goes through BLAS. Set it to the L2 size of the target CPU
/// if that differs much from 1 MiB, or to 0 for BLAS everywhere.
#ifndef XRNN_REGISTER_BLOCKED_MAX_BYTES
#define XRNN_REGISTER_BLOCKED_MAX_BYTES 1048576
#endif

namespace xrnn
{
    /// What the buffers of a cell hold after its last call.
    enum class cache_state
    {
        empty,      // nothing has run
        inference,  // an inference forward: outputs and final states, nothing for backward
        training,   // a training forward: everything backward needs
        consumed    // its backward: the gradients (dz overwrote the gates; another backward needs a new forward)
    };

    /// CRTP base of the cells: Cell supplies, besides its equations (recurrent_params.hpp),
    ///   static constexpr const char* name, layer_name      "gru_cell" and "gru", for messages and signatures
    ///   static std::string signature_options()             its settings in a layer's signature ("" or ",tanh")
    ///   static void initial_bias(xt::xtensor<T, 1>& b)    Keras-scheme adjustments (e.g. the LSTM's forget bias)
    /// Layout is the cell's cell_layout (a template argument, as Cell is incomplete here).
    template <class Cell, class T, std::size_t I, std::size_t H, class Layout, class Precision = precision::native>
    class recurrent_cell
    {
        static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value,
                      "xrnn: recurrent cells take T = float or double");
        static_assert(std::is_same<Precision, precision::native>::value
                          || (std::is_same<Precision, precision::bf16>::value && std::is_same<T, float>::value),
                      "xrnn: a recurrent cell's Precision is precision::native, or precision::bf16 with T = float");
        static_assert(I > 0, "xrnn: a recurrent cell needs at least one input feature");
        static_assert(H > 0, "xrnn: a recurrent cell needs at least one hidden unit");

    public:
        using value_type = T;
        using layout = Layout;
        using params_type = recurrent_params<T, I, H, Layout>;
        static constexpr std::size_t input_size = I;
        static constexpr std::size_t hidden_size = H;
        static constexpr std::size_t Gx = Layout::input_width;
        static constexpr std::size_t Gh = Layout::recurrent_width;
        static constexpr std::size_t Gs = Layout::shared_width;
        static constexpr std::size_t Gz = Layout::width;
        static constexpr bool has_cell_state = Layout::cell_state;
        using state_type = basic_state<xt::xtensor<T, 2>, has_cell_state>;  // (B, H) each
        using gradients_type = step_gradients<T, has_cell_state>;

        params_type p;
        params_type dp;

        explicit recurrent_cell(random_engine& rng, const recurrent_options& options = {});

        /// For inference only, reading owner's parameters (no copy), with buffers of its own (predictors).
        recurrent_cell(shared_weights_t, const recurrent_cell& owner) noexcept
            : p(shared_weights)
            , dp(shared_weights)
            , m_options(owner.m_options)
            , m_mask_rng(0)
            , m_shared(&owner.weights())
        {
        }

        /// The parameters forward reads: p, or those of the cell this one was made to share.
        const params_type& weights() const noexcept
        {
            return m_shared != nullptr ? *m_shared : p;
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

        // ---- sequence interface, used by the layers in recurrent_stack.hpp -------------------------------------

        /// Whether (R3) and (R4) run step by step on register tiles of each thread's rows (detail/small_gemm.hpp,
        /// threads.hpp): when W_x and W_h together fit in XRNN_REGISTER_BLOCKED_MAX_BYTES (default 1 MiB, a
        /// core's L2 cache), where they stay for all steps. Larger layers take the BLAS path.
        /// With precision::bf16 every layer takes this path (its products run on bf16 tiles, recurrent_bf16.hpp).
        static constexpr bool bf16_products = is_bf16_precision<Precision>;
        static constexpr bool register_blocked_steps =
            bf16_products
            || (I * Gx + H * Gh) * sizeof(T) <= static_cast<std::size_t>(XRNN_REGISTER_BLOCKED_MAX_BYTES);

        /// Rows of a tile of the register-blocked path: a register tile of detail/small_gemm.hpp, or an AMX tile.
        static constexpr std::size_t tile_rows = bf16_products ? detail::bf16_tile_rows : detail::gemm_tile<T>::rows;

        /// Register-blocked path: a forward of at least this many steps packs W_x and W_h by column tiles first
        /// (detail/small_gemm.hpp's pack_column_tiles: 1.05x on (R3)'s products), which costs about as much as
        /// the products of 20 steps gain; shorter ones (a step at a time) read the weights as they are, and so
        /// does a cell that shares another's weights (a predictor's, whose memory stays its workspace). The
        /// results are the same bits either way.
        static constexpr std::size_t packed_steps = 32;

        /// BLAS path: rows (steps x batch) of the gate buffer of an inference forward. The input part of (R3)
        /// runs as one GEMM per chunk of max(1, inference_chunk_rows / B) steps, so that the chunk stays in cache.
        static constexpr std::size_t inference_chunk_rows = 512;

        /// Runs (R1)-(R4) over x (S, B, I) from h0, c0 (B, H each; nullptr means zeros). With input_persists, x
        /// stays valid and unchanged until backward (the hidden sequence of the layer below, in a stack): a
        /// training forward then keeps no copy of it, and backward_sequence must be given it again.
        /// lengths (B values in [1, steps], or nullptr for all steps): see "Variable lengths" in recurrent_masking.hpp.
        void forward_sequence(const T* x, std::size_t steps, std::size_t batch, const T* h0, const T* c0, mode m,
                              bool input_persists = false, const std::size_t* lengths = nullptr);

        /// BPTT (Q1)-(Q8) for the last training forward. dy_seq (S, B, H): gradient of every step's output, or
        /// nullptr; dh_last, dc_last (B, H): gradient of the final state, or nullptr; x: the forward's input again
        /// when the forward was told input_persists (ignored otherwise). Accumulates dp. Consumes the gate cache.
        void backward_sequence(const T* dy_seq, const T* dh_last, const T* dc_last, const T* x = nullptr);

        cache_state state() const noexcept
        {
            return m_state;
        }

        std::size_t steps() const noexcept
        {
            return m_steps;
        }

        std::size_t batch() const noexcept
        {
            return m_batch;
        }

        /// Whether the last forward had lengths, and the length of row b (steps() without lengths).
        bool has_lengths() const noexcept
        {
            return m_has_lengths;
        }

        std::size_t length(std::size_t b) const noexcept
        {
            return m_has_lengths ? m_lengths.data()[b] : m_steps;
        }

        /// h_1 .. h_S of the last forward, (S, B, H) contiguous; with lengths, a row's state is carried past its end.
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
        std::size_t workspace_bytes() const noexcept;

        // ---- one-step interface ----------------------------------------------------------------------------------

        /// x (B, I) and prev (h, and c for cells that have it; (B, H) each) -> the next state. prev may be the
        /// state this cell returned last (streaming: state = &cell.forward(x, *state)). With B = 1 in inference
        /// mode the step runs on a path of its own (matrix-vector products over x and h and the fused gate
        /// equations, nothing cached), which allocates nothing once the cell has run one step.
        const state_type& forward(const xt::xtensor<T, 2>& x, const state_type& prev, mode m = mode::inference);

        /// Backward of the last one-step training forward, given the gradient of the next state: accumulates dp
        /// and returns dx (B, I) and the gradient of the previous state.
        const gradients_type& backward(const state_type& d_next);

    private:
        // the steps of a forward and a backward, by path (definitions in recurrent_forward.hpp, recurrent_backward.hpp)
        static std::size_t part_count(std::size_t steps, std::size_t batch) noexcept;
        void forward_by_rows(const T* input);
        void forward_by_blas(const T* input, std::size_t chunk);
        void backward_by_rows(const T* dy_seq);
        void backward_by_blas(const T* dy_seq);
        void step_batch1(const T* x, const T* h_prev, const T* c_prev);

        /// A thread's step takes up to group_tiles of its tiles (64 rows) together in (R3) and (Q2): row_runs are
        /// their alive runs of rows (at most (tile + 1) / 2 per tile).
        static constexpr std::size_t group_tiles = std::max<std::size_t>(1, 64 / tile_rows);
        struct row_runs
        {
            detail::row_run items[group_tiles * ((tile_rows + 1) / 2)];
            std::size_t count = 0;
        };

        // (R2)-(R4), (Q1)-(Q3) on rows [r, r + n) of step t (0-based: step t reads h_t and writes h_{t+1}), also there
        const T* previous_hidden(std::size_t t, std::size_t r, std::size_t n);
        const T* hidden_rows(std::size_t t) const;
        void project_runs(const T* x, const T* h_prev, T* z, const row_runs& runs) const;
        template <bool Packed>
        void project_runs_from(const T* w_x, const T* w_h, const T* x, const T* h_prev, T* z,
                               const row_runs& runs) const;
        void pack_projection_weights();
        void activate_rows(std::size_t t, T* z, std::size_t r, std::size_t n);
        const T* gate_gradient(const T* dy_seq, std::size_t t, std::size_t r, std::size_t n);
        void hidden_gradient_runs(const T* dz, const row_runs& runs);
        void finish_hidden_gradient(std::size_t t, std::size_t r, std::size_t n);
        void parameter_gradients(const T* input);
        void transpose_input_weights();
        void mask_input_gradient();

        // precision::bf16: the products on bf16 operands (definitions in recurrent_bf16.hpp)
        void pack_bf16_forward_weights();
        void pack_bf16_backward_weights();
        void project_rows_bf16(const T* x, const T* h_prev, T* z, std::size_t n) const;
        void hidden_gradient_rows_bf16(const T* dz, std::size_t r, std::size_t n);
        void parameter_gradients_bf16(const T* input);

        // (M1)-(M4) (recurrent_masking.hpp): f(r0, n0) for each run of rows of [r, r + n) alive at step t (all of it
        // without lengths)
        template <class F>
        void for_alive_runs(std::size_t t, std::size_t r, std::size_t n, F&& f) const;
        void keep_dead_states(std::size_t t, std::size_t r, std::size_t n);
        void zero_dead_rows(T* step_rows, std::size_t width, std::size_t t, std::size_t r, std::size_t n);
        std::size_t alive_extent(std::size_t t) const noexcept;
        bool alive(std::size_t t, std::size_t b) const noexcept
        {
            return !m_has_lengths || t < m_lengths.data()[b];
        }

        bool training_cache() const noexcept
        {
            return m_state == cache_state::training || m_state == cache_state::consumed;
        }
        bool input_dropout() const noexcept
        {
            return training_cache() && m_options.dropout > 0.0;
        }
        bool recurrent_dropout() const noexcept
        {
            return training_cache() && m_options.recurrent_dropout > 0.0;
        }
        /// x~ of the last training forward is m_x (else the caller keeps x).
        bool input_copied() const noexcept
        {
            return training_cache() && (input_dropout() || !m_input_persists);
        }

        /// Row r of a (B, H) state, or nullptr for cells without a cell state.
        static T* row_of(T* state, std::size_t r) noexcept
        {
            return state != nullptr ? state + r * H : nullptr;
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

        /// c_t: row t of the (S + 1, B, H) cache after a training forward; one of two (B, H) rows otherwise.
        T* cell_state(std::size_t t) noexcept
        {
            if constexpr (has_cell_state)
            {
                return m_c.data() + (training_cache() ? t : t % 2) * m_batch * H;
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
            return has_cell_state ? m_dc.data() : nullptr;
        }

        recurrent_options m_options;
        random_engine m_mask_rng;
        const params_type* m_shared = nullptr;  // the parameters of the cell this one shares, or none
        cache_state m_state = cache_state::empty;
        bool m_input_persists = false;  // the last forward read the caller's x in place (see forward_sequence)
        std::size_t m_steps = 0;
        std::size_t m_batch = 0;
        bool m_has_lengths = false;
        xt::xtensor<std::size_t, 1> m_lengths;  // (B) with lengths
        xt::xtensor<std::size_t, 1> m_step_extents;  // (S) with lengths: alive_extent(t) for the large products

        // per-sequence cache of the last forward, and the backward's workspaces: on 64-byte lines (detail/tensor.hpp)
        // whatever the user's build defines, so that the register tiles' rows of z, h, c and dh do not straddle
        // cache lines (as xtensor's own allocator does without XTENSOR_USE_XSIMD)
        aligned_tensor<T, 3> m_x;               // (S, B, I)   x~, the masked or copied input (first layer, training)
        aligned_tensor<T, 1> m_gates;           // (S, B, Gz)  z, then the cell's cache, then dz (training);
                                                //             (chunk, B, Gz) z of a chunk of steps (inference);
                                                //             grow-only
        aligned_tensor<T, 3> m_h;               // (S+1, B, H) h_0 .. h_S
        aligned_tensor<T, 1> m_c;               // (S+1, B, H) c_0 .. c_S (training); (2, B, H) (inference); grow-only
        aligned_tensor<T, 3> m_h_masked;        // (S, B, H)   h~_0 .. h~_{S-1} (recurrent dropout only)
        aligned_tensor<T, 2> m_input_mask;      // (B, I)
        aligned_tensor<T, 2> m_recurrent_mask;  // (B, H)
        xt::xtensor<T, 3> m_dx;                 // (S, B, I) (the type input_gradient() returns)
        aligned_tensor<T, 2> m_dh;              // (B, H) running dh_t, dh_0 at the end
        aligned_tensor<T, 2> m_dc;              // (B, H) running dc_t, dc_0 at the end
        aligned_tensor<T, 2> m_dh_direct;       // (B, H) the cell's direct part of dh_{t-1} (direct_hidden_gradient)
        // the weights packed by column tiles for the register tiles (detail/small_gemm.hpp): a forward of at least
        // packed_steps steps puts W_x and W_h there for (R3), a backward W_x^T and W_h^T for (Q7) and (Q2) (same
        // sizes; on the BLAS path, W_x^T alone, for its (Q7))
        aligned_tensor<T, 2> m_w_h_panels;   // (Gh, H) values
        aligned_tensor<T, 2> m_w_x_panels;   // (Gx, I) values
        bool m_weights_packed = false;       // whether this forward's (R3) reads the panels
        aligned_tensor<T, 1> m_outer_packs;  // (Q4), (Q5): the packed chunks (detail/outer_gemm.hpp); grow-only
        aligned_tensor<T, 2> m_bias_sums;    // (tiles of B, Gz) (Q6) per tile of rows, added in tile order
        xt::xtensor<T, 2> m_dh_product;      // (B, H) (Q2) on the BLAS path with lengths (dead rows keep dh)
        detail::bf16_workspace m_bf16;       // precision::bf16: the packed operands (recurrent_bf16.hpp)

        // the one-step API: z of the batch-1 path, and the results
        aligned_tensor<T, 1> m_step_z;   // (Gz)
        aligned_tensor<T, 1> m_step_hw;  // (Gh) h W_h of a layout that is not fused
        state_type m_next;
        gradients_type m_step_grads;
    };

    // ---- definitions -----------------------------------------------------------------------------------------------

#define XRNN_CELL_TEMPLATE template <class Cell, class T, std::size_t I, std::size_t H, class Layout, class Precision>
#define XRNN_CELL recurrent_cell<Cell, T, I, H, Layout, Precision>

    XRNN_CELL_TEMPLATE
    XRNN_CELL::recurrent_cell(random_engine& rng, const recurrent_options& options)
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
            // PyTorch: every weight and both biases uniform(-1/sqrt(H), 1/sqrt(H)); where the two biases are summed
            // (the shared columns) ours is their sum, elsewhere it is one of them.
            const double bound = 1.0 / std::sqrt(static_cast<double>(H));
            init::uniform(p.w_x, bound, rng);
            init::uniform(p.w_h, bound, rng);
            for (std::size_t j = 0; j < Gz; ++j)
            {
                const double b_ih = rng.uniform(-bound, bound);
                const double b_hh = j < Gs ? rng.uniform(-bound, bound) : 0.0;
                p.b(j) = static_cast<T>(b_ih + b_hh);
            }
        }
        m_mask_rng = rng.split();
    }

    XRNN_CELL_TEMPLATE
    std::size_t XRNN_CELL::workspace_bytes() const noexcept
    {
        std::size_t values = m_x.size() + m_gates.size() + m_h.size() + m_c.size() + m_h_masked.size()
                             + m_input_mask.size() + m_recurrent_mask.size() + m_dx.size() + m_dh.size() + m_dc.size()
                             + m_dh_direct.size() + m_w_h_panels.size() + m_w_x_panels.size()
                             + m_outer_packs.size() + m_bias_sums.size() + m_dh_product.size() + m_step_z.size()
                             + m_step_hw.size() + m_next.h.size() + m_step_grads.dx.size()
                             + m_step_grads.d_prev.h.size()
                             + m_bf16.bytes() / sizeof(T);
        if constexpr (has_cell_state)
        {
            values += m_next.c.size() + m_step_grads.d_prev.c.size();
        }
        return values * sizeof(T);
    }

#undef XRNN_CELL
#undef XRNN_CELL_TEMPLATE
}  // namespace xrnn

// the rest of the definitions, with their equations (see the top of this file)
#include <xrnn/layers/recurrent_forward.hpp>
#include <xrnn/layers/recurrent_backward.hpp>
#include <xrnn/layers/recurrent_masking.hpp>
#include <xrnn/layers/recurrent_bf16.hpp>

#endif
