// gru_cell: one GRU step, its equations by hand in PyTorch's gate order (r, z, n; reset after the product), its
// gradients, streaming, errors.
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

    xt::xtensor<double, 2> columns(const xt::xtensor<double, 2>& m, std::size_t begin, std::size_t end)
    {
        return xt::view(m, xt::all(), xt::range(begin, end));
    }
}  // namespace

TEST_CASE("gru_cell: one step follows PyTorch's equations, the reset gate applied after W_hn")
{
    xrnn::random_engine rng(1);
    xrnn::recurrent_options options;
    options.init = xrnn::init_scheme::pytorch;  // every bias non-zero
    xrnn::gru_cell<double, 3, 4> cell(rng, options);
    const auto x = xrnn_test::random_tensor<double, 2>({2, 3}, 1);
    xrnn::gru_step_state<double> prev{xrnn_test::random_tensor<double, 2>({2, 4}, 2)};
    const auto& next = cell.forward(x, prev);
    const xt::xtensor<double, 2> xw = xt::linalg::dot(x, cell.p.w_x);       // (2, 12): r, z, n
    const xt::xtensor<double, 2> hw = xt::linalg::dot(prev.h, cell.p.w_h);  // (2, 12)
    const xt::xtensor<double, 1> b = cell.p.b;                              // (16): r, z, in, hn
    const auto bias = [&](std::size_t k) { return xt::xtensor<double, 1>(xt::view(b, xt::range(4 * k, 4 * k + 4))); };
    const xt::xtensor<double, 2> r = sigmoid(columns(xw, 0, 4) + columns(hw, 0, 4) + bias(0));
    const xt::xtensor<double, 2> z = sigmoid(columns(xw, 4, 8) + columns(hw, 4, 8) + bias(1));
    const xt::xtensor<double, 2> n = xt::tanh(columns(xw, 8, 12) + bias(2) + r * (columns(hw, 8, 12) + bias(3)));
    const xt::xtensor<double, 2> h = (1.0 - z) * n + z * prev.h;
    CHECK(xt::allclose(next.h, h, 1e-14, 1e-14));
}

TEST_CASE("gru_cell: step gradients (weights, both candidate biases, dx, dh_prev) match finite differences")
{
    xrnn_test::check_cell_step_gradients<xrnn::gru_cell<double, 3, 4>>(3);
    xrnn_test::check_cell_step_gradients<xrnn::gru_cell<double, 5, 2>>(1);
    xrnn::recurrent_options pytorch_init;
    pytorch_init.init = xrnn::init_scheme::pytorch;
    xrnn_test::check_cell_step_gradients<xrnn::gru_cell<double, 2, 3>>(4, pytorch_init);
}

TEST_CASE("gru_cell: stepping a cell through a sequence equals the gru layer with its weights")
{
    xrnn::random_engine rng(3);
    xrnn::gru<double, 3, 4, 1, xrnn::output::sequence> layer(rng);
    xrnn::random_engine other(99);
    xrnn::gru_cell<double, 3, 4> cell(other);
    cell.p = layer.layer<0>().p;
    const auto x = xrnn_test::random_tensor<double, 3>({5, 2, 3}, 5);
    const xt::xtensor<double, 3> y = layer.forward(x);
    xrnn::gru_step_state<double> state{xt::zeros<double>({2, 4})};
    for (std::size_t t = 0; t < 5; ++t)
    {
        xt::xtensor<double, 2> x_t = xt::view(x, t);
        state = cell.forward(x_t, state);
        CHECK(xt::allclose(state.h, xt::view(y, t), 1e-14, 1e-14));
    }
}

TEST_CASE("gru_cell: the layout keeps the candidate's recurrent product apart")
{
    using cell = xrnn::gru_cell<float, 3, 4>;
    static_assert(cell::Gx == 12 && cell::Gh == 12 && cell::Gs == 8 && cell::Gz == 16, "r, z summed; n apart");
    static_assert(!cell::has_cell_state, "a GRU has no cell state");
    xrnn::random_engine rng(2);
    cell c(rng);
    CHECK(c.p.w_x.shape()[1] == 12);
    CHECK(c.p.w_h.shape()[1] == 12);
    CHECK(c.p.b.size() == 16);
    CHECK(std::string(xrnn::gru<float, 3, 4>::name()) == "gru");
    CHECK(xrnn::gru<float, 3, 4, 2, xrnn::output::sequence>::signature() == "gru<float32,3,4,layers=2,sequence>");
}

TEST_CASE("gru_cell: wrong shapes are shape_errors naming gru_cell, backward without training forward a state_error")
{
    xrnn::random_engine rng(4);
    xrnn::gru_cell<float, 3, 4> cell(rng);
    xt::xtensor<float, 2> x({2, 3}, 1.0f);
    xrnn::gru_step_state<float> prev{xt::xtensor<float, 2>({2, 5}, 0.0f)};
    CHECK_THROWS_WITH_AS(cell.forward(x, prev), "gru_cell: previous h expected shape (2, 4) but got (2, 5)",
                         xrnn::shape_error);
    prev.h = xt::zeros<float>({2, 4});
    const auto next = cell.forward(x, prev);
    CHECK_THROWS_WITH_AS(cell.backward(next), "gru_cell::backward: call forward(x, mode::training) before backward",
                         xrnn::state_error);
}
