// The training loop's extension points: callbacks at the documented moments (a learning-rate schedule and a
// logger written by a user), stop_training, and step hooks that see and change every gradient.
#include <cmath>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <xrnn/model.hpp>

#include "support/toy_tasks.hpp"

namespace
{
    constexpr std::size_t vocab = 8;
    constexpr std::size_t steps = 5;

    using model_type = xrnn::sequential<xrnn::embedding<float, vocab, 4>, xrnn::lstm<float, 4, 6>,
                                        xrnn::dense<float, 6, 1>>;

    model_type make_model(std::uint64_t seed, double learning_rate = 0.01)
    {
        xrnn::random_engine rng(seed);
        model_type model(rng);
        model.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<float>(learning_rate));
        return model;
    }

    xrnn::fit_options quiet(std::size_t epochs, std::size_t batch_size)
    {
        xrnn::fit_options options;
        options.epochs = epochs;
        options.batch_size = batch_size;
        options.verbosity = xrnn::progress::silent;
        return options;
    }

    /// A user's learning-rate schedule: the rate of epoch e is initial * factor^(e - 1), set when the epoch begins.
    struct exponential_decay : xrnn::callback
    {
        explicit exponential_decay(double factor)
            : factor(factor)
        {
        }
        void on_train_begin(xrnn::fit_context& context) override
        {
            initial = context.learning_rate();
        }
        void on_epoch_begin(xrnn::fit_context& context, std::size_t epoch) override
        {
            context.set_learning_rate(initial * std::pow(factor, static_cast<double>(epoch - 1)));
        }
        void on_batch_end(xrnn::fit_context& context, const xrnn::batch_logs& batch) override
        {
            if (batch.step == 1)
            {
                rates.push_back(context.learning_rate());  // the rate the epoch's first step was taken with
            }
        }
        double factor;
        double initial = 0.0;
        std::vector<double> rates;
    };

    /// An optimizer of the user's without a learning_rate member.
    struct plain_sgd
    {
        template <class... L>
        void step(L&... layers)
        {
            xrnn::for_each_parameter([](const auto&, auto& value, auto& grad) { value -= 0.1f * grad; }, layers...);
        }
    };

    /// A user's logger: records every call as text, in order.
    struct recording_logger : xrnn::callback
    {
        std::vector<std::string> calls;
        std::vector<double> epoch_losses;
        void on_train_begin(xrnn::fit_context& c) override
        {
            calls.push_back("train_begin " + std::to_string(c.initial_epoch) + "/" + std::to_string(c.epochs));
        }
        void on_epoch_begin(xrnn::fit_context&, std::size_t epoch) override
        {
            calls.push_back("epoch_begin " + std::to_string(epoch));
        }
        void on_batch_begin(xrnn::fit_context&, const xrnn::batch_logs& b) override
        {
            calls.push_back("batch_begin " + std::to_string(b.epoch) + "." + std::to_string(b.step) + "/"
                            + std::to_string(b.steps) + " size " + std::to_string(b.size));
        }
        void on_batch_end(xrnn::fit_context&, const xrnn::batch_logs& b) override
        {
            calls.push_back("batch_end " + std::to_string(b.epoch) + "." + std::to_string(b.step));
            CHECK(std::isfinite(b.loss));
            CHECK(b.running_loss > 0.0);
        }
        void on_epoch_end(xrnn::fit_context& c, const xrnn::epoch_logs& logs) override
        {
            calls.push_back("epoch_end " + std::to_string(logs.epoch));
            CHECK(c.history().size() == logs.epoch);  // the history already holds this epoch
            epoch_losses.push_back(logs.loss);
        }
        void on_train_end(xrnn::fit_context& c) override
        {
            calls.push_back("train_end " + std::to_string(c.history().size()));
        }
    };
}  // namespace

TEST_CASE("callbacks: a logger sees every moment in the documented order and count")
{
    const auto data = xrnn_test::make_memory_task(10, steps, vocab, 1);
    model_type model = make_model(2);
    auto logger = std::make_shared<recording_logger>();
    xrnn::fit_options options = quiet(2, 4);  // 10 samples: batches of 4, 4, 2
    options.add_callback(logger);
    const xrnn::history h = model.fit(data.x, data.y, options);
    REQUIRE(h.size() == 2);

    std::vector<std::string> expected{"train_begin 1/2"};
    for (int epoch = 1; epoch <= 2; ++epoch)
    {
        const std::string e = std::to_string(epoch);
        expected.push_back("epoch_begin " + e);
        for (int step = 1; step <= 3; ++step)
        {
            const std::string s = std::to_string(step);
            expected.push_back("batch_begin " + e + "." + s + "/3 size " + (step == 3 ? "2" : "4"));
            expected.push_back("batch_end " + e + "." + s);
        }
        expected.push_back("epoch_end " + e);
    }
    expected.push_back("train_end 2");
    CHECK(logger->calls == expected);
    CHECK(logger->epoch_losses == std::vector<double>{h.epochs()[0].loss, h.epochs()[1].loss});
}

TEST_CASE("callbacks: a learning-rate schedule changes the optimizer's rate, and the training with it")
{
    const auto data = xrnn_test::make_memory_task(12, steps, vocab, 3);
    model_type scheduled = make_model(4, 0.02);
    auto schedule = std::make_shared<exponential_decay>(0.5);
    xrnn::fit_options options = quiet(3, 4);
    options.shuffle = false;
    options.add_callback(schedule);
    scheduled.fit(data.x, data.y, options);
    CHECK(schedule->rates == std::vector<double>{0.02, 0.01, 0.005});
    CHECK(scheduled.optimizer<xrnn::adam<float>>().learning_rate == 0.005);
    CHECK(scheduled.compiled().learning_rate() == 0.005);

    // The same run without the schedule ends elsewhere; with the rates set by hand between fits it ends the same.
    model_type constant = make_model(4, 0.02);
    xrnn::fit_options plain = quiet(3, 4);
    plain.shuffle = false;
    constant.fit(data.x, data.y, plain);
    CHECK(xrnn_test::weights_of(constant) != xrnn_test::weights_of(scheduled));

    model_type by_hand = make_model(4, 0.02);
    xrnn::fit_options one = quiet(1, 4);
    one.shuffle = false;
    for (double rate : {0.02, 0.01, 0.005})
    {
        by_hand.optimizer<xrnn::adam<float>>().learning_rate = rate;
        by_hand.fit(data.x, data.y, one);
    }
    CHECK(xrnn_test::weights_of(by_hand) == xrnn_test::weights_of(scheduled));
}

TEST_CASE("callbacks: stop_training ends after the batch or after the epoch; on_train_end still runs")
{
    const auto data = xrnn_test::make_memory_task(12, steps, vocab, 5);
    SUBCASE("from on_batch_end: the epoch finishes (validation, epoch end) and no other starts")
    {
        model_type model = make_model(6);
        auto logger = std::make_shared<recording_logger>();
        auto stopper = std::make_shared<xrnn::lambda_callback>();
        stopper->batch_end = [](xrnn::fit_context& c, const xrnn::batch_logs& b) {
            if (b.epoch == 2 && b.step == 2) c.stop_training = true;
        };
        xrnn::fit_options options = quiet(5, 4);
        options.validation_split = 0.25;  // 9 training samples: 3 batches
        options.add_callback(stopper).add_callback(logger);
        const xrnn::history h = model.fit(data.x, data.y, options);
        REQUIRE(h.size() == 2);
        CHECK(h.epochs()[0].steps == 3);
        CHECK(h.epochs()[1].steps == 2);
        CHECK(h.epochs()[1].has_validation);
        CHECK(logger->calls.back() == "train_end 2");
        CHECK(logger->calls[logger->calls.size() - 2] == "epoch_end 2");
        CHECK(logger->calls[logger->calls.size() - 3] == "batch_end 2.2");
    }
    SUBCASE("from on_epoch_end, with early stopping and on_epoch_end functions beside it")
    {
        model_type model = make_model(6);
        auto stopper = std::make_shared<xrnn::lambda_callback>();
        std::size_t ends = 0;
        stopper->epoch_end = [](xrnn::fit_context& c, const xrnn::epoch_logs& logs) {
            if (logs.epoch == 3) c.stop_training = true;
        };
        stopper->train_end = [&](xrnn::fit_context&) { ++ends; };
        xrnn::fit_options options = quiet(6, 4);
        options.early_stop = xrnn::early_stopping{"loss", 0.0, 10, false};
        std::vector<std::size_t> seen;
        options.on_epoch_end([&](const xrnn::epoch_logs& logs) { seen.push_back(logs.epoch); });
        options.add_callback(stopper);
        CHECK(model.fit(data.x, data.y, options).size() == 3);
        CHECK(seen == std::vector<std::size_t>{1, 2, 3});
        CHECK(ends == 1);
    }
}

TEST_CASE("step hooks: see every gradient after backward and before the step, and can change them")
{
    const auto data = xrnn_test::make_memory_task(8, steps, vocab, 7);
    model_type model = make_model(8);
    std::vector<std::string> names;
    model.for_each_parameter([&](const std::string& name, auto&, auto&) { names.push_back(name); });

    SUBCASE("every tensor, by name and size, on every step")
    {
        std::size_t calls = 0;
        std::size_t values = 0;
        xrnn::fit_options options = quiet(2, 4);
        options.add_step_hook([&](xrnn::gradient_set& g, const xrnn::batch_logs& batch) {
            ++calls;
            CHECK(batch.size == 4);
            std::vector<std::string> seen;
            g.for_each([&](const std::string& name, auto* values_of, std::size_t n) {
                seen.push_back(name);
                CHECK(n > 0);
                CHECK(std::isfinite(static_cast<double>(values_of[0])));
            });
            CHECK(seen == names);
            CHECK(g.size() == names.size());
            values = g.value_count();
            CHECK(g.norm() > 0.0);
        });
        model.fit(data.x, data.y, options);
        CHECK(calls == 4);
        CHECK(values == model.parameter_count());
    }
    SUBCASE("zeroed gradients: SGD leaves the weights as they were")
    {
        xrnn::random_engine rng(8);
        model_type frozen(rng);
        frozen.compile(xrnn::objective::binary_cross_entropy, xrnn::sgd<float>(0.5));
        const auto before = xrnn_test::weights_of(frozen);
        xrnn::fit_options options = quiet(2, 4);
        options.add_step_hook([](xrnn::gradient_set& g, const xrnn::batch_logs&) { g.scale(0.0); });
        frozen.fit(data.x, data.y, options);
        CHECK(xrnn_test::weights_of(frozen) == before);
    }
    SUBCASE("clip_norm is the built-in step hook; after the user's hooks, it sees their changes")
    {
        // Doubling the gradients, then clipping to a tiny norm: the same as clipping alone (clip after hooks).
        model_type a = make_model(9);
        model_type b = make_model(9);
        xrnn::fit_options clip = quiet(2, 4);
        clip.clip_norm = 1e-3;
        std::vector<double> norms;
        xrnn::fit_options doubled = clip;
        doubled.add_step_hook([](xrnn::gradient_set& g, const xrnn::batch_logs&) { g.scale(2.0); });
        doubled.add_step_hook([&](xrnn::gradient_set& g, const xrnn::batch_logs&) { norms.push_back(g.norm()); });
        a.fit(data.x, data.y, clip);
        b.fit(data.x, data.y, doubled);
        CHECK(norms.size() == 4);
        for (double n : norms)
        {
            CHECK(n > 1e-3);  // the hooks ran before clipping
        }
        const auto wa = xrnn_test::weights_of(a);
        const auto wb = xrnn_test::weights_of(b);
        REQUIRE(wa.size() == wb.size());
        for (std::size_t i = 0; i < wa.size(); ++i)
        {
            CHECK(wa[i] == doctest::Approx(wb[i]).epsilon(1e-4));
        }
    }
    SUBCASE("gradient_set::clip_norm gives clip_grad_norm's result to the bit")
    {
        model_type c = make_model(10);
        model_type d = make_model(10);
        xt::xtensor<int, 2> ids({steps, 4});
        xt::xtensor<float, 2> labels({4, 1});
        for (std::size_t t = 0; t < steps; ++t)
            for (std::size_t k = 0; k < 4; ++k) ids(t, k) = static_cast<int>((t + k) % vocab);
        for (std::size_t k = 0; k < 4; ++k) labels(k, 0) = static_cast<float>(k % 2);
        xt::xtensor<float, 2> dlogits;
        for (model_type* m : {&c, &d})
        {
            xrnn::zero_grad(*m);
            xrnn::binary_cross_entropy_with_logits(m->forward(ids, xrnn::mode::training), labels, &dlogits);
            m->backward(dlogits);
        }
        const double expected = xrnn::clip_grad_norm(0.01, c);
        xrnn::gradient_set g;
        g.collect(d);
        CHECK(g.clip_norm(0.01) == expected);
        std::vector<double> gc, gd;
        c.for_each_parameter([&](const auto&, auto&, auto& grad) { gc.insert(gc.end(), grad.begin(), grad.end()); });
        d.for_each_parameter([&](const auto&, auto&, auto& grad) { gd.insert(gd.end(), grad.begin(), grad.end()); });
        CHECK(gc == gd);
    }
}

TEST_CASE("the compiled optimizer's learning rate: read, set, refused when not finite or absent")
{
    model_type model = make_model(11, 0.02);
    CHECK(model.compiled().has_learning_rate());
    model.compiled().set_learning_rate(0.5);
    CHECK(model.optimizer<xrnn::adam<float>>().learning_rate == 0.5);
    CHECK_THROWS_WITH_AS(model.compiled().set_learning_rate(-1.0),
                         "set_learning_rate: expected a finite learning rate >= 0 but got -1.000000", xrnn::value_error);

    model.compile(xrnn::objective::binary_cross_entropy, plain_sgd{});
    CHECK_FALSE(model.compiled().has_learning_rate());
    CHECK_THROWS_AS(model.compiled().learning_rate(), xrnn::state_error);
    const auto data = xrnn_test::make_memory_task(8, steps, vocab, 12);
    auto schedule = std::make_shared<exponential_decay>(0.5);
    xrnn::fit_options options = quiet(1, 4);
    options.add_callback(schedule);
    CHECK_THROWS_WITH_AS(model.fit(data.x, data.y, options), doctest::Contains("no `double learning_rate` member"),
                         xrnn::state_error);
    options.callback_objects.clear();
    CHECK_NOTHROW(model.fit(data.x, data.y, options));
}
