// xtensor-rnn: a layer's signature, its type and compile-time sizes as text, e.g. "lstm<float32,128,128,layers=1,last>".
//
// Weight files store the signature of the model that wrote them, so that loading into a model of another shape or
// scalar type fails with both signatures in the message instead of reading garbage (RTNeural #75, #148).
#ifndef XRNN_MODEL_SIGNATURE_HPP
#define XRNN_MODEL_SIGNATURE_HPP

#include <cstddef>
#include <string>
#include <type_traits>

#include <xrnn/layers/activations.hpp>
#include <xrnn/layers/dense.hpp>
#include <xrnn/layers/dropout.hpp>
#include <xrnn/layers/embedding.hpp>
#include <xrnn/layers/lstm.hpp>
#include <xrnn/layers/rnn.hpp>

namespace xrnn
{
    template <class T>
    constexpr const char* scalar_name() noexcept
    {
        static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value,
                      "xrnn: scalar type must be float or double");
        return std::is_same<T, float>::value ? "float32" : "float64";
    }

    /// signature_of<Layer>::get(): specialised for every layer of the library; a user's own layer type can
    /// specialise it too.
    template <class Layer>
    struct signature_of;

    namespace detail
    {
        inline std::string join_sizes(std::initializer_list<std::size_t> sizes)
        {
            std::string text;
            for (std::size_t s : sizes)
            {
                text += "," + std::to_string(s);
            }
            return text;
        }

        inline const char* output_name(output o) noexcept
        {
            return o == output::last ? "last" : "sequence";
        }
    }  // namespace detail

    template <class T, std::size_t V, std::size_t D>
    struct signature_of<embedding<T, V, D>>
    {
        static std::string get()
        {
            return std::string("embedding<") + scalar_name<T>() + detail::join_sizes({V, D}) + ">";
        }
    };

    template <class T, std::size_t In, std::size_t Out>
    struct signature_of<dense<T, In, Out>>
    {
        static std::string get()
        {
            return std::string("dense<") + scalar_name<T>() + detail::join_sizes({In, Out}) + ">";
        }
    };

    template <class T, std::size_t In, std::size_t H, std::size_t L, output O>
    struct signature_of<lstm<T, In, H, L, O>>
    {
        static std::string get()
        {
            return std::string("lstm<") + scalar_name<T>() + detail::join_sizes({In, H}) + ",layers=" + std::to_string(L)
                   + "," + detail::output_name(O) + ">";
        }
    };

    template <class T, std::size_t In, std::size_t H, std::size_t L, output O, nonlinearity A>
    struct signature_of<rnn<T, In, H, L, O, A>>
    {
        static std::string get()
        {
            return std::string("rnn<") + scalar_name<T>() + detail::join_sizes({In, H}) + ",layers=" + std::to_string(L)
                   + "," + detail::output_name(O) + "," + (A == nonlinearity::tanh ? "tanh" : "relu") + ">";
        }
    };

    template <class T>
    struct signature_of<dropout<T>>
    {
        static std::string get()
        {
            return std::string("dropout<") + scalar_name<T>() + ">";
        }
    };

    template <class T, class Fn>
    struct signature_of<activation_layer<T, Fn>>
    {
        static std::string get()
        {
            return std::string("activation<") + scalar_name<T>() + "," + Fn::name + ">";
        }
    };
}  // namespace xrnn

#endif
