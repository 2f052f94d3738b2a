// xtensor-rnn: the layer chain of a model: layers composed at compile time, run forward in order and backward in
// reverse order, with their parameters, random engines and a summary.
//
//   xrnn::layer_chain<embedding<float, 100, 8>, lstm<float, 8, 16>, dense<float, 16, 1>> chain(rng);
//   const auto& logits = chain.forward(ids, xrnn::mode::training);   // (B, 1)
//   chain.backward(dlogits);                                         // every layer's gradient accumulates
//
// The chain is itself a layer (forward, backward, for_each_parameter with names "<k>.<name>",
// for_each_random_engine), so zero_grad, clip_grad_norm, the optimizers, weight files and checkpoints work on it.
// Neighbouring layers are checked at compile time: the same scalar type, and the output size of each sized layer
// equal to the input size of the next sized one (activations and dropout keep the size of what they get).
// sequential (model.hpp) is a layer chain with compile, fit, evaluate and predict.
#ifndef XRNN_MODEL_CHAIN_HPP
#define XRNN_MODEL_CHAIN_HPP

#include <cstddef>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <xtensor/xtensor.hpp>

#include <xrnn/config.hpp>
#include <xrnn/connect.hpp>
#include <xrnn/layers/layer_traits.hpp>
#include <xrnn/random.hpp>

namespace xrnn
{
    namespace detail
    {
        /// Layers with sizes (everything but activations and dropout, which keep the size of what they get).
        template <class Layer, class = void>
        struct has_sizes : std::false_type
        {
        };
        template <class Layer>
        struct has_sizes<Layer, std::void_t<decltype(Layer::input_size), decltype(Layer::output_size)>> : std::true_type
        {
        };

        /// Checks every sized layer against the nearest sized layer below it (size-keeping layers in between).
        template <class Below, class... Rest>
        struct check_chain
        {
            static constexpr bool value = true;
        };
        template <class Below, class Next, class... Rest>
        struct check_chain<Below, Next, Rest...>
        {
            static constexpr bool check() noexcept
            {
                static_assert(std::is_same<typename Below::value_type, typename Next::value_type>::value,
                              "xrnn: neighbouring layers must use the same scalar type T");
                if constexpr (has_sizes<Next>::value)
                {
                    assert_connectable<Below, Next>();
                    return check_chain<Next, Rest...>::value;
                }
                else
                {
                    return check_chain<Below, Rest...>::value;
                }
            }
            static constexpr bool value = check();
        };

        /// Layer::output_size, or `below` for a layer that keeps the size of its input.
        template <class Layer>
        constexpr std::size_t output_size_after(std::size_t below) noexcept
        {
            if constexpr (has_sizes<Layer>::value)
            {
                return Layer::output_size;
            }
            else
            {
                return below;
            }
        }

        template <class... Layers>
        constexpr std::size_t chain_output_size() noexcept
        {
            std::size_t size = 0;
            ((size = output_size_after<Layers>(size)), ...);
            return size;
        }

        /// Layers that run sequences of lengths given before their forward (recurrent layers: set_lengths).
        template <class Layer, class = void>
        struct takes_lengths : std::false_type
        {
        };
        template <class Layer>
        struct takes_lengths<Layer, std::void_t<decltype(std::declval<Layer&>().set_lengths(
                                        std::declval<const std::size_t*>(), std::size_t(0)))>> : std::true_type
        {
        };

        /// Layers that find the lengths in their input (an embedding with mask_zero: sequence_lengths()).
        template <class Layer, class = void>
        struct gives_lengths : std::false_type
        {
        };
        template <class Layer>
        struct gives_lengths<Layer, std::void_t<decltype(std::declval<const Layer&>().sequence_lengths())>>
            : std::true_type
        {
        };

        template <class Layer>
        Layer make_layer(random_engine& rng)
        {
            if constexpr (std::is_constructible<Layer, random_engine&>::value)
            {
                return Layer(rng);
            }
            else
            {
                static_assert(std::is_default_constructible<Layer>::value,
                              "xrnn::sequential(rng): this layer needs arguments (e.g. dropout's rate); build the "
                              "model from layer objects instead: sequential{layer_a(rng), dropout<T>(0.2, rng), ...}");
                return Layer();
            }
        }

        /// A layer reading owner's parameters, for a predictor (layers/layer_traits.hpp).
        template <class Layer>
        Layer shared_layer(const Layer& owner)
        {
            static_assert(has_shared_weights_constructor<Layer>(),
                          "xrnn::predictor: every layer needs `L(shared_weights_t, const L& owner)`, a layer for "
                          "inference that reads owner's parameters (layers/layer_traits.hpp)");
            return Layer(shared_weights, owner);
        }
    }  // namespace detail

    template <class... Layers>
    class layer_chain
    {
        static_assert(sizeof...(Layers) >= 1, "xrnn::sequential: a model needs at least one layer");
        static_assert((check_layer<Layers>() && ...), "xrnn::sequential: every layer needs the members of layer_traits.hpp");
        using layers_type = std::tuple<Layers...>;

    public:
        using first_layer = std::tuple_element_t<0, layers_type>;
        static_assert(detail::has_sizes<first_layer>::value,
                      "xrnn::sequential: the first layer must have an input size (embedding, rnn, lstm or dense)");
        static_assert(detail::check_chain<Layers...>::value, "xrnn::sequential: layers do not connect");

        using value_type = typename first_layer::value_type;
        using T = value_type;
        static constexpr std::size_t layer_count = sizeof...(Layers);
        static constexpr std::size_t input_size = first_layer::input_size;
        static constexpr std::size_t output_size = detail::chain_output_size<Layers...>();
        static constexpr bool sequence_input = first_layer::reads_sequence;

        /// Each layer built from the engine with its defaults (layers that need more, build yourself, see below).
        explicit layer_chain(random_engine& rng)
            : m_layers(detail::make_layer<Layers>(rng)...)
        {
        }

        /// From layers built with their options: {embedding<..>(rng), lstm<..>(rng, options), ...}.
        explicit layer_chain(Layers... layers)
            : m_layers(std::move(layers)...)
        {
        }

        /// Layers for inference that read owner's parameters where they are, with workspaces of their own: what a
        /// predictor runs (model/predictor.hpp). owner must outlive this chain.
        layer_chain(shared_weights_t, const layer_chain& owner)
            : layer_chain(owner, std::index_sequence_for<Layers...>{})
        {
        }

        template <std::size_t K>
        auto& layer() noexcept
        {
            return std::get<K>(m_layers);
        }

        template <std::size_t K>
        const auto& layer() const noexcept
        {
            return std::get<K>(m_layers);
        }

        /// "embedding<float32,10000,128>,lstm<float32,128,128,layers=1,last>,dense<float32,128,1>"
        static std::string layer_signatures()
        {
            std::string text;
            bool first = true;
            ((text += (first ? "" : ","), text += Layers::signature(), first = false), ...);
            return text;
        }

        /// Visits every parameter as f(name, value, gradient); names are "<layer index>.<layer's own name>".
        template <class F>
        void for_each_parameter(F&& f)
        {
            visit_layers([&](std::size_t k, auto& layer) {
                const std::string prefix = std::to_string(k) + ".";
                layer.for_each_parameter(
                    [&](const auto& name, auto& value, auto& grad) { f(prefix + name, value, grad); });
            });
        }

        /// Visits the random engine of every layer that draws dropout masks as f(name, engine); names are
        /// "<layer index>.<the layer's name>", e.g. "1.l0.mask" (checkpoints save and restore them).
        template <class F>
        void for_each_random_engine(F&& f)
        {
            visit_layers([&](std::size_t k, auto& layer) {
                const std::string prefix = std::to_string(k) + ".";
                xrnn::for_each_random_engine(layer,
                                             [&](const std::string& name, random_engine& engine) { f(prefix + name, engine); });
            });
        }

        std::size_t parameter_count()
        {
            std::size_t count = 0;
            for_each_parameter([&](const auto&, auto& value, auto&) { count += value.size(); });
            return count;
        }

        /// One line per layer with its parameter count, and the total (Keras's model.summary()).
        std::string summary()
        {
            std::ostringstream text;
            std::size_t total = 0;
            visit_layers([&](std::size_t k, auto& layer) {
                std::size_t count = 0;
                layer.for_each_parameter([&](const auto&, auto& value, auto&) { count += value.size(); });
                total += count;
                text << k << "  " << std::decay_t<decltype(layer)>::signature() << "  " << count
                     << " parameters\n";
            });
            text << "total " << total << " parameters (" << total * sizeof(T) << " bytes)\n";
            return text.str();
        }

        /// Forward through every layer; x is a time-major batch for sequence models, (B, F) otherwise. The
        /// recurrent layers run the lengths an embedding with mask_zero finds (layers/embedding.hpp), if any.
        template <class X>
        const auto& forward(const X& x, mode m = mode::inference)
        {
            m_lengths = nullptr;
            return forward_from<0>(x, m);
        }

        /// Forward of x (S, B, ...) with one length per sequence (1 <= lengths[b] <= S): every recurrent layer
        /// runs sequence b for its first lengths[b] steps (layers/recurrent_stack.hpp, (M1)-(M6)).
        template <class X>
        const auto& forward(const X& x, const std::vector<std::size_t>& lengths, mode m = mode::inference)
        {
            static_assert(sequence_input, "xrnn::sequential: lengths need a model that reads sequences");
            if (lengths.size() != x.shape()[1])
            {
                throw shape_error("sequential::forward: expected one length per sequence (" + std::to_string(x.shape()[1])
                                  + ") but got " + std::to_string(lengths.size()));
            }
            m_lengths = lengths.data();
            return forward_from<0>(x, m);
        }

        /// The lengths the recurrent layers ran in the last forward (given, or found by an embedding with
        /// mask_zero), one per sequence, or nullptr (all steps). Valid until the next forward.
        const std::size_t* sequence_lengths() const noexcept
        {
            return m_lengths;
        }

        /// Backward in reverse order of forward; accumulates every layer's gradients.
        template <class G>
        void backward(const G& dy)
        {
            backward_from<layer_count - 1>(dy);
        }

        // Batch types: ids (S, B) or features (S, B, F) keep the data's value type and rank.
        template <class XV, std::size_t XN>
        using batch_input_t = xt::xtensor<std::conditional_t<std::is_integral<XV>::value, XV, T>, XN>;

        // What forward() returns for such a batch. Self is a parameter so that the expression depends on one: with
        // the class itself, clang looks up forward() while the class is still incomplete and rejects it.
        template <class XV, std::size_t XN, class Self = layer_chain>
        using output_t = std::decay_t<decltype(std::declval<Self&>().forward(
            std::declval<const batch_input_t<XV, XN>&>(), mode::inference))>;

        // Outputs of rank 3 are (S, B, out): a target per step, gathered time-major too.
        template <class XV, std::size_t XN>
        static constexpr bool output_time_major = output_t<XV, XN>::rank == 3;

    private:
        template <std::size_t... K>
        layer_chain(const layer_chain& owner, std::index_sequence<K...>)
            : m_layers(detail::shared_layer(std::get<K>(owner.m_layers))...)
        {
        }

        template <class F>
        void visit_layers(F&& f)
        {
            visit_layers_from<0>(f);
        }

        template <std::size_t K, class F>
        void visit_layers_from(F& f)
        {
            f(K, std::get<K>(m_layers));
            if constexpr (K + 1 < layer_count)
            {
                visit_layers_from<K + 1>(f);
            }
        }

        template <std::size_t K, class X>
        const auto& forward_from(const X& x, mode m)
        {
            using layer_type = std::tuple_element_t<K, layers_type>;
            auto& layer = std::get<K>(m_layers);
            if constexpr (detail::takes_lengths<layer_type>::value)
            {
                layer.set_lengths(m_lengths, x.shape()[1]);
            }
            const auto& y = layer.forward(x, m);
            if constexpr (detail::gives_lengths<layer_type>::value)
            {
                if (const std::size_t* found = layer.sequence_lengths())  // an embedding without mask_zero: none
                {
                    m_lengths = found;
                }
            }
            if constexpr (K + 1 == layer_count)
            {
                return y;
            }
            else
            {
                return forward_from<K + 1>(y, m);
            }
        }

        template <std::size_t K, class G>
        void backward_from(const G& dy)
        {
            if constexpr (K == 0)
            {
                std::get<0>(m_layers).backward(dy);
            }
            else
            {
                backward_from<K - 1>(std::get<K>(m_layers).backward(dy));
            }
        }

        layers_type m_layers;
        const std::size_t* m_lengths = nullptr;  // of the sequences of the current forward, or nullptr
    };
}  // namespace xrnn

#endif
