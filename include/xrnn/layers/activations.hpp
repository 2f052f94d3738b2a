// xtensor-rnn: activation functions and a parameter-free layer that applies one.
//
// Each function gives its forward map and its backward written from the OUTPUT y (what the caches keep):
//   sigmoid: y = 1 / (1 + e^-x)          dx = dy * y (1 - y)
//   tanh:    y = tanh(x)                 dx = dy * (1 - y^2)
//   relu:    y = max(x, 0)               dx = dy * [y > 0]
//   softmax: y_j = e^x_j / sum_k e^x_k   dx = y * (dy - sum_j dy_j y_j)      (over the last axis)
#ifndef XRNN_LAYERS_ACTIVATIONS_HPP
#define XRNN_LAYERS_ACTIVATIONS_HPP

#include <algorithm>
#include <cstddef>
#include <string>
#include <tuple>

#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>
#include <xtensor/xtensor.hpp>

#include <xrnn/config.hpp>
#include <xrnn/detail/tensor.hpp>
#include <xrnn/layers/layer_traits.hpp>

namespace xrnn
{
    namespace activation
    {
        struct sigmoid
        {
            static constexpr const char* name = "sigmoid";

            template <class X, class Y>
            static void forward(const X& x, Y&& y)
            {
                using T = typename std::decay_t<Y>::value_type;
                xt::noalias(y) = T(1) / (T(1) + xt::exp(-x));
            }

            template <class Y, class DY, class DX>
            static void backward(const Y& y, const DY& dy, DX&& dx)
            {
                using T = typename std::decay_t<DX>::value_type;
                xt::noalias(dx) = dy * y * (T(1) - y);
            }
        };

        struct tanh
        {
            static constexpr const char* name = "tanh";

            template <class X, class Y>
            static void forward(const X& x, Y&& y)
            {
                xt::noalias(y) = xt::tanh(x);
            }

            template <class Y, class DY, class DX>
            static void backward(const Y& y, const DY& dy, DX&& dx)
            {
                using T = typename std::decay_t<DX>::value_type;
                xt::noalias(dx) = dy * (T(1) - y * y);
            }
        };

        struct relu
        {
            static constexpr const char* name = "relu";

            template <class X, class Y>
            static void forward(const X& x, Y&& y)
            {
                using T = typename std::decay_t<Y>::value_type;
                xt::noalias(y) = xt::maximum(x, T(0));
            }

            template <class Y, class DY, class DX>
            static void backward(const Y& y, const DY& dy, DX&& dx)
            {
                using T = typename std::decay_t<DX>::value_type;
                xt::noalias(dx) = xt::where(y > T(0), dy, T(0));
            }
        };

        /// Softmax over the last axis; x and y are viewed as rows x classes.
        struct softmax
        {
            static constexpr const char* name = "softmax";

            template <class T>
            static void forward_rows(const T* x, T* y, std::size_t rows, std::size_t classes)
            {
                for (std::size_t r = 0; r < rows; ++r)
                {
                    auto xr = detail::vector_view(x + r * classes, classes);
                    auto yr = detail::vector_view(y + r * classes, classes);
                    const T peak = *std::max_element(xr.begin(), xr.end());  // shift: exp never overflows
                    xt::noalias(yr) = xt::exp(xr - peak);
                    const T total = xt::sum(yr)();
                    xt::noalias(yr) /= total;
                }
            }

            template <class T>
            static void backward_rows(const T* y, const T* dy, T* dx, std::size_t rows, std::size_t classes)
            {
                for (std::size_t r = 0; r < rows; ++r)
                {
                    auto yr = detail::vector_view(y + r * classes, classes);
                    auto dyr = detail::vector_view(dy + r * classes, classes);
                    auto dxr = detail::vector_view(dx + r * classes, classes);
                    const T dot = xt::sum(dyr * yr)();
                    xt::noalias(dxr) = yr * (dyr - dot);
                }
            }
        };
    }  // namespace activation

    /// A parameter-free layer y = f(x) on (B, F) or (S, B, F) tensors; Fn is one of xrnn::activation::*.
    template <class T, class Fn>
    class activation_layer
    {
    public:
        using value_type = T;
        using function_type = Fn;
        static constexpr bool reads_sequence = false;  // traits: layers/layer_traits.hpp
        static constexpr bool reads_token_ids = false;

        static const char* name() noexcept
        {
            return "activation";
        }

        static std::string signature()
        {
            return std::string("activation<") + scalar_name<T>() + "," + Fn::name + ">";
        }

        template <class F>
        void for_each_random_engine(F&&)
        {
        }

        activation_layer() = default;

        /// A workspace of its own (a predictor's; there are no parameters to share).
        activation_layer(shared_weights_t, const activation_layer&) noexcept
        {
        }

        template <std::size_t N>
        const xt::xtensor<T, N>& forward(const xt::xtensor<T, N>& x, mode = mode::inference)
        {
            static_assert(N == 2 || N == 3, "xrnn::activation_layer: input must be (B, F) or (S, B, F)");
            if (x.size() == 0)  // an empty batch is a mistake here as in the sized layers, not an empty result
            {
                throw shape_error(std::string("activation_layer<") + Fn::name + ">::forward: x expected shape (B, F) or "
                                  "(S, B, F) with every extent >= 1 but got " + detail::shape_to_string(x.shape()));
            }
            auto& y = std::get<N - 2>(m_outputs);
            detail::ensure_shape(y, x.shape());
            const std::size_t classes = x.shape()[N - 1];
            if constexpr (std::is_same<Fn, activation::softmax>::value)
            {
                Fn::forward_rows(x.data(), y.data(), x.size() / std::max<std::size_t>(classes, 1), classes);
            }
            else
            {
                Fn::forward(x, y);
            }
            m_has_forward[N - 2] = true;
            return y;
        }

        /// dx from dy, using the output kept by the last forward of the same rank.
        template <std::size_t N>
        const xt::xtensor<T, N>& backward(const xt::xtensor<T, N>& dy)
        {
            static_assert(N == 2 || N == 3, "xrnn::activation_layer: gradient must be (B, F) or (S, B, F)");
            const auto& y = std::get<N - 2>(m_outputs);
            if (!m_has_forward[N - 2])
            {
                throw state_error(std::string("activation_layer<") + Fn::name + ">::backward: no forward before it");
            }
            detail::check_same_shape((std::string("activation_layer<") + Fn::name + ">::backward").c_str(), "dy",
                                     dy.shape(), y.shape());
            auto& dx = std::get<N - 2>(m_input_grads);
            detail::ensure_shape(dx, dy.shape());
            const std::size_t classes = y.shape()[N - 1];
            if constexpr (std::is_same<Fn, activation::softmax>::value)
            {
                Fn::backward_rows(y.data(), dy.data(), dx.data(), y.size() / std::max<std::size_t>(classes, 1), classes);
            }
            else
            {
                Fn::backward(y, dy, dx);
            }
            return dx;
        }

        template <class F>
        void for_each_parameter(F&&)
        {
        }

    private:
        std::tuple<xt::xtensor<T, 2>, xt::xtensor<T, 3>> m_outputs;
        std::tuple<xt::xtensor<T, 2>, xt::xtensor<T, 3>> m_input_grads;
        bool m_has_forward[2] = {false, false};
    };
}  // namespace xrnn

#endif
