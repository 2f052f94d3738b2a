// sequential: composition, fit/evaluate/predict, validation split, history, progress, callbacks, errors.
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <xtensor/xsort.hpp>
#include <xtensor/xview.hpp>

#include <xrnn/model.hpp>

#include "support/toy_tasks.hpp"

namespace
{
    constexpr std::size_t vocab = 8;
    constexpr std::size_t steps = 6;

    using memory_model = xrnn::sequential<xrnn::embedding<float, vocab, 8>, xrnn::lstm<float, 8, 16>,
                                          xrnn::dense<float, 16, 1>>;

    using xrnn_test::memory_task;
    using xrnn_test::weights_of;

    memory_task make_memory_task(std::size_t n, std::uint64_t seed)
    {
        return xrnn_test::make_memory_task(n, steps, vocab, seed);
    }

    memory_model make_memory_model(std::uint64_t seed, double learning_rate = 0.02)
    {
        xrnn::random_engine rng(seed);
        memory_model model(rng);
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
}  // namespace

TEST_CASE("sequential: signature, parameter names and counts")
{
    xrnn::random_engine rng(1);
    memory_model model(rng);
    CHECK(memory_model::signature()
          == "sequential<embedding<float32,8,8>,lstm<float32,8,16,layers=1,last>,dense<float32,16,1>>");
    std::vector<std::string> names;
    model.for_each_parameter([&](const std::string& name, auto&, auto&) { names.push_back(name); });
    CHECK(names == std::vector<std::string>{"0.w", "1.l0.w_x", "1.l0.w_h", "1.l0.b", "2.w", "2.b"});
    // 8*8 + (8*64 + 16*64 + 64) + 16 + 1
    CHECK(model.parameter_count() == 64 + 512 + 1024 + 64 + 17);
    CHECK(model.summary().find("total 1681 parameters") != std::string::npos);
}

TEST_CASE("fit learns a task that needs memory, and evaluate agrees with the history")
{
    const memory_task train = make_memory_task(512, 1);
    const memory_task test = make_memory_task(256, 2);
    memory_model model = make_memory_model(3);
    const xrnn::evaluation before = model.evaluate(test.x, test.y);
    CHECK(before.loss == doctest::Approx(std::log(2.0)).epsilon(0.05));

    const xrnn::history h = model.fit(train.x, train.y, quiet(12, 32));
    REQUIRE(h.size() == 12);
    CHECK(h.metric_name() == "accuracy");
    CHECK(h.epochs().back().loss < 0.5 * h.epochs().front().loss);
    const xrnn::evaluation after = model.evaluate(test.x, test.y);
    CHECK(after.metric_name == "accuracy");
    CHECK(after.samples == 256);
    CHECK(after.loss < 0.2);
    CHECK(after.metric > 0.95);
}

TEST_CASE("validation_split takes the last fraction of the samples, before shuffling, as Keras does")
{
    const memory_task data = make_memory_task(10, 4);
    memory_model model = make_memory_model(5);
    xrnn::fit_options options = quiet(1, 1);
    options.validation_split = 0.2;  // int(10 * 0.8) = 8 train, 2 validation
    const xrnn::history h = model.fit(data.x, data.y, options);
    REQUIRE(h.size() == 1);
    CHECK(h.back().steps == 8);
    CHECK(h.back().has_validation);

    // The validation scores are those of the last two samples under the weights after the epoch.
    const xt::xtensor<int, 2> x_val = xt::view(data.x, xt::range(8, 10), xt::all());
    const xt::xtensor<float, 2> y_val = xt::view(data.y, xt::range(8, 10), xt::all());
    const xrnn::evaluation val = model.evaluate(x_val, y_val);
    CHECK(h.back().val_loss == doctest::Approx(val.loss).epsilon(1e-6));
    CHECK(h.back().val_metric == doctest::Approx(val.metric));

    // 0.3 of 10: int(10 * 0.7) = 7 train (floating point 6.99... truncates as Keras's int() does)
    options.validation_split = 0.3;
    memory_model other = make_memory_model(5);
    const std::size_t steps_taken = other.fit(data.x, data.y, options).back().steps;
    CHECK((steps_taken == 7 || steps_taken == 6));
}

TEST_CASE("fit with explicit validation data, and a batch size that does not divide the data")
{
    const memory_task train = make_memory_task(50, 6);
    const memory_task val = make_memory_task(7, 7);
    memory_model model = make_memory_model(8);
    const xrnn::history h = model.fit(train.x, train.y, val.x, val.y, quiet(2, 16));
    REQUIRE(h.size() == 2);
    CHECK(h.back().steps == 4);  // 16 + 16 + 16 + 2
    CHECK(h.back().val_loss == doctest::Approx(model.evaluate(val.x, val.y, 3).loss).epsilon(1e-6));
}

TEST_CASE("the same seeds give the same training; another shuffling seed another")
{
    const memory_task data = make_memory_task(64, 9);
    auto run = [&](std::uint64_t shuffle_seed) {
        memory_model model = make_memory_model(10);
        xrnn::fit_options options = quiet(2, 8);
        options.seed = shuffle_seed;
        const xrnn::history h = model.fit(data.x, data.y, options);
        return std::vector<double>{h.epochs()[0].loss, h.epochs()[1].loss, h.epochs()[1].metric};
    };
    CHECK(run(1) == run(1));
    CHECK(run(1) != run(2));
}

TEST_CASE("history writes CSV with a header and one row per epoch")
{
    const memory_task data = make_memory_task(40, 11);
    memory_model model = make_memory_model(12);
    xrnn::fit_options options = quiet(3, 8);
    options.validation_split = 0.25;
    const xrnn::history h = model.fit(data.x, data.y, options);
    std::ostringstream csv;
    h.write_csv(csv);
    std::istringstream lines(csv.str());
    std::string line;
    std::getline(lines, line);
    CHECK(line == "epoch,loss,accuracy,val_loss,val_accuracy,seconds");
    for (std::size_t e = 0; e < 3; ++e)
    {
        REQUIRE(std::getline(lines, line));
        std::istringstream fields(line);
        std::string field;
        std::vector<double> values;
        while (std::getline(fields, field, ','))
        {
            values.push_back(std::stod(field));
        }
        REQUIRE(values.size() == 6);
        CHECK(values[0] == e + 1);
        CHECK(values[1] == doctest::Approx(h.epochs()[e].loss).epsilon(1e-7));
        CHECK(values[4] == doctest::Approx(h.epochs()[e].val_metric).epsilon(1e-7));
    }
    CHECK_FALSE(std::getline(lines, line));
}

TEST_CASE("predict gives probabilities batch-major; predict_one matches a row; the batch size does not matter")
{
    const memory_task data = make_memory_task(9, 13);
    memory_model model = make_memory_model(14);
    const auto p = model.predict(data.x, 4);
    REQUIRE(p.shape() == std::array<std::size_t, 2>{9, 1});

    // The same numbers by hand: time-major ids through the layers, then the sigmoid.
    const xt::xtensor<int, 2> ids = xt::transpose(data.x);
    const auto& logits = model.forward(ids);
    for (std::size_t i = 0; i < 9; ++i)
    {
        CHECK(p(i, 0) == doctest::Approx(1.0 / (1.0 + std::exp(-logits(i, 0)))).epsilon(1e-6));
    }
    const auto p_all = model.predict(data.x, 100);
    CHECK(xt::allclose(p, p_all, 1e-6, 1e-7));
    const xt::xtensor<int, 1> sample = xt::view(data.x, 5, xt::all());
    const auto one = model.predict_one(sample);
    REQUIRE(one.shape() == std::array<std::size_t, 1>{1});
    CHECK(one(0) == doctest::Approx(p(5, 0)).epsilon(1e-6));
}

TEST_CASE("a many-to-many model with softmax cross-entropy: per-step targets, probabilities per step")
{
    // Predict each next id of a cyclic sequence 0 1 2 3 0 1 ...: y[t] = (x[t] + 1) mod 4.
    using model_type = xrnn::sequential<xrnn::embedding<float, 4, 8>, xrnn::rnn<float, 8, 16, 1, xrnn::output::sequence>,
                                        xrnn::dense<float, 16, 4>>;
    xrnn::random_engine rng(15);
    model_type model(rng);
    model.compile(xrnn::objective::softmax_cross_entropy, xrnn::adam<float>(0.05));
    xt::xtensor<int, 2> x({16, 5});
    xt::xtensor<int, 2> y({16, 5});
    for (std::size_t i = 0; i < 16; ++i)
    {
        for (std::size_t t = 0; t < 5; ++t)
        {
            x(i, t) = static_cast<int>((i + t) % 4);
            y(i, t) = static_cast<int>((i + t + 1) % 4);
        }
    }
    const xrnn::history h = model.fit(x, y, quiet(30, 4));
    CHECK(h.back().metric == doctest::Approx(1.0));
    const auto p = model.predict(x);
    REQUIRE(p.shape() == std::array<std::size_t, 3>{16, 5, 4});
    for (std::size_t i = 0; i < 16; ++i)
    {
        for (std::size_t t = 0; t < 5; ++t)
        {
            const xt::xtensor<float, 1> row = xt::view(p, i, t, xt::all());
            CHECK(xt::sum(row)() == doctest::Approx(1.0));
            CHECK(static_cast<int>(xt::argmax(row)()) == y(i, t));
        }
    }
}

TEST_CASE("a regression model reports mean absolute error")
{
    // y = sum of the 3 steps' features, from (N, 3, 1) sequences.
    using model_type = xrnn::sequential<xrnn::lstm<float, 1, 8>, xrnn::dense<float, 8, 1>>;
    xrnn::random_engine rng(16);
    model_type model(rng);
    model.compile(xrnn::objective::mean_squared_error, xrnn::adam<float>(0.02));
    xt::xtensor<float, 3> x({64, 3, 1});
    xt::xtensor<float, 2> y({64, 1});
    for (std::size_t i = 0; i < 64; ++i)
    {
        float sum = 0;
        for (std::size_t t = 0; t < 3; ++t)
        {
            x(i, t, 0) = static_cast<float>(rng.uniform(-0.5, 0.5));
            sum += x(i, t, 0);
        }
        y(i, 0) = sum;
    }
    const xrnn::history h = model.fit(x, y, quiet(40, 16));
    CHECK(h.metric_name() == "mae");
    CHECK(h.back().loss < 0.2 * h.epochs().front().loss);
    const xrnn::evaluation e = model.evaluate(x, y);
    const auto p = model.predict(x);
    CHECK(e.loss == doctest::Approx(xt::mean(xt::square(p - y))()).epsilon(1e-5));
    CHECK(e.metric == doctest::Approx(xt::mean(xt::abs(p - y))()).epsilon(1e-5));
}

TEST_CASE("progress: one line per epoch into a stream, redrawn in place when live")
{
    const memory_task data = make_memory_task(20, 17);
    memory_model model = make_memory_model(18);
    std::ostringstream out;
    xrnn::fit_options options = quiet(2, 5);
    options.verbosity = xrnn::progress::automatic;  // a string stream is not a terminal
    options.out = &out;
    options.validation_split = 0.2;
    model.fit(data.x, data.y, options);
    const std::string text = out.str();
    CHECK(text.find('\r') == std::string::npos);
    CHECK(std::count(text.begin(), text.end(), '\n') == 2);
    CHECK(text.find("epoch 1/2  4/4 [==============================] ") == 0);
    CHECK(text.find("/step - accuracy: ") != std::string::npos);
    CHECK(text.find(" - loss: ") != std::string::npos);
    CHECK(text.find(" - val_accuracy: ") != std::string::npos);
    CHECK(text.find(" - val_loss: ") != std::string::npos);
    CHECK(text.find("epoch 2/2") != std::string::npos);

    std::ostringstream live;
    options.verbosity = xrnn::progress::live;
    options.out = &live;
    model.fit(data.x, data.y, options);
    const std::string redrawn = live.str();
    CHECK(redrawn.find('\r') != std::string::npos);
    CHECK(std::count(redrawn.begin(), redrawn.end(), '\n') == 2);
}

TEST_CASE("callbacks run after every epoch and can stop training; early stopping")
{
    const memory_task data = make_memory_task(20, 19);
    memory_model model = make_memory_model(20);
    std::vector<std::size_t> seen;
    xrnn::fit_options options = quiet(5, 5);
    options.on_epoch_end([&](const xrnn::epoch_logs& logs) { seen.push_back(logs.epoch); });
    options.on_epoch_end([](const xrnn::epoch_logs& logs) {
        return logs.epoch == 3 ? xrnn::fit_control::stop : xrnn::fit_control::proceed;
    });
    CHECK(model.fit(data.x, data.y, options).size() == 3);
    CHECK(seen == std::vector<std::size_t>{1, 2, 3});

    // A learning rate of 0 never improves: patience 1 stops after epoch 1 + 2 without improvement.
    memory_model frozen = make_memory_model(21, 0.0);
    xrnn::fit_options stopping = quiet(10, 5);
    stopping.early_stop = xrnn::early_stopping{"loss", 0.0, 1, false};
    stopping.shuffle = false;
    CHECK(frozen.fit(data.x, data.y, stopping).size() == 3);
}

TEST_CASE("early stopping with restore_best_weights ends on the weights of the best epoch")
{
    const memory_task data = make_memory_task(40, 22);
    memory_model model = make_memory_model(23, 0.05);
    xrnn::fit_options options = quiet(6, 8);
    options.validation_split = 0.5;
    options.early_stop = xrnn::early_stopping{"val_loss", 0.0, 10, true};
    std::vector<std::vector<double>> weights;
    options.on_epoch_end([&](const xrnn::epoch_logs&) { weights.push_back(weights_of(model)); });
    const xrnn::history h = model.fit(data.x, data.y, options);
    std::size_t best = 0;
    for (std::size_t e = 1; e < h.size(); ++e)
    {
        if (h.epochs()[e].val_loss < h.epochs()[best].val_loss)
        {
            best = e;
        }
    }
    CHECK(weights_of(model) == weights[best]);
}

TEST_CASE("a non-finite loss stops training with a clear error and keeps the last good weights, or is skipped")
{
    using model_type = xrnn::sequential<xrnn::dense<float, 2, 1>>;
    xt::xtensor<float, 2> x = {{1, 2}, {3, 4}, {5, 6}, {7, 8}, {9, 10}};
    xt::xtensor<float, 2> y = {{1}, {2}, {3}, {std::nanf("")}, {5}};
    auto make = [] {
        xrnn::random_engine rng(24);
        model_type model(rng);
        model.compile(xrnn::objective::mean_squared_error, xrnn::sgd<float>(0.001));
        return model;
    };
    xrnn::fit_options options = quiet(1, 1);
    options.shuffle = false;

    model_type reference = make();
    const xt::xtensor<float, 2> first_three_x = xt::view(x, xt::range(0, 3), xt::all());
    const xt::xtensor<float, 2> first_three_y = xt::view(y, xt::range(0, 3), xt::all());
    reference.fit(first_three_x, first_three_y, options);

    model_type model = make();
    std::string message;
    try
    {
        model.fit(x, y, options);
    }
    catch (const xrnn::value_error& e)
    {
        message = e.what();
    }
    CHECK(message.find("the loss became nan at epoch 1, step 4 of 5") != std::string::npos);
    CHECK(weights_of(model) == weights_of(reference));

    model_type skipping = make();
    options.on_non_finite_loss = xrnn::non_finite_loss::skip;
    const xrnn::history h = skipping.fit(x, y, options);
    CHECK(h.back().skipped_steps == 1);
    CHECK(h.back().steps == 4);
    CHECK(std::isfinite(h.back().loss));
}

TEST_CASE("a copied model predicts the same and trains independently")
{
    const memory_task data = make_memory_task(16, 25);
    memory_model model = make_memory_model(26);
    memory_model copy = model;
    CHECK(xt::allclose(model.predict(data.x), copy.predict(data.x)));
    copy.fit(data.x, data.y, quiet(1, 4));
    CHECK_FALSE(xt::allclose(model.predict(data.x), copy.predict(data.x)));
    CHECK(copy.optimizer<xrnn::adam<float>>().steps() == 4);
    CHECK_THROWS_AS(copy.optimizer<xrnn::sgd<float>>(), xrnn::state_error);
}

TEST_CASE("bad calls and bad data are rejected with messages that name the problem")
{
    const memory_task data = make_memory_task(10, 27);
    xrnn::random_engine rng(28);
    memory_model fresh(rng);
    CHECK_THROWS_WITH_AS(fresh.fit(data.x, data.y, quiet(1, 2)),
                         doctest::Contains("call compile(objective, optimizer) before"), xrnn::state_error);

    memory_model model = make_memory_model(29);
    const xt::xtensor<float, 2> short_y = xt::view(data.y, xt::range(0, 9), xt::all());
    CHECK_THROWS_WITH_AS(model.fit(data.x, short_y, quiet(1, 2)), "fit: y has 9 samples but x has 10 (x shape (10, 6), y shape (9, 1))",
                         xrnn::shape_error);
    xt::xtensor<float, 2> soft = data.y;
    soft(3, 0) = 0.5f;
    CHECK_THROWS_WITH_AS(model.fit(data.x, soft, quiet(1, 2)),
                         "fit: binary cross-entropy labels expected in {0, 1} but sample 3 has 0.5", xrnn::value_error);
    CHECK_THROWS_AS(model.evaluate(data.x, soft), xrnn::value_error);

    xrnn::fit_options options = quiet(1, 2);
    for (double split : {-0.1, 1.0, 1.5, std::nan("")})
    {
        options.validation_split = split;
        CHECK_THROWS_WITH_AS(model.fit(data.x, data.y, options), doctest::Contains("validation_split expected in [0, 1)"),
                             xrnn::value_error);
    }
    options.validation_split = 0.05;  // int(10 * 0.95) = 9 train, 1 validation: fine
    CHECK_NOTHROW(model.fit(data.x, data.y, options));
    options.validation_split = 1e-17;  // 1 - 1e-17 rounds to 1: all 10 samples would train, none validate
    CHECK_THROWS_WITH_AS(model.fit(data.x, data.y, options),
                         doctest::Contains("leaves 10 for training and 0 for validation"), xrnn::value_error);

    const xt::xtensor<int, 2> no_samples({0, 6});
    const xt::xtensor<float, 2> no_labels({0, 1});
    CHECK_THROWS_WITH_AS(model.fit(no_samples, no_labels, quiet(1, 2)), doctest::Contains("the data set is empty"),
                         xrnn::shape_error);
    const xt::xtensor<int, 2> no_steps({10, 0});
    CHECK_THROWS_WITH_AS(model.predict(no_steps), doctest::Contains("sequences of 0 steps"), xrnn::shape_error);
    CHECK_THROWS_AS(model.fit(data.x, data.y, quiet(1, 0)), xrnn::error);
    CHECK_THROWS_AS(model.fit(data.x, data.y, quiet(0, 2)), xrnn::error);
    CHECK_THROWS_AS(model.predict(data.x, 0), xrnn::error);

    xt::xtensor<int, 2> bad_ids = data.x;
    bad_ids(2, 3) = static_cast<int>(vocab);
    CHECK_THROWS_AS(model.fit(bad_ids, data.y, quiet(1, 2)), xrnn::value_error);
    bad_ids(2, 3) = -1;
    CHECK_THROWS_AS(model.predict(bad_ids), xrnn::value_error);

    xrnn::fit_options watching = quiet(1, 2);
    watching.early_stop = xrnn::early_stopping{"val_accuracy"};
    CHECK_THROWS_WITH_AS(model.fit(data.x, data.y, watching), doctest::Contains("there is no validation data"),
                         xrnn::value_error);
    watching.early_stop = xrnn::early_stopping{"val_acc"};
    CHECK_THROWS_WITH_AS(model.fit(data.x, data.y, watching),
                         "fit: early_stopping monitors 'val_acc', expected one of loss, val_loss, accuracy, val_accuracy",
                         xrnn::value_error);

    using classifier = xrnn::sequential<xrnn::dense<float, 2, 3>>;
    xrnn::random_engine crng(30);
    classifier c(crng);
    c.compile(xrnn::objective::softmax_cross_entropy, xrnn::sgd<float>(0.1));
    const xt::xtensor<float, 2> features = {{1, 2}, {3, 4}};
    const xt::xtensor<float, 2> float_targets = {{0, 1, 0}, {1, 0, 0}};
    CHECK_THROWS_WITH_AS(c.fit(features, float_targets, quiet(1, 2)), doctest::Contains("needs integer class ids"),
                         xrnn::value_error);
    const xt::xtensor<int, 1> classes = {1, 3};
    CHECK_THROWS_WITH_AS(c.fit(features, classes, quiet(1, 2)), "fit: class id 3 of sample 1 is outside [0, 3)",
                         xrnn::value_error);
}
