// xtensor-rnn: backpropagation through time in the recurrent engine, the backward of recurrent_forward.hpp
// (recurrent_cell.hpp holds the class, its public interface and the dimensions S, B, I, H, Gx, Gh, Gs, Gz):
// backward_sequence and the one-step backward, the loop over the steps on its two paths, the per-row pieces
// (Q1)-(Q3) they share, then the parameter gradients over all steps.
//
// Backward (BPTT), for t = S..1, with dh_t = dy_t (from the output or the layer above) + the recurrent part:
//   (Q1) dz_t, dc_{t-1}, dh'_{t-1} = the cell's backward of dh_t, dc_t   (Cell::backward_rows; "dz" is the
//        gradient before the nonlinearities; dh' is the cell's direct part of dh_{t-1}, if it has one)
//   (Q2) dh_{t-1} = (dz_t[shared | recurrent only] W_h^T) * m_h + dh'_{t-1}   (+ dy_{t-1} at the next iteration)
//   (Q3) truncation: with bptt_steps = k > 0, dh_{t-1} and dc_{t-1} are set to 0 when t > 1 and
//        (S - t + 1) % k == 0, i.e. the sequence is cut into chunks of k steps aligned at its END, and no
//        gradient crosses a chunk boundary (as detaching the state there would). The last-step output of a
//        many-to-one model then backpropagates through exactly the last k steps.
//   (Q6) db   += sum over rows of dz_t          (accumulated inside the loop while dz_t is in cache)
// and then, over all steps at once:
//   (Q4) dW_x += X~^T dZ[shared | input only]         X~ (S*B, I)
//   (Q5) dW_h += H~_prev^T dZ[shared | recurrent only] H~_prev (S*B, H): h~_0 .. h~_{S-1}
//   (Q7) dx    = (dZ[shared | input only] W_x^T) * m_x
//   (Q8) dh_0, dc_0: what (Q2) and (Q1) leave after t = 1 (the initial-state gradients)
// The loop over t runs like the forward, each thread's rows on their own ((Q2) and (Q7) in register tiles, while
// dz_t is in cache), on the register-blocked path; (Q4) and (Q5) are large products over all steps, on xrnn's
// threads on both paths (detail/outer_gemm.hpp), and so is (Q7) on the BLAS path.
// On the BLAS path the loop runs on the whole batch, (Q2) as one GEMM per step (and column range).
// Variable lengths, (M2)-(M4): see recurrent_masking.hpp.
#ifndef XRNN_LAYERS_RECURRENT_BACKWARD_HPP
#define XRNN_LAYERS_RECURRENT_BACKWARD_HPP

#include <algorithm>
#include <cstddef>
#include <string>

#include <xtensor/xnoalias.hpp>

#include <xrnn/config.hpp>
#include <xrnn/detail/blas.hpp>
#include <xrnn/detail/outer_gemm.hpp>
#include <xrnn/detail/simd.hpp>
#include <xrnn/detail/small_gemm.hpp>
#include <xrnn/detail/tensor.hpp>
#include <xrnn/layers/recurrent_cell.hpp>
#include <xrnn/threads.hpp>

namespace xrnn
{
#define XRNN_CELL_TEMPLATE template <class Cell, class T, std::size_t I, std::size_t H, class Layout, class Precision>
#define XRNN_CELL recurrent_cell<Cell, T, I, H, Layout, Precision>

    XRNN_CELL_TEMPLATE
    void XRNN_CELL::backward_sequence(const T* dy_seq, const T* dh_last, const T* dc_last, const T* x)
    {
        if (m_state != cache_state::training || m_steps == 0)
        {
            throw state_error(std::string(Cell::name) + "::backward: call forward(x, mode::training) before backward");
        }
        const T* input = input_copied() ? m_x.data() : x;  // x~ for (Q4)
        if (input == nullptr)
        {
            throw state_error(std::string(Cell::name) + "::backward: the forward's input is needed again");
        }
        detail::flush_denormals_scope flush_denormals;
        const std::size_t B = m_batch;
        detail::ensure_shape(m_dx, {m_steps, B, I});
        detail::ensure_shape(m_dh, {B, H});
        copy_or_zero(dh_last, m_dh.data(), B * H);
        if constexpr (has_cell_state)
        {
            detail::ensure_shape(m_dc, {B, H});
            copy_or_zero(dc_last, m_dc.data(), B * H);
        }
        if constexpr (Layout::direct_hidden_gradient)
        {
            detail::ensure_shape(m_dh_direct, {B, H});
        }
        if constexpr (register_blocked_steps)
        {
            backward_by_rows(dy_seq);
        }
        else
        {
            backward_by_blas(dy_seq);
        }
        parameter_gradients(input);
        m_state = cache_state::consumed;  // dz was written over the gates
    }

    /// Backward of the one-step forward (the one-step API, recurrent_cell.hpp): a sequence of one step.
    XRNN_CELL_TEMPLATE
    auto XRNN_CELL::backward(const state_type& d_next) -> const gradients_type&
    {
        const std::size_t B = m_batch;
        detail::check_shape(Cell::name, "gradient of h", d_next.h.shape(), {B, H});
        const T* dc = nullptr;
        if constexpr (has_cell_state)
        {
            detail::check_shape(Cell::name, "gradient of c", d_next.c.shape(), {B, H});
            dc = d_next.c.data();
        }
        backward_sequence(nullptr, d_next.h.data(), dc);
        detail::ensure_shape(m_step_grads.dx, {B, I});
        std::copy(m_dx.data(), m_dx.data() + B * I, m_step_grads.dx.data());
        copy_out(initial_hidden_gradient(), m_step_grads.d_prev.h, B);
        if constexpr (has_cell_state)
        {
            copy_out(initial_cell_gradient(), m_step_grads.d_prev.c, B);
        }
        return m_step_grads;
    }

    /// (Q1)-(Q3), (Q6) and (Q7) for t = S..1, each part of the batch on a thread of its own: per step and group of
    /// tiles of rows (as in the forward), the cell's backward gives dz_t on each tile, then dh_{t-1} = dz_t W_h^T and
    /// dx_t = dz_t W_x^T in register tiles over the group (from transposed copies of W_h and W_x, so that W is read
    /// row by row as in the forward; dz_t is read from cache, not again from memory after the loop: 1.02x on the
    /// IMDB LSTM's backward). db is summed per tile of rows, and the tiles' sums are added in tile order at the
    /// end, so it does not depend on the number of threads either.
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
            // W_h^T for (Q2), packed by column tiles (detail/small_gemm.hpp): its rows [0, Gs) and [Gs, Gh) are
            // the two terms' W (the shared and the recurrent-only columns of dz), each packed on its own
            detail::ensure_shape(m_w_h_panels, {Gh, H});
            const T* w_h = p.w_h.data();
            const std::size_t split = Gs > 0 && Gs < Gh ? Gs : Gh;
            for (const std::size_t k0 : {std::size_t(0), split})
            {
                const std::size_t k1 = k0 == 0 ? split : Gh;
                detail::pack_column_tiles<T, H>(k1 - k0, m_w_h_panels.data() + k0 * H,
                                                [&](std::size_t k, std::size_t j) { return w_h[j * Gh + k0 + k]; });
            }
            transpose_input_weights();  // for (Q7) in the loop
        }
        detail::ensure_shape(m_bias_sums, {tiles, Gz});
        m_bias_sums.fill(T(0));
        const std::size_t parts = part_count(S, B);
        detail::parallel_for(parts, [&](std::size_t part) {
            detail::flush_denormals_scope flush_denormals;  // on this thread too
            const std::size_t stride = parts * tile;  // every parts-th tile (M7)
            row_runs runs;
            for (std::size_t t = S; t-- > 0;)
            {
                T* dz = m_gates.data() + t * B * Gz;  // the step's gates, then dz_t
                for (std::size_t group = part * tile; group < B; group += group_tiles * stride)
                {
                    const std::size_t end = std::min(B, group + group_tiles * stride);
                    runs.count = 0;
                    for (std::size_t r = group; r < end; r += stride)
                    {
                        const std::size_t n = std::min(tile, B - r);
                        if (m_has_lengths)  // (M2), (M3): dead rows get dz = 0 (and dx = 0) and keep dh and dc
                        {
                            zero_dead_rows(dz, Gz, t, r, n);
                            if constexpr (!bf16_products)  // (Q7) below runs on the alive runs only
                            {
                                zero_dead_rows(m_dx.data() + t * B * I, I, t, r, n);
                            }
                        }
                        for_alive_runs(t, r, n, [&](std::size_t r0, std::size_t n0) {
                            gate_gradient(dy_seq, t, r0, n0);  // (Q1)
                            runs.items[runs.count++] = {r0, n0};
                        });
                        // (Q6)
                        detail::accumulate_column_sums(dz + r * Gz, n, Gz, m_bias_sums.data() + (r / tile) * Gz);
                    }
                    hidden_gradient_runs(dz, runs);  // (Q2)
                    for (std::size_t i = 0; i < runs.count; ++i)
                    {
                        finish_hidden_gradient(t, runs.items[i].first, runs.items[i].count);
                    }
                    if constexpr (!bf16_products)  // (Q7) while dz_t is in cache
                    {
                        const detail::gemm_term<T> term[1] = {{dz, Gz, m_w_x_panels.data(), Gx}};
                        detail::gemm_row_runs<T, I, I, true>(runs.items, runs.count, m_dx.data() + t * B * I, I,
                                                             term);
                    }
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
                zero_dead_rows(m_gates.data() + t * m_batch * Gz, Gz, t, 0, m_batch);
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

    /// (Q2)'s product on the runs of rows of a step (dz from the step's row 0 on) in register tiles, from W_h^T:
    /// dh = dz[:, :Gs] W_h[:, :Gs]^T + dz[:, Gx:] W_h[:, Gs:]^T.
    XRNN_CELL_TEMPLATE
    void XRNN_CELL::hidden_gradient_runs(const T* dz, const row_runs& runs)
    {
        if constexpr (bf16_products)
        {
            for (std::size_t i = 0; i < runs.count; ++i)
            {
                const std::size_t r = runs.items[i].first;
                hidden_gradient_rows_bf16(dz + r * Gz, r, runs.items[i].count);
            }
            return;
        }
        T* dh = m_dh.data();
        const T* w = m_w_h_panels.data();
        if constexpr (Gs == Gh)
        {
            const detail::gemm_term<T> term[1] = {{dz, Gz, w, Gh}};
            detail::gemm_row_runs<T, H, H, true>(runs.items, runs.count, dh, H, term);
        }
        else if constexpr (Gs == 0)
        {
            const detail::gemm_term<T> term[1] = {{dz + Gx, Gz, w, Gh}};
            detail::gemm_row_runs<T, H, H, true>(runs.items, runs.count, dh, H, term);
        }
        else
        {
            const detail::gemm_term<T> terms[2] = {{dz, Gz, w, Gs}, {dz + Gx, Gz, w + Gs * H, Gh - Gs}};
            detail::gemm_row_runs<T, H, H, true>(runs.items, runs.count, dh, H, terms);
        }
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

    /// (Q4), (Q5) (and (Q7) on the BLAS path) over all steps at once on xrnn's threads (detail/outer_gemm.hpp),
    /// bit-identical on any number of them: (Q4) and (Q5) in one pass over each column range of dZ, (Q7) from a
    /// transposed copy of W_x packed by column tiles (so that W is read row by row, as in the forward).
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
        const T* h_prev = hidden_rows(0);
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
        if constexpr (!register_blocked_steps)  // (Q7); the register-blocked loop did it step by step
        {
            transpose_input_weights();
            const detail::gemm_term<T> term[1] = {{dz, Gz, m_w_x_panels.data(), Gx}};
            detail::parallel_gemm_rows<T, I, I, true>(rows, m_dx.data(), I, term);
        }
        mask_input_gradient();
    }

    /// W_x^T for (Q7), so that its product reads W row by row as the forward does, packed by column tiles for
    /// gemm_row_runs (detail/small_gemm.hpp): on the BLAS path's (Q7) over all steps (I = 512, Gz = 2048: 76 ->
    /// 35 ms against row-by-row tiles from a row-major W^T, the same bits) as in the register-blocked loop.
    XRNN_CELL_TEMPLATE
    void XRNN_CELL::transpose_input_weights()
    {
        detail::ensure_shape(m_w_x_panels, {Gx, I});
        const T* w_x = p.w_x.data();
        detail::pack_column_tiles<T, I>(Gx, m_w_x_panels.data(),
                                        [&](std::size_t k, std::size_t j) { return w_x[j * Gx + k]; });
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

#undef XRNN_CELL
#undef XRNN_CELL_TEMPLATE
}  // namespace xrnn

#endif
