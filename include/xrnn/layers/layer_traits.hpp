// xtensor-rnn: what every layer says about itself, as members of its own class.
//
// The model (sequential), weight files and checkpoints learn about a layer only through these members, so a new
// layer type is an additive change: nothing outside its own header lists it. Every layer L has
//   static const char* name() noexcept          "gru": the word its error messages and summaries start with
//   static std::string signature()              "gru<float32,128,128,layers=1,last>": type and compile-time
//                                               sizes, stored in weight files and checkpoints so that a file
//                                               of another model is refused with both signatures in the message
//   static constexpr bool reads_sequence        whether its input is a time-major sequence (S, B, ...), so that
//                                               a model gathers batches in that layout
//   static constexpr bool reads_token_ids       whether its input is integer ids (embedding)
//   void for_each_random_engine(F&& f)          f(name, random_engine&) for every engine it draws from while
//                                               training (dropout masks); checkpoints save and restore them
//   void for_each_parameter(F&& f)              f(name, value, gradient) for every parameter tensor
// check_layer<L>() fails to compile, naming the missing member, when one of them is absent.
//
// A layer that a predictor (model/predictor.hpp) can run also has
//   L(shared_weights_t, const L& owner)          a layer for inference only that reads owner's parameters (no
//                                               copy) and has a workspace of its own, so that threads can run
//                                               copies of one model at once; owner must outlive it
// which only predictors ask for (with a message naming it). A layer whose output needs each sequence's end (a
// bidirectional layer, pooling over time) says `static constexpr bool needs_whole_sequence = true`, so that a
// predictor refuses to stream it in chunks. A layer with `set_lengths(const std::size_t*, std::size_t)` is given
// the lengths of each batch's sequences before its forward (model/chain.hpp).
#ifndef XRNN_LAYERS_LAYER_TRAITS_HPP
#define XRNN_LAYERS_LAYER_TRAITS_HPP

#include <cstddef>
#include <initializer_list>
#include <string>
#include <type_traits>
#include <utility>

#include <xrnn/random.hpp>

namespace xrnn
{
    /// Tag of the constructors that make a layer reading another layer's parameters (see above).
    struct shared_weights_t
    {
        explicit constexpr shared_weights_t() = default;
    };
    inline constexpr shared_weights_t shared_weights{};

    /// "float32" or "float64", as signatures spell the scalar type.
    template <class T>
    constexpr const char* scalar_name() noexcept
    {
        static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value,
                      "xrnn: scalar type must be float or double");
        return std::is_same<T, float>::value ? "float32" : "float64";
    }

    namespace detail
    {
        /// ",a,b,c": the compile-time sizes of a signature.
        inline std::string join_sizes(std::initializer_list<std::size_t> sizes)
        {
            std::string text;
            for (std::size_t s : sizes)
            {
                text += "," + std::to_string(s);
            }
            return text;
        }

        /// A visitor of the right shape, to detect members that take one.
        struct engine_visitor_probe
        {
            void operator()(const std::string&, random_engine&) const
            {
            }
        };
        struct parameter_visitor_probe
        {
            template <class V, class G>
            void operator()(const std::string&, V&, G&) const
            {
            }
        };

        template <class L, class = void>
        struct has_layer_name : std::false_type
        {
        };
        template <class L>
        struct has_layer_name<L, std::enable_if_t<std::is_convertible<decltype(L::name()), const char*>::value>>
            : std::true_type
        {
        };

        template <class L, class = void>
        struct has_signature : std::false_type
        {
        };
        template <class L>
        struct has_signature<L, std::enable_if_t<std::is_convertible<decltype(L::signature()), std::string>::value>>
            : std::true_type
        {
        };

        template <class L, class = void>
        struct has_reads_sequence : std::false_type
        {
        };
        template <class L>
        struct has_reads_sequence<L, std::enable_if_t<std::is_same<decltype(L::reads_sequence), const bool>::value>>
            : std::true_type
        {
        };

        template <class L, class = void>
        struct has_reads_token_ids : std::false_type
        {
        };
        template <class L>
        struct has_reads_token_ids<L,
                                   std::enable_if_t<std::is_same<decltype(L::reads_token_ids), const bool>::value>>
            : std::true_type
        {
        };

        template <class L, class = void>
        struct has_random_engines : std::false_type
        {
        };
        template <class L>
        struct has_random_engines<
            L, std::void_t<decltype(std::declval<L&>().for_each_random_engine(engine_visitor_probe{}))>>
            : std::true_type
        {
        };

        template <class L, class = void>
        struct has_parameters : std::false_type
        {
        };
        template <class L>
        struct has_parameters<L,
                              std::void_t<decltype(std::declval<L&>().for_each_parameter(parameter_visitor_probe{}))>>
            : std::true_type
        {
        };
    }  // namespace detail

    namespace detail
    {
        template <class L>
        constexpr bool has_shared_weights_constructor() noexcept
        {
            return std::is_constructible<L, shared_weights_t, const L&>::value;
        }

        /// The message of a layer a predictor cannot run; training through a layer that reads shared weights.
        inline std::string shared_weights_training_message(const char* layer)
        {
            return std::string(layer) + ": this layer reads the weights of another (a predictor's) and runs "
                   "inference only; train the model it was made from";
        }
    }  // namespace detail

    /// True for a type that has every member above; otherwise the first missing one is named in a compile error.
    template <class L>
    constexpr bool check_layer()
    {
        static_assert(detail::has_layer_name<L>::value,
                      "xrnn: a layer needs `static const char* name() noexcept` (layers/layer_traits.hpp)");
        static_assert(detail::has_signature<L>::value,
                      "xrnn: a layer needs `static std::string signature()` (layers/layer_traits.hpp)");
        static_assert(detail::has_reads_sequence<L>::value,
                      "xrnn: a layer needs `static constexpr bool reads_sequence` (layers/layer_traits.hpp)");
        static_assert(detail::has_reads_token_ids<L>::value,
                      "xrnn: a layer needs `static constexpr bool reads_token_ids` (layers/layer_traits.hpp)");
        static_assert(detail::has_random_engines<L>::value,
                      "xrnn: a layer needs `template <class F> void for_each_random_engine(F&& f)` "
                      "(layers/layer_traits.hpp)");
        static_assert(detail::has_parameters<L>::value,
                      "xrnn: a layer needs `template <class F> void for_each_parameter(F&& f)` "
                      "(layers/layer_traits.hpp)");
        return true;
    }

    /// Calls f(name, engine) for every random engine a layer, cell or model draws from while training: "rng" for
    /// dropout, "mask" for a cell, "l<k>.mask" for the cells of a recurrent layer, "<index>.<name>" in a sequential.
    template <class Layer, class F>
    void for_each_random_engine(Layer& layer, F&& f)
    {
        static_assert(detail::has_random_engines<Layer>::value,
                      "xrnn: a layer needs `template <class F> void for_each_random_engine(F&& f)` "
                      "(layers/layer_traits.hpp)");
        layer.for_each_random_engine(f);
    }
}  // namespace xrnn

#endif
