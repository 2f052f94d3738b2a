// rnn_cell: one Elman step, its equations by hand, its gradients, streaming use, errors.
#include <doctest/doctest.h>
#include <xtensor-blas/xlinalg.hpp>
#include <xtensor/xview.hpp>

#include <xrnn/xrnn.hpp>

#include "support/cell_checks.hpp"

TEST_CASE("rnn_cell: one step computes h = tanh(x W_x + h_prev W_h + b)")
{
    xrnn::random_engine rng(1);
    xrnn::rnn_cell<double, 3, 4> cell(rng);
    const auto x = xrnn_test::random_tensor<double, 2>({2, 3}, 1);
    xrnn::rnn_step_state<double> prev{xrnn_test::random_tensor<double, 2>({2, 4}, 2)};
    const auto& next = cell.forward(x, prev);
    const xt::xtensor<double, 2> expected =
        xt::tanh(xt::linalg::dot(x, cell.p.w_x) + xt::linalg::dot(prev.h, cell.p.w_h) + cell.p.b);
    CHECK(xt::allclose(next.h, expected, 1e-14, 1e-14));
}

TEST_CASE("rnn_cell: relu cell computes h = max(0, z)")
{
    xrnn::random_engine rng(2);
    xrnn::rnn_cell<double, 3, 4, xrnn::nonlinearity::relu> cell(rng);
    const auto x = xrnn_test::random_tensor<double, 2>({5, 3}, 3);
    xrnn::rnn_step_state<double> prev{xrnn_test::random_tensor<double, 2>({5, 4}, 4)};
    const xt::xtensor<double, 2> z =
        xt::linalg::dot(x, cell.p.w_x) + xt::linalg::dot(prev.h, cell.p.w_h) + cell.p.b;
    CHECK(xt::allclose(cell.forward(x, prev).h, xt::maximum(z, 0.0), 1e-14, 1e-14));
}

TEST_CASE("rnn_cell: step gradients (dW_x, dW_h, db, dx, dh_prev) match finite differences")
{
    xrnn_test::check_cell_step_gradients<xrnn::rnn_cell<double, 3, 4>>(3);
    xrnn_test::check_cell_step_gradients<xrnn::rnn_cell<double, 4, 2, xrnn::nonlinearity::relu>>(5);
    xrnn_test::check_cell_step_gradients<xrnn::rnn_cell<double, 3, 4>>(1);
}

TEST_CASE("rnn_cell: stepping a cell through a sequence equals the rnn layer with its weights")
{
    xrnn::random_engine rng(3);
    xrnn::rnn<double, 3, 4, 1, xrnn::output::sequence> layer(rng);
    xrnn::random_engine other(99);
    xrnn::rnn_cell<double, 3, 4> cell(other);
    cell.p = layer.layer<0>().p;
    const auto x = xrnn_test::random_tensor<double, 3>({5, 2, 3}, 5);
    const xt::xtensor<double, 3> y = layer.forward(x);
    xrnn::rnn_step_state<double> state{xt::zeros<double>({2, 4})};
    for (std::size_t t = 0; t < 5; ++t)
    {
        xt::xtensor<double, 2> x_t = xt::view(x, t);
        state = cell.forward(x_t, state);
        CHECK(xt::allclose(state.h, xt::view(y, t), 1e-14, 1e-14));
    }
}

TEST_CASE("rnn_cell: wrong shapes are shape_errors")
{
    xrnn::random_engine rng(4);
    xrnn::rnn_cell<float, 3, 4> cell(rng);
    xt::xtensor<float, 2> x({2, 5});
    xrnn::rnn_step_state<float> prev{xt::xtensor<float, 2>({2, 4})};
    CHECK_THROWS_WITH_AS(cell.forward(x, prev), "rnn_cell: x expected shape (2, 3) but got (2, 5)", xrnn::shape_error);
    xt::xtensor<float, 2> good({2, 3}, 1.0f);
    xrnn::rnn_step_state<float> bad_prev{xt::xtensor<float, 2>({3, 4})};
    CHECK_THROWS_WITH_AS(cell.forward(good, bad_prev), "rnn_cell: previous h expected shape (2, 4) but got (3, 4)",
                         xrnn::shape_error);
    cell.forward(good, prev, xrnn::mode::training);
    xrnn::rnn_step_state<float> bad_grad{xt::xtensor<float, 2>({2, 3})};
    CHECK_THROWS_AS(cell.backward(bad_grad), xrnn::shape_error);
}
