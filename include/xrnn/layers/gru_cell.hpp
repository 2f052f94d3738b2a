// xtensor-rnn: the GRU cell, one time step, as PyTorch's nn.GRU, Keras's GRU(reset_after=True), cuDNN, oneDNN's
// LBR-GRU and ONNX (linear_before_reset=1) define it: the reset gate multiplies the recurrent part of the
// candidate AFTER its product with W_hn (not h before it, as in the original paper and Keras's reset_after=False).
//
// Gates along the 3H axes of W_x and W_h in PyTorch's order (r, u, n), u being the update gate (PyTorch's and
// Keras's "z"; renamed here so as not to clash with the pre-activation z). The engine keeps the candidate's two
// products apart (layout Gx = Gh = 3H, Gs = 2H), so z_t and b have Gz = 4H columns:
//   [0, H) r   [H, 2H) u   (x W_x + h~ W_h summed)   [2H, 3H) x W_xn   [3H, 4H) h~ W_hn
//
//   (GF1) z_t = [x~ W_xr + h~ W_hr | x~ W_xu + h~ W_hu | x~ W_xn | h~ W_hn]     (R3) in recurrent_forward.hpp
//   (GF2) r = sigmoid(z_r + b_r), u = sigmoid(z_u + b_u)                        b_r = b_ir + b_hr, b_u likewise
//   (GF3) a = z_hn + b_hn                                                       the recurrent candidate part
//   (GF4) n = tanh(z_xn + b_in + r * a)
//   (GF5) h_t = (1 - u) * n + u * h_{t-1}  =  n + u * (h_{t-1} - n)
// Backward, given dh_t (the total gradient reaching h_t); the cache keeps (r, u, n, a):
//   (GB1) dz_u  = dh_t * (h_{t-1} - n) * u (1 - u)
//   (GB2) dz_xn = dh_t * (1 - u) * (1 - n^2)            the gradient of n's pre-activation, and of b_in
//   (GB3) dz_hn = dz_xn * r                             the gradient of a, and of b_hn
//   (GB4) dz_r  = dz_xn * a * r (1 - r)
//   (GB5) dh'_{t-1} = dh_t * u                          h_{t-1}'s direct path; (Q2) adds dz W_h^T * m_h
//   (GB6) dx_t, the rest of dh_{t-1}, dW_x, dW_h, db from dz_t: (Q2)-(Q7) in recurrent_backward.hpp
// With recurrent dropout (Keras semantics) the mask m_h applies to h_{t-1} in the products only: (GF5) and (GB5)
// use h_{t-1} itself.
//
// Weights from PyTorch (nn.GRU, weight_ih_l0 (3H, I) with blocks r, z, n):
//   w_x = weight_ih^T, w_h = weight_hh^T, b = [b_ir + b_hr | b_iz + b_hz | b_in | b_hn]
// From Keras (GRU(reset_after=True); kernel (I, 3H) and recurrent_kernel (H, 3H) with blocks z, r, h, and bias
// (2, 3H) = [input bias; recurrent bias]): swap the first two blocks of every column axis, so
//   w_x = [kernel_r | kernel_z | kernel_h], w_h likewise, b = [bi_r + br_r | bi_z + br_z | bi_h | br_h]
// A Keras GRU with reset_after=False (the default of Keras 2.2 and older) is another cell and does not map.
#ifndef XRNN_LAYERS_GRU_CELL_HPP
#define XRNN_LAYERS_GRU_CELL_HPP

#include <array>
#include <cstddef>
#include <string>

#include <xtensor/xtensor.hpp>

#include <xrnn/detail/simd.hpp>
#include <xrnn/layers/recurrent_cell.hpp>

namespace xrnn
{
    /// Offsets of the blocks along the 4H axis of z and b.
    struct gru_gate
    {
        static constexpr std::size_t reset = 0;
        static constexpr std::size_t update = 1;
        static constexpr std::size_t input_candidate = 2;      // x W_xn (+ b_in)
        static constexpr std::size_t recurrent_candidate = 3;  // h W_hn (+ b_hn)
    };

    template <class T>
    using gru_step_state = basic_state<xt::xtensor<T, 2>, false>;

    /// One GRU step on a batch: gru_cell<T, In, Hidden, Precision> (xrnn/precision.hpp).
    template <class T, std::size_t In, std::size_t Hidden, class Precision = precision::native>
    class gru_cell
        : public recurrent_cell<gru_cell<T, In, Hidden, Precision>, T, In, Hidden,
                                cell_layout<3 * Hidden, 3 * Hidden, 2 * Hidden, false, true>, Precision>
    {
        using base = recurrent_cell<gru_cell<T, In, Hidden, Precision>, T, In, Hidden,
                                    cell_layout<3 * Hidden, 3 * Hidden, 2 * Hidden, false, true>, Precision>;
        friend base;
        static constexpr std::size_t H = Hidden;
        static constexpr std::size_t Z = 4 * Hidden;  // columns of z and b

    public:
        static constexpr const char* name = "gru_cell";
        static constexpr const char* layer_name = "gru";  // of the layer that runs it over a sequence
        /// Keras's gate blocks (z, r, h) as ours (r, u, n): layers/external_tensors.hpp.
        static constexpr std::array<std::size_t, 3> keras_blocks{{gru_gate::update, gru_gate::reset, 2}};
        using base::base;  // forward(x, prev, mode) and backward(d_next): recurrent_cell.hpp

        /// This cell's settings in a layer's signature: none (it is the reset-after form; see the top of this file).
        static std::string signature_options()
        {
            return "";
        }

    private:
        static void initial_bias(xt::xtensor<T, 1>&)  // Keras: zeros
        {
        }

        /// (GF2)-(GF5) for every row, in one pass per row over the four blocks of each hidden unit. With Keep, z
        /// (n, 4H) becomes (r, u, n, a) in place for backward. h may be h_prev (each value is read before written).
        template <bool Keep>
        static void forward_rows(const T* b, const cell_rows<T>& rows)
        {
            const T* br = b + gru_gate::reset * H;
            const T* bu = b + gru_gate::update * H;
            const T* bxn = b + gru_gate::input_candidate * H;
            const T* bhn = b + gru_gate::recurrent_candidate * H;
            for (std::size_t row = 0; row < rows.n; ++row)
            {
                T* zr = rows.z + row * Z + gru_gate::reset * H;
                T* zu = rows.z + row * Z + gru_gate::update * H;
                T* zxn = rows.z + row * Z + gru_gate::input_candidate * H;
                T* zhn = rows.z + row * Z + gru_gate::recurrent_candidate * H;
                const T* hp = rows.h_prev + row * H;
                T* hr = rows.h + row * H;
                detail::for_each_pack<T, H>([&](auto pack, std::size_t j) {
                    using P = decltype(pack);
                    using V = typename P::value;
                    const V r = detail::sigmoid_(P::load(zr + j) + P::load(br + j));  // (GF2)
                    const V u = detail::sigmoid_(P::load(zu + j) + P::load(bu + j));
                    const V a = P::load(zhn + j) + P::load(bhn + j);                  // (GF3)
                    const V n = detail::tanh_(P::load(zxn + j) + P::load(bxn + j) + r * a);  // (GF4)
                    const V h_prev = P::load(hp + j);
                    P::store(hr + j, n + u * (h_prev - n));                           // (GF5)
                    if constexpr (Keep)
                    {
                        P::store(zr + j, r);
                        P::store(zu + j, u);
                        P::store(zxn + j, n);
                        P::store(zhn + j, a);
                    }
                });
            }
        }

        /// (GB1)-(GB5) for every row, one pass per row; gates (n, 4H) holds (r, u, n, a) on entry and dz on exit;
        /// dh_prev receives the direct part of dh_{t-1}.
        static void backward_rows(const cell_gradient_rows<T>& rows)
        {
            for (std::size_t row = 0; row < rows.n; ++row)
            {
                T* zr = rows.gates + row * Z + gru_gate::reset * H;
                T* zu = rows.gates + row * Z + gru_gate::update * H;
                T* zxn = rows.gates + row * Z + gru_gate::input_candidate * H;
                T* zhn = rows.gates + row * Z + gru_gate::recurrent_candidate * H;
                const T* hp = rows.h_prev + row * H;
                const T* dhr = rows.dh + row * H;
                T* dhp = rows.dh_prev + row * H;
                detail::for_each_pack<T, H>([&](auto pack, std::size_t j) {
                    using P = decltype(pack);
                    using V = typename P::value;
                    const V r = P::load(zr + j);
                    const V u = P::load(zu + j);
                    const V n = P::load(zxn + j);
                    const V a = P::load(zhn + j);
                    const V dh = P::load(dhr + j);
                    const V dn_pre = dh * (V(1) - u) * (V(1) - n * n);                 // (GB2)
                    P::store(zu + j, dh * (P::load(hp + j) - n) * u * (V(1) - u));     // (GB1)
                    P::store(zxn + j, dn_pre);
                    P::store(zhn + j, dn_pre * r);                                     // (GB3)
                    P::store(zr + j, dn_pre * a * r * (V(1) - r));                     // (GB4)
                    P::store(dhp + j, dh * u);                                         // (GB5)
                });
            }
        }
    };
}  // namespace xrnn

#endif
