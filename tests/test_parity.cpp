// Parity with PyTorch: outputs and gradients of every layer and loss, optimizer steps, and a short end-to-end
// training run, against tests/fixtures/*.txt (made by tests/fixtures/make_fixtures.py with torch.float64).
// Each case runs in double (relative error < 1e-10) and in float (< 1e-5).
#include <cmath>
#include <string>

#include <doctest/doctest.h>

#include <xrnn/xrnn.hpp>

#include "support/fixture.hpp"

namespace
{
    template <class T>
    constexpr double tolerance = std::is_same<T, float>::value ? 1e-5 : 1e-10;

    /// ||got - expected|| / ||expected|| (absolute when expected is zero).
    template <class A, class B>
    double relative_difference(const A& got, const B& expected)
    {
        REQUIRE(got.size() == expected.size());
        double diff = 0.0;
        double norm = 0.0;
        for (std::size_t j = 0; j < got.size(); ++j)
        {
            const double e = static_cast<double>(expected.data()[j]);
            const double d = static_cast<double>(got.data()[j]) - e;
            diff += d * d;
            norm += e * e;
        }
        return norm > 0.0 ? std::sqrt(diff / norm) : std::sqrt(diff);
    }

    template <class T, class Got>
    void check_close(const Got& got, const xrnn_test::fixture& fx, const std::string& name)
    {
        INFO(fx.path(), ": ", name);
        const auto expected = fx.tensor<double, Got::rank>(name);
        REQUIRE(std::equal(got.shape().begin(), got.shape().end(), expected.shape().begin()));
        CHECK(relative_difference(got, expected) < tolerance<T>);
    }

    template <class T>
    void check_close_scalar(T got, const xrnn_test::fixture& fx, const std::string& name)
    {
        INFO(fx.path(), ": ", name);
        const double expected = fx.scalar<double>(name);
        CHECK(std::abs(got - expected) <= tolerance<T> * std::max(1.0, std::abs(expected)));
    }

    /// Sets every parameter of a layer from the fixture tensor of the same name (with an optional prefix).
    template <class Layer>
    void load_parameters(Layer& layer, const xrnn_test::fixture& fx, const std::string& prefix = "")
    {
        using T = typename Layer::value_type;
        layer.for_each_parameter([&](const auto& name, auto& value, auto&) {
            constexpr std::size_t rank = std::decay_t<decltype(value)>::rank;
            value = fx.tensor<T, rank>(prefix + std::string(name));
        });
    }

    /// Checks every parameter gradient against "grad.<prefix><name>".
    template <class Layer>
    void check_gradients(Layer& layer, const xrnn_test::fixture& fx, const std::string& prefix = "")
    {
        using T = typename Layer::value_type;
        layer.for_each_parameter([&](const auto& name, auto&, auto& grad) {
            check_close<T>(grad, fx, "grad." + prefix + std::string(name));
        });
    }

    template <class Layer>
    void check_recurrent_case(const std::string& file)
    {
        using T = typename Layer::value_type;
        const xrnn_test::fixture fx(xrnn_test::fixture_path(file));
        xrnn::random_engine rng(0);
        Layer layer(rng);
        load_parameters(layer, fx);
        typename Layer::state_type initial;
        initial.h = fx.tensor<T, 3>("h0");
        if constexpr (Layer::has_cell_state)
        {
            initial.c = fx.tensor<T, 3>("c0");
        }
        xrnn::zero_grad(layer);
        const auto& y = layer.forward(fx.tensor<T, 3>("x"), initial, xrnn::mode::training);
        check_close<T>(y, fx, "y");
        check_close<T>(layer.final_state().h, fx, "h_n");
        if constexpr (Layer::has_cell_state)
        {
            check_close<T>(layer.final_state().c, fx, "c_n");
        }
        const auto& dx = layer.backward(fx.tensor<T, 3>("dy"));
        check_close<T>(dx, fx, "grad.x");
        check_gradients(layer, fx);
        check_close<T>(layer.initial_state_gradient().h, fx, "grad.h0");
        if constexpr (Layer::has_cell_state)
        {
            check_close<T>(layer.initial_state_gradient().c, fx, "grad.c0");
        }
    }

    /// One parameter tensor as a "layer", to drive the optimizers with fixture gradients.
    template <class T, std::size_t N = 2>
    struct single_tensor
    {
        using value_type = T;
        xt::xtensor<T, N> value;
        xt::xtensor<T, N> grad;

        template <class F>
        void for_each_parameter(F&& f)
        {
            f("w", value, grad);
        }
    };

    template <class T, class Optimizer>
    void check_optimizer(Optimizer optimizer, const xrnn_test::fixture& fx, const std::string& prefix)
    {
        single_tensor<T> param{fx.tensor<T, 2>("w0"), {}};
        for (int k = 1; k <= 3; ++k)
        {
            param.grad = fx.tensor<T, 2>("g" + std::to_string(k));
            optimizer.step(param);
            check_close<T>(param.value, fx, prefix + ".w" + std::to_string(k));
        }
    }
}  // namespace

#define XRNN_BOTH_TYPES float, double

TEST_CASE_TEMPLATE("parity: rnn (tanh) output, final state and all gradients match torch.nn.RNN", T, XRNN_BOTH_TYPES)
{
    check_recurrent_case<xrnn::rnn<T, 3, 4, 1, xrnn::output::sequence>>("rnn_tanh.txt");
}

TEST_CASE_TEMPLATE("parity: stacked relu rnn matches torch.nn.RNN(num_layers=2, nonlinearity='relu')", T,
                   XRNN_BOTH_TYPES)
{
    check_recurrent_case<xrnn::rnn<T, 3, 4, 2, xrnn::output::sequence, xrnn::nonlinearity::relu>>(
        "rnn_relu_stacked.txt");
}

TEST_CASE_TEMPLATE("parity: lstm matches torch.nn.LSTM", T, XRNN_BOTH_TYPES)
{
    check_recurrent_case<xrnn::lstm<T, 3, 4, 1, xrnn::output::sequence>>("lstm.txt");
}

TEST_CASE_TEMPLATE("parity: stacked lstm matches torch.nn.LSTM(num_layers=2)", T, XRNN_BOTH_TYPES)
{
    check_recurrent_case<xrnn::lstm<T, 3, 4, 2, xrnn::output::sequence>>("lstm_stacked.txt");
}

TEST_CASE_TEMPLATE("parity: gru matches torch.nn.GRU (b_in and b_hn apart)", T, XRNN_BOTH_TYPES)
{
    check_recurrent_case<xrnn::gru<T, 3, 4, 1, xrnn::output::sequence>>("gru.txt");
}

TEST_CASE_TEMPLATE("parity: stacked gru matches torch.nn.GRU(num_layers=2)", T, XRNN_BOTH_TYPES)
{
    check_recurrent_case<xrnn::gru<T, 3, 4, 2, xrnn::output::sequence>>("gru_stacked.txt");
}

TEST_CASE_TEMPLATE("parity: one gru_cell step and its gradients match torch.nn.GRUCell", T, XRNN_BOTH_TYPES)
{
    const xrnn_test::fixture fx(xrnn_test::fixture_path("gru_cell.txt"));
    xrnn::random_engine rng(0);
    xrnn::gru_cell<T, 3, 4> cell(rng);
    load_parameters(cell, fx);
    const xrnn::gru_step_state<T> prev{fx.tensor<T, 2>("h")};
    const auto x = fx.tensor<T, 2>("x");
    check_close<T>(cell.forward(x, prev).h, fx, "h_next");  // inference
    xrnn::zero_grad(cell);
    check_close<T>(cell.forward(x, prev, xrnn::mode::training).h, fx, "h_next");
    const auto& grads = cell.backward(xrnn::gru_step_state<T>{fx.tensor<T, 2>("dh")});
    check_close<T>(grads.dx, fx, "grad.x");
    check_close<T>(grads.d_prev.h, fx, "grad.h");
    check_gradients(cell, fx);
}

TEST_CASE_TEMPLATE("parity: embedding forward and scattered gradient match torch.nn.Embedding", T, XRNN_BOTH_TYPES)
{
    const xrnn_test::fixture fx(xrnn_test::fixture_path("embedding.txt"));
    xrnn::random_engine rng(0);
    xrnn::embedding<T, 7, 3> layer(rng);
    load_parameters(layer, fx);
    xrnn::zero_grad(layer);
    check_close<T>(layer.forward(fx.tensor<int, 2>("ids"), xrnn::mode::training), fx, "y");
    layer.backward(fx.tensor<T, 3>("dy"));
    check_gradients(layer, fx);
}

TEST_CASE_TEMPLATE("parity: dense on (B, In) and on (S, B, In) matches torch.nn.Linear", T, XRNN_BOTH_TYPES)
{
    for (const char* file : {"dense.txt", "dense3.txt"})
    {
        const xrnn_test::fixture fx(xrnn_test::fixture_path(file));
        xrnn::random_engine rng(0);
        xrnn::dense<T, 4, 3> layer(rng);
        load_parameters(layer, fx);
        xrnn::zero_grad(layer);
        if (fx.shape("x").size() == 2)
        {
            check_close<T>(layer.forward(fx.tensor<T, 2>("x")), fx, "y");
            check_close<T>(layer.backward(fx.tensor<T, 2>("dy")), fx, "grad.x");
        }
        else
        {
            check_close<T>(layer.forward(fx.tensor<T, 3>("x")), fx, "y");
            check_close<T>(layer.backward(fx.tensor<T, 3>("dy")), fx, "grad.x");
        }
        check_gradients(layer, fx);
    }
}

TEST_CASE_TEMPLATE("parity: losses and their gradients match PyTorch (MSE, BCE with logits, cross-entropy)", T,
                   XRNN_BOTH_TYPES)
{
    const xrnn_test::fixture fx(xrnn_test::fixture_path("loss.txt"));
    xt::xtensor<T, 2> grad;
    check_close_scalar<T>(
        xrnn::mean_squared_error(fx.tensor<T, 2>("mse.pred"), fx.tensor<T, 2>("mse.target"), &grad), fx, "mse.loss");
    check_close<T>(grad, fx, "mse.grad.pred");
    check_close_scalar<T>(xrnn::binary_cross_entropy_with_logits(fx.tensor<T, 2>("bce.logits"),
                                                                 fx.tensor<T, 2>("bce.target"), &grad),
                          fx, "bce.loss");
    check_close<T>(grad, fx, "bce.grad.logits");
    check_close_scalar<T>(
        xrnn::softmax_cross_entropy(fx.tensor<T, 2>("ce.logits"), fx.tensor<int, 1>("ce.target"), &grad), fx,
        "ce.loss");
    check_close<T>(grad, fx, "ce.grad.logits");
}

TEST_CASE_TEMPLATE("parity: three optimizer steps match torch.optim (Adam, SGD, RMSprop)", T, XRNN_BOTH_TYPES)
{
    const xrnn_test::fixture fx(xrnn_test::fixture_path("optim.txt"));
    for (const std::string prefix : {"adam", "adam_wd"})
    {
        check_optimizer<T>(xrnn::adam<T>(fx.scalar<double>(prefix + ".lr"), fx.scalar<double>(prefix + ".beta1"),
                                         fx.scalar<double>(prefix + ".beta2"), fx.scalar<double>(prefix + ".eps"),
                                         fx.scalar<double>(prefix + ".weight_decay")),
                           fx, prefix);
    }
    for (const std::string prefix : {"sgd", "sgd_nesterov"})
    {
        check_optimizer<T>(xrnn::sgd<T>(fx.scalar<double>(prefix + ".lr"), fx.scalar<double>(prefix + ".momentum"),
                                        fx.scalar<double>(prefix + ".nesterov") != 0.0),
                           fx, prefix);
    }
    check_optimizer<T>(xrnn::rmsprop<T>(fx.scalar<double>("rmsprop.lr"), fx.scalar<double>("rmsprop.alpha"),
                                        fx.scalar<double>("rmsprop.eps")),
                       fx, "rmsprop");
}

TEST_CASE_TEMPLATE("parity: gradient clipping by global norm and by value matches torch.nn.utils", T, XRNN_BOTH_TYPES)
{
    const xrnn_test::fixture fx(xrnn_test::fixture_path("optim.txt"));
    single_tensor<T> a{{}, fx.tensor<T, 2>("ga")};
    single_tensor<T, 1> b{{}, fx.tensor<T, 1>("gb")};
    check_close_scalar<T>(static_cast<T>(xrnn::clip_grad_norm(fx.scalar<double>("clip.max_norm"), a, b)), fx,
                          "clip.total_norm");
    check_close<T>(a.grad, fx, "clip.ga");
    check_close<T>(b.grad, fx, "clip.gb");

    a.grad = fx.tensor<T, 2>("ga");
    b.grad = fx.tensor<T, 1>("gb");
    xrnn::clip_grad_value(fx.scalar<double>("clipv.clip_value"), a, b);
    check_close<T>(a.grad, fx, "clipv.ga");
    check_close<T>(b.grad, fx, "clipv.gb");
}

namespace
{
    /// Embedding(6, 3) -> Recurrent(3, 4) -> Dense(4, 1), BCE on logits, three Adam steps, against the fixture.
    template <class T, class Recurrent>
    void check_model_adam(const std::string& file)
    {
        const xrnn_test::fixture fx(xrnn_test::fixture_path(file));
        xrnn::random_engine rng(0);
        xrnn::embedding<T, 6, 3> emb(rng);
        Recurrent recurrent(rng);
        xrnn::dense<T, 4, 1> head(rng);
        load_parameters(emb, fx, "emb.");
        load_parameters(recurrent, fx);
        load_parameters(head, fx, "dense.");
        const auto ids = fx.tensor<int, 2>("ids");
        const auto labels = fx.tensor<T, 2>("labels");
        xrnn::adam<T> optimizer(fx.scalar<double>("adam.lr"), fx.scalar<double>("adam.beta1"),
                                fx.scalar<double>("adam.beta2"), fx.scalar<double>("adam.eps"));
        xt::xtensor<T, 2> dlogits;
        for (int step = 1; step <= 3; ++step)
        {
            xrnn::zero_grad(emb, recurrent, head);
            const auto& embedded = emb.forward(ids, xrnn::mode::training);
            const auto& logits = head.forward(recurrent.forward(embedded, xrnn::mode::training), xrnn::mode::training);
            const T loss = xrnn::binary_cross_entropy_with_logits(logits, labels, &dlogits);
            check_close_scalar<T>(loss, fx, "loss" + std::to_string(step));
            emb.backward(recurrent.backward(head.backward(dlogits)));
            optimizer.step(emb, recurrent, head);
        }
        // three updates compound rounding: float within 1e-5 relative still (checked per tensor)
        const auto check_final = [&](auto& layer, const std::string& prefix) {
            layer.for_each_parameter([&](const auto& name, auto& value, auto&) {
                check_close<T>(value, fx, "final." + prefix + std::string(name));
            });
        };
        check_final(emb, "emb.");
        check_final(recurrent, "");
        check_final(head, "dense.");
    }
}  // namespace

TEST_CASE_TEMPLATE("parity: embedding -> lstm -> dense trained 3 Adam steps with BCE matches PyTorch", T,
                   XRNN_BOTH_TYPES)
{
    check_model_adam<T, xrnn::lstm<T, 3, 4>>("model_adam.txt");
}

TEST_CASE_TEMPLATE("parity: embedding -> gru -> dense trained 3 Adam steps with BCE matches PyTorch", T,
                   XRNN_BOTH_TYPES)
{
    check_model_adam<T, xrnn::gru<T, 3, 4>>("model_adam_gru.txt");
}
