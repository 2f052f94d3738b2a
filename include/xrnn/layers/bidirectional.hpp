// xtensor-rnn: bidirectional recurrent layers, stacked as PyTorch's bidirectional=True stacks them.
//
//   bilstm<T, In, Hidden, Layers = 1, output Out = output::last, merge_mode M = merge_mode::concat>
//   bigru<...>, birnn<..., nonlinearity Act = tanh>: the same for the other cells
//   x (S, B, In) -> y (B, W) for output::last, (S, B, W) for output::sequence; W = 2 Hidden for concat, else Hidden
//
// Each stacked layer k has two cells, the forward one reading steps 1..L_b of each sequence and the reverse one
// reading them backwards, L_b..1 (L_b its length: S, or the lengths given, as in recurrent_stack.hpp). With
// h^f_t and h^r_t the two directions' states after reading step t (the reverse one having read steps L_b..t):
//   (BD1) layer k > 0 reads [h^f_t | h^r_t] (2 Hidden) of layer k - 1, both directions (PyTorch)
//   (BD2) the reverse cell runs forward on the reversed sequence xr_t = x_{L_b + 1 - t} (t <= L_b; each
//         sequence reversed within its length), so that it starts at each sequence's last real step
//   (BD3) output::sequence: y_t = merge(h^f_t, h^r_t) for t <= L_b, 0 after; merge is Keras's: concat, sum,
//         mul (elementwise product) or ave (the mean of the two)
//   (BD4) output::last: y = merge(h^f_{L_b}, h^r_1), the forward direction's last real step and the reverse
//         direction's final state (PyTorch's h_n[-2], h_n[-1])
// and backward, with dy split by the merge:
//   (BD5) concat: dh^f_t = dy_t[:H], dh^r_t = dy_t[H:]; sum: both dy_t; ave: both dy_t / 2;
//         mul: dh^f_t = dy_t * h^r_t, dh^r_t = dy_t * h^f_t
//   (BD6) dx_t = dx^f_t + dxr_{L_b + 1 - t}: the reverse cell's input gradient put back in order, and for k > 0
//         this is the dy of layer k - 1's two directions, split as for concat
// The two cells of a layer are independent, so they run at once, one on each of two threads (threads.hpp; a
// pass inside that pass runs on its thread), with the same bits on any number of threads. With lengths, the cells
// run the sequences sorted by decreasing length (layers/length_order.hpp, (M7)).
// final_state() is (2 Layers, B, Hidden) each, in PyTorch's order: l0 forward, l0 reverse, l1 forward, ...
// Parameters are "l<k>.w_x" (forward) and "l<k>_reverse.w_x" (reverse); PyTorch names map one to one
// (weight_ih_l<k>_reverse, ...). Initial states are zeros.
#ifndef XRNN_LAYERS_BIDIRECTIONAL_HPP
#define XRNN_LAYERS_BIDIRECTIONAL_HPP

#include <algorithm>
#include <array>
#include <cstddef>
#include <string>
#include <type_traits>
#include <vector>

#include <xtensor/xtensor.hpp>

#include <xrnn/config.hpp>
#include <xrnn/layers/gru.hpp>
#include <xrnn/layers/length_order.hpp>
#include <xrnn/layers/lstm.hpp>
#include <xrnn/layers/recurrent_stack.hpp>
#include <xrnn/layers/rnn.hpp>
#include <xrnn/threads.hpp>

namespace xrnn
{
    /// How a bidirectional layer merges its two directions' outputs (Keras's merge_mode).
    enum class merge_mode
    {
        concat,
        sum,
        mul,
        ave
    };

    template <class FirstCell, class UpperCell, std::size_t Layers, output Out, merge_mode Merge>
    class bidirectional_stack
    {
        static_assert(Layers >= 1, "xrnn: a recurrent layer needs num_layers >= 1");
        static_assert(UpperCell::input_size == 2 * FirstCell::hidden_size,
                      "xrnn: a stacked bidirectional layer reads both directions of the layer below (2 Hidden)");
        static constexpr std::size_t upper_count = Layers - 1;
        static constexpr std::size_t H = FirstCell::hidden_size;

    public:
        using value_type = typename FirstCell::value_type;
        using T = value_type;
        static constexpr std::size_t input_size = FirstCell::input_size;
        static constexpr std::size_t hidden_size = H;
        static constexpr std::size_t output_size = Merge == merge_mode::concat ? 2 * H : H;
        static constexpr std::size_t num_layers = Layers;
        static constexpr bool has_cell_state = FirstCell::has_cell_state;
        static constexpr output output_kind = Out;
        static constexpr merge_mode merge = Merge;
        static constexpr bool reads_sequence = true;
        static constexpr bool reads_token_ids = false;
        static constexpr bool needs_whole_sequence = true;  // the reverse direction starts at the end (predictor)
        using input_type = xt::xtensor<T, 3>;
        using output_type = std::conditional_t<Out == output::last, xt::xtensor<T, 2>, xt::xtensor<T, 3>>;
        using state_type = basic_state<xt::xtensor<T, 3>, has_cell_state>;  // (2 Layers, B, H) each

        explicit bidirectional_stack(random_engine& rng, const recurrent_options& options = {})
            : bidirectional_stack(rng, options, std::make_index_sequence<2 * upper_count>{})
        {
        }

        /// For inference only, reading owner's parameters (no copy), with buffers of its own (predictors).
        bidirectional_stack(shared_weights_t, const bidirectional_stack& owner)
            : bidirectional_stack(owner, std::make_index_sequence<2 * upper_count>{})
        {
        }

        const output_type& forward(const input_type& x, mode m = mode::inference)
        {
            return run_forward(x, m);
        }

        const output_type& forward(const input_type& x, const std::vector<std::size_t>& lengths,
                                   mode m = mode::inference)
        {
            set_lengths(lengths.data(), lengths.size());
            return run_forward(x, m);
        }

        /// The lengths of the sequences of the following forward(x) calls (count values; nullptr: all steps).
        void set_lengths(const std::size_t* lengths, std::size_t count)
        {
            m_lengths.set(lengths, count);
        }

        const state_type& final_state() const noexcept
        {
            return m_order.active() ? m_caller_final : m_final;
        }

        /// BPTT of both directions of every layer; accumulates the gradients and returns dx (S, B, In).
        const xt::xtensor<T, 3>& backward(const output_type& dy);

        template <class F>
        void for_each_parameter(F&& f)
        {
            for (std::size_t k = 0; k < Layers; ++k)
            {
                for (std::size_t d = 0; d < 2; ++d)
                {
                    visit_cell(k, d, [&](auto& cell) {
                        cell.for_each_parameter([&](const char* tensor, auto& value, auto& grad) {
                            f("l" + std::to_string(k) + (d == 1 ? "_reverse." : ".") + tensor, value, grad);
                        });
                    });
                }
            }
        }

        template <class F>
        void for_each_random_engine(F&& f)
        {
            for (std::size_t k = 0; k < Layers; ++k)
            {
                for (std::size_t d = 0; d < 2; ++d)
                {
                    visit_cell(k, d, [&](auto& cell) {
                        cell.for_each_random_engine([&](const std::string& engine, random_engine& e) {
                            f("l" + std::to_string(k) + (d == 1 ? "_reverse." : ".") + engine, e);
                        });
                    });
                }
            }
        }

        /// The cell of layer K, direction D (0 forward, 1 reverse).
        template <std::size_t K, std::size_t D>
        auto& layer() noexcept
        {
            static_assert(K < Layers && D < 2, "xrnn: layer index out of range");
            if constexpr (K == 0)
            {
                return m_first[D];
            }
            else
            {
                return m_upper[2 * (K - 1) + D];
            }
        }

        static const char* name() noexcept
        {
            return FirstCell::layer_name;
        }

        /// "bidirectional_lstm<float32,128,64,layers=1,last,concat>".
        static std::string signature()
        {
            static const char* merges[] = {"concat", "sum", "mul", "ave"};
            return std::string("bidirectional_") + name() + "<" + scalar_name<T>()
                   + detail::join_sizes({input_size, hidden_size}) + ",layers=" + std::to_string(Layers) + ","
                   + (Out == output::last ? "last" : "sequence") + "," + merges[static_cast<int>(Merge)]
                   + FirstCell::signature_options() + ">";
        }

        /// PyTorch: weight_ih_l<k> and weight_ih_l<k>_reverse, ...; Keras: forward_<prefix>..., backward_<prefix>...
        void export_tensors(weight_convention c, const std::string& prefix, std::vector<external_tensor<T>>& out)
        {
            for_each_cell_names(c, prefix, [&](auto& cell, const detail::cell_tensor_names& n) {
                detail::export_cell_tensors(cell, c, n, out);
            });
        }

        void import_tensors(weight_convention c, const std::string& prefix, const external_lookup<T>& get)
        {
            for_each_cell_names(c, prefix, [&](auto& cell, const detail::cell_tensor_names& n) {
                detail::import_cell_tensors(cell, c, n, get);
            });
        }

        std::size_t workspace_bytes() const noexcept
        {
            std::size_t bytes = 0;
            for (const auto& cell : m_first)
            {
                bytes += cell.workspace_bytes();
            }
            for (const auto& cell : m_upper)
            {
                bytes += cell.workspace_bytes();
            }
            std::size_t values = m_output.size() + m_final.h.size() + m_dx.size() + m_dy_forward.size()
                                 + m_dy_reverse.size() + m_sorted_x.size() + m_sorted_output.size()
                                 + m_sorted_dy.size() + m_caller_final.h.size() + m_caller_dx.size();
            for (const auto& buffer : m_reversed)
            {
                values += buffer.size();
            }
            for (const auto& buffer : m_between)
            {
                values += buffer.size();
            }
            if constexpr (has_cell_state)
            {
                values += m_final.c.size() + m_caller_final.c.size();
            }
            return bytes + values * sizeof(T);
        }

    private:
        template <std::size_t... K>
        bidirectional_stack(random_engine& rng, const recurrent_options& options, std::index_sequence<K...>)
            : m_first{{FirstCell(rng, options), FirstCell(rng, options)}}
            , m_upper{{(static_cast<void>(K), UpperCell(rng, options))...}}  // braces: drawn in order
        {
        }

        template <class F>
        void visit_cell(std::size_t k, std::size_t d, F&& f)
        {
            if (k == 0)
            {
                f(m_first[d]);
            }
            else if (2 * (k - 1) + d < m_upper.size())
            {
                f(m_upper[2 * (k - 1) + d]);
            }
        }

        template <class F>
        void for_each_cell_names(weight_convention c, const std::string& prefix, F&& f)
        {
            for (std::size_t k = 0; k < Layers; ++k)
            {
                for (std::size_t d = 0; d < 2; ++d)
                {
                    const std::string suffix = "l" + std::to_string(k) + (d == 1 ? "_reverse" : "");
                    std::string keras = (d == 1 ? "backward_" : "forward_") + prefix;
                    keras += k == 0 ? "" : "_" + std::to_string(k);
                    visit_cell(k, d, [&](auto& cell) {
                        f(cell, detail::cell_names(c, c == weight_convention::torch ? prefix : keras, suffix));
                    });
                }
            }
        }

        template <std::size_t... K>
        bidirectional_stack(const bidirectional_stack& owner, std::index_sequence<K...>)
            : m_first{{FirstCell(shared_weights, owner.m_first[0]), FirstCell(shared_weights, owner.m_first[1])}}
            , m_upper{{UpperCell(shared_weights, owner.m_upper[K])...}}
        {
        }

        // the length of row b as the cells run it (sorted, M7)
        std::size_t length(std::size_t b) const noexcept
        {
            return !m_lengths.given() ? m_steps : m_order.active() ? m_order.lengths()[b] : m_lengths[b];
        }

        /// (BD2) to[t, b] = from[L_b - 1 - t, b] for t < L_b (0-based), from[t, b] after; width values a row.
        void reverse_rows(const T* from, T* to, std::size_t width, bool add = false) const
        {
            const std::size_t B = m_batch;
            for (std::size_t b = 0; b < B; ++b)
            {
                const std::size_t n = length(b);
                for (std::size_t t = 0; t < m_steps; ++t)
                {
                    const T* src = from + ((t < n ? n - 1 - t : t) * B + b) * width;
                    T* dst = to + (t * B + b) * width;
                    for (std::size_t j = 0; j < width; ++j)
                    {
                        dst[j] = add ? dst[j] + src[j] : src[j];
                    }
                }
            }
        }

        const output_type& run_forward(const input_type& x, mode m);

        // layer k's buffers (k < Layers; clamped so that compilers see no index past the end)
        xt::xtensor<T, 3>& reversed(std::size_t k) noexcept
        {
            return m_reversed[std::min(k, Layers - 1)];
        }
        xt::xtensor<T, 3>& between(std::size_t k) noexcept
        {
            return m_between[std::min(k, Layers - 1)];
        }

        /// f(cell_forward, cell_reverse) of layer k, on two threads.
        template <class F>
        void both_directions(std::size_t k, F&& f)
        {
            detail::parallel_for(2, [&](std::size_t d) { visit_cell(k, d, [&](auto& cell) { f(cell, d); }); });
        }

        std::array<FirstCell, 2> m_first;
        std::array<UpperCell, 2 * upper_count> m_upper;
        std::size_t m_steps = 0;
        std::size_t m_batch = 0;
        detail::given_lengths m_lengths;  // set_lengths
        std::array<xt::xtensor<T, 3>, Layers> m_reversed;     // each layer's input, reversed (BD2)
        std::array<xt::xtensor<T, 3>, Layers> m_between;  // (S, B, 2H) [h^f | h^r] of layers 0 .. L-2 (BD1)
        output_type m_output;
        state_type m_final;              // in the order the cells run the rows (M7)
        detail::length_order m_order;    // (M7) of the last forward; when active, the buffers below
        xt::xtensor<T, 3> m_sorted_x;    // (S, B, In) x in m_order
        output_type m_sorted_output;     // the output in m_order
        output_type m_sorted_dy;         // dy in m_order
        state_type m_caller_final;       // m_final in the caller's order
        xt::xtensor<T, 3> m_caller_dx;   // m_dx in the caller's order
        xt::xtensor<T, 3> m_dy_forward;  // (S, B, H) dy of the forward cell of the current layer (BD5)
        xt::xtensor<T, 3> m_dy_reverse;  // (S, B, H) dy of the reverse cell, in its (reversed) order
        xt::xtensor<T, 2> m_dh_last[2];  // (B, H) output::last: dy of each direction's final state
        xt::xtensor<T, 3> m_dx;          // (S, B, In) the layer's input gradient (BD6)
        xt::xtensor<T, 3> m_dx_between;  // (S, B, 2H) an upper layer's input gradient
    };

    template <class T, std::size_t In, std::size_t Hidden, std::size_t Layers = 1, output Out = output::last,
              merge_mode M = merge_mode::concat, class Precision = precision::native>
    using bilstm = bidirectional_stack<lstm_cell<T, In, Hidden, Precision>, lstm_cell<T, 2 * Hidden, Hidden, Precision>,
                                       Layers, Out, M>;

    template <class T, std::size_t In, std::size_t Hidden, std::size_t Layers = 1, output Out = output::last,
              merge_mode M = merge_mode::concat, class Precision = precision::native>
    using bigru = bidirectional_stack<gru_cell<T, In, Hidden, Precision>, gru_cell<T, 2 * Hidden, Hidden, Precision>,
                                      Layers, Out, M>;

    template <class T, std::size_t In, std::size_t Hidden, std::size_t Layers = 1, output Out = output::last,
              merge_mode M = merge_mode::concat, nonlinearity Act = nonlinearity::tanh,
              class Precision = precision::native>
    using birnn = bidirectional_stack<rnn_cell<T, In, Hidden, Act, Precision>,
                                      rnn_cell<T, 2 * Hidden, Hidden, Act, Precision>, Layers, Out, M>;
}  // namespace xrnn

#include <xrnn/layers/bidirectional_steps.hpp>

#endif
