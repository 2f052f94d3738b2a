// xtensor-rnn: the LSTM cell, one time step, with PyTorch's gate order.
//
// Gate order (i, f, g, o) along the G = 4H axis, as torch.nn.LSTM, so its weights map one to one:
//   columns [0, H) input gate i, [H, 2H) forget gate f, [2H, 3H) cell candidate g, [3H, 4H) output gate o.
//
//   (F1) z_t = x_t W_x + h_{t-1} W_h + b                        (R3) in recurrent_cell.hpp, z_t (B, 4H)
//   (F2) i = sigmoid(z_i), f = sigmoid(z_f), g = tanh(z_g), o = sigmoid(z_o)
//   (F3) c_t = f * c_{t-1} + i * g
//   (F4) h_t = o * tanh(c_t)
// Backward, given dh_t (total gradient reaching h_t) and dc_t (from step t + 1):
//   (B1) dz_o = dh_t * tanh(c_t) * o (1 - o)
//   (B2) dc   = dc_t + dh_t * o * (1 - tanh(c_t)^2)
//   (B3) dz_i = dc * g * i (1 - i)
//   (B4) dz_f = dc * c_{t-1} * f (1 - f)
//   (B5) dz_g = dc * i * (1 - g^2)
//   (B6) dc_{t-1} = dc * f
//   (B7) dx_t, dh_{t-1}, dW_x, dW_h, db from dz_t: (Q2)-(Q7) in recurrent_cell.hpp
// "dz" is the gradient before the nonlinearities; the cache keeps the gates after them (i, f, g, o).
#ifndef XRNN_LAYERS_LSTM_CELL_HPP
#define XRNN_LAYERS_LSTM_CELL_HPP

#include <cstddef>

#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>
#include <xtensor/xtensor.hpp>

#include <xrnn/layers/activations.hpp>
#include <xrnn/layers/recurrent_cell.hpp>

namespace xrnn
{
    /// Offsets of the gates along the 4H axis, in PyTorch's order.
    struct lstm_gate
    {
        static constexpr std::size_t input = 0;
        static constexpr std::size_t forget = 1;
        static constexpr std::size_t cell = 2;
        static constexpr std::size_t output = 3;
    };

    template <class T>
    using lstm_step_state = basic_state<xt::xtensor<T, 2>, true>;

    /// One LSTM step on a batch: lstm_cell<T, In, Hidden>.
    template <class T, std::size_t In, std::size_t Hidden>
    class lstm_cell : public recurrent_cell<lstm_cell<T, In, Hidden>, T, In, Hidden, 4, true>
    {
        using base = recurrent_cell<lstm_cell<T, In, Hidden>, T, In, Hidden, 4, true>;
        friend base;
        static constexpr std::size_t H = Hidden;
        static constexpr std::size_t G = 4 * Hidden;

    public:
        static constexpr const char* name = "lstm_cell";
        using base::base;  // forward(x, prev, mode) and backward(d_next): recurrent_cell.hpp

    private:
        /// Keras's unit_forget_bias: the forget gate starts open.
        static void initial_bias(xt::xtensor<T, 1>& b)
        {
            detail::vector_view(b.data() + lstm_gate::forget * H, H).fill(T(1));
        }

        static auto gate(T* row, std::size_t which)
        {
            return detail::vector_view(row + which * H, H);
        }

        static auto gate(const T* row, std::size_t which)
        {
            return detail::vector_view(row + which * H, H);
        }

        /// (F2)-(F4) for every row; z (B, 4H) becomes the gates (i, f, g, o) in place.
        static void activate(T* z, const T* c_prev, T* c, T* h, std::size_t batch)
        {
            for (std::size_t r = 0; r < batch; ++r)
            {
                T* row = z + r * G;
                auto i = gate(row, lstm_gate::input);
                auto f = gate(row, lstm_gate::forget);
                auto g = gate(row, lstm_gate::cell);
                auto o = gate(row, lstm_gate::output);
                activation::sigmoid::forward(i, i);  // (F2)
                activation::sigmoid::forward(f, f);
                activation::tanh::forward(g, g);
                activation::sigmoid::forward(o, o);
                auto c_prev_r = detail::vector_view(c_prev + r * H, H);
                auto c_r = detail::vector_view(c + r * H, H);
                auto h_r = detail::vector_view(h + r * H, H);
                xt::noalias(c_r) = f * c_prev_r + i * g;  // (F3)
                xt::noalias(h_r) = o * xt::tanh(c_r);     // (F4)
            }
        }

        /// (B1)-(B6) for every row; dc holds dc_t on entry and dc_{t-1} on exit.
        static void activate_backward(const T* gates, const T* c_prev, const T* c, const T* dh, T* dc, T* dz,
                                      std::size_t batch)
        {
            for (std::size_t r = 0; r < batch; ++r)
            {
                const T* row = gates + r * G;
                T* drow = dz + r * G;
                const auto i = gate(row, lstm_gate::input);
                const auto f = gate(row, lstm_gate::forget);
                const auto g = gate(row, lstm_gate::cell);
                const auto o = gate(row, lstm_gate::output);
                auto dz_i = gate(drow, lstm_gate::input);
                auto dz_f = gate(drow, lstm_gate::forget);
                auto dz_g = gate(drow, lstm_gate::cell);
                auto dz_o = gate(drow, lstm_gate::output);
                const auto c_prev_r = detail::vector_view(c_prev + r * H, H);
                const auto c_r = detail::vector_view(c + r * H, H);
                const auto dh_r = detail::vector_view(dh + r * H, H);
                auto dc_r = detail::vector_view(dc + r * H, H);

                xt::noalias(dz_o) = xt::tanh(c_r);  // tanh(c_t), computed once, then overwritten by (B1)
                xt::noalias(dc_r) += dh_r * o * (T(1) - dz_o * dz_o);  // (B2)
                xt::noalias(dz_o) = dh_r * dz_o * o * (T(1) - o);   // (B1)
                xt::noalias(dz_i) = dc_r * g * i * (T(1) - i);      // (B3)
                xt::noalias(dz_f) = dc_r * c_prev_r * f * (T(1) - f);  // (B4)
                xt::noalias(dz_g) = dc_r * i * (T(1) - g * g);      // (B5)
                xt::noalias(dc_r) *= f;                                // (B6)
            }
        }
    };
}  // namespace xrnn

#endif
