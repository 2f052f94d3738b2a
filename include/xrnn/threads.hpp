// xtensor-rnn: the threads the recurrent layers split a batch over.
//
// The sequences of a batch are independent through all S steps of a recurrent layer, so its forward runs each
// thread's rows through every step on their own (recurrent_forward.hpp): one fork and one join per layer and
// forward, no synchronisation per step. A row's result does not depend on the number of threads.
//
//   xrnn::num_threads()        how many threads (the caller's own included) a parallel pass uses
//   xrnn::set_num_threads(n)   set it; n = 0 restores the default
// The default is the environment variable XRNN_NUM_THREADS when it holds a positive number, else
// std::thread::hardware_concurrency(). The recurrent layers' backward products over all steps and the optimizers'
// steps run here too (detail/outer_gemm.hpp, detail/fused_updates.hpp); the products that still go to BLAS (the
// BLAS path of layers larger than L2, dense layers) use BLAS's own threads, set the BLAS way
// (OPENBLAS_NUM_THREADS, openblas_set_num_threads).
//
// The pool's workers are started on the first parallel pass and sleep on a condition variable between passes.
// A pass started while another one is running (from another thread, or from inside a pass) runs on the calling
// thread alone, so calls from several threads stay correct, only not faster.
#ifndef XRNN_THREADS_HPP
#define XRNN_THREADS_HPP

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <xrnn/config.hpp>

namespace xrnn
{
    namespace detail
    {
        /// XRNN_NUM_THREADS when it is a positive integer, else the hardware's thread count (at least 1).
        inline std::size_t default_thread_count() noexcept
        {
            if (const char* text = std::getenv("XRNN_NUM_THREADS"))
            {
                char* end = nullptr;
                const long value = std::strtol(text, &end, 10);
                if (end != text && *end == '\0' && value > 0 && value <= 4096)
                {
                    return static_cast<std::size_t>(value);
                }
            }
            const unsigned hardware = std::thread::hardware_concurrency();
            return hardware > 0 ? hardware : 1;
        }

        /// Workers that run the parts of one parallel pass at a time; the calling thread takes parts too.
        class thread_pool
        {
        public:
            static thread_pool& instance()
            {
                static thread_pool pool;
                return pool;
            }

            std::size_t threads() const noexcept
            {
                return m_threads.load(std::memory_order_relaxed);
            }

            void set_threads(std::size_t n)
            {
                if (n > max_threads)
                {
                    throw value_error("set_num_threads: " + std::to_string(n) + " threads asked, at most "
                                      + std::to_string(max_threads) + " (0 restores the default)");
                }
                std::lock_guard<std::mutex> pass(m_pass);  // waits for a running pass to end
                stop_workers();
                m_threads.store(n == 0 ? default_thread_count() : n, std::memory_order_relaxed);
            }

            /// The most threads set_num_threads takes (as XRNN_NUM_THREADS).
            static constexpr std::size_t max_threads = 4096;

            /// Calls part(p) for p = 0 .. parts - 1, spread over the workers and the calling thread, and returns
            /// when all have returned; rethrows the first exception a part threw.
            template <class F>
            void run(std::size_t parts, F&& part)
            {
                const auto serial = [&] {
                    for (std::size_t p = 0; p < parts; ++p)
                    {
                        part(p);
                    }
                };
                if (parts <= 1 || threads() <= 1 || in_pass())  // in_pass first: this thread may hold m_pass
                {
                    serial();
                    return;
                }
                std::unique_lock<std::mutex> pass(m_pass, std::try_to_lock);
                if (!pass.owns_lock())  // another thread's pass is running
                {
                    serial();
                    return;
                }
                start_workers();
                using part_type = std::remove_reference_t<F>;
                {
                    std::lock_guard<std::mutex> lock(m_mutex);
                    m_task = [](void* f, std::size_t p) { (*static_cast<part_type*>(f))(p); };
                    m_task_data = const_cast<void*>(static_cast<const void*>(std::addressof(part)));
                    m_parts = parts;
                    m_next.store(0, std::memory_order_relaxed);
                    m_busy = m_workers.size();
                    m_error = nullptr;
                    ++m_generation;
                }
                m_wake.notify_all();
                take_parts();
                std::unique_lock<std::mutex> lock(m_mutex);
                m_done.wait(lock, [&] { return m_busy == 0; });
                m_task = nullptr;
                if (m_error)
                {
                    std::rethrow_exception(std::exchange(m_error, nullptr));
                }
            }

            ~thread_pool()
            {
                stop_workers();
            }

            thread_pool(const thread_pool&) = delete;
            thread_pool& operator=(const thread_pool&) = delete;

        private:
            thread_pool()
                : m_threads(default_thread_count())
            {
            }

            static bool& in_pass() noexcept
            {
                thread_local bool inside = false;
                return inside;
            }

            /// Starts the workers a pass needs. When the system refuses a thread (its thread or memory limit), the
            /// pool keeps the workers it got and num_threads() says how many threads it runs on from then on.
            void start_workers()
            {
                const std::size_t wanted = threads() - 1;
                while (m_workers.size() < wanted)
                {
                    try
                    {
                        // the generation is passed in, not read by the new thread: it may start after the next ++
                        m_workers.emplace_back([this, seen = m_generation] { work(seen); });
                    }
                    catch (const std::system_error&)
                    {
                        m_threads.store(m_workers.size() + 1, std::memory_order_relaxed);
                        return;
                    }
                }
            }

            void stop_workers()
            {
                {
                    std::lock_guard<std::mutex> lock(m_mutex);
                    m_stop = true;
                }
                m_wake.notify_all();
                for (auto& worker : m_workers)
                {
                    worker.join();
                }
                m_workers.clear();
                std::lock_guard<std::mutex> lock(m_mutex);
                m_stop = false;
            }

            /// Runs parts until none is left; the caller's part of a pass.
            void take_parts()
            {
                in_pass() = true;
                for (std::size_t p = m_next.fetch_add(1); p < m_parts; p = m_next.fetch_add(1))
                {
                    try
                    {
                        m_task(m_task_data, p);
                    }
                    catch (...)
                    {
                        std::lock_guard<std::mutex> lock(m_mutex);
                        if (!m_error)
                        {
                            m_error = std::current_exception();
                        }
                    }
                }
                in_pass() = false;
            }

            void work(std::size_t seen)
            {
                std::unique_lock<std::mutex> lock(m_mutex);
                for (;;)
                {
                    m_wake.wait(lock, [&] { return m_stop || m_generation != seen; });
                    if (m_stop)
                    {
                        return;
                    }
                    seen = m_generation;
                    lock.unlock();
                    take_parts();
                    lock.lock();
                    if (--m_busy == 0)
                    {
                        m_done.notify_one();
                    }
                }
            }

            std::atomic<std::size_t> m_threads;
            std::mutex m_pass;   // one pass at a time
            std::mutex m_mutex;  // guards what follows
            std::condition_variable m_wake;
            std::condition_variable m_done;
            std::vector<std::thread> m_workers;
            void (*m_task)(void*, std::size_t) = nullptr;
            void* m_task_data = nullptr;
            std::size_t m_parts = 0;
            std::atomic<std::size_t> m_next{0};
            std::size_t m_busy = 0;
            std::size_t m_generation = 0;
            bool m_stop = false;
            std::exception_ptr m_error;
        };

        /// part(p) for p = 0 .. parts - 1 on xrnn's threads (see the top of this file).
        template <class F>
        void parallel_for(std::size_t parts, F&& part)
        {
            thread_pool::instance().run(parts, part);
        }
    }  // namespace detail

    /// How many threads a parallel pass uses, the caller's own included.
    inline std::size_t num_threads() noexcept
    {
        return detail::thread_pool::instance().threads();
    }

    /// Sets how many threads a parallel pass uses; 0 restores the default (XRNN_NUM_THREADS, else the hardware's
    /// count). More than 4096 is a value_error; if the system later refuses some of the threads, passes run on
    /// those it got (num_threads() tells). Waits for a pass that is running to end, so it must not be called from
    /// inside one.
    inline void set_num_threads(std::size_t n)
    {
        detail::thread_pool::instance().set_threads(n);
    }
}  // namespace xrnn

#endif
