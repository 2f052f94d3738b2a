// xtensor-rnn: the Elman cell, one time step.
//
//   (SF1) z_t = x_t W_x + h_{t-1} W_h + b        (one fused sum, (R3) in recurrent_forward.hpp, layout Gx = Gh =
//                                                Gs = H; + b in forward_rows, with (SF2))
//   (SF2) h_t = act(z_t)                         act = tanh (default) or relu
// Backward, given dh_t (the total gradient reaching h_t):
//   (SB1) dz_t = dh_t * act'(z_t)                tanh' = 1 - h_t^2, relu' = [h_t > 0]
//   (SB2) dx_t = dz_t W_x^T, dh_{t-1} = dz_t W_h^T, dW_x += x_t^T dz_t, dW_h += h_{t-1}^T dz_t, db += sum_b dz_t
//        ((Q2)-(Q7) in recurrent_backward.hpp, run for all steps at once)
// The cache keeps h_t (post-activation), so act' is written from the output; z_t is only a workspace, and
// backward writes dz_t over it.
#ifndef XRNN_LAYERS_RNN_CELL_HPP
#define XRNN_LAYERS_RNN_CELL_HPP

#include <array>
#include <cstddef>
#include <string>

#include <type_traits>

#include <xtensor/xtensor.hpp>

#include <xrnn/detail/simd.hpp>
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

    /// One Elman step on a batch: rnn_cell<T, In, Hidden, nonlinearity, Precision> (xrnn/precision.hpp).
    template <class T, std::size_t In, std::size_t Hidden, nonlinearity Act = nonlinearity::tanh,
              class Precision = precision::native>
    class rnn_cell
        : public recurrent_cell<rnn_cell<T, In, Hidden, Act, Precision>, T, In, Hidden,
                                cell_layout<Hidden, Hidden, Hidden, false, false>, Precision>
    {
        using base = recurrent_cell<rnn_cell<T, In, Hidden, Act, Precision>, T, In, Hidden,
                                    cell_layout<Hidden, Hidden, Hidden, false, false>, Precision>;
        friend base;

    public:
        static constexpr const char* name = "rnn_cell";
        static constexpr const char* layer_name = "rnn";  // of the layer that runs it over a sequence
        /// Keras's SimpleRNN has the one block: layers/external_tensors.hpp.
        static constexpr std::array<std::size_t, 1> keras_blocks{{0}};

        /// This cell's settings in a layer's signature: its nonlinearity.
        static std::string signature_options()
        {
            return Act == nonlinearity::tanh ? ",tanh" : ",relu";
        }
        using base::base;  // forward(x, prev, mode) and backward(d_next): recurrent_cell.hpp

    private:
        static void initial_bias(xt::xtensor<T, 1>&)
        {
        }

        /// (SF1)'s + b and (SF2): h = act(z + b) for every row; z (n, H) is left as it is (backward needs only h).
        template <bool Keep>
        static void forward_rows(const T* b, const cell_rows<T>& rows)
        {
            const T* z = rows.z;
            T* h = rows.h;
            const std::size_t batch = rows.n;
            for (std::size_t r = 0; r < batch; ++r)
            {
                const T* zr = z + r * Hidden;
                T* hr = h + r * Hidden;
                detail::for_each_pack<T, Hidden>([&](auto pack, std::size_t j) {
                    using P = decltype(pack);
                    using V = typename P::value;
                    const V zj = P::load(zr + j) + P::load(b + j);
                    if constexpr (Act == nonlinearity::tanh)
                    {
                        P::store(hr + j, detail::tanh_(zj));
                    }
                    else
                    {
                        P::store(hr + j, detail::max_(zj, V(0)));
                    }
                });
            }
        }

        /// (SB1) from h_t (the cache of the layer); dz is written over z.
        static void backward_rows(const cell_gradient_rows<T>& rows)
        {
            T* dz = rows.gates;
            const T* h = rows.h;
            const T* dh = rows.dh;
            const std::size_t batch = rows.n;
            detail::for_each_pack<T>(batch * Hidden, [&](auto pack, std::size_t j) {
                using P = decltype(pack);
                using V = typename P::value;
                const V hj = P::load(h + j);
                const V dhj = P::load(dh + j);
                if constexpr (Act == nonlinearity::tanh)
                {
                    P::store(dz + j, dhj * (V(1) - hj * hj));
                }
                else
                {
                    P::store(dz + j, detail::where_positive_(hj, dhj));
                }
            });
        }
    };
}  // namespace xrnn

#endif
