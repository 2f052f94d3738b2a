// init.hpp: uniform, normal, Glorot-uniform and orthogonal initialisation: ranges, moments, orthonormality in
// double and float, and determinism.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <tuple>

#include <doctest/doctest.h>

#include <xtensor/xtensor.hpp>

#include <xrnn/init.hpp>

namespace
{
    template <class T, std::size_t N>
    double max_abs(const xt::xtensor<T, N>& w)
    {
        double m = 0.0;
        for (auto v : w)
        {
            m = std::max(m, std::abs(static_cast<double>(v)));
        }
        return m;
    }

    template <class T, std::size_t N>
    double sample_mean(const xt::xtensor<T, N>& w)
    {
        double s = 0.0;
        for (auto v : w)
        {
            s += static_cast<double>(v);
        }
        return s / static_cast<double>(w.size());
    }

    template <class T, std::size_t N>
    double sample_variance(const xt::xtensor<T, N>& w)
    {
        const double m = sample_mean(w);
        double s = 0.0;
        for (auto v : w)
        {
            s += (static_cast<double>(v) - m) * (static_cast<double>(v) - m);
        }
        return s / static_cast<double>(w.size());
    }

    /// max |G - I| where G is W^T W (columns) or W W^T (rows), computed in double.
    template <class T>
    double gram_deviation(const xt::xtensor<T, 2>& w, bool columns)
    {
        const std::size_t rows = w.shape()[0];
        const std::size_t cols = w.shape()[1];
        const std::size_t count = columns ? cols : rows;
        const std::size_t length = columns ? rows : cols;
        auto at = [&](std::size_t vector, std::size_t i) {
            return static_cast<double>(columns ? w(i, vector) : w(vector, i));
        };
        double worst = 0.0;
        for (std::size_t a = 0; a < count; ++a)
        {
            for (std::size_t b = 0; b < count; ++b)
            {
                double dot = 0.0;
                for (std::size_t i = 0; i < length; ++i)
                {
                    dot += at(a, i) * at(b, i);
                }
                worst = std::max(worst, std::abs(dot - (a == b ? 1.0 : 0.0)));
            }
        }
        return worst;
    }

    template <class T>
    void check_orthogonal(std::size_t rows, std::size_t cols, double tolerance)
    {
        CAPTURE(rows);
        CAPTURE(cols);
        xrnn::random_engine rng(rows * 100 + cols);
        xt::xtensor<T, 2> w({rows, cols});
        xrnn::init::orthogonal(w, rng);
        if (rows >= cols)
        {
            CHECK(gram_deviation(w, true) < tolerance);  // W^T W = I
        }
        if (rows <= cols)
        {
            CHECK(gram_deviation(w, false) < tolerance);  // W W^T = I
        }
        // a random orthonormal set, not a permuted identity: entries spread over many values
        CHECK(max_abs(w) < 1.0 - 1e-3);
        CHECK(std::count(w.begin(), w.end(), T(0)) == 0);
    }
}  // namespace

TEST_CASE("init: uniform fills every element in [-limit, limit) with the engine's draws in order")
{
    xrnn::random_engine rng(1);
    xrnn::random_engine replay = rng;
    xt::xtensor<double, 3> w({20, 30, 40}, 99.0);
    xrnn::init::uniform(w, 0.3, rng);
    std::size_t outside = 0;
    std::size_t mismatched = 0;
    for (auto v : w)
    {
        outside += (v < -0.3 || v >= 0.3) ? 1 : 0;
        mismatched += v == replay.uniform(-0.3, 0.3) ? 0 : 1;  // element j is draw j, row-major
    }
    CHECK(outside == 0);
    CHECK(mismatched == 0);
    CHECK(max_abs(w) > 0.299);
    CHECK(std::abs(sample_mean(w)) < 0.005);
    CHECK(sample_variance(w) == doctest::Approx(0.3 * 0.3 / 3.0).epsilon(0.02));

    xt::xtensor<float, 1> f({1000}, 99.0f);
    xrnn::init::uniform(f, 0.05, rng);
    CHECK(max_abs(f) <= 0.05);
    CHECK(max_abs(f) > 0.049);
}

TEST_CASE("init: normal has the requested mean 0 and standard deviation")
{
    xrnn::random_engine rng(2);
    xt::xtensor<double, 2> w({200, 500});
    xrnn::init::normal(w, 0.5, rng);
    CHECK(std::abs(sample_mean(w)) < 0.01);
    CHECK(std::sqrt(sample_variance(w)) == doctest::Approx(0.5).epsilon(0.01));

    xt::xtensor<float, 1> f(std::array<std::size_t, 1>{100000});  // ({n}) would be the values {n}
    xrnn::init::normal(f, 2.0, rng);
    CHECK(std::abs(sample_mean(f)) < 0.04);
    CHECK(std::sqrt(sample_variance(f)) == doctest::Approx(2.0).epsilon(0.01));
}

TEST_CASE("init: glorot_uniform stays within sqrt(6 / (fan_in + fan_out)) and reaches it")
{
    xrnn::random_engine rng(3);
    {
        xt::xtensor<double, 2> w({64, 64});
        xrnn::init::glorot_uniform(w, rng);
        const double limit = std::sqrt(6.0 / 128.0);
        CHECK(max_abs(w) <= limit);
        CHECK(max_abs(w) > 0.9 * limit);
        CHECK(std::abs(sample_mean(w)) < 0.01);
        CHECK(sample_variance(w) == doctest::Approx(limit * limit / 3.0).epsilon(0.05));  // = 2 / (fan_in + fan_out)
    }
    {
        // not square: both fans count, (10, 30) -> sqrt(6 / 40)
        xt::xtensor<float, 2> w({10, 30});
        xrnn::init::glorot_uniform(w, rng);
        const double limit = std::sqrt(6.0 / 40.0);
        CHECK(max_abs(w) <= limit);
        CHECK(max_abs(w) > 0.9 * limit);
    }
    {
        xt::xtensor<double, 2> w({300, 3});
        xrnn::init::glorot_uniform(w, rng);
        const double limit = std::sqrt(6.0 / 303.0);
        CHECK(max_abs(w) <= limit);
        CHECK(max_abs(w) > 0.95 * limit);
    }
}

TEST_CASE("init: orthogonal gives orthonormal columns (rows >= cols) or rows (rows < cols) in double")
{
    check_orthogonal<double>(5, 5, 1e-12);
    check_orthogonal<double>(8, 3, 1e-12);
    check_orthogonal<double>(4, 16, 1e-12);
    check_orthogonal<double>(64, 64, 1e-12);
    check_orthogonal<double>(1, 7, 1e-12);
    check_orthogonal<double>(7, 1, 1e-12);
}

TEST_CASE("init: orthogonal is orthonormal to float precision in float")
{
    check_orthogonal<float>(5, 5, 1e-5);
    check_orthogonal<float>(8, 3, 1e-5);
    check_orthogonal<float>(4, 16, 1e-5);
    check_orthogonal<float>(32, 128, 1e-5);
}

TEST_CASE("init: the same seed gives identical weights, another seed other weights")
{
    auto make = [](std::uint64_t seed) {
        xrnn::random_engine rng(seed);
        xt::xtensor<double, 2> a({6, 9});
        xt::xtensor<double, 2> b({9, 4});
        xt::xtensor<double, 2> c({5, 5});
        xt::xtensor<double, 1> d(std::array<std::size_t, 1>{7});
        xrnn::init::glorot_uniform(a, rng);
        xrnn::init::orthogonal(b, rng);
        xrnn::init::normal(c, 1.0, rng);
        xrnn::init::uniform(d, 0.1, rng);
        return std::make_tuple(a, b, c, d);
    };
    const auto first = make(5);
    const auto again = make(5);
    const auto other = make(6);
    CHECK(std::get<0>(first) == std::get<0>(again));
    CHECK(std::get<1>(first) == std::get<1>(again));
    CHECK(std::get<2>(first) == std::get<2>(again));
    CHECK(std::get<3>(first) == std::get<3>(again));
    CHECK(std::get<0>(first) != std::get<0>(other));
    CHECK(std::get<1>(first) != std::get<1>(other));
    CHECK(std::get<2>(first) != std::get<2>(other));
    CHECK(std::get<3>(first) != std::get<3>(other));

    // float and double from the same seed agree to float rounding: one draw sequence, two precisions
    xrnn::random_engine rf(5);
    xrnn::random_engine rd(5);
    xt::xtensor<float, 2> wf({9, 4});
    xt::xtensor<double, 2> wd({9, 4});
    xrnn::init::orthogonal(wf, rf);
    xrnn::init::orthogonal(wd, rd);
    std::size_t differing = 0;
    for (std::size_t j = 0; j < wf.size(); ++j)
    {
        differing += wf.data()[j] == static_cast<float>(wd.data()[j]) ? 0 : 1;
    }
    CHECK(differing == 0);
}
