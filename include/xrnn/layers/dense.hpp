// xtensor-rnn: dense (fully connected) layer, applied to (B, In) or to every step of (S, B, In).
//
// Dimensions: R rows (B, or S * B for a sequence), In inputs, Out outputs.
//   (DF1) y = x W + b                         x (R, In), W (In, Out), b (Out) -> y (R, Out)
//   (DB1) dW += x^T dy
//   (DB2) db += sum over rows of dy
//   (DB3) dx  = dy W^T
#ifndef XRNN_LAYERS_DENSE_HPP
#define XRNN_LAYERS_DENSE_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include <xtensor/xtensor.hpp>

#include <xrnn/config.hpp>
#include <xrnn/detail/blas.hpp>
#include <xrnn/detail/tensor.hpp>
#include <xrnn/init.hpp>
#include <xrnn/layers/external_tensors.hpp>
#include <xrnn/layers/layer_traits.hpp>
#include <xrnn/random.hpp>

namespace xrnn
{
    template <class T, std::size_t In, std::size_t Out>
    struct dense_params
    {
        xt::xtensor<T, 2> w;  // (In, Out) = torch.nn.Linear.weight^T
        xt::xtensor<T, 1> b;  // (Out)

        dense_params()
            : w({In, Out}, T(0))
            , b({Out}, T(0))
        {
        }

        /// No tensors: the parameters of a layer that reads another's (layer_traits.hpp).
        explicit dense_params(shared_weights_t) noexcept
        {
        }

        template <class F, class... Ps>
        static void zip(F&& f, Ps&... ps)
        {
            f("w", ps.w...);
            f("b", ps.b...);
        }
    };

    template <class T, std::size_t In, std::size_t Out>
    class dense
    {
        static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value,
                      "xrnn::dense: T must be float or double");
        static_assert(In > 0 && Out > 0, "xrnn::dense: In and Out must be at least 1");

    public:
        using value_type = T;
        using params_type = dense_params<T, In, Out>;
        static constexpr std::size_t input_size = In;
        static constexpr std::size_t output_size = Out;
        static constexpr bool reads_sequence = false;  // traits: layers/layer_traits.hpp
        static constexpr bool reads_token_ids = false;

        static const char* name() noexcept
        {
            return "dense";
        }

        static std::string signature()
        {
            return std::string("dense<") + scalar_name<T>() + detail::join_sizes({In, Out}) + ">";
        }

        template <class F>
        void for_each_random_engine(F&&)
        {
        }

        params_type p;
        params_type dp;

        explicit dense(random_engine& rng, init_scheme scheme = init_scheme::keras)
        {
            if (scheme == init_scheme::keras)
            {
                init::glorot_uniform(p.w, rng);  // Keras Dense: glorot_uniform kernel, zero bias
            }
            else
            {
                const double bound = 1.0 / std::sqrt(static_cast<double>(In));  // torch.nn.Linear
                init::uniform(p.w, bound, rng);
                init::uniform(p.b, bound, rng);
            }
        }

        /// For inference only, reading owner's parameters (no copy), with a workspace of its own (predictors).
        dense(shared_weights_t, const dense& owner) noexcept
            : p(shared_weights)
            , dp(shared_weights)
            , m_shared(&owner.weights())
        {
        }

        /// The parameters forward reads: p, or those of the layer this one was made to share.
        const params_type& weights() const noexcept
        {
            return m_shared != nullptr ? *m_shared : p;
        }

        /// x (B, In) -> y (B, Out), or x (S, B, In) -> y (S, B, Out) with the same weights at every step.
        template <std::size_t N>
        const xt::xtensor<T, N>& forward(const xt::xtensor<T, N>& x, mode = mode::inference)
        {
            static_assert(N == 2 || N == 3, "xrnn::dense::forward: input must be (B, In) or (S, B, In)");
            if (x.shape()[N - 1] != In || x.size() == 0)
            {
                throw shape_error("dense::forward: x expected shape " + shape_pattern<N>(In)
                                  + " with every extent at least 1 but got " + detail::shape_to_string(x.shape()));
            }
            const std::size_t rows = x.size() / In;
            detail::ensure_shape(m_input, {rows, In});
            std::copy(x.data(), x.data() + x.size(), m_input.data());  // kept for (DB1)
            auto output_shape = x.shape();
            output_shape[N - 1] = Out;
            auto& y = std::get<N - 2>(m_outputs);
            detail::ensure_shape(y, output_shape);
            const params_type& w = weights();
            detail::matmul(x.data(), w.w.data(), y.data(), rows, In, Out);  // (DF1)
            detail::add_row_vector(y.data(), rows, Out, w.b.data());
            m_forward_rank = N;
            return y;
        }

        /// Accumulates dW, db; returns dx with the shape of the last forward's input.
        template <std::size_t N>
        const xt::xtensor<T, N>& backward(const xt::xtensor<T, N>& dy)
        {
            static_assert(N == 2 || N == 3, "xrnn::dense::backward: gradient must be (B, Out) or (S, B, Out)");
            const auto& y = std::get<N - 2>(m_outputs);
            if (m_shared != nullptr)
            {
                throw state_error(detail::shared_weights_training_message("dense::backward"));
            }
            if (m_forward_rank != N)
            {
                throw state_error("dense::backward: no forward of a rank-" + std::to_string(N) + " input before it");
            }
            detail::check_same_shape("dense::backward", "dy", dy.shape(), y.shape());
            const std::size_t rows = m_input.shape()[0];
            detail::accumulate_weight_gradient(m_input.data(), dy.data(), dp.w.data(), rows, In, Out);  // (DB1)
            detail::accumulate_column_sums(dy.data(), rows, Out, dp.b.data());                       // (DB2)
            auto input_shape = dy.shape();
            input_shape[N - 1] = In;
            auto& dx = std::get<N - 2>(m_input_grads);
            detail::ensure_shape(dx, input_shape);
            detail::matmul_transposed_weight(dy.data(), p.w.data(), dx.data(), rows, Out, In);  // (DB3)
            return dx;
        }

        template <class F>
        void for_each_parameter(F&& f)
        {
            params_type::zip(f, p, dp);
        }

        /// torch.nn.Linear: weight (Out, In) = w^T, bias (Out); Keras Dense: kernel (In, Out) = w, bias (Out).
        void export_tensors(weight_convention c, const std::string& prefix, std::vector<external_tensor<T>>& out)
        {
            const bool torch = c == weight_convention::torch;
            out.push_back({detail::external_name(c, prefix, torch ? "weight" : "kernel"),
                           torch ? std::vector<std::size_t>{Out, In} : std::vector<std::size_t>{In, Out},
                           torch ? detail::transposed(p.w.data(), In, Out) : std::vector<T>(p.w.begin(), p.w.end())});
            out.push_back({detail::external_name(c, prefix, "bias"), {Out}, std::vector<T>(p.b.begin(), p.b.end())});
        }

        void import_tensors(weight_convention c, const std::string& prefix, const external_lookup<T>& get)
        {
            const bool torch = c == weight_convention::torch;
            const T* w = get(detail::external_name(c, prefix, torch ? "weight" : "kernel"));
            const std::vector<T> kernel = torch ? detail::transposed(w, Out, In) : std::vector<T>(w, w + In * Out);
            std::copy(kernel.begin(), kernel.end(), p.w.begin());
            const T* b = get(detail::external_name(c, prefix, "bias"));
            std::copy(b, b + Out, p.b.begin());
        }

        /// Bytes held by the cache and results of the last forward and backward: the input (R, In), the outputs
        /// and the input gradients, times sizeof(T) (not the parameters).
        std::size_t workspace_bytes() const noexcept
        {
            return (m_input.size() + std::get<0>(m_outputs).size() + std::get<1>(m_outputs).size()
                    + std::get<0>(m_input_grads).size() + std::get<1>(m_input_grads).size())
                   * sizeof(T);
        }

    private:
        template <std::size_t N>
        static std::string shape_pattern(std::size_t last)
        {
            return std::string(N == 2 ? "(B, " : "(S, B, ") + std::to_string(last) + ")";
        }

        const params_type* m_shared = nullptr;  // the parameters of the layer this one shares, or none
        xt::xtensor<T, 2> m_input;               // (rows, In)
        std::tuple<xt::xtensor<T, 2>, xt::xtensor<T, 3>> m_outputs, m_input_grads;
        std::size_t m_forward_rank = 0;
    };
}  // namespace xrnn

#endif
