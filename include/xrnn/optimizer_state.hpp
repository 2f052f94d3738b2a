// xtensor-rnn: what the optimizers of optim.hpp keep between steps, and how it is taken out and put back.
//
// for_each_parameter(f, layers...) visits every parameter tensor of every layer (f(name, value, gradient)); an
// optimizer makes its per-parameter buffers at its first step in that order (detail::optimizer_state) and checks
// at every later step that it is given the same parameters before it changes anything. optimizer_snapshot is an
// optimizer's whole state as plain values (kind, hyper-parameters, step count, buffers), the form a training
// checkpoint stores (io/checkpoint.hpp); restore() checks a snapshot against the optimizer it is put into
// (detail::check_snapshot) and a setting where it is set (detail::check_setting), each failure a value_error
// naming what was expected and what came.
#ifndef XRNN_OPTIMIZER_STATE_HPP
#define XRNN_OPTIMIZER_STATE_HPP

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <xrnn/config.hpp>

namespace xrnn
{
    /// Calls f(name, value, gradient) for every parameter tensor of every layer, in order.
    template <class F, class... Layers>
    void for_each_parameter(F&& f, Layers&... layers)
    {
        (layers.for_each_parameter(f), ...);
    }

    /// An optimizer's whole state as plain values. Restoring it into an optimizer of the same kind makes that
    /// optimizer take exactly the steps the saved one would have taken.
    template <class T>
    struct optimizer_snapshot
    {
        std::string kind;                                // "sgd", "adam" or "rmsprop"
        std::vector<std::string> hyper_names;            // e.g. learning_rate, beta1, ... (booleans as 0 or 1)
        std::vector<double> hyper;                       // their values, in that order
        std::uint64_t steps = 0;                         // steps taken so far
        std::vector<std::string> slot_names;             // the per-parameter buffers, e.g. exp_avg, exp_avg_sq
        std::vector<std::string> parameters;             // parameter names in visiting order; none before a step
        std::vector<std::vector<std::vector<T>>> slots;  // slots[parameter][slot]: that buffer's values
    };

    namespace detail
    {
        /// Per-parameter optimizer state, made at the first step in visiting order. Every step first checks that it
        /// is given the same parameters (names, sizes, count) and only then updates anything, so an optimizer used
        /// with another model fails loudly, before it has changed a weight.
        template <class T, std::size_t Slots>
        class optimizer_state
        {
        public:
            template <class... Layers>
            void prepare(const char* optimizer, Layers&... layers)
            {
                std::size_t index = 0;
                for_each_parameter(
                    [&](const auto& name, auto& value, auto&) {
                        if (m_buffers.empty() || m_creating)
                        {
                            m_creating = true;
                            m_names.emplace_back(name);
                            m_buffers.emplace_back();
                            for (auto& buffer : m_buffers.back())
                            {
                                buffer.assign(value.size(), T(0));
                            }
                        }
                        else if (index >= m_buffers.size())
                        {
                            throw state_error(std::string(optimizer) + "::step: more parameters (" + name
                                              + " is parameter " + std::to_string(index) + ") than the "
                                              + std::to_string(m_buffers.size())
                                              + " of the first step; use one optimizer per model");
                        }
                        else if (m_buffers[index][0].size() != value.size() || m_names[index] != name)
                        {
                            throw state_error(std::string(optimizer) + "::step: parameter " + std::to_string(index)
                                              + " is " + name + " with " + std::to_string(value.size())
                                              + " values, but the state was made for " + m_names[index] + " with "
                                              + std::to_string(m_buffers[index][0].size())
                                              + "; use one optimizer per model");
                        }
                        ++index;
                    },
                    layers...);
                m_creating = false;
                if (index != m_buffers.size())
                {
                    throw state_error(std::string(optimizer) + "::step: " + std::to_string(index)
                                      + " parameters, but the state was made for " + std::to_string(m_buffers.size())
                                      + "; use one optimizer per model");
                }
            }

            /// The Slots state buffers of parameter `index` (after prepare).
            std::array<T*, Slots> slots(std::size_t index)
            {
                std::array<T*, Slots> result{};
                for (std::size_t s = 0; s < Slots; ++s)
                {
                    result[s] = m_buffers[index][s].data();
                }
                return result;
            }

            /// Copies the names and buffers into a snapshot.
            void save_to(optimizer_snapshot<T>& snapshot) const
            {
                snapshot.parameters = m_names;
                snapshot.slots.clear();
                for (const auto& buffers : m_buffers)
                {
                    snapshot.slots.emplace_back(buffers.begin(), buffers.end());
                }
            }

            /// The state a snapshot describes; value_error (and nothing made) when it cannot be this optimizer's.
            static optimizer_state from(const optimizer_snapshot<T>& snapshot, const char* optimizer)
            {
                const auto fail = [&](const std::string& problem) {
                    throw value_error(std::string(optimizer) + "::restore: " + problem);
                };
                if (snapshot.slots.size() != snapshot.parameters.size())
                {
                    fail("expected one set of buffers per parameter (" + std::to_string(snapshot.parameters.size())
                         + ") but got " + std::to_string(snapshot.slots.size()));
                }
                optimizer_state state;
                for (std::size_t k = 0; k < snapshot.parameters.size(); ++k)
                {
                    const auto& buffers = snapshot.slots[k];
                    if (buffers.size() != Slots)
                    {
                        fail("expected " + std::to_string(Slots) + " buffers for " + snapshot.parameters[k]
                             + " but got " + std::to_string(buffers.size()));
                    }
                    state.m_names.push_back(snapshot.parameters[k]);
                    state.m_buffers.emplace_back();
                    for (std::size_t slot = 0; slot < Slots; ++slot)
                    {
                        if (buffers[slot].size() != buffers[0].size())
                        {
                            fail("the buffers of " + snapshot.parameters[k] + " differ in size ("
                                 + std::to_string(buffers[0].size()) + " and " + std::to_string(buffers[slot].size())
                                 + ")");
                        }
                        state.m_buffers.back()[slot] = buffers[slot];
                    }
                }
                return state;
            }

        private:
            std::vector<std::string> m_names;
            std::vector<std::array<std::vector<T>, Slots>> m_buffers;
            bool m_creating = false;
        };

        /// A hyper-parameter in [low, high) (or [low, high] with high_included), finite; value_error naming it.
        inline void check_setting(const char* where, const char* name, double value, double low, double high,
                                  bool low_included, bool high_included)
        {
            const bool above = low_included ? value >= low : value > low;
            const bool below = high_included ? value <= high : value < high;
            if (!(std::isfinite(value) && above && below))
            {
                std::ostringstream message;
                message << where << ": " << name << " expected in " << (low_included ? "[" : "(") << low << ", ";
                if (std::isinf(high))
                {
                    message << "inf)";
                }
                else
                {
                    message << high << (high_included ? "]" : ")");
                }
                message << " but is " << value;
                throw value_error(message.str());
            }
        }

        /// The most steps an optimizer counts: t stays exact as a double (Adam's bias corrections) and never wraps.
        constexpr std::uint64_t max_optimizer_steps = std::uint64_t(1) << 53;

        /// Checks what a snapshot says about the optimizer itself (kind, hyper-parameters, buffers per parameter).
        template <class T>
        void check_snapshot(const optimizer_snapshot<T>& snapshot, const char* kind,
                            const std::vector<std::string>& hyper_names, const std::vector<std::string>& slot_names)
        {
            const std::string where = std::string(kind) + "::restore: ";
            if (snapshot.kind != kind)
            {
                throw value_error(where + "expected the state of a " + kind + " optimizer but got that of '"
                                  + snapshot.kind + "'");
            }
            if (snapshot.hyper_names != hyper_names || snapshot.hyper.size() != hyper_names.size())
            {
                throw value_error(where + "expected " + std::to_string(hyper_names.size())
                                  + " hyper-parameters but got " + std::to_string(snapshot.hyper.size()) + " with "
                                  + std::to_string(snapshot.hyper_names.size()) + " names");
            }
            for (std::size_t k = 0; k < hyper_names.size(); ++k)
            {
                if (!std::isfinite(snapshot.hyper[k]))
                {
                    throw value_error(where + "expected a finite " + hyper_names[k] + " but got "
                                      + std::to_string(snapshot.hyper[k]));
                }
            }
            if (snapshot.steps >= max_optimizer_steps)
            {
                throw value_error(where + "expected a step count below 2^53 but got " + std::to_string(snapshot.steps));
            }
            if (snapshot.slot_names != slot_names)
            {
                throw value_error(where + "expected " + std::to_string(slot_names.size())
                                  + " buffers per parameter but the snapshot names "
                                  + std::to_string(snapshot.slot_names.size()));
            }
        }

        template <class T, class State>
        optimizer_snapshot<T> make_snapshot(const char* kind, std::vector<std::string> hyper_names,
                                            std::vector<double> hyper, std::uint64_t steps,
                                            std::vector<std::string> slot_names, const State& state)
        {
            optimizer_snapshot<T> snapshot;
            snapshot.kind = kind;
            snapshot.hyper_names = std::move(hyper_names);
            snapshot.hyper = std::move(hyper);
            snapshot.steps = steps;
            snapshot.slot_names = std::move(slot_names);
            state.save_to(snapshot);
            return snapshot;
        }
    }  // namespace detail
}  // namespace xrnn

#endif
