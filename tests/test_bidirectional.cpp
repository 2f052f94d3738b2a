// Bidirectional layers (layers/bidirectional.hpp, (BD1)-(BD6)) and packed sequences against PyTorch
// (tests/fixtures/bi*.txt, *_packed.txt: nn.RNN/LSTM/GRU with bidirectional=True and pack_padded_sequence with
// enforce_sorted=False): outputs, h_n, c_n and every gradient, float and double, sequence and last-step outputs;
// the merge modes against central differences; the same bits on 1, 2 and 3 threads.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xtensor/xview.hpp>

#include <xrnn/xrnn.hpp>

#include "support/fixture.hpp"
#include "support/gradcheck.hpp"

namespace
{
    using xrnn::output;

    template <class T>
    constexpr double tolerance = std::is_same<T, float>::value ? 1e-5 : 1e-10;

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

    std::vector<std::size_t> lengths_of(const xrnn_test::fixture& fx, std::size_t steps, std::size_t batch)
    {
        if (!fx.has("lengths"))
        {
            return std::vector<std::size_t>(batch, steps);
        }
        const auto l = fx.tensor<int, 1>("lengths");
        return std::vector<std::size_t>(l.begin(), l.end());
    }

    /// Layer (output::sequence) and LastLayer (output::last, the same weights) against the fixture.
    template <class Layer, class LastLayer>
    void check_packed_case(const std::string& file)
    {
        using T = typename Layer::value_type;
        const xrnn_test::fixture fx(xrnn_test::fixture_path(file));
        const auto x = fx.tensor<T, 3>("x");
        const auto lengths = lengths_of(fx, x.shape()[0], x.shape()[1]);
        xrnn::random_engine rng(0);
        Layer layer(rng);
        layer.for_each_parameter([&](const auto& name, auto& value, auto&) {
            value = fx.tensor<T, std::decay_t<decltype(value)>::rank>(name);
        });
        xrnn::zero_grad(layer);
        check_close<T>(layer.forward(x, lengths, xrnn::mode::training), fx, "y");
        check_close<T>(layer.final_state().h, fx, "h_n");
        if constexpr (Layer::has_cell_state)
        {
            check_close<T>(layer.final_state().c, fx, "c_n");
        }
        check_close<T>(layer.backward(fx.tensor<T, 3>("dy")), fx, "grad.x");
        layer.for_each_parameter([&](const auto& name, auto&, auto& grad) {
            check_close<T>(grad, fx, "grad." + std::string(name));
        });
        check_close<T>(layer.forward(x, lengths), fx, "y");  // inference

        LastLayer last(rng);
        last.for_each_parameter([&](const auto& name, auto& value, auto&) {
            value = fx.tensor<T, std::decay_t<decltype(value)>::rank>(name);
        });
        xrnn::zero_grad(last);
        check_close<T>(last.forward(x, lengths, xrnn::mode::training), fx, "last.y");
        check_close<T>(last.backward(fx.tensor<T, 2>("last.dy")), fx, "last.grad.x");
        last.for_each_parameter([&](const auto& name, auto&, auto& grad) {
            check_close<T>(grad, fx, "last.grad." + std::string(name));
        });
    }

    template <class T, template <class, std::size_t, std::size_t, std::size_t, output, xrnn::merge_mode> class Bi,
              template <class, std::size_t, std::size_t, std::size_t, output> class Uni>
    void check_kind(const std::string& kind)
    {
        check_packed_case<Uni<T, 3, 4, 2, output::sequence>, Uni<T, 3, 4, 2, output::last>>(kind + "_packed.txt");
        check_packed_case<Bi<T, 3, 4, 1, output::sequence, xrnn::merge_mode::concat>,
                          Bi<T, 3, 4, 1, output::last, xrnn::merge_mode::concat>>("bi" + kind + ".txt");
        check_packed_case<Bi<T, 3, 4, 2, output::sequence, xrnn::merge_mode::concat>,
                          Bi<T, 3, 4, 2, output::last, xrnn::merge_mode::concat>>("bi" + kind + "_packed.txt");
    }

    template <class T, std::size_t I, std::size_t H, std::size_t L, output O, xrnn::merge_mode M>
    using birnn_tanh = xrnn::birnn<T, I, H, L, O, M>;
    template <class T, std::size_t I, std::size_t H, std::size_t L, output O>
    using rnn_tanh = xrnn::rnn<T, I, H, L, O>;
    template <class T, std::size_t I, std::size_t H, std::size_t L, output O>
    using lstm = xrnn::lstm<T, I, H, L, O>;
    template <class T, std::size_t I, std::size_t H, std::size_t L, output O>
    using gru = xrnn::gru<T, I, H, L, O>;

    /// Central differences of sum(y * r), with lengths and dropout: every parameter and the input.
    template <class Layer>
    void check_bidirectional_gradients(const xrnn::recurrent_options& options)
    {
        constexpr std::size_t S = 5, B = 4;
        xrnn::random_engine rng(45);
        const Layer pristine(rng, options);
        auto x = xrnn_test::random_tensor<double, 3>({S, B, Layer::input_size}, 13);
        xt::xtensor<double, Layer::output_kind == output::last ? 2 : 3> r;
        if constexpr (Layer::output_kind == output::last)
        {
            r = xrnn_test::random_tensor<double, 2>({B, Layer::output_size}, 14);
        }
        else
        {
            r = xrnn_test::random_tensor<double, 3>({S, B, Layer::output_size}, 14);
        }
        const std::vector<std::size_t> lengths{3, 5, 1, 4};
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

    struct default_threads_after
    {
        ~default_threads_after()
        {
            xrnn::set_num_threads(0);
        }
    };
}  // namespace

TEST_CASE_TEMPLATE("bidirectional: packed and bidirectional rnn, lstm and gru match PyTorch", T, float, double)
{
    check_kind<T, birnn_tanh, rnn_tanh>("rnn");
    check_kind<T, xrnn::bilstm, lstm>("lstm");
    check_kind<T, xrnn::bigru, gru>("gru");
}

TEST_CASE("bidirectional: every merge mode, with lengths and dropout, against central differences")
{
    using xrnn::merge_mode;
    xrnn::recurrent_options dropout;
    dropout.dropout = 0.2;
    dropout.recurrent_dropout = 0.25;
    check_bidirectional_gradients<xrnn::bilstm<double, 3, 4, 2, output::sequence, merge_mode::concat>>(dropout);
    check_bidirectional_gradients<xrnn::bilstm<double, 3, 4, 1, output::sequence, merge_mode::sum>>(dropout);
    check_bidirectional_gradients<xrnn::bigru<double, 3, 4, 2, output::sequence, merge_mode::mul>>(dropout);
    check_bidirectional_gradients<xrnn::birnn<double, 3, 4, 1, output::sequence, merge_mode::ave>>(dropout);
    check_bidirectional_gradients<xrnn::bilstm<double, 3, 4, 2, output::last, merge_mode::mul>>(dropout);
    check_bidirectional_gradients<xrnn::bigru<double, 3, 4, 1, output::last, merge_mode::ave>>({});
    check_bidirectional_gradients<xrnn::birnn<double, 3, 4, 2, output::last, merge_mode::sum>>({});
}

TEST_CASE("bidirectional: the merge modes are sum, product and mean of the two directions")
{
    using xrnn::merge_mode;
    const auto x = xrnn_test::random_tensor<double, 3>({6, 3, 3}, 1);
    const std::vector<std::size_t> lengths{6, 2, 4};
    auto run = [&](auto layer) {
        xrnn::random_engine rng(5);
        decltype(layer) fresh(rng);
        return xt::xtensor<double, 3>(fresh.forward(x, lengths));
    };
    using concat = xrnn::bilstm<double, 3, 4, 2, output::sequence, merge_mode::concat>;
    xrnn::random_engine rng(0);
    const auto both = run(concat(rng));
    const auto f = xt::view(both, xt::all(), xt::all(), xt::range(0, 4));
    const auto r = xt::view(both, xt::all(), xt::all(), xt::range(4, 8));
    CHECK(xt::allclose(run(xrnn::bilstm<double, 3, 4, 2, output::sequence, merge_mode::sum>(rng)), f + r));
    CHECK(xt::allclose(run(xrnn::bilstm<double, 3, 4, 2, output::sequence, merge_mode::mul>(rng)), f * r));
    CHECK(xt::allclose(run(xrnn::bilstm<double, 3, 4, 2, output::sequence, merge_mode::ave>(rng)), (f + r) / 2.0));
}

TEST_CASE("bidirectional: same bits on 1, 2 and 3 threads")
{
    default_threads_after restore;
    using Layer = xrnn::bilstm<float, 32, 32, 2, output::sequence>;
    const auto x = xrnn_test::random_tensor<float, 3>({40, 21, 32}, 3);
    const auto dy = xrnn_test::random_tensor<float, 3>({40, 21, 64}, 4);
    std::vector<std::size_t> lengths(21);
    for (std::size_t b = 0; b < lengths.size(); ++b)
    {
        lengths[b] = 1 + (b * 7) % 40;
    }
    xrnn::recurrent_options dropout;
    dropout.dropout = 0.2;
    auto run = [&](std::size_t threads) {
        xrnn::set_num_threads(threads);
        xrnn::random_engine rng(21);
        Layer layer(rng, dropout);
        std::vector<float> all;
        auto keep = [&](const auto& t) { all.insert(all.end(), t.begin(), t.end()); };
        keep(layer.forward(x, lengths, xrnn::mode::training));
        keep(layer.final_state().h);
        keep(layer.backward(dy));
        layer.for_each_parameter([&](const auto&, auto&, auto& grad) { keep(grad); });
        return all;
    };
    const auto one = run(1);
    for (std::size_t threads : {2, 3})
    {
        const auto many = run(threads);
        REQUIRE(many.size() == one.size());
        CHECK(std::memcmp(many.data(), one.data(), one.size() * sizeof(float)) == 0);
    }
}

TEST_CASE("bidirectional: PyTorch's tensor names (weight_ih_l<k>_reverse, ...) out and back in")
{
    const xrnn_test::fixture fx(xrnn_test::fixture_path("bilstm_packed.txt"));
    xrnn::random_engine rng(0);
    xrnn::bilstm<double, 3, 4, 2, output::sequence> layer(rng);
    layer.for_each_parameter([&](const auto& name, auto& value, auto&) {
        value = fx.tensor<double, std::decay_t<decltype(value)>::rank>(name);
    });
    std::vector<xrnn::external_tensor<double>> tensors;
    layer.export_tensors(xrnn::weight_convention::torch, "lstm", tensors);
    CHECK(tensors.size() == 16);
    const auto w_x = fx.tensor<double, 2>("l1_reverse.w_x");  // (8, 16) = weight_ih_l1_reverse^T
    bool found = false;
    for (const auto& t : tensors)
    {
        if (t.name == "lstm.weight_ih_l1_reverse")
        {
            found = true;
            REQUIRE(t.shape == std::vector<std::size_t>{16, 8});
            for (std::size_t i = 0; i < 16; ++i)
            {
                for (std::size_t j = 0; j < 8; ++j)
                {
                    CHECK(t.values[i * 8 + j] == w_x(j, i));
                }
            }
        }
    }
    CHECK(found);
    xrnn::random_engine other(9);
    xrnn::bilstm<double, 3, 4, 2, output::sequence> copy(other);
    copy.import_tensors(xrnn::weight_convention::torch, "lstm", [&](const std::string& name) -> const double* {
        for (const auto& t : tensors)
        {
            if (t.name == name)
            {
                return t.values.data();
            }
        }
        FAIL("no tensor ", name);
        return nullptr;
    });
    const auto x = xrnn_test::random_tensor<double, 3>({5, 2, 3}, 2);
    CHECK(xt::allclose(copy.forward(x), layer.forward(x), 0.0, 0.0));
}
