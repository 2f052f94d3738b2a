// xtensor-rnn: who may use a model at the same time, checked instead of assumed.
//
// A sequential keeps its workspaces inside its layers, so its own calls cannot run on two threads at once; its
// predictors (model/predictor.hpp) each have their own workspaces and only read its weights. The guard counts both:
//   exclusive   fit, evaluate, predict, predict_one, compile, load, resume: the model to itself. A second call
//               from another thread, or one while predictors are predicting, gets a state_error naming the
//               conflict. The same thread may nest them (a callback that evaluates or saves inside fit).
//   shared      a predictor's predict/predict_one/stream and save: any number at once, none while an exclusive
//               call runs on another thread (its weights change under them).
// Taking either is one atomic compare-exchange on the model; nothing waits.
// The guard also counts the predictors made from the model: moving or assigning to a model that has predictors is
// refused (state_error), and destroying one aborts with a message, as they would read freed weights.
#ifndef XRNN_MODEL_USAGE_GUARD_HPP
#define XRNN_MODEL_USAGE_GUARD_HPP

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include <xrnn/config.hpp>

namespace xrnn
{
    namespace detail
    {
        class usage_guard
        {
        public:
            usage_guard() noexcept = default;

            /// A copy of a model is a model of its own that nobody uses yet.
            usage_guard(const usage_guard&) noexcept
            {
            }

            usage_guard(usage_guard&& other)
            {
                other.require_unshared("moved from");
            }

            usage_guard& operator=(const usage_guard&)
            {
                require_unused("assigned to");
                return *this;
            }

            usage_guard& operator=(usage_guard&& other)
            {
                require_unused("assigned to");
                other.require_unshared("moved from");
                return *this;
            }

            ~usage_guard()
            {
                const long live = m_predictors.load();
                if (live != 0)
                {
                    std::fprintf(stderr,
                                 "xrnn: a model was destroyed while %ld predictor(s) made from it still exist; they "
                                 "would read freed weights (destroy the predictors first)\n",
                                 live);
                    std::abort();
                }
            }

            /// The model to one call (and the calls its thread nests in it) until destroyed.
            class exclusive
            {
            public:
                exclusive(const usage_guard& guard, const char* where)
                    : m_guard(guard)
                {
                    long expected = 0;
                    if (guard.m_users.compare_exchange_strong(expected, -1, std::memory_order_acquire))
                    {
                        guard.m_owner.store(std::this_thread::get_id(), std::memory_order_relaxed);
                        guard.m_owner_call.store(where, std::memory_order_relaxed);
                        m_outermost = true;
                        return;
                    }
                    if (expected == -1 && guard.m_owner.load(std::memory_order_relaxed) == std::this_thread::get_id())
                    {
                        return;  // nested in a call of this thread
                    }
                    throw state_error(conflict(where, expected, guard.m_owner_call.load(std::memory_order_relaxed)));
                }

                exclusive(const exclusive&) = delete;
                exclusive& operator=(const exclusive&) = delete;

                ~exclusive()
                {
                    if (m_outermost)
                    {
                        m_guard.m_owner.store(std::thread::id(), std::memory_order_relaxed);
                        m_guard.m_users.store(0, std::memory_order_release);
                    }
                }

            private:
                const usage_guard& m_guard;
                bool m_outermost = false;
            };

            /// Read access to the weights, shared with other readers, for as long as it lives.
            class shared
            {
            public:
                shared(const usage_guard& guard, const char* where)
                    : m_guard(guard)
                {
                    long users = guard.m_users.load(std::memory_order_relaxed);
                    for (;;)
                    {
                        if (users < 0)
                        {
                            if (guard.m_owner.load(std::memory_order_relaxed) == std::this_thread::get_id())
                            {
                                return;  // inside an exclusive call of this thread: nothing changes meanwhile
                            }
                            throw state_error(std::string(where) + ": the model is in "
                                              + guard.m_owner_call.load(std::memory_order_relaxed)
                                              + " on another thread, which changes or uses what this call reads; "
                                                "wait for it to return");
                        }
                        if (guard.m_users.compare_exchange_weak(users, users + 1, std::memory_order_acquire,
                                                                std::memory_order_relaxed))
                        {
                            m_counted = true;
                            return;
                        }
                    }
                }

                shared(const shared&) = delete;
                shared& operator=(const shared&) = delete;

                ~shared()
                {
                    if (m_counted)
                    {
                        m_guard.m_users.fetch_sub(1, std::memory_order_release);
                    }
                }

            private:
                const usage_guard& m_guard;
                bool m_counted = false;
            };

            void add_predictor() const noexcept
            {
                m_predictors.fetch_add(1, std::memory_order_relaxed);
            }

            void remove_predictor() const noexcept
            {
                m_predictors.fetch_sub(1, std::memory_order_relaxed);
            }

        private:
            static std::string conflict(const char* where, long users, const char* running)
            {
                if (users > 0)
                {
                    return std::string(where) + ": " + std::to_string(users)
                           + " predictor call(s) are reading this model's weights on other threads; a call that "
                             "changes the model or uses its own workspaces needs it to itself";
                }
                return std::string(where) + ": another call (" + running
                       + ") is running on this model on another thread; a model runs one call at a time (use one predictor per thread to predict concurrently: "
                       "model/predictor.hpp)";
            }

            void require_unused(const char* what) const
            {
                require_unshared(what);
                if (m_users.load() != 0)
                {
                    throw state_error(std::string("sequential: a model cannot be ") + what
                                      + " while a call on another thread uses it");
                }
            }

            void require_unshared(const char* what) const
            {
                const long live = m_predictors.load();
                if (live != 0)
                {
                    throw state_error(std::string("sequential: a model cannot be ") + what + " while "
                                      + std::to_string(live)
                                      + " predictor(s) made from it exist; they read its weights where they are");
                }
            }

            mutable std::atomic<long> m_users{0};  // > 0: shared users; -1: an exclusive call
            mutable std::atomic<std::thread::id> m_owner{};  // the thread of the exclusive call
            mutable std::atomic<const char*> m_owner_call{"a call"};  // its name, for messages
            mutable std::atomic<long> m_predictors{0};
        };
    }  // namespace detail
}  // namespace xrnn

#endif
