// layers/dense.hpp: y = x W + b on (B, In) and (S, B, In) against loops, gradient checks of dW, db and dx,
// gradient accumulation, errors, and the Keras and PyTorch initialisations.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <doctest/doctest.h>

#include <xtensor/xmath.hpp>
#include <xtensor/xtensor.hpp>

#include <xrnn/layers/dense.hpp>
#include <xrnn/optim.hpp>

#include "support/gradcheck.hpp"

using xrnn_test::check_parameter_gradients;
using xrnn_test::gradcheck_tolerance;
using xrnn_test::projected;
using xrnn_test::random_tensor;

namespace
{
    using layer_type = xrnn::dense<double, 4, 3>;

    /// A layer with a non-zero bias (Keras initialises it to zero, which would hide a missing + b).
    layer_type make_layer(std::uint64_t seed)
    {
        xrnn::random_engine rng(seed);
        layer_type layer(rng);
        layer.p.b = random_tensor<double, 1>({3}, seed + 100);
        xrnn::zero_grad(layer);
        return layer;
    }

    /// y[r, o] = sum_i x[r, i] W[i, o] + b[o] over the rows r of a row-major (rows, In) block.
    std::vector<double> by_hand(const double* x, std::size_t rows, const layer_type& layer)
    {
        std::vector<double> y(rows * 3);
        for (std::size_t r = 0; r < rows; ++r)
        {
            for (std::size_t o = 0; o < 3; ++o)
            {
                double sum = layer.p.b(o);
                for (std::size_t i = 0; i < 4; ++i)
                {
                    sum += x[r * 4 + i] * layer.p.w(i, o);
                }
                y[r * 3 + o] = sum;
            }
        }
        return y;
    }

    template <std::size_t N>
    void check_gradients(const std::array<std::size_t, N>& input_shape, const std::array<std::size_t, N>& output_shape)
    {
        CAPTURE(N);
        const layer_type pristine = make_layer(7);
        auto x = random_tensor<double, N>(input_shape, 8);
        const auto r = random_tensor<double, N>(output_shape, 9);
        auto loss_of = [&](layer_type& layer) { return projected(layer.forward(x, xrnn::mode::training), r); };

        layer_type analytic = pristine;
        loss_of(analytic);
        const xt::xtensor<double, N> dx = analytic.backward(r);

        const auto errors = check_parameter_gradients(pristine, analytic, loss_of);
        REQUIRE(errors.size() == 2);
        CHECK(errors[0].name == "w");
        CHECK(errors[1].name == "b");
        for (const auto& e : errors)
        {
            INFO("parameter ", e.name);
            CHECK(e.error < gradcheck_tolerance);
        }
        INFO("input x");
        CHECK(xrnn_test::input_gradient_error(pristine, x, dx, loss_of) < gradcheck_tolerance);
        CHECK(xt::amax(xt::abs(analytic.dp.w))() > 0.1);  // not vacuous
        CHECK(xt::amax(xt::abs(analytic.dp.b))() > 0.1);
    }
}  // namespace

TEST_CASE("dense: forward of (B, In) is x W + b computed by loops")
{
    layer_type layer = make_layer(1);
    const auto x = random_tensor<double, 2>({5, 4}, 2);
    const xt::xtensor<double, 2> y = layer.forward(x);
    REQUIRE(y.shape()[0] == 5);
    REQUIRE(y.shape()[1] == 3);
    const auto expected = by_hand(x.data(), 5, layer);
    double worst = 0.0;
    for (std::size_t j = 0; j < y.size(); ++j)
    {
        worst = std::max(worst, std::abs(y.data()[j] - expected[j]));
    }
    CHECK(worst < 1e-14);
}

TEST_CASE("dense: forward of (S, B, In) applies the same W and b at every step")
{
    layer_type layer = make_layer(3);
    const auto x = random_tensor<double, 3>({6, 2, 4}, 4);
    const xt::xtensor<double, 3> y = layer.forward(x, xrnn::mode::training);
    REQUIRE(y.shape()[0] == 6);
    REQUIRE(y.shape()[1] == 2);
    REQUIRE(y.shape()[2] == 3);
    const auto expected = by_hand(x.data(), 12, layer);
    double worst = 0.0;
    for (std::size_t j = 0; j < y.size(); ++j)
    {
        worst = std::max(worst, std::abs(y.data()[j] - expected[j]));
    }
    CHECK(worst < 1e-14);

    // float gives the same up to float rounding
    xrnn::random_engine rng(3);
    xrnn::dense<float, 4, 3> single(rng);
    single.p.w = xt::cast<float>(layer.p.w);
    single.p.b = xt::cast<float>(layer.p.b);
    const xt::xtensor<float, 3> xf = xt::cast<float>(x);
    const xt::xtensor<float, 3> yf = single.forward(xf);
    CHECK(xt::allclose(xt::cast<double>(yf), y, 1e-5, 1e-5));
}

TEST_CASE("dense: dW, db and dx of a (B, In) input match finite differences")
{
    check_gradients<2>({5, 4}, {5, 3});
}

TEST_CASE("dense: dW, db and dx of an (S, B, In) input match finite differences")
{
    check_gradients<3>({3, 2, 4}, {3, 2, 3});
}

TEST_CASE("dense: backward with the PyTorch initialisation matches finite differences")
{
    xrnn::random_engine rng(10);
    const xrnn::dense<double, 5, 2> pristine(rng, xrnn::init_scheme::pytorch);
    auto x = random_tensor<double, 2>({3, 5}, 11);
    const auto r = random_tensor<double, 2>({3, 2}, 12);
    auto loss_of = [&](xrnn::dense<double, 5, 2>& layer) {
        return projected(layer.forward(x, xrnn::mode::training), r);
    };
    auto analytic = pristine;
    xrnn::zero_grad(analytic);
    loss_of(analytic);
    const xt::xtensor<double, 2> dx = analytic.backward(r);
    for (const auto& e : check_parameter_gradients(pristine, analytic, loss_of))
    {
        INFO("parameter ", e.name);
        CHECK(e.error < gradcheck_tolerance);
    }
    CHECK(xrnn_test::input_gradient_error(pristine, x, dx, loss_of) < gradcheck_tolerance);
}

TEST_CASE("dense: gradients accumulate over backward calls until zero_grad")
{
    layer_type layer = make_layer(13);
    const auto x = random_tensor<double, 2>({4, 4}, 14);
    const auto dy = random_tensor<double, 2>({4, 3}, 15);
    layer.forward(x, xrnn::mode::training);
    const xt::xtensor<double, 2> dx_first = layer.backward(dy);
    const xt::xtensor<double, 2> dw_once = layer.dp.w;
    const xt::xtensor<double, 1> db_once = layer.dp.b;
    const xt::xtensor<double, 2> dx_second = layer.backward(dy);
    CHECK(xt::allclose(layer.dp.w, 2.0 * dw_once, 1e-14, 0.0));
    CHECK(xt::allclose(layer.dp.b, 2.0 * db_once, 1e-14, 0.0));
    CHECK(dx_second == dx_first);  // dx is not accumulated: it is the gradient of this call
    xrnn::zero_grad(layer);
    CHECK(xt::all(xt::equal(layer.dp.w, 0.0)));
    CHECK(xt::all(xt::equal(layer.dp.b, 0.0)));
    layer.backward(dy);
    CHECK(xt::allclose(layer.dp.w, dw_once, 1e-15, 0.0));
    CHECK(xt::allclose(layer.dp.b, db_once, 1e-15, 0.0));
}

TEST_CASE("dense: an input of the wrong width or empty is a shape_error naming the expected (B, In)")
{
    layer_type layer = make_layer(16);
    CHECK_THROWS_WITH_AS(layer.forward(xt::xtensor<double, 2>({2, 5}, 1.0)),
                         "dense::forward: x expected shape (B, 4) with every extent at least 1 but got (2, 5)",
                         xrnn::shape_error);
    CHECK_THROWS_WITH_AS(layer.forward(xt::xtensor<double, 3>({3, 2, 3}, 1.0)),
                         "dense::forward: x expected shape (S, B, 4) with every extent at least 1 but got (3, 2, 3)",
                         xrnn::shape_error);
    CHECK_THROWS_AS(layer.forward(xt::xtensor<double, 2>(std::array<std::size_t, 2>{0, 4})), xrnn::shape_error);
    CHECK_THROWS_AS(layer.forward(xt::xtensor<double, 3>(std::array<std::size_t, 3>{2, 0, 4})), xrnn::shape_error);
}

TEST_CASE("dense: backward before a forward, or of the other rank than the last forward, is a state_error")
{
    layer_type layer = make_layer(17);
    CHECK_THROWS_WITH_AS(layer.backward(xt::xtensor<double, 2>({2, 3}, 1.0)),
                         "dense::backward: no forward of a rank-2 input before it", xrnn::state_error);
    layer.forward(xt::xtensor<double, 3>({3, 2, 4}, 1.0), xrnn::mode::training);
    CHECK_THROWS_WITH_AS(layer.backward(xt::xtensor<double, 2>({6, 3}, 1.0)),
                         "dense::backward: no forward of a rank-2 input before it", xrnn::state_error);
    CHECK_NOTHROW(layer.backward(xt::xtensor<double, 3>({3, 2, 3}, 1.0)));
    layer.forward(xt::xtensor<double, 2>({6, 4}, 1.0), xrnn::mode::training);
    CHECK_THROWS_AS(layer.backward(xt::xtensor<double, 3>({3, 2, 3}, 1.0)), xrnn::state_error);
    // and a dy that does not match the forward's output
    CHECK_THROWS_WITH_AS(layer.backward(xt::xtensor<double, 2>({5, 3}, 1.0)),
                         "dense::backward: dy expected shape (6, 3) but got (5, 3)", xrnn::shape_error);
}

TEST_CASE("dense: keras initialisation has a zero bias and a Glorot-bounded kernel")
{
    xrnn::random_engine rng(18);
    xrnn::dense<double, 40, 24> layer(rng);
    const double limit = std::sqrt(6.0 / (40 + 24));
    CHECK(xt::all(xt::equal(layer.p.b, 0.0)));
    CHECK(xt::amax(xt::abs(layer.p.w))() <= limit);
    CHECK(xt::amax(xt::abs(layer.p.w))() > 0.9 * limit);
    CHECK(xt::all(xt::equal(layer.dp.w, 0.0)));
    CHECK(xt::all(xt::equal(layer.dp.b, 0.0)));
}

TEST_CASE("dense: pytorch initialisation draws W and b within 1 / sqrt(In)")
{
    xrnn::random_engine rng(19);
    xrnn::dense<double, 25, 40> layer(rng, xrnn::init_scheme::pytorch);
    const double bound = 1.0 / std::sqrt(25.0);
    CHECK(xt::amax(xt::abs(layer.p.w))() <= bound);
    CHECK(xt::amax(xt::abs(layer.p.w))() > 0.9 * bound);  // not Glorot's sqrt(6 / 65) = 0.30 either
    CHECK(xt::amax(xt::abs(layer.p.b))() <= bound);
    CHECK(xt::amax(xt::abs(layer.p.b))() > 0.5 * bound);
    CHECK(xt::any(xt::not_equal(layer.p.b, 0.0)));

    xrnn::random_engine a(20);
    xrnn::random_engine b(20);
    const xrnn::dense<float, 3, 2> first(a, xrnn::init_scheme::pytorch);
    const xrnn::dense<float, 3, 2> second(b, xrnn::init_scheme::pytorch);
    CHECK(first.p.w == second.p.w);
    CHECK(first.p.b == second.p.b);
}
