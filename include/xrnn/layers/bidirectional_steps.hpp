// xtensor-rnn: forward and backward of the bidirectional layers (bidirectional.hpp holds the class and the
// equations (BD1)-(BD6)).
#ifndef XRNN_LAYERS_BIDIRECTIONAL_STEPS_HPP
#define XRNN_LAYERS_BIDIRECTIONAL_STEPS_HPP

#include <algorithm>
#include <cstddef>
#include <string>

#include <xrnn/layers/bidirectional.hpp>

namespace xrnn
{
#define XRNN_BIDIRECTIONAL_TEMPLATE                                                                                    \
    template <class FirstCell, class UpperCell, std::size_t Layers, output Out, merge_mode Merge>
#define XRNN_BIDIRECTIONAL bidirectional_stack<FirstCell, UpperCell, Layers, Out, Merge>

    namespace detail
    {
        /// (BD3), (BD4) on one row of H values of each direction: y (2H for concat, else H).
        template <merge_mode Merge, class T>
        void merge_row(const T* f, const T* r, T* y, std::size_t H)
        {
            for (std::size_t j = 0; j < H; ++j)
            {
                if constexpr (Merge == merge_mode::concat)
                {
                    y[j] = f[j];
                    y[H + j] = r[j];
                }
                else if constexpr (Merge == merge_mode::sum)
                {
                    y[j] = f[j] + r[j];
                }
                else if constexpr (Merge == merge_mode::mul)
                {
                    y[j] = f[j] * r[j];
                }
                else
                {
                    y[j] = (f[j] + r[j]) / T(2);
                }
            }
        }

        /// (BD5) on one row: df, dr from dy and the two directions' outputs f, r.
        template <merge_mode Merge, class T>
        void split_row(const T* dy, const T* f, const T* r, T* df, T* dr, std::size_t H)
        {
            for (std::size_t j = 0; j < H; ++j)
            {
                if constexpr (Merge == merge_mode::concat)
                {
                    df[j] = dy[j];
                    dr[j] = dy[H + j];
                }
                else if constexpr (Merge == merge_mode::sum)
                {
                    df[j] = dy[j];
                    dr[j] = dy[j];
                }
                else if constexpr (Merge == merge_mode::mul)
                {
                    df[j] = dy[j] * r[j];
                    dr[j] = dy[j] * f[j];
                }
                else
                {
                    df[j] = dy[j] / T(2);
                    dr[j] = dy[j] / T(2);
                }
            }
        }
    }  // namespace detail

    XRNN_BIDIRECTIONAL_TEMPLATE
    auto XRNN_BIDIRECTIONAL::run_forward(const input_type& x, mode m) -> const output_type&
    {
        const std::size_t S = x.shape()[0];
        const std::size_t B = x.shape()[1];
        auto who = [] { return std::string("bidirectional_") + name() + "::forward"; };  // (made when it throws)
        if (S == 0 || B == 0 || x.shape()[2] != input_size)
        {
            throw shape_error(who() + ": x expected shape (S, B, " + std::to_string(input_size)
                              + ") with S, B >= 1 but got " + detail::shape_to_string(x.shape()));
        }
        const std::size_t* lengths = m_lengths.check(who, B, S);
        m_steps = S;
        m_batch = B;
        const bool sorted = m_order.arrange(lengths, B);
        const T* input = x.data();
        if (sorted)  // (M7)
        {
            lengths = m_order.lengths();
            detail::ensure_shape(m_sorted_x, {S, B, input_size});
            m_order.gather(x.data(), m_sorted_x.data(), S, input_size);
            input = m_sorted_x.data();
        }
        output_type& out = sorted ? m_sorted_output : m_output;
        detail::ensure_shape(m_final.h, {2 * Layers, B, H});
        if constexpr (has_cell_state)
        {
            detail::ensure_shape(m_final.c, {2 * Layers, B, H});
        }
        for (std::size_t k = 0; k < Layers; ++k)
        {
            const std::size_t width = k == 0 ? input_size : 2 * H;
            detail::ensure_shape(reversed(k), {S, B, width});
            reverse_rows(input, reversed(k).data(), width);  // (BD2)
            both_directions(k, [&](auto& cell, std::size_t d) {
                cell.forward_sequence(d == 0 ? input : reversed(k).data(), S, B, nullptr, nullptr, m,
                                      /* input_persists = */ d == 1 || k > 0 || sorted, lengths);
            });
            const T* f = nullptr;  // h^f_1 .. h^f_S and h^r in the reverse cell's order, (S, B, H) each
            const T* r = nullptr;
            for (std::size_t d = 0; d < 2; ++d)
            {
                visit_cell(k, d, [&](auto& cell) {
                    (d == 0 ? f : r) = cell.hidden_sequence();
                    std::copy(cell.final_hidden(), cell.final_hidden() + B * H, m_final.h.data() + (2 * k + d) * B * H);
                    if constexpr (has_cell_state)
                    {
                        std::copy(cell.final_cell(), cell.final_cell() + B * H, m_final.c.data() + (2 * k + d) * B * H);
                    }
                });
            }
            T* y = nullptr;
            std::size_t y_width = 2 * H;
            if (k + 1 < Layers)  // (BD1)
            {
                detail::ensure_shape(between(k), {S, B, 2 * H});
                y = between(k).data();
            }
            else if constexpr (Out == output::sequence)  // (BD3)
            {
                detail::ensure_shape(out, {S, B, output_size});
                y = out.data();
                y_width = output_size;
            }
            if (y != nullptr)
            {
                for (std::size_t t = 0; t < S; ++t)
                {
                    for (std::size_t b = 0; b < B; ++b)
                    {
                        const std::size_t n = length(b);
                        T* row = y + (t * B + b) * y_width;
                        if (t >= n)
                        {
                            std::fill(row, row + y_width, T(0));
                        }
                        else if (k + 1 < Layers)
                        {
                            detail::merge_row<merge_mode::concat>(f + (t * B + b) * H, r + ((n - 1 - t) * B + b) * H,
                                                                  row, H);
                        }
                        else
                        {
                            detail::merge_row<Merge>(f + (t * B + b) * H, r + ((n - 1 - t) * B + b) * H, row, H);
                        }
                    }
                }
                input = y;
            }
        }
        if constexpr (Out == output::last)  // (BD4)
        {
            detail::ensure_shape(out, {B, output_size});
            const T* f = m_final.h.data() + (2 * Layers - 2) * B * H;
            const T* r = m_final.h.data() + (2 * Layers - 1) * B * H;
            for (std::size_t b = 0; b < B; ++b)
            {
                detail::merge_row<Merge>(f + b * H, r + b * H, out.data() + b * output_size, H);
            }
        }
        if (sorted)  // (M7) the output and the final states back in the caller's order
        {
            detail::ensure_shape(m_output, out.shape());
            m_order.scatter(out.data(), m_output.data(), Out == output::last ? 1 : S, output_size);
            detail::ensure_shape(m_caller_final.h, m_final.h.shape());
            m_order.scatter(m_final.h.data(), m_caller_final.h.data(), 2 * Layers, H);
            if constexpr (has_cell_state)
            {
                detail::ensure_shape(m_caller_final.c, m_final.c.shape());
                m_order.scatter(m_final.c.data(), m_caller_final.c.data(), 2 * Layers, H);
            }
        }
        return m_output;
    }

    XRNN_BIDIRECTIONAL_TEMPLATE
    const xt::xtensor<typename FirstCell::value_type, 3>& XRNN_BIDIRECTIONAL::backward(const output_type& dy)
    {
        const std::size_t S = m_steps;
        const std::size_t B = m_batch;
        auto who = [] { return std::string("bidirectional_") + name() + "::backward"; };
        if (S == 0)
        {
            throw state_error(who() + ": call forward(x, mode::training) before backward");
        }
        if constexpr (Out == output::last)
        {
            detail::check_shape(name(), "dy", dy.shape(), {B, output_size});
        }
        else
        {
            detail::check_shape(name(), "dy", dy.shape(), {S, B, output_size});
        }
        const bool sorted = m_order.active();
        const T* dy_data = dy.data();
        if (sorted)  // (M7)
        {
            detail::ensure_shape(m_sorted_dy, dy.shape());
            m_order.gather(dy.data(), m_sorted_dy.data(), Out == output::last ? 1 : S, output_size);
            dy_data = m_sorted_dy.data();
        }
        detail::ensure_shape(m_dy_forward, {S, B, H});
        detail::ensure_shape(m_dy_reverse, {S, B, H});
        for (std::size_t k = Layers; k-- > 0;)
        {
            const T* f = nullptr;
            const T* r = nullptr;
            visit_cell(k, 0, [&](auto& cell) { f = cell.hidden_sequence(); });
            visit_cell(k, 1, [&](auto& cell) { r = cell.hidden_sequence(); });
            const bool last = k + 1 == Layers && Out == output::last;
            if (last)  // (BD5) on the final states
            {
                const T* hf = m_final.h.data() + (2 * k) * B * H;
                const T* hr = m_final.h.data() + (2 * k + 1) * B * H;
                detail::ensure_shape(m_dh_last[0], {B, H});
                detail::ensure_shape(m_dh_last[1], {B, H});
                for (std::size_t b = 0; b < B; ++b)
                {
                    detail::split_row<Merge>(dy_data + b * output_size, hf + b * H, hr + b * H,
                                             m_dh_last[0].data() + b * H, m_dh_last[1].data() + b * H, H);
                }
            }
            else  // (BD5) per step, from dy (top layer) or the input gradient of the layer above (BD6)
            {
                const bool top = k + 1 == Layers;
                const T* g = top ? dy_data : m_dx_between.data();
                const std::size_t g_width = top ? output_size : 2 * H;
                for (std::size_t t = 0; t < S; ++t)
                {
                    for (std::size_t b = 0; b < B; ++b)
                    {
                        const std::size_t n = length(b);
                        T* df = m_dy_forward.data() + (t * B + b) * H;
                        if (t >= n)  // ignored by the cells (M3); zero for the reverse cell's dead step t too
                        {
                            std::fill(df, df + H, T(0));
                            std::fill(m_dy_reverse.data() + (t * B + b) * H, m_dy_reverse.data() + (t * B + b + 1) * H,
                                      T(0));
                            continue;
                        }
                        const std::size_t tr = n - 1 - t;
                        T* dr = m_dy_reverse.data() + (tr * B + b) * H;
                        if (top)
                        {
                            detail::split_row<Merge>(g + (t * B + b) * g_width, f + (t * B + b) * H,
                                                     r + (tr * B + b) * H, df, dr, H);
                        }
                        else
                        {
                            detail::split_row<merge_mode::concat>(g + (t * B + b) * g_width, f, r, df, dr, H);
                        }
                    }
                }
            }
            const T* input_forward = k > 0 ? between(k - 1).data() : sorted ? m_sorted_x.data() : nullptr;
            both_directions(k, [&](auto& cell, std::size_t d) {
                cell.backward_sequence(last ? nullptr : (d == 0 ? m_dy_forward.data() : m_dy_reverse.data()),
                                       last ? m_dh_last[d].data() : nullptr, nullptr,
                                       d == 0 ? input_forward : reversed(k).data());
            });
            // (BD6) the layer's input gradient: the forward cell's, plus the reverse cell's put back in order
            xt::xtensor<T, 3>& target = k == 0 ? m_dx : m_dx_between;
            const std::size_t width = k == 0 ? input_size : 2 * H;
            detail::ensure_shape(target, {S, B, width});
            visit_cell(k, 0, [&](auto& cell) {
                std::copy(cell.input_gradient().data(), cell.input_gradient().data() + S * B * width, target.data());
            });
            visit_cell(k, 1, [&](auto& cell) { reverse_rows(cell.input_gradient().data(), target.data(), width, true); });
        }
        if (!sorted)
        {
            return m_dx;
        }
        detail::ensure_shape(m_caller_dx, m_dx.shape());  // (M7)
        m_order.scatter(m_dx.data(), m_caller_dx.data(), S, input_size);
        return m_caller_dx;
    }

#undef XRNN_BIDIRECTIONAL
#undef XRNN_BIDIRECTIONAL_TEMPLATE
}  // namespace xrnn

#endif
