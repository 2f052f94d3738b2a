// Bad input gets a clear error (a documented xrnn error type, with a message that names what was expected and what
// came) and nothing is lost: every case of the robustness issue that test_errors, test_model, test_weights and
// test_checkpoint do not already cover, through the model API as well as through the layers.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <xtensor/xview.hpp>

#include <xrnn/xrnn.hpp>

#include "support/toy_tasks.hpp"

namespace
{
    constexpr std::size_t vocab = 6;

    using id_model = xrnn::sequential<xrnn::embedding<float, vocab, 4>, xrnn::lstm<float, 4, 5>, xrnn::dense<float, 5, 1>>;
    using seq_model = xrnn::sequential<xrnn::embedding<float, vocab, 4>, xrnn::rnn<float, 4, 5, 1, xrnn::output::sequence>,
                                       xrnn::dense<float, 5, 3>>;
    using feature_model = xrnn::sequential<xrnn::lstm<float, 2, 3>, xrnn::dense<float, 3, 1>>;
    using linear_model = xrnn::sequential<xrnn::dense<float, 2, 1>>;

    template <class Model>
    Model make(std::uint64_t seed, xrnn::objective goal = xrnn::objective::binary_cross_entropy)
    {
        xrnn::random_engine rng(seed);
        Model model(rng);
        model.compile(goal, xrnn::adam<float>(0.01));
        return model;
    }

    xrnn::fit_options quiet(std::size_t epochs = 1, std::size_t batch_size = 2)
    {
        xrnn::fit_options f;
        f.epochs = epochs;
        f.batch_size = batch_size;
        f.shuffle = false;
        f.verbosity = xrnn::progress::silent;
        return f;
    }

    /// x (n, 3) ids, all valid; y (n, 1) alternating labels.
    struct id_data
    {
        xt::xtensor<int, 2> x;
        xt::xtensor<float, 2> y;
    };

    id_data make_ids(std::size_t n)
    {
        id_data d{xt::xtensor<int, 2>({n, 3}), xt::xtensor<float, 2>({n, 1})};
        for (std::size_t i = 0; i < n; ++i)
        {
            for (std::size_t t = 0; t < 3; ++t)
            {
                d.x(i, t) = static_cast<int>((i + 2 * t) % vocab);
            }
            d.y(i, 0) = static_cast<float>(i % 2);
        }
        return d;
    }

    using xrnn_test::weights_of;

    bool all_finite(const std::vector<double>& values)
    {
        for (double v : values)
        {
            if (!std::isfinite(v))
            {
                return false;
            }
        }
        return true;
    }
}  // namespace

// ---- token ids -----------------------------------------------------------------------------------------------------

TEST_CASE("token ids outside the vocabulary through the model: refused before the first batch, named by sample and step")
{
    const id_data data = make_ids(8);
    id_model model = make<id_model>(1);
    const std::vector<double> before = weights_of(model);

    xt::xtensor<int, 2> too_large = data.x;
    too_large(7, 2) = static_cast<int>(vocab);  // in the last batch: no batch before it may train
    CHECK_THROWS_WITH_AS(model.fit(too_large, data.y, quiet()),
                         "fit: token id 6 of sample 7, step 2 is outside the vocabulary [0, 6)", xrnn::value_error);
    CHECK(weights_of(model) == before);
    CHECK(model.optimizer<xrnn::adam<float>>().steps() == 0);

    xt::xtensor<int, 2> negative = data.x;
    negative(4, 1) = -3;
    CHECK_THROWS_WITH_AS(model.evaluate(negative, data.y), "evaluate: token id -3 of sample 4, step 1 is outside the vocabulary [0, 6)",
                         xrnn::value_error);
    CHECK_THROWS_WITH_AS(model.predict(negative), "predict: token id -3 of sample 4, step 1 is outside the vocabulary [0, 6)",
                         xrnn::value_error);
    const xt::xtensor<int, 1> one = {1, 2, 100};
    CHECK_THROWS_WITH_AS(model.predict_one(one), "predict: token id 100 of sample 0, step 2 is outside the vocabulary [0, 6)",
                         xrnn::value_error);
    CHECK_THROWS_WITH_AS(model.fit(data.x, data.y, negative, data.y, quiet()),
                         doctest::Contains("fit (validation data): token id -3 of sample 4"), xrnn::value_error);

    // Wide id types: the largest values, and ids that would wrap to a small index if cast to int.
    xt::xtensor<std::int64_t, 2> wide = xt::cast<std::int64_t>(data.x);
    wide(0, 0) = std::numeric_limits<std::int64_t>::max();
    CHECK_THROWS_AS(model.predict(wide), xrnn::value_error);
    wide(0, 0) = std::int64_t(1) << 32;  // 4294967296: index 0 if truncated to 32 bits
    CHECK_THROWS_WITH_AS(model.predict(wide), doctest::Contains("token id 4294967296 of sample 0, step 0"), xrnn::value_error);
    xt::xtensor<std::uint32_t, 2> unsigned_ids = xt::cast<std::uint32_t>(data.x);
    unsigned_ids(1, 1) = 0xffffffffu;
    CHECK_THROWS_AS(model.predict(unsigned_ids), xrnn::value_error);
    CHECK(weights_of(model) == before);

    // The layer itself, with ids that are the size type's extremes.
    xrnn::random_engine rng(2);
    xrnn::embedding<float, vocab, 4> embed(rng);
    xt::xtensor<long long, 2> ids({2, 2}, 1);
    ids(1, 0) = std::numeric_limits<long long>::min();
    CHECK_THROWS_WITH_AS(embed.forward(ids), doctest::Contains("token id -9223372036854775808 at step 1, batch 0"),
                         xrnn::value_error);
}

// ---- empty batches and zero steps ------------------------------------------------------------------------------------

TEST_CASE("empty data sets and empty batches are shape_errors in every entry point")
{
    id_model model = make<id_model>(3);
    const xt::xtensor<int, 2> none({0, 3});
    const xt::xtensor<float, 2> no_labels({0, 1});
    CHECK_THROWS_WITH_AS(model.evaluate(none, no_labels), "evaluate: the data set is empty (x has 0 samples, shape (0, 3))",
                         xrnn::shape_error);
    CHECK_THROWS_WITH_AS(model.predict(none), "predict: the data set is empty (x has 0 samples, shape (0, 3))",
                         xrnn::shape_error);
    const id_data val = make_ids(2);
    CHECK_THROWS_WITH_AS(model.fit(val.x, val.y, none, no_labels, quiet()),
                         doctest::Contains("fit (validation data): the data set is empty"), xrnn::shape_error);
    CHECK_THROWS_WITH_AS(model.forward(xt::xtensor<int, 2>({3, 0})), doctest::Contains("batch (ids.shape()[1]) must be at least 1 but got 0"),
                         xrnn::shape_error);

    xrnn::random_engine rng(4);
    xrnn::lstm<float, 3, 4> lstm(rng);
    CHECK_THROWS_WITH_AS(lstm.forward(xt::xtensor<float, 3>({2, 0, 3})),
                         "lstm::forward: x expected shape (S, B, 3) with S, B >= 1 but got (2, 0, 3)", xrnn::shape_error);
    xrnn::lstm_cell<float, 3, 4> cell(rng);
    xrnn::lstm_cell<float, 3, 4>::state_type empty_state{xt::xtensor<float, 2>({0, 4}), xt::xtensor<float, 2>({0, 4})};
    CHECK_THROWS_WITH_AS(cell.forward(xt::xtensor<float, 2>({0, 3}), empty_state),
                         "lstm_cell: batch (x.shape()[0]) must be at least 1 but got 0", xrnn::shape_error);
    xrnn::dense<float, 3, 2> dense(rng);
    CHECK_THROWS_AS(dense.forward(xt::xtensor<float, 3>({2, 0, 3})), xrnn::shape_error);

    // Size-keeping layers used to return an empty result; they refuse an empty batch as the sized layers do.
    xrnn::dropout<float> drop(0.5, rng);
    CHECK_THROWS_WITH_AS(drop.forward(xt::xtensor<float, 2>({0, 3}), xrnn::mode::training),
                         "dropout::forward: x expected shape (B, F) or (S, B, F) with every extent >= 1 but got (0, 3)",
                         xrnn::shape_error);
    CHECK_THROWS_AS(drop.forward(xt::xtensor<float, 3>({2, 0, 3})), xrnn::shape_error);
    xrnn::activation_layer<float, xrnn::activation::softmax> softmax;
    CHECK_THROWS_WITH_AS(softmax.forward(xt::xtensor<float, 2>({2, 0})),
                         "activation_layer<softmax>::forward: x expected shape (B, F) or (S, B, F) with every extent >= 1 "
                         "but got (2, 0)",
                         xrnn::shape_error);
    xrnn::activation_layer<float, xrnn::activation::relu> relu;
    CHECK_THROWS_AS(relu.forward(xt::xtensor<float, 3>({0, 2, 2})), xrnn::shape_error);

    const xt::xtensor<float, 2> empty_logits({0, 1});
    CHECK_THROWS_WITH_AS(xrnn::binary_cross_entropy_with_logits(empty_logits, empty_logits),
                         doctest::Contains("the prediction is empty, shape (0, 1)"), xrnn::shape_error);
    CHECK_THROWS_AS(xrnn::mean_squared_error(empty_logits, empty_logits), xrnn::shape_error);
    CHECK_THROWS_AS(xrnn::softmax_cross_entropy(xt::xtensor<float, 2>({0, 3}), xt::xtensor<int, 1>::from_shape({0})),
                    xrnn::shape_error);
}

TEST_CASE("zero steps are shape_errors through the model and the layers")
{
    id_model model = make<id_model>(5);
    const xt::xtensor<int, 2> no_steps({4, 0});
    const xt::xtensor<float, 2> labels({4, 1}, 0.0f);
    CHECK_THROWS_WITH_AS(model.fit(no_steps, labels, quiet()), "fit: sequences of 0 steps (x shape (4, 0))",
                         xrnn::shape_error);
    CHECK_THROWS_WITH_AS(model.evaluate(no_steps, labels), "evaluate: sequences of 0 steps (x shape (4, 0))",
                         xrnn::shape_error);

    feature_model features = make<feature_model>(6, xrnn::objective::mean_squared_error);
    const xt::xtensor<float, 3> no_feature_steps({4, 0, 2});
    CHECK_THROWS_WITH_AS(features.predict(no_feature_steps), "predict: sequences of 0 steps (x shape (4, 0, 2))",
                         xrnn::shape_error);

    xrnn::random_engine rng(7);
    xrnn::lstm<float, 2, 3, 2, xrnn::output::sequence> lstm(rng);
    CHECK_THROWS_WITH_AS(lstm.forward(xt::xtensor<float, 3>({0, 2, 2})),
                         "lstm::forward: x expected shape (S, B, 2) with S, B >= 1 but got (0, 2, 2)", xrnn::shape_error);
    xrnn::embedding<float, vocab, 4> embed(rng);
    CHECK_THROWS_WITH_AS(embed.forward(xt::xtensor<int, 2>({0, 2})),
                         "embedding::forward: steps (ids.shape()[0]) must be at least 1 but got 0", xrnn::shape_error);
}

// ---- shapes that change between calls --------------------------------------------------------------------------------

TEST_CASE("backward with a gradient of another batch or length than the forward's: shape_error, and the layer still works")
{
    xrnn::random_engine rng(8);
    xrnn::lstm<float, 3, 4> last(rng);
    xrnn::rnn<float, 3, 4, 2, xrnn::output::sequence> sequence(rng);
    const xt::xtensor<float, 3> x({5, 2, 3}, 0.25f);

    last.forward(x, xrnn::mode::training);
    CHECK_THROWS_WITH_AS(last.backward(xt::xtensor<float, 2>({3, 4}, 1.0f)), "lstm: dy expected shape (2, 4) but got (3, 4)",
                         xrnn::shape_error);
    CHECK_NOTHROW(last.backward(xt::xtensor<float, 2>({2, 4}, 1.0f)));  // the cache survived the refused call

    sequence.forward(x, xrnn::mode::training);
    CHECK_THROWS_WITH_AS(sequence.backward(xt::xtensor<float, 3>({4, 2, 4}, 1.0f)),
                         "rnn: dy expected shape (5, 2, 4) but got (4, 2, 4)", xrnn::shape_error);
    CHECK_THROWS_WITH_AS(sequence.backward(xt::xtensor<float, 3>({5, 1, 4}, 1.0f)),
                         "rnn: dy expected shape (5, 2, 4) but got (5, 1, 4)", xrnn::shape_error);
    CHECK_NOTHROW(sequence.backward(xt::xtensor<float, 3>({5, 2, 4}, 1.0f)));

    // A training forward of batch 2, then an inference forward of batch 3: backward belongs to no forward now.
    last.forward(x, xrnn::mode::training);
    last.forward(xt::xtensor<float, 3>({5, 3, 3}, 0.25f));
    CHECK_THROWS_AS(last.backward(xt::xtensor<float, 2>({3, 4}, 1.0f)), xrnn::state_error);

    xrnn::dense<float, 3, 2> dense(rng);
    dense.forward(xt::xtensor<float, 2>({2, 3}, 1.0f), xrnn::mode::training);
    CHECK_THROWS_WITH_AS(dense.backward(xt::xtensor<float, 2>({4, 2}, 1.0f)), "dense::backward: dy expected shape (2, 2) but got (4, 2)",
                         xrnn::shape_error);
    xrnn::embedding<float, vocab, 4> embed(rng);
    embed.forward(xt::xtensor<int, 2>({3, 2}, 1), xrnn::mode::training);
    CHECK_THROWS_WITH_AS(embed.backward(xt::xtensor<float, 3>({3, 5, 4}, 1.0f)),
                         "embedding::backward: dy expected shape (3, 2, 4) but got (3, 5, 4)", xrnn::shape_error);
    xrnn::dropout<float> drop(0.5, rng);
    drop.forward(xt::xtensor<float, 2>({2, 3}, 1.0f), xrnn::mode::training);
    CHECK_THROWS_WITH_AS(drop.backward(xt::xtensor<float, 2>({3, 3}, 1.0f)),
                         "dropout::backward: dy expected shape (2, 3) (the last forward's) but got (3, 3)", xrnn::shape_error);
    xrnn::activation_layer<float, xrnn::activation::tanh> act;
    act.forward(xt::xtensor<float, 2>({2, 3}, 1.0f));
    CHECK_THROWS_AS(act.backward(xt::xtensor<float, 2>({2, 4}, 1.0f)), xrnn::shape_error);

    xrnn::lstm_cell<float, 3, 4> cell(rng);
    using state = xrnn::lstm_cell<float, 3, 4>::state_type;
    cell.forward(xt::xtensor<float, 2>({2, 3}, 0.5f), state{xt::xtensor<float, 2>({2, 4}, 0.0f), xt::xtensor<float, 2>({2, 4}, 0.0f)},
                 xrnn::mode::training);
    CHECK_THROWS_WITH_AS(cell.backward(state{xt::xtensor<float, 2>({2, 4}, 1.0f), xt::xtensor<float, 2>({1, 4}, 1.0f)}),
                         "lstm_cell: gradient of c expected shape (2, 4) but got (1, 4)", xrnn::shape_error);

    // Through the model: the gradient of a model's output must be of the last forward's batch.
    id_model model = make<id_model>(9);
    model.forward(xt::xtensor<int, 2>({3, 2}, 1), xrnn::mode::training);
    CHECK_THROWS_WITH_AS(model.backward(xt::xtensor<float, 2>({3, 1}, 1.0f)), "dense::backward: dy expected shape (2, 1) but got (3, 1)",
                         xrnn::shape_error);
}

TEST_CASE("a stateful forward with an initial state of another batch or layer count is a shape_error")
{
    xrnn::random_engine rng(10);
    xrnn::lstm<float, 3, 4, 2> lstm(rng);
    const xt::xtensor<float, 3> batch2({3, 2, 3}, 0.5f);
    const xt::xtensor<float, 3> batch3({3, 3, 3}, 0.5f);
    const auto& out = lstm.forward(batch2);
    const xt::xtensor<float, 2> expected_first = out;

    // Streaming: the final state of a batch-2 chunk cannot start a batch-3 chunk.
    const auto carried = lstm.final_state();
    CHECK_THROWS_WITH_AS(lstm.forward(batch3, carried), "lstm: initial h expected shape (2, 3, 4) but got (2, 2, 4)",
                         xrnn::shape_error);
    xrnn::lstm<float, 3, 4, 2>::state_type wrong_c{xt::xtensor<float, 3>({2, 2, 4}, 0.0f), xt::xtensor<float, 3>({1, 2, 4}, 0.0f)};
    CHECK_THROWS_WITH_AS(lstm.forward(batch2, wrong_c), "lstm: initial c expected shape (2, 2, 4) but got (1, 2, 4)",
                         xrnn::shape_error);
    // The layer is unchanged by the refused calls: zero initial states give the first output again.
    CHECK(lstm.forward(batch2) == expected_first);

    xrnn::rnn<float, 3, 4> rnn(rng);
    xrnn::rnn<float, 3, 4>::state_type three_layers{xt::xtensor<float, 3>({3, 2, 4}, 0.0f)};
    CHECK_THROWS_WITH_AS(rnn.forward(batch2, three_layers), "rnn: initial h expected shape (1, 2, 4) but got (3, 2, 4)",
                         xrnn::shape_error);
    xrnn::rnn_cell<float, 3, 4> cell(rng);
    xrnn::rnn_cell<float, 3, 4>::state_type prev{xt::xtensor<float, 2>({3, 4}, 0.0f)};
    CHECK_THROWS_WITH_AS(cell.forward(xt::xtensor<float, 2>({2, 3}, 0.5f), prev), "rnn_cell: previous h expected shape (2, 4) but got (3, 4)",
                         xrnn::shape_error);
}

TEST_CASE("targets whose shape does not fit the model's output are refused before the first batch")
{
    const id_data data = make_ids(6);
    id_model model = make<id_model>(11);
    const xt::xtensor<float, 2> two_per_sample({6, 2}, 0.0f);
    CHECK_THROWS_WITH_AS(model.fit(data.x, two_per_sample, quiet()),
                         "fit: y expected shape (6, 1) (one target per output of the model) but got (6, 2)", xrnn::shape_error);

    seq_model tagger = make<seq_model>(12, xrnn::objective::softmax_cross_entropy);
    const xt::xtensor<int, 2> short_tags({6, 2}, 0);  // x has 3 steps
    CHECK_THROWS_WITH_AS(tagger.fit(data.x, short_tags, quiet()),
                         "fit: y expected shape (6, 3) (one target per output of the model) but got (6, 2)", xrnn::shape_error);
    xt::xtensor<int, 2> tags({6, 3}, 1);
    tags(5, 2) = -1;
    CHECK_THROWS_WITH_AS(tagger.evaluate(data.x, tags), "evaluate: class id -1 of sample 5 is outside [0, 3)", xrnn::value_error);
}

// ---- validation split ----------------------------------------------------------------------------------------------

TEST_CASE("validation_split: 0 means no validation; 1, outside [0, 1) and splits leaving no side empty are value_errors")
{
    const id_data data = make_ids(8);
    id_model model = make<id_model>(13);

    xrnn::fit_options f = quiet(1, 1);
    f.validation_split = 0.0;
    const xrnn::history h = model.fit(data.x, data.y, f);
    CHECK_FALSE(h.back().has_validation);
    CHECK(h.back().steps == 8);  // every sample trains

    const std::vector<double> before = weights_of(model);
    for (double split : {1.0, -0.25, 2.0, -0.0 - 1e-12, std::numeric_limits<double>::infinity(),
                         -std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()})
    {
        f.validation_split = split;
        CHECK_THROWS_WITH_AS(model.fit(data.x, data.y, f), doctest::Contains("fit: validation_split expected in [0, 1) but is"),
                             xrnn::value_error);
    }
    f.validation_split = 0.9;  // int(8 * 0.1) = 0 samples left to train
    CHECK_THROWS_WITH_AS(model.fit(data.x, data.y, f),
                         "fit: validation_split 0.9 of 8 samples leaves 0 for training and 8 for validation; both need at "
                         "least one",
                         xrnn::value_error);
    f.validation_split = 1e-9;  // int(8 * (1 - 1e-9)) = 7: one validation sample, fine
    CHECK_NOTHROW(model.fit(data.x, data.y, f));
    const std::vector<double> trained = weights_of(model);
    f.validation_split = 1e-18;  // 1 - 1e-18 == 1: all 8 train, none validate
    CHECK_THROWS_WITH_AS(model.fit(data.x, data.y, f), doctest::Contains("leaves 8 for training and 0 for validation"),
                         xrnn::value_error);

    const id_data single = make_ids(1);
    f.validation_split = 0.5;
    CHECK_THROWS_WITH_AS(model.fit(single.x, single.y, f), doctest::Contains("of 1 samples leaves 0 for training and 1"),
                         xrnn::value_error);
    f.validation_split = 0.25;
    CHECK_THROWS_WITH_AS(model.fit(data.x, data.y, data.x, data.y, f),
                         "fit: validation data were given, so validation_split must be 0 (it is 0.250000)", xrnn::value_error);
    CHECK(weights_of(model) == trained);
    CHECK(before != trained);
}

// ---- labels --------------------------------------------------------------------------------------------------------

TEST_CASE("binary cross-entropy labels outside {0, 1}: value_errors in fit, evaluate, validation data and the loss")
{
    const id_data data = make_ids(4);
    id_model model = make<id_model>(14);
    const std::vector<double> before = weights_of(model);
    for (float bad : {-1.0f, 2.0f, 0.5f, std::numeric_limits<float>::infinity(), std::nanf("")})
    {
        xt::xtensor<float, 2> y = data.y;
        y(3, 0) = bad;
        CHECK_THROWS_WITH_AS(model.fit(data.x, y, quiet()),
                             doctest::Contains("fit: binary cross-entropy labels expected in {0, 1} but sample 3 has"),
                             xrnn::value_error);
        CHECK_THROWS_AS(model.evaluate(data.x, y), xrnn::value_error);
        CHECK_THROWS_WITH_AS(model.fit(data.x, data.y, data.x, y, quiet()),
                             doctest::Contains("fit (validation data): binary cross-entropy labels expected in {0, 1}"),
                             xrnn::value_error);
    }
    CHECK(weights_of(model) == before);

    const xt::xtensor<float, 2> logits({2, 1}, 0.0f);
    CHECK_THROWS_WITH_AS(xrnn::binary_cross_entropy_with_logits(logits, xt::xtensor<float, 2>({2, 1}, 2.0f)),
                         "binary_cross_entropy_with_logits: target expected in [0, 1] but element 0 is 2", xrnn::value_error);
    CHECK_THROWS_WITH_AS(xrnn::binary_cross_entropy_with_logits(logits, xt::xtensor<float, 2>({2, 1}, -0.5f)),
                         doctest::Contains("target expected in [0, 1] but element 0 is -0.5"), xrnn::value_error);
    CHECK_THROWS_AS(xrnn::binary_cross_entropy_with_logits(logits, xt::xtensor<float, 2>({2, 1}, std::nanf(""))),
                    xrnn::value_error);
}

// ---- non-finite loss -------------------------------------------------------------------------------------------------

TEST_CASE("a loss that becomes inf in epoch 2: the error names epoch and step, and the weights are the last good step's")
{
    auto make_linear = [] {
        xrnn::random_engine rng(15);
        linear_model model(rng);
        model.compile(xrnn::objective::mean_squared_error, xrnn::sgd<float>(0.01));
        return model;
    };
    xt::xtensor<float, 2> x = {{1, 2}, {0.5f, -1}, {2, 0}, {-1, 1}};
    xt::xtensor<float, 2> y = {{1}, {0}, {1}, {0}};
    const xt::xtensor<float, 2> clean_y = y;

    // Epoch 1 is clean; the callback then corrupts a target, so epoch 2 fails at its third step.
    linear_model model = make_linear();
    xrnn::fit_options f = quiet(3, 1);
    f.on_epoch_end([&](const xrnn::epoch_logs& logs) {
        if (logs.epoch == 1)
        {
            y(2, 0) = std::numeric_limits<float>::infinity();
        }
    });
    CHECK_THROWS_WITH_AS(model.fit(x, y, f),
                         doctest::Contains("fit: the loss became inf at epoch 2, step 3 of 4; training stopped and the "
                                           "weights are those of the last good step"),
                         xrnn::value_error);

    // The same by hand: epoch 1 on everything, then the first two samples of epoch 2 (sgd keeps no state).
    linear_model reference = make_linear();
    reference.fit(x, clean_y, quiet(1, 1));
    const xt::xtensor<float, 2> x2 = xt::view(x, xt::range(0, 2), xt::all());
    const xt::xtensor<float, 2> y2 = xt::view(clean_y, xt::range(0, 2), xt::all());
    reference.fit(x2, y2, quiet(1, 1));
    CHECK(weights_of(model) == weights_of(reference));
}

TEST_CASE("a finite loss with an overflowing gradient stops too, before the step would make the weights infinite")
{
    // (w x)^2 fits in a float for x = 2e19 and |w| < 0.9, but its gradient 2 w x^2 does not. Before this check the
    // step was taken and the weights became -inf, with the error still claiming the last good step's weights.
    auto make_linear = [] {
        xrnn::random_engine rng(16);
        linear_model model(rng);
        model.compile(xrnn::objective::mean_squared_error, xrnn::sgd<float>(1e-30));
        // w = (0.5, 0.25), b = 0: (w x)^2 = 2.25e38 for x = (2e19, 2e19), its gradient 2 (w x) x = 6e38 is not.
        model.for_each_parameter([](const std::string& name, auto& value, auto&) {
            value.fill(0.0f);
            if (name == "0.w")
            {
                value(0, 0) = 0.5f;
                value(1, 0) = 0.25f;
            }
        });
        return model;
    };
    const xt::xtensor<float, 2> x = {{0.5f, 0.25f}, {2e19f, 2e19f}, {1, 1}};
    const xt::xtensor<float, 2> y = {{0}, {0}, {0}};
    linear_model model = make_linear();
    std::string message;
    try
    {
        model.fit(x, y, quiet(1, 1));
    }
    catch (const xrnn::value_error& e)
    {
        message = e.what();
    }
    CHECK(message.find("fit: the gradient became inf or nan (the loss was ") == 0);
    CHECK(message.find(") at epoch 1, step 2 of 3;") != std::string::npos);
    const std::vector<double> after = weights_of(model);
    CHECK(all_finite(after));

    linear_model reference = make_linear();
    const xt::xtensor<float, 2> first_x = xt::view(x, xt::range(0, 1), xt::all());
    const xt::xtensor<float, 2> first_y = xt::view(y, xt::range(0, 1), xt::all());
    reference.fit(first_x, first_y, quiet(1, 1));
    CHECK(after == weights_of(reference));

    // With skip, the step is dropped and counted; the others train.
    linear_model skipping = make_linear();
    xrnn::fit_options f = quiet(2, 1);
    f.on_non_finite_loss = xrnn::non_finite_loss::skip;
    const xrnn::history h = skipping.fit(x, y, f);
    CHECK(h.back().skipped_steps == 1);
    CHECK(h.back().steps == 2);
    CHECK(std::isfinite(h.back().loss));
    CHECK(all_finite(weights_of(skipping)));
}

TEST_CASE("skip: NaN features and infinite targets drop their steps only; every epoch reports them")
{
    xrnn::random_engine rng(17);
    linear_model model(rng);
    model.compile(xrnn::objective::mean_squared_error, xrnn::adam<float>(0.01));
    const xt::xtensor<float, 2> x = {{1, 2}, {std::nanf(""), 1}, {2, 0}, {-1, 1}, {0, 1}};
    const xt::xtensor<float, 2> y = {{1}, {0}, {std::numeric_limits<float>::infinity()}, {0}, {1}};
    xrnn::fit_options f = quiet(3, 1);
    f.shuffle = true;
    f.on_non_finite_loss = xrnn::non_finite_loss::skip;
    const xrnn::history h = model.fit(x, y, f);
    for (const xrnn::epoch_logs& e : h.epochs())
    {
        CHECK(e.skipped_steps == 2);
        CHECK(e.steps == 3);
        CHECK(std::isfinite(e.loss));
    }
    CHECK(all_finite(weights_of(model)));
    CHECK(model.optimizer<xrnn::adam<float>>().steps() == 9);
}

TEST_CASE("a batch size above the data set's size is one batch of all of it (Keras), even near the largest size_t")
{
    const id_data d = make_ids(10);
    for (std::size_t batch_size : {std::size_t(11), std::size_t(1) << 40, std::numeric_limits<std::size_t>::max()})
    {
        CAPTURE(batch_size);
        id_model model = make<id_model>(21);
        const std::vector<double> before = weights_of(model);
        const xrnn::history h = model.fit(d.x, d.y, quiet(2, batch_size));
        CHECK(h.back().steps == 1);
        CHECK(h.back().loss > 0.0);
        CHECK(weights_of(model) != before);
        id_model whole = make<id_model>(21);
        whole.fit(d.x, d.y, quiet(2, 10));
        CHECK(weights_of(model) == weights_of(whole));
        CHECK(model.evaluate(d.x, d.y, batch_size).loss == model.evaluate(d.x, d.y, 10).loss);
        CHECK(model.predict(d.x, batch_size) == model.predict(d.x, 10));
    }
    // with bucketing too: batch_size * bucket_pool (2^59 * 32) must not wrap to 0
    id_model bucketed = make<id_model>(22);
    xrnn::fit_options f = quiet(1, std::size_t(1) << 59);
    f.bucket_by_length = true;
    CHECK(bucketed.fit(d.x, d.y, f).back().steps == 1);
}

TEST_CASE("weights an optimizer step made infinite: the error says so instead of claiming the last good step's")
{
    // sgd with a learning rate of 1e38 (a valid setting) overflows the weights at its first step; the loss of the
    // next batch is then not finite. Skipping batches cannot help any more, so skip stops too.
    for (auto policy : {xrnn::non_finite_loss::stop, xrnn::non_finite_loss::skip})
    {
        xrnn::random_engine rng(17);
        linear_model model(rng);
        model.compile(xrnn::objective::mean_squared_error, xrnn::sgd<float>(1e38));
        const xt::xtensor<float, 2> x = {{100, 100}, {100, 100}, {100, 100}};
        const xt::xtensor<float, 2> y = {{1}, {1}, {1}};
        xrnn::fit_options f = quiet(1, 1);
        f.on_non_finite_loss = policy;
        CHECK_THROWS_WITH_AS(model.fit(x, y, f),
                             doctest::Contains("at epoch 1, step 2 of 3; training stopped because the weights are no "
                                               "longer finite"),
                             xrnn::value_error);
        CHECK_FALSE(all_finite(weights_of(model)));
    }
}
