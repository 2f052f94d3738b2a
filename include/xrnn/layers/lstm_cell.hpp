// xtensor-rnn: the LSTM cell, one time step, with PyTorch's gate order.
//
// Gate order (i, f, g, o) along the G = 4H axis, as torch.nn.LSTM, so its weights map one to one:
//   columns [0, H) input gate i, [H, 2H) forget gate f, [2H, 3H) cell candidate g, [3H, 4H) output gate o.
//
//   (LF1) z_t = x_t W_x + h_{t-1} W_h + b                       (R3) in recurrent_forward.hpp, z_t (B, 4H), one fused
//                                                               sum (layout: Gx = Gh = Gs = 4H); the + b happens in
//                                                               forward_rows, with (LF2)
//   (LF2) i = sigmoid(z_i), f = sigmoid(z_f), g = tanh(z_g), o = sigmoid(z_o)
//   (LF3) c_t = f * c_{t-1} + i * g
//   (LF4) h_t = o * tanh(c_t)
// Backward, given dh_t (total gradient reaching h_t) and dc_t (from step t + 1):
//   (LB1) dz_o = dh_t * tanh(c_t) * o (1 - o)
//   (LB2) dc   = dc_t + dh_t * o * (1 - tanh(c_t)^2)
//   (LB3) dz_i = dc * g * i (1 - i)
//   (LB4) dz_f = dc * c_{t-1} * f (1 - f)
//   (LB5) dz_g = dc * i * (1 - g^2)
//   (LB6) dc_{t-1} = dc * f
//   (LB7) dx_t, dh_{t-1}, dW_x, dW_h, db from dz_t: (Q2)-(Q7) in recurrent_backward.hpp
// "dz" is the gradient before the nonlinearities; the cache keeps the gates after them (i, f, g, o), and backward
// writes dz over them.
#ifndef XRNN_LAYERS_LSTM_CELL_HPP
#define XRNN_LAYERS_LSTM_CELL_HPP

#include <array>
#include <cstddef>
#include <string>

#include <xtensor/xtensor.hpp>

#include <xrnn/detail/simd.hpp>
#include <xrnn/detail/tensor.hpp>
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

    /// One LSTM step on a batch: lstm_cell<T, In, Hidden, Precision> (xrnn/precision.hpp).
    template <class T, std::size_t In, std::size_t Hidden, class Precision = precision::native>
    class lstm_cell
        : public recurrent_cell<lstm_cell<T, In, Hidden, Precision>, T, In, Hidden,
                                cell_layout<4 * Hidden, 4 * Hidden, 4 * Hidden, true, false>, Precision>
    {
        using base = recurrent_cell<lstm_cell<T, In, Hidden, Precision>, T, In, Hidden,
                                    cell_layout<4 * Hidden, 4 * Hidden, 4 * Hidden, true, false>, Precision>;
        friend base;
        static constexpr std::size_t H = Hidden;
        static constexpr std::size_t G = 4 * Hidden;

    public:
        static constexpr const char* name = "lstm_cell";
        static constexpr const char* layer_name = "lstm";  // of the layer that runs it over a sequence
        /// Keras's gate blocks (i, f, c, o) are ours (i, f, g, o): layers/external_tensors.hpp.
        static constexpr std::array<std::size_t, 4> keras_blocks{{0, 1, 2, 3}};

        /// This cell's settings in a layer's signature: none.
        static std::string signature_options()
        {
            return "";
        }
        using base::base;  // forward(x, prev, mode) and backward(d_next): recurrent_cell.hpp

    private:
        /// Keras's unit_forget_bias: the forget gate starts open.
        static void initial_bias(xt::xtensor<T, 1>& b)
        {
            detail::vector_view(b.data() + lstm_gate::forget * H, H).fill(T(1));
        }

        /// (LF1)'s + b and (LF2)-(LF4) for every row, in one pass per row over the four gates of each hidden unit
        /// (SIMD packs of units, detail/simd.hpp). With Keep, z (n, 4H) becomes the gates (i, f, g, o) in place
        /// for backward; without, z is left as it is. c may be c_prev (the update is elementwise).
        template <bool Keep>
        static void forward_rows(const T* b, const cell_rows<T>& rows)
        {
            T* z = rows.z;
            const T* c_prev = rows.c_prev;
            T* c = rows.c;
            T* h = rows.h;
            const std::size_t batch = rows.n;
            const T* bi = b + lstm_gate::input * H;
            const T* bf = b + lstm_gate::forget * H;
            const T* bg = b + lstm_gate::cell * H;
            const T* bo = b + lstm_gate::output * H;
            for (std::size_t r = 0; r < batch; ++r)
            {
                T* zi = z + r * G + lstm_gate::input * H;
                T* zf = z + r * G + lstm_gate::forget * H;
                T* zg = z + r * G + lstm_gate::cell * H;
                T* zo = z + r * G + lstm_gate::output * H;
                const T* cp = c_prev + r * H;
                T* cr = c + r * H;
                T* hr = h + r * H;
                detail::for_each_pack<T, H>([&](auto pack, std::size_t j) {
                    using P = decltype(pack);
                    using V = typename P::value;
                    const V i = detail::sigmoid_(P::load(zi + j) + P::load(bi + j));  // (LF1) + b, (LF2)
                    const V f = detail::sigmoid_(P::load(zf + j) + P::load(bf + j));
                    const V g = detail::tanh_(P::load(zg + j) + P::load(bg + j));
                    const V o = detail::sigmoid_(P::load(zo + j) + P::load(bo + j));
                    const V c_new = f * P::load(cp + j) + i * g;    // (LF3)
                    P::store(hr + j, o * detail::tanh_(c_new));     // (LF4)
                    P::store(cr + j, c_new);
                    if constexpr (Keep)
                    {
                        P::store(zi + j, i);
                        P::store(zf + j, f);
                        P::store(zg + j, g);
                        P::store(zo + j, o);
                    }
                });
            }
        }

        /// (LB1)-(LB6) for every row, one pass per row; gates (n, 4H) holds (i, f, g, o) on entry and dz on exit;
        /// dc holds dc_t on entry and dc_{t-1} on exit.
        static void backward_rows(const cell_gradient_rows<T>& rows)
        {
            T* gates = rows.gates;
            const T* c_prev = rows.c_prev;
            const T* c = rows.c;
            const T* dh = rows.dh;
            T* dc = rows.dc;
            const std::size_t batch = rows.n;
            for (std::size_t r = 0; r < batch; ++r)
            {
                T* zi = gates + r * G + lstm_gate::input * H;
                T* zf = gates + r * G + lstm_gate::forget * H;
                T* zg = gates + r * G + lstm_gate::cell * H;
                T* zo = gates + r * G + lstm_gate::output * H;
                const T* cp = c_prev + r * H;
                const T* cr = c + r * H;
                const T* dhr = dh + r * H;
                T* dcr = dc + r * H;
                detail::for_each_pack<T, H>([&](auto pack, std::size_t j) {
                    using P = decltype(pack);
                    using V = typename P::value;
                    const V i = P::load(zi + j);
                    const V f = P::load(zf + j);
                    const V g = P::load(zg + j);
                    const V o = P::load(zo + j);
                    const V dh_t = P::load(dhr + j);
                    const V tanh_c = detail::tanh_(P::load(cr + j));                    // tanh(c_t), recomputed
                    const V dc_t = P::load(dcr + j) + dh_t * o * (V(1) - tanh_c * tanh_c);  // (LB2)
                    P::store(zo + j, dh_t * tanh_c * o * (V(1) - o));                  // (LB1)
                    P::store(zi + j, dc_t * g * i * (V(1) - i));                       // (LB3)
                    P::store(zf + j, dc_t * P::load(cp + j) * f * (V(1) - f));         // (LB4)
                    P::store(zg + j, dc_t * i * (V(1) - g * g));                       // (LB5)
                    P::store(dcr + j, dc_t * f);                                       // (LB6)
                });
            }
        }
    };
}  // namespace xrnn

#endif
