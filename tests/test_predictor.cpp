// Predictors (model/predictor.hpp): one model's weights shared by many threads, each with its own workspaces, and
// the usage guard (model/usage_guard.hpp) that turns unsafe concurrent use of a model into a state_error.
#include <atomic>
#include <csignal>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <xrnn/layers/bidirectional.hpp>
#include <xrnn/model.hpp>

#include "support/toy_tasks.hpp"

namespace
{
    constexpr std::size_t vocab = 50;
    constexpr std::size_t steps = 12;

    template <class Recurrent>
    using text_model = xrnn::sequential<xrnn::embedding<float, vocab, 16>, Recurrent, xrnn::dense<float, 24, 1>>;
    using lstm_model = text_model<xrnn::lstm<float, 16, 24, 2>>;
    using gru_model = text_model<xrnn::gru<float, 16, 24>>;
    using rnn_model = text_model<xrnn::rnn<float, 16, 24>>;
    // a per-step output (S, B, 3) through dropout and an activation: every built-in layer type
    using tagger_model
        = xrnn::sequential<xrnn::embedding<float, vocab, 16>, xrnn::lstm<float, 16, 24, 1, xrnn::output::sequence>,
                           xrnn::dropout<float>, xrnn::dense<float, 24, 8>, xrnn::activation_layer<float, xrnn::activation::relu>,
                           xrnn::dense<float, 8, 3>>;

    template <class Model>
    Model make_model(std::uint64_t seed)
    {
        xrnn::random_engine rng(seed);
        Model model(rng);
        model.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<float>(1e-3));
        return model;
    }

    tagger_model make_tagger(std::uint64_t seed)
    {
        xrnn::random_engine rng(seed);
        tagger_model model{xrnn::embedding<float, vocab, 16>(rng),
                           xrnn::lstm<float, 16, 24, 1, xrnn::output::sequence>(rng), xrnn::dropout<float>(0.3, rng),
                           xrnn::dense<float, 24, 8>(rng), xrnn::activation_layer<float, xrnn::activation::relu>(), xrnn::dense<float, 8, 3>(rng)};
        model.compile(xrnn::objective::softmax_cross_entropy, xrnn::adam<float>(1e-3));
        return model;
    }

    xt::xtensor<int, 2> random_ids(std::size_t n, std::size_t s, std::uint64_t seed)
    {
        xrnn::random_engine rng(seed);
        xt::xtensor<int, 2> x({n, s});
        for (auto& v : x)
        {
            v = static_cast<int>(rng.below(vocab));
        }
        return x;
    }

    template <class A, class B>
    bool bitwise_equal(const A& a, const B& b)
    {
        return a.shape() == b.shape() && std::equal(a.begin(), a.end(), b.begin());
    }

    template <class Model>
    void check_predict_equals_model(Model model)
    {
        const auto x = random_ids(37, steps, 5);
        const auto expected = model.predict(x, 8);
        xrnn::predictor p(model);
        CHECK(bitwise_equal(p.predict(x, 8), expected));
        CHECK(bitwise_equal(p.predict(x, 128), model.predict(x, 128)));
        const xt::xtensor<int, 1> one = xt::view(x, 3, xt::all());
        CHECK(bitwise_equal(p.predict_one(one), model.predict_one(one)));
    }
}  // namespace

TEST_CASE("a predictor gives the model's predictions bit for bit, for every recurrent layer and every layer type")
{
    check_predict_equals_model(make_model<lstm_model>(1));
    check_predict_equals_model(make_model<gru_model>(2));
    check_predict_equals_model(make_model<rnn_model>(3));
    check_predict_equals_model(make_tagger(4));
}

TEST_CASE("a predictor reads the model's weights where they are: trained or loaded weights show, none are copied")
{
    auto model = make_model<lstm_model>(7);
    xrnn::predictor p(model);
    const auto x = random_ids(16, steps, 9);
    const auto before = p.predict(x);
    const auto task = xrnn_test::make_memory_task(64, steps, vocab, 11);
    xrnn::fit_options quiet;
    quiet.epochs = 1;
    quiet.batch_size = 16;
    quiet.verbosity = xrnn::progress::silent;
    model.fit(task.x, task.y, quiet);
    const auto after = p.predict(x);
    CHECK_FALSE(bitwise_equal(before, after));
    CHECK(bitwise_equal(after, model.predict(x)));

    // its memory is its workspace: far below the weights (the embedding alone is 50 x 16 floats)
    std::size_t weight_bytes = 0;
    model.for_each_parameter([&](const auto&, auto& value, auto&) { weight_bytes += value.size() * sizeof(float); });
    xrnn::predictor fresh(model);
    CHECK(fresh.workspace_bytes() < weight_bytes / 4);
}

TEST_CASE("predictors on 8 threads at once, with different batch shapes, give the single-threaded results")
{
    auto model = make_model<lstm_model>(21);
    constexpr std::size_t threads = 8;
    std::vector<xt::xtensor<int, 2>> inputs;
    std::vector<xt::xtensor<float, 2>> expected;
    for (std::size_t k = 0; k < threads; ++k)
    {
        inputs.push_back(random_ids(3 + 5 * k, steps + k % 3, 100 + k));  // shapes differ between threads
        expected.push_back(model.predict(inputs.back(), 4 + k));
    }
    xrnn::predictor prototype(model);
    std::vector<xrnn::predictor<lstm_model>> predictors(threads, prototype);
    std::atomic<int> mismatches{0};
    std::atomic<int> calls{0};
    std::vector<std::thread> pool;
    for (std::size_t k = 0; k < threads; ++k)
    {
        pool.emplace_back([&, k] {
            for (int round = 0; round < 20; ++round)
            {
                if (!bitwise_equal(predictors[k].predict(inputs[k], 4 + k), expected[k]))
                {
                    ++mismatches;
                }
                ++calls;
            }
        });
    }
    for (auto& t : pool)
    {
        t.join();
    }
    CHECK(calls.load() == 160);
    CHECK(mismatches.load() == 0);
}

TEST_CASE("streaming a sequence in chunks gives what predict gives for all of it")
{
    auto model = make_model<gru_model>(31);
    const auto x = random_ids(5, 3 * steps, 33);
    const auto whole = model.predict(x);
    xrnn::predictor p(model);
    xt::xtensor<float, 2> last;
    for (std::size_t begin = 0; begin < x.shape()[1]; begin += steps)
    {
        const xt::xtensor<int, 2> chunk = xt::view(x, xt::all(), xt::range(begin, begin + steps));
        last = p.stream(chunk);
    }
    CHECK(bitwise_equal(last, whole));
    // after reset_states() the streams start again from zeros
    p.reset_states();
    const xt::xtensor<int, 2> first = xt::view(x, xt::all(), xt::range(0, steps));
    CHECK(bitwise_equal(p.stream(first), model.predict(first)));
    // a chunk for another number of streams is refused until reset
    CHECK_THROWS_AS(p.stream(random_ids(4, steps, 1)), xrnn::shape_error);

    // sequence outputs: the chunks' outputs side by side are the outputs of the whole sequence
    auto tagger = make_tagger(35);
    const auto tags = tagger.predict(x);  // (5, 36, 3)
    xrnn::predictor t(tagger);
    for (std::size_t begin = 0; begin < x.shape()[1]; begin += steps)
    {
        const xt::xtensor<int, 2> chunk = xt::view(x, xt::all(), xt::range(begin, begin + steps));
        const xt::xtensor<float, 3> out = t.stream(chunk);
        const xt::xtensor<float, 3> part = xt::view(tags, xt::all(), xt::range(begin, begin + steps), xt::all());
        CHECK(bitwise_equal(out, part));
    }
}

TEST_CASE("a model runs one call at a time: a second thread gets a state_error naming the conflict")
{
    auto model = make_model<lstm_model>(41);
    const auto task = xrnn_test::make_memory_task(32, steps, vocab, 43);
    xrnn::predictor p(model);

    // inside fit (from a callback), calls of other threads are refused; calls of fit's own thread are not
    struct probe : xrnn::callback
    {
        lstm_model* model;
        xrnn::predictor<lstm_model>* p;
        const xrnn_test::memory_task* task;
        std::vector<std::string> refused;
        bool same_thread_ok = false;
        void on_batch_end(xrnn::fit_context&, const xrnn::batch_logs& b) override
        {
            if (b.step != 1 || b.epoch != 1)
            {
                return;
            }
            std::thread other([&] {
                auto attempt = [&](auto&& call) {
                    try
                    {
                        call();
                    }
                    catch (const xrnn::state_error& e)
                    {
                        refused.push_back(e.what());
                    }
                };
                xrnn::fit_options again;
                again.verbosity = xrnn::progress::silent;
                attempt([&] { model->fit(task->x, task->y, again); });
                attempt([&] { model->predict(task->x); });
                attempt([&] { model->evaluate(task->x, task->y); });
                attempt([&] { p->predict(task->x); });
                attempt([&] { model->save("never-written.xrnnw"); });
            });
            other.join();
            model->predict(task->x);  // nested in fit, same thread: allowed
            p->predict(task->x);
            same_thread_ok = true;
        }
    };
    auto spy = std::make_shared<probe>();
    spy->model = &model;
    spy->p = &p;
    spy->task = &task;
    xrnn::fit_options options;
    options.epochs = 1;
    options.batch_size = 8;
    options.verbosity = xrnn::progress::silent;
    options.add_callback(spy);
    model.fit(task.x, task.y, options);
    CHECK(spy->same_thread_ok);
    REQUIRE(spy->refused.size() == 5);
    CHECK(spy->refused[0].find("sequential::fit: another call (sequential::fit) is running") != std::string::npos);
    CHECK(spy->refused[1].find("sequential::predict") != std::string::npos);
    CHECK(spy->refused[2].find("sequential::evaluate") != std::string::npos);
    CHECK(spy->refused[3].find("predictor::predict: the model is in sequential::fit on another thread")
          != std::string::npos);
    CHECK(spy->refused[4].find("sequential::save") != std::string::npos);
    CHECK(std::ifstream("never-written.xrnnw").good() == false);

    // while a predictor call reads the weights (held here as a predictor call holds it), fit is refused
    {
        const xrnn::detail::usage_guard::shared reading(model.usage(), "a test reader");
        std::string message;
        std::thread other([&] {
            try
            {
                model.fit(task.x, task.y, options);
            }
            catch (const xrnn::state_error& e)
            {
                message = e.what();
            }
        });
        other.join();
        CHECK(message.find("1 predictor call(s) are reading this model's weights") != std::string::npos);
    }
    // and afterwards everything runs again
    CHECK_NOTHROW(model.predict(task.x));
}

TEST_CASE("fit and predictors racing on two threads: every call either runs or is refused, nothing breaks")
{
    auto model = make_model<gru_model>(51);
    const auto task = xrnn_test::make_memory_task(32, steps, vocab, 53);
    xrnn::predictor p(model);
    std::atomic<bool> done{false};
    std::atomic<int> refused{0};
    std::atomic<int> served{0};
    std::thread reader([&] {
        while (!done.load())
        {
            try
            {
                const auto y = p.predict(task.x, 16);
                served += y.shape()[0] == 32 ? 1 : 0;
            }
            catch (const xrnn::state_error&)
            {
                ++refused;
            }
        }
    });
    xrnn::fit_options options;
    options.epochs = 1;
    options.batch_size = 16;
    options.verbosity = xrnn::progress::silent;
    int fits = 0;
    int fit_refused = 0;
    for (int round = 0; round < 30; ++round)
    {
        try
        {
            model.fit(task.x, task.y, options);
            ++fits;
        }
        catch (const xrnn::state_error&)
        {
            ++fit_refused;
        }
    }
    done = true;
    reader.join();
    CHECK(fits + fit_refused == 30);
    CHECK(served.load() + refused.load() > 0);
    // whatever ran, the predictor still equals the model
    CHECK(bitwise_equal(p.predict(task.x), model.predict(task.x)));
}

TEST_CASE("a model with predictors cannot be moved or assigned to, and a copy is a model of its own")
{
    auto model = make_model<rnn_model>(61);
    auto other = make_model<rnn_model>(62);
    {
        xrnn::predictor p(model);
        CHECK_THROWS_WITH_AS(rnn_model(std::move(model)),
                             doctest::Contains("cannot be moved from while 1 predictor(s) made from it exist"),
                             xrnn::state_error);
        CHECK_THROWS_AS(model = other, xrnn::state_error);
        rnn_model copy(model);  // copying reads the model: allowed, and the copy has no predictors
        rnn_model moved(std::move(copy));
        CHECK(moved.summary() == model.summary());
    }
    CHECK_NOTHROW(model = other);  // no predictor left
}

TEST_CASE("destroying a model that still has predictors aborts with a message instead of leaving them dangling")
{
    int pipe_fds[2];
    REQUIRE(pipe(pipe_fds) == 0);
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0)
    {
        std::signal(SIGABRT, SIG_DFL);  // not doctest's crash report: the abort itself is what is tested
        dup2(pipe_fds[1], 2);
        auto* model = new rnn_model(make_model<rnn_model>(71));
        auto* p = new xrnn::predictor<rnn_model>(*model);
        (void)p;
        delete model;  // aborts
        _exit(0);
    }
    close(pipe_fds[1]);
    std::string text;
    char buffer[256];
    for (ssize_t n; (n = read(pipe_fds[0], buffer, sizeof buffer)) > 0;)
    {
        text.append(buffer, static_cast<std::size_t>(n));
    }
    close(pipe_fds[0]);
    int status = 0;
    waitpid(child, &status, 0);
    CHECK(WIFSIGNALED(status));
    CHECK(text.find("destroyed while 1 predictor(s) made from it still exist") != std::string::npos);
}

TEST_CASE("layers made to share weights run inference only")
{
    xrnn::random_engine rng(81);
    xrnn::dense<float, 4, 3> owner(rng);
    xrnn::dense<float, 4, 3> reader(xrnn::shared_weights, owner);
    const xt::xtensor<float, 2> x({2, 4}, 0.5f);
    const auto y = reader.forward(x);
    CHECK(bitwise_equal(y, owner.forward(x)));
    CHECK_THROWS_WITH_AS(reader.backward(y), doctest::Contains("runs inference only"), xrnn::state_error);

    xrnn::lstm<float, 4, 3> lstm_owner(rng);
    xrnn::lstm<float, 4, 3> lstm_reader(xrnn::shared_weights, lstm_owner);
    const xt::xtensor<float, 3> seq({5, 2, 4}, 0.25f);
    CHECK(bitwise_equal(lstm_reader.forward(seq), lstm_owner.forward(seq)));
    CHECK_THROWS_WITH_AS(lstm_reader.forward(seq, xrnn::mode::training), doctest::Contains("lstm"),
                         xrnn::state_error);
    xrnn::embedding<float, 10, 4> e_owner(rng);
    xrnn::embedding<float, 10, 4> e_reader(xrnn::shared_weights, e_owner);
    const xt::xtensor<int, 2> ids({3, 2}, 7);
    CHECK(bitwise_equal(e_reader.forward(ids), e_owner.forward(ids)));
    CHECK_THROWS_AS(e_reader.backward(e_reader.forward(ids)), xrnn::state_error);
    xrnn::dropout<float> d_owner(0.5, rng);
    xrnn::dropout<float> d_reader(xrnn::shared_weights, d_owner);
    CHECK(bitwise_equal(d_reader.forward(x), x));
    CHECK_THROWS_AS(d_reader.forward(x, xrnn::mode::training), xrnn::state_error);
}

TEST_CASE("predictors of models with a masking embedding and with bidirectional layers give the model's results")
{
    xrnn::random_engine rng(91);
    using masked_model = xrnn::sequential<xrnn::embedding<float, vocab, 16>, xrnn::lstm<float, 16, 24>,
                                          xrnn::dense<float, 24, 1>>;
    masked_model masked{xrnn::embedding<float, vocab, 16>(rng, xrnn::init_scheme::keras, /*mask_zero=*/true),
                        xrnn::lstm<float, 16, 24>(rng), xrnn::dense<float, 24, 1>(rng)};
    masked.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<float>(1e-3));
    auto x = random_ids(9, steps, 93);
    for (std::size_t i = 0; i < 9; ++i)
    {
        for (std::size_t t = 0; t < i % 5; ++t)
        {
            x(i, t) = 0;  // pre-padding of 0 to 4 steps
        }
        x(i, steps - 1) = 1 + static_cast<int>(i);  // every sequence has a real last step
    }
    xrnn::predictor p(masked);
    const auto expected = masked.predict(x, 4);
    CHECK(bitwise_equal(p.predict(x, 4), expected));
    // and the padding is masked: a model without mask_zero (same weights) predicts otherwise
    masked_model plain{xrnn::embedding<float, vocab, 16>(rng), xrnn::lstm<float, 16, 24>(rng),
                       xrnn::dense<float, 24, 1>(rng)};
    plain.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<float>(1e-3));
    std::vector<double> weights = xrnn_test::weights_of(masked);
    std::size_t k = 0;
    plain.for_each_parameter([&](const auto&, auto& value, auto&) {
        for (auto& v : value)
        {
            v = static_cast<float>(weights[k++]);
        }
    });
    CHECK_FALSE(bitwise_equal(plain.predict(x, 4), expected));

    using bi_model = xrnn::sequential<xrnn::embedding<float, vocab, 16>, xrnn::bilstm<float, 16, 12, 2>,
                                      xrnn::dense<float, 24, 1>>;
    bi_model bi(rng);
    bi.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<float>(1e-3));
    xrnn::predictor q(bi);
    CHECK(bitwise_equal(q.predict(x, 4), bi.predict(x, 4)));
}

namespace
{
    /// A pass-through layer whose forward, once armed, says it has started and waits to be released: it holds a
    /// predictor call open on one thread while the test calls it from another.
    struct hold_layer
    {
        using value_type = float;
        static constexpr bool reads_sequence = false;
        static constexpr bool reads_token_ids = false;
        static inline std::atomic<bool> armed{false};
        static inline std::atomic<bool> started{false};
        static inline std::atomic<bool> released{false};

        static const char* name() noexcept
        {
            return "hold";
        }
        static std::string signature()
        {
            return "hold";
        }
        template <class F>
        void for_each_random_engine(F&&)
        {
        }
        template <class F>
        void for_each_parameter(F&&)
        {
        }
        hold_layer() = default;
        hold_layer(xrnn::shared_weights_t, const hold_layer&) noexcept
        {
        }
        const xt::xtensor<float, 2>& forward(const xt::xtensor<float, 2>& x, xrnn::mode = xrnn::mode::inference)
        {
            if (armed.exchange(false))
            {
                started = true;
                while (!released.load())
                {
                    std::this_thread::yield();
                }
            }
            m_y = x;
            return m_y;
        }
        const xt::xtensor<float, 2>& backward(const xt::xtensor<float, 2>& dy)
        {
            m_dx = dy;
            return m_dx;
        }
        xt::xtensor<float, 2> m_y, m_dx;
    };
}  // namespace

TEST_CASE("one predictor called from two threads at once: the second call is a state_error, not a race")
{
    using held_model = xrnn::sequential<xrnn::dense<float, 2, 3>, hold_layer, xrnn::dense<float, 3, 1>>;
    xrnn::random_engine rng(101);
    held_model model{xrnn::dense<float, 2, 3>(rng), hold_layer(), xrnn::dense<float, 3, 1>(rng)};
    model.compile(xrnn::objective::mean_squared_error, xrnn::sgd<float>(0.1));
    const xt::xtensor<float, 2> x = {{1, 2}, {3, 4}};
    const auto expected = model.predict(x);
    xrnn::predictor p(model);
    hold_layer::armed = true;
    xt::xtensor<float, 2> first;
    std::thread holder([&] { first = p.predict(x); });
    while (!hold_layer::started.load())
    {
        std::this_thread::yield();
    }
    CHECK_THROWS_WITH_AS(p.predict(x), doctest::Contains("predictor::predict: this predictor is already in a call on "
                                                         "another thread"),
                         xrnn::state_error);
    xrnn::predictor other(p);  // a copy serves this thread meanwhile
    CHECK(bitwise_equal(other.predict(x), expected));
    hold_layer::released = true;
    holder.join();
    CHECK(bitwise_equal(first, expected));
    CHECK(bitwise_equal(p.predict(x), expected));  // free again
}
