// precision::bf16 (xrnn/precision.hpp, detail/bf16.hpp, layers/recurrent_bf16.hpp): the rounding to bfloat16, the
// AMX kernel against the portable one and against a double reference of the same bf16 operands, and the LSTM,
// GRU and RNN layers with bf16 products against the same layers in float, in the forward, the parameter and input
// gradients, central differences, masking and training.
//
// The tolerance, from bf16's 8-bit significand (u = 2^-8, the unit roundoff of rounding to nearest): each term
// a * w of a product is computed from a (1 + e1) and w (1 + e2), |e1|, |e2| <= u, so its error is at most
// (2 u + u^2) |a w|, and a product's error at most 2.004 u times the sum of |a w|, about 0.008 of it; rounding
// errors of independent terms mostly cancel, which leaves about u / sqrt(3) ~ 0.0023 of a typical result. The
// layer checks measure the root-mean-square difference relative to the float result over a whole tensor and
// allow 4 u = 0.0156: a product done in float, or operands rounded twice as coarsely, would stay below or fail it,
// while the float accumulation (float rounding 2^-24) is far below it.
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <doctest/doctest.h>
#include <xtensor/xtensor.hpp>

#include <xrnn/detail/bf16_transpose.hpp>
#include <xrnn/layers/bidirectional.hpp>
#include <xrnn/layers/gru.hpp>
#include <xrnn/layers/lstm.hpp>
#include <xrnn/layers/rnn.hpp>
#include <xrnn/loss.hpp>
#include <xrnn/optim.hpp>
#include <xrnn/precision.hpp>

#include "support/gradcheck.hpp"

namespace
{
    using xrnn::detail::bf16_t;
    using xrnn::detail::from_bf16;
    using xrnn::detail::to_bf16;

    constexpr double unit_roundoff = 1.0 / 256;  // u = 2^-8
    constexpr double layer_tolerance = 4 * unit_roundoff;

    /// ||a - b|| / ||b|| over n values.
    template <class A, class B>
    double rms_relative(const A* a, const B* b, std::size_t n)
    {
        double diff = 0.0;
        double norm = 0.0;
        for (std::size_t j = 0; j < n; ++j)
        {
            diff += (double(a[j]) - double(b[j])) * (double(a[j]) - double(b[j]));
            norm += double(b[j]) * double(b[j]);
        }
        return norm == 0.0 ? std::sqrt(diff) : std::sqrt(diff / norm);
    }

    /// Runs f with the portable kernel forced (true) or the one the machine has (false), then restores it.
    template <class F>
    void with_portable(bool portable, F&& f)
    {
        const bool before = xrnn::detail::bf16_force_portable().exchange(portable);
        f();
        xrnn::detail::bf16_force_portable() = before;
    }

    /// Runs f with AMX skipped, so that the AVX512-BF16 kernel runs where the CPU has it, then restores it.
    template <class F>
    void without_amx(F&& f)
    {
        const bool before = xrnn::detail::bf16_skip_amx().exchange(true);
        f();
        xrnn::detail::bf16_skip_amx() = before;
    }

    /// Whether the AVX512-BF16 kernel runs here once AMX is skipped.
    bool avx512_bf16_runs()
    {
        bool runs = false;
        without_amx([&] { runs = xrnn::bf16_backend() == xrnn::bf16_kernel::avx512_bf16; });
        return runs;
    }

    /// A copy of src's parameters into dst (same cell kinds and sizes, different precision).
    template <class Dst, class Src>
    void copy_parameters(Dst& dst, Src& src)
    {
        std::vector<float> values;
        src.for_each_parameter([&](const auto&, auto& value, auto&) {
            values.insert(values.end(), value.begin(), value.end());
        });
        std::size_t k = 0;
        dst.for_each_parameter([&](const auto&, auto& value, auto&) {
            for (auto& v : value)
            {
                v = values[k++];
            }
        });
        REQUIRE(k == values.size());
    }

    template <class Layer>
    std::vector<float> gradients_of(Layer& layer)
    {
        std::vector<float> grads;
        layer.for_each_parameter(
            [&](const auto&, auto&, auto& grad) { grads.insert(grads.end(), grad.begin(), grad.end()); });
        return grads;
    }
}  // namespace

TEST_CASE("bf16: rounding to nearest even, NaN and infinity")
{
    CHECK(to_bf16(1.0f) == 0x3f80);
    CHECK(to_bf16(-2.0f) == 0xc000);
    CHECK(to_bf16(1.0f + 1.0f / 256) == 0x3f80);      // a tie: to the even 1.0
    CHECK(to_bf16(1.0f + 3.0f / 256) == 0x3f82);      // a tie: to the even 1 + 2/128
    CHECK(to_bf16(1.0f + 1.0f / 256 + 1e-6f) == 0x3f81);  // above the tie
    CHECK(from_bf16(to_bf16(0.1f)) == doctest::Approx(0.1f).epsilon(unit_roundoff));
    CHECK(std::isnan(from_bf16(to_bf16(std::numeric_limits<float>::quiet_NaN()))));
    CHECK(std::isinf(from_bf16(to_bf16(std::numeric_limits<float>::max()))));
    CHECK(from_bf16(to_bf16(-0.0f)) == 0.0f);
    std::mt19937 gen(3);
    std::uniform_real_distribution<float> d(-100.0f, 100.0f);
    for (int i = 0; i < 1000; ++i)
    {
        const float f = d(gen);
        CHECK(std::abs(from_bf16(to_bf16(f)) - f) <= unit_roundoff * std::abs(f));
    }
}

TEST_CASE("bf16: the transposed packing's AVX-512 and portable kernels write to_bf16 of every value")
{
    using xrnn::detail::pack_transposed;
    using xrnn::detail::transpose_kernel;
    MESSAGE("AVX-512 transposition on this machine: " << (xrnn::detail::avx512_available() ? "yes" : "no"));
    std::mt19937 gen(11);
    std::uniform_int_distribution<std::uint32_t> bits;
    std::uniform_int_distribution<int> coin(0, 5);
    // every kind of float: ties, NaN, infinities, denormals; rows [r0, r1) of columns [c0, c1) of a 100 x 45 matrix
    const std::size_t rows = 100;
    const std::size_t ld = 45;
    std::vector<float> src(rows * ld);
    for (float& v : src)
    {
        std::uint32_t u = bits(gen);
        switch (coin(gen))
        {
        case 0: u = (u & 0xffff0000u) | 0x8000u; break;  // a tie
        case 1: u = (u & 0x807fffffu) | 0x7f800000u; break;  // NaN, or infinity when the significand is 0
        case 2: u &= 0x807fffffu; break;                       // a denormal
        default: break;
        }
        std::memcpy(&v, &u, sizeof v);
    }
    std::vector<bool> keep(rows);
    for (std::size_t r = 0; r < rows; ++r)
    {
        keep[r] = coin(gen) != 0;
    }
    const auto kept = [&](std::size_t r) { return bool(keep[r]); };
    for (const auto& [r0, r1, c0, c1] : {std::array<std::size_t, 4>{0, 96, 0, 45}, {32, 64, 16, 32}, {0, 100, 3, 44},
                                          {64, 96, 0, 16}, {5, 37, 0, 45}})
    {
        const std::size_t ldo = r1 + 7;
        std::vector<bf16_t> best((c1 - c0) * ldo, bf16_t(0x1234));
        std::vector<bf16_t> portable = best;
        pack_transposed(best.data(), ldo, src.data(), ld, kept, r0, r1, c0, c1);
        pack_transposed(portable.data(), ldo, src.data(), ld, kept, r0, r1, c0, c1, transpose_kernel::portable);
        std::size_t wrong = 0;
        std::size_t differ = 0;
        for (std::size_t c = c0; c < c1; ++c)
        {
            for (std::size_t r = 0; r < ldo; ++r)
            {
                const bool inside = r >= r0 && r < r1;
                const bf16_t expected =
                    !inside ? bf16_t(0x1234) : keep[r] ? to_bf16(src[r * ld + c]) : bf16_t(0);  // outside: untouched
                wrong += portable[(c - c0) * ldo + r] != expected;
                differ += best[(c - c0) * ldo + r] != portable[(c - c0) * ldo + r];
            }
        }
        CAPTURE(r0);
        CAPTURE(c0);
        CHECK(wrong == 0);
        CHECK(differ == 0);
    }
}

TEST_CASE("bf16: the AMX, AVX512-BF16 and portable kernels agree with a double reference of the bf16 operands")
{
    MESSAGE("bf16 kernel on this machine: " << std::string(xrnn::to_string(xrnn::bf16_backend()))
                                            << std::string(avx512_bf16_runs() ? " (and avx512_bf16)" : ""));
    std::mt19937 gen(5);
    std::normal_distribution<float> normal;
    const std::size_t shapes[][3] = {{16, 256, 512}, {7, 37, 21}, {33, 100, 70}, {1, 1, 1}, {20, 64, 80}};
    for (const auto& shape : shapes)
    {
        const std::size_t m = shape[0], k = shape[1], n = shape[2];
        std::vector<float> a(m * k), b(k * n), c0(m * n);
        for (auto* v : {&a, &b, &c0})
        {
            for (auto& x : *v)
            {
                x = normal(gen);
            }
        }
        const std::size_t kp = xrnn::detail::bf16_round_up(k, 32);
        std::vector<bf16_t> a_packed(m * kp);
        for (std::size_t i = 0; i < m; ++i)
        {
            const xrnn::detail::bf16_segment row[1] = {{a.data() + i * k, k}};
            xrnn::detail::pack_row(a_packed.data() + i * kp, kp, row, 1);
        }
        xrnn::detail::bf16_panels panels;
        xrnn::detail::pack_panels(panels, k, n, [&](std::size_t r, std::size_t j) { return b[r * n + j]; });
        xrnn::detail::bf16_panels from_rows;
        from_rows.reshape(k, n);
        xrnn::detail::pack_panel_rows(from_rows, b.data(), n, 0, from_rows.kp / 2);
        CHECK(from_rows.data == panels.data);
        // the same panels from rows already in bf16 (rows n + 3 apart), as (BF4) packs dZ from (BF2)'s rows
        std::vector<bf16_t> b_rounded(k * (n + 3), bf16_t(0x7fc1));
        for (std::size_t r = 0; r < k; ++r)
        {
            for (std::size_t j = 0; j < n; ++j)
            {
                b_rounded[r * (n + 3) + j] = to_bf16(b[r * n + j]);
            }
        }
        xrnn::detail::bf16_panels from_bf16_rows;
        from_bf16_rows.reshape(k, n);
        xrnn::detail::pack_panel_rows(from_bf16_rows, b_rounded.data(), n + 3, 0, from_bf16_rows.kp / 2);
        CHECK(from_bf16_rows.data == panels.data);
        for (const bool accumulate : {false, true})
        {
            std::vector<float> fast = c0, portable = c0, avx512 = c0;
            const xrnn::detail::bf16_product q{m, a_packed.data(), kp, &panels, 0, panels.k_blocks(),
                                               0, panels.column_tiles(), fast.data(), n, accumulate};
            xrnn::detail::bf16_gemm(q);
            with_portable(true, [&] {
                auto q2 = q;
                q2.c = portable.data();
                xrnn::detail::bf16_gemm(q2);
            });
            without_amx([&] {  // the AVX512-BF16 kernel where the CPU has it, else one of the two above
                auto q3 = q;
                q3.c = avx512.data();
                xrnn::detail::bf16_gemm(q3);
            });
            double worst = 0.0;
            for (std::size_t i = 0; i < m; ++i)
            {
                for (std::size_t j = 0; j < n; ++j)
                {
                    double ref = accumulate ? c0[i * n + j] : 0.0;
                    double magnitude = std::abs(ref);
                    for (std::size_t r = 0; r < k; ++r)
                    {
                        const double t = double(from_bf16(to_bf16(a[i * k + r]))) * from_bf16(to_bf16(b[r * n + j]));
                        ref += t;
                        magnitude += std::abs(t);
                    }
                    // float accumulation of k + 1 terms: (k + 1) 2^-24 of their magnitudes at most
                    const double bound = (k + 1) * std::ldexp(1.0, -24) * magnitude;
                    worst = std::max(worst, std::abs(fast[i * n + j] - ref) / bound);
                    worst = std::max(worst, std::abs(portable[i * n + j] - ref) / bound);
                    worst = std::max(worst, std::abs(avx512[i * n + j] - ref) / bound);
                }
            }
            INFO("m ", m, " k ", k, " n ", n, " accumulate ", accumulate);
            CHECK(worst <= 1.0);
        }
    }
}

namespace
{
    template <class Float, class Bf16>
    void check_layer_against_float(const std::vector<std::size_t>* lengths)
    {
        constexpr std::size_t S = 7, B = 19, I = Float::input_size;
        xrnn::random_engine rng(17);
        Float reference(rng);
        Bf16 mixed(rng);
        copy_parameters(mixed, reference);
        const auto x = xrnn_test::random_tensor<float, 3>({S, B, I}, 21);
        const auto& y_ref = lengths ? reference.forward(x, *lengths, xrnn::mode::training)
                                    : reference.forward(x, xrnn::mode::training);
        const auto y_float = y_ref;
        const auto& y_mixed = lengths ? mixed.forward(x, *lengths, xrnn::mode::training)
                                      : mixed.forward(x, xrnn::mode::training);
        const double forward_error = rms_relative(y_mixed.data(), y_float.data(), y_float.size());
        MESSAGE("forward rms relative difference " << forward_error);
        CHECK(forward_error < layer_tolerance);
        CHECK(forward_error > 0.0);  // the products did run in bf16

        const auto dy = xrnn_test::random_tensor<float, 3>({S, B, y_float.shape()[2]}, 22);
        xrnn::zero_grad(reference);
        xrnn::zero_grad(mixed);
        const auto dx_float = xt::xtensor<float, 3>(reference.backward(dy));
        const auto dx_mixed = xt::xtensor<float, 3>(mixed.backward(dy));
        const double dx_error = rms_relative(dx_mixed.data(), dx_float.data(), dx_float.size());
        const auto g_float = gradients_of(reference);
        const auto g_mixed = gradients_of(mixed);
        const double grad_error = rms_relative(g_mixed.data(), g_float.data(), g_float.size());
        MESSAGE("dx rms relative difference " << dx_error << ", parameter gradients " << grad_error);
        CHECK(dx_error < layer_tolerance);
        CHECK(grad_error < layer_tolerance);

        // the machine's kernel (AMX where it runs) against the portable one and the AVX512-BF16 one (where it is
        // not the machine's choice), on the same bf16 operands
        const auto same_on = [&](auto&& with_kernel) {
            Bf16 other(rng);
            copy_parameters(other, mixed);
            xrnn::zero_grad(other);
            with_kernel([&] {
                const auto& y_other = lengths ? other.forward(x, *lengths, xrnn::mode::training)
                                              : other.forward(x, xrnn::mode::training);
                CHECK(rms_relative(y_other.data(), y_mixed.data(), y_mixed.size()) < 1e-5);
                const auto dx_other = xt::xtensor<float, 3>(other.backward(dy));
                CHECK(rms_relative(dx_other.data(), dx_mixed.data(), dx_mixed.size()) < 1e-5);
            });
            const auto g_other = gradients_of(other);
            CHECK(rms_relative(g_other.data(), g_mixed.data(), g_mixed.size()) < 1e-5);
        };
        same_on([](auto&& f) { with_portable(true, f); });
        if (avx512_bf16_runs())
        {
            same_on([](auto&& f) { without_amx(f); });
        }
    }
}  // namespace

TEST_CASE("bf16: LSTM, GRU and RNN layers with bf16 products stay within 4 u of float")
{
    using xrnn::output;
    using bf16 = xrnn::precision::bf16;
    SUBCASE("lstm")
    {
        check_layer_against_float<xrnn::lstm<float, 20, 24, 2, output::sequence>,
                                  xrnn::lstm<float, 20, 24, 2, output::sequence, bf16>>(nullptr);
    }
    SUBCASE("gru")
    {
        check_layer_against_float<xrnn::gru<float, 20, 24, 1, output::sequence>,
                                  xrnn::gru<float, 20, 24, 1, output::sequence, bf16>>(nullptr);
    }
    SUBCASE("rnn")
    {
        check_layer_against_float<xrnn::rnn<float, 33, 40, 1, output::sequence>,
                                  xrnn::rnn<float, 33, 40, 1, output::sequence, xrnn::nonlinearity::tanh, bf16>>(
            nullptr);
    }
    SUBCASE("bidirectional gru, both directions at once")
    {
        check_layer_against_float<xrnn::bigru<float, 20, 24, 1, output::sequence>,
                                  xrnn::bigru<float, 20, 24, 1, output::sequence, xrnn::merge_mode::concat, bf16>>(
            nullptr);
    }
    SUBCASE("masked lstm and gru")
    {
        const std::vector<std::size_t> lengths{7, 3, 1, 7, 5, 2, 6, 7, 4, 4, 1, 7, 2, 3, 5, 6, 7, 1, 2};
        check_layer_against_float<xrnn::lstm<float, 20, 24, 1, output::sequence>,
                                  xrnn::lstm<float, 20, 24, 1, output::sequence, bf16>>(&lengths);
        check_layer_against_float<xrnn::gru<float, 20, 24, 1, output::sequence>,
                                  xrnn::gru<float, 20, 24, 1, output::sequence, bf16>>(&lengths);
    }
}

TEST_CASE("bf16: the padding of a masked batch adds nothing, even when it is NaN")
{
    // (BF4) multiplies every row of a step; the X~ rows of dead steps must go in as 0, as the float path skips them
    using Layer = xrnn::lstm<float, 20, 24, 1, xrnn::output::sequence, xrnn::precision::bf16>;
    constexpr std::size_t S = 6, B = 5;
    const std::vector<std::size_t> lengths{6, 2, 4, 1, 3};
    xrnn::random_engine rng(12);
    const Layer pristine(rng);
    auto x_zero = xrnn_test::random_tensor<float, 3>({S, B, 20}, 4);
    auto x_nan = x_zero;
    for (std::size_t b = 0; b < B; ++b)
    {
        for (std::size_t t = lengths[b]; t < S; ++t)
        {
            for (std::size_t i = 0; i < 20; ++i)
            {
                x_zero(t, b, i) = 0.0f;
                x_nan(t, b, i) = std::numeric_limits<float>::quiet_NaN();
            }
        }
    }
    const auto dy = xrnn_test::random_tensor<float, 3>({S, B, 24}, 5);
    auto gradients = [&](const xt::xtensor<float, 3>& x) {
        Layer layer = pristine;
        xrnn::zero_grad(layer);
        layer.forward(x, lengths, xrnn::mode::training);
        const xt::xtensor<float, 3> dx = layer.backward(dy);
        auto g = gradients_of(layer);
        g.insert(g.end(), dx.begin(), dx.end());
        return g;
    };
    const auto with_zeros = gradients(x_zero);
    const auto with_nans = gradients(x_nan);
    REQUIRE(with_zeros.size() == with_nans.size());
    for (std::size_t j = 0; j < with_zeros.size(); ++j)
    {
        REQUIRE(std::isfinite(with_nans[j]));
        CHECK(with_nans[j] == with_zeros[j]);
    }
}

TEST_CASE("bf16: gradients against central differences of the float layer")
{
    // The bf16 layer's loss is piecewise constant at the scale of its rounding, so the numeric reference is the
    // float layer's (central differences with h = 1e-2, the loss summed in double): its truncation error is
    // O(h^2) ~ 1e-4 relative and its float rounding about 1e-7 |L| / h ~ 1e-5, both far below 4 u.
    using Float = xrnn::gru<float, 5, 6, 1, xrnn::output::last>;
    using Mixed = xrnn::gru<float, 5, 6, 1, xrnn::output::last, xrnn::precision::bf16>;
    constexpr std::size_t S = 4, B = 3;
    xrnn::random_engine rng(8);
    Float reference(rng);
    Mixed mixed(rng);
    copy_parameters(mixed, reference);
    const auto x = xrnn_test::random_tensor<float, 3>({S, B, 5}, 1);
    const auto r = xrnn_test::random_tensor<float, 2>({B, 6}, 2);
    auto loss = [&] {
        const auto& y = reference.forward(x, xrnn::mode::inference);
        double l = 0.0;
        for (std::size_t j = 0; j < y.size(); ++j)
        {
            l += double(y.data()[j]) * r.data()[j];
        }
        return l;
    };
    xrnn::zero_grad(mixed);
    mixed.forward(x, xrnn::mode::training);
    mixed.backward(r);
    std::vector<double> numeric;
    reference.for_each_parameter([&](const auto&, auto& value, auto&) {
        const auto n = xrnn_test::numeric_gradient(value, loss, 1e-2);
        numeric.insert(numeric.end(), n.begin(), n.end());
    });
    const auto analytic = gradients_of(mixed);
    REQUIRE(analytic.size() == numeric.size());
    const double error = rms_relative(analytic.data(), numeric.data(), numeric.size());
    MESSAGE("bf16 gradients against central differences: rms relative " << error);
    CHECK(error < layer_tolerance);
}

namespace
{
    /// The loss after 40 Adam steps of Layer (8 inputs, 16 outputs) on a sum-of-inputs regression.
    template <class Layer>
    double train_regression()
    {
        xrnn::random_engine rng(4);
        Layer net(rng);
        xrnn::adam<float> opt(0.01);
        const auto x = xrnn_test::random_tensor<float, 3>({10, 32, 8}, 9);
        xt::xtensor<float, 2> target({32, 16});
        for (std::size_t b = 0; b < 32; ++b)
        {
            for (std::size_t j = 0; j < 16; ++j)
            {
                float s = 0.0f;
                for (std::size_t t = 0; t < 10; ++t)
                {
                    s += x(t, b, j % 8);
                }
                target(b, j) = 0.2f * s;
            }
        }
        double last = 0.0;
        for (int step = 0; step < 40; ++step)
        {
            xrnn::zero_grad(net);
            const auto& y = net.forward(x, xrnn::mode::training);
            xt::xtensor<float, 2> grad;
            last = xrnn::mean_squared_error(y, target, &grad);
            net.backward(grad);
            opt.step(net);
        }
        return last;
    }
}  // namespace

TEST_CASE("bf16: a layer trained with bf16 products learns as the float one does")
{
    // 40 Adam steps of a sum-of-inputs regression; the bf16 loss ends within 10% of the float loss.
    const double float_loss = train_regression<xrnn::lstm<float, 8, 16>>();
    using mixed = xrnn::lstm<float, 8, 16, 1, xrnn::output::last, xrnn::precision::bf16>;
    const double mixed_loss = train_regression<mixed>();
    MESSAGE("final loss: float " << float_loss << ", bf16 " << mixed_loss);
    CHECK(mixed_loss < 0.5);  // it learned (the loss starts near 1.3)
    CHECK(std::abs(mixed_loss - float_loss) < 0.1 * float_loss + 1e-3);
}
