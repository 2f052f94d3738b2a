// Finite-difference gradient checks for the tests (double precision, central differences).
//
// A check compares the analytic gradient that a layer's backward accumulated with
//   dL/dtheta_j ~ (L(theta + h e_j) - L(theta - h e_j)) / (2 h)
// tensor by tensor, as the relative error ||analytic - numeric|| / max(||analytic||, ||numeric||).
// Every evaluation runs on a fresh copy of the layer as it was before the analytic pass, so the copy draws
// the same dropout masks (its random engine is copied too) and the checked function is the same one.
#ifndef XRNN_TEST_SUPPORT_GRADCHECK_HPP
#define XRNN_TEST_SUPPORT_GRADCHECK_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include <xtensor/xtensor.hpp>

#include <xrnn/random.hpp>

namespace xrnn_test
{
    constexpr double gradcheck_step = 1e-6;
    constexpr double gradcheck_tolerance = 1e-6;

    /// ||a - n|| / max(||a||, ||n||); when both are (near) zero, the absolute difference.
    template <class A>
    double relative_error(const A& analytic, const std::vector<double>& numeric)
    {
        double diff = 0.0;
        double norm_a = 0.0;
        double norm_n = 0.0;
        std::size_t j = 0;
        for (auto a : analytic)
        {
            const double n = numeric[j++];
            diff += (a - n) * (a - n);
            norm_a += a * a;
            norm_n += n * n;
        }
        const double scale = std::sqrt(std::max(norm_a, norm_n));
        return scale < 1e-10 ? std::sqrt(diff) : std::sqrt(diff) / scale;
    }

    /// Central differences of loss() with respect to every element of `values` (perturbed in place and restored).
    template <class Tensor, class Loss>
    std::vector<double> numeric_gradient(Tensor& values, Loss&& loss, double h = gradcheck_step)
    {
        std::vector<double> numeric(values.size());
        for (std::size_t j = 0; j < values.size(); ++j)
        {
            const auto saved = values.data()[j];
            values.data()[j] = saved + h;
            const double plus = loss();
            values.data()[j] = saved - h;
            const double minus = loss();
            values.data()[j] = saved;
            numeric[j] = (plus - minus) / (2 * h);
        }
        return numeric;
    }

    /// Calls f on the index-th parameter value tensor of layer (in for_each_parameter order).
    template <class Layer, class F>
    void visit_parameter(Layer& layer, std::size_t index, F&& f)
    {
        std::size_t k = 0;
        layer.for_each_parameter([&](const auto&, auto& value, auto&) {
            if (k++ == index)
            {
                f(value);
            }
        });
    }

    struct tensor_error
    {
        std::string name;
        double error;
    };

    /// Relative error of every parameter gradient of `analytic` (a layer whose backward has run) against central
    /// differences of loss_of(copy) over copies of `pristine` (the same layer before that forward).
    template <class Layer, class LossOf>
    std::vector<tensor_error> check_parameter_gradients(const Layer& pristine, Layer& analytic, LossOf&& loss_of)
    {
        std::vector<tensor_error> errors;
        std::size_t index = 0;
        analytic.for_each_parameter([&](const auto& name, auto& value, auto& grad) {
            std::vector<double> numeric(value.size());
            for (std::size_t j = 0; j < value.size(); ++j)
            {
                double sides[2];
                for (int side = 0; side < 2; ++side)
                {
                    Layer probe = pristine;
                    visit_parameter(probe, index, [&](auto& v) {
                        v.data()[j] += side == 0 ? gradcheck_step : -gradcheck_step;
                    });
                    sides[side] = loss_of(probe);
                }
                numeric[j] = (sides[0] - sides[1]) / (2 * gradcheck_step);
            }
            errors.push_back({std::string(name), relative_error(grad, numeric)});
            ++index;
        });
        return errors;
    }

    /// Relative error of `analytic` (the gradient a backward gave for `input`) against central differences of
    /// loss_of(copy) over `input`, each evaluation on a fresh copy of `pristine`.
    template <class Layer, class Input, class Analytic, class LossOf>
    double input_gradient_error(const Layer& pristine, Input& input, const Analytic& analytic, LossOf&& loss_of)
    {
        const auto numeric = numeric_gradient(input, [&] {
            Layer probe = pristine;
            return loss_of(probe);
        });
        return relative_error(analytic, numeric);
    }

    /// A tensor of the given shape with values uniform in [low, high), from a fixed seed.
    template <class T, std::size_t N>
    xt::xtensor<T, N> random_tensor(const std::array<std::size_t, N>& shape, std::uint64_t seed, double low = -1.0,
                                    double high = 1.0)
    {
        xrnn::random_engine rng(seed);
        xt::xtensor<T, N> t(shape);
        for (auto& v : t)
        {
            v = static_cast<T>(rng.uniform(low, high));
        }
        return t;
    }

    /// sum(y * r): a scalar loss whose gradient with respect to y is r.
    template <class Y, class R>
    double projected(const Y& y, const R& r)
    {
        double sum = 0.0;
        for (std::size_t j = 0; j < y.size(); ++j)
        {
            sum += static_cast<double>(y.data()[j]) * static_cast<double>(r.data()[j]);
        }
        return sum;
    }
}  // namespace xrnn_test

#endif
