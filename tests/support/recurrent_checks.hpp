// Gradient checks shared by the rnn and lstm layer tests: every parameter, the input and the initial states
// of a recurrent layer, against central differences of loss = sum(y * r).
#ifndef XRNN_TEST_SUPPORT_RECURRENT_CHECKS_HPP
#define XRNN_TEST_SUPPORT_RECURRENT_CHECKS_HPP

#include <cstddef>
#include <vector>

#include <doctest/doctest.h>
#include <xtensor/xtensor.hpp>

#include <xrnn/xrnn.hpp>

#include "support/gradcheck.hpp"

namespace xrnn_test
{
    template <class Layer>
    typename Layer::state_type random_state(std::size_t batch, std::uint64_t seed)
    {
        typename Layer::state_type state;
        state.h = random_tensor<double, 3>({Layer::num_layers, batch, Layer::hidden_size}, seed, -0.5, 0.5);
        if constexpr (Layer::has_cell_state)
        {
            state.c = random_tensor<double, 3>({Layer::num_layers, batch, Layer::hidden_size}, seed + 1, -0.5, 0.5);
        }
        return state;
    }

    template <class Layer>
    auto output_shape(std::size_t steps, std::size_t batch)
    {
        if constexpr (Layer::output_kind == xrnn::output::last)
        {
            return std::array<std::size_t, 2>{batch, Layer::hidden_size};
        }
        else
        {
            return std::array<std::size_t, 3>{steps, batch, Layer::hidden_size};
        }
    }

    /// Checks dW, dx and the initial-state gradients of a fresh Layer(options) on S steps and batch B.
    template <class Layer>
    void check_recurrent_gradients(const xrnn::recurrent_options& options, std::size_t steps, std::size_t batch,
                                   bool with_initial_state)
    {
        xrnn::random_engine rng(42);
        const Layer pristine(rng, options);
        auto x = random_tensor<double, 3>({steps, batch, Layer::input_size}, 7);
        auto r = random_tensor<double, Layer::output_kind == xrnn::output::last ? 2 : 3>(
            output_shape<Layer>(steps, batch), 8);
        auto initial = random_state<Layer>(batch, 9);

        auto loss_of = [&](Layer& layer) {
            const auto& y = with_initial_state ? layer.forward(x, initial, xrnn::mode::training)
                                               : layer.forward(x, xrnn::mode::training);
            return projected(y, r);
        };

        Layer analytic = pristine;
        xrnn::zero_grad(analytic);
        loss_of(analytic);
        const xt::xtensor<double, 3> dx = analytic.backward(r);

        for (const auto& e : check_parameter_gradients(pristine, analytic, loss_of))
        {
            INFO("parameter ", e.name);
            CHECK(e.error < gradcheck_tolerance);
        }
        {
            INFO("input x");
            CHECK(input_gradient_error(pristine, x, dx, loss_of) < gradcheck_tolerance);
        }
        if (with_initial_state)
        {
            const auto& d_initial = analytic.initial_state_gradient();
            INFO("initial h");
            CHECK(input_gradient_error(pristine, initial.h, d_initial.h, loss_of) < gradcheck_tolerance);
            if constexpr (Layer::has_cell_state)
            {
                INFO("initial c");
                CHECK(input_gradient_error(pristine, initial.c, d_initial.c, loss_of) < gradcheck_tolerance);
            }
        }
    }

    /// Truncated BPTT with k steps equals the exact gradient of the same sequence cut into chunks of k steps,
    /// aligned at its end, with each chunk starting from the previous chunk's final state held constant.
    template <class Layer>
    void check_truncated_gradients(std::size_t steps, std::size_t batch, std::size_t k)
    {
        xrnn::recurrent_options options;
        options.bptt_steps = k;
        xrnn::random_engine rng(43);
        const Layer pristine(rng, options);
        auto x = random_tensor<double, 3>({steps, batch, Layer::input_size}, 17);
        auto r = random_tensor<double, Layer::output_kind == xrnn::output::last ? 2 : 3>(
            output_shape<Layer>(steps, batch), 18);

        // chunk boundaries aligned at the end: [0, first), [first, first + k), ...
        std::vector<std::size_t> starts;
        for (std::size_t end = steps; end > 0; end = end > k ? end - k : 0)
        {
            starts.insert(starts.begin(), end > k ? end - k : 0);
        }
        auto chunk_input = [&](std::size_t c) {
            const std::size_t begin = starts[c];
            const std::size_t end = c + 1 < starts.size() ? starts[c + 1] : steps;
            xt::xtensor<double, 3> part({end - begin, batch, Layer::input_size});
            std::copy(x.data() + begin * batch * Layer::input_size, x.data() + end * batch * Layer::input_size,
                      part.data());
            return part;
        };
        // the states entering each chunk, computed once with the unperturbed weights (held constant)
        std::vector<typename Layer::state_type> entry_states;
        {
            Layer runner = pristine;
            entry_states.push_back(random_state<Layer>(batch, 0));
            xt::xtensor<double, 3> zero = xt::zeros<double>({Layer::num_layers, batch, Layer::hidden_size});
            entry_states[0].h = zero;
            if constexpr (Layer::has_cell_state)
            {
                entry_states[0].c = zero;
            }
            for (std::size_t c = 0; c + 1 < starts.size(); ++c)
            {
                runner.forward(chunk_input(c), entry_states[c], xrnn::mode::training);
                entry_states.push_back(runner.final_state());
            }
        }
        auto chunked_loss = [&](Layer& layer) {
            double total = 0.0;
            for (std::size_t c = 0; c < starts.size(); ++c)
            {
                const auto& y = layer.forward(chunk_input(c), entry_states[c], xrnn::mode::training);
                if constexpr (Layer::output_kind == xrnn::output::last)
                {
                    if (c + 1 == starts.size())
                    {
                        total += projected(y, r);
                    }
                }
                else
                {
                    const std::size_t width = batch * Layer::hidden_size;
                    for (std::size_t j = 0; j < y.size(); ++j)
                    {
                        total += y.data()[j] * r.data()[starts[c] * width + j];
                    }
                }
            }
            return total;
        };

        Layer analytic = pristine;
        xrnn::zero_grad(analytic);
        analytic.forward(x, xrnn::mode::training);
        const xt::xtensor<double, 3> dx = analytic.backward(r);

        for (const auto& e : check_parameter_gradients(pristine, analytic, chunked_loss))
        {
            INFO("truncated, parameter ", e.name);
            CHECK(e.error < gradcheck_tolerance);
        }
        // dx of a chunk through the constant entry state of the next chunk is cut, so the chunked loss's input
        // gradient is the truncated one too.
        INFO("truncated, input x");
        CHECK(input_gradient_error(pristine, x, dx, chunked_loss) < gradcheck_tolerance);
    }
}  // namespace xrnn_test

#endif
