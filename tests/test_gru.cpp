// gru layer: gradient checks (every parameter, input and initial state; stacked; dropout; truncation), stateful
// chunked use, and shape errors that name the gru. Threads and fast paths: test_threads.cpp, test_fast_paths.cpp.
#include <doctest/doctest.h>

#include <xtensor/xview.hpp>

#include <xrnn/xrnn.hpp>

#include "support/recurrent_checks.hpp"

using xrnn::output;
using xrnn_test::check_recurrent_gradients;
using xrnn_test::check_truncated_gradients;

TEST_CASE("gru: gradients of a one-layer many-to-one gru match finite differences")
{
    check_recurrent_gradients<xrnn::gru<double, 3, 4>>({}, 5, 3, false);
}

TEST_CASE("gru: gradients of a sequence-output gru from given initial states")
{
    check_recurrent_gradients<xrnn::gru<double, 3, 4, 1, output::sequence>>({}, 4, 2, true);
}

TEST_CASE("gru: gradients of stacked (2- and 3-layer) grus, with initial states")
{
    check_recurrent_gradients<xrnn::gru<double, 2, 3, 3, output::sequence>>({}, 4, 2, true);
    check_recurrent_gradients<xrnn::gru<double, 2, 3, 2, output::last>>({}, 5, 3, true);
}

TEST_CASE("gru: gradients with input and recurrent dropout (masks fixed per sequence)")
{
    xrnn::recurrent_options options;
    options.dropout = 0.3;
    options.recurrent_dropout = 0.4;
    check_recurrent_gradients<xrnn::gru<double, 3, 4, 2, output::sequence>>(options, 4, 3, true);
    check_recurrent_gradients<xrnn::gru<double, 3, 4, 1, output::last>>(options, 5, 2, false);
}

TEST_CASE("gru: gradients with PyTorch initialisation (non-zero b_in and b_hn)")
{
    xrnn::recurrent_options options;
    options.init = xrnn::init_scheme::pytorch;
    check_recurrent_gradients<xrnn::gru<double, 3, 4>>(options, 3, 2, true);
}

TEST_CASE("gru: truncated BPTT is the exact gradient of the sequence cut into chunks")
{
    check_truncated_gradients<xrnn::gru<double, 3, 4, 1, output::sequence>>(7, 2, 3);
    check_truncated_gradients<xrnn::gru<double, 3, 4, 2, output::sequence>>(6, 2, 2);
    check_truncated_gradients<xrnn::gru<double, 3, 4, 1, output::last>>(7, 2, 3);
}

TEST_CASE("gru: feeding final_state() back in equals one forward over the whole sequence")
{
    xrnn::random_engine rng(6);
    xrnn::gru<double, 3, 4, 2, output::sequence> streamed(rng);
    auto whole = streamed;
    auto x = xrnn_test::random_tensor<double, 3>({6, 2, 3}, 3);
    const xt::xtensor<double, 3> y_whole = whole.forward(x);

    xt::xtensor<double, 3> first = xt::view(x, xt::range(0, 4), xt::all(), xt::all());
    xt::xtensor<double, 3> second = xt::view(x, xt::range(4, 6), xt::all(), xt::all());
    streamed.forward(first);
    const xt::xtensor<double, 3> y_second = streamed.forward(second, streamed.final_state());
    CHECK(xt::allclose(y_second, xt::view(y_whole, xt::range(4, 6), xt::all(), xt::all()), 1e-14, 1e-14));
    CHECK(xt::allclose(streamed.final_state().h, whole.final_state().h, 1e-14, 1e-14));
}

TEST_CASE("gru: keras initialisation has zero biases, pytorch's draws b_in and b_hn apart")
{
    xrnn::random_engine rng(7);
    xrnn::gru<float, 3, 4> keras(rng);
    CHECK(xt::all(xt::equal(keras.layer<0>().p.b, 0.0f)));
    xrnn::recurrent_options options;
    options.init = xrnn::init_scheme::pytorch;
    xrnn::gru<double, 3, 4> torch(rng, options);
    const auto& b = torch.layer<0>().p.b;
    // columns [0, 8) are sums of two uniform(-1/2, 1/2) draws, [8, 16) one draw each
    for (std::size_t j = 8; j < 16; ++j)
    {
        CHECK(std::abs(b(j)) <= 0.5);
    }
}

TEST_CASE("gru: wrong runtime shapes are shape_errors naming the gru")
{
    xrnn::random_engine rng(8);
    xrnn::gru<float, 3, 4, 2> layer(rng);
    xt::xtensor<float, 3> wrong_features({5, 2, 7});
    CHECK_THROWS_WITH_AS(layer.forward(wrong_features), "gru::forward: x expected shape (S, B, 3) with S, B >= 1 but got (5, 2, 7)",
                         xrnn::shape_error);
    xt::xtensor<float, 3> x({5, 2, 3}, 0.5f);
    xrnn::gru_state<float> wrong_state{xt::xtensor<float, 3>({1, 2, 4})};
    CHECK_THROWS_WITH_AS(layer.forward(x, wrong_state), "gru: initial h expected shape (2, 2, 4) but got (1, 2, 4)",
                         xrnn::shape_error);
    layer.forward(x, xrnn::mode::training);
    xt::xtensor<float, 2> wrong_dy({3, 4});
    CHECK_THROWS_WITH_AS(layer.backward(wrong_dy), "gru: dy expected shape (2, 4) but got (3, 4)", xrnn::shape_error);
}

TEST_CASE("gru: backward after an inference forward, and a second backward, are state_errors")
{
    xrnn::random_engine rng(9);
    xrnn::gru<float, 3, 4> layer(rng);
    xt::xtensor<float, 3> x({5, 2, 3}, 0.5f);
    layer.forward(x);
    xt::xtensor<float, 2> dy({2, 4}, 1.0f);
    CHECK_THROWS_AS(layer.backward(dy), xrnn::state_error);
    layer.forward(x, xrnn::mode::training);
    layer.backward(dy);
    CHECK_THROWS_AS(layer.backward(dy), xrnn::state_error);
}
