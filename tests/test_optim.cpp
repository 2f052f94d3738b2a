// optim.hpp: zero_grad, clip_grad_norm and clip_grad_value over several layers; sgd, adam and rmsprop minimise a
// quadratic; an optimizer refuses another parameter set after its first step. (Exact parity of the update rules
// with PyTorch is tested in test_parity.cpp.)
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include <doctest/doctest.h>

#include <xtensor/xmath.hpp>
#include <xtensor/xtensor.hpp>

#include <xrnn/layers/dense.hpp>
#include <xrnn/layers/embedding.hpp>
#include <xrnn/optim.hpp>
#include <xrnn/random.hpp>
#include <xrnn/threads.hpp>

namespace
{
    /// A one-parameter "layer" w with loss sum((w - target)^2).
    struct quadratic
    {
        xt::xtensor<double, 1> w;
        xt::xtensor<double, 1> grad;
        xt::xtensor<double, 1> target;
        std::string name = "w";

        explicit quadratic(xt::xtensor<double, 1> start, xt::xtensor<double, 1> goal)
            : w(std::move(start))
            , grad(xt::zeros_like(w))
            , target(std::move(goal))
        {
        }

        template <class F>
        void for_each_parameter(F&& f)
        {
            f(name.c_str(), w, grad);
        }

        double loss() const
        {
            return xt::sum(xt::square(w - target))();
        }

        /// Sets (not accumulates) the gradient 2 (w - target).
        void backward()
        {
            grad = 2.0 * (w - target);
        }
    };

    quadratic make_quadratic()
    {
        return quadratic(xt::xtensor<double, 1>{0.0, 0.0, 0.0, 0.0}, xt::xtensor<double, 1>{1.0, -2.0, 3.0, 0.5});
    }

    /// Runs 200 steps of opt on the quadratic; returns {initial loss, final loss, steps where the loss rose}.
    template <class Optimizer>
    std::array<double, 3> minimise(Optimizer& opt)
    {
        quadratic q = make_quadratic();
        const double initial = q.loss();
        double previous = initial;
        double rises = 0;
        for (int step = 0; step < 200; ++step)
        {
            q.backward();
            opt.step(q);
            rises += q.loss() > previous ? 1 : 0;
            previous = q.loss();
        }
        return {initial, q.loss(), rises};
    }

    /// Sets every gradient of the layers to a non-zero value.
    template <class... Layers>
    void fill_gradients(double value, Layers&... layers)
    {
        xrnn::for_each_parameter([&](const auto&, auto&, auto& grad) { grad.fill(value); }, layers...);
    }

    template <class... Layers>
    double gradient_norm(Layers&... layers)
    {
        double sum = 0.0;
        xrnn::for_each_parameter(
            [&](const auto&, auto&, auto& grad) {
                for (auto g : grad)
                {
                    sum += static_cast<double>(g) * static_cast<double>(g);
                }
            },
            layers...);
        return std::sqrt(sum);
    }
}  // namespace

TEST_CASE("optim: for_each_parameter visits every parameter of every layer in order")
{
    xrnn::random_engine rng(1);
    xrnn::dense<double, 3, 2> dense(rng);
    xrnn::embedding<double, 5, 3> embedding(rng);
    quadratic q = make_quadratic();
    std::string names;
    std::size_t values = 0;
    xrnn::for_each_parameter(
        [&](const auto& name, auto& value, auto& grad) {
            names += std::string(name) + " ";
            values += value.size();
            CHECK(grad.size() == value.size());
        },
        embedding, dense, q);
    CHECK(names == "w w b w ");
    CHECK(values == 15 + 6 + 2 + 4);
}

TEST_CASE("optim: zero_grad zeroes every gradient of several layers and leaves the weights alone")
{
    xrnn::random_engine rng(2);
    xrnn::dense<double, 3, 2> first(rng);
    xrnn::dense<float, 2, 4> second(rng, xrnn::init_scheme::pytorch);
    xrnn::embedding<double, 5, 3> embedding(rng);
    quadratic q = make_quadratic();
    fill_gradients(0.5, first, second, embedding, q);
    REQUIRE(gradient_norm(first, second, embedding, q) > 1.0);
    const auto w_before = first.p.w;
    const auto e_before = embedding.p.w;

    xrnn::zero_grad(first, second, embedding, q);
    CHECK(xt::all(xt::equal(first.dp.w, 0.0)));
    CHECK(xt::all(xt::equal(first.dp.b, 0.0)));
    CHECK(xt::all(xt::equal(second.dp.w, 0.0f)));
    CHECK(xt::all(xt::equal(second.dp.b, 0.0f)));
    CHECK(xt::all(xt::equal(embedding.dp.w, 0.0)));
    CHECK(xt::all(xt::equal(q.grad, 0.0)));
    CHECK(first.p.w == w_before);
    CHECK(embedding.p.w == e_before);

    // only the layers named are touched
    fill_gradients(0.5, first, q);
    xrnn::zero_grad(first);
    CHECK(xt::all(xt::equal(first.dp.w, 0.0)));
    CHECK(xt::all(xt::equal(q.grad, 0.5)));
}

TEST_CASE("optim: clip_grad_norm returns the global norm and leaves gradients below max_norm untouched")
{
    xrnn::random_engine rng(3);
    xrnn::dense<double, 3, 2> dense(rng);
    quadratic q = make_quadratic();
    fill_gradients(0.1, dense, q);
    q.grad = xt::xtensor<double, 1>{0.3, -0.4, 0.0, 0.2};
    const auto dense_before = dense.dp.w;
    const auto dense_before_b = dense.dp.b;
    const auto q_before = q.grad;
    const double expected = std::sqrt(8 * 0.01 + 0.09 + 0.16 + 0.04);  // 6 + 2 values of 0.1, and q's
    CHECK(xrnn::clip_grad_norm(1.0, dense, q) == doctest::Approx(expected).epsilon(1e-15));
    CHECK(dense.dp.w == dense_before);
    CHECK(q.grad == q_before);
    // just above the norm (beyond PyTorch's 1e-6 guard): untouched as well
    CHECK(xrnn::clip_grad_norm(expected + 1e-5, dense, q) == doctest::Approx(expected).epsilon(1e-15));
    CHECK(q.grad == q_before);
    CHECK(dense.dp.b == dense_before_b);
}

TEST_CASE("optim: clip_grad_norm scales all gradients together down to max_norm")
{
    xrnn::random_engine rng(4);
    xrnn::dense<double, 3, 2> dense(rng);
    quadratic q = make_quadratic();
    fill_gradients(1.0, dense, q);
    q.grad = xt::xtensor<double, 1>{3.0, 0.0, -4.0, 0.0};
    const double before = gradient_norm(dense, q);  // sqrt(8 + 25)
    CHECK(xrnn::clip_grad_norm(2.0, dense, q) == doctest::Approx(std::sqrt(33.0)).epsilon(1e-15));
    CHECK(gradient_norm(dense, q) == doctest::Approx(2.0).epsilon(1e-6));
    const double scale = 2.0 / (before + 1e-6);
    CHECK(q.grad(0) == doctest::Approx(3.0 * scale).epsilon(1e-15));
    CHECK(q.grad(2) == doctest::Approx(-4.0 * scale).epsilon(1e-15));
    CHECK(dense.dp.b(1) == doctest::Approx(scale).epsilon(1e-15));  // direction kept across layers
}

TEST_CASE("optim: clip_grad_value clamps every element to [-limit, limit]")
{
    quadratic q = make_quadratic();
    q.grad = xt::xtensor<double, 1>{3.0, -0.2, -4.0, 0.5};
    xrnn::clip_grad_value(0.5, q);
    const xt::xtensor<double, 1> expected = {0.5, -0.2, -0.5, 0.5};
    CHECK(q.grad == expected);
}

TEST_CASE("optim: sgd, with and without (Nesterov) momentum, minimises a quadratic in 200 steps")
{
    SUBCASE("plain")
    {
        xrnn::sgd<double> opt(0.1);
        const auto result = minimise(opt);
        CHECK(result[1] < 1e-12 * result[0]);
        CHECK(result[2] == 0);  // monotone
    }
    SUBCASE("momentum")
    {
        xrnn::sgd<double> opt(0.05, 0.9);
        const auto result = minimise(opt);
        CHECK(result[1] < 1e-6 * result[0]);
    }
    SUBCASE("nesterov")
    {
        xrnn::sgd<double> opt(0.05, 0.9, true);
        const auto result = minimise(opt);
        CHECK(result[1] < 1e-6 * result[0]);
    }
}

TEST_CASE("optim: adam minimises a quadratic in 200 steps and counts its steps")
{
    xrnn::adam<double> opt(0.1);
    CHECK(opt.steps() == 0);
    const auto result = minimise(opt);
    CHECK(result[1] < 1e-3 * result[0]);
    CHECK(opt.steps() == 200);
}

TEST_CASE("optim: rmsprop minimises a quadratic in 200 steps")
{
    xrnn::rmsprop<double> opt(0.02);
    const auto result = minimise(opt);
    CHECK(result[1] < 1e-3 * result[0]);
}

TEST_CASE("optim: the first steps follow the update rules")
{
    SUBCASE("sgd: p -= lr * g, and weight decay adds wd * p")
    {
        quadratic q = make_quadratic();
        q.w = xt::xtensor<double, 1>{1.0, 2.0, 3.0, 4.0};
        q.grad = xt::xtensor<double, 1>{1.0, -1.0, 0.0, 2.0};
        xrnn::sgd<double> opt(0.1, 0.0, false, 0.5);
        opt.step(q);
        const xt::xtensor<double, 1> expected = {1.0 - 0.1 * 1.5, 2.0 - 0.1 * 0.0, 3.0 - 0.1 * 1.5, 4.0 - 0.1 * 4.0};
        CHECK(xt::allclose(q.w, expected, 1e-15, 0.0));
    }
    SUBCASE("adam: the first step moves every parameter by lr against the sign of its gradient")
    {
        quadratic q = make_quadratic();
        q.grad = xt::xtensor<double, 1>{0.1, -5.0, 100.0, -0.25};
        xrnn::adam<double> opt(0.01);
        opt.step(q);
        const xt::xtensor<double, 1> expected = {-0.01, 0.01, -0.01, 0.01};
        CHECK(xt::allclose(q.w, expected, 1e-6, 0.0));
        CHECK(opt.steps() == 1);
    }
    SUBCASE("rmsprop: the first step is lr * g / (sqrt(1 - alpha) |g|)")
    {
        quadratic q = make_quadratic();
        q.grad = xt::xtensor<double, 1>{2.0, -3.0, 0.5, 1.0};
        xrnn::rmsprop<double> opt(0.01, 0.99);
        opt.step(q);
        const xt::xtensor<double, 1> expected = {-0.1, 0.1, -0.1, -0.1};
        CHECK(xt::allclose(q.w, expected, 1e-6, 0.0));
    }
}

TEST_CASE("optim: a gradient of zero leaves the weights where they are (no weight decay)")
{
    xrnn::random_engine rng(5);
    xrnn::dense<double, 3, 2> dense(rng, xrnn::init_scheme::pytorch);
    xrnn::zero_grad(dense);
    const auto w = dense.p.w;
    const auto b = dense.p.b;
    xrnn::adam<double> adam;
    xrnn::sgd<double> sgd(0.1, 0.9);
    xrnn::rmsprop<double> rmsprop;
    adam.step(dense);
    sgd.step(dense);
    rmsprop.step(dense);
    CHECK(dense.p.w == w);
    CHECK(dense.p.b == b);
}

TEST_CASE("optim: an optimizer used with another set or shape of parameters after its first step is a state_error")
{
    xrnn::random_engine rng(6);
    xrnn::dense<double, 3, 2> model(rng);
    xrnn::dense<double, 4, 2> wider(rng);
    xrnn::dense<double, 3, 2> same_shape(rng);
    xrnn::embedding<double, 3, 2> fewer(rng);  // only a "w" of shape (3, 2), no "b"
    xrnn::zero_grad(model, wider, same_shape, fewer);

    SUBCASE("adam")
    {
        xrnn::adam<double> opt;
        opt.step(model);
        CHECK_NOTHROW(opt.step(model));
        CHECK_NOTHROW(opt.step(same_shape));  // same names and sizes: indistinguishable, accepted
        CHECK_THROWS_WITH_AS(opt.step(wider),
                             "adam::step: parameter 0 is w with 8 values, but the state was made for w with 6; use "
                             "one optimizer per model",
                             xrnn::state_error);
        CHECK_THROWS_WITH_AS(opt.step(model, same_shape),
                             "adam::step: more parameters (w is parameter 2) than the 2 of the first step; use one optimizer per model",
                             xrnn::state_error);
        CHECK_THROWS_WITH_AS(opt.step(fewer),
                             "adam::step: 1 parameters, but the state was made for 2; use one optimizer per model",
                             xrnn::state_error);
    }
    SUBCASE("sgd")
    {
        xrnn::sgd<double> opt(0.1, 0.9);
        opt.step(model);
        CHECK_THROWS_AS(opt.step(wider), xrnn::state_error);
        CHECK_THROWS_AS(opt.step(model, same_shape), xrnn::state_error);
        CHECK_THROWS_AS(opt.step(fewer), xrnn::state_error);
    }
    SUBCASE("rmsprop")
    {
        xrnn::rmsprop<double> opt;
        opt.step(model);
        CHECK_THROWS_AS(opt.step(wider), xrnn::state_error);
        CHECK_THROWS_AS(opt.step(model, same_shape), xrnn::state_error);
        CHECK_THROWS_AS(opt.step(fewer), xrnn::state_error);
    }
    SUBCASE("a renamed parameter of the same size")
    {
        quadratic q = make_quadratic();
        xrnn::adam<double> opt;
        opt.step(q);
        q.name = "v";
        CHECK_THROWS_WITH_AS(opt.step(q),
                             "adam::step: parameter 0 is v with 4 values, but the state was made for w with 4; use "
                             "one optimizer per model",
                             xrnn::state_error);
    }
}

TEST_CASE("optim: optimizers work in float")
{
    xrnn::random_engine rng(7);
    xrnn::dense<float, 2, 1> layer(rng);
    xrnn::adam<float> opt(0.05);
    // fit y = 2 x0 - x1 + 0.5 by hand-written gradients of the mean squared error over four points
    const xt::xtensor<float, 2> x = {{0.0f, 0.0f}, {1.0f, 0.0f}, {0.0f, 1.0f}, {1.0f, 1.0f}};
    const xt::xtensor<float, 2> y = {{0.5f}, {2.5f}, {-0.5f}, {1.5f}};
    float loss = 0.0f;
    for (int step = 0; step < 500; ++step)
    {
        xrnn::zero_grad(layer);
        const xt::xtensor<float, 2> pred = layer.forward(x, xrnn::mode::training);
        loss = xt::mean(xt::square(pred - y))();
        layer.backward(xt::xtensor<float, 2>(0.5f * (pred - y)));
        opt.step(layer);
    }
    CHECK(loss < 1e-4f);
    CHECK(layer.p.w(0, 0) == doctest::Approx(2.0f).epsilon(0.01));
    CHECK(layer.p.w(1, 0) == doctest::Approx(-1.0f).epsilon(0.01));
    CHECK(layer.p.b(0) == doctest::Approx(0.5f).epsilon(0.01));
}

TEST_CASE("optim: a step refused for another model's parameters changes no weight and no step count")
{
    xrnn::random_engine rng(2);
    xrnn::dense<double, 3, 2> first(rng);
    xrnn::dense<double, 3, 2> same_shape(rng);
    xrnn::embedding<double, 4, 2> other(rng);
    xrnn::adam<double> optimizer;
    first.dp.w.fill(1.0);
    optimizer.step(first);
    // `same_shape` matches parameter 0 and 1, then `other` adds a third: refused before any update
    same_shape.dp.w.fill(1.0);
    const auto before = same_shape.p.w;
    CHECK_THROWS_AS(optimizer.step(same_shape, other), xrnn::state_error);
    CHECK(same_shape.p.w == before);
    CHECK(optimizer.steps() == 1);
}

TEST_CASE("optim: settings that would turn the weights into nan are refused where they are set, at a step and at restore")
{
    const double nan = std::nan("");
    const double inf = HUGE_VAL;
    // where they are set
    for (double lr : {nan, inf, -1e-3})
    {
        CAPTURE(lr);
        CHECK_THROWS_WITH_AS(xrnn::adam<double>{lr}, doctest::Contains("adam: learning_rate expected in [0, inf)"),
                             xrnn::value_error);
        CHECK_THROWS_AS(xrnn::sgd<double>{lr}, xrnn::value_error);
        CHECK_THROWS_AS(xrnn::rmsprop<double>{lr}, xrnn::value_error);
    }
    for (double beta : {-0.1, 1.0, 1.5, nan})
    {
        CAPTURE(beta);
        CHECK_THROWS_WITH_AS(xrnn::adam<double>(1e-3, beta), doctest::Contains("beta1 expected in [0, 1)"),
                             xrnn::value_error);
        CHECK_THROWS_WITH_AS(xrnn::adam<double>(1e-3, 0.9, beta), doctest::Contains("beta2 expected in [0, 1)"),
                             xrnn::value_error);
        CHECK_THROWS_WITH_AS(xrnn::rmsprop<double>(1e-3, beta), doctest::Contains("alpha expected in [0, 1)"),
                             xrnn::value_error);
    }
    for (double eps : {0.0, -1e-8, nan})
    {
        CAPTURE(eps);
        CHECK_THROWS_WITH_AS(xrnn::adam<double>(1e-3, 0.9, 0.999, eps), doctest::Contains("epsilon expected in (0, inf)"),
                             xrnn::value_error);
        CHECK_THROWS_AS(xrnn::rmsprop<double>(1e-3, 0.99, eps), xrnn::value_error);
    }
    CHECK_THROWS_AS(xrnn::sgd<double>(0.1, -0.5), xrnn::value_error);
    CHECK_THROWS_WITH_AS(xrnn::sgd<double>(0.1, 0.0, true), doctest::Contains("nesterov needs a momentum above 0"),
                         xrnn::value_error);
    CHECK_THROWS_AS(xrnn::adam<double>(1e-3, 0.9, 0.999, 1e-8, -0.1), xrnn::value_error);
    CHECK_NOTHROW(xrnn::adam<double>(0.0, 0.0, 0.0));  // all at their lower ends: allowed
    CHECK_NOTHROW(xrnn::sgd<double>(0.1, 0.9, true, 1e-4));

    // the fields are public: a value changed later is refused by the next step, before any weight changes
    quadratic q(xt::xtensor<double, 1>{1.0, 2.0}, xt::xtensor<double, 1>{0.0, 0.0});
    q.grad = {1.0, 1.0};
    xrnn::adam<double> adam(1e-2);
    adam.learning_rate = nan;
    CHECK_THROWS_WITH_AS(adam.step(q), doctest::Contains("adam::step: learning_rate expected in [0, inf) but is nan"),
                         xrnn::value_error);
    CHECK(q.w == xt::xtensor<double, 1>{1.0, 2.0});
    CHECK(adam.steps() == 0);
    adam.learning_rate = 1e-2;
    adam.step(q);
    CHECK(adam.steps() == 1);

    // a snapshot with such settings, or a step count near 2^64, is refused and changes nothing
    auto snapshot = adam.snapshot();
    snapshot.hyper[1] = 1.0;  // beta1
    CHECK_THROWS_WITH_AS(adam.restore(snapshot), doctest::Contains("adam::restore: beta1 expected in [0, 1)"),
                         xrnn::value_error);
    snapshot = adam.snapshot();
    snapshot.steps = ~std::uint64_t(0);
    CHECK_THROWS_WITH_AS(adam.restore(snapshot), doctest::Contains("expected a step count below 2^53"),
                         xrnn::value_error);
    CHECK(adam.steps() == 1);
    CHECK(adam.snapshot().hyper[1] == 0.9);
}

namespace
{
    /// Float parameters of a few sizes: a pack's tail (13), one part, and several parts over the threads.
    struct vectors
    {
        std::array<xt::xtensor<float, 1>, 3> values;
        std::array<xt::xtensor<float, 1>, 3> grads;

        vectors()
        {
            const std::size_t sizes[3] = {13, 1000, 3 * xrnn::detail::update_part_size + 5};
            xrnn::random_engine rng(17);
            for (std::size_t k = 0; k < 3; ++k)
            {
                values[k] = xt::xtensor<float, 1>::from_shape({sizes[k]});
                grads[k] = xt::xtensor<float, 1>::from_shape({sizes[k]});
                for (auto& v : values[k])
                {
                    v = static_cast<float>(rng.uniform(-1.0, 1.0));
                }
            }
        }

        /// New gradients for step `step` (different every step, some of them zero).
        void new_gradients(std::size_t step)
        {
            xrnn::random_engine rng(100 + step);
            for (auto& grad : grads)
            {
                for (auto& g : grad)
                {
                    g = rng.below(5) == 0 ? 0.0f : static_cast<float>(rng.uniform(-0.5, 0.5));
                }
            }
        }

        template <class F>
        void for_each_parameter(F&& f)
        {
            const char* names[3] = {"a", "b", "c"};
            for (std::size_t k = 0; k < 3; ++k)
            {
                f(names[k], values[k], grads[k]);
            }
        }
    };

    /// The update rules as optim.hpp wrote them before the fused steps: one xtensor expression per buffer.
    struct unfused
    {
        std::array<xt::xtensor<float, 1>, 3> m, v;
        std::size_t steps = 0;

        void adam(vectors& w, float lr, float b1, float b2, float eps, float wd)
        {
            ++steps;
            const double t = static_cast<double>(steps);
            const float step_size = static_cast<float>(lr / (1.0 - std::pow(double(b1), t)));
            const float bc2 = static_cast<float>(std::sqrt(1.0 - std::pow(double(b2), t)));
            for (std::size_t k = 0; k < 3; ++k)
            {
                auto& p = w.values[k];
                const auto& g = w.grads[k];
                if (steps == 1)
                {
                    m[k] = xt::zeros_like(p);
                    v[k] = xt::zeros_like(p);
                }
                m[k] = b1 * m[k] + (1.0f - b1) * (g + wd * p);
                v[k] = b2 * v[k] + (1.0f - b2) * xt::square(g + wd * p);
                p -= step_size * m[k] / (xt::sqrt(v[k]) / bc2 + eps);
            }
        }

        void rmsprop(vectors& w, float lr, float a, float eps, float wd)
        {
            ++steps;
            for (std::size_t k = 0; k < 3; ++k)
            {
                auto& p = w.values[k];
                const auto& g = w.grads[k];
                if (steps == 1)
                {
                    v[k] = xt::zeros_like(p);
                }
                v[k] = a * v[k] + (1.0f - a) * xt::square(g + wd * p);
                p -= lr * (g + wd * p) / (xt::sqrt(v[k]) + eps);
            }
        }

        void sgd(vectors& w, float lr, float mu, bool nesterov, float wd)
        {
            ++steps;
            for (std::size_t k = 0; k < 3; ++k)
            {
                auto& p = w.values[k];
                const auto& g = w.grads[k];
                if (mu == 0.0f)
                {
                    p -= lr * (g + wd * p);
                    continue;
                }
                v[k] = steps == 1 ? xt::xtensor<float, 1>(g + wd * p) : xt::xtensor<float, 1>(mu * v[k] + g + wd * p);
                p -= nesterov ? xt::xtensor<float, 1>(lr * (g + wd * p + mu * v[k])) : xt::xtensor<float, 1>(lr * v[k]);
            }
        }
    };

    /// Runs 6 steps of `fused` (an optimizer) and of `reference` on the same start and gradients, on 1 and on 3
    /// threads; the weights' changes agree to a few float roundings of the weights (a multiply and an add may be
    /// contracted into one FMA in one of them), and the fused results are bit-identical on 1 and 3 threads.
    template <class Fused, class Reference>
    void check_fused(Fused make_fused, Reference reference_step)
    {
        std::array<vectors, 2> runs;  // 1 thread, 3 threads
        for (std::size_t r = 0; r < 2; ++r)
        {
            xrnn::set_num_threads(r == 0 ? 1 : 3);
            auto optimizer = make_fused();
            for (std::size_t step = 1; step <= 6; ++step)
            {
                runs[r].new_gradients(step);
                optimizer.step(runs[r]);
            }
        }
        xrnn::set_num_threads(0);
        vectors expected;
        unfused reference;
        for (std::size_t step = 1; step <= 6; ++step)
        {
            expected.new_gradients(step);
            reference_step(reference, expected);
        }
        const vectors start;
        for (std::size_t k = 0; k < 3; ++k)
        {
            CHECK(runs[0].values[k] == runs[1].values[k]);
            float worst = 0.0f;  // relative to the change of the weight (about 1e-2), at least 1e-3
            for (std::size_t j = 0; j < expected.values[k].size(); ++j)
            {
                const float e = expected.values[k](j);
                const float change = std::max(1e-3f, std::abs(e - start.values[k](j)));
                worst = std::max(worst, std::abs(runs[0].values[k](j) - e) / change);
            }
            CHECK(worst < 1e-3f);  // float roundings of weights of size ~1: 1e-7 / 1e-3
            CHECK(!(runs[0].values[k] == start.values[k]));
        }
    }
}  // namespace

TEST_CASE("optim: the fused adam, rmsprop and sgd steps give the former unfused results, on any number of threads")
{
    // epsilon 1e-3, so that where it goes shows (the root mean squares are about 0.1)
    check_fused([] { return xrnn::adam<float>(1e-2, 0.8, 0.95, 1e-3, 0.01); },
                [](unfused& u, vectors& w) { u.adam(w, 1e-2f, 0.8f, 0.95f, 1e-3f, 0.01f); });
    check_fused([] { return xrnn::rmsprop<float>(1e-2, 0.9, 1e-3, 0.01); },
                [](unfused& u, vectors& w) { u.rmsprop(w, 1e-2f, 0.9f, 1e-3f, 0.01f); });
    check_fused([] { return xrnn::sgd<float>(1e-2); },
                [](unfused& u, vectors& w) { u.sgd(w, 1e-2f, 0.0f, false, 0.0f); });
    check_fused([] { return xrnn::sgd<float>(1e-2, 0.9, false, 0.01); },
                [](unfused& u, vectors& w) { u.sgd(w, 1e-2f, 0.9f, false, 0.01f); });
    check_fused([] { return xrnn::sgd<float>(1e-2, 0.9, true, 0.01); },
                [](unfused& u, vectors& w) { u.sgd(w, 1e-2f, 0.9f, true, 0.01f); });
}
