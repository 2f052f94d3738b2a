// xtensor-rnn: the products of the recurrent engine with precision::bf16 (xrnn/precision.hpp): the same equations
// as recurrent_forward.hpp and recurrent_backward.hpp, with the operands of (R3), (Q2), (Q4), (Q5) and (Q7) rounded
// to bfloat16 and multiplied with float accumulation on AMX tiles or the portable loops (detail/bf16_gemm.hpp).
// Such a layer always runs the register-blocked path (tiles of 16 rows of each thread's part of the batch); the
// gate equations, (Q6) and everything else stay float.
//
// Each product is one bf16_gemm over a weight laid out as z's columns (Gs shared, then input-only, then
// recurrent-only; recurrent_params.hpp), with zeros where a projection has no column:
//   (BF1) z_t = [x~_t | h~_{t-1}] Wz,   Wz ((I + H) x Gz) = [ W_x[:, :Gs]  W_x[:, Gs:]  0           ]
//                                                          [ W_h[:, :Gs]  0            W_h[:, Gs:]  ]
//   (BF2) dh_{t-1} = dz_t Wz_h^T,        Wz_h^T (Gz x H): the lower block row of Wz, transposed   ((Q2) before m_h)
//   (BF3) dX = dZ Wz_x^T,                Wz_x^T (Gz x I): the upper block row, transposed          ((Q7) before m_x)
//   (BF4) G = [X~ | H~_prev]^T dZ  ((I + H) x Gz, over all S B rows), then dW_x += G[:I, :Gx] and
//         dW_h += G[I:, :Gs] | G[I:, Gx:]                                                           ((Q4), (Q5))
// A fused layout (the LSTM's, Gs = Gx = Gh) has no zero blocks in (BF1)-(BF3); a GRU multiplies a quarter of
// zeros there, which costs less on AMX than splitting the products would. The weights are packed at the start
// of every forward (BF1) and backward (BF2), (BF3), so a changed weight is always used. (BF2) keeps each step's
// packed dz rows for (BF3), and (BF4) repacks them as its dZ panels; [X~ | H~] is packed once per backward for (BF4).
//
// Variable lengths: dz is 0 on dead steps (M2), so (BF3) gives dx = 0 there, and (BF4) packs their X~ and H~ rows
// as 0, so that they add nothing even where the padding is not finite (the float path skips them).
#ifndef XRNN_LAYERS_RECURRENT_BF16_HPP
#define XRNN_LAYERS_RECURRENT_BF16_HPP

#include <algorithm>
#include <cstddef>

#include <xrnn/detail/bf16_gemm.hpp>
#include <xrnn/detail/bf16_transpose.hpp>
#include <xrnn/layers/recurrent_cell.hpp>
#include <xrnn/threads.hpp>

namespace xrnn
{
#define XRNN_CELL_TEMPLATE template <class Cell, class T, std::size_t I, std::size_t H, class Layout, class Precision>
#define XRNN_CELL recurrent_cell<Cell, T, I, H, Layout, Precision>

    /// (BF1)'s Wz from the parameters forward reads.
    XRNN_CELL_TEMPLATE
    void XRNN_CELL::pack_bf16_forward_weights()
    {
        const T* w_x = weights().w_x.data();
        const T* w_h = weights().w_h.data();
        detail::pack_panels(m_bf16.w, I + H, Gz, [&](std::size_t k, std::size_t j) -> float {
            if (k < I)
            {
                return j < Gx ? w_x[k * Gx + j] : 0.0f;
            }
            const std::size_t i = k - I;
            return j < Gs ? w_h[i * Gh + j] : j < Gx ? 0.0f : w_h[i * Gh + Gs + (j - Gx)];
        });
    }

    /// (BF2)'s Wz_h^T and (BF3)'s Wz_x^T: row j of each is z's column j of W_h or W_x (0 where it has none).
    XRNN_CELL_TEMPLATE
    void XRNN_CELL::pack_bf16_backward_weights()
    {
        const T* w_x = p.w_x.data();
        const T* w_h = p.w_h.data();
        detail::pack_panels(m_bf16.w_h_t, Gz, H, [&](std::size_t j, std::size_t i) -> float {
            return j < Gs ? w_h[i * Gh + j] : j < Gx ? 0.0f : w_h[i * Gh + Gs + (j - Gx)];
        });
        detail::pack_panels(m_bf16.w_x_t, Gz, I, [&](std::size_t j, std::size_t i) -> float {
            return j < Gx ? w_x[i * Gx + j] : 0.0f;
        });
        // (BF2) packs each step's dz rows here, for (BF3); rows it never reaches (dead steps) stay 0
        m_bf16.dz_rows.resize(m_steps * m_batch * m_bf16.w_x_t.kp);
        if (m_has_lengths)
        {
            std::fill(m_bf16.dz_rows.begin(), m_bf16.dz_rows.end(), detail::bf16_t(0));
        }
    }

    /// (BF1) on n rows: x and h_prev rows (I and H apart) to bf16, then z (rows Gz apart) = [x | h] Wz.
    XRNN_CELL_TEMPLATE
    void XRNN_CELL::project_rows_bf16(const T* x, const T* h_prev, T* z, std::size_t n) const
    {
        const detail::bf16_panels& w = m_bf16.w;
        detail::bf16_t* a = detail::bf16_thread_rows(n * w.kp);
        for (std::size_t i = 0; i < n; ++i)
        {
            const detail::bf16_segment row[2] = {{x + i * I, I}, {h_prev + i * H, H}};
            detail::pack_row(a + i * w.kp, w.kp, row, 2);
        }
        detail::bf16_gemm({n, a, w.kp, &w, 0, w.k_blocks(), 0, w.column_tiles(), z, Gz, false});
    }

    /// (BF2) on rows [r, r + n): dh = dz Wz_h^T.
    XRNN_CELL_TEMPLATE
    void XRNN_CELL::hidden_gradient_rows_bf16(const T* dz, std::size_t r, std::size_t n)
    {
        const detail::bf16_panels& w = m_bf16.w_h_t;
        detail::bf16_t* a = m_bf16.dz_rows.data() + static_cast<std::size_t>(dz - m_gates.data()) / Gz * w.kp;
        for (std::size_t i = 0; i < n; ++i)
        {
            const detail::bf16_segment row[1] = {{dz + i * Gz, Gz}};
            detail::pack_row(a + i * w.kp, w.kp, row, 1);
        }
        detail::bf16_gemm({n, a, w.kp, &w, 0, w.k_blocks(), 0, w.column_tiles(), m_dh.data() + r * H, H, false});
    }

    /// (BF3) and (BF4) over all steps at once, on xrnn's threads.
    XRNN_CELL_TEMPLATE
    void XRNN_CELL::parameter_gradients_bf16(const T* input)
    {
        constexpr std::size_t K = I + H;
        constexpr std::size_t rows_per_tile = detail::bf16_tile_rows;
        const std::size_t R = m_steps * m_batch;
        const std::size_t rp = detail::bf16_round_up(R, detail::bf16_tile_k);
        const T* h_prev = hidden_rows(0);

        // pack dZ as the B of (BF4) and [X~ | H~_prev]^T as its A, in chunks of rows on the threads; dZ from the bf16
        // rows (BF2) packed as the A of (BF3) (the same values, half the bytes of the float dZ to read; 0 on dead
        // steps), and the rows of dead steps of X~ and H~ go in as 0, so that a padding value (even NaN) adds nothing
        const detail::bf16_panels& w = m_bf16.w_x_t;
        const std::size_t B = m_batch;
        auto kept = [&](std::size_t r) { return r < R && alive(r / B, r % B); };
        m_bf16.dz.reshape(R, Gz);
        m_bf16.inputs_t.resize(K * rp);
        constexpr std::size_t pack_rows = 256;
        detail::parallel_for((rp + pack_rows - 1) / pack_rows, [&](std::size_t c) {
            const std::size_t r0 = c * pack_rows;
            const std::size_t r1 = std::min(rp, r0 + pack_rows);
            detail::pack_panel_rows(m_bf16.dz, m_bf16.dz_rows.data(), w.kp, r0 / 2, r1 / 2);
            detail::pack_transposed(m_bf16.inputs_t.data(), rp, input, I, kept, r0, r1, 0, I);
            detail::pack_transposed(m_bf16.inputs_t.data() + I * rp, rp, h_prev, H, kept, r0, r1, 0, H);
        });

        // (BF4): each part of 4 column tiles over all rows, in chunks of 1024 rows of dZ (in L2 with A's chunk)
        m_bf16.grads.assign(K * Gz, 0.0f);
        constexpr std::size_t part_tiles = 4;
        constexpr std::size_t chunk_blocks = 32;
        const std::size_t tiles = m_bf16.dz.column_tiles();
        const std::size_t k_blocks = m_bf16.dz.k_blocks();
        detail::parallel_for((tiles + part_tiles - 1) / part_tiles, [&](std::size_t part) {
            const std::size_t ct0 = part * part_tiles;
            const std::size_t ct1 = std::min(tiles, ct0 + part_tiles);
            for (std::size_t kb = 0; kb < k_blocks; kb += chunk_blocks)
            {
                for (std::size_t i = 0; i < K; i += 2 * rows_per_tile)
                {
                    detail::bf16_gemm({std::min(2 * rows_per_tile, K - i), m_bf16.inputs_t.data() + i * rp, rp,
                                       &m_bf16.dz, kb, std::min(k_blocks, kb + chunk_blocks), ct0, ct1,
                                       m_bf16.grads.data() + i * Gz, Gz, true});
                }
            }
        });
        const float* g = m_bf16.grads.data();
        T* dw_x = dp.w_x.data();
        T* dw_h = dp.w_h.data();
        for (std::size_t i = 0; i < I; ++i)  // (Q4)
        {
            for (std::size_t j = 0; j < Gx; ++j)
            {
                dw_x[i * Gx + j] += g[i * Gz + j];
            }
        }
        for (std::size_t i = 0; i < H; ++i)  // (Q5): the shared columns, then the recurrent-only ones
        {
            const float* g_i = g + (I + i) * Gz;
            for (std::size_t j = 0; j < Gs; ++j)
            {
                dw_h[i * Gh + j] += g_i[j];
            }
            for (std::size_t j = Gx; j < Gz; ++j)
            {
                dw_h[i * Gh + Gs + (j - Gx)] += g_i[j];
            }
        }

        // (BF3): dX = dZ Wz_x^T, the rows split evenly over the threads in whole tiles
        const std::size_t tile_count = (R + rows_per_tile - 1) / rows_per_tile;
        const std::size_t parts = std::max<std::size_t>(1, std::min(num_threads(), tile_count));
        detail::parallel_for(parts, [&](std::size_t part) {
            detail::flush_denormals_scope flush_denormals;
            const std::size_t r0 = part * tile_count / parts * rows_per_tile;
            const std::size_t r1 = std::min(R, (part + 1) * tile_count / parts * rows_per_tile);
            detail::bf16_gemm({r1 - r0, m_bf16.dz_rows.data() + r0 * w.kp, w.kp, &w, 0, w.k_blocks(), 0,
                               w.column_tiles(), m_dx.data() + r0 * I, I, false});
        });
        mask_input_gradient();
    }

#undef XRNN_CELL
#undef XRNN_CELL_TEMPLATE
}  // namespace xrnn

#endif
