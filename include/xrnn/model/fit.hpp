// xtensor-rnn: the training loop behind sequential::fit(), and its options.
//
// The loop itself only shuffles, gathers batches, runs forward, loss, backward and the optimizer step, validates
// and keeps the history. Everything else is a piece it calls at a fixed point, and the built-in features use the
// same extension points a user has:
//   callbacks (model/callbacks.hpp)   progress lines, on_epoch_end functions, early stopping, checkpoints
//   step hooks (model/step.hpp)       clip_norm; a user's gradient averaging, noise monitor, ...
//   the non-finite policy             (model/step.hpp) between backward and the hooks
//
//   for epoch in initial_epoch..epochs:
//       on_epoch_begin; shuffle the training order (Fisher-Yates, fit_options::seed)
//       for each batch:  on_batch_begin; zero_grad; forward; loss; backward;
//                        non-finite check (stop or skip); step hooks; clip_norm; optimizer step; on_batch_end
//       validation; history; on_epoch_end (progress, functions, user callbacks, early stopping, checkpoint)
//   on_train_end (early stopping restores the best weights)
//
// On a process group (model/process_group.hpp, sequential::distribute), each rank runs this loop on its part of
// every batch, and the ranks agree after backward (PG0), average the gradients (PG1) and or their stops (PG2).
#ifndef XRNN_MODEL_FIT_HPP
#define XRNN_MODEL_FIT_HPP

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <xtensor/xtensor.hpp>

#include <xrnn/config.hpp>
#include <xrnn/model/batching.hpp>
#include <xrnn/model/callbacks.hpp>
#include <xrnn/model/checkpointing.hpp>
#include <xrnn/model/compiled_optimizer.hpp>
#include <xrnn/model/early_stopping.hpp>
#include <xrnn/model/history.hpp>
#include <xrnn/model/metrics.hpp>
#include <xrnn/model/process_group.hpp>
#include <xrnn/model/progress.hpp>
#include <xrnn/model/step.hpp>
#include <xrnn/optim.hpp>
#include <xrnn/random.hpp>

namespace xrnn
{
    struct fit_options
    {
        std::size_t epochs = 1;
        std::size_t batch_size = 32;    // at least 1; above the number of samples, one batch of all (Keras)
        double validation_split = 0.0;  // fraction in [0, 1) taken from the END of the data, before shuffling (Keras)
        bool shuffle = true;            // reshuffle the training samples every epoch
        /// Group token-id sequences of similar length (non-zero ids; 0 is padding) into batches, as Keras's
        /// bucket_by_sequence_length: after each shuffle, every pool of bucket_pool batches' samples is sorted by
        /// length and cut into batches, and the batches are shuffled (seeded by seed). With an embedding that masks
        /// id 0 (or explicit lengths) a batch then costs about its own tokens.
        bool bucket_by_length = false;
        std::size_t bucket_pool = 32;
        std::uint64_t seed = 0;         // of the shuffling; dropout draws from each layer's own engine
        double clip_norm = 0.0;         // clip_grad_norm before each step when > 0 (a built-in step hook)
        non_finite_loss on_non_finite_loss = non_finite_loss::stop;
        progress verbosity = progress::automatic;
        std::ostream* out = &std::cout;  // where progress goes
        std::optional<early_stopping> early_stop;  // a built-in callback (model/early_stopping.hpp)
        /// Functions called after every epoch (on_epoch_end below adds to them); fit_control::stop ends training.
        std::vector<std::function<fit_control(const epoch_logs&)>> callbacks;
        /// Callback objects, called at every moment of model/callbacks.hpp, after the functions above.
        std::vector<std::shared_ptr<callback>> callback_objects;
        /// Run on every batch between backward and the optimizer step, in order, before clip_norm (model/step.hpp).
        std::vector<step_hook> step_hooks;

        /// When not empty, a checkpoint (model/training_checkpoint.hpp) is saved there, atomically, after every
        /// checkpoint_every-th epoch and after the last epoch run (the end, or a stop by a callback or early stopping).
        std::string checkpoint_path;
        std::size_t checkpoint_every = 1;
        /// When not empty, fit() first loads this checkpoint (all or nothing) and continues with the epoch after
        /// the one it holds, up to `epochs` in all; the data must be the same (checked by a fingerprint). The
        /// returned history holds the epochs before the checkpoint too. A run that had stopped early continues.
        std::string resume_from;

        /// Adds a function called after every epoch; it may return fit_control::stop to end training, or nothing.
        template <class F>
        fit_options& on_epoch_end(F f)
        {
            if constexpr (std::is_void<std::invoke_result_t<F&, const epoch_logs&>>::value)
            {
                callbacks.emplace_back([f](const epoch_logs& logs) mutable {
                    f(logs);
                    return fit_control::proceed;
                });
            }
            else
            {
                callbacks.emplace_back(std::move(f));
            }
            return *this;
        }

        /// Adds a callback object; keep a shared_ptr of your own to read its state after fit().
        fit_options& add_callback(std::shared_ptr<callback> c)
        {
            callback_objects.push_back(std::move(c));
            return *this;
        }

        /// Adds a step hook: f(gradient_set&, const batch_logs&).
        fit_options& add_step_hook(step_hook hook)
        {
            step_hooks.push_back(std::move(hook));
            return *this;
        }
    };

    namespace detail
    {
        /// The progress lines of model/progress.hpp, as the first callback.
        class progress_callback final : public callback
        {
        public:
            progress_callback(std::ostream* out, progress kind, const std::string& metric)
                : m_printer(out, kind, metric)
            {
            }
            void on_epoch_begin(fit_context& context, std::size_t epoch) override
            {
                m_printer.begin_epoch(epoch, context.epochs, context.steps_per_epoch);
            }
            void on_batch_end(fit_context&, const batch_logs& batch) override
            {
                m_printer.step(batch.step, batch.running_loss, batch.running_metric);
            }
            void on_epoch_end(fit_context&, const epoch_logs& logs) override
            {
                m_printer.end_epoch(logs);
            }

        private:
            progress_printer m_printer;
        };

        /// Trains `model` (compiled with `goal` and `optimizer`) on x[train], y[train], validating on
        /// x_val[validation], y_val[validation] after each epoch; on the ranks of `group` when not null.
        /// `collective` is set before an exception that every rank throws alike.
        template <class Model, class XV, std::size_t XN, class YV, std::size_t YN>
        history run_fit_loop(Model& model, objective goal, compiled_optimizer<Model>& optimizer,
                             const xt::xtensor<XV, XN>& x, const xt::xtensor<YV, YN>& y, std::vector<std::size_t> train,
                             const xt::xtensor<XV, XN>& x_val, const xt::xtensor<YV, YN>& y_val,
                             const std::vector<std::size_t>& validation, const fit_options& options,
                             process_group* group, bool& collective)
        {
            using clock = std::chrono::steady_clock;
            using output_type = typename Model::template output_t<XV, XN>;
            check_positive("fit", "epochs", options.epochs);
            check_batch_size("fit", options.batch_size);
            const std::string metric = metric_name(goal);
            const bool has_validation = !validation.empty();
            const bool on_ranks = distributed(group);
            const bool rank0 = !on_ranks || group->rank() == 0;  // prints and writes checkpoints

            // The loop's state, and the callbacks in the order they run.
            fit_loop_state loop;
            loop.shuffle_engine = random_engine(options.seed);
            loop.order = std::move(train);
            loop.validation_samples = validation.size();
            loop.history = history(metric);
            loop.processes = on_ranks ? group->size() : 1;
            early_stopping_callback<Model> early(model, options.early_stop, metric, has_validation);
            std::optional<checkpoint_callback<Model>> checkpoint;
            if (!options.checkpoint_path.empty() && rank0)
            {
                checkpoint.emplace(options.checkpoint_path, options.checkpoint_every, model, optimizer, goal, loop, early);
            }
            progress_callback printer(options.out, rank0 ? options.verbosity : progress::silent, metric);
            std::vector<epoch_end_function> functions(options.callbacks.begin(), options.callbacks.end());
            std::vector<callback*> callbacks{&printer};
            for (auto& f : functions)
            {
                callbacks.push_back(&f);
            }
            for (const auto& c : options.callback_objects)
            {
                callbacks.push_back(c.get());
            }
            callbacks.push_back(&early);
            if (checkpoint)
            {
                callbacks.push_back(&*checkpoint);
            }
            std::vector<step_hook> hooks(options.step_hooks);
            if (options.clip_norm > 0.0)
            {
                hooks.push_back(clip_norm_hook(options.clip_norm));
            }

            std::size_t first_epoch = 1;
            if (checkpoint || !options.resume_from.empty() || on_ranks)
            {
                loop.data_fingerprint = data_fingerprint(x, y, x_val, y_val);
            }
            if (on_ranks)
            {
                collective = true;
                require_same(*group, loop.data_fingerprint, "fit: x and y (and the validation data)");
                collective = false;
            }
            if (!options.resume_from.empty())
            {
                collective = on_ranks;
                agreed(group, "fit: resuming from '" + options.resume_from + "'", [&] {
                    first_epoch = resume_fit(options.resume_from, model, optimizer, goal, options.epochs, loop, early);
                });
                collective = false;
            }
            if (on_ranks)
            {
                broadcast_model(model, *group);
            }

            // ceil(N / batch_size) without overflow: a batch_size above N is one batch of all N (as in Keras)
            const std::size_t steps
                = loop.order.size() / options.batch_size + (loop.order.size() % options.batch_size != 0 ? 1 : 0);
            fit_context context(options.epochs, steps, first_epoch, metric, loop.history, optimizer);
            typename Model::template batch_input_t<XV, XN> batch;
            target_t<typename Model::value_type, YV, YN> target;
            output_type grad;
            gradient_set gradients;
            std::vector<std::size_t>& order = loop.order;
            std::vector<std::size_t> lengths;
            if (options.bucket_by_length)
            {
                if constexpr (!std::is_integral<XV>::value)
                {
                    throw value_error("fit: bucket_by_length needs token ids (integer x) to find the lengths in");
                }
                lengths = sample_lengths(x);
            }

            for (callback* c : callbacks) c->on_train_begin(context);
            for (std::size_t epoch = first_epoch; epoch <= options.epochs && !context.stop_training; ++epoch)
            {
                const auto start = clock::now();
                context.epoch = epoch;
                if (options.shuffle)
                {
                    for (std::size_t i = order.size(); i > 1; --i)  // Fisher-Yates
                    {
                        std::swap(order[i - 1], order[loop.shuffle_engine.below(i)]);
                    }
                }
                if (options.bucket_by_length)
                {
                    bucket_by_length(order, lengths, options.batch_size, std::max<std::size_t>(1, options.bucket_pool),
                                     loop.shuffle_engine);
                }
                if (on_ranks)
                {
                    derive_rank_engines(model, *group);
                }
                for (callback* c : callbacks) c->on_epoch_begin(context, epoch);
                running_score score;
                epoch_logs logs;
                logs.epoch = epoch;
                logs.epochs = options.epochs;
                for (std::size_t step = 0; step < steps; ++step)
                {
                    batch_logs b;
                    b.epoch = epoch;
                    b.step = step + 1;
                    b.steps = steps;
                    const std::size_t first = step * options.batch_size;
                    b.size = std::min(options.batch_size, order.size() - first);
                    b.running_loss = score.loss();
                    b.running_metric = score.metric();
                    // This rank's part of the batch (all of it in one process).
                    const auto part = on_ranks ? shard(b.size, group->rank(), group->size())
                                               : std::array<std::size_t, 2>{0, b.size};
                    const std::size_t mine = part[1] - part[0];
                    running_score batch_score;
                    bool gradients_finite = false;
                    auto forward_backward = [&] {
                        for (callback* c : callbacks) c->on_batch_begin(context, b);
                        zero_grad(model);
                        if (mine == 0)  // more ranks than samples in the last batch: a zero gradient, weight 0
                        {
                            gradients.collect(model);
                            gradients_finite = true;
                            return;
                        }
                        gather<Model::sequence_input>(x, order, first + part[0], mine, batch);
                        gather<Model::template output_time_major<XV, XN>>(y, order, first + part[0], mine, target);
                        const auto& out = model.forward(batch, mode::training);
                        b.loss = score_batch(goal, out, target, &grad, batch_score, mine,
                                             masked_sequence_targets<Model::template output_time_major<XV, XN>>(
                                                 model, batch, target));
                        // A finite loss can still overflow in backward (float): stepping on that gradient would
                        // leave inf or nan weights, so it counts as a non-finite step too.
                        if (std::isfinite(b.loss))
                        {
                            model.backward(grad);
                            gradients.collect(model);
                            gradients_finite = gradients.all_finite();
                        }
                    };
                    if (on_ranks)
                    {
                        // (PG0) failures, non-finite parts and the batch's score, agreed by one allreduce.
                        rank_outcome outcome;
                        outcome.run(forward_backward);
                        const bool finite = outcome.failed() || (std::isfinite(b.loss) && gradients_finite);
                        double agree[7] = {outcome.failed() ? 1.0 : 0.0, finite ? 0.0 : 1.0, batch_score.loss_sum,
                                           batch_score.metric_sum, batch_score.metric_count,
                                           static_cast<double>(batch_score.samples), batch_score.loss_weight};
                        group->sum(agree, 7);
                        if (agree[0] > 0.0)
                        {
                            collective = true;
                            throw_agreed(*group, outcome, "fit: epoch " + std::to_string(epoch) + ", step "
                                                              + std::to_string(step + 1));
                        }
                        batch_score.loss_sum = agree[2];
                        batch_score.metric_sum = agree[3];
                        batch_score.metric_count = agree[4];
                        batch_score.samples = static_cast<std::size_t>(agree[5]);
                        batch_score.loss_weight = agree[6];
                        b.loss = batch_score.loss();
                        gradients_finite = agree[1] == 0.0;  // a rank's gradient may have overflowed
                        collective = true;
                    }
                    else
                    {
                        forward_backward();
                    }
                    // (every rank holds the same weights, so weights_finite agrees too)
                    const bool admitted = (std::isfinite(b.loss) && gradients_finite)
                                          || admit_step(options.on_non_finite_loss, b.loss, gradients_finite,
                                                        weights_finite(model), epoch, step + 1, steps);
                    collective = false;
                    if (admitted)
                    {
                        if (on_ranks)
                        {
                            // (PG1) the gradient of the whole batch: each part weighted by its share of samples.
                            group->reduce_gradients(gradients, static_cast<double>(mine) / static_cast<double>(b.size));
                        }
                        score.add(batch_score);
                        for (const step_hook& hook : hooks)
                        {
                            hook(gradients, b);
                        }
                        optimizer.step(model);
                        ++logs.steps;
                    }
                    else
                    {
                        b.skipped = true;
                        ++logs.skipped_steps;
                    }
                    b.running_loss = score.loss();
                    b.running_metric = score.metric();
                    for (callback* c : callbacks) c->on_batch_end(context, b);
                    if (on_ranks)
                    {
                        context.stop_training = any_rank(group, context.stop_training);  // (PG2)
                    }
                    if (context.stop_training)
                    {
                        break;
                    }
                }
                logs.loss = score.loss();
                logs.metric = score.metric();
                if (has_validation)
                {
                    collective = on_ranks;
                    const std::string where = "fit: validation of epoch " + std::to_string(epoch);
                    const running_score val
                        = score_on_ranks(model, goal, x_val, y_val, validation, options.batch_size, group, where);
                    collective = false;
                    logs.has_validation = true;
                    logs.val_loss = val.loss();
                    logs.val_metric = val.metric();
                }
                logs.seconds = std::chrono::duration<double>(clock::now() - start).count();
                loop.history.append(logs);
                for (callback* c : callbacks) c->on_epoch_end(context, logs);
                if (on_ranks)
                {
                    context.stop_training = any_rank(group, context.stop_training);  // (PG2)
                }
            }
            for (callback* c : callbacks) c->on_train_end(context);
            return loop.history;
        }

        /// run_fit_loop, on the ranks of `group` when it has more than one: an exception that the other ranks
        /// cannot know of (a failed checkpoint write, a callback) would leave them waiting in their next
        /// collective, so it ends every rank through process_group::abort.
        template <class Model, class XV, std::size_t XN, class YV, std::size_t YN>
        history run_fit(Model& model, objective goal, compiled_optimizer<Model>& optimizer,
                        const xt::xtensor<XV, XN>& x, const xt::xtensor<YV, YN>& y, std::vector<std::size_t> train,
                        const xt::xtensor<XV, XN>& x_val, const xt::xtensor<YV, YN>& y_val,
                        const std::vector<std::size_t>& validation, const fit_options& options,
                        process_group* group = nullptr)
        {
            bool collective = false;
            if (!distributed(group))
            {
                return run_fit_loop(model, goal, optimizer, x, y, std::move(train), x_val, y_val, validation, options,
                                    nullptr, collective);
            }
            try
            {
                return run_fit_loop(model, goal, optimizer, x, y, std::move(train), x_val, y_val, validation, options,
                                    group, collective);
            }
            catch (const std::exception& e)
            {
                if (collective)
                {
                    throw;
                }
                group->abort("fit: " + rank_name(*group) + ": " + e.what());
                throw;  // abort() does not return
            }
            catch (...)
            {
                if (collective)
                {
                    throw;
                }
                group->abort("fit: " + rank_name(*group) + ": an exception that is not a std::exception");
                throw;
            }
        }
    }  // namespace detail
}  // namespace xrnn

#endif
