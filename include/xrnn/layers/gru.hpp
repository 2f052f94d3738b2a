// xtensor-rnn: the GRU layer over a sequence, stacked (num_layers), many-to-one or many-to-many.
//
//   gru<T, In, Hidden, Layers = 1, output Out = output::last>
//   x (S, B, In) -> y (B, Hidden) for output::last, (S, B, Hidden) for output::sequence
// Per step and layer: the equations of gru_cell.hpp (PyTorch's nn.GRU, gates r, z, n; Keras's
// GRU(reset_after=True)); BPTT in recurrent_backward.hpp. Weights map to torch.nn.GRU as w_x = weight_ih^T,
// w_h = weight_hh^T, b = [b_ir + b_hr | b_iz + b_hz | b_in | b_hn] (gru_cell.hpp also gives Keras's mapping).
#ifndef XRNN_LAYERS_GRU_HPP
#define XRNN_LAYERS_GRU_HPP

#include <cstddef>

#include <xrnn/layers/gru_cell.hpp>
#include <xrnn/layers/recurrent_stack.hpp>

namespace xrnn
{
    template <class T>
    using gru_state = basic_state<xt::xtensor<T, 3>, false>;  // h (Layers, B, H)

    template <class T, std::size_t In, std::size_t Hidden, std::size_t Layers = 1, output Out = output::last,
              class Precision = precision::native>
    class gru : public recurrent_stack<gru_cell<T, In, Hidden, Precision>,
                                      gru_cell<T, Hidden, Hidden, Precision>, Layers, Out>
    {
        using base = recurrent_stack<gru_cell<T, In, Hidden, Precision>,
                                     gru_cell<T, Hidden, Hidden, Precision>, Layers, Out>;

    public:
        using base::base;
    };
}  // namespace xrnn

#endif
