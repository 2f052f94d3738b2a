// xtensor-rnn: callbacks, the training loop's extension points at the usual moments (Keras's Callback).
//
//   struct halve_each_epoch : xrnn::callback {                 // a learning-rate schedule
//       void on_epoch_begin(xrnn::fit_context& ctx, std::size_t epoch) override {
//           if (epoch > 1) ctx.set_learning_rate(ctx.learning_rate() / 2);
//       }
//   };
//   xrnn::fit_options f;
//   f.add_callback(std::make_shared<halve_each_epoch>());
//
// fit() calls, in this order (E epochs of B batches; a resumed run starts at context.initial_epoch):
//   on_train_begin
//   for each epoch:  on_epoch_begin(epoch), then for each batch: on_batch_begin, [forward, backward, step hooks,
//                    optimizer step], on_batch_end; then validation, then on_epoch_end(logs) with the epoch's logs
//   on_train_end     (not when fit() ends with an exception)
// A callback ends training by setting context.stop_training: after the current batch when set in a batch moment
// (the epoch then finishes: validation, on_epoch_end), after the current epoch when set in on_epoch_end. Callbacks
// run in the order fit_options lists them; the built-in ones (progress first, early stopping and checkpointing
// last, so that they see a stop any other callback asked for) are written as callbacks too.
#ifndef XRNN_MODEL_CALLBACKS_HPP
#define XRNN_MODEL_CALLBACKS_HPP

#include <cstddef>
#include <functional>
#include <string>
#include <utility>

#include <xrnn/config.hpp>
#include <xrnn/model/compiled_optimizer.hpp>
#include <xrnn/model/history.hpp>

namespace xrnn
{
    /// What an epoch-end function returns (fit_options::on_epoch_end).
    enum class fit_control
    {
        proceed,
        stop
    };

    /// One batch: passed to on_batch_begin (before it runs: loss and running values are those before it) and to
    /// on_batch_end (after the optimizer step, or after the batch was skipped for a non-finite loss).
    struct batch_logs
    {
        std::size_t epoch = 0;     // 1-based
        std::size_t step = 0;      // 1-based, within the epoch
        std::size_t steps = 0;     // batches per epoch
        std::size_t size = 0;      // samples in this batch
        double loss = 0.0;         // this batch's mean loss (on_batch_end)
        bool skipped = false;      // dropped for a non-finite loss or gradient (non_finite_loss::skip)
        double running_loss = 0.0;    // mean over the epoch's batches so far (skipped ones excluded)
        double running_metric = 0.0;
    };

    /// What every callback sees and may change: where training stands, the history so far, the learning rate,
    /// and the request to stop (Keras's model.stop_training).
    class fit_context
    {
    public:
        fit_context(std::size_t epochs, std::size_t steps_per_epoch, std::size_t initial_epoch, std::string metric,
                    const xrnn::history& past, learning_rate_control& optimizer)
            : epochs(epochs)
            , steps_per_epoch(steps_per_epoch)
            , initial_epoch(initial_epoch)
            , metric_name(std::move(metric))
            , m_history(&past)
            , m_optimizer(&optimizer)
        {
        }

        const std::size_t epochs;           // fit_options::epochs, the last epoch that will run
        const std::size_t steps_per_epoch;  // batches per epoch
        const std::size_t initial_epoch;    // 1, or the epoch after a checkpoint's when resumed
        const std::string metric_name;      // "accuracy" or "mae"
        std::size_t epoch = 0;              // the current epoch (0 before the first)
        bool stop_training = false;         // set to end training (see the header comment for when)

        /// Every finished epoch, those before a resumed checkpoint included.
        const xrnn::history& history() const noexcept
        {
            return *m_history;
        }

        /// The optimizer's learning rate (state_error if the compiled optimizer has no `learning_rate`).
        double learning_rate() const
        {
            return m_optimizer->learning_rate();
        }

        /// Sets the learning rate of the following optimizer steps (a schedule; it is checkpointed with the
        /// optimizer's state). value_error unless finite and >= 0.
        void set_learning_rate(double rate)
        {
            m_optimizer->set_learning_rate(rate);
        }

        bool has_learning_rate() const noexcept
        {
            return m_optimizer->has_learning_rate();
        }

    private:
        const xrnn::history* m_history;
        learning_rate_control* m_optimizer;
    };

    /// The base of every callback; each moment does nothing unless overridden.
    class callback
    {
    public:
        virtual ~callback() = default;
        virtual void on_train_begin(fit_context&)
        {
        }
        virtual void on_epoch_begin(fit_context&, std::size_t /*epoch*/)
        {
        }
        virtual void on_batch_begin(fit_context&, const batch_logs&)
        {
        }
        virtual void on_batch_end(fit_context&, const batch_logs&)
        {
        }
        virtual void on_epoch_end(fit_context&, const epoch_logs&)
        {
        }
        virtual void on_train_end(fit_context&)
        {
        }
    };

    /// A callback from functions, one per moment, any of them empty (Keras's LambdaCallback).
    struct lambda_callback : callback
    {
        std::function<void(fit_context&)> train_begin;
        std::function<void(fit_context&, std::size_t)> epoch_begin;
        std::function<void(fit_context&, const batch_logs&)> batch_begin;
        std::function<void(fit_context&, const batch_logs&)> batch_end;
        std::function<void(fit_context&, const epoch_logs&)> epoch_end;
        std::function<void(fit_context&)> train_end;

        void on_train_begin(fit_context& c) override
        {
            if (train_begin) train_begin(c);
        }
        void on_epoch_begin(fit_context& c, std::size_t epoch) override
        {
            if (epoch_begin) epoch_begin(c, epoch);
        }
        void on_batch_begin(fit_context& c, const batch_logs& b) override
        {
            if (batch_begin) batch_begin(c, b);
        }
        void on_batch_end(fit_context& c, const batch_logs& b) override
        {
            if (batch_end) batch_end(c, b);
        }
        void on_epoch_end(fit_context& c, const epoch_logs& e) override
        {
            if (epoch_end) epoch_end(c, e);
        }
        void on_train_end(fit_context& c) override
        {
            if (train_end) train_end(c);
        }
    };

    namespace detail
    {
        /// fit_options::on_epoch_end's functions as a callback: fit_control::stop sets stop_training.
        class epoch_end_function final : public callback
        {
        public:
            explicit epoch_end_function(const std::function<fit_control(const epoch_logs&)>& f)
                : m_f(f)
            {
            }
            void on_epoch_end(fit_context& context, const epoch_logs& logs) override
            {
                if (m_f(logs) == fit_control::stop)
                {
                    context.stop_training = true;
                }
            }

        private:
            const std::function<fit_control(const epoch_logs&)>& m_f;
        };
    }  // namespace detail
}  // namespace xrnn

#endif
