// xtensor-rnn: inverted dropout. A kept unit is scaled by 1 / (1 - rate) during training so that inference
// (where dropout is off) needs no rescaling.
//   mask_j = [u_j >= rate] / (1 - rate),  u_j ~ U[0, 1)      y = x * mask      dx = dy * mask
#ifndef XRNN_LAYERS_DROPOUT_HPP
#define XRNN_LAYERS_DROPOUT_HPP

#include <cstddef>
#include <string>
#include <tuple>

#include <xtensor/xnoalias.hpp>
#include <xtensor/xtensor.hpp>

#include <xrnn/config.hpp>
#include <xrnn/detail/tensor.hpp>
#include <xrnn/layers/layer_traits.hpp>
#include <xrnn/random.hpp>

namespace xrnn
{
    namespace detail
    {
        /// Fills n mask values with 0 (dropped, probability rate) or 1 / (1 - rate) (kept).
        template <class T>
        void sample_dropout_mask(T* mask, std::size_t n, double rate, random_engine& rng)
        {
            const T keep_scale = static_cast<T>(1.0 / (1.0 - rate));
            for (std::size_t j = 0; j < n; ++j)
            {
                mask[j] = rng.uniform() >= rate ? keep_scale : T(0);
            }
        }
    }  // namespace detail

    /// Standalone dropout on (B, F) or (S, B, F) tensors: a fresh mask per element and per forward.
    /// (The recurrent layers have their own per-sequence input and recurrent dropout.)
    template <class T>
    class dropout
    {
    public:
        using value_type = T;
        static constexpr bool reads_sequence = false;  // traits: layers/layer_traits.hpp
        static constexpr bool reads_token_ids = false;

        static const char* name() noexcept
        {
            return "dropout";
        }

        static std::string signature()
        {
            return std::string("dropout<") + scalar_name<T>() + ">";
        }

        dropout(double rate, random_engine& rng)
            : m_rate(checked_rate(rate))
            , m_rng(rng.split())
        {
        }

        /// For inference only (a predictor's), with the owner's rate and a workspace of its own.
        dropout(shared_weights_t, const dropout& owner) noexcept
            : m_rate(owner.m_rate)
            , m_rng(0)
            , m_shared(true)
        {
        }

        double rate() const noexcept
        {
            return m_rate;
        }

        /// The engine of the masks (checkpoints save and restore its state).
        random_engine& engine() noexcept
        {
            return m_rng;
        }

        template <class F>
        void for_each_random_engine(F&& f)
        {
            f(std::string("rng"), m_rng);
        }

        template <std::size_t N>
        const xt::xtensor<T, N>& forward(const xt::xtensor<T, N>& x, mode m = mode::inference)
        {
            static_assert(N == 2 || N == 3, "xrnn::dropout: input must be (B, F) or (S, B, F)");
            if (x.size() == 0)  // an empty batch is a mistake here as in the sized layers, not an empty result
            {
                throw shape_error("dropout::forward: x expected shape (B, F) or (S, B, F) with every extent >= 1 but got "
                                  + detail::shape_to_string(x.shape()));
            }
            auto& y = std::get<N - 2>(m_outputs);
            auto& mask = std::get<N - 2>(m_masks);
            detail::ensure_shape(y, x.shape());
            detail::ensure_shape(mask, x.shape());
            if (m == mode::training && m_shared)
            {
                throw state_error(detail::shared_weights_training_message("dropout::forward"));
            }
            if (m == mode::training && m_rate > 0.0)
            {
                detail::sample_dropout_mask(mask.data(), mask.size(), m_rate, m_rng);
            }
            else
            {
                mask.fill(T(1));
            }
            xt::noalias(y) = x * mask;
            m_has_forward[N - 2] = true;
            return y;
        }

        template <std::size_t N>
        const xt::xtensor<T, N>& backward(const xt::xtensor<T, N>& dy)
        {
            static_assert(N == 2 || N == 3, "xrnn::dropout: gradient must be (B, F) or (S, B, F)");
            const auto& mask = std::get<N - 2>(m_masks);
            if (!m_has_forward[N - 2])
            {
                throw state_error("dropout::backward: no forward of a rank-" + std::to_string(N) + " input before it");
            }
            detail::check_same_shape("dropout::backward", "dy", dy.shape(), mask.shape(), " (the last forward's)");
            auto& dx = std::get<N - 2>(m_input_grads);
            detail::ensure_shape(dx, dy.shape());
            xt::noalias(dx) = dy * mask;
            return dx;
        }

        template <class F>
        void for_each_parameter(F&&)
        {
        }

    private:
        static double checked_rate(double rate)
        {
            detail::check_rate("dropout", "rate", rate);  // before the engine is split: a rejected rate draws nothing
            return rate;
        }

        double m_rate;
        random_engine m_rng;
        bool m_shared = false;  // made for a predictor: inference only
        std::tuple<xt::xtensor<T, 2>, xt::xtensor<T, 3>> m_outputs, m_masks, m_input_grads;
        bool m_has_forward[2] = {false, false};
    };
}  // namespace xrnn

#endif
