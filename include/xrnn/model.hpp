// xtensor-rnn: a model composed of layers at compile time, trained and used the way Keras's Sequential is.
//
//   xrnn::random_engine rng(42);
//   xrnn::recurrent_options o; o.dropout = 0.2; o.recurrent_dropout = 0.2;
//   xrnn::sequential model{xrnn::embedding<float, 10000, 128>(rng), xrnn::lstm<float, 128, 128>(rng, o),
//                          xrnn::dense<float, 128, 1>(rng)};
//   model.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<float>(1e-3));
//   xrnn::fit_options f; f.epochs = 5; f.batch_size = 64; f.validation_split = 0.2;
//   xrnn::history h = model.fit(x_train, y_train, f);   // x (N, S) ids, y (N, 1) in {0, 1}
//   xrnn::evaluation e = model.evaluate(x_test, y_test);
//   auto p = model.predict(x_test);                      // (N, 1) probabilities
//   model.save("imdb.xrnnw");
//
// Data are batch-major as in Keras, x (N, S) token ids or (N, S, F) features; the model gathers each batch
// time-major, (S, B, ...), for the recurrent layers. The last layer outputs logits: the objective's link
// (sigmoid for binary cross-entropy, softmax for softmax cross-entropy, identity for MSE) is applied by the loss
// and by predict(), never twice.
//
// sequential is a layer chain (model/chain.hpp: forward, backward, for_each_parameter with names "<k>.<name>",
// summary), so the free functions zero_grad, clip_grad_norm and the optimizers work on it as on any layer. The
// rest is in one header per concept:
//   model/chain.hpp               the layers, forward and backward, parameters, engines, summary
//   model/data_checks.hpp         x and y checked before any batch
//   model/metrics.hpp             objectives, loss and metric of a batch or a data set, the link of predict()
//   model/compiled_optimizer.hpp  the optimizer kept by compile(), whatever its type; its learning rate
//   model/fit.hpp                 fit_options and the training loop
//   model/callbacks.hpp           callbacks: train, epoch and batch moments, stop_training
//   model/step.hpp                step hooks between backward and the optimizer step; non-finite losses
//   model/early_stopping.hpp      early stopping, a callback
//   model/checkpointing.hpp       checkpoints written by a callback, and resuming
//   model/training_checkpoint.hpp the checkpoint file: its tensors listed once; save, read, apply, load
//   model/history.hpp, progress.hpp, batching.hpp   epoch logs and history, progress lines, batch gathering
//   model/process_group.hpp       fit, evaluate and predict on several processes (distribute(); xrnn/mpi.hpp)
//   model/predictor.hpp           predictors: the model's weights shared by threads, each with its workspaces
//   model/usage_guard.hpp         which calls may run at once on one model, checked
//
// Threads: a model runs one call at a time; fit, evaluate, predict, compile and load from two threads at once
// give a state_error. To predict from many threads, give each its own predictor (model/predictor.hpp).
#ifndef XRNN_MODEL_HPP
#define XRNN_MODEL_HPP

#include <algorithm>
#include <array>
#include <cstddef>
#include <memory>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <xtensor/xtensor.hpp>

#include <xrnn/config.hpp>
#include <xrnn/io/weights.hpp>
#include <xrnn/layers/activations.hpp>
#include <xrnn/layers/dense.hpp>
#include <xrnn/layers/dropout.hpp>
#include <xrnn/layers/embedding.hpp>
#include <xrnn/layers/gru.hpp>
#include <xrnn/layers/lstm.hpp>
#include <xrnn/layers/pooling.hpp>
#include <xrnn/layers/rnn.hpp>
#include <xrnn/model/batching.hpp>
#include <xrnn/model/callbacks.hpp>
#include <xrnn/model/chain.hpp>
#include <xrnn/model/checkpointing.hpp>
#include <xrnn/model/compiled_optimizer.hpp>
#include <xrnn/model/data_checks.hpp>
#include <xrnn/model/early_stopping.hpp>
#include <xrnn/model/fit.hpp>
#include <xrnn/model/history.hpp>
#include <xrnn/model/metrics.hpp>
#include <xrnn/model/process_group.hpp>
#include <xrnn/model/progress.hpp>
#include <xrnn/model/step.hpp>
#include <xrnn/model/predictor.hpp>
#include <xrnn/model/training_checkpoint.hpp>
#include <xrnn/model/usage_guard.hpp>
#include <xrnn/optim.hpp>
#include <xrnn/random.hpp>

namespace xrnn
{
    template <class... Layers>
    class sequential : private detail::usage_guard,  // first: checked before the layers are moved or assigned
                       public layer_chain<Layers...>
    {
        using chain = layer_chain<Layers...>;
        using guard = detail::usage_guard;

    public:
        using chain_type = chain;
        using typename chain::value_type;
        using T = value_type;
        using chain::layer_count;
        using chain::input_size;
        using chain::output_size;
        using chain::sequence_input;

        /// Each layer built from the engine with its defaults (layers that need more, build yourself, see below).
        explicit sequential(random_engine& rng)
            : chain(rng)
        {
        }

        /// From layers built with their options: sequential{embedding<..>(rng), lstm<..>(rng, options), ...}.
        explicit sequential(Layers... layers)
            : chain(std::move(layers)...)
        {
        }

        /// "sequential<embedding<float32,10000,128>,lstm<float32,128,128,layers=1,last>,dense<float32,128,1>>"
        static std::string signature()
        {
            return "sequential<" + chain::layer_signatures() + ">";
        }

        // ---- training --------------------------------------------------------------------------------------------

        /// Keras's compile: the objective, and the optimizer the model keeps and steps (sgd, adam, rmsprop...).
        template <class Optimizer>
        void compile(objective loss, Optimizer optimizer)
        {
            const guard::exclusive alone(usage(), "sequential::compile");
            m_objective = loss;
            m_optimizer.emplace(std::move(optimizer));
        }

        /// The compiled objective (state_error before compile).
        objective loss_objective() const
        {
            require_compiled("loss_objective");
            return *m_objective;
        }

        /// The compiled optimizer, e.g. model.optimizer<xrnn::adam<float>>().learning_rate = 1e-4.
        template <class Optimizer>
        Optimizer& optimizer()
        {
            require_compiled("optimizer");
            Optimizer* held = m_optimizer->template get<Optimizer>();
            if (held == nullptr)
            {
                throw state_error("sequential::optimizer: the model was compiled with another optimizer type");
            }
            return *held;
        }

        /// The compiled optimizer whatever its type: step, snapshot, learning rate (model/compiled_optimizer.hpp).
        compiled_optimizer<sequential>& compiled()
        {
            require_compiled("compiled");
            return *m_optimizer;
        }

        /// "accuracy" for the classification objectives, "mae" for mean squared error.
        std::string metric_name() const
        {
            return xrnn::metric_name(loss_objective());
        }

        /// Trains on x (N, ...) and y (N, ...); validation from options.validation_split.
        template <class XV, std::size_t XN, class YV, std::size_t YN>
        history fit(const xt::xtensor<XV, XN>& x, const xt::xtensor<YV, YN>& y, const fit_options& options = {})
        {
            const guard::exclusive alone(usage(), "sequential::fit");
            check_data("fit", x, y);
            const double split = options.validation_split;
            if (!(split >= 0.0 && split < 1.0))
            {
                std::ostringstream message;
                message << "fit: validation_split expected in [0, 1) but is " << split;
                throw value_error(message.str());
            }
            const std::size_t n = x.shape()[0];
            // Keras: the first int(N * (1 - split)) samples train, the rest validate.
            const auto train_count = static_cast<std::size_t>(static_cast<double>(n) * (1.0 - split));
            if (split > 0.0 && (train_count == 0 || train_count == n))
            {
                std::ostringstream message;
                message << "fit: validation_split " << split << " of " << n << " samples leaves "
                        << train_count << " for training and " << n - train_count
                        << " for validation; both need at least one";
                throw value_error(message.str());
            }
            std::vector<std::size_t> train = detail::all_indices(train_count);
            std::vector<std::size_t> validation(n - train_count);
            std::iota(validation.begin(), validation.end(), train_count);
            return detail::run_fit(*this, *m_objective, *m_optimizer, x, y, std::move(train), x, y, validation, options,
                                   m_group.get());
        }

        /// Trains on x, y and validates on explicit data (options.validation_split must be 0).
        template <class XV, std::size_t XN, class YV, std::size_t YN>
        history fit(const xt::xtensor<XV, XN>& x, const xt::xtensor<YV, YN>& y, const xt::xtensor<XV, XN>& x_val,
                    const xt::xtensor<YV, YN>& y_val, const fit_options& options = {})
        {
            const guard::exclusive alone(usage(), "sequential::fit");
            check_data("fit", x, y);
            check_data("fit (validation data)", x_val, y_val);
            if (options.validation_split != 0.0)
            {
                throw value_error("fit: validation data were given, so validation_split must be 0 (it is "
                                  + std::to_string(options.validation_split) + ")");
            }
            return detail::run_fit(*this, *m_objective, *m_optimizer, x, y, detail::all_indices(x.shape()[0]), x_val,
                                   y_val, detail::all_indices(x_val.shape()[0]), options, m_group.get());
        }

        /// Mean loss and metric over x, y in inference mode.
        template <class XV, std::size_t XN, class YV, std::size_t YN>
        evaluation evaluate(const xt::xtensor<XV, XN>& x, const xt::xtensor<YV, YN>& y, std::size_t batch_size = 128)
        {
            const guard::exclusive alone(usage(), "sequential::evaluate");
            check_data("evaluate", x, y);
            detail::check_batch_size("evaluate", batch_size);
            const detail::running_score score = detail::score_on_ranks(
                *this, *m_objective, x, y, detail::all_indices(x.shape()[0]), batch_size, m_group.get(), "evaluate");
            return evaluation{score.loss(), score.metric(), metric_name(), score.samples};
        }

        /// Outputs for x (N, ...), batch-major, after the objective's link: probabilities for the
        /// classification objectives, values for MSE. (N, out) for many-to-one models, (N, S, out) for sequences.
        template <class XV, std::size_t XN>
        auto predict(const xt::xtensor<XV, XN>& x, std::size_t batch_size = 128)
        {
            const guard::exclusive alone(usage(), "sequential::predict");
            detail::check_inputs<sequential>("predict", x);
            detail::check_batch_size("predict", batch_size);
            if (detail::distributed(m_group.get()))
            {
                return predict_on_ranks(x, batch_size);
            }
            return detail::predict_batches(*this, loss_objective(), x, batch_size);
        }

        /// predict() for one sample: x (S) ids or (S, F) features; returns (out) or (S, out). In this process
        /// alone, also after distribute().
        template <class XV, std::size_t XN>
        auto predict_one(const xt::xtensor<XV, XN>& sample)
        {
            const guard::exclusive alone(usage(), "sequential::predict");
            detail::check_inputs<sequential>("predict", detail::batch_of_one(sample));
            return detail::only_row(detail::predict_batches(*this, loss_objective(), detail::batch_of_one(sample), 1));
        }

        // ---- several processes (model/process_group.hpp) ------------------------------------------------------

        /// From now on fit, evaluate and predict run on the ranks of `group` (every rank calls them with the same
        /// data), and rank 0's weights and random engines are copied to every rank now and when fit starts.
        /// nullptr goes back to one process.
        void distribute(std::shared_ptr<process_group> group)
        {
            const guard::exclusive alone(usage(), "sequential::distribute");
            m_group = std::move(group);
            if (detail::distributed(m_group.get()))
            {
                detail::broadcast_model(*this, *m_group);
            }
        }

        /// The process group given to distribute(), or nullptr.
        process_group* group() const noexcept
        {
            return m_group.get();
        }

        // ---- weights ---------------------------------------------------------------------------------------------

        /// Saves the weights (not the optimizer state: see checkpoints) atomically; format: docs/weight-format.md.
        void save(const std::string& path)
        {
            const guard::shared reading(usage(), "sequential::save");
            save_weights(path, *this);
        }

        /// Loads weights saved by a model of the same signature; a bad file leaves this model unchanged.
        void load(const std::string& path)
        {
            const guard::exclusive alone(usage(), "sequential::load");
            load_weights(path, *this);
        }

        /// Who uses this model now (model/usage_guard.hpp); predictors register here.
        const detail::usage_guard& usage() const noexcept
        {
            return *this;
        }

    private:
        void require_compiled(const char* where) const
        {
            if (!m_objective || !m_optimizer)
            {
                throw state_error(std::string("sequential::") + where
                                  + ": call compile(objective, optimizer) before training or evaluating");
            }
        }

        template <class XV, std::size_t XN, class YV, std::size_t YN>
        void check_data(const char* where, const xt::xtensor<XV, XN>& x, const xt::xtensor<YV, YN>& y) const
        {
            require_compiled(where);
            detail::check_data<sequential>(where, *m_objective, x, y);
        }

        /// predict() on the ranks: each predicts its part of x, every rank gets the whole result.
        template <class XV, std::size_t XN>
        auto predict_on_ranks(const xt::xtensor<XV, XN>& x, std::size_t batch_size)
        {
            using out_type = typename chain::template output_t<XV, XN>;
            constexpr std::size_t rank = out_type::rank;
            process_group& group = *m_group;
            const std::size_t n = x.shape()[0];
            const auto part = detail::shard(n, group.rank(), group.size());
            out_type mine;
            detail::rank_outcome outcome;
            outcome.run([&] {
                auto shape = x.shape();
                shape[0] = part[1] - part[0];
                if (shape[0] > 0)
                {
                    xt::xtensor<XV, XN> slice(shape);
                    const std::size_t row = x.size() / n;
                    std::copy(x.data() + part[0] * row, x.data() + part[1] * row, slice.data());
                    mine = detail::predict_batches(*this, loss_objective(), slice, batch_size);
                }
            });
            // One allreduce: failures, the ranks that have rows, and the sum of their inner extents.
            std::array<double, rank + 1> agree{};
            agree[0] = outcome.failed() ? 1.0 : 0.0;
            const bool has_rows = !outcome.failed() && part[1] > part[0];
            agree[1] = has_rows ? 1.0 : 0.0;
            for (std::size_t k = 1; k < rank; ++k)
            {
                agree[k + 1] = has_rows ? static_cast<double>(mine.shape()[k]) : 0.0;
            }
            group.sum(agree.data(), agree.size());
            if (agree[0] > 0.0)
            {
                detail::throw_agreed(group, outcome, "predict");
            }
            // Batch-major: the parts are consecutive rows of the result.
            const std::vector<char> all = group.all_gather(mine.data(), has_rows ? mine.size() * sizeof(T) : 0);
            std::array<std::size_t, rank> shape{};
            shape[0] = n;
            for (std::size_t k = 1; k < rank; ++k)
            {
                shape[k] = agree[1] > 0.0 ? static_cast<std::size_t>(agree[k + 1] / agree[1]) : 0;
            }
            out_type result(shape);
            std::copy(reinterpret_cast<const T*>(all.data()), reinterpret_cast<const T*>(all.data() + all.size()),
                      result.data());
            return result;
        }

        std::optional<objective> m_objective;
        std::optional<compiled_optimizer<sequential>> m_optimizer;
        std::shared_ptr<process_group> m_group;
    };

    template <class... Layers>
    sequential(Layers...) -> sequential<Layers...>;
}  // namespace xrnn

#endif
