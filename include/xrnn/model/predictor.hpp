// xtensor-rnn: one model served from many threads. A predictor reads the weights of a model where they are (no
// copy) and has workspaces of its own, so threads predict at once, each with its predictor, with no lock:
//
//   xrnn::sequential model{...};  model.compile(...);  model.load("imdb.xrnnw");
//   std::vector<xrnn::predictor<decltype(model)>> pool(threads, xrnn::predictor(model));   // or one per thread
//   // on thread k:
//   auto p = pool[k].predict(x);              // as model.predict(x), bit for bit
//   auto q = pool[k].predict_one(ids);        // one sample
//   pool[k].reset_states();                   // streaming: B streams fed chunk by chunk, states kept between
//   auto y = pool[k].stream(chunk);           //   chunks (B, s): the outputs after each stream's s new steps
//
// A predictor costs its workspaces (what its layers keep for the largest batch it has run, the outputs of an
// inference forward: no gate caches, no gradients) and never a copy of the weights. Rules, all checked
// (model/usage_guard.hpp):
//   - one predictor per thread: a call on a predictor while another thread's call on it runs is a state_error
//     (copy it: a copy is a new predictor of the same model);
//   - predictors run while nothing changes the model: a predictor call while fit or load runs on another thread,
//     or fit while predictor calls run, gets a state_error;
//   - the model outlives its predictors and stays where it is: moving it or assigning to it while it has
//     predictors is a state_error, destroying it aborts with a message.
// The model's own predict/evaluate use the model's workspaces and run one at a time (a state_error otherwise).
#ifndef XRNN_MODEL_PREDICTOR_HPP
#define XRNN_MODEL_PREDICTOR_HPP

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <xtensor/xtensor.hpp>

#include <xrnn/config.hpp>
#include <xrnn/layers/layer_traits.hpp>
#include <xrnn/model/batching.hpp>
#include <xrnn/model/chain.hpp>
#include <xrnn/model/data_checks.hpp>
#include <xrnn/model/metrics.hpp>
#include <xrnn/model/usage_guard.hpp>

namespace xrnn
{
    namespace detail
    {
        /// predict(): the outputs for x (N, ...), batch by batch, batch-major, after the objective's link.
        template <class Chain, class XV, std::size_t XN>
        auto predict_batches(Chain& chain, objective goal, const xt::xtensor<XV, XN>& x, std::size_t batch_size)
        {
            const std::size_t n = x.shape()[0];
            const std::vector<std::size_t> index = all_indices(n);
            typename Chain::template batch_input_t<XV, XN> batch;
            using out_type = typename Chain::template output_t<XV, XN>;
            constexpr bool time_major = Chain::template output_time_major<XV, XN>;
            out_type result;
            for (std::size_t first = 0; first < n; first += std::min(batch_size, n - first))
            {
                const std::size_t count = std::min(batch_size, n - first);
                gather<Chain::sequence_input>(x, index, first, count, batch);
                const out_type& out = chain.forward(batch, mode::inference);
                if (first == 0)
                {
                    auto shape = out.shape();
                    shape[time_major ? 1 : 0] = n;
                    if constexpr (time_major)
                    {
                        std::swap(shape[0], shape[1]);
                    }
                    result = out_type(shape);
                }
                scatter<time_major>(out, first, result);
            }
            apply_link(goal, result);
            return result;
        }

        /// A batch of one: x (S) ids or (S, F) features -> (1, S) or (1, S, F).
        template <class XV, std::size_t XN>
        xt::xtensor<XV, XN + 1> batch_of_one(const xt::xtensor<XV, XN>& sample)
        {
            std::array<std::size_t, XN + 1> shape;
            shape[0] = 1;
            std::copy(sample.shape().begin(), sample.shape().end(), shape.begin() + 1);
            xt::xtensor<XV, XN + 1> batch(shape);
            std::copy(sample.begin(), sample.end(), batch.begin());
            return batch;
        }

        /// The one row of a (1, ...) result, without its first axis.
        template <class Out>
        auto only_row(const Out& all)
        {
            using result_type = xt::xtensor<typename Out::value_type, Out::rank - 1>;
            typename result_type::shape_type shape;
            std::copy(all.shape().begin() + 1, all.shape().end(), shape.begin());
            result_type one(shape);
            std::copy(all.begin(), all.end(), one.begin());
            return one;
        }

        /// Layers that carry a state from one forward to the next (the recurrent layers).
        template <class L, class = void>
        struct carries_state : std::false_type
        {
        };
        template <class L>
        struct carries_state<L, std::void_t<typename L::state_type, decltype(std::declval<const L&>().final_state())>>
            : std::true_type
        {
        };

        /// Layers whose output needs each sequence's end (a bidirectional layer's reverse direction, pooling over
        /// time) say so with `static constexpr bool needs_whole_sequence = true`: they cannot be streamed.
        template <class L, class = void>
        struct needs_whole_sequence : std::false_type
        {
        };
        template <class L>
        struct needs_whole_sequence<L, std::enable_if_t<L::needs_whole_sequence>> : std::true_type
        {
        };

        template <class... Layers>
        constexpr bool any_needs_whole_sequence(const layer_chain<Layers...>*) noexcept
        {
            return (needs_whole_sequence<Layers>::value || ...);
        }

        struct no_state
        {
        };
        template <class L, bool = carries_state<L>::value>
        struct state_of
        {
            using type = no_state;
        };
        template <class L>
        struct state_of<L, true>
        {
            using type = typename L::state_type;
        };
    }  // namespace detail

    template <class Model>
    class predictor
    {
        using chain_type = typename Model::chain_type;

    public:
        using model_type = Model;
        using value_type = typename Model::value_type;

        /// A predictor of model, which must be compiled (its objective's link is applied to the outputs).
        explicit predictor(const Model& model)
            : m_model(&model)
            , m_objective(model.loss_objective())
            , m_chain(shared_weights, static_cast<const chain_type&>(model))
        {
            model.usage().add_predictor();
        }

        /// Another predictor of the same model, with workspaces of its own (for another thread).
        predictor(const predictor& other)
            : predictor(*other.m_model)
        {
        }

        predictor& operator=(const predictor&) = delete;

        ~predictor()
        {
            m_model->usage().remove_predictor();
        }

        const Model& model() const noexcept
        {
            return *m_model;
        }

        /// As model.predict(x, batch_size): the same outputs bit for bit, on this predictor's workspaces.
        template <class XV, std::size_t XN>
        auto predict(const xt::xtensor<XV, XN>& x, std::size_t batch_size = 128)
        {
            const one_thread alone(m_busy, "predictor::predict");
            return predict_batches(x, batch_size, "predictor::predict");
        }

        /// As model.predict_one(sample): x (S) ids or (S, F) features; returns (out) or (S, out).
        template <class XV, std::size_t XN>
        auto predict_one(const xt::xtensor<XV, XN>& sample)
        {
            const one_thread alone(m_busy, "predictor::predict_one");
            return detail::only_row(predict_batches(detail::batch_of_one(sample), 1, "predictor::predict_one"));
        }

        /// Streaming: x (B, s) ids or (B, s, F) continues B streams by s steps each, from the states the last
        /// stream() left (zeros after reset_states() or at first), and returns the outputs after the objective's
        /// link: (B, out) after each stream's last step so far for many-to-one models, (B, s, out) for
        /// sequence outputs. Feeding a sequence in chunks gives what predict() gives for all of it at once. With an
        /// embedding that masks id 0, each chunk's padding is masked within the chunk. Not for bidirectional models.
        template <class XV, std::size_t XN>
        auto stream(const xt::xtensor<XV, XN>& x)
        {
            static_assert(chain_type::sequence_input, "xrnn::predictor::stream: the model must read sequences");
            static_assert(!detail::any_needs_whole_sequence(static_cast<const chain_type*>(nullptr)),
                          "xrnn::predictor::stream: a bidirectional layer or a pooling over time needs each "
                          "sequence's end, so the model cannot be fed in chunks; use predict()");
            const one_thread alone(m_busy, "predictor::stream");
            detail::check_inputs<chain_type>("predictor::stream", x);
            const std::size_t batch = x.shape()[0];
            if (m_streaming && batch != m_stream_batch)
            {
                throw shape_error("predictor::stream: x has " + std::to_string(batch) + " streams but the streams "
                                  "running have " + std::to_string(m_stream_batch)
                                  + "; call reset_states() to start others");
            }
            const typename detail::usage_guard::shared reading(m_model->usage(), "predictor::stream");
            typename chain_type::template batch_input_t<XV, XN> time_major;
            detail::gather<true>(x, detail::all_indices(batch), 0, batch, time_major);
            using out_type = typename chain_type::template output_t<XV, XN>;
            m_lengths = nullptr;
            const out_type& out = stream_from<0>(time_major);
            m_streaming = true;
            m_stream_batch = batch;
            constexpr bool time_major_out = chain_type::template output_time_major<XV, XN>;
            auto shape = out.shape();
            if constexpr (time_major_out)
            {
                std::swap(shape[0], shape[1]);
            }
            out_type result(shape);
            detail::scatter<time_major_out>(out, 0, result);
            detail::apply_link(m_objective, result);
            return result;
        }

        /// Starts new streams: the next stream() begins from zero states.
        void reset_states() noexcept
        {
            m_streaming = false;
        }

        /// Bytes of this predictor's workspaces now (layers that report them), not counting the shared weights.
        std::size_t workspace_bytes() const noexcept
        {
            std::size_t bytes = sizeof(*this);
            visit_const([&](const auto& layer) {
                using L = std::decay_t<decltype(layer)>;
                if constexpr (has_workspace_bytes<L>::value)
                {
                    bytes += layer.workspace_bytes();
                }
            });
            return bytes;
        }

    private:
        /// A predictor serves one thread at a time: a call while another thread's call runs is a state_error.
        class one_thread
        {
        public:
            one_thread(std::atomic<bool>& busy, const char* where)
                : m_busy(busy)
            {
                if (busy.exchange(true, std::memory_order_acquire))
                {
                    throw state_error(std::string(where) + ": this predictor is already in a call on another "
                                      "thread; give each thread a predictor of its own (a copy of this one)");
                }
            }
            one_thread(const one_thread&) = delete;
            one_thread& operator=(const one_thread&) = delete;
            ~one_thread()
            {
                m_busy.store(false, std::memory_order_release);
            }

        private:
            std::atomic<bool>& m_busy;
        };

        template <class XV, std::size_t XN>
        auto predict_batches(const xt::xtensor<XV, XN>& x, std::size_t batch_size, const char* where)
        {
            detail::check_inputs<chain_type>(where, x);
            detail::check_batch_size(where, batch_size);
            const typename detail::usage_guard::shared reading(m_model->usage(), where);
            return detail::predict_batches(m_chain, m_objective, x, batch_size);
        }

        template <class L, class = void>
        struct has_workspace_bytes : std::false_type
        {
        };
        template <class L>
        struct has_workspace_bytes<L, std::void_t<decltype(std::declval<const L&>().workspace_bytes())>>
            : std::true_type
        {
        };

        template <class F>
        void visit_const(F&& f) const
        {
            visit_const_from<0>(f);
        }

        template <std::size_t K, class F>
        void visit_const_from(F& f) const
        {
            f(m_chain.template layer<K>());
            if constexpr (K + 1 < chain_type::layer_count)
            {
                visit_const_from<K + 1>(f);
            }
        }

        /// Forward from layer K for stream(): recurrent layers start from the states kept, and keep their finals.
        template <std::size_t K, class X>
        const auto& stream_from(const X& x)
        {
            auto& layer = m_chain.template layer<K>();
            using L = std::decay_t<decltype(layer)>;
            if constexpr (detail::takes_lengths<L>::value)  // with an embedding that masks id 0: this chunk's
            {
                layer.set_lengths(m_lengths, x.shape()[1]);
            }
            const auto& y = [&]() -> const auto& {
                if constexpr (detail::carries_state<L>::value)
                {
                    auto& state = std::get<K>(m_states);
                    const auto& out = m_streaming ? layer.forward(x, state, mode::inference)
                                                  : layer.forward(x, mode::inference);
                    state = layer.final_state();
                    return out;
                }
                else
                {
                    return layer.forward(x, mode::inference);
                }
            }();
            if constexpr (detail::gives_lengths<L>::value)
            {
                if (const std::size_t* found = layer.sequence_lengths())
                {
                    m_lengths = found;
                }
            }
            if constexpr (K + 1 == chain_type::layer_count)
            {
                return y;
            }
            else
            {
                return stream_from<K + 1>(y);
            }
        }

        template <class Chain>
        struct states_of;
        template <class... Layers>
        struct states_of<layer_chain<Layers...>>
        {
            using type = std::tuple<typename detail::state_of<Layers>::type...>;
        };

        const Model* m_model;
        objective m_objective;
        chain_type m_chain;
        typename states_of<chain_type>::type m_states;
        std::atomic<bool> m_busy{false};          // a call runs (one_thread)
        const std::size_t* m_lengths = nullptr;  // the lengths of the chunk in stream(), from a masking embedding
        bool m_streaming = false;
        std::size_t m_stream_batch = 0;
    };

    template <class Model>
    predictor(const Model&) -> predictor<Model>;
}  // namespace xrnn

#endif
