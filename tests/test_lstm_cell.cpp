// lstm_cell: one LSTM step, its equations by hand in PyTorch's gate order, its gradients, errors.
#include <doctest/doctest.h>
#include <xtensor-blas/xlinalg.hpp>
#include <xtensor/xview.hpp>

#include <xrnn/xrnn.hpp>

#include "support/cell_checks.hpp"

namespace
{
    xt::xtensor<double, 2> sigmoid(const xt::xtensor<double, 2>& z)
    {
        return 1.0 / (1.0 + xt::exp(-z));
    }
}  // namespace

TEST_CASE("lstm_cell: one step follows the gate equations in (i, f, g, o) order")
{
    xrnn::random_engine rng(1);
    xrnn::lstm_cell<double, 3, 4> cell(rng);
    const auto x = xrnn_test::random_tensor<double, 2>({2, 3}, 1);
    xrnn::lstm_step_state<double> prev{xrnn_test::random_tensor<double, 2>({2, 4}, 2),
                                       xrnn_test::random_tensor<double, 2>({2, 4}, 3)};
    const auto& next = cell.forward(x, prev);
    const xt::xtensor<double, 2> z =
        xt::linalg::dot(x, cell.p.w_x) + xt::linalg::dot(prev.h, cell.p.w_h) + cell.p.b;
    const xt::xtensor<double, 2> i = sigmoid(xt::view(z, xt::all(), xt::range(0, 4)));
    const xt::xtensor<double, 2> f = sigmoid(xt::view(z, xt::all(), xt::range(4, 8)));
    const xt::xtensor<double, 2> g = xt::tanh(xt::view(z, xt::all(), xt::range(8, 12)));
    const xt::xtensor<double, 2> o = sigmoid(xt::view(z, xt::all(), xt::range(12, 16)));
    const xt::xtensor<double, 2> c = f * prev.c + i * g;
    CHECK(xt::allclose(next.c, c, 1e-14, 1e-14));
    CHECK(xt::allclose(next.h, o * xt::tanh(c), 1e-14, 1e-14));
}

TEST_CASE("lstm_cell: step gradients (weights, dx, dh_prev, dc_prev) match finite differences")
{
    xrnn_test::check_cell_step_gradients<xrnn::lstm_cell<double, 3, 4>>(3);
    xrnn_test::check_cell_step_gradients<xrnn::lstm_cell<double, 5, 2>>(1);
    xrnn::recurrent_options pytorch_init;
    pytorch_init.init = xrnn::init_scheme::pytorch;
    xrnn_test::check_cell_step_gradients<xrnn::lstm_cell<double, 2, 3>>(4, pytorch_init);
}

TEST_CASE("lstm_cell: stepping a cell through a sequence equals the lstm layer with its weights")
{
    xrnn::random_engine rng(3);
    xrnn::lstm<double, 3, 4, 1, xrnn::output::sequence> layer(rng);
    xrnn::random_engine other(99);
    xrnn::lstm_cell<double, 3, 4> cell(other);
    cell.p = layer.layer<0>().p;
    const auto x = xrnn_test::random_tensor<double, 3>({5, 2, 3}, 5);
    const xt::xtensor<double, 3> y = layer.forward(x);
    xrnn::lstm_step_state<double> state{xt::zeros<double>({2, 4}), xt::zeros<double>({2, 4})};
    for (std::size_t t = 0; t < 5; ++t)
    {
        xt::xtensor<double, 2> x_t = xt::view(x, t);
        state = cell.forward(x_t, state);
        CHECK(xt::allclose(state.h, xt::view(y, t), 1e-14, 1e-14));
    }
    CHECK(xt::allclose(state.c, xt::view(layer.final_state().c, 0), 1e-14, 1e-14));
}

TEST_CASE("lstm_cell: wrong shapes are shape_errors, backward without training forward a state_error")
{
    xrnn::random_engine rng(4);
    xrnn::lstm_cell<float, 3, 4> cell(rng);
    xt::xtensor<float, 2> x({2, 3}, 1.0f);
    xrnn::lstm_step_state<float> prev{xt::xtensor<float, 2>({2, 4}, 0.0f), xt::xtensor<float, 2>({2, 5})};
    CHECK_THROWS_WITH_AS(cell.forward(x, prev), "lstm_cell: previous c expected shape (2, 4) but got (2, 5)",
                         xrnn::shape_error);
    prev.c = xt::zeros<float>({2, 4});
    const auto next = cell.forward(x, prev);
    CHECK_THROWS_WITH_AS(cell.backward(next), "lstm_cell::backward: call forward(x, mode::training) before backward",
                         xrnn::state_error);
}
