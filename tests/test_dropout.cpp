// layers/dropout.hpp: inverted dropout. Identity at inference; in training each element is 0 or x / (1 - rate)
// with the dropped fraction ~ rate; backward applies the forward's mask; invalid rates; determinism.
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <utility>

#include <doctest/doctest.h>

#include <xtensor/xmath.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <xrnn/layers/dropout.hpp>

#include "support/gradcheck.hpp"

using xrnn_test::gradcheck_tolerance;
using xrnn_test::projected;
using xrnn_test::random_tensor;

namespace
{
    struct drop_counts
    {
        std::size_t dropped = 0;
        std::size_t scaled = 0;
        std::size_t other = 0;  // neither 0 nor x / (1 - rate)
    };

    /// Classifies every y_j as dropped (0) or kept and scaled (x_j / (1 - rate)); x must have no zeros.
    template <class T, std::size_t N>
    drop_counts classify(const xt::xtensor<T, N>& x, const xt::xtensor<T, N>& y, double rate)
    {
        drop_counts counts;
        const T scale = static_cast<T>(1.0 / (1.0 - rate));
        for (std::size_t j = 0; j < x.size(); ++j)
        {
            if (y.data()[j] == T(0))
            {
                ++counts.dropped;
            }
            else if (y.data()[j] == x.data()[j] * scale)
            {
                ++counts.scaled;
            }
            else
            {
                ++counts.other;
            }
        }
        return counts;
    }
}  // namespace

TEST_CASE("dropout: inference is the identity, forward and backward, whatever the rate")
{
    xrnn::random_engine rng(1);
    xrnn::dropout<double> layer(0.5, rng);
    CHECK(layer.rate() == 0.5);
    const auto x2 = random_tensor<double, 2>({4, 7}, 2);
    const auto x3 = random_tensor<double, 3>({3, 4, 7}, 3);
    CHECK(layer.forward(x2) == x2);
    CHECK(layer.forward(x3, xrnn::mode::inference) == x3);
    CHECK(layer.backward(x3) == x3);  // dx = dy after an inference forward
}

TEST_CASE("dropout: rate 0 in training is the identity too")
{
    xrnn::random_engine rng(2);
    xrnn::dropout<float> layer(0.0, rng);
    const auto x = random_tensor<float, 2>({16, 16}, 4);
    CHECK(layer.forward(x, xrnn::mode::training) == x);
    CHECK(layer.backward(x) == x);
}

TEST_CASE("dropout: in training each element is 0 or x / (1 - rate), and about rate of them are 0")
{
    for (double rate : {0.1, 0.25, 0.5, 0.8})
    {
        CAPTURE(rate);
        xrnn::random_engine rng(3);
        xrnn::dropout<double> layer(rate, rng);
        const auto x = random_tensor<double, 3>({10, 50, 200}, 5, 0.5, 1.5);  // 100k elements, none zero
        const xt::xtensor<double, 3> y = layer.forward(x, xrnn::mode::training);
        const auto counts = classify(x, y, rate);
        CHECK(counts.other == 0);
        CHECK(counts.dropped + counts.scaled == x.size());
        CHECK(std::abs(static_cast<double>(counts.dropped) / x.size() - rate) < 0.01);
    }
    // the same on (B, F), in float
    xrnn::random_engine rng(4);
    xrnn::dropout<float> layer(0.3, rng);
    const auto x = random_tensor<float, 2>({400, 250}, 6, 0.5, 1.5);
    const xt::xtensor<float, 2> y = layer.forward(x, xrnn::mode::training);
    const auto counts = classify(x, y, 0.3);
    CHECK(counts.other == 0);
    CHECK(std::abs(static_cast<double>(counts.dropped) / x.size() - 0.3) < 0.01);
}

TEST_CASE("dropout: training preserves the mean (inverted scaling)")
{
    xrnn::random_engine rng(5);
    xrnn::dropout<double> layer(0.4, rng);
    const xt::xtensor<double, 2> ones({500, 200}, 1.0);
    const xt::xtensor<double, 2> y = layer.forward(ones, xrnn::mode::training);
    CHECK(xt::mean(y)() == doctest::Approx(1.0).epsilon(0.02));
    const auto x = random_tensor<double, 2>({500, 200}, 7, 1.0, 3.0);
    const xt::xtensor<double, 2> yx = layer.forward(x, xrnn::mode::training);
    CHECK(xt::mean(yx)() == doctest::Approx(xt::mean(x)()).epsilon(0.02));
}

TEST_CASE("dropout: every training forward draws a fresh mask, per element (also across steps)")
{
    xrnn::random_engine rng(6);
    xrnn::dropout<double> layer(0.5, rng);
    const xt::xtensor<double, 3> x({4, 8, 16}, 1.0);
    const xt::xtensor<double, 3> first = layer.forward(x, xrnn::mode::training);
    const xt::xtensor<double, 3> second = layer.forward(x, xrnn::mode::training);
    CHECK(first != second);
    // not one mask repeated over the steps
    const xt::xtensor<double, 2> step0 = xt::view(first, 0, xt::all(), xt::all());
    const xt::xtensor<double, 2> step1 = xt::view(first, 1, xt::all(), xt::all());
    CHECK(step0 != step1);
}

TEST_CASE("dropout: backward is dy times the last forward's mask")
{
    xrnn::random_engine rng(7);
    xrnn::dropout<double> layer(0.3, rng);
    const auto x = random_tensor<double, 2>({20, 30}, 8, 0.5, 1.5);
    const auto dy = random_tensor<double, 2>({20, 30}, 9);
    const xt::xtensor<double, 2> y = layer.forward(x, xrnn::mode::training);
    const xt::xtensor<double, 2> dx = layer.backward(dy);
    const xt::xtensor<double, 2> mask = y / x;
    CHECK(xt::allclose(dx, dy * mask, 1e-15, 0.0));
    CHECK(xt::any(xt::equal(dx, 0.0)));  // some dropped, so the check above is not the identity
}

TEST_CASE("dropout: backward matches finite differences through copies that draw the same mask")
{
    for (double rate : {0.2, 0.6})
    {
        CAPTURE(rate);
        xrnn::random_engine rng(8);
        const xrnn::dropout<double> pristine(rate, rng);
        {
            auto x = random_tensor<double, 3>({3, 4, 5}, 10);
            const auto r = random_tensor<double, 3>({3, 4, 5}, 11);
            auto analytic = pristine;
            analytic.forward(x, xrnn::mode::training);
            const xt::xtensor<double, 3> dx = analytic.backward(r);
            const auto loss_of = [&](xrnn::dropout<double>& probe) {
                return projected(probe.forward(x, xrnn::mode::training), r);
            };
            CHECK(xrnn_test::input_gradient_error(pristine, x, dx, loss_of) < gradcheck_tolerance);
            CHECK(xt::any(xt::equal(dx, 0.0)));
            CHECK(xt::any(xt::not_equal(dx, 0.0)));
        }
        {
            auto x = random_tensor<double, 2>({6, 7}, 12);
            const auto r = random_tensor<double, 2>({6, 7}, 13);
            auto analytic = pristine;
            analytic.forward(x, xrnn::mode::training);
            const xt::xtensor<double, 2> dx = analytic.backward(r);
            const auto loss_of = [&](xrnn::dropout<double>& probe) {
                return projected(probe.forward(x, xrnn::mode::training), r);
            };
            CHECK(xrnn_test::input_gradient_error(pristine, x, dx, loss_of) < gradcheck_tolerance);
        }
    }
}

TEST_CASE("dropout: a rate outside [0, 1) is a value_error at construction")
{
    xrnn::random_engine rng(9);
    CHECK_THROWS_WITH_AS(xrnn::dropout<double>(1.0, rng), "dropout: rate expected in [0, 1) but got 1",
                         xrnn::value_error);
    CHECK_THROWS_WITH_AS(xrnn::dropout<double>(-0.1, rng), "dropout: rate expected in [0, 1) but got -0.1",
                         xrnn::value_error);
    CHECK_THROWS_AS(xrnn::dropout<float>(std::nan(""), rng), xrnn::value_error);
    CHECK_NOTHROW(xrnn::dropout<float>(0.0, rng));
    CHECK_NOTHROW(xrnn::dropout<float>(0.99, rng));
}

TEST_CASE("dropout: the same seed gives the same masks, another seed other masks")
{
    const xt::xtensor<double, 2> x({32, 32}, 1.0);
    auto masks = [&](std::uint64_t seed) {
        xrnn::random_engine rng(seed);
        xrnn::dropout<double> layer(0.5, rng);
        xt::xtensor<double, 2> first = layer.forward(x, xrnn::mode::training);
        xt::xtensor<double, 2> second = layer.forward(x, xrnn::mode::training);
        return std::make_pair(first, second);
    };
    const auto a = masks(10);
    const auto b = masks(10);
    const auto c = masks(11);
    CHECK(a.first == b.first);
    CHECK(a.second == b.second);
    CHECK(a.first != c.first);
    CHECK(a.second != c.second);
}

TEST_CASE("dropout: backward with a dy of another shape than the last forward, or with no forward, throws")
{
    xrnn::random_engine rng(12);
    xrnn::dropout<double> layer(0.5, rng);
    // no forward yet: reported as a shape mismatch against the empty mask (other layers use state_error here)
    CHECK_THROWS_AS(layer.backward(xt::xtensor<double, 2>({2, 3}, 1.0)), xrnn::error);
    layer.forward(xt::xtensor<double, 2>({2, 3}, 1.0), xrnn::mode::training);
    CHECK_THROWS_WITH_AS(layer.backward(xt::xtensor<double, 2>({3, 3}, 1.0)),
                         "dropout::backward: dy expected shape (2, 3) (the last forward's) but got (3, 3)",
                         xrnn::shape_error);
    CHECK_THROWS_AS(layer.backward(xt::xtensor<double, 3>({1, 2, 3}, 1.0)), xrnn::error);  // rank 3: no forward
    CHECK_NOTHROW(layer.backward(xt::xtensor<double, 2>({2, 3}, 1.0)));
}
