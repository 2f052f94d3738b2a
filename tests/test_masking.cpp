// Variable-length sequences (recurrent_masking.hpp (M1)-(M4), recurrent_stack.hpp (M5), (M6)): a padded batch with
// one length per sequence gives what each sequence gives alone (outputs, final states, dx and every parameter
// gradient), on rnn, lstm and gru, stacked, with truncated BPTT, on the register-tiled path and (built with
// XRNN_REGISTER_BLOCKED_MAX_BYTES=0 as test_masking_blas) the BLAS path, on 1, 2 and 3 threads; with dropout the
// padding has no influence and central differences agree.
#include <cmath>
#include <cstddef>
#include <cstring>
#include <functional>
#include <numeric>
#include <algorithm>
#include <vector>

#include <doctest/doctest.h>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <xrnn/layers/gru.hpp>
#include <xrnn/layers/lstm.hpp>
#include <xrnn/layers/rnn.hpp>
#include <xrnn/optim.hpp>
#include <xrnn/threads.hpp>

#include "support/gradcheck.hpp"

namespace
{
    using xrnn::output;

    struct default_threads_after
    {
        ~default_threads_after()
        {
            xrnn::set_num_threads(0);
        }
    };

    /// Lengths in [1, S] from a fixed seed, with S and 1 among them.
    std::vector<std::size_t> some_lengths(std::size_t batch, std::size_t steps, std::uint64_t seed)
    {
        xrnn::random_engine rng(seed);
        std::vector<std::size_t> lengths(batch);
        for (auto& l : lengths)
        {
            l = 1 + static_cast<std::size_t>(rng.uniform(0.0, 1.0) * static_cast<double>(steps)) % steps;
        }
        lengths[0] = steps;
        lengths[batch > 2 ? 2 : 0] = 1;
        return lengths;
    }

    template <class Layer>
    using dy_type = xt::xtensor<double, Layer::output_kind == output::last ? 2 : 3>;

    template <class Layer>
    dy_type<Layer> random_dy(std::size_t steps, std::size_t batch, std::uint64_t seed)
    {
        if constexpr (Layer::output_kind == output::last)
        {
            return xrnn_test::random_tensor<double, 2>({batch, Layer::hidden_size}, seed);
        }
        else
        {
            return xrnn_test::random_tensor<double, 3>({steps, batch, Layer::hidden_size}, seed);
        }
    }

    template <class Layer>
    std::vector<double> gradients_of(Layer& layer)
    {
        std::vector<double> all;
        layer.for_each_parameter([&](const auto&, auto&, auto& grad) { all.insert(all.end(), grad.begin(), grad.end()); });
        return all;
    }

    double scale_of(const std::vector<double>& v)
    {
        double m = 1.0;
        for (double x : v)
        {
            m = std::max(m, std::abs(x));
        }
        return m;
    }

    /// Every result of a padded batch with lengths equals that of each sequence run alone, cut to its length.
    template <class Layer>
    void check_padded_equals_alone(const xrnn::recurrent_options& options, std::size_t steps, std::size_t batch)
    {
        constexpr std::size_t I = Layer::input_size;
        constexpr std::size_t H = Layer::hidden_size;
        constexpr std::size_t L = Layer::num_layers;
        constexpr double tol = 1e-12;
        xrnn::random_engine rng(42);
        const Layer pristine(rng, options);
        const auto x = xrnn_test::random_tensor<double, 3>({steps, batch, I}, 5);
        const auto dy = random_dy<Layer>(steps, batch, 6);
        const auto lengths = some_lengths(batch, steps, 7);

        Layer padded = pristine;
        xrnn::zero_grad(padded);
        const auto y = padded.forward(x, lengths, xrnn::mode::training);
        const auto final_state = padded.final_state();
        const auto dx = padded.backward(dy);
        const auto grads = gradients_of(padded);
        // inference gives the same outputs
        Layer inference = pristine;
        const auto y_inference = inference.forward(x, lengths);
        CHECK(xt::allclose(y_inference, y, 0.0, tol));

        std::vector<double> sum(grads.size(), 0.0);
        for (std::size_t b = 0; b < batch; ++b)
        {
            INFO("sequence ", b, " of length ", lengths[b]);
            const std::size_t n = lengths[b];
            xt::xtensor<double, 3> xb({n, 1, I});
            for (std::size_t t = 0; t < n; ++t)
            {
                std::copy(x.data() + (t * batch + b) * I, x.data() + (t * batch + b + 1) * I, xb.data() + t * I);
            }
            Layer alone = pristine;
            xrnn::zero_grad(alone);
            const auto yb = alone.forward(xb, xrnn::mode::training);
            dy_type<Layer> dyb;
            double worst = 0.0;
            if constexpr (Layer::output_kind == output::last)
            {
                dyb = xt::xtensor<double, 2>({1, H});
                std::copy(dy.data() + b * H, dy.data() + (b + 1) * H, dyb.data());
                for (std::size_t j = 0; j < H; ++j)
                {
                    worst = std::max(worst, std::abs(y(b, j) - yb(0, j)));
                }
            }
            else
            {
                dyb = xt::xtensor<double, 3>({n, 1, H});
                for (std::size_t t = 0; t < steps; ++t)
                {
                    for (std::size_t j = 0; j < H; ++j)
                    {
                        if (t < n)
                        {
                            dyb(t, 0, j) = dy(t, b, j);
                        }
                        worst = std::max(worst, std::abs(y(t, b, j) - (t < n ? yb(t, 0, j) : 0.0)));  // (M5)
                    }
                }
            }
            CHECK(worst < tol);
            double state_worst = 0.0;
            for (std::size_t k = 0; k < L; ++k)
            {
                for (std::size_t j = 0; j < H; ++j)
                {
                    state_worst = std::max(state_worst,
                                           std::abs(final_state.h(k, b, j) - alone.final_state().h(k, 0, j)));
                    if constexpr (Layer::has_cell_state)
                    {
                        state_worst = std::max(state_worst,
                                               std::abs(final_state.c(k, b, j) - alone.final_state().c(k, 0, j)));
                    }
                }
            }
            CHECK(state_worst < tol);
            const auto dxb = alone.backward(dyb);
            double dx_worst = 0.0;
            for (std::size_t t = 0; t < steps; ++t)
            {
                for (std::size_t j = 0; j < I; ++j)
                {
                    dx_worst = std::max(dx_worst, std::abs(dx(t, b, j) - (t < n ? dxb(t, 0, j) : 0.0)));
                }
            }
            CHECK(dx_worst < tol);
            const auto gb = gradients_of(alone);
            for (std::size_t j = 0; j < sum.size(); ++j)
            {
                sum[j] += gb[j];
            }
        }
        double grad_worst = 0.0;
        for (std::size_t j = 0; j < sum.size(); ++j)
        {
            grad_worst = std::max(grad_worst, std::abs(grads[j] - sum[j]));
        }
        CHECK(grad_worst < tol * scale_of(sum));
    }

    template <class A, class B>
    bool same_bits(const A& a, const B& b)
    {
        return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(*a.data())) == 0;
    }

    /// With dropout (masks drawn per sequence, so the same for the same batch): the steps past each length have no
    /// influence: the batch padded to S and the same batch padded to S + 3 with other values agree.
    template <class Layer>
    void check_padding_has_no_influence(const xrnn::recurrent_options& options, std::size_t steps, std::size_t batch)
    {
        constexpr std::size_t I = Layer::input_size;
        constexpr std::size_t H = Layer::hidden_size;
        constexpr double tol = 1e-12;
        xrnn::random_engine rng(44);
        const Layer pristine(rng, options);
        const auto lengths = some_lengths(batch, steps, 8);
        auto x = xrnn_test::random_tensor<double, 3>({steps, batch, I}, 9);
        auto x_long = xrnn_test::random_tensor<double, 3>({steps + 3, batch, I}, 10, -5.0, 5.0);
        for (std::size_t b = 0; b < batch; ++b)
        {
            for (std::size_t t = 0; t < lengths[b]; ++t)
            {
                for (std::size_t j = 0; j < I; ++j)
                {
                    x_long(t, b, j) = x(t, b, j);
                }
            }
        }
        const auto dy = random_dy<Layer>(steps, batch, 11);
        auto dy_long = random_dy<Layer>(steps + 3, batch, 12);
        if constexpr (Layer::output_kind == output::last)
        {
            dy_long = dy;
        }
        else
        {
            for (std::size_t b = 0; b < batch; ++b)
            {
                for (std::size_t t = 0; t < lengths[b]; ++t)
                {
                    for (std::size_t j = 0; j < H; ++j)
                    {
                        dy_long(t, b, j) = dy(t, b, j);
                    }
                }
            }
        }
        Layer a = pristine;
        Layer b = pristine;
        xrnn::zero_grad(a);
        xrnn::zero_grad(b);
        const auto ya = a.forward(x, lengths, xrnn::mode::training);
        const auto yb = b.forward(x_long, lengths, xrnn::mode::training);
        if constexpr (Layer::output_kind == output::last)
        {
            CHECK(xt::allclose(ya, yb, 0.0, tol));
        }
        else
        {
            CHECK(xt::allclose(ya, xt::view(yb, xt::range(0, steps)), 0.0, tol));
            CHECK(xt::all(xt::equal(xt::view(yb, xt::range(steps, steps + 3)), 0.0)));
        }
        CHECK(xt::allclose(a.final_state().h, b.final_state().h, 0.0, tol));
        const auto dxa = a.backward(dy);
        const auto dxb = b.backward(dy_long);
        CHECK(xt::allclose(dxa, xt::view(dxb, xt::range(0, steps)), 0.0, tol));
        CHECK(xt::all(xt::equal(xt::view(dxb, xt::range(steps, steps + 3)), 0.0)));
        const auto ga = gradients_of(a);
        const auto gb = gradients_of(b);
        double worst = 0.0;
        for (std::size_t j = 0; j < ga.size(); ++j)
        {
            worst = std::max(worst, std::abs(ga[j] - gb[j]));
        }
        CHECK(worst < tol * scale_of(ga));
    }

    /// Central differences of sum(y * r) with lengths: every parameter and the input.
    template <class Layer>
    void check_masked_gradients(const xrnn::recurrent_options& options, std::size_t steps, std::size_t batch)
    {
        xrnn::random_engine rng(45);
        const Layer pristine(rng, options);
        auto x = xrnn_test::random_tensor<double, 3>({steps, batch, Layer::input_size}, 13);
        const auto r = random_dy<Layer>(steps, batch, 14);
        const auto lengths = some_lengths(batch, steps, 15);
        auto loss_of = [&](Layer& layer) {
            return xrnn_test::projected(layer.forward(x, lengths, xrnn::mode::training), r);
        };
        Layer analytic = pristine;
        xrnn::zero_grad(analytic);
        loss_of(analytic);
        const xt::xtensor<double, 3> dx = analytic.backward(r);
        for (const auto& e : xrnn_test::check_parameter_gradients(pristine, analytic, loss_of))
        {
            INFO("parameter ", e.name);
            CHECK(e.error < xrnn_test::gradcheck_tolerance);
        }
        INFO("input x");
        CHECK(xrnn_test::input_gradient_error(pristine, x, dx, loss_of) < xrnn_test::gradcheck_tolerance);
    }

    /// Same bits on 1, 2 and 3 threads with lengths (shapes that split over threads, see test_threads).
    template <class Layer>
    void check_threads(const xrnn::recurrent_options& options, std::size_t steps, std::size_t batch)
    {
        using T = typename Layer::value_type;
        default_threads_after restore;
        const auto lengths = some_lengths(batch, steps, 16);
        auto run = [&](std::size_t threads) {
            xrnn::set_num_threads(threads);
            xrnn::random_engine rng(21);
            Layer layer(rng, options);
            const auto x = xrnn_test::random_tensor<T, 3>({steps, batch, Layer::input_size}, 3);
            const auto dy = xrnn_test::random_tensor<T, 3>({steps, batch, Layer::hidden_size}, 4);
            std::vector<xt::xtensor<T, 3>> out;
            out.push_back(layer.forward(x, lengths, xrnn::mode::training));
            out.push_back(layer.final_state().h);
            out.push_back(layer.backward(dy));
            xt::xtensor<T, 3> g({1, 1, 0});
            std::vector<T> all;
            layer.for_each_parameter([&](const auto&, auto&, auto& grad) { all.insert(all.end(), grad.begin(), grad.end()); });
            g.resize({1, 1, all.size()});
            std::copy(all.begin(), all.end(), g.begin());
            out.push_back(g);
            out.push_back(layer.forward(x, lengths));
            return out;
        };
        const auto one = run(1);
        for (std::size_t threads : {2, 3})
        {
            const auto many = run(threads);
            for (std::size_t k = 0; k < one.size(); ++k)
            {
                INFO("threads ", threads, ", result ", k);
                CHECK(same_bits(many[k], one[k]));
            }
        }
    }

    /// (M7) A batch in any order equals the same batch given sorted by decreasing length (which the layer runs
    /// as it is): outputs, final states, dx, the initial states' gradients and the parameter gradients, from given
    /// initial states, and a second chunk fed the first's final states (which alias the layer's own buffer).
    template <class Layer>
    void check_any_order_equals_sorted(std::size_t steps, std::size_t batch)
    {
        constexpr std::size_t I = Layer::input_size;
        constexpr std::size_t H = Layer::hidden_size;
        constexpr std::size_t L = Layer::num_layers;
        constexpr double tol = 1e-12;
        xrnn::random_engine rng(3);
        const Layer pristine(rng);
        const auto lengths = some_lengths(batch, steps, 11);
        std::vector<std::size_t> order(batch);  // row i of the sorted batch is row order[i]
        std::iota(order.begin(), order.end(), std::size_t(0));
        std::stable_sort(order.begin(), order.end(),
                         [&](std::size_t a, std::size_t b) { return lengths[a] > lengths[b]; });
        REQUIRE(!std::is_sorted(lengths.begin(), lengths.end(), std::greater<>()));
        std::vector<std::size_t> sorted_lengths(batch);
        // rows of (steps, batch, width) or (batch, width) tensors in the sorted order
        auto sort_rows = [&](const auto& from) {
            auto to = from;
            const std::size_t blocks = from.dimension() == 2 ? 1 : from.shape()[0];
            const std::size_t width = from.size() / (blocks * batch);
            for (std::size_t t = 0; t < blocks; ++t)
            {
                for (std::size_t i = 0; i < batch; ++i)
                {
                    std::copy(from.data() + (t * batch + order[i]) * width,
                              from.data() + (t * batch + order[i] + 1) * width, to.data() + (t * batch + i) * width);
                }
            }
            return to;
        };
        for (std::size_t i = 0; i < batch; ++i)
        {
            sorted_lengths[i] = lengths[order[i]];
        }
        typename Layer::state_type initial;
        initial.h = xrnn_test::random_tensor<double, 3>({L, batch, H}, 12);
        typename Layer::state_type sorted_initial;
        sorted_initial.h = sort_rows(initial.h);
        if constexpr (Layer::has_cell_state)
        {
            initial.c = xrnn_test::random_tensor<double, 3>({L, batch, H}, 13);
            sorted_initial.c = sort_rows(initial.c);
        }
        const auto x = xrnn_test::random_tensor<double, 3>({steps, batch, I}, 14);
        const auto x2 = xrnn_test::random_tensor<double, 3>({steps, batch, I}, 15);
        const auto dy = random_dy<Layer>(steps, batch, 16);

        Layer any = pristine;
        Layer sorted = pristine;
        xrnn::zero_grad(any);
        xrnn::zero_grad(sorted);
        const auto y = any.forward(x, initial, lengths, xrnn::mode::training);
        const auto dx = any.backward(dy);
        const auto y_sorted = sorted.forward(sort_rows(x), sorted_initial, sorted_lengths, xrnn::mode::training);
        const auto dx_sorted = sorted.backward(sort_rows(dy));
        CHECK(xt::allclose(sort_rows(y), y_sorted, 0.0, tol));
        CHECK(xt::allclose(sort_rows(dx), dx_sorted, 0.0, tol));
        CHECK(xt::allclose(sort_rows(any.final_state().h), sorted.final_state().h, 0.0, tol));
        CHECK(xt::allclose(sort_rows(any.initial_state_gradient().h), sorted.initial_state_gradient().h, 0.0, tol));
        if constexpr (Layer::has_cell_state)
        {
            CHECK(xt::allclose(sort_rows(any.final_state().c), sorted.final_state().c, 0.0, tol));
            CHECK(xt::allclose(sort_rows(any.initial_state_gradient().c), sorted.initial_state_gradient().c, 0.0, tol));
        }
        const auto g = gradients_of(any);
        const auto g_sorted = gradients_of(sorted);
        const double scale = scale_of(g);
        for (std::size_t j = 0; j < g.size(); ++j)
        {
            REQUIRE(std::abs(g[j] - g_sorted[j]) <= tol * scale);
        }
        // streaming: the next chunk starts from final_state() itself
        const auto y2 = any.forward(x2, any.final_state(), lengths);
        const auto y2_sorted = sorted.forward(sort_rows(x2), sorted.final_state(), sorted_lengths);
        CHECK(xt::allclose(sort_rows(y2), y2_sorted, 0.0, tol));
        CHECK(xt::allclose(sort_rows(any.final_state().h), sorted.final_state().h, 0.0, tol));
    }
}  // namespace

TEST_CASE("masking: a batch in any order equals it sorted by length (M7), from initial states and streaming")
{
    check_any_order_equals_sorted<xrnn::lstm<double, 5, 7, 2, output::sequence>>(9, 19);
    check_any_order_equals_sorted<xrnn::lstm<double, 5, 7, 1, output::last>>(9, 19);
    check_any_order_equals_sorted<xrnn::gru<double, 5, 7, 2, output::last>>(9, 19);
    check_any_order_equals_sorted<xrnn::rnn<double, 5, 7, 2, output::sequence>>(9, 19);
}

TEST_CASE("masking: a padded batch equals each sequence alone (rnn, lstm, gru; stacked; last and sequence)")
{
    xrnn::recurrent_options plain;
    check_padded_equals_alone<xrnn::rnn<double, 5, 7, 2, output::sequence>>(plain, 9, 19);
    check_padded_equals_alone<xrnn::rnn<double, 5, 7, 1, output::last>>(plain, 9, 19);
    check_padded_equals_alone<xrnn::lstm<double, 5, 7, 2, output::sequence>>(plain, 9, 19);
    check_padded_equals_alone<xrnn::lstm<double, 6, 4, 2, output::last>>(plain, 11, 13);
    check_padded_equals_alone<xrnn::gru<double, 5, 7, 2, output::sequence>>(plain, 9, 19);
    check_padded_equals_alone<xrnn::gru<double, 6, 4, 2, output::last>>(plain, 11, 13);
    // a batch that splits over threads (see test_threads)
    default_threads_after restore;
    xrnn::set_num_threads(2);
    check_padded_equals_alone<xrnn::lstm<double, 24, 40, 2, output::sequence>>(plain, 40, 24);
}

TEST_CASE("masking: truncated BPTT counts from each sequence's own end (M4)")
{
    xrnn::recurrent_options truncated;
    truncated.bptt_steps = 3;
    check_padded_equals_alone<xrnn::lstm<double, 5, 7, 2, output::sequence>>(truncated, 10, 11);
    check_padded_equals_alone<xrnn::gru<double, 5, 7, 1, output::last>>(truncated, 10, 11);
    check_padded_equals_alone<xrnn::rnn<double, 5, 7, 1, output::last>>(truncated, 10, 11);
}

TEST_CASE("masking: with dropout the padding has no influence, and the gradients match central differences")
{
    xrnn::recurrent_options dropout;
    dropout.dropout = 0.25;
    dropout.recurrent_dropout = 0.3;
    check_padding_has_no_influence<xrnn::lstm<double, 5, 7, 2, output::sequence>>(dropout, 9, 19);
    check_padding_has_no_influence<xrnn::gru<double, 5, 7, 2, output::last>>(dropout, 9, 19);
    check_padding_has_no_influence<xrnn::rnn<double, 5, 7, 2, output::sequence>>(dropout, 9, 19);
    check_masked_gradients<xrnn::lstm<double, 3, 4, 2, output::sequence>>(dropout, 5, 6);
    check_masked_gradients<xrnn::gru<double, 3, 4, 2, output::last>>(dropout, 5, 6);
    check_masked_gradients<xrnn::rnn<double, 3, 4, 1, output::last>>(dropout, 5, 6);
    check_masked_gradients<xrnn::gru<double, 3, 4, 2, output::sequence>>(xrnn::recurrent_options{}, 5, 6);
}

TEST_CASE("masking: same bits on 1, 2 and 3 threads")
{
    xrnn::recurrent_options dropout;
    dropout.dropout = 0.2;
    dropout.recurrent_dropout = 0.3;
    check_threads<xrnn::lstm<float, 32, 32, 2, output::sequence>>(dropout, 64, 21);
    check_threads<xrnn::gru<double, 24, 40, 1, output::sequence>>(xrnn::recurrent_options{}, 50, 40);
}

TEST_CASE("masking: lengths outside [1, S] or of the wrong count are refused")
{
    xrnn::random_engine rng(1);
    xrnn::lstm<double, 3, 4> layer(rng);
    const xt::xtensor<double, 3> x = xt::zeros<double>({5, 2, 3});
    CHECK_THROWS_AS(layer.forward(x, std::vector<std::size_t>{5, 0}), xrnn::value_error);
    CHECK_THROWS_AS(layer.forward(x, std::vector<std::size_t>{6, 1}), xrnn::value_error);
    CHECK_THROWS_AS(layer.forward(x, std::vector<std::size_t>{5}), xrnn::shape_error);
    CHECK_NOTHROW(layer.forward(x, std::vector<std::size_t>{5, 1}));
}
