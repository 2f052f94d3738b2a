// xtensor-rnn: what a recurrent cell declares to the engine (recurrent_cell.hpp), and the types they share:
// options, parameters, states, and the rows of one step that a cell's equations read and write.
//
// The contract. A cell's pre-activation z_t (B, Gz) is made of two affine projections,
//   x~_t W_x    W_x (I, Gx): the input projection, Gx = input_width
//   h~_{t-1} W_h    W_h (H, Gh): the recurrent projection, Gh = recurrent_width
// whose first Gs = shared_width columns are summed and whose other columns stay apart, so that z_t is laid out as
//   z_t = [ x~ W_x[:, :Gs] + h~ W_h[:, :Gs] | x~ W_x[:, Gs:] | h~ W_h[:, Gs:] ] + b        b (Gz), Gz = Gx + Gh - Gs
// An Elman or LSTM cell sums everything (Gs = Gx = Gh = H or 4H); a GRU keeps the candidate's recurrent part
// apart (Gx = Gh = 3H, Gs = 2H, Gz = 4H) because its reset gate multiplies it. b has one value per column of z,
// so a bias that sits inside a nonlinearity (the GRU's b_hn) is simply its own column range of b.
// The cell then supplies its equations on n rows of one step (cell_rows, cell_gradient_rows below):
//   template <bool Keep> static void forward_rows(const T* b, const cell_rows<T>&)
//       z (+ b) and h_{t-1}, c_{t-1} -> h_t, c_t; with Keep (training) whatever backward needs is left in z
//   static void backward_rows(const cell_gradient_rows<T>&)
//       the kept values and dh_t, dc_t -> dz_t (written over them), dc_{t-1}, and, for cells with
//       direct_hidden_gradient, the part of dh_{t-1} that does not go through W_h (written to dh_prev)
// The engine does the rest for every cell: dropout, the products on register tiles or BLAS, threads, the caches,
// BPTT with truncation, the parameter gradients, the batch-1 step and the memory accounting.
#ifndef XRNN_LAYERS_RECURRENT_PARAMS_HPP
#define XRNN_LAYERS_RECURRENT_PARAMS_HPP

#include <cstddef>

#include <xtensor/xtensor.hpp>

#include <xrnn/detail/tensor.hpp>
#include <xrnn/init.hpp>
#include <xrnn/layers/layer_traits.hpp>

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

    /// What a cell declares to the engine: the widths of its two projections and of their summed part, whether it
    /// carries a cell state c_t, and whether its backward adds a term of its own to dh_{t-1}.
    template <std::size_t InputWidth, std::size_t RecurrentWidth, std::size_t SharedWidth, bool CellState,
              bool DirectHiddenGradient>
    struct cell_layout
    {
        static constexpr std::size_t input_width = InputWidth;          // Gx, columns of W_x
        static constexpr std::size_t recurrent_width = RecurrentWidth;  // Gh, columns of W_h
        static constexpr std::size_t shared_width = SharedWidth;        // Gs, summed columns, first in z
        static constexpr std::size_t width = InputWidth + RecurrentWidth - SharedWidth;  // Gz, columns of z and b
        static constexpr bool cell_state = CellState;
        static constexpr bool direct_hidden_gradient = DirectHiddenGradient;
        /// Whether z is one sum of both projections over all its columns (one product per tile of rows).
        static constexpr bool fused = SharedWidth == InputWidth && SharedWidth == RecurrentWidth;

        static_assert(SharedWidth <= InputWidth && SharedWidth <= RecurrentWidth,
                      "xrnn: a cell's shared width cannot exceed the width of either projection");
        static_assert(fused || SharedWidth == 0 || InputWidth == RecurrentWidth,
                      "xrnn: a cell whose projections share only some columns needs equal projection widths");
    };

    /// Parameters of one recurrent layer; the same struct holds their gradients.
    template <class T, std::size_t I, std::size_t H, class Layout>
    struct recurrent_params
    {
        aligned_tensor<T, 2> w_x;  // (I, Gx) = weight_ih^T in PyTorch; 64-byte aligned (detail/tensor.hpp)
        aligned_tensor<T, 2> w_h;  // (H, Gh) = weight_hh^T
        xt::xtensor<T, 1> b;    // (Gz)    one bias per column of z: bias_ih + bias_hh where the two are summed

        recurrent_params()
            : w_x({I, Layout::input_width}, T(0))
            , w_h({H, Layout::recurrent_width}, T(0))
            , b({Layout::width}, T(0))
        {
        }

        /// No tensors: the parameters of a cell that reads another's (layers/layer_traits.hpp).
        explicit recurrent_params(shared_weights_t) noexcept
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

    /// n rows of one step, as a cell's forward_rows sees them; rows of z are Gz apart, rows of states H apart.
    template <class T>
    struct cell_rows
    {
        T* z;              // (n, Gz) x~ W_x and h~ W_h laid out as above, without b; the cell's cache with Keep
        const T* h_prev;   // (n, H) h_{t-1} (before recurrent dropout)
        const T* c_prev;   // (n, H) c_{t-1}, or nullptr for cells without a cell state
        T* c;              // (n, H) c_t, or nullptr; may be c_prev (the update is elementwise)
        T* h;              // (n, H) h_t; for the batch-1 step it may be h_prev (read before written, per element)
        std::size_t n;
    };

    /// n rows of one step, as a cell's backward_rows sees them.
    template <class T>
    struct cell_gradient_rows
    {
        T* gates;          // (n, Gz) what forward_rows<true> kept, on entry; dz_t on exit
        const T* h_prev;   // (n, H) h_{t-1} (before recurrent dropout)
        const T* c_prev;   // (n, H) c_{t-1}, or nullptr
        const T* c;        // (n, H) c_t, or nullptr
        const T* h;        // (n, H) h_t
        const T* dh;       // (n, H) the whole gradient reaching h_t
        T* dc;             // (n, H) dc_t on entry, dc_{t-1} on exit, or nullptr
        T* dh_prev;        // (n, H) the cell's own part of dh_{t-1} (direct_hidden_gradient only), or nullptr
        std::size_t n;
    };
}  // namespace xrnn

#endif
