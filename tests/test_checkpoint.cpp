// Checkpoints: a run interrupted and resumed gives bit for bit the weights and history of an uninterrupted one
// (dropout, shuffling, validation, early stopping); loading is all or nothing; optimizer snapshots; engine states.
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/resource.h>

#include <doctest/doctest.h>

#include <xrnn/model.hpp>

#include "support/scratch.hpp"
#include "support/toy_tasks.hpp"

namespace fs = std::filesystem;

namespace
{
    constexpr std::size_t vocab = 8;
    constexpr std::size_t steps = 5;

    // Every kind of random draw a training run makes: input and recurrent dropout in the LSTM (two stacked cells,
    // two engines), a dropout layer, and the shuffles.
    template <class T>
    using dropout_model = xrnn::sequential<xrnn::embedding<T, vocab, 6>, xrnn::lstm<T, 6, 7, 2>, xrnn::dropout<T>,
                                           xrnn::dense<T, 7, 1>>;

    template <class T>
    dropout_model<T> make_model(std::uint64_t seed)
    {
        xrnn::random_engine rng(seed);
        xrnn::recurrent_options o;
        o.dropout = 0.2;
        o.recurrent_dropout = 0.3;
        return dropout_model<T>(xrnn::embedding<T, vocab, 6>(rng), xrnn::lstm<T, 6, 7, 2>(rng, o),
                                xrnn::dropout<T>(0.25, rng), xrnn::dense<T, 7, 1>(rng));
    }

    using task = xrnn_test::memory_task;
    using xrnn_test::read_bytes;
    using xrnn_test::scratch_dir;
    using xrnn_test::weights_of;
    using xrnn_test::write_bytes;

    task make_task(std::size_t n, std::uint64_t seed)
    {
        return xrnn_test::make_memory_task(n, steps, vocab, seed);
    }

    template <class Model>
    std::vector<xrnn::random_engine::state_type> engines_of(Model& model)
    {
        std::vector<xrnn::random_engine::state_type> all;
        xrnn::for_each_random_engine(model, [&](const std::string&, xrnn::random_engine& e) { all.push_back(e.state()); });
        return all;
    }

    /// Every field of every epoch but the wall time.
    std::vector<double> history_values(const xrnn::history& h)
    {
        std::vector<double> all;
        for (const xrnn::epoch_logs& e : h.epochs())
        {
            all.insert(all.end(), {double(e.epoch), double(e.epochs), double(e.steps), double(e.skipped_steps), e.loss,
                                   e.metric, e.has_validation ? 1.0 : 0.0, e.val_loss, e.val_metric});
        }
        return all;
    }

    xrnn::fit_options options_for(std::size_t epochs)
    {
        xrnn::fit_options f;
        f.epochs = epochs;
        f.batch_size = 6;
        f.validation_split = 0.25;
        f.seed = 77;
        f.verbosity = xrnn::progress::silent;
        return f;
    }

    struct interrupted : std::runtime_error
    {
        interrupted()
            : std::runtime_error("interrupted")
        {
        }
    };
}  // namespace

TEST_CASE_TEMPLATE("a run interrupted and resumed equals the uninterrupted run, bit for bit", T, float, double)
{
    scratch_dir dir("checkpoint_resume");
    const task data = make_task(40, 1);
    const std::size_t epochs = 6;

    dropout_model<T> reference = make_model<T>(2);
    reference.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<T>(0.01));
    const xrnn::history full = reference.fit(data.x, data.y, options_for(epochs));
    REQUIRE(full.size() == epochs);

    SUBCASE("stopped by a callback after epoch 2, resumed into a model built from another seed")
    {
        dropout_model<T> first = make_model<T>(2);
        first.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<T>(0.01));
        xrnn::fit_options f = options_for(epochs);
        f.checkpoint_path = dir.file("run.xrnnc");
        f.on_epoch_end([](const xrnn::epoch_logs& logs) {
            return logs.epoch == 2 ? xrnn::fit_control::stop : xrnn::fit_control::proceed;
        });
        CHECK(first.fit(data.x, data.y, f).size() == 2);

        // Other initial weights, engines and learning rate: the checkpoint replaces all of them.
        dropout_model<T> resumed = make_model<T>(99);
        resumed.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<T>(0.5));
        xrnn::fit_options g = options_for(epochs);
        g.resume_from = dir.file("run.xrnnc");
        const xrnn::history h = resumed.fit(data.x, data.y, g);
        CHECK(h.size() == epochs);
        CHECK(history_values(h) == history_values(full));
        CHECK(weights_of(resumed) == weights_of(reference));
        CHECK(engines_of(resumed) == engines_of(reference));
        CHECK(resumed.template optimizer<xrnn::adam<T>>().learning_rate == 0.01);
        CHECK(resumed.template optimizer<xrnn::adam<T>>().steps() == reference.template optimizer<xrnn::adam<T>>().steps());
    }

    SUBCASE("killed during epoch 5 with a checkpoint every 2 epochs: resumed from epoch 4")
    {
        dropout_model<T> first = make_model<T>(2);
        first.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<T>(0.01));
        xrnn::fit_options f = options_for(epochs);
        f.checkpoint_path = dir.file("run.xrnnc");
        f.checkpoint_every = 2;
        f.on_epoch_end([](const xrnn::epoch_logs& logs) {
            if (logs.epoch == 5)
            {
                throw interrupted();
            }
        });
        CHECK_THROWS_AS(first.fit(data.x, data.y, f), interrupted);

        dropout_model<T> resumed = make_model<T>(3);
        resumed.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<T>(0.01));
        xrnn::fit_options g = options_for(epochs);
        g.resume_from = dir.file("run.xrnnc");
        g.checkpoint_path = dir.file("run.xrnnc");  // the resumed run keeps checkpointing into the same file
        std::vector<std::size_t> seen;
        g.on_epoch_end([&](const xrnn::epoch_logs& logs) { seen.push_back(logs.epoch); });
        const xrnn::history h = resumed.fit(data.x, data.y, g);
        CHECK(seen == std::vector<std::size_t>{5, 6});
        CHECK(history_values(h) == history_values(full));
        CHECK(weights_of(resumed) == weights_of(reference));

        // The final checkpoint holds all 6 epochs: resuming from it trains nothing and returns the history.
        dropout_model<T> done = make_model<T>(4);
        done.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<T>(0.01));
        const xrnn::history again = done.fit(data.x, data.y, g);
        CHECK(history_values(again) == history_values(full));
        CHECK(weights_of(done) == weights_of(reference));
    }
}

TEST_CASE("resuming with sgd (Nesterov momentum) and rmsprop, with early stopping that restores the best weights")
{
    scratch_dir dir("checkpoint_optimizers");
    const task data = make_task(30, 5);
    auto run = [&](auto optimizer, std::size_t stop_after, const std::string& resume, double min_delta = 0.0) {
        dropout_model<float> model = make_model<float>(resume.empty() ? 6 : 7);
        model.compile(xrnn::objective::binary_cross_entropy, optimizer);
        xrnn::fit_options f = options_for(7);
        f.early_stop = xrnn::early_stopping{"val_loss", min_delta, min_delta > 0.0 ? 3u : 10u, true};
        f.checkpoint_path = dir.file("opt.xrnnc");
        f.resume_from = resume;
        f.on_epoch_end([stop_after](const xrnn::epoch_logs& logs) {
            return logs.epoch == stop_after ? xrnn::fit_control::stop : xrnn::fit_control::proceed;
        });
        const xrnn::history h = model.fit(data.x, data.y, f);
        return std::make_pair(history_values(h), weights_of(model));
    };
    const auto sgd = xrnn::sgd<float>(0.2, 0.9, true, 1e-4);
    const auto full = run(sgd, 0, "");
    run(sgd, 3, "");
    CHECK(run(sgd, 0, dir.file("opt.xrnnc")) == full);

    const auto rms = xrnn::rmsprop<float>(0.01, 0.9);
    const auto full_rms = run(rms, 0, "");
    run(rms, 2, "");
    CHECK(run(rms, 0, dir.file("opt.xrnnc")) == full_rms);

    // No epoch improves on epoch 1 by 10: with patience 3 the run stops after epoch 5 and ends on epoch 1's
    // weights; only the checkpoint remembers those, and the epochs without improvement.
    const auto adam = xrnn::adam<float>(0.05);
    const auto full_adam = run(adam, 0, "", 10.0);
    CHECK(full_adam.first.size() == 5 * 9);
    run(adam, 3, "", 10.0);
    CHECK(run(adam, 0, dir.file("opt.xrnnc"), 10.0) == full_adam);
}

TEST_CASE("resuming a run with explicit validation data; other validation data are refused")
{
    scratch_dir dir("checkpoint_validation");
    const task train = make_task(20, 21);
    const task val = make_task(7, 22);
    auto fit = [&](std::uint64_t seed, std::size_t stop_after, const std::string& resume, const task& v) {
        dropout_model<float> model = make_model<float>(seed);
        model.compile(xrnn::objective::binary_cross_entropy, xrnn::rmsprop<float>(0.01));
        xrnn::fit_options f = options_for(4);
        f.validation_split = 0.0;
        f.checkpoint_path = dir.file("val.xrnnc");
        f.resume_from = resume;
        f.on_epoch_end([stop_after](const xrnn::epoch_logs& logs) {
            return logs.epoch == stop_after ? xrnn::fit_control::stop : xrnn::fit_control::proceed;
        });
        const xrnn::history h = model.fit(train.x, train.y, v.x, v.y, f);
        return std::make_pair(history_values(h), weights_of(model));
    };
    const auto full = fit(23, 0, "", val);
    fit(23, 1, "", val);
    CHECK(fit(24, 0, dir.file("val.xrnnc"), val) == full);

    fit(23, 1, "", val);
    task other = val;
    other.y(0, 0) = 1.0f - other.y(0, 0);  // same shapes, one label changed
    CHECK_THROWS_WITH_AS(fit(24, 0, dir.file("val.xrnnc"), other), doctest::Contains("was written for other data"),
                         xrnn::value_error);
}

TEST_CASE("a checkpoint for other data, another split or another objective is refused before anything changes")
{
    scratch_dir dir("checkpoint_mismatch");
    const task data = make_task(24, 8);
    dropout_model<float> model = make_model<float>(9);
    model.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<float>(0.01));
    xrnn::fit_options f = options_for(1);
    f.checkpoint_path = dir.file("a.xrnnc");
    model.fit(data.x, data.y, f);

    dropout_model<float> other = make_model<float>(10);
    other.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<float>(0.01));
    const std::vector<double> before = weights_of(other);
    const auto engines_before = engines_of(other);
    xrnn::fit_options g = options_for(2);
    g.resume_from = dir.file("a.xrnnc");

    task changed = data;
    changed.x(3, 2) = (changed.x(3, 2) + 1) % static_cast<int>(vocab);
    CHECK_THROWS_WITH_AS(other.fit(changed.x, changed.y, g), doctest::Contains("was written for other data"),
                         xrnn::value_error);
    g.validation_split = 0.5;
    CHECK_THROWS_WITH_AS(other.fit(data.x, data.y, g),
                         doctest::Contains("was written for 18 training and 6 validation samples, but this fit has 12 and 12"),
                         xrnn::value_error);
    g.validation_split = 0.25;
    dropout_model<float> regression = make_model<float>(10);
    regression.compile(xrnn::objective::mean_squared_error, xrnn::adam<float>(0.01));
    CHECK_THROWS_WITH_AS(regression.fit(data.x, data.y, g),
                         doctest::Contains("written when training for binary_cross_entropy, but the model is compiled "
                                           "for mean_squared_error"),
                         xrnn::value_error);
    dropout_model<float> with_sgd = make_model<float>(10);
    with_sgd.compile(xrnn::objective::binary_cross_entropy, xrnn::sgd<float>(0.01));
    CHECK_THROWS_WITH_AS(with_sgd.fit(data.x, data.y, g),
                         doctest::Contains("holds the state of an optimizer of kind 'adam', but the model's optimizer is 'sgd'"),
                         xrnn::io_error);
    using wider = xrnn::sequential<xrnn::embedding<float, vocab, 6>, xrnn::lstm<float, 6, 8, 2>, xrnn::dropout<float>,
                                   xrnn::dense<float, 8, 1>>;
    xrnn::random_engine rng(11);
    wider w{xrnn::embedding<float, vocab, 6>(rng), xrnn::lstm<float, 6, 8, 2>(rng), xrnn::dropout<float>(0.1, rng),
            xrnn::dense<float, 8, 1>(rng)};
    w.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<float>(0.01));
    CHECK_THROWS_WITH_AS(w.fit(data.x, data.y, g), doctest::Contains("lstm<float32,6,8,layers=2,last>"), xrnn::io_error);
    CHECK(weights_of(other) == before);
    CHECK(engines_of(other) == engines_before);
    CHECK(other.optimizer<xrnn::adam<float>>().steps() == 0);

    xrnn::fit_options every_zero = options_for(1);
    every_zero.checkpoint_path = dir.file("b.xrnnc");
    every_zero.checkpoint_every = 0;
    CHECK_THROWS_WITH_AS(other.fit(data.x, data.y, every_zero), doctest::Contains("checkpoint_every must be at least 1"),
                         xrnn::shape_error);
    xrnn::fit_options missing = options_for(1);
    missing.resume_from = dir.file("missing.xrnnc");
    CHECK_THROWS_WITH_AS(other.fit(data.x, data.y, missing), doctest::Contains("no such file"), xrnn::io_error);
}

TEST_CASE("every truncation and every flipped byte of a checkpoint is refused; model, engines, optimizer unchanged")
{
    scratch_dir dir("checkpoint_damage");
    using small = xrnn::sequential<xrnn::lstm<float, 2, 3>, xrnn::dropout<float>, xrnn::dense<float, 3, 1>>;
    auto make = [](std::uint64_t seed) {
        xrnn::random_engine rng(seed);
        xrnn::recurrent_options o;
        o.dropout = 0.1;
        small model(xrnn::lstm<float, 2, 3>(rng, o), xrnn::dropout<float>(0.1, rng), xrnn::dense<float, 3, 1>(rng));
        model.compile(xrnn::objective::mean_squared_error, xrnn::adam<float>(0.01));
        return model;
    };
    xt::xtensor<float, 3> x({6, 3, 2}, 0.5f);
    xt::xtensor<float, 2> y({6, 1}, 0.25f);
    x(2, 1, 0) = -1.0f;
    small saved = make(1);
    xrnn::fit_options f;
    f.epochs = 2;
    f.batch_size = 2;
    f.verbosity = xrnn::progress::silent;
    f.early_stop = xrnn::early_stopping{"loss", 0.0, 5, true};
    f.checkpoint_path = dir.file("good.xrnnc");
    std::vector<double> saved_weights;  // at the checkpoint, before restore_best_weights changes them
    std::vector<xrnn::random_engine::state_type> saved_engines;
    f.on_epoch_end([&](const xrnn::epoch_logs&) {
        saved_weights = weights_of(saved);
        saved_engines = engines_of(saved);
    });
    saved.fit(x, y, f);
    const std::string good = read_bytes(dir.file("good.xrnnc"));
    REQUIRE(good.size() > 200);

    small target = make(2);
    xrnn::adam<float> optimizer(0.01);
    optimizer.step(target);  // some state of its own, which a failed load must keep
    const auto weights = weights_of(target);
    const auto engines = engines_of(target);
    const auto state = optimizer.snapshot();
    auto unchanged = [&] {
        const auto now = optimizer.snapshot();
        return weights_of(target) == weights && engines_of(target) == engines && now.slots == state.slots
               && now.steps == state.steps && now.hyper == state.hyper;
    };

    // In memory and through a file: the same checks.
    CHECK(xrnn::read_checkpoint_from_bytes(good, target, optimizer).progress.epoch == 2);
    const xrnn_test::refusals counted = xrnn_test::count_refusals(good, 0x04, [&](const std::string& bytes) {
        xrnn::apply_checkpoint(xrnn::read_checkpoint_from_bytes(bytes, target, optimizer), target, optimizer);
    });
    CHECK(counted.truncations == good.size());
    CHECK(counted.flips == good.size());
    CHECK(unchanged());

    const std::string damaged = dir.file("damaged.xrnnc");
    write_bytes(damaged, good.substr(0, good.size() - 1));
    CHECK_THROWS_WITH_AS(xrnn::load_checkpoint(damaged, target, optimizer), doctest::Contains("truncated"), xrnn::io_error);
    write_bytes(damaged, good + "\n");
    CHECK_THROWS_WITH_AS(xrnn::load_checkpoint(damaged, target, optimizer), doctest::Contains("extra bytes at the end"),
                         xrnn::io_error);
    CHECK_THROWS_WITH_AS(target.load(dir.file("good.xrnnc")),
                         doctest::Contains("a checkpoint file (kind 2), expected a weights file"), xrnn::io_error);
    CHECK(unchanged());

    // The good file applies: the model then has the saved weights and engines.
    const xrnn::training_progress<float> progress = xrnn::load_checkpoint(dir.file("good.xrnnc"), target, optimizer);
    CHECK(progress.epoch == 2);
    CHECK(progress.history.size() == 2);
    CHECK(progress.best_weights.size() == 5);  // restore_best_weights: lstm w_x, w_h, b; dense w, b
    CHECK(weights_of(target) == saved_weights);
    CHECK(engines_of(target) == saved_engines);
    CHECK(optimizer.steps() == 6);
}

TEST_CASE("hostile checkpoints with a valid checksum: an order that is not a permutation, an all-zero engine")
{
    using small = xrnn::sequential<xrnn::dense<float, 2, 3>, xrnn::dropout<float>, xrnn::dense<float, 3, 1>>;
    xrnn::random_engine rng(3);
    small model{xrnn::dense<float, 2, 3>(rng), xrnn::dropout<float>(0.5, rng), xrnn::dense<float, 3, 1>(rng)};
    xrnn::sgd<float> optimizer(0.1, 0.5);
    optimizer.step(model);
    xrnn::training_progress<float> p;
    p.shuffle_engine = xrnn::random_engine(1).state();
    p.order = {0, 1, 2};
    const std::string good = xrnn::save_checkpoint_to_bytes(model, optimizer, p);
    CHECK_NOTHROW(xrnn::read_checkpoint_from_bytes(good, model, optimizer));

    p.order = {0, 2, 2};
    CHECK_THROWS_WITH_AS(xrnn::read_checkpoint_from_bytes(xrnn::save_checkpoint_to_bytes(model, optimizer, p), model,
                                                          optimizer),
                         doctest::Contains("fit.order is not a permutation of the 3 training samples (it holds 2 twice)"),
                         xrnn::io_error);
    p.order = {0, 1, 7};
    CHECK_THROWS_WITH_AS(xrnn::read_checkpoint_from_bytes(xrnn::save_checkpoint_to_bytes(model, optimizer, p), model,
                                                          optimizer),
                         doctest::Contains("(it holds 7 out of range)"), xrnn::io_error);
    p.order = {0, 1, 2};
    p.shuffle_engine = {};
    CHECK_THROWS_WITH_AS(xrnn::read_checkpoint_from_bytes(xrnn::save_checkpoint_to_bytes(model, optimizer, p), model,
                                                          optimizer),
                         doctest::Contains("the shuffling engine's state is all zeros"), xrnn::io_error);
    p.shuffle_engine = xrnn::random_engine(1).state();
    p.epoch = 1;  // without its history row
    CHECK_THROWS_WITH_AS(xrnn::save_checkpoint_to_bytes(model, optimizer, p),
                         doctest::Contains("expected one history row per epoch done (1) but got 0"), xrnn::value_error);

    // An sgd state whose nesterov flag is neither 0 nor 1: restore refuses it, the load is an io_error.
    xrnn::optimizer_snapshot<float> s = optimizer.snapshot();
    s.hyper[2] = 0.5;
    CHECK_THROWS_WITH_AS(optimizer.restore(s), "sgd::restore: expected nesterov 0 or 1 but got 0.500000",
                         xrnn::value_error);
}

TEST_CASE("optimizer snapshots: restored into a fresh optimizer, it takes the very steps the original takes")
{
    auto check = [](auto original) {
        using optimizer_type = decltype(original);
        xrnn::random_engine rng(12);
        xrnn::dense<double, 3, 2> a(rng);
        auto fill_grads = [](auto& layer, double scale) {
            double v = scale;
            layer.for_each_parameter([&](const auto&, auto&, auto& grad) {
                for (auto& g : grad)
                {
                    g = (v += 0.37) - 1.3;
                }
            });
        };
        fill_grads(a, 0.1);
        original.step(a);
        fill_grads(a, 0.2);
        original.step(a);
        xrnn::dense<double, 3, 2> b = a;
        optimizer_type copy(123.0);
        copy.restore(original.snapshot());
        CHECK(copy.learning_rate == original.learning_rate);
        CHECK(copy.steps() == 2);
        fill_grads(a, 0.3);
        fill_grads(b, 0.3);
        original.step(a);
        copy.step(b);
        CHECK(weights_of(a) == weights_of(b));
    };
    check(xrnn::sgd<double>(0.1, 0.9, true, 0.01));
    check(xrnn::adam<double>(0.01, 0.8, 0.99, 1e-6, 0.01));
    check(xrnn::rmsprop<double>(0.01, 0.95, 1e-6, 0.01));

    xrnn::adam<double> adam;
    xrnn::sgd<double> sgd;
    CHECK_THROWS_WITH_AS(sgd.restore(adam.snapshot()),
                         "sgd::restore: expected the state of a sgd optimizer but got that of 'adam'", xrnn::value_error);
    auto s = adam.snapshot();
    s.hyper[0] = std::nan("");
    CHECK_THROWS_WITH_AS(adam.restore(s), doctest::Contains("expected a finite learning_rate but got nan"),
                         xrnn::value_error);
    s = adam.snapshot();
    s.parameters = {"w"};
    CHECK_THROWS_WITH_AS(adam.restore(s), "adam::restore: expected one set of buffers per parameter (1) but got 0",
                         xrnn::value_error);
    CHECK(adam.learning_rate == 1e-3);
}

TEST_CASE("random engines: the state round-trips and continues the stream; all zeros is refused")
{
    xrnn::random_engine a(5);
    a();
    const auto state = a.state();
    const auto next = a();
    xrnn::random_engine b(6);
    b.set_state(state);
    CHECK(b() == next);
    CHECK_THROWS_WITH_AS(b.set_state({0, 0, 0, 0}),
                         "random_engine::set_state: expected a state with a non-zero word but got all zeros",
                         xrnn::value_error);
    CHECK(b.state() != xrnn::random_engine::state_type{});

    // Names of the engines a model draws from.
    auto model = make_model<float>(1);
    std::vector<std::string> names;
    xrnn::for_each_random_engine(model, [&](const std::string& name, xrnn::random_engine&) { names.push_back(name); });
    CHECK(names == std::vector<std::string>{"1.l0.mask", "1.l1.mask", "2.rng"});
}

TEST_CASE("weights to and from bytes in memory: the file's format and checks")
{
    auto model = make_model<float>(1);
    const std::string bytes = xrnn::save_weights_to_bytes(model);
    auto other = make_model<float>(2);
    xrnn::load_weights_from_bytes(bytes, other);
    CHECK(weights_of(other) == weights_of(model));
    auto third = make_model<float>(3);
    const auto before = weights_of(third);
    CHECK_THROWS_WITH_AS(xrnn::load_weights_from_bytes(bytes.substr(0, 100), third, "embedded weights"),
                         doctest::Contains("embedded weights: "), xrnn::io_error);
    CHECK(weights_of(third) == before);
}

TEST_CASE("a huge file posing as the checkpoint of a small fit is refused from its first bytes, not read whole")
{
    scratch_dir dir("checkpoint_huge");
    const task data = make_task(30, 12);
    dropout_model<float> model = make_model<float>(13);
    model.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<float>(0.01));
    xrnn::fit_options f = options_for(1);
    f.checkpoint_path = dir.file("small.xrnnc");
    model.fit(data.x, data.y, f);

    // The description's training-sample count (the second u64 after the entry "checkpoint") raised to 2^26, and the
    // file grown (sparse) to exactly the size that count implies: 512 MiB more of fit.order.
    std::string bytes = read_bytes(dir.file("small.xrnnc"));
    const std::size_t entry = bytes.find("checkpoint");
    REQUIRE(entry != std::string::npos);
    const std::size_t field = entry + 10 + 4 + 4 + 8 + 8;  // name, type, rank, shape, then cp_epoch
    std::uint64_t samples = 0;
    std::memcpy(&samples, bytes.data() + field, 8);
    REQUIRE(samples == 22);  // int(30 * 0.75)
    const std::uint64_t huge = std::uint64_t(1) << 26;
    std::memcpy(&bytes[field], &huge, 8);
    const std::string path = dir.file("huge.xrnnc");
    write_bytes(path, bytes);
    fs::resize_file(path, bytes.size() + 8 * (huge - samples));

    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    const long peak_before_kib = usage.ru_maxrss;
    const auto start = std::chrono::steady_clock::now();
    dropout_model<float> other = make_model<float>(14);
    other.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<float>(0.01));
    const std::vector<double> before = weights_of(other);
    xrnn::fit_options g = options_for(2);
    g.resume_from = path;
    CHECK_THROWS_WITH_AS(other.fit(data.x, data.y, g),
                         doctest::Contains("was written for 67108864 training and 8 validation samples, but this fit "
                                           "has 22 and 8"),
                         xrnn::value_error);
    getrusage(RUSAGE_SELF, &usage);
    CHECK(usage.ru_maxrss - peak_before_kib < 64 * 1024);  // KiB: far below the 512 MiB the file holds
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
    CHECK(weights_of(other) == before);

    // A checkpoint of more epochs than the resumed fit runs in all is refused the same way.
    xrnn::fit_options fewer = options_for(1);
    fewer.checkpoint_path = dir.file("two.xrnnc");
    fewer.epochs = 2;
    model.fit(data.x, data.y, fewer);
    xrnn::fit_options one = options_for(1);
    one.resume_from = dir.file("two.xrnnc");
    CHECK_THROWS_WITH_AS(other.fit(data.x, data.y, one),
                         doctest::Contains("holds 2 epochs, more than the 1 this fit runs in all"), xrnn::value_error);
}
