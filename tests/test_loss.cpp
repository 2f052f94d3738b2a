// loss.hpp: mean squared error, binary cross-entropy with logits and softmax cross-entropy: values against hand
// computations, gradients against finite differences, numerical stability, and errors.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include <doctest/doctest.h>

#include <xtensor/xmath.hpp>
#include <xtensor/xtensor.hpp>

#include <xrnn/loss.hpp>

#include "support/gradcheck.hpp"

using xrnn_test::gradcheck_tolerance;
using xrnn_test::numeric_gradient;
using xrnn_test::random_tensor;
using xrnn_test::relative_error;

namespace
{
    /// -y log s(x) - (1 - y) log(1 - s(x)), written naively (fine for moderate x).
    double bce_by_hand(double x, double y)
    {
        const double s = 1.0 / (1.0 + std::exp(-x));
        return -y * std::log(s) - (1.0 - y) * std::log(1.0 - s);
    }
}  // namespace

TEST_CASE("loss: mean_squared_error is the mean of squared differences, gradient 2 (p - y) / N")
{
    const xt::xtensor<double, 2> pred = {{1.0, 2.0, 3.0}, {-1.0, 0.5, 0.0}};
    const xt::xtensor<double, 2> target = {{0.0, 2.0, 5.0}, {1.0, 0.0, 0.0}};
    // squares: 1, 0, 4, 4, 0.25, 0 -> 9.25 / 6
    CHECK(xrnn::mean_squared_error(pred, target) == doctest::Approx(9.25 / 6.0).epsilon(1e-15));
    xt::xtensor<double, 2> grad;
    CHECK(xrnn::mean_squared_error(pred, target, &grad) == doctest::Approx(9.25 / 6.0).epsilon(1e-15));
    const xt::xtensor<double, 2> expected = {{2.0 / 6, 0.0, -4.0 / 6}, {-4.0 / 6, 1.0 / 6, 0.0}};
    CHECK(xt::allclose(grad, expected, 1e-15, 1e-16));
    CHECK(xrnn::mean_squared_error(target, target) == 0.0);

    const xt::xtensor<float, 1> pf = {1.0f, 3.0f};
    const xt::xtensor<float, 1> tf = {0.0f, 0.0f};
    CHECK(xrnn::mean_squared_error(pf, tf) == 5.0f);
}

TEST_CASE("loss: binary_cross_entropy_with_logits equals -y log s(x) - (1 - y) log(1 - s(x)) averaged")
{
    const xt::xtensor<double, 2> logits = {{-2.0, -0.5, 0.0}, {0.3, 1.7, 4.0}};
    const xt::xtensor<double, 2> target = {{0.0, 1.0, 1.0}, {0.0, 0.25, 1.0}};  // soft targets are allowed
    double expected = 0.0;
    for (std::size_t j = 0; j < 6; ++j)
    {
        expected += bce_by_hand(logits.data()[j], target.data()[j]);
    }
    expected /= 6.0;
    xt::xtensor<double, 2> grad;
    CHECK(xrnn::binary_cross_entropy_with_logits(logits, target, &grad) == doctest::Approx(expected).epsilon(1e-14));
    // gradient (s(x) - y) / N
    for (std::size_t j = 0; j < 6; ++j)
    {
        const double s = 1.0 / (1.0 + std::exp(-logits.data()[j]));
        CHECK(grad.data()[j] == doctest::Approx((s - target.data()[j]) / 6.0).epsilon(1e-14));
    }
    // logit 0 against either label: log 2
    CHECK(xrnn::binary_cross_entropy_with_logits(xt::xtensor<double, 1>{0.0}, xt::xtensor<double, 1>{1.0})
          == doctest::Approx(std::log(2.0)).epsilon(1e-15));
}

TEST_CASE("loss: softmax_cross_entropy is logsumexp(x_r) - x_r[y_r] averaged over rows")
{
    const xt::xtensor<double, 2> logits = {{1.0, 2.0, 3.0}, {0.5, -1.0, 0.0}};
    const xt::xtensor<int, 1> target = {2, 0};
    const double row0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) - 3.0;
    const double row1 = std::log(std::exp(0.5) + std::exp(-1.0) + std::exp(0.0)) - 0.5;
    xt::xtensor<double, 2> grad;
    CHECK(xrnn::softmax_cross_entropy(logits, target, &grad) == doctest::Approx((row0 + row1) / 2).epsilon(1e-14));
    // gradient (softmax - onehot) / R
    for (std::size_t r = 0; r < 2; ++r)
    {
        double total = 0.0;
        for (std::size_t c = 0; c < 3; ++c)
        {
            total += std::exp(logits(r, c));
        }
        for (std::size_t c = 0; c < 3; ++c)
        {
            const double onehot = static_cast<int>(c) == target(r) ? 1.0 : 0.0;
            CHECK(grad(r, c) == doctest::Approx((std::exp(logits(r, c)) / total - onehot) / 2).epsilon(1e-14));
        }
    }
    // uniform logits over C classes: log C whatever the label
    const xt::xtensor<double, 2> flat({3, 5}, 0.7);
    CHECK(xrnn::softmax_cross_entropy(flat, xt::xtensor<std::size_t, 1>{0, 4, 2}) == doctest::Approx(std::log(5.0)));
}

TEST_CASE("loss: softmax_cross_entropy on (S, B, C) logits with (S, B) targets averages over S * B rows")
{
    const auto logits = random_tensor<double, 3>({3, 2, 4}, 1, -2.0, 2.0);
    const xt::xtensor<long, 2> target = {{0, 3}, {1, 1}, {2, 0}};
    double expected = 0.0;
    for (std::size_t s = 0; s < 3; ++s)
    {
        for (std::size_t b = 0; b < 2; ++b)
        {
            double total = 0.0;
            for (std::size_t c = 0; c < 4; ++c)
            {
                total += std::exp(logits(s, b, c));
            }
            expected += std::log(total) - logits(s, b, static_cast<std::size_t>(target(s, b)));
        }
    }
    expected /= 6.0;
    CHECK(xrnn::softmax_cross_entropy(logits, target) == doctest::Approx(expected).epsilon(1e-14));

    // the same rows as a (6, 4) matrix give the same loss and gradient
    xt::xtensor<double, 2> flat_logits(std::array<std::size_t, 2>{6, 4});
    std::copy(logits.begin(), logits.end(), flat_logits.begin());
    const xt::xtensor<long, 1> flat_target = {0, 3, 1, 1, 2, 0};
    xt::xtensor<double, 3> grad;
    xt::xtensor<double, 2> flat_grad;
    CHECK(xrnn::softmax_cross_entropy(logits, target, &grad)
          == doctest::Approx(xrnn::softmax_cross_entropy(flat_logits, flat_target, &flat_grad)).epsilon(1e-15));
    REQUIRE(grad.shape()[0] == 3);
    REQUIRE(grad.shape()[2] == 4);
    CHECK(std::equal(grad.begin(), grad.end(), flat_grad.begin()));
}

TEST_CASE("loss: the gradient of every loss with respect to its input matches finite differences")
{
    SUBCASE("mean_squared_error, rank 3")
    {
        auto pred = random_tensor<double, 3>({2, 3, 4}, 2);
        const auto target = random_tensor<double, 3>({2, 3, 4}, 3);
        xt::xtensor<double, 3> grad;
        xrnn::mean_squared_error(pred, target, &grad);
        auto numeric = numeric_gradient(pred, [&] { return xrnn::mean_squared_error(pred, target); });
        CHECK(relative_error(grad, numeric) < gradcheck_tolerance);
    }
    SUBCASE("binary_cross_entropy_with_logits, rank 2, hard and soft targets")
    {
        auto logits = random_tensor<double, 2>({4, 5}, 4, -4.0, 4.0);
        auto target = random_tensor<double, 2>({4, 5}, 5, 0.0, 1.0);
        for (std::size_t j = 0; j < 10; ++j)
        {
            target.data()[j] = target.data()[j] < 0.5 ? 0.0 : 1.0;
        }
        xt::xtensor<double, 2> grad;
        xrnn::binary_cross_entropy_with_logits(logits, target, &grad);
        auto numeric =
            numeric_gradient(logits, [&] { return xrnn::binary_cross_entropy_with_logits(logits, target); });
        CHECK(relative_error(grad, numeric) < gradcheck_tolerance);
    }
    SUBCASE("softmax_cross_entropy, rank 2")
    {
        auto logits = random_tensor<double, 2>({5, 3}, 6, -3.0, 3.0);
        const xt::xtensor<int, 1> target = {0, 2, 1, 1, 2};
        xt::xtensor<double, 2> grad;
        xrnn::softmax_cross_entropy(logits, target, &grad);
        auto numeric = numeric_gradient(logits, [&] { return xrnn::softmax_cross_entropy(logits, target); });
        CHECK(relative_error(grad, numeric) < gradcheck_tolerance);
    }
    SUBCASE("softmax_cross_entropy, rank 3")
    {
        auto logits = random_tensor<double, 3>({3, 2, 4}, 7, -3.0, 3.0);
        const xt::xtensor<std::uint8_t, 2> target = {{0, 3}, {2, 1}, {3, 3}};
        xt::xtensor<double, 3> grad;
        xrnn::softmax_cross_entropy(logits, target, &grad);
        auto numeric = numeric_gradient(logits, [&] { return xrnn::softmax_cross_entropy(logits, target); });
        CHECK(relative_error(grad, numeric) < gradcheck_tolerance);
    }
}

TEST_CASE("loss: binary cross-entropy is stable at logits +-100 in float")
{
    const xt::xtensor<float, 1> logits = {100.0f, -100.0f};
    xt::xtensor<float, 1> grad;
    // the wrong label: -log s(-100) = 100 + log(1 + e^-100) ~ 100
    const float wrong = xrnn::binary_cross_entropy_with_logits(logits, xt::xtensor<float, 1>{0.0f, 1.0f}, &grad);
    CHECK(std::isfinite(wrong));
    CHECK(wrong == doctest::Approx(100.0f).epsilon(1e-6));
    CHECK(xt::all(xt::isfinite(grad)));
    CHECK(grad(0) == doctest::Approx(0.5f));  // (s(100) - 0) / 2
    CHECK(grad(1) == doctest::Approx(-0.5f));  // (s(-100) - 1) / 2
    // the right label: ~ e^-100, i.e. 0 in float, and a ~0 gradient
    const float right = xrnn::binary_cross_entropy_with_logits(logits, xt::xtensor<float, 1>{1.0f, 0.0f}, &grad);
    CHECK(std::isfinite(right));
    CHECK(right >= 0.0f);
    CHECK(right < 1e-30f);
    CHECK(xt::all(xt::isfinite(grad)));
    CHECK(xt::amax(xt::abs(grad))() < 1e-30f);
    // and in double, far beyond where exp overflows
    const xt::xtensor<double, 1> huge = {1000.0, -1000.0};
    CHECK(xrnn::binary_cross_entropy_with_logits(huge, xt::xtensor<double, 1>{0.0, 1.0})
          == doctest::Approx(1000.0).epsilon(1e-15));
}

TEST_CASE("loss: softmax cross-entropy is stable for logits like 1000")
{
    const xt::xtensor<float, 2> logits = {{1000.0f, 0.0f, -1000.0f}, {1000.0f, 1001.0f, 999.0f}};
    const xt::xtensor<int, 1> target = {2, 1};
    xt::xtensor<float, 2> grad;
    const float loss = xrnn::softmax_cross_entropy(logits, target, &grad);
    CHECK(std::isfinite(loss));
    // row 0: 2000 (+ log(1 + ...)); row 1: log(e^-1 + 1 + e^-2)
    const double row1 = std::log(std::exp(-1.0) + 1.0 + std::exp(-2.0));
    CHECK(loss == doctest::Approx((2000.0 + row1) / 2).epsilon(1e-6));
    CHECK(xt::all(xt::isfinite(grad)));
}

TEST_CASE("loss: a target whose shape differs from the prediction's is a shape_error")
{
    const xt::xtensor<double, 2> pred({2, 3}, 0.5);
    CHECK_THROWS_WITH_AS(xrnn::mean_squared_error(pred, xt::xtensor<double, 2>({3, 2}, 0.5)),
                         "mean_squared_error: target expected shape (2, 3) (the prediction's) but got (3, 2)",
                         xrnn::shape_error);
    CHECK_THROWS_WITH_AS(xrnn::binary_cross_entropy_with_logits(pred, xt::xtensor<double, 2>({2, 4}, 0.5)),
                         "binary_cross_entropy_with_logits: target expected shape (2, 3) (the prediction's) but got "
                         "(2, 4)",
                         xrnn::shape_error);
    CHECK_THROWS_WITH_AS(xrnn::softmax_cross_entropy(pred, xt::xtensor<int, 1>({3}, 0)),
                         "softmax_cross_entropy: target expected shape (2) but got (3)", xrnn::shape_error);
    const xt::xtensor<double, 3> logits({2, 3, 4}, 0.5);
    CHECK_THROWS_WITH_AS(xrnn::softmax_cross_entropy(logits, xt::xtensor<int, 2>({3, 2}, 0)),
                         "softmax_cross_entropy: target expected shape (2, 3) but got (3, 2)", xrnn::shape_error);
}

TEST_CASE("loss: a binary target outside [0, 1] is a value_error")
{
    const xt::xtensor<double, 1> logits = {0.1, 0.2, 0.3};
    CHECK_THROWS_WITH_AS(xrnn::binary_cross_entropy_with_logits(logits, xt::xtensor<double, 1>{0.0, 2.0, 1.0}),
                         "binary_cross_entropy_with_logits: target expected in [0, 1] but element 1 is 2",
                         xrnn::value_error);
    CHECK_THROWS_AS(xrnn::binary_cross_entropy_with_logits(logits, xt::xtensor<double, 1>{-1.0, 0.0, 1.0}),
                    xrnn::value_error);
    CHECK_THROWS_AS(xrnn::binary_cross_entropy_with_logits(
                        logits, xt::xtensor<double, 1>{0.0, std::numeric_limits<double>::quiet_NaN(), 1.0}),
                    xrnn::value_error);
    CHECK_NOTHROW(xrnn::binary_cross_entropy_with_logits(logits, xt::xtensor<double, 1>{0.0, 0.5, 1.0}));
}

TEST_CASE("loss: a class id below 0 or at least C is a value_error naming it and its row")
{
    const xt::xtensor<double, 2> logits({3, 4}, 0.5);
    CHECK_THROWS_WITH_AS(xrnn::softmax_cross_entropy(logits, xt::xtensor<int, 1>{0, -1, 2}),
                         "softmax_cross_entropy: class id -1 at row 1 is outside [0, 4)", xrnn::value_error);
    CHECK_THROWS_WITH_AS(xrnn::softmax_cross_entropy(logits, xt::xtensor<int, 1>{0, 1, 4}),
                         "softmax_cross_entropy: class id 4 at row 2 is outside [0, 4)", xrnn::value_error);
    CHECK_THROWS_AS(xrnn::softmax_cross_entropy(logits, xt::xtensor<std::size_t, 1>{0, 1, 400}), xrnn::value_error);
    CHECK_NOTHROW(xrnn::softmax_cross_entropy(logits, xt::xtensor<std::uint8_t, 1>{0, 3, 3}));
}

TEST_CASE("loss: an empty prediction is a shape_error, not a 0 / 0")
{
    const xt::xtensor<double, 2> empty(std::array<std::size_t, 2>{0, 3});
    CHECK_THROWS_WITH_AS(xrnn::mean_squared_error(empty, empty),
                         "mean_squared_error: the prediction is empty, shape (0, 3)", xrnn::shape_error);
    CHECK_THROWS_AS(xrnn::binary_cross_entropy_with_logits(empty, empty), xrnn::shape_error);
    CHECK_THROWS_AS(xrnn::softmax_cross_entropy(empty, xt::xtensor<int, 1>(std::array<std::size_t, 1>{0})),
                    xrnn::shape_error);
    const xt::xtensor<double, 2> no_classes(std::array<std::size_t, 2>{2, 0});
    CHECK_THROWS_AS(xrnn::softmax_cross_entropy(no_classes, xt::xtensor<int, 1>{0, 0}), xrnn::shape_error);
}

namespace
{
    /// The rows (t, b) with t < lengths[b] of x (S, B, W...), one after another as a (rows, W...) tensor of rank N.
    template <class V, std::size_t N>
    xt::xtensor<V, N> real_steps(const xt::xtensor<V, N>& x, const std::vector<std::size_t>& lengths)
    {
        const std::size_t steps = x.shape()[0];
        const std::size_t batch = x.shape()[1];
        const std::size_t width = x.size() / (steps * batch);
        std::size_t rows = 0;
        for (std::size_t l : lengths)
        {
            rows += l;
        }
        auto shape = x.shape();
        shape[0] = rows;
        shape[1] = 1;
        xt::xtensor<V, N> out(shape);
        std::size_t r = 0;
        for (std::size_t b = 0; b < batch; ++b)
        {
            for (std::size_t t = 0; t < lengths[b]; ++t, ++r)
            {
                std::copy(x.data() + (t * batch + b) * width, x.data() + (t * batch + b + 1) * width,
                          out.data() + r * width);
            }
        }
        return out;
    }

    /// dL/dx of the masked loss: 0 on the padded rows, and on the real rows that of the loss of the real steps.
    template <class V, std::size_t N>
    void check_masked_gradient(const xt::xtensor<V, N>& grad, const xt::xtensor<V, N>& real_grad,
                               const std::vector<std::size_t>& lengths)
    {
        const std::size_t steps = grad.shape()[0];
        const std::size_t batch = grad.shape()[1];
        const std::size_t width = grad.size() / (steps * batch);
        std::size_t r = 0;
        for (std::size_t b = 0; b < batch; ++b)
        {
            for (std::size_t t = 0; t < steps; ++t)
            {
                for (std::size_t j = 0; j < width; ++j)
                {
                    const double g = grad.data()[(t * batch + b) * width + j];
                    if (t < lengths[b])
                    {
                        REQUIRE(g == doctest::Approx(real_grad.data()[(r + t) * width + j]).epsilon(1e-13));
                    }
                    else
                    {
                        REQUIRE(g == 0.0);
                    }
                }
            }
            r += lengths[b];
        }
    }
}  // namespace

TEST_CASE("loss: with lengths, every loss scores the real steps only, as the real steps one after another (LM1, LM2)")
{
    const std::vector<std::size_t> lengths = {4, 1, 3};
    const std::size_t S = 4;
    const std::size_t B = 3;
    auto pred = random_tensor<double, 3>({S, B, 2}, 1);
    auto target = random_tensor<double, 3>({S, B, 2}, 2);
    for (auto& y : target)
    {
        y = std::abs(y) / (1.0 + std::abs(y));  // in [0, 1) for the cross-entropy
    }
    xt::xtensor<std::int64_t, 2> ids({S, B});
    for (std::size_t j = 0; j < ids.size(); ++j)
    {
        ids.data()[j] = static_cast<std::int64_t>(j % 2);
    }
    // padded targets are not read: values no loss would accept
    for (std::size_t b = 0; b < B; ++b)
    {
        for (std::size_t t = lengths[b]; t < S; ++t)
        {
            target(t, b, 0) = -5.0;
            ids(t, b) = 99;
        }
    }
    xt::xtensor<double, 3> grad;
    xt::xtensor<double, 3> real_grad;

    const double mse = xrnn::mean_squared_error(pred, target, lengths, &grad);
    CHECK(mse == doctest::Approx(xrnn::mean_squared_error(real_steps(pred, lengths), real_steps(target, lengths),
                                                          &real_grad)).epsilon(1e-14));
    check_masked_gradient(grad, real_grad, lengths);

    const double bce = xrnn::binary_cross_entropy_with_logits(pred, target, lengths, &grad);
    CHECK(bce == doctest::Approx(xrnn::binary_cross_entropy_with_logits(
                     real_steps(pred, lengths), real_steps(target, lengths), &real_grad)).epsilon(1e-14));
    check_masked_gradient(grad, real_grad, lengths);

    const double ce = xrnn::softmax_cross_entropy(pred, ids, lengths, &grad);
    CHECK(ce == doctest::Approx(xrnn::softmax_cross_entropy(real_steps(pred, lengths), real_steps(ids, lengths),
                                                            &real_grad)).epsilon(1e-14));
    check_masked_gradient(grad, real_grad, lengths);

    // all steps real: the loss without lengths
    const std::vector<std::size_t> full(B, S);
    auto safe_target = random_tensor<double, 3>({S, B, 2}, 3);
    CHECK(xrnn::mean_squared_error(pred, safe_target, full)
          == doctest::Approx(xrnn::mean_squared_error(pred, safe_target)).epsilon(1e-14));
}

TEST_CASE("loss: lengths of the wrong count or outside [1, S] are refused")
{
    const auto pred = random_tensor<double, 3>({4, 2, 3}, 1);
    const auto target = random_tensor<double, 3>({4, 2, 3}, 2);
    CHECK_THROWS_AS(xrnn::mean_squared_error(pred, target, std::vector<std::size_t>{4}), xrnn::shape_error);
    CHECK_THROWS_AS(xrnn::mean_squared_error(pred, target, std::vector<std::size_t>{4, 0}), xrnn::value_error);
    CHECK_THROWS_AS(xrnn::binary_cross_entropy_with_logits(pred, target, std::vector<std::size_t>{5, 1}),
                    xrnn::value_error);
    const xt::xtensor<int, 2> ids = xt::zeros<int>({4, 2});
    CHECK_THROWS_WITH_AS(xrnn::softmax_cross_entropy(pred, ids, std::vector<std::size_t>{1, 2, 3}),
                         doctest::Contains("one per sequence"), xrnn::shape_error);
}
