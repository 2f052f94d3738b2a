// xtensor-rnn: what fit() returns: loss and metric per epoch, for training and validation, writable as CSV.
#ifndef XRNN_MODEL_HISTORY_HPP
#define XRNN_MODEL_HISTORY_HPP

#include <cstddef>
#include <fstream>
#include <ostream>
#include <string>
#include <vector>

#include <xrnn/config.hpp>

namespace xrnn
{
    /// What one epoch measured; passed to the epoch-end callbacks and kept, one per epoch, in a history.
    struct epoch_logs
    {
        std::size_t epoch = 0;   // 1-based
        std::size_t epochs = 0;  // how many fit() was asked for
        std::size_t steps = 0;   // optimizer steps taken in this epoch
        std::size_t skipped_steps = 0;  // steps skipped for a non-finite loss (fit_options::on_non_finite_loss)
        double loss = 0.0;       // mean training loss over the epoch's samples (with dropout, as Keras reports it)
        double metric = 0.0;     // accuracy for the classification objectives, mean absolute error for MSE
        bool has_validation = false;
        double val_loss = 0.0;
        double val_metric = 0.0;
        double seconds = 0.0;    // wall time of the epoch, validation included
    };

    /// Loss and metric per epoch (Keras's History).
    class history
    {
    public:
        history() = default;
        explicit history(std::string metric_name)
            : m_metric_name(std::move(metric_name))
        {
        }

        void append(const epoch_logs& logs)
        {
            m_epochs.push_back(logs);
        }

        const std::vector<epoch_logs>& epochs() const noexcept
        {
            return m_epochs;
        }

        std::size_t size() const noexcept
        {
            return m_epochs.size();
        }

        bool empty() const noexcept
        {
            return m_epochs.empty();
        }

        const epoch_logs& back() const
        {
            if (m_epochs.empty())
            {
                throw state_error("history::back: the history is empty (no epoch ran)");
            }
            return m_epochs.back();
        }

        /// "accuracy" or "mae".
        const std::string& metric_name() const noexcept
        {
            return m_metric_name;
        }

        /// epoch,loss,<metric>[,val_loss,val_<metric>],seconds; one row per epoch, full precision.
        void write_csv(std::ostream& out) const
        {
            const bool validation = !m_epochs.empty() && m_epochs.front().has_validation;
            out << "epoch,loss," << m_metric_name;
            if (validation)
            {
                out << ",val_loss,val_" << m_metric_name;
            }
            out << ",seconds\n";
            const auto precision = out.precision(9);
            for (const epoch_logs& e : m_epochs)
            {
                out << e.epoch << ',' << e.loss << ',' << e.metric;
                if (validation)
                {
                    out << ',' << e.val_loss << ',' << e.val_metric;
                }
                out << ',' << e.seconds << '\n';
            }
            out.precision(precision);
        }

        void write_csv(const std::string& path) const
        {
            std::ofstream out(path);
            if (!out)
            {
                throw io_error("history::write_csv: cannot open '" + path + "' for writing");
            }
            write_csv(out);
            out.flush();
            if (!out)
            {
                throw io_error("history::write_csv: writing '" + path + "' failed");
            }
        }

    private:
        std::string m_metric_name = "accuracy";
        std::vector<epoch_logs> m_epochs;
    };
}  // namespace xrnn

#endif
