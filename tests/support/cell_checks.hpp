// Gradient check of one cell step (rnn_cell, lstm_cell): dW, dx and the previous-state gradients against
// central differences of loss = sum(h' * r_h) (+ sum(c' * r_c) for cells with a cell state).
#ifndef XRNN_TEST_SUPPORT_CELL_CHECKS_HPP
#define XRNN_TEST_SUPPORT_CELL_CHECKS_HPP

#include <doctest/doctest.h>

#include <xrnn/xrnn.hpp>

#include "support/gradcheck.hpp"

namespace xrnn_test
{
    template <class Cell>
    void check_cell_step_gradients(std::size_t batch, const xrnn::recurrent_options& options = {})
    {
        using state = typename Cell::state_type;
        constexpr std::size_t I = Cell::input_size;
        constexpr std::size_t H = Cell::hidden_size;
        xrnn::random_engine rng(21);
        const Cell pristine(rng, options);
        auto x = random_tensor<double, 2>({batch, I}, 1);
        state prev;
        state weights;  // the upstream gradient of the next state
        prev.h = random_tensor<double, 2>({batch, H}, 2, -0.5, 0.5);
        weights.h = random_tensor<double, 2>({batch, H}, 3);
        if constexpr (Cell::has_cell_state)
        {
            prev.c = random_tensor<double, 2>({batch, H}, 4, -0.5, 0.5);
            weights.c = random_tensor<double, 2>({batch, H}, 5);
        }
        auto loss_of = [&](Cell& cell) {
            const auto& next = cell.forward(x, prev, xrnn::mode::training);
            double loss = projected(next.h, weights.h);
            if constexpr (Cell::has_cell_state)
            {
                loss += projected(next.c, weights.c);
            }
            return loss;
        };
        Cell analytic = pristine;
        xrnn::zero_grad(analytic);
        loss_of(analytic);
        const auto grads = analytic.backward(weights);  // a copy: later forwards reuse the cell's buffers

        for (const auto& e : check_parameter_gradients(pristine, analytic, loss_of))
        {
            INFO("parameter ", e.name);
            CHECK(e.error < gradcheck_tolerance);
        }
        CHECK(input_gradient_error(pristine, x, grads.dx, loss_of) < gradcheck_tolerance);
        CHECK(input_gradient_error(pristine, prev.h, grads.d_prev.h, loss_of) < gradcheck_tolerance);
        if constexpr (Cell::has_cell_state)
        {
            CHECK(input_gradient_error(pristine, prev.c, grads.d_prev.c, loss_of) < gradcheck_tolerance);
        }
    }
}  // namespace xrnn_test

#endif
