// xtensor-rnn: the forward of the recurrent engine (recurrent_cell.hpp holds the class, its public interface and
// the dimensions S, B, I, H, Gx, Gh, Gs, Gz): forward_sequence, its two paths, the one-step forward and the batch-1
// step, then the per-row pieces (R2)-(R4) they share. Its backward is in recurrent_backward.hpp.
//
// Forward, for t = 1..S (one layer):
//   (R1) x~_t     = x_t * m_x                 m_x (B, I): input dropout mask, one per sequence (1 when off)
//   (R2) h~_{t-1} = h_{t-1} * m_h             m_h (B, H): recurrent dropout mask, one per sequence
//   (R3) z_t      = [x~_t W_x (+) h~_{t-1} W_h]  W_x (I, Gx), W_h (H, Gh) -> z_t (B, Gz): the first Gs columns of
//                                               both products summed, the others side by side
//   (R4) (h_t, c_t) = the cell's equations of z_t + b, h_{t-1} and c_{t-1}   (Cell::forward_rows)
// The sequences of the batch are independent here, so each thread takes a part of the batch through all S
// steps (threads.hpp). Per step and group of up to 64 of the thread's rows, (R3) sums both products in register
// tiles of 8 rows (detail/small_gemm.hpp; one product over all columns for a fused layout, three column ranges
// otherwise; each block of W read from L2 once for the group) and (R4) follows on those rows while z_t is in L2;
// W_x and W_h stay in L2 for all steps. Layers whose weights do not fit in L2
// (register_blocked_steps is false) run (R3) through BLAS instead: one GEMM over many steps' rows for x~ W_x, then
// one GEMM per step (and column range) for h~ W_h. + b is added by the cell, which reads z_t anyway.
// The path is chosen at compile time by register_blocked_steps; the register-blocked one forks and joins the
// threads once per forward (part_count below).
// Variable lengths, (M1): see recurrent_masking.hpp.
#ifndef XRNN_LAYERS_RECURRENT_FORWARD_HPP
#define XRNN_LAYERS_RECURRENT_FORWARD_HPP

#include <algorithm>
#include <cstddef>
#include <string>

#include <xtensor/xnoalias.hpp>

#include <xrnn/config.hpp>
#include <xrnn/detail/blas.hpp>
#include <xrnn/detail/simd.hpp>
#include <xrnn/detail/small_gemm.hpp>
#include <xrnn/detail/tensor.hpp>
#include <xrnn/layers/dropout.hpp>
#include <xrnn/layers/length_order.hpp>
#include <xrnn/layers/recurrent_cell.hpp>
#include <xrnn/threads.hpp>

namespace xrnn
{
#define XRNN_CELL_TEMPLATE template <class Cell, class T, std::size_t I, std::size_t H, class Layout, class Precision>
#define XRNN_CELL recurrent_cell<Cell, T, I, H, Layout, Precision>

    XRNN_CELL_TEMPLATE
    void XRNN_CELL::forward_sequence(const T* x, std::size_t steps, std::size_t batch, const T* h0, const T* c0,
                                     mode m, bool input_persists, const std::size_t* lengths)
    {
        const std::size_t S = steps;
        const std::size_t B = batch;
        m_has_lengths = lengths != nullptr;
        if (m_has_lengths)
        {
            detail::check_length_range([] { return std::string(Cell::name) + "::forward"; }, lengths, B, S);
            detail::ensure_shape(m_lengths, {B});
            std::copy(lengths, lengths + B, m_lengths.data());
        }
        const bool training = m == mode::training;
        if (training && m_shared != nullptr)
        {
            throw state_error(detail::shared_weights_training_message(Cell::layer_name));
        }
        detail::flush_denormals_scope flush_denormals;
        m_steps = S;
        m_batch = B;
        m_state = training ? cache_state::training : cache_state::inference;
        m_input_persists = input_persists;
        // grow-only: alternating training and inference forwards (fit, then evaluate) does not reallocate.
        // Training keeps every step's gates; inference needs one step's (register-blocked path) or a chunk
        // of steps' (BLAS path).
        const std::size_t chunk = training ? S
                                  : register_blocked_steps
                                      ? 1
                                      : std::min(S, std::max<std::size_t>(1, inference_chunk_rows / B));
        detail::ensure_capacity(m_gates, chunk * B * Gz);
        detail::ensure_shape(m_h, {S + 1, B, H});
        if constexpr (has_cell_state)
        {
            detail::ensure_capacity(m_c, (training ? S + 1 : 2) * B * H);
        }

        // (R1) masked input, kept for (Q4)
        if (input_dropout())
        {
            detail::ensure_shape(m_x, {S, B, I});
            detail::ensure_shape(m_input_mask, {B, I});
            detail::sample_dropout_mask(m_input_mask.data(), m_input_mask.size(), m_options.dropout, m_mask_rng);
            for (std::size_t t = 0; t < S; ++t)
            {
                xt::noalias(detail::matrix_view(m_x.data() + t * B * I, B, I))
                    = detail::matrix_view(x + t * B * I, B, I) * m_input_mask;
            }
        }
        else if (input_copied())
        {
            detail::ensure_shape(m_x, {S, B, I});
            std::copy(x, x + S * B * I, m_x.data());
        }
        // inference reads x once below and keeps nothing; a persistent input is read where it is
        const T* input = input_copied() ? m_x.data() : x;
        if (recurrent_dropout())
        {
            detail::ensure_shape(m_recurrent_mask, {B, H});
            detail::ensure_shape(m_h_masked, {S, B, H});
            detail::sample_dropout_mask(m_recurrent_mask.data(), m_recurrent_mask.size(),
                                        m_options.recurrent_dropout, m_mask_rng);
        }

        copy_or_zero(h0, m_h.data(), B * H);
        if constexpr (has_cell_state)
        {
            copy_or_zero(c0, m_c.data(), B * H);
        }
        if constexpr (register_blocked_steps)
        {
            forward_by_rows(input);
        }
        else
        {
            forward_by_blas(input, chunk);
        }
    }

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
    /// backward): per step and group of up to group_tiles of the part's tiles of rows, (R3) in register tiles over
    /// the group's alive runs of rows together (each block of W read from L2 once for the group), then the cell's
    /// equations on each run while z is in L2. z is the step's rows of the gate cache when training, else a
    /// (B, Gz) scratch row per sequence.
    XRNN_CELL_TEMPLATE
    void XRNN_CELL::forward_by_rows(const T* input)
    {
        const std::size_t S = m_steps;
        const std::size_t B = m_batch;
        const bool training = m_state == cache_state::training;
        const std::size_t parts = part_count(S, B);
        m_weights_packed = !bf16_products && S >= packed_steps && m_shared == nullptr;
        if constexpr (bf16_products)
        {
            pack_bf16_forward_weights();
        }
        else if (m_weights_packed)
        {
            pack_projection_weights();
        }
        detail::parallel_for(parts, [&](std::size_t part) {
            detail::flush_denormals_scope flush_denormals;  // on this thread too
            constexpr std::size_t tile = tile_rows;
            const std::size_t stride = parts * tile;  // every parts-th tile (M7)
            row_runs runs;
            for (std::size_t t = 0; t < S; ++t)
            {
                T* z = m_gates.data() + (training ? t * B * Gz : 0);
                const T* x = input + t * B * I;
                const T* h_prev = hidden_rows(t);
                for (std::size_t group = part * tile; group < B; group += group_tiles * stride)
                {
                    const std::size_t end = std::min(B, group + group_tiles * stride);
                    runs.count = 0;
                    for (std::size_t r = group; r < end; r += stride)
                    {
                        for_alive_runs(t, r, std::min(tile, B - r), [&](std::size_t r0, std::size_t n0) {
                            previous_hidden(t, r0, n0);  // (R2)
                            runs.items[runs.count++] = {r0, n0};
                        });
                    }
                    project_runs(x, h_prev, z, runs);  // (R3)
                    for (std::size_t i = 0; i < runs.count; ++i)  // (R4)
                    {
                        const detail::row_run& run = runs.items[i];
                        activate_rows(t, z + run.first * Gz, run.first, run.count);
                    }
                    for (std::size_t r = group; r < end; r += stride)
                    {
                        keep_dead_states(t, r, std::min(tile, B - r));  // (M1)
                    }
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

    /// One step of the batch (the one-step API, recurrent_cell.hpp): the batch-1 path for inference on one row,
    /// else a sequence of one step.
    XRNN_CELL_TEMPLATE
    auto XRNN_CELL::forward(const xt::xtensor<T, 2>& x, const state_type& prev, mode m) -> const state_type&
    {
        const std::size_t B = x.shape()[0];
        detail::check_positive(Cell::name, "batch (x.shape()[0])", B);
        detail::check_shape(Cell::name, "x", x.shape(), {B, I});
        detail::check_shape(Cell::name, "previous h", prev.h.shape(), {B, H});
        const T* c0 = nullptr;
        if constexpr (has_cell_state)
        {
            detail::check_shape(Cell::name, "previous c", prev.c.shape(), {B, H});
            c0 = prev.c.data();
        }
        if (B == 1 && m == mode::inference)
        {
            step_batch1(x.data(), prev.h.data(), c0);
            return m_next;
        }
        forward_sequence(x.data(), 1, B, prev.h.data(), c0, m);
        copy_out(final_hidden(), m_next.h, B);
        if constexpr (has_cell_state)
        {
            copy_out(final_cell(), m_next.c, B);
        }
        return m_next;
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

    /// (R2) for rows [r, r + n) of step t: h~ = h * m_h into the cache of h~ with recurrent dropout, else h itself.
    XRNN_CELL_TEMPLATE
    const T* XRNN_CELL::previous_hidden(std::size_t t, std::size_t r, std::size_t n)
    {
        if (recurrent_dropout())
        {
            const T* h = m_h.data() + (t * m_batch + r) * H;
            T* masked = m_h_masked.data() + (t * m_batch + r) * H;
            const T* mask = m_recurrent_mask.data() + r * H;
            for (std::size_t j = 0; j < n * H; ++j)
            {
                masked[j] = h[j] * mask[j];
            }
        }
        return hidden_rows(t) + r * H;
    }

    /// Row 0 of h~_t, (R2)'s result: the cache of h~ with recurrent dropout (whose rows previous_hidden writes),
    /// else h itself; hidden_rows(0) is H~_prev of (Q5).
    XRNN_CELL_TEMPLATE
    const T* XRNN_CELL::hidden_rows(std::size_t t) const
    {
        return (recurrent_dropout() ? m_h_masked.data() : m_h.data()) + t * m_batch * H;
    }

    /// (R3) on the runs of rows of a step (x, h~_prev and z from the step's row 0 on) in register tiles:
    /// z[:, :Gs] = x W_x[:, :Gs] + h W_h[:, :Gs] summed in the same registers, z[:, Gs:Gx] = x W_x[:, Gs:],
    /// z[:, Gx:] = h W_h[:, Gs:]. A fused layout (Gs = Gx = Gh) is the first product alone, over all of z.
    XRNN_CELL_TEMPLATE
    void XRNN_CELL::project_runs(const T* x, const T* h_prev, T* z, const row_runs& runs) const
    {
        if constexpr (bf16_products)
        {
            for (std::size_t i = 0; i < runs.count; ++i)
            {
                const std::size_t r = runs.items[i].first;
                project_rows_bf16(x + r * I, h_prev + r * H, z + r * Gz, runs.items[i].count);
            }
            return;
        }
        if (m_weights_packed)
        {
            project_runs_from<true>(m_w_x_panels.data(), m_w_h_panels.data(), x, h_prev, z, runs);
            return;
        }
        const params_type& p = weights();  // this cell's, or those it shares (a predictor's)
        project_runs_from<false>(p.w_x.data(), p.w_h.data(), x, h_prev, z, runs);
    }

    /// project_runs from W_x and W_h as they are (rows Gx and Gh apart), or packed by pack_projection_weights.
    XRNN_CELL_TEMPLATE
    template <bool Packed>
    void XRNN_CELL::project_runs_from(const T* w_x, const T* w_h, const T* x, const T* h_prev, T* z,
                                      const row_runs& runs) const
    {
        // where the input-only and the recurrent-only columns start: the column Gs of W, or after the packed
        // shared columns (Gs columns of I and of H rows)
        const T* w_x_apart = Packed ? w_x + I * Gs : w_x + Gs;
        const T* w_h_apart = Packed ? w_h + H * Gs : w_h + Gs;
        if constexpr (Gs > 0)
        {
            const detail::gemm_term<T> terms[2] = {{x, I, w_x, I}, {h_prev, H, w_h, H}};
            detail::gemm_row_runs<T, Gs, Packed ? Gs : Gx, Packed>(runs.items, runs.count, z, Gz, terms);
        }
        if constexpr (Gx > Gs)
        {
            const detail::gemm_term<T> term[1] = {{x, I, w_x_apart, I}};
            detail::gemm_row_runs<T, Gx - Gs, Packed ? Gx - Gs : Gx, Packed>(runs.items, runs.count, z + Gs, Gz,
                                                                             term);
        }
        if constexpr (Gh > Gs)
        {
            const detail::gemm_term<T> term[1] = {{h_prev, H, w_h_apart, H}};
            detail::gemm_row_runs<T, Gh - Gs, Packed ? Gh - Gs : Gh, Packed>(runs.items, runs.count, z + Gx, Gz,
                                                                             term);
        }
    }

    /// W_x and W_h packed by column tiles for (R3) (detail/small_gemm.hpp), each column range of project_runs_from
    /// on its own: W_x's shared then input-only columns, then W_h's shared then recurrent-only columns.
    XRNN_CELL_TEMPLATE
    void XRNN_CELL::pack_projection_weights()
    {
        const params_type& p = weights();  // this cell's, or those it shares (a predictor's)
        detail::ensure_shape(m_w_x_panels, {Gx, I});  // I * Gx and H * Gh values, in the buffers of backward's W^T
        detail::ensure_shape(m_w_h_panels, {Gh, H});
        T* w_x = m_w_x_panels.data();
        T* w_h = m_w_h_panels.data();
        if constexpr (Gs > 0)
        {
            detail::pack_column_tiles<T, Gs, Gx>(p.w_x.data(), I, w_x);
            detail::pack_column_tiles<T, Gs, Gh>(p.w_h.data(), H, w_h);
        }
        if constexpr (Gx > Gs)
        {
            detail::pack_column_tiles<T, Gx - Gs, Gx>(p.w_x.data() + Gs, I, w_x + I * Gs);
        }
        if constexpr (Gh > Gs)
        {
            detail::pack_column_tiles<T, Gh - Gs, Gh>(p.w_h.data() + Gs, H, w_h + H * Gs);
        }
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

#undef XRNN_CELL
#undef XRNN_CELL_TEMPLATE
}  // namespace xrnn

#endif
