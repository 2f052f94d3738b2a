// xtensor-rnn: the Elman RNN layer over a sequence, stacked (num_layers), many-to-one or many-to-many.
//
//   rnn<T, In, Hidden, Layers = 1, output Out = output::last, nonlinearity Act = nonlinearity::tanh>
//   x (S, B, In) -> y (B, Hidden) for output::last, (S, B, Hidden) for output::sequence
// Per step and layer: h_t = act(x_t W_x + h_{t-1} W_h + b) (rnn_cell.hpp); BPTT in recurrent_backward.hpp.
#ifndef XRNN_LAYERS_RNN_HPP
#define XRNN_LAYERS_RNN_HPP

#include <cstddef>

#include <xrnn/layers/recurrent_stack.hpp>
#include <xrnn/layers/rnn_cell.hpp>

namespace xrnn
{
    template <class T>
    using rnn_state = basic_state<xt::xtensor<T, 3>, false>;  // h (Layers, B, H)

    template <class T, std::size_t In, std::size_t Hidden, std::size_t Layers = 1, output Out = output::last,
              nonlinearity Act = nonlinearity::tanh, class Precision = precision::native>
    class rnn : public recurrent_stack<rnn_cell<T, In, Hidden, Act, Precision>,
                                       rnn_cell<T, Hidden, Hidden, Act, Precision>, Layers, Out>
    {
        using base = recurrent_stack<rnn_cell<T, In, Hidden, Act, Precision>,
                                     rnn_cell<T, Hidden, Hidden, Act, Precision>, Layers, Out>;

    public:
        using base::base;
    };
}  // namespace xrnn

#endif
