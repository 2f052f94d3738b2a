// xtensor-rnn: early stopping, written as a training callback (Keras's EarlyStopping).
//
//   xrnn::fit_options f;
//   f.early_stop = xrnn::early_stopping{"val_loss", 0.0, 2, true};   // patience 2, restore the best weights
//
// After each epoch the monitored value is compared with the best so far: it improves when it is lower (losses,
// mae) or higher (accuracy) by more than min_delta; the first epoch of a run always improves. After `patience`
// epochs in a row without improvement the callback sets stop_training. With restore_best_weights the weights of
// the best epoch are copied when it ends and put back when training ends, whether it stopped early or not.
// Its state (best value, epochs without improvement, best weights) is part of a checkpoint.
#ifndef XRNN_MODEL_EARLY_STOPPING_HPP
#define XRNN_MODEL_EARLY_STOPPING_HPP

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <xrnn/config.hpp>
#include <xrnn/io/weights.hpp>
#include <xrnn/model/callbacks.hpp>
#include <xrnn/model/history.hpp>

namespace xrnn
{
    /// Keras's EarlyStopping: stop when `monitor` has not improved by more than min_delta for `patience` epochs.
    struct early_stopping
    {
        std::string monitor = "val_loss";  // "loss", "val_loss", "accuracy", "val_accuracy", "mae", "val_mae"
        double min_delta = 0.0;
        std::size_t patience = 0;
        bool restore_best_weights = false;
    };

    /// Where early stopping stands (saved in checkpoints).
    template <class T>
    struct early_stopping_state
    {
        double best = 0.0;                         // the best monitored value so far
        std::size_t epochs_without_improvement = 0;
        std::vector<std::vector<T>> best_weights;  // restore_best_weights: the best epoch's parameters, or none
    };

    /// The callback; without a rule it only keeps a resumed state and restores its best weights at the end.
    template <class Model>
    class early_stopping_callback final : public callback
    {
    public:
        using state_type = early_stopping_state<typename Model::value_type>;

        /// Checks the rule: value_error for an unknown monitor, or a val_ one without validation data.
        early_stopping_callback(Model& model, std::optional<early_stopping> rule, const std::string& metric,
                                bool has_validation)
            : m_model(model)
            , m_rule(std::move(rule))
            , m_metric(metric)
        {
            if (!m_rule)
            {
                return;
            }
            const std::string& monitor = m_rule->monitor;
            const bool known = monitor == "loss" || monitor == "val_loss" || monitor == metric
                               || monitor == "val_" + metric;
            if (!known)
            {
                throw value_error("fit: early_stopping monitors '" + monitor + "', expected one of loss, val_loss, "
                                  + metric + ", val_" + metric);
            }
            if (monitor.rfind("val_", 0) == 0 && !has_validation)
            {
                throw value_error("fit: early_stopping monitors '" + monitor
                                  + "' but there is no validation data (set validation_split or pass x_val, y_val)");
            }
        }

        const state_type& state() const noexcept
        {
            return m_state;
        }

        /// A state from a checkpoint.
        void restore(state_type state)
        {
            m_state = std::move(state);
        }

        void on_epoch_end(fit_context& context, const epoch_logs& logs) override
        {
            if (!m_rule)
            {
                return;
            }
            const early_stopping& rule = *m_rule;
            const auto [value, lower_is_better] = monitored(logs);
            const bool improved = logs.epoch == 1
                                  || (lower_is_better ? value < m_state.best - rule.min_delta
                                                      : value > m_state.best + rule.min_delta);
            if (improved)
            {
                m_state.best = value;
                m_state.epochs_without_improvement = 0;
                if (rule.restore_best_weights)
                {
                    m_state.best_weights = io::copy_parameters(m_model);
                }
            }
            else if (++m_state.epochs_without_improvement > rule.patience)
            {
                context.stop_training = true;
            }
        }

        void on_train_end(fit_context&) override
        {
            if (!m_state.best_weights.empty())
            {
                io::commit_parameters(m_state.best_weights, m_model);  // stopped early or not
            }
        }

    private:
        /// The monitored value of an epoch, and whether lower is better.
        std::pair<double, bool> monitored(const epoch_logs& logs) const
        {
            const std::string& monitor = m_rule->monitor;
            if (monitor == "loss") return {logs.loss, true};
            if (monitor == "val_loss") return {logs.val_loss, true};
            if (monitor == m_metric) return {logs.metric, m_metric == "mae"};
            return {logs.val_metric, m_metric == "mae"};  // "val_" + metric, checked by the constructor
        }

        Model& m_model;
        std::optional<early_stopping> m_rule;
        std::string m_metric;
        state_type m_state;
    };
}  // namespace xrnn

#endif
