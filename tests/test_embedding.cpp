// layers/embedding.hpp: forward gathers rows of W, backward scatters dy into the rows of the ids that occurred,
// gradient check, id validation and its messages, id types, initialisation.
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include <doctest/doctest.h>

#include <xtensor/xmath.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <xrnn/layers/embedding.hpp>
#include <xrnn/optim.hpp>

#include "support/gradcheck.hpp"

using xrnn_test::gradcheck_tolerance;
using xrnn_test::projected;
using xrnn_test::random_tensor;

namespace
{
    using small_embedding = xrnn::embedding<double, 10, 4>;

    /// ids (S, B) = (3, 2) using ids 7, 2, 2, 9, 0, 7: ids 2 and 7 repeat, 1, 3, 4, 5, 6 and 8 are unused.
    template <class Id>
    xt::xtensor<Id, 2> sample_ids()
    {
        return xt::xtensor<Id, 2>{{Id(7), Id(2)}, {Id(2), Id(9)}, {Id(0), Id(7)}};
    }

    /// Forward of sample_ids<Id>() gives W's rows.
    template <class Id>
    void check_forward_with_id_type()
    {
        xrnn::random_engine rng(1);
        small_embedding layer(rng);
        const auto ids = sample_ids<Id>();
        const xt::xtensor<double, 3> y = layer.forward(ids);
        REQUIRE(y.shape()[0] == 3);
        REQUIRE(y.shape()[1] == 2);
        REQUIRE(y.shape()[2] == 4);
        std::size_t mismatched = 0;
        for (std::size_t s = 0; s < 3; ++s)
        {
            for (std::size_t b = 0; b < 2; ++b)
            {
                for (std::size_t d = 0; d < 4; ++d)
                {
                    mismatched += y(s, b, d) == layer.p.w(static_cast<std::size_t>(ids(s, b)), d) ? 0 : 1;
                }
            }
        }
        CHECK(mismatched == 0);
    }
}  // namespace

TEST_CASE("embedding: forward row (s, b) is the row of W of ids(s, b)")
{
    xrnn::random_engine rng(2);
    xrnn::embedding<float, 5, 3> layer(rng);
    const xt::xtensor<int, 2> ids = {{4, 0, 1, 4}};
    const auto& y = layer.forward(ids, xrnn::mode::training);
    CHECK(xt::view(y, 0, 0, xt::all()) == xt::view(layer.p.w, 4, xt::all()));
    CHECK(xt::view(y, 0, 1, xt::all()) == xt::view(layer.p.w, 0, xt::all()));
    CHECK(xt::view(y, 0, 2, xt::all()) == xt::view(layer.p.w, 1, xt::all()));
    CHECK(xt::view(y, 0, 3, xt::all()) == xt::view(layer.p.w, 4, xt::all()));
}

TEST_CASE("embedding: int, long, std::size_t and std::uint8_t ids all work and agree")
{
    check_forward_with_id_type<int>();
    check_forward_with_id_type<long>();
    check_forward_with_id_type<std::size_t>();
    check_forward_with_id_type<std::uint8_t>();
    check_forward_with_id_type<short>();

    xrnn::random_engine rng(3);
    small_embedding a(rng);
    small_embedding b = a;
    const xt::xtensor<double, 3> y_int = a.forward(sample_ids<int>());
    CHECK(b.forward(sample_ids<std::uint8_t>()) == y_int);
    CHECK(b.forward(sample_ids<std::size_t>()) == y_int);
}

TEST_CASE("embedding: backward scatters dy to the used rows, accumulates repeats, leaves unused rows zero")
{
    xrnn::random_engine rng(4);
    small_embedding layer(rng);
    xrnn::zero_grad(layer);
    const auto ids = sample_ids<int>();
    const auto dy = random_tensor<double, 3>({3, 2, 4}, 5);
    layer.forward(ids, xrnn::mode::training);
    layer.backward(dy);

    xt::xtensor<double, 2> expected = xt::zeros<double>({10, 4});
    for (std::size_t s = 0; s < 3; ++s)
    {
        for (std::size_t b = 0; b < 2; ++b)
        {
            xt::view(expected, static_cast<std::size_t>(ids(s, b)), xt::all()) += xt::view(dy, s, b, xt::all());
        }
    }
    CHECK(xt::allclose(layer.dp.w, expected, 1e-15, 0.0));
    // spelled out: row 2 = dy(0, 1) + dy(1, 0), row 7 = dy(0, 0) + dy(2, 1), row 9 = dy(1, 1), row 0 = dy(2, 0)
    for (std::size_t d = 0; d < 4; ++d)
    {
        CHECK(layer.dp.w(2, d) == doctest::Approx(dy(0, 1, d) + dy(1, 0, d)));
        CHECK(layer.dp.w(7, d) == doctest::Approx(dy(0, 0, d) + dy(2, 1, d)));
        CHECK(layer.dp.w(9, d) == dy(1, 1, d));
        CHECK(layer.dp.w(0, d) == dy(2, 0, d));
    }
    for (std::size_t unused : {1, 3, 4, 5, 6, 8})
    {
        CAPTURE(unused);
        CHECK(xt::all(xt::equal(xt::view(layer.dp.w, unused, xt::all()), 0.0)));
    }

    // a second backward accumulates (gradients are zeroed by the caller)
    layer.backward(dy);
    CHECK(xt::allclose(layer.dp.w, 2.0 * expected, 1e-15, 0.0));
    xrnn::zero_grad(layer);
    CHECK(xt::all(xt::equal(layer.dp.w, 0.0)));
}

TEST_CASE("embedding: dW matches finite differences")
{
    xrnn::random_engine rng(5);
    const small_embedding pristine(rng, xrnn::init_scheme::pytorch);
    const xt::xtensor<long, 2> ids = {{7, 2, 2}, {9, 0, 7}, {3, 3, 3}, {1, 9, 8}};
    const auto r = random_tensor<double, 3>({4, 3, 4}, 6);
    auto loss_of = [&](small_embedding& layer) { return projected(layer.forward(ids, xrnn::mode::training), r); };
    small_embedding analytic = pristine;
    xrnn::zero_grad(analytic);
    loss_of(analytic);
    analytic.backward(r);
    const auto errors = xrnn_test::check_parameter_gradients(pristine, analytic, loss_of);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].name == "w");
    CHECK(errors[0].error < gradcheck_tolerance);
    CHECK(xt::amax(xt::abs(analytic.dp.w))() > 0.1);
}

TEST_CASE("embedding: an id outside [0, V) is a value_error naming the id, its step and batch, and V")
{
    xrnn::random_engine rng(6);
    small_embedding layer(rng);
    // (S, B) = (2, 3); the bad id is at step 1, batch 2
    CHECK_THROWS_WITH_AS(layer.forward(xt::xtensor<int, 2>{{1, 2, 3}, {4, 5, -1}}),
                         "embedding::forward: token id -1 at step 1, batch 2 is outside the vocabulary [0, 10)",
                         xrnn::value_error);
    CHECK_THROWS_WITH_AS(layer.forward(xt::xtensor<int, 2>{{1, 10, 3}, {4, 5, 6}}),
                         "embedding::forward: token id 10 at step 0, batch 1 is outside the vocabulary [0, 10)",
                         xrnn::value_error);
    CHECK_THROWS_AS(layer.forward(xt::xtensor<long, 2>{{-1000000000000L}}), xrnn::value_error);
    CHECK_THROWS_AS(layer.forward(xt::xtensor<std::size_t, 2>{{0}, {11}}), xrnn::value_error);
    CHECK_THROWS_WITH_AS(layer.forward(xt::xtensor<std::uint8_t, 2>{{0, 255}}),
                         "embedding::forward: token id 255 at step 0, batch 1 is outside the vocabulary [0, 10)",
                         xrnn::value_error);
    CHECK_NOTHROW(layer.forward(xt::xtensor<int, 2>{{0, 9}}));  // both ends of the range are valid
}

TEST_CASE("embedding: ids with 0 steps or 0 batch are a shape_error")
{
    xrnn::random_engine rng(7);
    small_embedding layer(rng);
    CHECK_THROWS_WITH_AS(layer.forward(xt::xtensor<int, 2>(std::array<std::size_t, 2>{0, 3})),
                         "embedding::forward: steps (ids.shape()[0]) must be at least 1 but got 0", xrnn::shape_error);
    CHECK_THROWS_WITH_AS(layer.forward(xt::xtensor<int, 2>(std::array<std::size_t, 2>{3, 0})),
                         "embedding::forward: batch (ids.shape()[1]) must be at least 1 but got 0", xrnn::shape_error);
}

TEST_CASE("embedding: backward without a forward is a state_error, with a wrong dy a shape_error")
{
    xrnn::random_engine rng(8);
    small_embedding layer(rng);
    CHECK_THROWS_WITH_AS(layer.backward(xt::xtensor<double, 3>({3, 2, 4}, 1.0)),
                         "embedding::backward: no successful forward before it", xrnn::state_error);
    layer.forward(sample_ids<int>(), xrnn::mode::training);
    CHECK_THROWS_WITH_AS(layer.backward(xt::xtensor<double, 3>({3, 2, 5}, 1.0)),
                         "embedding::backward: dy expected shape (3, 2, 4) but got (3, 2, 5)", xrnn::shape_error);
    CHECK_THROWS_WITH_AS(layer.backward(xt::xtensor<double, 3>({2, 3, 4}, 1.0)),
                         "embedding::backward: dy expected shape (3, 2, 4) but got (2, 3, 4)", xrnn::shape_error);
    CHECK_NOTHROW(layer.backward(xt::xtensor<double, 3>({3, 2, 4}, 1.0)));
}

TEST_CASE("embedding: keras initialisation is uniform in [-0.05, 0.05], pytorch's is N(0, 1)")
{
    xrnn::random_engine rng(9);
    {
        xrnn::embedding<double, 1000, 50> layer(rng);
        CHECK(xt::amax(xt::abs(layer.p.w))() <= 0.05);
        CHECK(xt::amax(xt::abs(layer.p.w))() > 0.049);
        CHECK(std::abs(xt::mean(layer.p.w)()) < 0.001);
        CHECK(xt::all(xt::equal(layer.dp.w, 0.0)));  // gradients start at zero
    }
    {
        xrnn::embedding<double, 1000, 50> layer(rng, xrnn::init_scheme::pytorch);
        const double mean = xt::mean(layer.p.w)();
        const double stddev = std::sqrt(xt::mean(xt::square(layer.p.w - mean))());
        CHECK(std::abs(mean) < 0.02);
        CHECK(stddev == doctest::Approx(1.0).epsilon(0.02));
        CHECK(xt::amax(xt::abs(layer.p.w))() > 3.0);  // a normal's tails, not a bounded uniform
    }
    {
        // the same seed gives the same table
        xrnn::random_engine a(10);
        xrnn::random_engine b(10);
        CHECK(xrnn::embedding<float, 20, 3>(a).p.w == xrnn::embedding<float, 20, 3>(b).p.w);
    }
}

TEST_CASE("embedding: a forward that throws leaves no half-validated ids for backward")
{
    xrnn::random_engine rng(1);
    xrnn::embedding<double, 10, 4> layer(rng);
    xrnn::zero_grad(layer);
    layer.forward(xt::xtensor<int, 2>{{1, 2}}, xrnn::mode::training);
    CHECK_THROWS_AS(layer.forward(xt::xtensor<int, 2>{{3, 4}, {5, 99}}, xrnn::mode::training), xrnn::value_error);
    CHECK_THROWS_AS(layer.backward(xt::xtensor<double, 3>({2, 2, 4}, 1.0)), xrnn::state_error);
    CHECK(xt::all(xt::equal(layer.dp.w, 0.0)));
}
