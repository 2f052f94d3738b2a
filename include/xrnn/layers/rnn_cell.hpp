// xtensor-rnn: the Elman cell, one time step.
//
//   (F1) z_t = x_t W_x + h_{t-1} W_h + b         (the shared affine part, (R3) in recurrent_cell.hpp)
//   (F2) h_t = act(z_t)                          act = tanh (default) or relu
// Backward, given dh_t (the total gradient reaching h_t):
//   (B1) dz_t = dh_t * act'(z_t)                 tanh' = 1 - h_t^2, relu' = [h_t > 0]
//   (B2) dx_t = dz_t W_x^T, dh_{t-1} = dz_t W_h^T, dW_x += x_t^T dz_t, dW_h += h_{t-1}^T dz_t, db += sum_b dz_t
//        ((Q2)-(Q7) in recurrent_cell.hpp, run for all steps at once)
// The cache keeps h_t (post-activation), so act' is written from the output.
#ifndef XRNN_LAYERS_RNN_CELL_HPP
#define XRNN_LAYERS_RNN_CELL_HPP

#include <cstddef>

#include <xtensor/xtensor.hpp>

#include <xrnn/layers/activations.hpp>
#include <xrnn/layers/recurrent_cell.hpp>

namespace xrnn
{
    /// The Elman cell's nonlinearity (PyTorch's `nonlinearity`, Keras's `activation`).
    enum class nonlinearity
    {
        tanh,
        relu
    };

    template <class T>
    using rnn_step_state = basic_state<xt::xtensor<T, 2>, false>;

    /// One Elman step on a batch: rnn_cell<T, In, Hidden, nonlinearity>.
    template <class T, std::size_t In, std::size_t Hidden, nonlinearity Act = nonlinearity::tanh>
    class rnn_cell : public recurrent_cell<rnn_cell<T, In, Hidden, Act>, T, In, Hidden, 1, false>
    {
        using base = recurrent_cell<rnn_cell<T, In, Hidden, Act>, T, In, Hidden, 1, false>;
        friend base;
        using act_fn = std::conditional_t<Act == nonlinearity::tanh, activation::tanh, activation::relu>;

    public:
        static constexpr const char* name = "rnn_cell";
        using base::base;  // forward(x, prev, mode) and backward(d_next): recurrent_cell.hpp

    private:
        static void initial_bias(xt::xtensor<T, 1>&)
        {
        }

        /// (F2) in place: z (B, H) becomes h_t; h receives a copy.
        static void activate(T* z, const T*, T*, T* h, std::size_t batch)
        {
            auto zv = detail::vector_view(z, batch * Hidden);
            act_fn::forward(zv, zv);
            std::copy(z, z + batch * Hidden, h);
        }

        /// (B1) from the cached h_t.
        static void activate_backward(const T* h, const T*, const T*, const T* dh, T*, T* dz, std::size_t batch)
        {
            const std::size_t n = batch * Hidden;
            act_fn::backward(detail::vector_view(h, n), detail::vector_view(dh, n), detail::vector_view(dz, n));
        }
    };
}  // namespace xrnn

#endif
