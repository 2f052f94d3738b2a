// xtensor-rnn: gradient utilities and optimizers over any set of layers.
//
// Every layer exposes for_each_parameter(f), calling f(name, value, gradient) per tensor. That one visitor
// drives zero_grad, clipping and the optimizers here (and gradient checks in the tests), so a new layer
// needs nothing else to be trained. Gradients accumulate (+=) in backward and are zeroed separately.
//
// Update rules, as PyTorch writes them (g = gradient + weight_decay * p, t = step count from 1):
//   sgd:      v = momentum * v + g (v = g at t = 1);  p -= lr * (nesterov ? g + momentum * v : v)
//   adam:     m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//             p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
//   rmsprop:  v = alpha v + (1 - alpha) g^2;  p -= lr * g / (sqrt(v) + eps)
//
// Each step is one SIMD pass over each parameter (detail/fused_updates.hpp), large parameters split over xrnn's
// threads.
//
// Settings are checked where they are set, and again at every step (the fields are public) and at restore():
// learning rates, momentum and weight decay finite and >= 0, Adam's betas and RMSProp's alpha in [0, 1), epsilon
// > 0, Nesterov only with momentum; a value_error names the setting. Step counts stay below 2^53.
//
// Each optimizer's whole state (hyper-parameters, step count, per-parameter buffers) can be taken out as an
// optimizer_snapshot and put back with restore(): that is what a training checkpoint stores (io/checkpoint.hpp).
// The per-parameter state, the snapshot and the checks of settings are in optimizer_state.hpp.
#ifndef XRNN_OPTIM_HPP
#define XRNN_OPTIM_HPP

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <xtensor/xnoalias.hpp>
#include <xtensor/xtensor.hpp>

#include <xrnn/config.hpp>
#include <xrnn/detail/fused_updates.hpp>
#include <xrnn/detail/tensor.hpp>
#include <xrnn/optimizer_state.hpp>

namespace xrnn
{
    template <class... Layers>
    void zero_grad(Layers&... layers)
    {
        for_each_parameter([](const auto&, auto&, auto& grad) { grad.fill(0); }, layers...);
    }

    /// Scales all gradients together so that their global L2 norm is at most max_norm (PyTorch's
    /// clip_grad_norm_, with its 1e-6 guard). Returns the norm before clipping.
    template <class... Layers>
    double clip_grad_norm(double max_norm, Layers&... layers)
    {
        double sum_of_squares = 0.0;
        for_each_parameter(
            [&](const auto&, auto&, auto& grad) {
                for (auto g : grad)
                {
                    sum_of_squares += static_cast<double>(g) * static_cast<double>(g);
                }
            },
            layers...);
        const double norm = std::sqrt(sum_of_squares);
        const double scale = max_norm / (norm + 1e-6);
        if (scale < 1.0)
        {
            for_each_parameter(
                [&](const auto&, auto&, auto& grad) {
                    using T = typename std::decay_t<decltype(grad)>::value_type;
                    xt::noalias(grad) *= static_cast<T>(scale);
                },
                layers...);
        }
        return norm;
    }

    /// Clamps every gradient element to [-limit, limit].
    template <class... Layers>
    void clip_grad_value(double limit, Layers&... layers)
    {
        for_each_parameter(
            [&](const auto&, auto&, auto& grad) {
                using T = typename std::decay_t<decltype(grad)>::value_type;
                grad = xt::clip(grad, static_cast<T>(-limit), static_cast<T>(limit));
            },
            layers...);
    }

    /// Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay.
    template <class T>
    class sgd
    {
    public:
        explicit sgd(double learning_rate = 0.01, double momentum = 0.0, bool nesterov = false,
                     double weight_decay = 0.0)
            : learning_rate(learning_rate)
            , momentum(momentum)
            , nesterov(nesterov)
            , weight_decay(weight_decay)
        {
            check_settings("sgd", learning_rate, momentum, nesterov, weight_decay);
        }

        template <class... Layers>
        void step(Layers&... layers)
        {
            check_settings("sgd::step", learning_rate, momentum, nesterov, weight_decay);  // public: may have changed
            m_state.prepare("sgd", layers...);
            ++m_steps;
            std::size_t index = 0;
            const T lr = static_cast<T>(learning_rate);
            const T mu = static_cast<T>(momentum);
            const T wd = static_cast<T>(weight_decay);
            for_each_parameter(
                [&](const auto&, auto& value, auto& grad) {
                    const std::size_t n = value.size();
                    auto [velocity_data] = m_state.slots(index++);
                    detail::sgd_update(value.data(), grad.data(), velocity_data, n,
                                       detail::sgd_constants<T>{lr, mu, wd, nesterov, m_steps == 1});
                },
                layers...);
        }

        std::size_t steps() const noexcept
        {
            return m_steps;
        }

        /// Hyper-parameters, step count and momentum buffers, for a checkpoint.
        optimizer_snapshot<T> snapshot() const
        {
            return detail::make_snapshot<T>("sgd", hyper_names(),
                                            {learning_rate, momentum, nesterov ? 1.0 : 0.0, weight_decay}, m_steps,
                                            {"momentum_buffer"}, m_state);
        }

        /// Puts back a snapshot(), hyper-parameters included; value_error and no change when it is not an sgd's.
        void restore(const optimizer_snapshot<T>& snapshot)
        {
            detail::check_snapshot(snapshot, "sgd", hyper_names(), {"momentum_buffer"});
            if (snapshot.hyper[2] != 0.0 && snapshot.hyper[2] != 1.0)
            {
                throw value_error("sgd::restore: expected nesterov 0 or 1 but got " + std::to_string(snapshot.hyper[2]));
            }
            check_settings("sgd::restore", snapshot.hyper[0], snapshot.hyper[1], snapshot.hyper[2] == 1.0,
                           snapshot.hyper[3]);
            auto state = detail::optimizer_state<T, 1>::from(snapshot, "sgd");
            learning_rate = snapshot.hyper[0];
            momentum = snapshot.hyper[1];
            nesterov = snapshot.hyper[2] == 1.0;
            weight_decay = snapshot.hyper[3];
            m_steps = static_cast<std::size_t>(snapshot.steps);
            m_state = std::move(state);
        }

        double learning_rate;
        double momentum;
        bool nesterov;
        double weight_decay;

    private:
        static std::vector<std::string> hyper_names()
        {
            return {"learning_rate", "momentum", "nesterov", "weight_decay"};
        }

        static void check_settings(const char* where, double lr, double mu, bool nesterov, double wd)
        {
            detail::check_setting(where, "learning_rate", lr, 0.0, std::numeric_limits<double>::infinity(), true, false);
            detail::check_setting(where, "momentum", mu, 0.0, std::numeric_limits<double>::infinity(), true, false);
            detail::check_setting(where, "weight_decay", wd, 0.0, std::numeric_limits<double>::infinity(), true, false);
            if (nesterov && mu == 0.0)
            {
                throw value_error(std::string(where) + ": nesterov needs a momentum above 0");
            }
        }

        std::size_t m_steps = 0;
        detail::optimizer_state<T, 1> m_state;
    };

    /// Adam (Kingma and Ba), PyTorch's form and defaults; weight_decay is L2 added to the gradient.
    template <class T>
    class adam
    {
    public:
        explicit adam(double learning_rate = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8,
                      double weight_decay = 0.0)
            : learning_rate(learning_rate)
            , beta1(beta1)
            , beta2(beta2)
            , epsilon(epsilon)
            , weight_decay(weight_decay)
        {
            check_settings("adam", learning_rate, beta1, beta2, epsilon, weight_decay);
        }

        template <class... Layers>
        void step(Layers&... layers)
        {
            check_settings("adam::step", learning_rate, beta1, beta2, epsilon, weight_decay);  // public: may have changed
            m_state.prepare("adam", layers...);
            ++m_steps;
            std::size_t index = 0;
            const double t = static_cast<double>(m_steps);
            const T step_size = static_cast<T>(learning_rate / (1.0 - std::pow(beta1, t)));
            const T bias_correction2_sqrt = static_cast<T>(std::sqrt(1.0 - std::pow(beta2, t)));
            const T b1 = static_cast<T>(beta1);
            const T b2 = static_cast<T>(beta2);
            const T eps = static_cast<T>(epsilon);
            const T wd = static_cast<T>(weight_decay);
            for_each_parameter(
                [&](const auto&, auto& value, auto& grad) {
                    const std::size_t n = value.size();
                    auto [m_data, v_data] = m_state.slots(index++);
                    detail::adam_update(value.data(), grad.data(), m_data, v_data, n,
                                        detail::adam_constants<T>{b1, b2, step_size, bias_correction2_sqrt, eps, wd});
                },
                layers...);
        }

        std::size_t steps() const noexcept
        {
            return m_steps;
        }

        /// Hyper-parameters, step count and both moment buffers, for a checkpoint.
        optimizer_snapshot<T> snapshot() const
        {
            return detail::make_snapshot<T>("adam", hyper_names(), {learning_rate, beta1, beta2, epsilon, weight_decay},
                                            m_steps, {"exp_avg", "exp_avg_sq"}, m_state);
        }

        /// Puts back a snapshot(), hyper-parameters included; value_error and no change when it is not an adam's.
        void restore(const optimizer_snapshot<T>& snapshot)
        {
            detail::check_snapshot(snapshot, "adam", hyper_names(), {"exp_avg", "exp_avg_sq"});
            check_settings("adam::restore", snapshot.hyper[0], snapshot.hyper[1], snapshot.hyper[2], snapshot.hyper[3],
                           snapshot.hyper[4]);
            auto state = detail::optimizer_state<T, 2>::from(snapshot, "adam");
            learning_rate = snapshot.hyper[0];
            beta1 = snapshot.hyper[1];
            beta2 = snapshot.hyper[2];
            epsilon = snapshot.hyper[3];
            weight_decay = snapshot.hyper[4];
            m_steps = static_cast<std::size_t>(snapshot.steps);
            m_state = std::move(state);
        }

        double learning_rate;
        double beta1;
        double beta2;
        double epsilon;
        double weight_decay;

    private:
        static std::vector<std::string> hyper_names()
        {
            return {"learning_rate", "beta1", "beta2", "epsilon", "weight_decay"};
        }

        static void check_settings(const char* where, double lr, double b1, double b2, double eps, double wd)
        {
            detail::check_setting(where, "learning_rate", lr, 0.0, std::numeric_limits<double>::infinity(), true, false);
            detail::check_setting(where, "beta1", b1, 0.0, 1.0, true, false);
            detail::check_setting(where, "beta2", b2, 0.0, 1.0, true, false);
            detail::check_setting(where, "epsilon", eps, 0.0, std::numeric_limits<double>::infinity(), false, false);
            detail::check_setting(where, "weight_decay", wd, 0.0, std::numeric_limits<double>::infinity(), true, false);
        }

        std::size_t m_steps = 0;
        detail::optimizer_state<T, 2> m_state;
    };

    /// RMSProp (Hinton), PyTorch's form: no momentum, not centered.
    template <class T>
    class rmsprop
    {
    public:
        explicit rmsprop(double learning_rate = 1e-3, double alpha = 0.99, double epsilon = 1e-8,
                         double weight_decay = 0.0)
            : learning_rate(learning_rate)
            , alpha(alpha)
            , epsilon(epsilon)
            , weight_decay(weight_decay)
        {
            check_settings("rmsprop", learning_rate, alpha, epsilon, weight_decay);
        }

        template <class... Layers>
        void step(Layers&... layers)
        {
            check_settings("rmsprop::step", learning_rate, alpha, epsilon, weight_decay);  // public: may have changed
            m_state.prepare("rmsprop", layers...);
            ++m_steps;
            std::size_t index = 0;
            const T lr = static_cast<T>(learning_rate);
            const T a = static_cast<T>(alpha);
            const T eps = static_cast<T>(epsilon);
            const T wd = static_cast<T>(weight_decay);
            for_each_parameter(
                [&](const auto&, auto& value, auto& grad) {
                    const std::size_t n = value.size();
                    auto [v_data] = m_state.slots(index++);
                    detail::rmsprop_update(value.data(), grad.data(), v_data, n,
                                           detail::rmsprop_constants<T>{lr, a, eps, wd});
                },
                layers...);
        }

        std::size_t steps() const noexcept
        {
            return m_steps;
        }

        /// Hyper-parameters, step count and the squared-gradient averages, for a checkpoint.
        optimizer_snapshot<T> snapshot() const
        {
            return detail::make_snapshot<T>("rmsprop", hyper_names(), {learning_rate, alpha, epsilon, weight_decay},
                                            m_steps, {"square_avg"}, m_state);
        }

        /// Puts back a snapshot(), hyper-parameters included; value_error and no change when it is not an rmsprop's.
        void restore(const optimizer_snapshot<T>& snapshot)
        {
            detail::check_snapshot(snapshot, "rmsprop", hyper_names(), {"square_avg"});
            check_settings("rmsprop::restore", snapshot.hyper[0], snapshot.hyper[1], snapshot.hyper[2],
                           snapshot.hyper[3]);
            auto state = detail::optimizer_state<T, 1>::from(snapshot, "rmsprop");
            learning_rate = snapshot.hyper[0];
            alpha = snapshot.hyper[1];
            epsilon = snapshot.hyper[2];
            weight_decay = snapshot.hyper[3];
            m_steps = static_cast<std::size_t>(snapshot.steps);
            m_state = std::move(state);
        }

        double learning_rate;
        double alpha;
        double epsilon;
        double weight_decay;

    private:
        static std::vector<std::string> hyper_names()
        {
            return {"learning_rate", "alpha", "epsilon", "weight_decay"};
        }

        static void check_settings(const char* where, double lr, double a, double eps, double wd)
        {
            detail::check_setting(where, "learning_rate", lr, 0.0, std::numeric_limits<double>::infinity(), true, false);
            detail::check_setting(where, "alpha", a, 0.0, 1.0, true, false);
            detail::check_setting(where, "epsilon", eps, 0.0, std::numeric_limits<double>::infinity(), false, false);
            detail::check_setting(where, "weight_decay", wd, 0.0, std::numeric_limits<double>::infinity(), true, false);
        }

        std::size_t m_steps = 0;
        detail::optimizer_state<T, 1> m_state;
    };
}  // namespace xrnn

#endif
