// xtensor-rnn: fit()'s checkpoints, written by a training callback and read back to resume.
//
//   xrnn::fit_options f; f.epochs = 10; f.checkpoint_path = "run.xrnnc"; f.checkpoint_every = 2;
//   model.fit(x, y, f);          // a checkpoint after epochs 2, 4, ... and after the last epoch run
//   f.resume_from = "run.xrnnc";
//   model.fit(x, y, f);          // continues with the epoch after the checkpoint's, to the same end
//
// The callback writes after every checkpoint_every-th epoch and after the last epoch run (the end, or a stop asked
// for by another callback or by early stopping; it runs after them). What it writes is the training loop's state
// (fit_loop_state), early stopping's state, the model and the optimizer (model/training_checkpoint.hpp).
#ifndef XRNN_MODEL_CHECKPOINTING_HPP
#define XRNN_MODEL_CHECKPOINTING_HPP

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <xtensor/xtensor.hpp>

#include <xrnn/config.hpp>
#include <xrnn/io/binary.hpp>
#include <xrnn/model/callbacks.hpp>
#include <xrnn/model/compiled_optimizer.hpp>
#include <xrnn/model/early_stopping.hpp>
#include <xrnn/model/history.hpp>
#include <xrnn/model/metrics.hpp>
#include <xrnn/model/training_checkpoint.hpp>
#include <xrnn/random.hpp>

namespace xrnn
{
    /// The training loop's own state after an epoch, besides the model, its optimizer and early stopping.
    struct fit_loop_state
    {
        random_engine shuffle_engine{0};
        std::vector<std::size_t> order;        // the training samples, in the order of the last shuffle
        std::size_t validation_samples = 0;
        std::uint64_t data_fingerprint = 0;    // of the training and validation data
        std::size_t processes = 1;             // ranks of the process group training (model/process_group.hpp)
        xrnn::history history;
    };

    namespace detail
    {
        /// FNV-1a of a tensor's shape and values (host byte order), chained onto `hash`: tells data sets apart.
        template <class V, std::size_t N>
        std::uint64_t fingerprint(const xt::xtensor<V, N>& a, std::uint64_t hash)
        {
            for (auto extent : a.shape())
            {
                const auto value = static_cast<std::uint64_t>(extent);
                hash = io::fnv1a64(reinterpret_cast<const char*>(&value), sizeof value, hash);
            }
            return io::fnv1a64(reinterpret_cast<const char*>(a.data()), a.size() * sizeof(V), hash);
        }

        /// A data fingerprint chained with the number of processes that train (unchanged for one): a checkpoint
        /// written by N ranks then differs from one written by another number.
        inline std::uint64_t processes_fingerprint(std::uint64_t data, std::size_t processes)
        {
            if (processes <= 1)
            {
                return data;
            }
            const auto n = static_cast<std::uint64_t>(processes);
            return io::fnv1a64(reinterpret_cast<const char*>(&n), sizeof n, data);
        }

        /// The fingerprint of the data of a fit: x, y, and the validation data when they are other tensors.
        template <class X, class Y>
        std::uint64_t data_fingerprint(const X& x, const Y& y, const X& x_val, const Y& y_val)
        {
            std::uint64_t hash = fingerprint(y, fingerprint(x, io::fnv1a64(nullptr, 0)));
            if (&x_val != &x)
            {
                hash = fingerprint(y_val, fingerprint(x_val, hash));
            }
            return hash;
        }
    }  // namespace detail

    /// Writes fit()'s checkpoints (fit_options::checkpoint_path, checkpoint_every).
    template <class Model>
    class checkpoint_callback final : public callback
    {
        using T = typename Model::value_type;

    public:
        checkpoint_callback(std::string path, std::size_t every, Model& model, compiled_optimizer<Model>& optimizer,
                            objective goal, const fit_loop_state& loop, const early_stopping_callback<Model>& early)
            : m_path(std::move(path))
            , m_every(every)
            , m_model(model)
            , m_optimizer(optimizer)
            , m_objective(goal)
            , m_loop(loop)
            , m_early(early)
        {
            detail::check_positive("fit", "checkpoint_every", every);
        }

        void on_epoch_end(fit_context& context, const epoch_logs& logs) override
        {
            if (logs.epoch % m_every == 0 || context.stop_training || logs.epoch == context.epochs)
            {
                save_checkpoint(m_path, m_model, m_optimizer, progress(logs.epoch));
            }
        }

    private:
        training_progress<T> progress(std::size_t epoch) const
        {
            training_progress<T> p;
            p.epoch = epoch;
            p.shuffle_engine = m_loop.shuffle_engine.state();
            p.order.assign(m_loop.order.begin(), m_loop.order.end());
            p.validation_samples = m_loop.validation_samples;
            p.data_fingerprint = detail::processes_fingerprint(m_loop.data_fingerprint, m_loop.processes);
            p.objective = static_cast<std::uint64_t>(m_objective);
            p.history = m_loop.history.epochs();
            p.best = m_early.state().best;
            p.epochs_without_improvement = m_early.state().epochs_without_improvement;
            p.best_weights = m_early.state().best_weights;
            return p;
        }

        std::string m_path;
        std::size_t m_every;
        Model& m_model;
        compiled_optimizer<Model>& m_optimizer;
        objective m_objective;
        const fit_loop_state& m_loop;
        const early_stopping_callback<Model>& m_early;
    };

    /// Loads a checkpoint for fit(), refusing one written for other data or another objective before anything
    /// changes; then applies it to model and optimizer (all or nothing), and puts fit's progress back into the
    /// loop's state and early stopping. Returns the first epoch to run.
    template <class Model>
    std::size_t resume_fit(const std::string& path, Model& model, compiled_optimizer<Model>& optimizer, objective goal,
                           std::size_t epochs, fit_loop_state& loop, early_stopping_callback<Model>& early)
    {
        using T = typename Model::value_type;
        // checked from the file's first bytes: a file of another run is refused before the rest is read
        const auto same_run = [&](const checkpoint_description& d) {
            if (d.train_samples != loop.order.size() || d.validation_samples != loop.validation_samples)
            {
                throw value_error("fit: resume_from '" + path + "' was written for " + std::to_string(d.train_samples)
                                  + " training and " + std::to_string(d.validation_samples)
                                  + " validation samples, but this fit has " + std::to_string(loop.order.size())
                                  + " and " + std::to_string(loop.validation_samples));
            }
            if (d.data_fingerprint != detail::processes_fingerprint(loop.data_fingerprint, loop.processes))
            {
                for (std::size_t n = 1; n <= 4096; ++n)  // the same data on another number of processes?
                {
                    if (d.data_fingerprint == detail::processes_fingerprint(loop.data_fingerprint, n))
                    {
                        throw value_error("fit: resume_from '" + path + "' was written by a run on "
                                          + std::to_string(n) + (n == 1 ? " process" : " processes")
                                          + " but this run has " + std::to_string(loop.processes) + ": resume on "
                                          + std::to_string(n)
                                          + " (the batches, their parts and the dropout masks depend on the number)");
                    }
                }
                throw value_error("fit: resume_from '" + path + "' was written for other data: x and y (and the "
                                  "validation data) must be those of the interrupted run");
            }
            if (d.objective != static_cast<std::uint64_t>(goal))
            {
                throw value_error("fit: resume_from '" + path + "' was written when training for "
                                  + detail::objective_name(d.objective) + ", but the model is compiled for "
                                  + detail::objective_name(static_cast<std::uint64_t>(goal)));
            }
            if (d.epochs > epochs)
            {
                throw value_error("fit: resume_from '" + path + "' holds " + std::to_string(d.epochs)
                                  + " epochs, more than the " + std::to_string(epochs)
                                  + " this fit runs in all (epochs counts the epochs before the checkpoint too)");
            }
        };
        checkpoint_contents<T> contents = read_checkpoint(path, model, optimizer, same_run);
        training_progress<T> progress = apply_checkpoint(std::move(contents), model, optimizer);
        loop.shuffle_engine.set_state(progress.shuffle_engine);
        loop.order.assign(progress.order.begin(), progress.order.end());
        for (const epoch_logs& logs : progress.history)
        {
            loop.history.append(logs);
        }
        typename early_stopping_callback<Model>::state_type state;
        state.best = progress.best;
        state.epochs_without_improvement = static_cast<std::size_t>(progress.epochs_without_improvement);
        state.best_weights = std::move(progress.best_weights);
        early.restore(std::move(state));
        return static_cast<std::size_t>(progress.epoch) + 1;
    }
}  // namespace xrnn

#endif
