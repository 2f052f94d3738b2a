// xtensor-rnn: the optimizer a model keeps after compile(), whatever its type: a value that steps the model, copies
// itself, takes and restores snapshots (for checkpoints), and reads and sets the learning rate (for schedules).
//
//   model.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<float>(1e-3));
//   model.optimizer<xrnn::adam<float>>().beta1 = 0.8;   // the concrete optimizer, by its type
//   model.compiled().set_learning_rate(1e-4);           // any optimizer with a `learning_rate` member
//
// An optimizer is any class with step(model...); the others are optional: snapshot() and restore() (sgd, adam,
// rmsprop have them) for checkpoints, and a public `double learning_rate` for learning-rate schedules. Asking
// for one that the compiled optimizer lacks is an xrnn::state_error that says what is missing.
#ifndef XRNN_MODEL_COMPILED_OPTIMIZER_HPP
#define XRNN_MODEL_COMPILED_OPTIMIZER_HPP

#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include <xrnn/config.hpp>
#include <xrnn/optim.hpp>

namespace xrnn
{
    namespace detail
    {
        template <class Optimizer, class = void>
        struct has_snapshot : std::false_type
        {
        };
        template <class Optimizer>
        struct has_snapshot<Optimizer, std::void_t<decltype(std::declval<const Optimizer&>().snapshot())>>
            : std::true_type
        {
        };

        template <class Optimizer, class = void>
        struct has_learning_rate : std::false_type
        {
        };
        template <class Optimizer>
        struct has_learning_rate<
            Optimizer, std::enable_if_t<std::is_same<decltype(std::declval<Optimizer&>().learning_rate), double>::value>>
            : std::true_type
        {
        };
    }  // namespace detail

    /// What a training callback may change of the optimizer without knowing its type (model/callbacks.hpp).
    class learning_rate_control
    {
    public:
        virtual ~learning_rate_control() = default;
        virtual bool has_learning_rate() const noexcept = 0;
        /// The current learning rate; state_error when the optimizer has no `learning_rate` member.
        virtual double learning_rate() const = 0;
        /// Sets the learning rate used from the next step on; value_error unless finite and >= 0.
        virtual void set_learning_rate(double rate) = 0;
    };

    /// A type-erased optimizer for Model (the model it steps is a parameter of every call).
    template <class Model>
    class compiled_optimizer final : public learning_rate_control
    {
        using T = typename Model::value_type;

    public:
        template <class Optimizer,
                  class = std::enable_if_t<!std::is_same<std::decay_t<Optimizer>, compiled_optimizer>::value>>
        explicit compiled_optimizer(Optimizer optimizer)
            : m_held(std::make_unique<holder<Optimizer>>(std::move(optimizer)))
        {
        }

        compiled_optimizer(const compiled_optimizer& other)
            : m_held(other.m_held->clone())
        {
        }

        compiled_optimizer& operator=(const compiled_optimizer& other)
        {
            m_held = other.m_held->clone();
            return *this;
        }

        compiled_optimizer(compiled_optimizer&&) noexcept = default;
        compiled_optimizer& operator=(compiled_optimizer&&) noexcept = default;
        ~compiled_optimizer() override = default;

        /// One optimizer step on the model's current gradients.
        void step(Model& model)
        {
            m_held->step(model);
        }

        optimizer_snapshot<T> snapshot() const
        {
            return m_held->snapshot();
        }

        void restore(const optimizer_snapshot<T>& snapshot)
        {
            m_held->restore(snapshot);
        }

        bool has_learning_rate() const noexcept override
        {
            return m_held->rate() != nullptr;
        }

        double learning_rate() const override
        {
            return *checked_rate();
        }

        void set_learning_rate(double rate) override
        {
            double* held = checked_rate();
            if (!(rate >= 0.0 && rate < std::numeric_limits<double>::infinity()))
            {
                throw value_error("set_learning_rate: expected a finite learning rate >= 0 but got "
                                  + std::to_string(rate));
            }
            *held = rate;
        }

        /// The concrete optimizer, or nullptr when it is not an Optimizer.
        template <class Optimizer>
        Optimizer* get() noexcept
        {
            auto* held = dynamic_cast<holder<Optimizer>*>(m_held.get());
            return held == nullptr ? nullptr : &held->optimizer;
        }

    private:
        struct concept_type
        {
            virtual ~concept_type() = default;
            virtual void step(Model& model) = 0;
            virtual std::unique_ptr<concept_type> clone() const = 0;
            virtual optimizer_snapshot<T> snapshot() const = 0;
            virtual void restore(const optimizer_snapshot<T>& snapshot) = 0;
            virtual double* rate() noexcept = 0;
        };

        template <class Optimizer>
        struct holder final : concept_type
        {
            explicit holder(Optimizer o)
                : optimizer(std::move(o))
            {
            }
            void step(Model& model) override
            {
                optimizer.step(model);
            }
            std::unique_ptr<concept_type> clone() const override
            {
                return std::make_unique<holder>(optimizer);
            }
            optimizer_snapshot<T> snapshot() const override
            {
                if constexpr (detail::has_snapshot<Optimizer>::value)
                {
                    return optimizer.snapshot();
                }
                else
                {
                    throw missing_snapshot();
                }
            }
            void restore(const optimizer_snapshot<T>& snapshot) override
            {
                if constexpr (detail::has_snapshot<Optimizer>::value)
                {
                    optimizer.restore(snapshot);
                }
                else
                {
                    throw missing_snapshot();
                }
            }
            double* rate() noexcept override
            {
                if constexpr (detail::has_learning_rate<Optimizer>::value)
                {
                    return &optimizer.learning_rate;
                }
                else
                {
                    return nullptr;
                }
            }
            Optimizer optimizer;
        };

        static state_error missing_snapshot()
        {
            return state_error("fit: checkpoints need an optimizer with snapshot() and restore() (sgd, adam, "
                               "rmsprop have them); the compiled one has not");
        }

        double* checked_rate() const
        {
            double* held = m_held->rate();
            if (held == nullptr)
            {
                throw state_error("learning_rate: the compiled optimizer has no `double learning_rate` member to read "
                                  "or set (sgd, adam, rmsprop have one)");
            }
            return held;
        }

        std::unique_ptr<concept_type> m_held;
    };
}  // namespace xrnn

#endif
