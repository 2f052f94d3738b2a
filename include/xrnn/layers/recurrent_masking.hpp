// xtensor-rnn: variable lengths in the recurrent engine (recurrent_cell.hpp holds the class): what a step past a
// sequence's length does, and the helpers with which the forward (recurrent_forward.hpp) and the backward
// (recurrent_backward.hpp) run on the alive rows only. The order a layer runs its rows in, (M7), is in
// length_order.hpp.
//
// Variable lengths (masking). forward_sequence may take one length L_b in [1, S] per sequence b (PyTorch's packed
// sequences; the rows stay where they are, padded to S steps). Step t (0-based) of row b is alive when t < L_b:
//   (M1) a dead step keeps the state: h_{t+1} = h_t, c_{t+1} = c_t, so h_S, c_S are each sequence's final state
//   (M2) a dead step has no gates: dz_t = 0 there, so it adds nothing to (Q4)-(Q7) and dx_t = 0
//   (M3) backward through a dead step passes dh and dc on unchanged, and ignores dy_t there (its output is a
//        constant 0 in a sequence output, recurrent_stack.hpp)
//   (M4) truncation (Q3) counts from each sequence's own end: cut where t > 0 and (L_b - t) % k == 0
// The products and the cell's equations run on the runs of alive rows of each tile only, so a tile whose rows are
// all past their length costs a copy of its states, and the BLAS path multiplies the rows up to the last alive one.
// keep_dead_states and zero_dead_rows below do (M1) and (M2); (M3) and (M4) are in the backward's loops and its
// finish_hidden_gradient (recurrent_backward.hpp).
#ifndef XRNN_LAYERS_RECURRENT_MASKING_HPP
#define XRNN_LAYERS_RECURRENT_MASKING_HPP

#include <algorithm>
#include <cstddef>

#include <xrnn/layers/recurrent_cell.hpp>

namespace xrnn
{
#define XRNN_CELL_TEMPLATE template <class Cell, class T, std::size_t I, std::size_t H, class Layout, class Precision>
#define XRNN_CELL recurrent_cell<Cell, T, I, H, Layout, Precision>

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

    /// (M2) 0 on the rows of [r, r + n) that are dead at step t, in a step's buffer of rows width apart from
    /// step_rows on: dz_t (their gate cache holds nothing of use), and dx_t where (Q7) runs on the alive runs only.
    XRNN_CELL_TEMPLATE
    void XRNN_CELL::zero_dead_rows(T* step_rows, std::size_t width, std::size_t t, std::size_t r, std::size_t n)
    {
        for (std::size_t b = r; b < r + n; ++b)
        {
            if (!alive(t, b))
            {
                std::fill(step_rows + b * width, step_rows + (b + 1) * width, T(0));
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
