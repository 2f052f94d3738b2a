// xtensor-rnn: Keras-style progress while training.
//
//   epoch 2/5  313/313 [==============================] 48s 147ms/step - accuracy: 0.7579 - loss: 0.5022 - val_accuracy: 0.7680 - val_loss: 0.5285
//
// On a terminal the line is redrawn in place as the epoch advances; into a file or a pipe only the finished
// line of each epoch is written, so logs stay readable.
#ifndef XRNN_MODEL_PROGRESS_HPP
#define XRNN_MODEL_PROGRESS_HPP

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <iostream>
#include <ostream>
#include <string>

#if defined(_WIN32)
#include <io.h>
#else
#include <unistd.h>
#endif

#include <xrnn/model/history.hpp>

namespace xrnn
{
    /// How fit() reports progress.
    enum class progress
    {
        automatic,  // live when the stream is std::cout or std::cerr/std::clog on a terminal, per_epoch otherwise
        live,       // one line per epoch, redrawn in place with '\r'
        per_epoch,  // one finished line per epoch
        silent
    };

    namespace detail
    {
        inline bool is_terminal(const std::ostream* out)
        {
#if defined(_WIN32)
            if (out == &std::cout) return _isatty(1) != 0;
            if (out == &std::cerr || out == &std::clog) return _isatty(2) != 0;
#else
            if (out == &std::cout) return isatty(1) != 0;
            if (out == &std::cerr || out == &std::clog) return isatty(2) != 0;
#endif
            return false;
        }

        /// "48s", "1.2s"; "147ms", "850us" for per-step times.
        inline std::string format_duration(double seconds, bool per_step)
        {
            char text[32];
            if (!per_step)
            {
                std::snprintf(text, sizeof text, seconds < 10.0 ? "%.1fs" : "%.0fs", seconds);
            }
            else if (seconds >= 1.0)
            {
                std::snprintf(text, sizeof text, "%.1fs/step", seconds);
            }
            else if (seconds >= 1e-3)
            {
                std::snprintf(text, sizeof text, "%.0fms/step", seconds * 1e3);
            }
            else
            {
                std::snprintf(text, sizeof text, "%.0fus/step", seconds * 1e6);
            }
            return text;
        }

        class progress_printer
        {
            using clock = std::chrono::steady_clock;
            static constexpr std::size_t bar_width = 30;

        public:
            progress_printer(std::ostream* out, progress kind, std::string metric_name)
                : m_out(out)
                , m_live(kind == progress::live || (kind == progress::automatic && is_terminal(out)))
                , m_silent(kind == progress::silent || out == nullptr)
                , m_metric_name(std::move(metric_name))
            {
            }

            void begin_epoch(std::size_t epoch, std::size_t epochs, std::size_t steps)
            {
                m_epoch = epoch;
                m_epochs = epochs;
                m_steps = steps;
                m_start = clock::now();
                m_last_draw = m_start - std::chrono::seconds(1);
            }

            /// After each step: redraws the live line at most ten times a second.
            void step(std::size_t done, double loss, double metric)
            {
                if (m_silent || !m_live)
                {
                    return;
                }
                const auto now = clock::now();
                if (done != m_steps && now - m_last_draw < std::chrono::milliseconds(100))
                {
                    return;
                }
                m_last_draw = now;
                const double elapsed = std::chrono::duration<double>(now - m_start).count();
                std::string text = head(done) + " " + format_duration(elapsed, false) + " "
                                   + format_duration(elapsed / static_cast<double>(done == 0 ? 1 : done), true)
                                   + values(loss, metric);
                draw(text);
            }

            void end_epoch(const epoch_logs& logs)
            {
                if (m_silent)
                {
                    return;
                }
                std::string text = head(m_steps) + " " + format_duration(logs.seconds, false) + " "
                                   + format_duration(logs.seconds / static_cast<double>(m_steps == 0 ? 1 : m_steps), true)
                                   + values(logs.loss, logs.metric);
                if (logs.has_validation)
                {
                    text += " - val_" + number(m_metric_name, logs.val_metric) + " - val_" + number("loss", logs.val_loss);
                }
                if (logs.skipped_steps != 0)
                {
                    text += " - skipped: " + std::to_string(logs.skipped_steps);
                }
                draw(text);
                *m_out << '\n' << std::flush;
                m_width = 0;
            }

        private:
            std::string head(std::size_t done) const
            {
                std::string bar(bar_width, '.');
                const std::size_t filled = m_steps == 0 ? bar_width : done * bar_width / m_steps;
                for (std::size_t i = 0; i < filled; ++i)
                {
                    bar[i] = '=';
                }
                if (filled < bar_width && done != 0)
                {
                    bar[filled] = '>';
                }
                const std::string count = std::to_string(m_steps);
                std::string done_text = std::to_string(done);
                done_text.insert(0, count.size() - std::min(count.size(), done_text.size()), ' ');
                return "epoch " + std::to_string(m_epoch) + "/" + std::to_string(m_epochs) + "  " + done_text + "/"
                       + count + " [" + bar + "]";
            }

            std::string values(double loss, double metric) const
            {
                return " - " + number(m_metric_name, metric) + " - " + number("loss", loss);
            }

            static std::string number(const std::string& name, double value)
            {
                char text[48];
                std::snprintf(text, sizeof text, "%.4f", value);
                return name + ": " + text;
            }

            void draw(const std::string& text)
            {
                if (m_live)
                {
                    // Pad with blanks so a shorter line fully covers the previous one.
                    *m_out << '\r' << text << std::string(m_width > text.size() ? m_width - text.size() : 0, ' ')
                           << std::flush;
                    m_width = text.size();
                }
                else
                {
                    *m_out << text;
                }
            }

            std::ostream* m_out;
            bool m_live;
            bool m_silent;
            std::string m_metric_name;
            std::size_t m_epoch = 0;
            std::size_t m_epochs = 0;
            std::size_t m_steps = 0;
            std::size_t m_width = 0;
            clock::time_point m_start{};
            clock::time_point m_last_draw{};
        };
    }  // namespace detail
}  // namespace xrnn

#endif
