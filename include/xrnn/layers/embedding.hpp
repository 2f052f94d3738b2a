// xtensor-rnn: embedding, token ids to dense vectors.
//
// Dimensions: S steps, B batch, V vocabulary, D embedding width.
//   (EF1) y[s, b, :] = W[ids[s, b], :]                     ids (S, B) -> y (S, B, D)
//   (EB1) dW[v, :] += sum over (s, b) with ids[s, b] = v of dy[s, b, :]
// Only the rows of the ids that occurred receive gradient; there is no gradient with respect to the ids.
//
// mask_zero (Keras's Embedding(mask_zero=True)): id 0 is padding, wherever it is (before, after or between the
// words: pre- and post-padding alike). Each sequence's non-zero ids are moved to its first L_b steps, in order:
//   (EM1) L_b = the number of non-zero ids of sequence b (at least 1), and y[t, b, :] = W[id of its t-th
//         non-zero id] for t < L_b, 0 for t >= L_b
//   (EM2) dW of each such id += dy[t, b, :] for t < L_b (the padded steps give nothing)
// and sequence_lengths() gives L to the recurrent layer above (model/chain.hpp passes it on), which then skips
// the padding as Keras skips masked steps (recurrent_masking.hpp, (M1)-(M4)).
#ifndef XRNN_LAYERS_EMBEDDING_HPP
#define XRNN_LAYERS_EMBEDDING_HPP

#include <algorithm>
#include <cstddef>
#include <string>
#include <type_traits>
#include <vector>

#include <xtensor/xnoalias.hpp>
#include <xtensor/xtensor.hpp>

#include <xrnn/config.hpp>
#include <xrnn/detail/simd.hpp>
#include <xrnn/detail/tensor.hpp>
#include <xrnn/init.hpp>
#include <xrnn/layers/external_tensors.hpp>
#include <xrnn/layers/layer_traits.hpp>
#include <xrnn/random.hpp>
#include <xrnn/threads.hpp>

namespace xrnn
{
    template <class T, std::size_t V, std::size_t D>
    struct embedding_params
    {
        xt::xtensor<T, 2> w;  // (V, D), one row per token id

        embedding_params()
            : w({V, D}, T(0))
        {
        }

        /// No tensors: the parameters of a layer that reads another's (layer_traits.hpp).
        explicit embedding_params(shared_weights_t) noexcept
        {
        }

        /// Calls f(name, tensors of the same name in each of ps...): one visitor for zeroing, optimizers, files.
        template <class F, class... Ps>
        static void zip(F&& f, Ps&... ps)
        {
            f("w", ps.w...);
        }
    };

    template <class T, std::size_t Vocab, std::size_t Dim>
    class embedding
    {
        static_assert(std::is_floating_point<T>::value, "xrnn::embedding: T must be float or double");
        static_assert(Vocab > 0, "xrnn::embedding: the vocabulary must hold at least one id");
        static_assert(Dim > 0, "xrnn::embedding: the embedding width must be at least 1");

    public:
        using value_type = T;
        using params_type = embedding_params<T, Vocab, Dim>;
        using output_type = xt::xtensor<T, 3>;
        static constexpr std::size_t vocabulary_size = Vocab;
        static constexpr std::size_t input_size = 1;  // one token id per step
        static constexpr std::size_t output_size = Dim;
        static constexpr bool reads_sequence = true;  // traits: layers/layer_traits.hpp
        static constexpr bool reads_token_ids = true;

        static const char* name() noexcept
        {
            return "embedding";
        }

        static std::string signature()
        {
            return std::string("embedding<") + scalar_name<T>() + detail::join_sizes({Vocab, Dim}) + ">";
        }

        template <class F>
        void for_each_random_engine(F&&)
        {
        }

        params_type p;   // weights
        params_type dp;  // their gradients, accumulated by backward, zeroed by the caller

        explicit embedding(random_engine& rng, init_scheme scheme = init_scheme::keras, bool mask_zero = false)
            : m_mask_zero(mask_zero)
        {
            if (scheme == init_scheme::keras)
            {
                init::uniform(p.w, 0.05, rng);  // Keras "uniform" embeddings initializer
            }
            else
            {
                init::normal(p.w, 1.0, rng);  // torch.nn.Embedding: N(0, 1)
            }
        }

        /// For inference only, reading owner's parameters (no copy), with a workspace of its own (predictors).
        embedding(shared_weights_t, const embedding& owner) noexcept
            : p(shared_weights)
            , dp(shared_weights)
            , m_shared(&owner.weights())
            , m_mask_zero(owner.m_mask_zero)
        {
        }

        /// The parameters forward reads: p, or those of the layer this one was made to share.
        const params_type& weights() const noexcept
        {
            return m_shared != nullptr ? *m_shared : p;
        }

        /// ids (S, B) of any integer type, each in [0, Vocab); returns y (S, B, Dim).
        template <class Id>
        const output_type& forward(const xt::xtensor<Id, 2>& ids, mode = mode::inference)
        {
            static_assert(std::is_integral<Id>::value, "xrnn::embedding::forward: token ids must be integers");
            const std::size_t steps = ids.shape()[0];
            const std::size_t batch = ids.shape()[1];
            detail::check_positive("embedding::forward", "steps (ids.shape()[0])", steps);
            detail::check_positive("embedding::forward", "batch (ids.shape()[1])", batch);
            // validate every id before touching the cache, so a rejected batch leaves nothing for backward
            for (std::size_t j = 0; j < ids.size(); ++j)
            {
                const Id id = ids.data()[j];
                if (!detail::index_in_range(id, Vocab))
                {
                    detail::ensure_shape(m_ids, {0, 0});
                    throw value_error("embedding::forward: token id " + std::to_string(id) + " at step "
                                      + std::to_string(j / batch) + ", batch " + std::to_string(j % batch)
                                      + " is outside the vocabulary [0, " + std::to_string(Vocab) + ")");
                }
            }
            detail::ensure_shape(m_ids, {steps, batch});
            std::copy(ids.begin(), ids.end(), m_ids.begin());
            detail::ensure_shape(m_output, {steps, batch, Dim});
            if (m_mask_zero)
            {
                compact_nonzero_ids(steps, batch);  // (EM1)
                return m_output;
            }
            // (EF1), in parts of the rows on xrnn's threads when there are enough of them (a large gather is
            // bound by memory traffic, which two cores move faster than one)
            const std::size_t rows = m_ids.size();
            const T* table = weights().w.data();
            const std::size_t parts = rows * Dim >= parallel_values ? std::min(rows, num_threads()) : 1;
            detail::parallel_for(parts, [&](std::size_t part) {
                const std::size_t end = rows * (part + 1) / parts;
                for (std::size_t j = rows * part / parts; j < end; ++j)
                {
                    const T* row = table + m_ids.data()[j] * Dim;
                    T* out = m_output.data() + j * Dim;
                    detail::for_each_pack<T, Dim>([&](auto pack, std::size_t k) {
                        using P = decltype(pack);
                        P::store(out + k, P::load(row + k));
                    });
                }
            });
            return m_output;
        }

        /// Accumulates dW from dy (S, B, Dim) for the ids of the last forward.
        void backward(const output_type& dy)
        {
            if (m_shared != nullptr)
            {
                throw state_error(detail::shared_weights_training_message("embedding::backward"));
            }
            if (m_ids.size() == 0)
            {
                throw state_error("embedding::backward: no successful forward before it");
            }
            detail::check_shape("embedding::backward", "dy", dy.shape(), {m_ids.shape()[0], m_ids.shape()[1], Dim});
            for (std::size_t j = 0; j < m_ids.size(); ++j)  // (EB1), (EM2)
            {
                if (m_mask_zero && j / m_ids.shape()[1] >= m_lengths[j % m_ids.shape()[1]])
                {
                    continue;
                }
                T* grad = dp.w.data() + m_ids.data()[j] * Dim;
                const T* d = dy.data() + j * Dim;
                detail::for_each_pack<T, Dim>([&](auto pack, std::size_t k) {
                    using P = decltype(pack);
                    P::store(grad + k, P::load(grad + k) + P::load(d + k));
                });
            }
        }

        bool mask_zero() const noexcept
        {
            return m_mask_zero;
        }

        /// (EM1) L of the last forward with mask_zero (one per sequence), else nullptr.
        const std::size_t* sequence_lengths() const noexcept
        {
            return m_mask_zero ? m_lengths.data() : nullptr;
        }

        template <class F>
        void for_each_parameter(F&& f)
        {
            params_type::zip(f, p, dp);
        }

        /// torch.nn.Embedding: weight (Vocab, Dim); Keras Embedding: embeddings (Vocab, Dim); both w itself.
        void export_tensors(weight_convention c, const std::string& prefix, std::vector<external_tensor<T>>& out)
        {
            out.push_back({detail::external_name(c, prefix, c == weight_convention::torch ? "weight" : "embeddings"),
                           {Vocab, Dim}, std::vector<T>(p.w.begin(), p.w.end())});
        }

        void import_tensors(weight_convention c, const std::string& prefix, const external_lookup<T>& get)
        {
            const T* w = get(detail::external_name(c, prefix, c == weight_convention::torch ? "weight" : "embeddings"));
            std::copy(w, w + Vocab * Dim, p.w.begin());
        }

        /// Bytes held by the cache of the last forward: its ids, S * B * sizeof(std::size_t), and its output,
        /// S * B * Dim * sizeof(T) (not the parameters).
        std::size_t workspace_bytes() const noexcept
        {
            return m_ids.size() * sizeof(std::size_t) + m_output.size() * sizeof(T);
        }

    private:
        /// (EM1): m_ids compacted in place (each sequence's non-zero ids first), m_lengths, and the output.
        void compact_nonzero_ids(std::size_t steps, std::size_t batch)
        {
            m_lengths.resize(batch);
            for (std::size_t b = 0; b < batch; ++b)
            {
                std::size_t n = 0;
                for (std::size_t s = 0; s < steps; ++s)
                {
                    const std::size_t id = m_ids.data()[s * batch + b];
                    if (id != 0)
                    {
                        m_ids.data()[n++ * batch + b] = id;
                    }
                }
                if (n == 0)
                {
                    detail::ensure_shape(m_ids, {0, 0});
                    throw value_error("embedding::forward: with mask_zero, sequence " + std::to_string(b)
                                      + " has only padding (id 0); expected at least one non-zero id");
                }
                m_lengths[b] = n;
                for (std::size_t t = 0; t < steps; ++t)
                {
                    T* out = m_output.data() + (t * batch + b) * Dim;
                    if (t < n)
                    {
                        const T* row = weights().w.data() + m_ids.data()[t * batch + b] * Dim;
                        std::copy(row, row + Dim, out);
                    }
                    else
                    {
                        std::fill(out, out + Dim, T(0));
                    }
                }
            }
        }

        static constexpr std::size_t parallel_values = std::size_t(1) << 18;  // 2^18 values (1 MiB of floats)

        const params_type* m_shared = nullptr;  // the parameters of the layer this one shares, or none
        xt::xtensor<std::size_t, 2> m_ids;       // validated ids of the last forward
        output_type m_output;
        bool m_mask_zero = false;
        std::vector<std::size_t> m_lengths;  // (EM1) with mask_zero
    };
}  // namespace xrnn

#endif
