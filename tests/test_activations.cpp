// layers/activations.hpp: sigmoid, tanh, relu and softmax as activation_layer: forward values against the
// formulas, softmax stability, backward against finite differences on (B, F) and (S, B, F), and errors.
#include <array>
#include <cmath>
#include <cstddef>
#include <string>

#include <doctest/doctest.h>

#include <xtensor/xmath.hpp>
#include <xtensor/xtensor.hpp>

#include <xrnn/layers/activations.hpp>

#include "support/gradcheck.hpp"

using xrnn_test::gradcheck_tolerance;
using xrnn_test::numeric_gradient;
using xrnn_test::projected;
using xrnn_test::random_tensor;
using xrnn_test::relative_error;

namespace
{
    double sigmoid(double x)
    {
        return 1.0 / (1.0 + std::exp(-x));
    }

    /// Inputs in (-3, 3) with |x| > 0.05, so relu's kink is never within a finite-difference step.
    template <std::size_t N>
    xt::xtensor<double, N> inputs(const std::array<std::size_t, N>& shape, std::uint64_t seed)
    {
        auto x = random_tensor<double, N>(shape, seed, -3.0, 3.0);
        for (auto& v : x)
        {
            v = v < 0 ? std::min(v, -0.05) : std::max(v, 0.05);
        }
        return x;
    }

    /// Elementwise activations: y_j = f(x_j) for every element.
    template <class Fn, std::size_t N, class F>
    void check_elementwise_forward(const std::array<std::size_t, N>& shape, F&& f)
    {
        xrnn::activation_layer<double, Fn> layer;
        const auto x = inputs<N>(shape, 1);
        const xt::xtensor<double, N> y = layer.forward(x);
        REQUIRE(std::equal(y.shape().begin(), y.shape().end(), shape.begin()));
        double worst = 0.0;
        for (std::size_t j = 0; j < x.size(); ++j)
        {
            worst = std::max(worst, std::abs(y.data()[j] - f(x.data()[j])));
        }
        CHECK(worst < 1e-15);
    }

    /// backward(r) is the gradient of sum(forward(x) * r) with respect to x.
    template <class Fn, std::size_t N>
    void check_backward(const std::array<std::size_t, N>& shape)
    {
        CAPTURE(Fn::name);
        CAPTURE(N);
        xrnn::activation_layer<double, Fn> layer;
        auto x = inputs<N>(shape, 2);
        const auto r = random_tensor<double, N>(shape, 3);
        layer.forward(x, xrnn::mode::training);
        const xt::xtensor<double, N> dx = layer.backward(r);
        auto numeric = numeric_gradient(x, [&] {
            xrnn::activation_layer<double, Fn> probe;
            return projected(probe.forward(x, xrnn::mode::training), r);
        });
        CHECK(relative_error(dx, numeric) < gradcheck_tolerance);
        // and not vacuously: the gradient is not zero
        CHECK(xt::amax(xt::abs(dx))() > 1e-3);
    }
}  // namespace

TEST_CASE("activations: sigmoid, tanh and relu forward equal their formulas elementwise on (B, F) and (S, B, F)")
{
    check_elementwise_forward<xrnn::activation::sigmoid, 2>({4, 5}, [](double v) { return sigmoid(v); });
    check_elementwise_forward<xrnn::activation::sigmoid, 3>({3, 2, 5}, [](double v) { return sigmoid(v); });
    check_elementwise_forward<xrnn::activation::tanh, 2>({4, 5}, [](double v) { return std::tanh(v); });
    check_elementwise_forward<xrnn::activation::tanh, 3>({3, 2, 5}, [](double v) { return std::tanh(v); });
    check_elementwise_forward<xrnn::activation::relu, 2>({4, 5}, [](double v) { return v > 0 ? v : 0.0; });
    check_elementwise_forward<xrnn::activation::relu, 3>({3, 2, 5}, [](double v) { return v > 0 ? v : 0.0; });
}

TEST_CASE("activations: known values, and sigmoid and tanh saturate at +-1000 without NaN")
{
    xrnn::activation_layer<double, xrnn::activation::sigmoid> sig;
    xrnn::activation_layer<double, xrnn::activation::tanh> th;
    xrnn::activation_layer<double, xrnn::activation::relu> relu;
    const xt::xtensor<double, 2> x = {{-1000.0, -1.0, 0.0, 2.0, 1000.0}};
    const xt::xtensor<double, 2> expected_sigmoid = {{0.0, 0.2689414213699951, 0.5, 0.8807970779778823, 1.0}};
    const xt::xtensor<double, 2> expected_tanh = {{-1.0, -0.7615941559557649, 0.0, 0.9640275800758169, 1.0}};
    const xt::xtensor<double, 2> expected_relu = {{0.0, 0.0, 0.0, 2.0, 1000.0}};
    CHECK(xt::allclose(sig.forward(x), expected_sigmoid, 1e-15, 1e-15));
    CHECK(xt::allclose(th.forward(x), expected_tanh, 1e-15, 1e-15));
    CHECK(relu.forward(x) == expected_relu);

    xrnn::activation_layer<float, xrnn::activation::sigmoid> sig_float;
    const xt::xtensor<float, 2> xf = {{-1000.0f, 1000.0f}};
    const auto& yf = sig_float.forward(xf);
    CHECK(yf(0, 0) == 0.0f);
    CHECK(yf(0, 1) == 1.0f);
}

TEST_CASE("activations: softmax is exp(x) / sum(exp(x)) over the last axis and its rows sum to one")
{
    xrnn::activation_layer<double, xrnn::activation::softmax> layer;
    {
        const auto x = random_tensor<double, 2>({4, 6}, 4, -3.0, 3.0);
        const xt::xtensor<double, 2> y = layer.forward(x);
        for (std::size_t b = 0; b < 4; ++b)
        {
            double total = 0.0;
            double row_sum = 0.0;
            for (std::size_t c = 0; c < 6; ++c)
            {
                total += std::exp(x(b, c));
            }
            double worst = 0.0;
            for (std::size_t c = 0; c < 6; ++c)
            {
                worst = std::max(worst, std::abs(y(b, c) - std::exp(x(b, c)) / total));
                row_sum += y(b, c);
            }
            CHECK(worst < 1e-15);
            CHECK(row_sum == doctest::Approx(1.0).epsilon(1e-14));
        }
    }
    {
        // rank 3: every (s, b) row separately, never across steps or batch
        const auto x = random_tensor<double, 3>({3, 2, 5}, 5, -3.0, 3.0);
        const xt::xtensor<double, 3> y = layer.forward(x);
        for (std::size_t s = 0; s < 3; ++s)
        {
            for (std::size_t b = 0; b < 2; ++b)
            {
                double total = 0.0;
                for (std::size_t c = 0; c < 5; ++c)
                {
                    total += std::exp(x(s, b, c));
                }
                double worst = 0.0;
                double row_sum = 0.0;
                for (std::size_t c = 0; c < 5; ++c)
                {
                    worst = std::max(worst, std::abs(y(s, b, c) - std::exp(x(s, b, c)) / total));
                    row_sum += y(s, b, c);
                }
                CHECK(worst < 1e-15);
                CHECK(row_sum == doctest::Approx(1.0).epsilon(1e-14));
            }
        }
    }
}

TEST_CASE("activations: softmax of logits like 1000 is finite and shift-invariant")
{
    xrnn::activation_layer<double, xrnn::activation::softmax> layer;
    const xt::xtensor<double, 2> large = {{1000.0, 1001.0, 999.0}, {-1000.0, -1001.0, -999.0}, {1000.0, 0.0, -1000.0}};
    const xt::xtensor<double, 2> small = {{0.0, 1.0, -1.0}, {0.0, -1.0, 1.0}, {1000.0, 0.0, -1000.0}};
    const xt::xtensor<double, 2> y_large = layer.forward(large);
    xrnn::activation_layer<double, xrnn::activation::softmax> other;
    const xt::xtensor<double, 2> y_small = other.forward(small);
    CHECK(xt::all(xt::isfinite(y_large)));
    CHECK(xt::allclose(y_large, y_small, 1e-14, 1e-15));
    CHECK(y_large(0, 1) == doctest::Approx(std::exp(1.0) / (1.0 + std::exp(1.0) + std::exp(-1.0))));
    CHECK(y_large(2, 0) == 1.0);
    CHECK(y_large(2, 2) == 0.0);

    xrnn::activation_layer<float, xrnn::activation::softmax> float_layer;
    const xt::xtensor<float, 2> xf = {{1000.0f, 1001.0f, 999.0f}};
    const auto& yf = float_layer.forward(xf);
    CHECK(xt::all(xt::isfinite(yf)));
    CHECK(yf(0, 0) + yf(0, 1) + yf(0, 2) == doctest::Approx(1.0f).epsilon(1e-6));
}

TEST_CASE("activations: backward of every function matches finite differences on (B, F)")
{
    check_backward<xrnn::activation::sigmoid, 2>({4, 5});
    check_backward<xrnn::activation::tanh, 2>({4, 5});
    check_backward<xrnn::activation::relu, 2>({4, 5});
    check_backward<xrnn::activation::softmax, 2>({4, 5});
}

TEST_CASE("activations: backward of every function matches finite differences on (S, B, F)")
{
    check_backward<xrnn::activation::sigmoid, 3>({3, 2, 5});
    check_backward<xrnn::activation::tanh, 3>({3, 2, 5});
    check_backward<xrnn::activation::relu, 3>({3, 2, 5});
    check_backward<xrnn::activation::softmax, 3>({3, 2, 5});
}

TEST_CASE("activations: relu passes the gradient exactly where the input is positive")
{
    xrnn::activation_layer<double, xrnn::activation::relu> layer;
    const xt::xtensor<double, 2> x = {{-2.0, -0.1, 0.1, 3.0}};
    const xt::xtensor<double, 2> dy = {{5.0, 6.0, 7.0, 8.0}};
    layer.forward(x, xrnn::mode::training);
    const xt::xtensor<double, 2> expected = {{0.0, 0.0, 7.0, 8.0}};
    CHECK(layer.backward(dy) == expected);
}

TEST_CASE("activations: the (B, F) and (S, B, F) paths keep separate outputs")
{
    xrnn::activation_layer<double, xrnn::activation::tanh> layer;
    const auto x2 = inputs<2>({2, 3}, 6);
    const auto x3 = inputs<3>({4, 2, 3}, 7);
    const auto r2 = random_tensor<double, 2>({2, 3}, 8);
    layer.forward(x2, xrnn::mode::training);
    layer.forward(x3, xrnn::mode::training);  // must not replace what the rank-2 backward uses
    const xt::xtensor<double, 2> dx = layer.backward(r2);
    xt::xtensor<double, 2> expected = r2 * (1.0 - xt::square(xt::tanh(x2)));
    CHECK(xt::allclose(dx, expected, 1e-14, 1e-15));
}

TEST_CASE("activations: backward before a forward of the same rank is a state_error")
{
    xrnn::activation_layer<double, xrnn::activation::sigmoid> layer;
    const xt::xtensor<double, 2> dy2({2, 3}, 1.0);
    const xt::xtensor<double, 3> dy3({4, 2, 3}, 1.0);
    CHECK_THROWS_WITH_AS(layer.backward(dy2), "activation_layer<sigmoid>::backward: no forward before it",
                         xrnn::state_error);
    layer.forward(dy2);
    CHECK_NOTHROW(layer.backward(dy2));
    CHECK_THROWS_AS(layer.backward(dy3), xrnn::state_error);  // the rank-3 path has seen no forward

    xrnn::activation_layer<float, xrnn::activation::softmax> soft;
    CHECK_THROWS_WITH_AS(soft.backward(xt::xtensor<float, 3>({1, 1, 2}, 0.5f)),
                         "activation_layer<softmax>::backward: no forward before it", xrnn::state_error);
}

TEST_CASE("activations: backward with a dy of another shape than the forward's output is a shape_error")
{
    xrnn::activation_layer<double, xrnn::activation::tanh> layer;
    layer.forward(xt::xtensor<double, 2>({3, 5}, 0.25));
    CHECK_THROWS_WITH_AS(layer.backward(xt::xtensor<double, 2>({3, 4}, 1.0)),
                         "activation_layer<tanh>::backward: dy expected shape (3, 5) but got (3, 4)",
                         xrnn::shape_error);
    CHECK_THROWS_AS(layer.backward(xt::xtensor<double, 2>({5, 3}, 1.0)), xrnn::shape_error);

    xrnn::activation_layer<double, xrnn::activation::softmax> soft;
    soft.forward(xt::xtensor<double, 3>({2, 3, 4}, 0.25));
    CHECK_THROWS_WITH_AS(soft.backward(xt::xtensor<double, 3>({2, 4, 4}, 1.0)),
                         "activation_layer<softmax>::backward: dy expected shape (2, 3, 4) but got (2, 4, 4)",
                         xrnn::shape_error);
}
