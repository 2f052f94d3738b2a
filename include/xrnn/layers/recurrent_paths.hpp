// xtensor-rnn: the steps of the recurrent engine (recurrent_cell.hpp holds the class, its public interface and the
// equations): the paths, then the per-row pieces they share. Two paths, chosen at compile time by
// register_blocked_steps:
//   register tiles  (R3) and (Q2) per step on 8-row tiles of each thread's part of the batch
//                   (detail/small_gemm.hpp), W_x and W_h in L2 for all steps; one fork and join per pass
//   BLAS            (R3)'s input part as one GEMM over a chunk of steps, the recurrent part and (Q2) one GEMM
//                   per step, for weights larger than XRNN_REGISTER_BLOCKED_MAX_BYTES
// and on both, (Q4), (Q5) and (Q7) as large products over all steps, on xrnn's threads (detail/outer_gemm.hpp). A
// cell whose layout is fused (Gs = Gx = Gh) runs one product over all columns; otherwise each column range of z is
// its own product (recurrent_params.hpp).
#ifndef XRNN_LAYERS_RECURRENT_PATHS_HPP
#define XRNN_LAYERS_RECURRENT_PATHS_HPP

#include <algorithm>
#include <cstddef>

#include <xrnn/detail/blas.hpp>
#include <xrnn/detail/outer_gemm.hpp>
#include <xrnn/detail/simd.hpp>
#include <xrnn/detail/small_gemm.hpp>
#include <xrnn/layers/recurrent_cell.hpp>
#include <xrnn/threads.hpp>

namespace xrnn
{
#define XRNN_CELL_TEMPLATE template <class Cell, class T, std::size_t I, std::size_t H, class Layout, class Precision>
#define XRNN_CELL recurrent_cell<Cell, T, I, H, Layout, Precision>

    /// The parts a parallel pass cuts the batch into: one per thread, each of at least enough work (2^22
    /// multiply-adds over all steps) to pay for waking a thread. Part p takes the register tiles p, p + parts, ...:
    /// with lengths the rows run sorted by decreasing length (layers/length_order.hpp, (M7)), and dealing the
    /// tiles out in turn gives each thread long and short sequences alike.
    XRNN_CELL_TEMPLATE
    std::size_t XRNN_CELL::part_count(std::size_t steps, std::size_t batch) noexcept
    {
        constexpr std::size_t tile = tile_rows;
        constexpr std::size_t min_work = std::size_t(1) << 22;
        const std::size_t work_per_row = std::max<std::size_t>(1, steps * (I * Gx + H * Gh));
        const std::size_t min_rows = (min_work + work_per_row - 1) / work_per_row;
        const std::size_t threads = std::max<std::size_t>(1, num_threads());
        std::size_t rows = std::max((batch + threads - 1) / threads, min_rows);
        rows = std::min((rows + tile - 1) / tile * tile, batch);
        return (batch + rows - 1) / rows;
    }

    /// (R2)-(R4) for all steps, each part of the batch on a thread of its own (the rows are independent until
    /// backward): per step and tile of rows, (R3) in registers, then the cell's equations on those rows while z is
    /// in L1. z is the step's rows of the gate cache when training, else a (B, Gz) scratch row per sequence.
    XRNN_CELL_TEMPLATE
    void XRNN_CELL::forward_by_rows(const T* input)
    {
        const std::size_t S = m_steps;
        const std::size_t B = m_batch;
        const bool training = m_state == cache_state::training;
        const std::size_t parts = part_count(S, B);
        if constexpr (bf16_products)
        {
            pack_bf16_forward_weights();
        }
        detail::parallel_for(parts, [&](std::size_t part) {
            detail::flush_denormals_scope flush_denormals;  // on this thread too
            constexpr std::size_t tile = tile_rows;
            for (std::size_t t = 0; t < S; ++t)
            {
                T* z_step = m_gates.data() + (training ? t * B * Gz : 0);
                for (std::size_t r = part * tile; r < B; r += parts * tile)  // every parts-th tile (M7)
                {
                    const std::size_t n = std::min(tile, B - r);
                    for_alive_runs(t, r, n, [&](std::size_t r0, std::size_t n0) {
                        T* z = z_step + r0 * Gz;
                        project_rows(input + (t * B + r0) * I, previous_hidden(t, r0, n0), z, n0);  // (R2), (R3)
                        activate_rows(t, z, r0, n0);                                                // (R4)
                    });
                    keep_dead_states(t, r, n);  // (M1)
                }
            }
        });
    }

    /// (R2)-(R4) through BLAS: Z[:, :Gx] = X~ W_x for a chunk of steps (all S when training) in one GEMM, then per
    /// step the recurrent product into its columns and the cell's equations.
    XRNN_CELL_TEMPLATE
    void XRNN_CELL::forward_by_blas(const T* input, std::size_t chunk)
    {
        const params_type& p = weights();  // this cell's, or those it shares (a predictor's)
        using detail::transpose;
        const std::size_t S = m_steps;
        const std::size_t B = m_batch;
        for (std::size_t begin = 0; begin < S; begin += chunk)
        {
            const std::size_t steps_here = std::min(chunk, S - begin);
            // (R3), input part; with lengths (M2), only up to the chunk's last alive row
            const std::size_t rows = (steps_here - 1) * B + alive_extent(begin + steps_here - 1);
            if (alive_extent(begin) > 0)
            {
                detail::gemm(transpose::no, transpose::no, rows, Gx, I, T(1), input + begin * B * I, I, p.w_x.data(),
                             Gx, T(0), m_gates.data(), Gz);
            }
            for (std::size_t t = begin; t < begin + steps_here; ++t)
            {
                const std::size_t B = alive_extent(t);  // the rows up to the last alive one (M1)
                if (B == 0)
                {
                    keep_dead_states(t, 0, m_batch);
                    continue;
                }
                const T* h_prev = previous_hidden(t, 0, B);  // (R2)
                T* z = m_gates.data() + (t - begin) * m_batch * Gz;
                if (m_batch == 1)  // (R3), recurrent part: z[:Gs] += h W_h[:, :Gs], z[Gx:] = h W_h[:, Gs:]
                {
                    const detail::gemv_term<T> shared{h_prev, p.w_h.data(), H};
                    const detail::gemv_term<T> apart{h_prev, p.w_h.data() + Gs, H};
                    if constexpr (Gs > 0)
                    {
                        detail::gemv_rows<T, Gs, Gh>(z, z, &shared, 1);
                    }
                    if constexpr (Gh > Gs)
                    {
                        detail::gemv_rows<T, Gh - Gs, Gh>(nullptr, z + Gx, &apart, 1);
                    }
                }
                else
                {
                    if constexpr (Gs > 0)
                    {
                        detail::gemm(transpose::no, transpose::no, B, Gs, H, T(1), h_prev, H, p.w_h.data(), Gh, T(1),
                                     z, Gz);
                    }
                    if constexpr (Gh > Gs)
                    {
                        detail::gemm(transpose::no, transpose::no, B, Gh - Gs, H, T(1), h_prev, H, p.w_h.data() + Gs,
                                     Gh, T(0), z + Gx, Gz);
                    }
                }
                if (m_has_lengths)
                {
                    for_alive_runs(t, 0, B, [&](std::size_t r0, std::size_t n0) {
                        activate_rows(t, z + r0 * Gz, r0, n0);  // (R4)
                    });
                    keep_dead_states(t, 0, m_batch);  // (M1)
                }
                else
                {
                    activate_rows(t, z, 0, B);  // (R4)
                }
            }
        }
    }

    /// (Q1)-(Q3) and (Q6) for t = S..1, each part of the batch on a thread of its own: per step and tile of rows,
    /// the cell's backward gives dz_t, then dh_{t-1} = dz_t W_h^T in registers (from a transposed copy of W_h, so
    /// that W is read row by row as in the forward). db is summed per tile of rows, and the tiles' sums are added
    /// in tile order at the end, so it does not depend on the number of threads either.
    XRNN_CELL_TEMPLATE
    void XRNN_CELL::backward_by_rows(const T* dy_seq)
    {
        const std::size_t S = m_steps;
        const std::size_t B = m_batch;
        constexpr std::size_t tile = tile_rows;
        const std::size_t tiles = (B + tile - 1) / tile;
        if constexpr (bf16_products)
        {
            pack_bf16_backward_weights();
        }
        else
        {
            detail::ensure_shape(m_w_h_transposed, {Gh, H});
            for (std::size_t i = 0; i < H; ++i)
            {
                for (std::size_t j = 0; j < Gh; ++j)
                {
                    m_w_h_transposed.data()[j * H + i] = p.w_h.data()[i * Gh + j];
                }
            }
        }
        detail::ensure_shape(m_bias_sums, {tiles, Gz});
        m_bias_sums.fill(T(0));
        const std::size_t parts = part_count(S, B);
        detail::parallel_for(parts, [&](std::size_t part) {
            detail::flush_denormals_scope flush_denormals;  // on this thread too
            for (std::size_t t = S; t-- > 0;)
            {
                for (std::size_t r = part * tile; r < B; r += parts * tile)  // every parts-th tile (M7)
                {
                    const std::size_t n = std::min(tile, B - r);
                    if (m_has_lengths)  // (M2), (M3): dead rows get dz = 0 and keep dh and dc
                    {
                        zero_dead_gates(t, r, n);
                        for_alive_runs(t, r, n, [&](std::size_t r0, std::size_t n0) {
                            hidden_gradient_rows(gate_gradient(dy_seq, t, r0, n0), r0, n0);  // (Q1), (Q2)
                            finish_hidden_gradient(t, r0, n0);
                        });
                        detail::accumulate_column_sums(m_gates.data() + (t * B + r) * Gz, n, Gz,
                                                       m_bias_sums.data() + (r / tile) * Gz);  // (Q6)
                        continue;
                    }
                    const T* dz = gate_gradient(dy_seq, t, r, n);                                   // (Q1)
                    detail::accumulate_column_sums(dz, n, Gz, m_bias_sums.data() + (r / tile) * Gz);  // (Q6)
                    hidden_gradient_rows(dz, r, n);                                                 // (Q2)
                    finish_hidden_gradient(t, r, n);
                }
            }
        });
        detail::accumulate_column_sums(m_bias_sums.data(), tiles, Gz, dp.b.data());
    }

    /// (Q1)-(Q3) and (Q6) for t = S..1 on the whole batch, with BLAS for (Q2).
    XRNN_CELL_TEMPLATE
    void XRNN_CELL::backward_by_blas(const T* dy_seq)
    {
        using detail::transpose;
        if (m_has_lengths)
        {
            detail::ensure_shape(m_dh_product, {m_batch, H});
        }
        for (std::size_t t = m_steps; t-- > 0;)
        {
            const std::size_t B = alive_extent(t);  // rows up to the last alive one (M2)
            if (m_has_lengths)
            {
                zero_dead_gates(t, 0, m_batch);
                if (B == 0)
                {
                    continue;  // (M3) every row keeps dh and dc
                }
                for_alive_runs(t, 0, B, [&](std::size_t r0, std::size_t n0) { gate_gradient(dy_seq, t, r0, n0); });
                const T* dz = m_gates.data() + t * m_batch * Gz;
                detail::accumulate_column_sums(dz, B, Gz, dp.b.data());  // (Q6)
                if constexpr (Gs > 0)                                     // (Q2), into a scratch: dead rows keep dh
                {
                    detail::gemm(transpose::no, transpose::yes, B, H, Gs, T(1), dz, Gz, p.w_h.data(), Gh, T(0),
                                 m_dh_product.data(), H);
                }
                if constexpr (Gh > Gs)
                {
                    detail::gemm(transpose::no, transpose::yes, B, H, Gh - Gs, T(1), dz + Gx, Gz, p.w_h.data() + Gs,
                                 Gh, Gs > 0 ? T(1) : T(0), m_dh_product.data(), H);
                }
                for_alive_runs(t, 0, B, [&](std::size_t r0, std::size_t n0) {
                    std::copy(m_dh_product.data() + r0 * H, m_dh_product.data() + (r0 + n0) * H, m_dh.data() + r0 * H);
                    finish_hidden_gradient(t, r0, n0);
                });
                continue;
            }
            const T* dz = gate_gradient(dy_seq, t, 0, B);                 // (Q1)
            detail::accumulate_column_sums(dz, B, Gz, dp.b.data());        // (Q6)
            if constexpr (Gs > 0)                                          // (Q2), shared columns
            {
                detail::gemm(transpose::no, transpose::yes, B, H, Gs, T(1), dz, Gz, p.w_h.data(), Gh, T(0),
                             m_dh.data(), H);
            }
            if constexpr (Gh > Gs)  // (Q2), the recurrent-only columns
            {
                detail::gemm(transpose::no, transpose::yes, B, H, Gh - Gs, T(1), dz + Gx, Gz, p.w_h.data() + Gs, Gh,
                             Gs > 0 ? T(1) : T(0), m_dh.data(), H);
            }
            finish_hidden_gradient(t, 0, B);
        }
    }

    /// The batch-1 inference step: (R3) as matrix-vector products over x and h_{t-1} (register-blocked, one pass
    /// over each column range of the weights), then (R4) of z + b into m_next. h_prev is read completely by (R3),
    /// and elementwise by (R4), so prev may alias m_next.
    XRNN_CELL_TEMPLATE
    void XRNN_CELL::step_batch1(const T* x, const T* h_prev, const T* c_prev)
    {
        const params_type& p = weights();  // this cell's, or those it shares (a predictor's)
        detail::flush_denormals_scope flush_denormals;
        m_state = cache_state::inference;  // nothing is cached for backward
        m_steps = 0;
        m_batch = 1;
        m_has_lengths = false;
        detail::ensure_shape(m_step_z, {Gz});
        T* z = m_step_z.data();
        if constexpr (Layout::fused)
        {
            const detail::gemv_term<T> terms[2] = {{x, p.w_x.data(), I}, {h_prev, p.w_h.data(), H}};
            detail::gemv_rows<T, Gz>(nullptr, z, terms, 2);  // (R3), both products summed
        }
        else
        {
            // each projection over whole rows of its W (as in the fused case), then laid out as z: the shared
            // columns added, the recurrent-only ones moved behind the input-only ones
            detail::ensure_shape(m_step_hw, {Gh});
            T* hw = m_step_hw.data();
            const detail::gemv_term<T> input{x, p.w_x.data(), I};
            const detail::gemv_term<T> recurrent{h_prev, p.w_h.data(), H};
            detail::gemv_rows<T, Gx>(nullptr, z, &input, 1);       // (R3), z[:Gx] = x W_x
            detail::gemv_rows<T, Gh>(nullptr, hw, &recurrent, 1);  // h W_h
            for (std::size_t j = 0; j < Gs; ++j)
            {
                z[j] += hw[j];
            }
            std::copy(hw + Gs, hw + Gh, z + Gx);
        }
        detail::ensure_shape(m_next.h, {1, H});
        T* c = nullptr;
        if constexpr (has_cell_state)
        {
            detail::ensure_shape(m_next.c, {1, H});
            c = m_next.c.data();
        }
        Cell::template forward_rows<false>(p.b.data(), cell_rows<T>{z, h_prev, c_prev, c, m_next.h.data(), 1});  // (R4)
    }

    /// (R3) on n rows in register tiles: z[:, :Gs] = x W_x[:, :Gs] + h W_h[:, :Gs] summed in the same registers,
    /// z[:, Gs:Gx] = x W_x[:, Gs:], z[:, Gx:] = h W_h[:, Gs:]. A fused layout (Gs = Gx = Gh) is the first product
    /// alone, over all of z.
    XRNN_CELL_TEMPLATE
    void XRNN_CELL::project_rows(const T* x, const T* h_prev, T* z, std::size_t n) const
    {
        if constexpr (bf16_products)
        {
            project_rows_bf16(x, h_prev, z, n);
            return;
        }
        const params_type& p = weights();  // this cell's, or those it shares (a predictor's)
        if constexpr (Gs > 0)
        {
            const detail::gemm_term<T> terms[2] = {{x, I, p.w_x.data(), I}, {h_prev, H, p.w_h.data(), H}};
            detail::gemm_rows<T, Gs, Gx>(n, z, Gz, terms);
        }
        if constexpr (Gx > Gs)
        {
            const detail::gemm_term<T> term[1] = {{x, I, p.w_x.data() + Gs, I}};
            detail::gemm_rows<T, Gx - Gs, Gx>(n, z + Gs, Gz, term);
        }
        if constexpr (Gh > Gs)
        {
            const detail::gemm_term<T> term[1] = {{h_prev, H, p.w_h.data() + Gs, H}};
            detail::gemm_rows<T, Gh - Gs, Gh>(n, z + Gx, Gz, term);
        }
    }

    /// (Q2)'s product on n rows in register tiles, from W_h^T:
    /// dh = dz[:, :Gs] W_h[:, :Gs]^T + dz[:, Gx:] W_h[:, Gs:]^T.
    XRNN_CELL_TEMPLATE
    void XRNN_CELL::hidden_gradient_rows(const T* dz, std::size_t r, std::size_t n)
    {
        if constexpr (bf16_products)
        {
            hidden_gradient_rows_bf16(dz, r, n);
            return;
        }
        T* dh = m_dh.data() + r * H;
        const T* w = m_w_h_transposed.data();
        if constexpr (Gs == Gh)
        {
            const detail::gemm_term<T> term[1] = {{dz, Gz, w, Gh}};
            detail::gemm_rows<T, H>(n, dh, H, term);
        }
        else if constexpr (Gs == 0)
        {
            const detail::gemm_term<T> term[1] = {{dz + Gx, Gz, w, Gh}};
            detail::gemm_rows<T, H>(n, dh, H, term);
        }
        else
        {
            const detail::gemm_term<T> terms[2] = {{dz, Gz, w, Gs}, {dz + Gx, Gz, w + Gs * H, Gh - Gs}};
            detail::gemm_rows<T, H>(n, dh, H, terms);
        }
    }

    /// (Q4), (Q5), (Q7) over all steps at once on xrnn's threads (detail/outer_gemm.hpp), bit-identical on any number
    /// of them: (Q4) and (Q5) in one pass over each column range of dZ, (Q7) from a transposed copy of W_x (so that
    /// W is read row by row, as in the forward).
    XRNN_CELL_TEMPLATE
    void XRNN_CELL::parameter_gradients(const T* input)
    {
        if constexpr (bf16_products)
        {
            parameter_gradients_bf16(input);
            return;
        }
        using detail::outer_term;
        // (M2) with lengths, each step's rows up to its last alive one: dZ is 0 after, and so is dX
        detail::live_rows rows{m_steps, m_batch};
        if (m_has_lengths)
        {
            detail::ensure_shape(m_step_extents, {m_steps});
            for (std::size_t t = 0; t < m_steps; ++t)
            {
                m_step_extents.data()[t] = alive_extent(t);
            }
            rows.count = m_step_extents.data();
        }
        const T* dz = m_gates.data();
        const T* h_prev = recurrent_dropout() ? m_h_masked.data() : m_h.data();
        T* dw_x = dp.w_x.data();
        T* dw_h = dp.w_h.data();
        if constexpr (Gs > 0)  // (Q4) and (Q5), shared columns
        {
            const outer_term<T> terms[2] = {{input, I, I, dw_x, Gx}, {h_prev, H, H, dw_h, Gh}};
            detail::accumulate_outer_products<T, Gs>(rows, dz, Gz, terms, m_outer_packs);
        }
        if constexpr (Gx > Gs)  // (Q4), the input-only columns
        {
            const outer_term<T> terms[1] = {{input, I, I, dw_x + Gs, Gx}};
            detail::accumulate_outer_products<T, Gx - Gs>(rows, dz + Gs, Gz, terms, m_outer_packs);
        }
        if constexpr (Gh > Gs)  // (Q5), the recurrent-only columns
        {
            const outer_term<T> terms[1] = {{h_prev, H, H, dw_h + Gs, Gh}};
            detail::accumulate_outer_products<T, Gh - Gs>(rows, dz + Gx, Gz, terms, m_outer_packs);
        }
        detail::ensure_shape(m_w_x_transposed, {Gx, I});
        for (std::size_t i = 0; i < I; ++i)
        {
            for (std::size_t j = 0; j < Gx; ++j)
            {
                m_w_x_transposed.data()[j * I + i] = p.w_x.data()[i * Gx + j];
            }
        }
        const detail::gemm_term<T> term[1] = {{dz, Gz, m_w_x_transposed.data(), Gx}};
        detail::parallel_gemm_rows<T, I>(rows, m_dx.data(), I, term);  // (Q7)
        mask_input_gradient();
    }

    /// (Q7)'s * m_x, with input dropout.
    XRNN_CELL_TEMPLATE
    void XRNN_CELL::mask_input_gradient()
    {
        if (input_dropout())
        {
            for (std::size_t t = 0; t < m_steps; ++t)
            {
                auto dx_t = detail::matrix_view(m_dx.data() + t * m_batch * I, m_batch, I);
                xt::noalias(dx_t) *= m_input_mask;
            }
        }
    }

    /// (R2) for rows [r, r + n) of step t: h~ = h * m_h into the cache of h~ with recurrent dropout, else h itself.
    XRNN_CELL_TEMPLATE
    const T* XRNN_CELL::previous_hidden(std::size_t t, std::size_t r, std::size_t n)
    {
        const T* h = m_h.data() + (t * m_batch + r) * H;
        if (!recurrent_dropout())
        {
            return h;
        }
        T* masked = m_h_masked.data() + (t * m_batch + r) * H;
        const T* mask = m_recurrent_mask.data() + r * H;
        for (std::size_t j = 0; j < n * H; ++j)
        {
            masked[j] = h[j] * mask[j];
        }
        return masked;
    }

    /// (R4) of z + b on rows [r, r + n) of step t; a training forward keeps what backward needs in z.
    XRNN_CELL_TEMPLATE
    void XRNN_CELL::activate_rows(std::size_t t, T* z, std::size_t r, std::size_t n)
    {
        const params_type& p = weights();  // this cell's, or those it shares (a predictor's)
        const cell_rows<T> rows{z, m_h.data() + (t * m_batch + r) * H, row_of(cell_state(t), r),
                                row_of(cell_state(t + 1), r), m_h.data() + ((t + 1) * m_batch + r) * H, n};
        if (m_state == cache_state::training)
        {
            Cell::template forward_rows<true>(p.b.data(), rows);
        }
        else
        {
            Cell::template forward_rows<false>(p.b.data(), rows);
        }
    }

    /// dh += dy_t, then (Q1) for rows [r, r + n) of step t: dz_t written over the step's gates, dc updated, the
    /// cell's direct dh' written. Returns those rows of dz_t.
    XRNN_CELL_TEMPLATE
    const T* XRNN_CELL::gate_gradient(const T* dy_seq, std::size_t t, std::size_t r, std::size_t n)
    {
        T* dh = m_dh.data() + r * H;
        if (dy_seq != nullptr)
        {
            const T* dy = dy_seq + (t * m_batch + r) * H;
            for (std::size_t j = 0; j < n * H; ++j)
            {
                dh[j] += dy[j];
            }
        }
        T* dz = m_gates.data() + (t * m_batch + r) * Gz;  // the gates of step t, then dz_t
        T* dh_direct = Layout::direct_hidden_gradient ? m_dh_direct.data() + r * H : nullptr;
        Cell::backward_rows(cell_gradient_rows<T>{dz, m_h.data() + (t * m_batch + r) * H, row_of(cell_state(t), r),
                                                  row_of(cell_state(t + 1), r),
                                                  m_h.data() + ((t + 1) * m_batch + r) * H, dh,
                                                  row_of(cell_state_gradient(), r), dh_direct, n});
        return dz;
    }

    /// After (Q2)'s product for rows [r, r + n) of step t: dh_{t-1} *= m_h, += the cell's dh', and (Q3), the
    /// truncation of dh and dc.
    XRNN_CELL_TEMPLATE
    void XRNN_CELL::finish_hidden_gradient(std::size_t t, std::size_t r, std::size_t n)
    {
        T* dh = m_dh.data() + r * H;
        if (recurrent_dropout())
        {
            const T* mask = m_recurrent_mask.data() + r * H;
            for (std::size_t j = 0; j < n * H; ++j)
            {
                dh[j] *= mask[j];
            }
        }
        if constexpr (Layout::direct_hidden_gradient)
        {
            const T* direct = m_dh_direct.data() + r * H;
            for (std::size_t j = 0; j < n * H; ++j)
            {
                dh[j] += direct[j];
            }
        }
        const std::size_t k = m_options.bptt_steps;
        if (m_has_lengths)  // (M4): from each sequence's own end (the rows here are alive at t)
        {
            for (std::size_t i = 0; k > 0 && t > 0 && i < n; ++i)
            {
                if ((m_lengths.data()[r + i] - t) % k == 0)
                {
                    std::fill(dh + i * H, dh + (i + 1) * H, T(0));
                    if (T* dc = row_of(cell_state_gradient(), r + i))
                    {
                        std::fill(dc, dc + H, T(0));
                    }
                }
            }
            return;
        }
        if (k > 0 && t > 0 && (m_steps - t) % k == 0)  // (Q3)
        {
            std::fill(dh, dh + n * H, T(0));
            if (T* dc = row_of(cell_state_gradient(), r))
            {
                std::fill(dc, dc + n * H, T(0));
            }
        }
    }

    /// (M1)-(M4): f(r0, n0) for each maximal run [r0, r0 + n0) of rows of [r, r + n) alive at step t.
    XRNN_CELL_TEMPLATE
    template <class F>
    void XRNN_CELL::for_alive_runs(std::size_t t, std::size_t r, std::size_t n, F&& f) const
    {
        if (!m_has_lengths)
        {
            f(r, n);
            return;
        }
        const std::size_t end = r + n;
        for (std::size_t b = r; b < end;)
        {
            if (!alive(t, b))
            {
                ++b;
                continue;
            }
            std::size_t e = b + 1;
            while (e < end && alive(t, e))
            {
                ++e;
            }
            f(b, e - b);
            b = e;
        }
    }

    /// (M1) on the rows of [r, r + n) that are dead at step t: h_{t+1} = h_t, c_{t+1} = c_t.
    XRNN_CELL_TEMPLATE
    void XRNN_CELL::keep_dead_states(std::size_t t, std::size_t r, std::size_t n)
    {
        if (!m_has_lengths)
        {
            return;
        }
        for (std::size_t b = r; b < r + n; ++b)
        {
            if (alive(t, b))
            {
                continue;
            }
            const T* h = m_h.data() + (t * m_batch + b) * H;
            std::copy(h, h + H, m_h.data() + ((t + 1) * m_batch + b) * H);
            if (recurrent_dropout())  // h~_t of a dead row meets dz_t = 0 in (Q5): kept finite
            {
                T* masked = m_h_masked.data() + (t * m_batch + b) * H;
                std::fill(masked, masked + H, T(0));
            }
            if constexpr (has_cell_state)
            {
                const T* c = cell_state(t) + b * H;
                std::copy(c, c + H, cell_state(t + 1) + b * H);
            }
        }
    }

    /// (M2) dz_t = 0 on the rows of [r, r + n) that are dead at step t (their gate cache holds nothing of use).
    XRNN_CELL_TEMPLATE
    void XRNN_CELL::zero_dead_gates(std::size_t t, std::size_t r, std::size_t n)
    {
        for (std::size_t b = r; b < r + n; ++b)
        {
            if (!alive(t, b))
            {
                T* dz = m_gates.data() + (t * m_batch + b) * Gz;
                std::fill(dz, dz + Gz, T(0));
            }
        }
    }

    /// The rows a whole-batch product of step t needs: up to the last row alive at t (the batch without lengths).
    XRNN_CELL_TEMPLATE
    std::size_t XRNN_CELL::alive_extent(std::size_t t) const noexcept
    {
        if (!m_has_lengths)
        {
            return m_batch;
        }
        std::size_t extent = 0;
        for (std::size_t b = 0; b < m_batch; ++b)
        {
            extent = t < m_lengths.data()[b] ? b + 1 : extent;
        }
        return extent;
    }

#undef XRNN_CELL
#undef XRNN_CELL_TEMPLATE
}  // namespace xrnn

#endif
