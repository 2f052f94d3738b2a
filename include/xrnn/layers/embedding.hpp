// xtensor-rnn: embedding, token ids to dense vectors.
//
// Dimensions: S steps, B batch, V vocabulary, D embedding width.
//   (EF1) y[s, b, :] = W[ids[s, b], :]                     ids (S, B) -> y (S, B, D)
//   (EB1) dW[v, :] += sum over (s, b) with ids[s, b] = v of dy[s, b, :]
// Only the rows of the ids that occurred receive gradient; there is no gradient with respect to the ids.
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

        explicit embedding(random_engine& rng, init_scheme scheme = init_scheme::keras)
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
            for (std::size_t j = 0; j < m_ids.size(); ++j)  // (EB1)
            {
                T* grad = dp.w.data() + m_ids.data()[j] * Dim;
                const T* d = dy.data() + j * Dim;
                detail::for_each_pack<T, Dim>([&](auto pack, std::size_t k) {
                    using P = decltype(pack);
                    P::store(grad + k, P::load(grad + k) + P::load(d + k));
                });
            }
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
        static constexpr std::size_t parallel_values = std::size_t(1) << 18;  // 2^18 values (1 MiB of floats)

        const params_type* m_shared = nullptr;  // the parameters of the layer this one shares, or none
        xt::xtensor<std::size_t, 2> m_ids;       // validated ids of the last forward
        output_type m_output;
    };
}  // namespace xrnn

#endif
