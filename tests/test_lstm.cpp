// lstm layer: gradient checks (every parameter, input and initial state; stacked; dropout; truncation),
// stateful chunked use, and shape errors.
#include <doctest/doctest.h>

#include <xtensor/xview.hpp>

#include <xrnn/xrnn.hpp>

#include "support/recurrent_checks.hpp"

using xrnn::output;
using xrnn_test::check_recurrent_gradients;
using xrnn_test::check_truncated_gradients;

TEST_CASE("lstm: gradients of a one-layer many-to-one lstm match finite differences")
{
    check_recurrent_gradients<xrnn::lstm<double, 3, 4>>({}, 5, 3, false);
}

TEST_CASE("lstm: gradients of a sequence-output lstm from given initial states")
{
    check_recurrent_gradients<xrnn::lstm<double, 3, 4, 1, output::sequence>>({}, 4, 2, true);
}

TEST_CASE("lstm: gradients of a stacked (3-layer) lstm, with initial states")
{
    check_recurrent_gradients<xrnn::lstm<double, 2, 3, 3, output::sequence>>({}, 4, 2, true);
    check_recurrent_gradients<xrnn::lstm<double, 2, 3, 2, output::last>>({}, 5, 3, true);
}

TEST_CASE("lstm: gradients with input and recurrent dropout (masks fixed per sequence)")
{
    xrnn::recurrent_options options;
    options.dropout = 0.3;
    options.recurrent_dropout = 0.4;
    check_recurrent_gradients<xrnn::lstm<double, 3, 4, 2, output::sequence>>(options, 4, 3, true);
}

TEST_CASE("lstm: gradients with PyTorch initialisation")
{
    xrnn::recurrent_options options;
    options.init = xrnn::init_scheme::pytorch;
    check_recurrent_gradients<xrnn::lstm<double, 3, 4>>(options, 3, 2, true);
}

TEST_CASE("lstm: truncated BPTT is the exact gradient of the sequence cut into chunks")
{
    check_truncated_gradients<xrnn::lstm<double, 3, 4, 1, output::sequence>>(7, 2, 3);
    check_truncated_gradients<xrnn::lstm<double, 3, 4, 2, output::sequence>>(6, 2, 2);
    check_truncated_gradients<xrnn::lstm<double, 3, 4, 1, output::last>>(7, 2, 3);
}

TEST_CASE("lstm: truncation changes nothing when it is longer than the sequence")
{
    xrnn::random_engine rng(5);
    xrnn::recurrent_options options;
    options.bptt_steps = 10;
    xrnn::lstm<double, 3, 4> truncated(rng, options);
    xrnn::lstm<double, 3, 4> full = truncated;
    auto x = xrnn_test::random_tensor<double, 3>({6, 2, 3}, 1);
    auto r = xrnn_test::random_tensor<double, 2>({2, 4}, 2);
    xrnn::zero_grad(truncated, full);
    truncated.forward(x, xrnn::mode::training);
    full.forward(x, xrnn::mode::training);
    CHECK(truncated.backward(r) == full.backward(r));
    CHECK(truncated.layer<0>().dp.w_h == full.layer<0>().dp.w_h);
}

TEST_CASE("lstm: feeding final_state() back in equals one forward over the whole sequence")
{
    xrnn::random_engine rng(6);
    xrnn::lstm<double, 3, 4, 2, output::sequence> streamed(rng);
    auto whole = streamed;
    auto x = xrnn_test::random_tensor<double, 3>({6, 2, 3}, 3);
    const xt::xtensor<double, 3> y_whole = whole.forward(x);

    xt::xtensor<double, 3> first = xt::view(x, xt::range(0, 4), xt::all(), xt::all());
    xt::xtensor<double, 3> second = xt::view(x, xt::range(4, 6), xt::all(), xt::all());
    streamed.forward(first);
    const xt::xtensor<double, 3> y_second = streamed.forward(second, streamed.final_state());
    CHECK(xt::allclose(y_second, xt::view(y_whole, xt::range(4, 6), xt::all(), xt::all()), 1e-14, 1e-14));
    CHECK(xt::allclose(streamed.final_state().c, whole.final_state().c, 1e-14, 1e-14));
}

TEST_CASE("lstm: keras initialisation sets the forget-gate bias to one and the rest to zero")
{
    xrnn::random_engine rng(7);
    xrnn::lstm<float, 3, 4> layer(rng);
    const auto& b = layer.layer<0>().p.b;
    for (std::size_t j = 0; j < 16; ++j)
    {
        CHECK(b(j) == (j >= 4 && j < 8 ? 1.0f : 0.0f));
    }
}

TEST_CASE("lstm: wrong runtime shapes are shape_errors naming expected and received shapes")
{
    xrnn::random_engine rng(8);
    xrnn::lstm<float, 3, 4, 2> layer(rng);
    xt::xtensor<float, 3> wrong_features({5, 2, 7});
    CHECK_THROWS_WITH_AS(layer.forward(wrong_features), "lstm::forward: x expected shape (S, B, 3) with S, B >= 1 but got (5, 2, 7)",
                         xrnn::shape_error);
    xt::xtensor<float, 3> no_steps({0, 2, 3});
    CHECK_THROWS_AS(layer.forward(no_steps), xrnn::shape_error);
    xt::xtensor<float, 3> x({5, 2, 3}, 0.5f);
    xrnn::lstm_state<float> wrong_state{xt::xtensor<float, 3>({1, 2, 4}), xt::xtensor<float, 3>({2, 2, 4})};
    CHECK_THROWS_WITH_AS(layer.forward(x, wrong_state), "lstm: initial h expected shape (2, 2, 4) but got (1, 2, 4)",
                         xrnn::shape_error);
    layer.forward(x, xrnn::mode::training);
    xt::xtensor<float, 2> wrong_dy({3, 4});
    CHECK_THROWS_WITH_AS(layer.backward(wrong_dy), "lstm: dy expected shape (2, 4) but got (3, 4)", xrnn::shape_error);
}

TEST_CASE("lstm: backward after an inference forward is a state_error")
{
    xrnn::random_engine rng(9);
    xrnn::lstm<float, 3, 4> layer(rng);
    xt::xtensor<float, 3> x({5, 2, 3}, 0.5f);
    layer.forward(x);
    xt::xtensor<float, 2> dy({2, 4}, 1.0f);
    CHECK_THROWS_AS(layer.backward(dy), xrnn::state_error);
}
