// Padding id 0 (embedding with mask_zero, layers/embedding.hpp (EM1), (EM2)) and lengths through a model
// (model/chain.hpp): a padded batch, pre- or post-padded, gives each sequence's output and gradients alone.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include <doctest/doctest.h>
#include <xtensor/xtensor.hpp>

#include <xrnn/model.hpp>

#include "support/gradcheck.hpp"

namespace
{
    constexpr std::size_t vocab = 12;
    using masked_chain = xrnn::layer_chain<xrnn::embedding<double, vocab, 5>, xrnn::lstm<double, 5, 6, 2>,
                                           xrnn::dense<double, 6, 3>>;

    masked_chain make_chain(bool mask_zero)
    {
        xrnn::random_engine rng(3);
        return masked_chain(xrnn::embedding<double, vocab, 5>(rng, xrnn::init_scheme::keras, mask_zero),
                            xrnn::lstm<double, 5, 6, 2>(rng), xrnn::dense<double, 6, 3>(rng));
    }

    std::vector<double> gradients_of(masked_chain& chain)
    {
        std::vector<double> all;
        chain.for_each_parameter([&](const auto&, auto&, auto& grad) { all.insert(all.end(), grad.begin(), grad.end()); });
        return all;
    }

    /// Sequences of ids in [1, vocab), of lengths 1..S.
    std::vector<std::vector<int>> some_sequences(std::size_t count, std::size_t steps)
    {
        xrnn::random_engine rng(9);
        std::vector<std::vector<int>> out(count);
        for (std::size_t b = 0; b < count; ++b)
        {
            const std::size_t n = b == 0 ? steps : 1 + b % steps;
            for (std::size_t t = 0; t < n; ++t)
            {
                out[b].push_back(1 + static_cast<int>(rng.uniform(0.0, 1.0) * (vocab - 1)) % int(vocab - 1));
            }
        }
        return out;
    }

    enum class padding
    {
        pre,
        post,
        inside
    };

    xt::xtensor<int, 2> padded(const std::vector<std::vector<int>>& seqs, std::size_t steps, padding where)
    {
        xt::xtensor<int, 2> ids = xt::zeros<int>({steps, seqs.size()});
        for (std::size_t b = 0; b < seqs.size(); ++b)
        {
            const std::size_t n = seqs[b].size();
            for (std::size_t t = 0; t < n; ++t)
            {
                std::size_t s = where == padding::post ? t : where == padding::pre ? steps - n + t : t * steps / n;
                ids(s, b) = seqs[b][t];
            }
        }
        return ids;
    }
}  // namespace

TEST_CASE("mask_zero: pre-, post- and inside padding give each sequence's output and gradients alone")
{
    constexpr std::size_t steps = 7;
    const auto seqs = some_sequences(6, steps);
    const auto dy = xrnn_test::random_tensor<double, 2>({seqs.size(), 3}, 4);
    for (padding where : {padding::pre, padding::post, padding::inside})
    {
        INFO("padding ", static_cast<int>(where));
        auto chain = make_chain(true);
        xrnn::zero_grad(chain);
        const auto ids = padded(seqs, steps, where);
        const xt::xtensor<double, 2> y = chain.forward(ids, xrnn::mode::training);
        chain.backward(dy);
        const auto grads = gradients_of(chain);
        CHECK(chain.layer<0>().sequence_lengths()[1] == seqs[1].size());
        std::vector<double> sum(grads.size(), 0.0);
        for (std::size_t b = 0; b < seqs.size(); ++b)
        {
            auto alone = make_chain(false);
            xrnn::zero_grad(alone);
            xt::xtensor<int, 2> one({seqs[b].size(), 1});
            std::copy(seqs[b].begin(), seqs[b].end(), one.begin());
            const xt::xtensor<double, 2> yb = alone.forward(one, xrnn::mode::training);
            for (std::size_t j = 0; j < 3; ++j)
            {
                CHECK(std::abs(y(b, j) - yb(0, j)) < 1e-12);
            }
            xt::xtensor<double, 2> dyb({1, 3});
            std::copy(dy.data() + b * 3, dy.data() + (b + 1) * 3, dyb.data());
            alone.backward(dyb);
            const auto gb = gradients_of(alone);
            for (std::size_t j = 0; j < sum.size(); ++j)
            {
                sum[j] += gb[j];
            }
        }
        double worst = 0.0;
        for (std::size_t j = 0; j < sum.size(); ++j)
        {
            worst = std::max(worst, std::abs(sum[j] - grads[j]));
        }
        CHECK(worst < 1e-12);
    }
}

TEST_CASE("mask_zero: explicit lengths through a model equal the padding's; a sequence of padding only is refused")
{
    constexpr std::size_t steps = 7;
    const auto seqs = some_sequences(5, steps);
    const auto ids = padded(seqs, steps, padding::post);
    std::vector<std::size_t> lengths;
    for (const auto& s : seqs)
    {
        lengths.push_back(s.size());
    }
    auto masked = make_chain(true);
    auto explicit_lengths = make_chain(false);
    const xt::xtensor<double, 2> a = masked.forward(ids);
    const xt::xtensor<double, 2> b = explicit_lengths.forward(ids, lengths);
    INFO("largest difference ", xt::amax(xt::abs(a - b))());
    CHECK(xt::allclose(a, b, 0.0, 1e-14));
    // a forward without lengths afterwards runs all steps again (the lengths do not stick)
    auto plain = make_chain(false);
    CHECK(xt::allclose(explicit_lengths.forward(ids), plain.forward(ids), 0.0, 0.0));
    CHECK_FALSE(xt::allclose(plain.forward(ids), a, 0.0, 1e-6));

    xt::xtensor<int, 2> empty = xt::zeros<int>({3, 2});
    empty(0, 0) = 1;
    CHECK_THROWS_AS(masked.forward(empty), xrnn::value_error);
    CHECK_THROWS_AS(explicit_lengths.forward(ids, std::vector<std::size_t>{1, 2}), xrnn::shape_error);
}

TEST_CASE("bucket_by_length: batches of similar length, every sample once per epoch, the same for the same seed")
{
    std::vector<std::size_t> lengths;
    for (std::size_t i = 0; i < 103; ++i)
    {
        lengths.push_back((i * 37) % 50 + 1);
    }
    auto bucketed = [&](std::uint64_t seed) {
        std::vector<std::size_t> order(lengths.size());
        for (std::size_t i = 0; i < order.size(); ++i)
        {
            order[i] = i;
        }
        xrnn::random_engine rng(seed);
        xrnn::detail::bucket_by_length(order, lengths, 10, 5, rng);
        return order;
    };
    const auto a = bucketed(1);
    CHECK(a == bucketed(1));
    CHECK(a != bucketed(2));
    auto sorted = a;
    std::sort(sorted.begin(), sorted.end());
    for (std::size_t i = 0; i < sorted.size(); ++i)
    {
        CHECK(sorted[i] == i);
    }
    // the spread of lengths inside a batch is much smaller than over the data (0..49)
    std::size_t widest = 0;
    for (std::size_t first = 0; first + 10 <= a.size(); first += 10)
    {
        std::size_t lo = 1000, hi = 0;
        for (std::size_t i = first; i < first + 10; ++i)
        {
            lo = std::min(lo, lengths[a[i]]);
            hi = std::max(hi, lengths[a[i]]);
        }
        widest = std::max(widest, hi - lo);
    }
    CHECK(widest <= 12);
    const xt::xtensor<int, 2> ids = {{0, 0, 3}, {1, 2, 0}, {0, 4, 0}};
    CHECK(xrnn::detail::sample_lengths(ids) == std::vector<std::size_t>{1, 2, 1});
}

TEST_CASE("mask_zero: a model fits with bucketing and masking, deterministically")
{
    using model_type = xrnn::sequential<xrnn::embedding<float, vocab, 8>, xrnn::gru<float, 8, 8>,
                                        xrnn::dense<float, 8, 1>>;
    const std::size_t n = 96, steps = 10;
    xt::xtensor<int, 2> x = xt::zeros<int>({n, steps});
    xt::xtensor<float, 2> y({n, 1});
    xrnn::random_engine data(3);
    for (std::size_t i = 0; i < n; ++i)
    {
        const std::size_t len = 1 + data.below(steps);
        for (std::size_t t = steps - len; t < steps; ++t)
        {
            x(i, t) = 1 + static_cast<int>(data.below(vocab - 1));
        }
        y(i, 0) = x(i, steps - len) > int(vocab / 2) ? 1.0f : 0.0f;  // the first word decides
    }
    auto train = [&] {
        xrnn::random_engine rng(5);
        model_type model{xrnn::embedding<float, vocab, 8>(rng, xrnn::init_scheme::keras, true),
                         xrnn::gru<float, 8, 8>(rng), xrnn::dense<float, 8, 1>(rng)};
        model.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<float>(0.02));
        xrnn::fit_options f;
        f.epochs = 15;
        f.batch_size = 16;
        f.bucket_by_length = true;
        f.bucket_pool = 3;
        f.seed = 9;
        f.verbosity = xrnn::progress::silent;
        return model.fit(x, y, f).back().loss;
    };
    const double first = train();
    CHECK(first == train());
    CHECK(first < 0.5);
}

TEST_CASE("mask_zero: a sequence output scores its real steps only, pre- or post-padded (loss.hpp, LM1, LM2)")
{
    // one class id per word; the padded steps' targets are valid ids that the loss must not read
    using seq_lstm = xrnn::lstm<double, 5, 6, 1, xrnn::output::sequence>;
    using seq_model = xrnn::sequential<xrnn::embedding<double, vocab, 5>, seq_lstm, xrnn::dense<double, 6, 3>>;
    auto make = [] {
        xrnn::random_engine rng(4);
        seq_model model{xrnn::embedding<double, vocab, 5>(rng, xrnn::init_scheme::keras, true),
                        seq_lstm(rng), xrnn::dense<double, 6, 3>(rng)};
        model.compile(xrnn::objective::softmax_cross_entropy, xrnn::sgd<double>(0.5));
        return model;
    };
    const std::size_t n = 7, steps = 6;
    const auto sequences = some_sequences(n, steps);
    xt::xtensor<int, 2> x_post = xt::zeros<int>({n, steps});
    xt::xtensor<int, 2> x_pre = xt::zeros<int>({n, steps});
    xt::xtensor<int, 2> y_post = xt::zeros<int>({n, steps});
    xt::xtensor<int, 2> y_pre = xt::full_like(y_post, 2);  // other padded targets
    double total = 0.0;  // the loss of each sequence alone, summed over its words
    std::size_t words = 0;
    seq_model reference = make();
    for (std::size_t i = 0; i < n; ++i)
    {
        const std::size_t len = sequences[i].size();
        xt::xtensor<int, 2> alone({len, 1});
        xt::xtensor<int, 2> alone_y({len, 1});
        for (std::size_t t = 0; t < len; ++t)
        {
            const int word = sequences[i][t];
            x_post(i, t) = word;
            x_pre(i, steps - len + t) = word;
            y_post(i, t) = word % 3;
            y_pre(i, steps - len + t) = word % 3;
            alone(t, 0) = word;
            alone_y(t, 0) = word % 3;
        }
        total += xrnn::softmax_cross_entropy(reference.forward(alone), alone_y) * static_cast<double>(len);
        words += len;
    }
    seq_model post = make();
    seq_model pre = make();
    const double expected = total / static_cast<double>(words);
    CHECK(post.evaluate(x_post, y_post, 4).loss == doctest::Approx(expected).epsilon(1e-12));
    CHECK(pre.evaluate(x_pre, y_pre, 3).loss == doctest::Approx(expected).epsilon(1e-12));

    xrnn::fit_options f;
    f.epochs = 2;
    f.batch_size = n;  // one batch: the same mean gradient over the real words, in any padding
    f.shuffle = false;
    f.verbosity = xrnn::progress::silent;
    post.fit(x_post, y_post, f);
    pre.fit(x_pre, y_pre, f);
    std::vector<double> a;
    std::vector<double> b;
    post.for_each_parameter([&](const auto&, auto& value, auto&) { a.insert(a.end(), value.begin(), value.end()); });
    pre.for_each_parameter([&](const auto&, auto& value, auto&) { b.insert(b.end(), value.begin(), value.end()); });
    REQUIRE(a.size() == b.size());
    for (std::size_t j = 0; j < a.size(); ++j)
    {
        REQUIRE(a[j] == doctest::Approx(b[j]).epsilon(1e-12));
    }
    CHECK(post.evaluate(x_post, y_post).loss < expected);  // and it learned
}
