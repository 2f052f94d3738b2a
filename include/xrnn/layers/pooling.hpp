// xtensor-rnn: pooling over time, one vector per sequence from a sequence of them.
//
//   global_average_pool<T, F>   x (S, B, F) -> y (B, F): Keras's GlobalAveragePooling1D (which honours masks)
//   global_max_pool<T, F>       x (S, B, F) -> y (B, F): Keras's GlobalMaxPooling1D, torch.max(x, dim=0)
//
// Typically after a recurrent layer with output::sequence, so that the classifier sees every step and not only
// the last one. With lengths L_b (set_lengths, which a model calls after an embedding with mask_zero or with
// forward(x, lengths), model/chain.hpp), only the real steps t < L_b of sequence b count, as with PyTorch's packed
// sequences; without them L_b = S:
//   (PF1) average  y[b, j] = 1/L_b  sum_{t < L_b} x[t, b, j]
//   (PB1)          dx[t, b, j] = dy[b, j] / L_b  for t < L_b, 0 after
//   (PF2) max      y[b, j] = x[t*, b, j], t* = the first t < L_b where x[t, b, j] is largest
//   (PB2)          dx[t, b, j] = dy[b, j]  for t = t*, 0 elsewhere (the subgradient PyTorch's max takes)
// A NaN among the steps gives NaN in both, as in PyTorch (so that a model's non-finite check sees it).
#ifndef XRNN_LAYERS_POOLING_HPP
#define XRNN_LAYERS_POOLING_HPP

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include <xtensor/xtensor.hpp>

#include <xrnn/config.hpp>
#include <xrnn/detail/tensor.hpp>
#include <xrnn/layers/layer_traits.hpp>
#include <xrnn/layers/length_order.hpp>

namespace xrnn
{
    /// What global_pool computes over the steps of each sequence.
    enum class pool_kind
    {
        average,
        max
    };

    template <class T, std::size_t F, pool_kind Kind>
    class global_pool
    {
        static_assert(F >= 1, "xrnn: a pooling layer needs at least one feature");

    public:
        using value_type = T;
        static constexpr std::size_t input_size = F;
        static constexpr std::size_t output_size = F;
        static constexpr pool_kind kind = Kind;
        static constexpr bool reads_sequence = true;  // traits: layers/layer_traits.hpp
        static constexpr bool reads_token_ids = false;
        static constexpr bool needs_whole_sequence = true;  // so a predictor does not stream it in chunks
        using input_type = xt::xtensor<T, 3>;   // (S, B, F)
        using output_type = xt::xtensor<T, 2>;  // (B, F)

        global_pool() = default;

        explicit global_pool(random_engine&) noexcept
        {
        }

        /// For inference only (a predictor's): no parameters to share, a workspace of its own.
        global_pool(shared_weights_t, const global_pool&) noexcept
        {
        }

        static const char* name() noexcept
        {
            return Kind == pool_kind::average ? "global_average_pool" : "global_max_pool";
        }

        static std::string signature()
        {
            return std::string(name()) + "<" + scalar_name<T>() + detail::join_sizes({F}) + ">";
        }

        /// The lengths of the sequences of the following forward(x) calls (count values; nullptr: all steps).
        void set_lengths(const std::size_t* lengths, std::size_t count)
        {
            m_lengths.set(lengths, count);
        }

        /// (PF1) or (PF2) over x (S, B, F); mode makes no difference.
        const output_type& forward(const input_type& x, mode = mode::inference)
        {
            const std::size_t S = x.shape()[0];
            const std::size_t B = x.shape()[1];
            if (S == 0 || B == 0 || x.shape()[2] != F)
            {
                throw shape_error(std::string(name()) + "::forward: x expected shape (S, B, " + std::to_string(F)
                                  + ") with S, B >= 1 but got " + detail::shape_to_string(x.shape()));
            }
            m_lengths.check([] { return std::string(name()) + "::forward"; }, B, S);
            m_steps = S;
            m_batch = B;
            detail::ensure_shape(m_y, {B, F});
            if constexpr (Kind == pool_kind::max)
            {
                detail::ensure_shape(m_argmax, {B, F});
            }
            for (std::size_t b = 0; b < B; ++b)
            {
                const std::size_t n = length(b);
                T* y = m_y.data() + b * F;
                const T* first = x.data() + b * F;
                std::copy(first, first + F, y);
                if constexpr (Kind == pool_kind::average)
                {
                    for (std::size_t t = 1; t < n; ++t)  // (PF1)
                    {
                        const T* row = x.data() + (t * B + b) * F;
                        for (std::size_t j = 0; j < F; ++j)
                        {
                            y[j] += row[j];
                        }
                    }
                    const T scale = T(1) / static_cast<T>(n);
                    for (std::size_t j = 0; j < F; ++j)
                    {
                        y[j] *= scale;
                    }
                }
                else
                {
                    std::size_t* at = m_argmax.data() + b * F;
                    std::fill(at, at + F, std::size_t(0));
                    for (std::size_t t = 1; t < n; ++t)  // (PF2): strictly larger, so the first maximum wins
                    {
                        const T* row = x.data() + (t * B + b) * F;
                        for (std::size_t j = 0; j < F; ++j)
                        {
                            if (row[j] > y[j] || (row[j] != row[j] && y[j] == y[j]))  // a NaN stays
                            {
                                y[j] = row[j];
                                at[j] = t;
                            }
                        }
                    }
                }
            }
            return m_y;
        }

        /// (PB1) or (PB2) for the last forward: dx (S, B, F).
        const input_type& backward(const output_type& dy)
        {
            if (m_steps == 0)
            {
                throw state_error(std::string(name()) + "::backward: call forward before backward");
            }
            const std::size_t S = m_steps;
            const std::size_t B = m_batch;
            detail::check_shape(name(), "dy", dy.shape(), {B, F});
            detail::ensure_shape(m_dx, {S, B, F});
            m_dx.fill(T(0));
            for (std::size_t b = 0; b < B; ++b)
            {
                const T* g = dy.data() + b * F;
                if constexpr (Kind == pool_kind::average)
                {
                    const std::size_t n = length(b);
                    const T scale = T(1) / static_cast<T>(n);
                    for (std::size_t t = 0; t < n; ++t)  // (PB1)
                    {
                        T* row = m_dx.data() + (t * B + b) * F;
                        for (std::size_t j = 0; j < F; ++j)
                        {
                            row[j] = g[j] * scale;
                        }
                    }
                }
                else
                {
                    const std::size_t* at = m_argmax.data() + b * F;
                    for (std::size_t j = 0; j < F; ++j)  // (PB2)
                    {
                        m_dx.data()[(at[j] * B + b) * F + j] = g[j];
                    }
                }
            }
            return m_dx;
        }

        template <class Fn>
        void for_each_parameter(Fn&&)
        {
        }

        template <class Fn>
        void for_each_random_engine(Fn&&)
        {
        }

        /// Bytes of its buffers (the output, the input gradient, the positions of the maxima).
        std::size_t workspace_bytes() const noexcept
        {
            return (m_y.size() + m_dx.size()) * sizeof(T) + m_argmax.size() * sizeof(std::size_t)
                   + m_lengths.bytes();
        }

    private:
        std::size_t length(std::size_t b) const noexcept
        {
            return m_lengths.given() ? m_lengths[b] : m_steps;
        }

        detail::given_lengths m_lengths;  // set_lengths
        std::size_t m_steps = 0;
        std::size_t m_batch = 0;
        output_type m_y;
        input_type m_dx;
        xt::xtensor<std::size_t, 2> m_argmax;  // (B, F) t* of (PF2)
    };

    template <class T, std::size_t F>
    using global_average_pool = global_pool<T, F, pool_kind::average>;

    template <class T, std::size_t F>
    using global_max_pool = global_pool<T, F, pool_kind::max>;
}  // namespace xrnn

#endif
