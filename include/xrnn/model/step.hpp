// xtensor-rnn: what happens between backward and the optimizer step: the non-finite check, then the step hooks,
// functions that see (and may change) every gradient of the model.
//
//   xrnn::fit_options f;
//   f.add_step_hook([](xrnn::gradient_set& g, const xrnn::batch_logs& batch) {   // a gradient-noise monitor
//       std::printf("epoch %zu step %zu |g| %g\n", batch.epoch, batch.step, g.norm());
//   });
//   f.add_step_hook([&](xrnn::gradient_set& g, const xrnn::batch_logs&) {          // averaging across processes
//       g.for_each([&](const std::string&, auto* values, std::size_t n) { allreduce_mean(values, n); });
//   });
//
// Per batch, fit() runs: forward, loss, backward; then (1) a non-finite loss or gradient stops training or skips
// the batch (fit_options::on_non_finite_loss), so hooks only ever see finite gradients; then (2) the hooks of
// fit_options::step_hooks in order; then (3) clip_norm's built-in hook when clip_norm > 0 (after the user's hooks,
// so that gradients averaged across processes are clipped as one); then the optimizer step.
#ifndef XRNN_MODEL_STEP_HPP
#define XRNN_MODEL_STEP_HPP

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <xrnn/config.hpp>
#include <xrnn/model/callbacks.hpp>

namespace xrnn
{
    /// What fit() does when a batch's loss is NaN or infinite, or its gradient is (a finite loss can still
    /// overflow in backward): the step would leave weights that are not numbers.
    enum class non_finite_loss
    {
        stop,  // throw xrnn::value_error naming the epoch and step; the weights stay those of the last good step
        skip   // drop the batch without updating the weights, count it in epoch_logs::skipped_steps
    };

    /// Every gradient tensor of a model, by name ("<layer>.<parameter>"), as contiguous float or double values.
    class gradient_set
    {
    public:
        /// Collects the gradients of a model or layer (anything with for_each_parameter).
        template <class Model>
        void collect(Model& model)
        {
            m_tensors.clear();
            model.for_each_parameter([&](const auto& name, auto&, auto& grad) {
                using G = typename std::decay_t<decltype(grad)>::value_type;
                const std::size_t width = grad.dimension() >= 2 ? grad.shape()[grad.dimension() - 1] : 0;
                m_tensors.push_back(
                    tensor{std::string(name), grad.data(), grad.size(), std::is_same<G, double>::value, width});
            });
        }

        /// Number of tensors.
        std::size_t size() const noexcept
        {
            return m_tensors.size();
        }

        /// Number of values in all tensors.
        std::size_t value_count() const noexcept
        {
            std::size_t n = 0;
            for (const tensor& t : m_tensors)
            {
                n += t.size;
            }
            return n;
        }

        /// Calls f(name, values, count) for every tensor, values being float* or double* (a generic lambda takes
        /// both; a function of one of them is refused at run time for a model of the other type).
        template <class F>
        void for_each(F&& f)
        {
            for (const tensor& t : m_tensors)
            {
                if (t.is_double)
                {
                    call<double>(f, t);
                }
                else
                {
                    call<float>(f, t);
                }
            }
        }

        /// for_each with the row width: f(name, values, count, width), width being the last extent of a tensor of
        /// two or more dimensions (an embedding's gradient has one row per token) and 0 for a vector.
        template <class F>
        void for_each_with_rows(F&& f)
        {
            for (const tensor& t : m_tensors)
            {
                if (t.is_double)
                {
                    f(t.name, static_cast<double*>(t.data), t.size, t.row_width);
                }
                else
                {
                    f(t.name, static_cast<float*>(t.data), t.size, t.row_width);
                }
            }
        }

        /// The global L2 norm of all gradients (summed in double, in order, as clip_grad_norm does).
        double norm()
        {
            double sum_of_squares = 0.0;
            for_each([&](const std::string&, auto* g, std::size_t n) {
                for (std::size_t i = 0; i < n; ++i)
                {
                    sum_of_squares += static_cast<double>(g[i]) * static_cast<double>(g[i]);
                }
            });
            return std::sqrt(sum_of_squares);
        }

        /// Multiplies every gradient by factor (rounded to the gradients' type first).
        void scale(double factor)
        {
            for_each([&](const std::string&, auto* g, std::size_t n) {
                using G = std::remove_pointer_t<decltype(g)>;
                const G f = static_cast<G>(factor);
                for (std::size_t i = 0; i < n; ++i)
                {
                    g[i] *= f;
                }
            });
        }

        /// clip_grad_norm on these gradients, with the same result to the bit: (1) norm = ||g||_2,
        /// (2) g *= max_norm / (norm + 1e-6) when that factor is below 1. Returns the norm before clipping.
        double clip_norm(double max_norm)
        {
            const double total = norm();
            const double factor = max_norm / (total + 1e-6);
            if (factor < 1.0)
            {
                scale(factor);
            }
            return total;
        }

        /// Whether every gradient is finite.
        bool all_finite()
        {
            bool finite = true;
            for_each([&](const std::string&, auto* g, std::size_t n) { finite = finite && values_finite(g, n); });
            return finite;
        }

        /// Whether n floats or doubles are all finite: an exponent of all ones is inf or nan. Integer bit tests
        /// vectorise, where a floating-point sum or one std::isfinite per element would not.
        template <class G>
        static bool values_finite(const G* values, std::size_t n) noexcept
        {
            using bits_type = std::conditional_t<sizeof(G) == 4, std::uint32_t, std::uint64_t>;
            static_assert(sizeof(G) == sizeof(bits_type), "xrnn: gradients are float or double");
            constexpr bits_type exponent = sizeof(G) == 4 ? bits_type(0x7f800000u) : bits_type(0x7ff0000000000000ull);
            bits_type bad = 0;
            for (std::size_t i = 0; i < n; ++i)
            {
                bits_type bits;
                std::memcpy(&bits, values + i, sizeof bits);
                bad |= static_cast<bits_type>((bits & exponent) == exponent);
            }
            return bad == 0;
        }

    private:
        struct tensor
        {
            std::string name;
            void* data;
            std::size_t size;
            bool is_double;
            std::size_t row_width;
        };

        template <class G, class F>
        static void call(F& f, const tensor& t)
        {
            if constexpr (std::is_invocable<F&, const std::string&, G*, std::size_t>::value)
            {
                f(t.name, static_cast<G*>(t.data), t.size);
            }
            else
            {
                throw state_error(std::string("gradient_set::for_each: the gradients are ")
                                  + (std::is_same<G, double>::value ? "double" : "float")
                                  + " but the function does not take " + (std::is_same<G, double>::value ? "double*" : "float*"));
            }
        }

        std::vector<tensor> m_tensors;
    };

    /// A function run on every batch between backward and the optimizer step (see the header comment).
    using step_hook = std::function<void(gradient_set&, const batch_logs&)>;

    namespace detail
    {
        /// (1) of the header comment: true when the batch may step; false when it is to be skipped; throws
        /// value_error (naming epoch and step) when the policy is to stop.
        inline bool admit_step(non_finite_loss policy, double loss, bool gradients_finite, bool weights_finite,
                               std::size_t epoch, std::size_t step, std::size_t steps)
        {
            const bool finite_loss = std::isfinite(loss);
            if (finite_loss && gradients_finite)
            {
                return true;
            }
            if (policy == non_finite_loss::skip && weights_finite)
            {
                return false;
            }
            std::ostringstream message;
            message << "fit: the " << (finite_loss ? "gradient" : "loss") << " became ";
            if (finite_loss)
            {
                message << "inf or nan (the loss was " << loss << ")";
            }
            else
            {
                message << loss;
            }
            message << " at epoch " << epoch << ", step " << step << " of " << steps << "; training stopped";
            if (weights_finite)
            {
                message << " and the weights are those of the last good step (lower the learning rate, set clip_norm, "
                        << "or set on_non_finite_loss to skip)";
            }
            else
            {
                // skipping cannot help: every later batch would meet the same weights
                message << " because the weights are no longer finite: an optimizer step before this one overflowed "
                        << "them (lower the learning rate or set clip_norm), so they are not usable; load them "
                        << "again from a checkpoint or a weight file";
            }
            throw value_error(message.str());
        }

        /// Whether every parameter of a model is finite (asked only once a loss or gradient is not).
        template <class Model>
        bool weights_finite(Model& model)
        {
            bool finite = true;
            model.for_each_parameter([&](const auto&, auto& value, auto&) {
                finite = finite && gradient_set::values_finite(value.data(), value.size());
            });
            return finite;
        }

        /// fit_options::clip_norm as a step hook.
        inline step_hook clip_norm_hook(double max_norm)
        {
            return [max_norm](gradient_set& gradients, const batch_logs&) { gradients.clip_norm(max_norm); };
        }
    }  // namespace detail
}  // namespace xrnn

#endif
