// xtensor-rnn: the LSTM layer over a sequence, stacked (num_layers), many-to-one or many-to-many.
//
//   lstm<T, In, Hidden, Layers = 1, output Out = output::last>
//   x (S, B, In) -> y (B, Hidden) for output::last, (S, B, Hidden) for output::sequence
// Per step and layer: the gate equations of lstm_cell.hpp (gates in PyTorch's order i, f, g, o);
// BPTT in recurrent_backward.hpp. Weights map to torch.nn.LSTM as w_x = weight_ih^T, w_h = weight_hh^T,
// b = bias_ih + bias_hh.
#ifndef XRNN_LAYERS_LSTM_HPP
#define XRNN_LAYERS_LSTM_HPP

#include <cstddef>

#include <xrnn/layers/lstm_cell.hpp>
#include <xrnn/layers/recurrent_stack.hpp>

namespace xrnn
{
    template <class T>
    using lstm_state = basic_state<xt::xtensor<T, 3>, true>;  // h and c (Layers, B, H)

    template <class T, std::size_t In, std::size_t Hidden, std::size_t Layers = 1, output Out = output::last,
              class Precision = precision::native>
    class lstm : public recurrent_stack<lstm_cell<T, In, Hidden, Precision>,
                                       lstm_cell<T, Hidden, Hidden, Precision>, Layers, Out>
    {
        using base = recurrent_stack<lstm_cell<T, In, Hidden, Precision>,
                                     lstm_cell<T, Hidden, Hidden, Precision>, Layers, Out>;

    public:
        using base::base;
    };
}  // namespace xrnn

#endif
