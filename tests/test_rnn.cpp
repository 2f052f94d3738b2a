// rnn layer: gradient checks (tanh and relu; stacked; dropout; truncation), stateful use, shape errors.
#include <doctest/doctest.h>

#include <xtensor/xview.hpp>

#include <xrnn/xrnn.hpp>

#include "support/recurrent_checks.hpp"

using xrnn::nonlinearity;
using xrnn::output;
using xrnn_test::check_recurrent_gradients;
using xrnn_test::check_truncated_gradients;

TEST_CASE("rnn: gradients of a one-layer many-to-one tanh rnn match finite differences")
{
    check_recurrent_gradients<xrnn::rnn<double, 3, 4>>({}, 5, 3, false);
}

TEST_CASE("rnn: gradients of a sequence-output rnn from given initial states")
{
    check_recurrent_gradients<xrnn::rnn<double, 3, 4, 1, output::sequence>>({}, 4, 2, true);
}

TEST_CASE("rnn: gradients of a stacked relu rnn")
{
    check_recurrent_gradients<xrnn::rnn<double, 3, 5, 2, output::sequence, nonlinearity::relu>>({}, 5, 3, true);
    check_recurrent_gradients<xrnn::rnn<double, 2, 3, 3, output::last, nonlinearity::relu>>({}, 4, 2, true);
}

TEST_CASE("rnn: gradients with input and recurrent dropout")
{
    xrnn::recurrent_options options;
    options.dropout = 0.25;
    options.recurrent_dropout = 0.5;
    check_recurrent_gradients<xrnn::rnn<double, 3, 4, 2, output::sequence>>(options, 5, 3, true);
}

TEST_CASE("rnn: truncated BPTT is the exact gradient of the sequence cut into chunks")
{
    check_truncated_gradients<xrnn::rnn<double, 3, 4, 1, output::sequence>>(8, 2, 3);
    check_truncated_gradients<xrnn::rnn<double, 3, 4, 2, output::last>>(6, 3, 2);
}

TEST_CASE("rnn: dropout is off at inference, and the same at every step of a sequence in training")
{
    xrnn::random_engine rng(11);
    xrnn::recurrent_options options;
    options.dropout = 0.5;
    xrnn::rnn<double, 3, 4, 1, output::sequence> with_dropout(rng, options);
    xrnn::random_engine rng2(11);
    xrnn::rnn<double, 3, 4, 1, output::sequence> without(rng2);
    auto x = xrnn_test::random_tensor<double, 3>({4, 2, 3}, 5);
    CHECK(with_dropout.forward(x) == without.forward(x));

    // one sequence whose input is the same vector at every step: with a per-sequence mask, the masked input is
    // the same at every step, so the first step of a two-step run equals a one-step run with the same mask.
    auto training_copy = with_dropout;
    xt::xtensor<double, 3> repeated({3, 1, 3});
    for (std::size_t t = 0; t < 3; ++t)
    {
        for (std::size_t i = 0; i < 3; ++i)
        {
            repeated(t, 0, i) = 1.0;
        }
    }
    const xt::xtensor<double, 3> y = training_copy.forward(repeated, xrnn::mode::training);
    // recompute by hand with one mask m: h_t = tanh((x * m) W_x + h_{t-1} W_h + b) for every mask in {0, 2}^3
    const auto& p = with_dropout.layer<0>().p;
    bool some_mask_matches = false;
    for (int bits = 0; bits < 8; ++bits)
    {
        xt::xtensor<double, 1> masked_x = {bits & 1 ? 2.0 : 0.0, bits & 2 ? 2.0 : 0.0, bits & 4 ? 2.0 : 0.0};
        xt::xtensor<double, 1> h = xt::zeros<double>({4});
        bool matches = true;
        for (std::size_t t = 0; t < 3; ++t)
        {
            xt::xtensor<double, 1> z = p.b;
            for (std::size_t j = 0; j < 4; ++j)
            {
                for (std::size_t i = 0; i < 3; ++i)
                {
                    z(j) += masked_x(i) * p.w_x(i, j);
                }
                for (std::size_t i = 0; i < 4; ++i)
                {
                    z(j) += h(i) * p.w_h(i, j);
                }
            }
            h = xt::tanh(z);
            matches = matches && xt::allclose(h, xt::view(y, t, 0, xt::all()), 1e-12, 1e-12);
        }
        some_mask_matches = some_mask_matches || matches;
    }
    CHECK(some_mask_matches);
}

TEST_CASE("rnn: rates outside [0, 1) are value_errors")
{
    xrnn::random_engine rng(12);
    xrnn::recurrent_options options;
    options.recurrent_dropout = 1.0;
    CHECK_THROWS_WITH_AS((xrnn::rnn<float, 3, 4>(rng, options)),
                         "rnn_cell: recurrent_dropout expected in [0, 1) but got 1", xrnn::value_error);
    options.recurrent_dropout = 0.0;
    options.dropout = -0.1;
    CHECK_THROWS_AS((xrnn::rnn<float, 3, 4>(rng, options)), xrnn::value_error);
}

TEST_CASE("rnn: wrong runtime shapes are shape_errors")
{
    xrnn::random_engine rng(13);
    xrnn::rnn<float, 3, 4, 1, output::sequence> layer(rng);
    xt::xtensor<float, 3> x({5, 0, 3});
    CHECK_THROWS_WITH_AS(layer.forward(x), "rnn::forward: x expected shape (S, B, 3) with S, B >= 1 but got (5, 0, 3)",
                         xrnn::shape_error);
    xt::xtensor<float, 3> good({5, 2, 3}, 0.1f);
    layer.forward(good, xrnn::mode::training);
    xt::xtensor<float, 3> wrong_dy({4, 2, 4});
    CHECK_THROWS_WITH_AS(layer.backward(wrong_dy), "rnn: dy expected shape (5, 2, 4) but got (4, 2, 4)",
                         xrnn::shape_error);
}
