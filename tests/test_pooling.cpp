// Pooling over time (layers/pooling.hpp, (PF1)-(PB2)) and the losses on the real steps of padded sequences
// (loss.hpp, (LM1), (LM2)): against PyTorch (tests/fixtures/masked.txt), against central differences, in a
// model after a bidirectional layer with masking, and its errors.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xtensor.hpp>

#include <xrnn/layers/bidirectional.hpp>
#include <xrnn/layers/pooling.hpp>
#include <xrnn/model.hpp>

#include "support/fixture.hpp"
#include "support/gradcheck.hpp"

using xrnn::output;

namespace
{
    template <class T>
    constexpr double tolerance = std::is_same<T, float>::value ? 1e-5 : 1e-10;

    template <class Got, class Expected>
    void check_close(const Got& got, const Expected& expected, double tol)
    {
        REQUIRE(got.size() == expected.size());
        double diff = 0.0;
        double norm = 0.0;
        for (std::size_t j = 0; j < got.size(); ++j)
        {
            const double e = static_cast<double>(expected.data()[j]);
            diff += (static_cast<double>(got.data()[j]) - e) * (static_cast<double>(got.data()[j]) - e);
            norm += e * e;
        }
        CHECK(std::sqrt(diff) <= tol * std::max(1.0, std::sqrt(norm)));
    }

    std::vector<std::size_t> fixture_lengths(const xrnn_test::fixture& fx)
    {
        const auto l = fx.tensor<int, 1>("lengths");
        return std::vector<std::size_t>(l.begin(), l.end());
    }

    /// Central differences of sum(pool(x) * r) with respect to x, against backward(r).
    template <class Pool>
    void check_pool_gradient(const std::vector<std::size_t>& lengths, std::size_t steps)
    {
        constexpr std::size_t F = Pool::input_size;
        const std::size_t batch = lengths.size();
        auto x = xrnn_test::random_tensor<double, 3>({steps, batch, F}, 21);
        const auto r = xrnn_test::random_tensor<double, 2>({batch, F}, 22);
        Pool pool;
        pool.set_lengths(lengths.data(), lengths.size());
        pool.forward(x, xrnn::mode::training);
        const auto dx = pool.backward(r);
        const auto numeric = xrnn_test::numeric_gradient(x, [&] {
            Pool probe;
            probe.set_lengths(lengths.data(), lengths.size());
            return xrnn_test::projected(probe.forward(x), r);
        });
        CHECK(xrnn_test::relative_error(dx, numeric) < xrnn_test::gradcheck_tolerance);
    }
}  // namespace

TEST_CASE_TEMPLATE("pooling: mean and max over the real steps match PyTorch, the first maximum taking a tie", T,
                   float, double)
{
    const xrnn_test::fixture fx(xrnn_test::fixture_path("masked.txt"));
    const auto lengths = fixture_lengths(fx);
    const xt::xtensor<T, 3> x = fx.tensor<T, 3>("pool.x");
    const xt::xtensor<T, 2> dy = fx.tensor<T, 2>("pool.dy");
    xrnn::global_average_pool<T, 4> average;
    xrnn::global_max_pool<T, 4> max;
    average.set_lengths(lengths.data(), lengths.size());
    max.set_lengths(lengths.data(), lengths.size());
    check_close(average.forward(x, xrnn::mode::training), fx.tensor<double, 2>("pool.average.y"), tolerance<T>);
    check_close(average.backward(dy), fx.tensor<double, 3>("pool.average.dx"), tolerance<T>);
    check_close(max.forward(x, xrnn::mode::training), fx.tensor<double, 2>("pool.max.y"), tolerance<T>);
    check_close(max.backward(dy), fx.tensor<double, 3>("pool.max.dx"), tolerance<T>);
}

TEST_CASE_TEMPLATE("pooling: the losses on the real steps of padded sequences match PyTorch's on the masked rows", T,
                   float, double)
{
    const xrnn_test::fixture fx(xrnn_test::fixture_path("masked.txt"));
    const auto lengths = fixture_lengths(fx);
    xt::xtensor<T, 3> grad;
    const T mse = xrnn::mean_squared_error(fx.tensor<T, 3>("mse.pred"), fx.tensor<T, 3>("mse.target"), lengths, &grad);
    CHECK(std::abs(mse - fx.scalar<double>("mse.loss")) <= tolerance<T>);
    check_close(grad, fx.tensor<double, 3>("mse.grad.pred"), tolerance<T>);
    const T bce = xrnn::binary_cross_entropy_with_logits(fx.tensor<T, 3>("bce.logits"), fx.tensor<T, 3>("bce.target"),
                                                         lengths, &grad);
    CHECK(std::abs(bce - fx.scalar<double>("bce.loss")) <= tolerance<T>);
    check_close(grad, fx.tensor<double, 3>("bce.grad.logits"), tolerance<T>);
    const T ce = xrnn::softmax_cross_entropy(fx.tensor<T, 3>("ce.logits"), fx.tensor<int, 2>("ce.target"), lengths,
                                             &grad);
    CHECK(std::abs(ce - fx.scalar<double>("ce.loss")) <= tolerance<T>);
    check_close(grad, fx.tensor<double, 3>("ce.grad.logits"), tolerance<T>);
}

TEST_CASE("pooling: the gradients match central differences, with and without lengths")
{
    check_pool_gradient<xrnn::global_average_pool<double, 5>>({4, 1, 6, 2}, 6);
    check_pool_gradient<xrnn::global_max_pool<double, 5>>({4, 1, 6, 2}, 6);
    check_pool_gradient<xrnn::global_average_pool<double, 3>>({7, 7}, 7);
    check_pool_gradient<xrnn::global_max_pool<double, 3>>({7, 7}, 7);
    xrnn::global_max_pool<double, 2> all_steps;  // no lengths: every step
    const auto x = xrnn_test::random_tensor<double, 3>({3, 2, 2}, 5);
    const auto& y = all_steps.forward(x);
    for (std::size_t b = 0; b < 2; ++b)
    {
        for (std::size_t j = 0; j < 2; ++j)
        {
            CHECK(y(b, j) == std::max({x(0, b, j), x(1, b, j), x(2, b, j)}));
        }
    }
}

TEST_CASE("pooling: a NaN among the real steps gives NaN, and the padding is never read")
{
    xrnn::global_max_pool<double, 1> max;
    xrnn::global_average_pool<double, 1> average;
    xt::xtensor<double, 3> x = {{{1.0}, {2.0}}, {{std::nan("")}, {3.0}}, {{5.0}, {std::nan("")}}};
    const std::vector<std::size_t> lengths = {3, 2};  // sequence 1's NaN is padding
    max.set_lengths(lengths.data(), 2);
    average.set_lengths(lengths.data(), 2);
    CHECK(std::isnan(max.forward(x)(0, 0)));
    CHECK(max.forward(x)(1, 0) == 3.0);
    CHECK(std::isnan(average.forward(x)(0, 0)));
    CHECK(average.forward(x)(1, 0) == 2.5);
}

TEST_CASE("pooling: wrong shapes, lengths and a backward before forward are refused")
{
    xrnn::global_max_pool<double, 3> pool;
    CHECK_THROWS_WITH_AS(pool.backward(xt::zeros<double>({2, 3})), doctest::Contains("before backward"),
                         xrnn::state_error);
    CHECK_THROWS_WITH_AS(pool.forward(xt::zeros<double>({4, 2, 2})), doctest::Contains("(S, B, 3)"),
                         xrnn::shape_error);
    const std::vector<std::size_t> bad = {4, 5};
    pool.set_lengths(bad.data(), bad.size());
    CHECK_THROWS_WITH_AS(pool.forward(xt::zeros<double>({4, 2, 3})), doctest::Contains("has length 5"),
                         xrnn::value_error);
    pool.set_lengths(bad.data(), 1);
    CHECK_THROWS_AS(pool.forward(xt::zeros<double>({4, 2, 3})), xrnn::shape_error);
    pool.set_lengths(nullptr, 0);
    pool.forward(xt::zeros<double>({4, 2, 3}));
    CHECK_THROWS_AS(pool.backward(xt::zeros<double>({3, 3})), xrnn::shape_error);
    CHECK(xrnn::global_max_pool<float, 3>::signature() == "global_max_pool<float32,3>");
    CHECK(xrnn::global_average_pool<double, 8>::signature() == "global_average_pool<float64,8>");
}

TEST_CASE("pooling: after a masked bidirectional layer in a model, pre- and post-padding train alike")
{
    constexpr std::size_t vocab = 11;
    using bi = xrnn::bilstm<double, 4, 3, 1, output::sequence>;
    using model_type = xrnn::sequential<xrnn::embedding<double, vocab, 4>, bi, xrnn::global_max_pool<double, 6>,
                                        xrnn::dense<double, 6, 1>>;
    auto make = [] {
        xrnn::random_engine rng(8);
        model_type model{xrnn::embedding<double, vocab, 4>(rng, xrnn::init_scheme::keras, true), bi(rng),
                         xrnn::global_max_pool<double, 6>(), xrnn::dense<double, 6, 1>(rng)};
        model.compile(xrnn::objective::binary_cross_entropy, xrnn::adam<double>(0.01));
        return model;
    };
    const std::size_t n = 9, steps = 7;
    xt::xtensor<int, 2> pre = xt::zeros<int>({n, steps});
    xt::xtensor<int, 2> post = xt::zeros<int>({n, steps});
    xt::xtensor<double, 2> y({n, 1});
    xrnn::random_engine data(4);
    for (std::size_t i = 0; i < n; ++i)
    {
        const std::size_t len = 1 + data.below(steps);
        for (std::size_t t = 0; t < len; ++t)
        {
            const int word = 1 + static_cast<int>(data.below(vocab - 1));
            pre(i, steps - len + t) = word;
            post(i, t) = word;
        }
        y(i, 0) = static_cast<double>(pre(i, steps - len) % 2);
    }
    model_type a = make();
    model_type b = make();
    xrnn::fit_options f;
    f.epochs = 3;
    f.batch_size = 4;
    f.seed = 2;
    f.verbosity = xrnn::progress::silent;
    const auto ha = a.fit(pre, y, f);
    const auto hb = b.fit(post, y, f);
    CHECK(ha.back().loss == doctest::Approx(hb.back().loss).epsilon(1e-12));
    CHECK(a.evaluate(pre, y).loss == doctest::Approx(b.evaluate(post, y).loss).epsilon(1e-12));
    CHECK(a.summary().find("global_max_pool<float64,6>") != std::string::npos);
}
