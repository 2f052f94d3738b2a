// xtensor-rnn: a recurrent layer that runs a stack of cells over a sequence (PyTorch's num_layers).
//
// Layer 0 maps the input (S, B, I) to (S, B, H); each layer above reads the sequence of the one below.
// Forward runs the layers bottom to top, backward top to bottom (reverse order of forward), each layer
// running its own BPTT (recurrent_backward.hpp). The output is the top layer's h_1..h_S (output::sequence) or
// its h_S (output::last). Initial states may be passed and final states read back, so a long stream can be
// fed in chunks (stateful use); the gradient of the initial states is kept after backward. An upper layer reads
// the hidden sequence of the layer below in place (no copy is kept for its backward).
//
// Variable lengths: forward(x, lengths) runs sequence b for its first lengths[b] steps only, on every stacked
// layer (PyTorch's pack_padded_sequence; recurrent_masking.hpp, (M1)-(M4)):
//   (M5) output::sequence is 0 at the steps past a sequence's length, and their dy is ignored
//   (M6) output::last and final_state() are each sequence's state at its own last step
// and the cells run the sequences sorted by decreasing length (layers/length_order.hpp, (M7)), so that a step
// costs the rows still alive at it.
// set_lengths() gives the lengths of the next forward(x) calls instead (what a model does, model/chain.hpp).
#ifndef XRNN_LAYERS_RECURRENT_STACK_HPP
#define XRNN_LAYERS_RECURRENT_STACK_HPP

#include <array>
#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <xtensor/xtensor.hpp>

#include <xrnn/config.hpp>
#include <xrnn/layers/external_tensors.hpp>
#include <xrnn/layers/layer_traits.hpp>
#include <xrnn/layers/length_order.hpp>
#include <xrnn/layers/recurrent_cell.hpp>

namespace xrnn
{
    /// What a recurrent layer returns: the top layer's last hidden state (B, H) or all of them (S, B, H).
    enum class output
    {
        last,
        sequence
    };

    /// A stack of Layers recurrent layers: FirstCell reads the input, Layers - 1 UpperCells read hidden states.
    template <class FirstCell, class UpperCell, std::size_t Layers, output Out>
    class recurrent_stack
    {
        static constexpr std::size_t upper_count = Layers > 0 ? Layers - 1 : 0;  // keeps Layers = 0 to one message

        static_assert(Layers >= 1, "xrnn: a recurrent layer needs num_layers >= 1");
        static_assert(UpperCell::input_size == FirstCell::hidden_size,
                      "xrnn: stacked cells must read the hidden state of the cell below");

    public:
        using value_type = typename FirstCell::value_type;
        using T = value_type;
        static constexpr std::size_t input_size = FirstCell::input_size;
        static constexpr std::size_t hidden_size = FirstCell::hidden_size;
        static constexpr std::size_t output_size = hidden_size;
        static constexpr std::size_t num_layers = Layers;
        static constexpr bool has_cell_state = FirstCell::has_cell_state;
        static constexpr output output_kind = Out;
        static constexpr bool reads_sequence = true;  // traits: layers/layer_traits.hpp
        static constexpr bool reads_token_ids = false;
        using first_cell_type = FirstCell;
        using upper_cell_type = UpperCell;
        using input_type = xt::xtensor<T, 3>;                                         // (S, B, I)
        using output_type = std::conditional_t<Out == output::last, xt::xtensor<T, 2>,  // (B, H)
                                               xt::xtensor<T, 3>>;                    // (S, B, H)
        using state_type = basic_state<xt::xtensor<T, 3>, has_cell_state>;             // (Layers, B, H) each

        explicit recurrent_stack(random_engine& rng, const recurrent_options& options = {})
            : recurrent_stack(rng, options, std::make_index_sequence<upper_count>{})
        {
        }

        /// For inference only, reading owner's parameters (no copy), with buffers of its own (predictors).
        recurrent_stack(shared_weights_t, const recurrent_stack& owner)
            : recurrent_stack(owner, std::make_index_sequence<upper_count>{})
        {
        }

        /// x (S, B, I) from zero initial states.
        const output_type& forward(const input_type& x, mode m = mode::inference)
        {
            return run_forward(x, nullptr, m);
        }

        /// x (S, B, I) from the given initial states, (Layers, B, H) each.
        const output_type& forward(const input_type& x, const state_type& initial, mode m = mode::inference)
        {
            return run_forward(x, &initial, m);
        }

        /// x (S, B, I) of sequences of lengths[b] steps each (1 <= lengths[b] <= S), from zero or given states.
        const output_type& forward(const input_type& x, const std::vector<std::size_t>& lengths,
                                   mode m = mode::inference)
        {
            set_lengths(lengths.data(), lengths.size());
            return run_forward(x, nullptr, m);
        }

        const output_type& forward(const input_type& x, const state_type& initial,
                                   const std::vector<std::size_t>& lengths, mode m = mode::inference)
        {
            set_lengths(lengths.data(), lengths.size());
            return run_forward(x, &initial, m);
        }

        /// The lengths of the sequences of the following forward(x) calls (count values; nullptr: all steps).
        void set_lengths(const std::size_t* lengths, std::size_t count)
        {
            m_lengths.set(lengths, count);
        }

        /// States after the last step of the last forward, (Layers, B, H) each.
        const state_type& final_state() const noexcept
        {
            return m_final;
        }

        /// BPTT through all layers for the last training forward; accumulates the gradients of every layer
        /// and returns dx (S, B, I).
        const xt::xtensor<T, 3>& backward(const output_type& dy)
        {
            const std::size_t S = m_first.steps();
            const std::size_t B = m_first.batch();
            if (S == 0)
            {
                throw state_error(std::string(name()) + "::backward: call forward(x, mode::training) before backward");
            }
            if constexpr (Out == output::last)
            {
                detail::check_shape(name(), "dy", dy.shape(), {B, hidden_size});
            }
            else
            {
                detail::check_shape(name(), "dy", dy.shape(), {S, B, hidden_size});
            }
            const bool sorted = m_order.active();
            const T* top_dy = dy.data();
            if (sorted)  // (M7)
            {
                detail::ensure_shape(m_sorted_dy, dy.shape());
                m_order.gather(dy.data(), m_sorted_dy.data(), Out == output::last ? 1 : S, hidden_size);
                top_dy = m_sorted_dy.data();
            }
            for (std::size_t k = Layers; k-- > 0;)
            {
                // an upper layer's input: the hidden sequence of the layer below; the first's when sorted (M7)
                const T* input = k == 0 && sorted ? m_sorted_x.data() : nullptr;
                if (k > 0)
                {
                    visit_layer(k - 1, [&](auto& below) { input = below.hidden_sequence(); });
                }
                visit_layer(k, [&](auto& cell) {
                    if (k + 1 == Layers)
                    {
                        cell.backward_sequence(Out == output::sequence ? top_dy : nullptr,
                                               Out == output::last ? top_dy : nullptr, nullptr, input);
                    }
                    else
                    {
                        visit_layer(k + 1, [&](auto& above) {
                            cell.backward_sequence(above.input_gradient().data(), nullptr, nullptr, input);
                        });
                    }
                    copy_layer_state(cell.initial_hidden_gradient(), m_initial_gradient.h, k, B);
                    if constexpr (has_cell_state)
                    {
                        copy_layer_state(cell.initial_cell_gradient(), m_initial_gradient.c, k, B);
                    }
                });
            }
            if (!sorted)
            {
                return m_first.input_gradient();
            }
            detail::ensure_shape(m_dx, {S, B, input_size});
            m_order.scatter(m_first.input_gradient().data(), m_dx.data(), S, input_size);
            return m_dx;
        }

        /// Gradient of the initial states of the last backward, (Layers, B, H) each.
        const state_type& initial_state_gradient() const noexcept
        {
            return m_initial_gradient;
        }

        /// The cell of stacked layer K (0 = the one reading the input), with its parameters p and gradients dp.
        template <std::size_t K>
        auto& layer() noexcept
        {
            static_assert(K < Layers, "xrnn: layer index out of range");
            if constexpr (K == 0)
            {
                return m_first;
            }
            else
            {
                return m_upper[K - 1];
            }
        }

        /// Calls f("l<k>.<name>", value, gradient) for every parameter tensor of every stacked layer.
        template <class F>
        void for_each_parameter(F&& f)
        {
            for (std::size_t k = 0; k < Layers; ++k)
            {
                visit_layer(k, [&](auto& cell) {
                    cell.for_each_parameter([&](const char* tensor, auto& value, auto& grad) {
                        f("l" + std::to_string(k) + "." + tensor, value, grad);
                    });
                });
            }
        }

        /// Bytes held by the buffers of every stacked layer and of this stack (caches, workspaces, results; not
        /// the parameters). After a training forward and backward of S steps and batch B, with no dropout, this
        /// is the sum of what recurrent_cell.hpp ("Memory") lists per layer plus the output and the (Layers, B, H)
        /// states here.
        std::size_t workspace_bytes() const noexcept
        {
            std::size_t bytes = m_first.workspace_bytes();
            for (const auto& cell : m_upper)
            {
                bytes += cell.workspace_bytes();
            }
            std::size_t values = m_output.size() + m_final.h.size() + m_initial_gradient.h.size() + m_sorted_x.size()
                                 + m_sorted_initial.h.size() + m_sorted_dy.size() + m_dx.size();
            if constexpr (has_cell_state)
            {
                values += m_final.c.size() + m_initial_gradient.c.size() + m_sorted_initial.c.size();
            }
            return bytes + values * sizeof(T) + m_order.bytes();
        }

        /// "lstm", "rnn", "gru": the cell's layer_name.
        static const char* name() noexcept
        {
            return FirstCell::layer_name;
        }

        /// "lstm<float32,128,64,layers=2,last>"; an Elman layer adds its nonlinearity (",tanh").
        static std::string signature()
        {
            return std::string(name()) + "<" + scalar_name<T>() + detail::join_sizes({input_size, hidden_size})
                   + ",layers=" + std::to_string(Layers) + "," + (Out == output::last ? "last" : "sequence")
                   + FirstCell::signature_options() + ">";
        }

        /// Its tensors as PyTorch (weight_ih_l<k>, ...) or Keras (prefix, prefix_1, ...) have them
        /// (layers/external_tensors.hpp).
        void export_tensors(weight_convention c, const std::string& prefix, std::vector<external_tensor<T>>& out)
        {
            for (std::size_t k = 0; k < Layers; ++k)
            {
                visit_layer(k, [&](auto& cell) {
                    detail::export_cell_tensors(cell, c, external_names(c, prefix, k), out);
                });
            }
        }

        void import_tensors(weight_convention c, const std::string& prefix, const external_lookup<T>& get)
        {
            for (std::size_t k = 0; k < Layers; ++k)
            {
                visit_layer(k, [&](auto& cell) {
                    detail::import_cell_tensors(cell, c, external_names(c, prefix, k), get);
                });
            }
        }

        /// f("l<k>.mask", engine) for the dropout-mask engine of every stacked layer.
        template <class F>
        void for_each_random_engine(F&& f)
        {
            for (std::size_t k = 0; k < Layers; ++k)
            {
                visit_layer(k, [&](auto& cell) {
                    cell.for_each_random_engine([&](const std::string& engine, random_engine& e) {
                        f("l" + std::to_string(k) + "." + engine, e);
                    });
                });
            }
        }

    private:
        static detail::cell_tensor_names external_names(weight_convention c, const std::string& prefix, std::size_t k)
        {
            const std::string keras_prefix = k == 0 ? prefix : prefix + "_" + std::to_string(k);
            return detail::cell_names(c, c == weight_convention::torch ? prefix : keras_prefix,
                                      "l" + std::to_string(k));
        }

        template <std::size_t... K>
        recurrent_stack(random_engine& rng, const recurrent_options& options, std::index_sequence<K...>)
            : m_first(rng, options)
            , m_upper{{(static_cast<void>(K), UpperCell(rng, options))...}}  // braces: drawn in layer order
        {
        }

        template <std::size_t... K>
        recurrent_stack(const recurrent_stack& owner, std::index_sequence<K...>)
            : m_first(shared_weights, owner.m_first)
            , m_upper{{UpperCell(shared_weights, owner.m_upper[K])...}}
        {
        }

        template <class F>
        void visit_layer(std::size_t k, F&& f)
        {
            if (k == 0)
            {
                f(m_first);
            }
            else if (k - 1 < m_upper.size())  // always true for k < Layers; stated so compilers can see it
            {
                f(m_upper[k - 1]);
            }
        }

        const output_type& run_forward(const input_type& x, const state_type* initial, mode m)
        {
            const std::size_t S = x.shape()[0];
            const std::size_t B = x.shape()[1];
            if (S == 0 || B == 0 || x.shape()[2] != input_size)
            {
                throw shape_error(std::string(name()) + "::forward: x expected shape (S, B, " + std::to_string(input_size)
                                  + ") with S, B >= 1 but got " + detail::shape_to_string(x.shape()));
            }
            // checked here, in the caller's order (the cells see them sorted, M7)
            const std::size_t* lengths = m_lengths.check([] { return std::string(name()) + "::forward"; }, B, S);
            if (initial != nullptr)
            {
                detail::check_shape(name(), "initial h", initial->h.shape(), {Layers, B, hidden_size});
                if constexpr (has_cell_state)
                {
                    detail::check_shape(name(), "initial c", initial->c.shape(), {Layers, B, hidden_size});
                }
            }
            const std::size_t H = hidden_size;
            const T* input = x.data();
            const bool sorted = m_order.arrange(lengths, B);
            if (sorted)  // (M7); initial is read here, before m_final (which it may alias) is written
            {
                lengths = m_order.lengths();
                detail::ensure_shape(m_sorted_x, {S, B, input_size});
                m_order.gather(x.data(), m_sorted_x.data(), S, input_size);
                input = m_sorted_x.data();
                if (initial != nullptr)
                {
                    detail::ensure_shape(m_sorted_initial.h, {Layers, B, H});
                    sort_layer_states(initial->h, m_sorted_initial.h);
                    if constexpr (has_cell_state)
                    {
                        detail::ensure_shape(m_sorted_initial.c, {Layers, B, H});
                        sort_layer_states(initial->c, m_sorted_initial.c);
                    }
                    initial = &m_sorted_initial;
                }
            }
            detail::ensure_shape(m_final.h, {Layers, B, H});
            detail::ensure_shape(m_initial_gradient.h, {Layers, B, H});
            if constexpr (has_cell_state)
            {
                detail::ensure_shape(m_final.c, {Layers, B, H});
                detail::ensure_shape(m_initial_gradient.c, {Layers, B, H});
            }
            for (std::size_t k = 0; k < Layers; ++k)
            {
                visit_layer(k, [&](auto& cell) {
                    const T* h0 = initial != nullptr ? initial->h.data() + k * B * H : nullptr;
                    const T* c0 = nullptr;
                    if constexpr (has_cell_state)
                    {
                        c0 = initial != nullptr ? initial->c.data() + k * B * H : nullptr;
                    }
                    cell.forward_sequence(input, S, B, h0, c0, m, /* input_persists = */ k > 0 || sorted, lengths);
                    input = cell.hidden_sequence();
                    // copied now (in the caller's order, M7): `initial` may alias m_final (feeding final_state()
                    // back in), read above
                    copy_layer_state(cell.final_hidden(), m_final.h, k, B);
                    if constexpr (has_cell_state)
                    {
                        copy_layer_state(cell.final_cell(), m_final.c, k, B);
                    }
                });
            }
            if constexpr (Out == output::last)
            {
                detail::ensure_shape(m_output, {B, H});
                std::copy(m_final.h.data() + (Layers - 1) * B * H, m_final.h.data() + Layers * B * H, m_output.data());
            }
            else
            {
                detail::ensure_shape(m_output, {S, B, H});
                visit_layer(Layers - 1, [&](auto& top) {
                    if (sorted)
                    {
                        m_order.scatter(top.hidden_sequence(), m_output.data(), S, H);
                    }
                    else
                    {
                        std::copy(top.hidden_sequence(), top.hidden_sequence() + S * B * H, m_output.data());
                    }
                });
                for (std::size_t b = 0; m_lengths.given() && b < B; ++b)  // (M5)
                {
                    for (std::size_t t = m_lengths[b]; t < S; ++t)
                    {
                        std::fill(m_output.data() + (t * B + b) * H, m_output.data() + (t * B + b + 1) * H, T(0));
                    }
                }
            }
            return m_output;
        }

        // Layer k's (B, H) state into (Layers, B, H); sorted (M7), back in the caller's order.
        void copy_layer_state(const T* from, xt::xtensor<T, 3>& to, std::size_t k, std::size_t batch) const
        {
            T* layer = to.data() + k * batch * hidden_size;
            if (m_order.active())
            {
                m_order.scatter(from, layer, 1, hidden_size);
            }
            else
            {
                std::copy(from, from + batch * hidden_size, layer);
            }
        }

        // (M7) states (Layers, B, H) in the caller's order into the sorted order
        void sort_layer_states(const xt::xtensor<T, 3>& from, xt::xtensor<T, 3>& to) const
        {
            const std::size_t block = from.shape()[1] * hidden_size;
            for (std::size_t k = 0; k < Layers; ++k)
            {
                m_order.gather(from.data() + k * block, to.data() + k * block, 1, hidden_size);
            }
        }

        FirstCell m_first;
        std::array<UpperCell, upper_count> m_upper;
        output_type m_output;
        state_type m_final;
        state_type m_initial_gradient;
        detail::given_lengths m_lengths;  // set_lengths
        detail::length_order m_order;   // (M7) of the last forward
        xt::xtensor<T, 3> m_sorted_x;   // (S, B, I) x in m_order, read in place by the first cell (M7)
        state_type m_sorted_initial;    // the initial states in m_order
        output_type m_sorted_dy;        // dy in m_order
        xt::xtensor<T, 3> m_dx;         // (S, B, I) dx back in the caller's order
    };
}  // namespace xrnn

#endif
