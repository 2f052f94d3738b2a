// xtensor-rnn: losses, each returning its value and, when asked, the gradient with respect to its input.
//
// All three average over what they score (N elements for MSE and BCE, R rows for cross-entropy), as
// PyTorch's and Keras's defaults do.
//   mean_squared_error:                L = 1/N sum (p - y)^2                    dL/dp = 2 (p - y) / N
//   binary_cross_entropy_with_logits:  L = 1/N sum max(x,0) - x y + log(1 + e^-|x|)
//                                      dL/dx = (sigmoid(x) - y) / N
//       (the stable form of -y log s(x) - (1-y) log(1 - s(x)): no exp overflows, no log of 0)
//   softmax_cross_entropy:             L = 1/R sum_r logsumexp(x_r) - x_r[y_r]   (y_r a class id)
//                                      dL/dx_r = (softmax(x_r) - onehot(y_r)) / R
//
// On sequences of different lengths (S, B, ...) with one length L_b per sequence (PyTorch's packed sequences,
// Keras's masks), each takes the lengths too and scores the real steps only:
//   (LM1) row (t, b) is real when t < L_b; N and R count the real elements and rows only
//   (LM2) the padded rows add nothing to L and get dL = 0; their targets are not read
// so the loss equals the one of the real steps of all sequences put one after another (PyTorch's loss on a
// PackedSequence's data).
#ifndef XRNN_LOSS_HPP
#define XRNN_LOSS_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <xtensor/xtensor.hpp>

#include <xrnn/config.hpp>
#include <xrnn/detail/tensor.hpp>
#include <xrnn/layers/activations.hpp>

namespace xrnn
{
    namespace detail
    {
        template <class T, std::size_t N>
        void check_not_empty(const char* where, const xt::xtensor<T, N>& x)
        {
            if (x.size() == 0)
            {
                throw shape_error(std::string(where) + ": the prediction is empty, shape " + shape_to_string(x.shape()));
            }
        }

        /// (LM1) For x (S, B, ...) of sequences of lengths[b] steps: whether each of its S B rows is real, and
        /// how many are (all of them when lengths is nullptr).
        template <class Shape>
        std::size_t real_rows(const char* where, const Shape& shape, const std::size_t* lengths, std::size_t count,
                              std::vector<char>& real)
        {
            const std::size_t steps = shape.size() >= 2 ? shape[0] : 0;
            const std::size_t batch = shape.size() >= 2 ? shape[1] : 0;
            if (lengths == nullptr)
            {
                real.assign(steps * batch, 1);
                return steps * batch;
            }
            if (shape.size() < 2 || count != batch)
            {
                throw shape_error(std::string(where) + ": lengths expected one per sequence of a (S, B, ...) "
                                  + "prediction, but got " + std::to_string(count) + " for shape "
                                  + shape_to_string(shape));
            }
            real.assign(steps * batch, 0);
            std::size_t alive = 0;
            for (std::size_t b = 0; b < batch; ++b)
            {
                if (lengths[b] < 1 || lengths[b] > steps)
                {
                    throw value_error(std::string(where) + ": lengths expected in [1, " + std::to_string(steps)
                                      + "] (the steps) but sequence " + std::to_string(b) + " has length "
                                      + std::to_string(lengths[b]));
                }
                for (std::size_t t = 0; t < lengths[b]; ++t)
                {
                    real[t * batch + b] = 1;
                }
                alive += lengths[b];
            }
            return alive;
        }

        /// The mean over the real elements (LM1) of term(p, y, j), which returns an element's loss and its
        /// derivative with respect to p (before dividing by N); the padded elements get 0 (LM2).
        template <class T, std::size_t N, class Term>
        T masked_elementwise_mean(const char* where, const xt::xtensor<T, N>& pred, const xt::xtensor<T, N>& target,
                                  const std::size_t* lengths, std::size_t count, xt::xtensor<T, N>* grad, Term&& term)
        {
            check_not_empty(where, pred);
            check_same_shape(where, "target", target.shape(), pred.shape(), " (the prediction's)");
            std::vector<char> real;
            const std::size_t rows = real_rows(where, pred.shape(), lengths, count, real);
            const std::size_t width = pred.size() / real.size();
            const T n = static_cast<T>(rows * width);
            if (grad != nullptr)
            {
                ensure_shape(*grad, pred.shape());
            }
            T total = 0;
            for (std::size_t r = 0; r < real.size(); ++r)
            {
                for (std::size_t j = r * width; j < (r + 1) * width; ++j)
                {
                    T derivative = 0;
                    if (real[r])
                    {
                        const auto [value, d] = term(pred.data()[j], target.data()[j], j);
                        total += value;
                        derivative = d;
                    }
                    if (grad != nullptr)
                    {
                        grad->data()[j] = derivative / n;
                    }
                }
            }
            return total / n;
        }

        template <class T, std::size_t N>
        T masked_mean_squared_error(const xt::xtensor<T, N>& pred, const xt::xtensor<T, N>& target,
                                    const std::size_t* lengths, std::size_t count, xt::xtensor<T, N>* grad)
        {
            return masked_elementwise_mean("mean_squared_error", pred, target, lengths, count, grad,
                                           [](T p, T y, std::size_t) {
                                               const T e = p - y;
                                               return std::pair<T, T>{e * e, T(2) * e};
                                           });
        }

        template <class T, std::size_t N>
        T masked_binary_cross_entropy(const xt::xtensor<T, N>& logits, const xt::xtensor<T, N>& target,
                                      const std::size_t* lengths, std::size_t count, xt::xtensor<T, N>* grad)
        {
            constexpr const char* where = "binary_cross_entropy_with_logits";
            return masked_elementwise_mean(where, logits, target, lengths, count, grad, [](T x, T y, std::size_t j) {
                if (!(y >= T(0) && y <= T(1)))
                {
                    std::ostringstream message;
                    message.precision(17);
                    message << where << ": target expected in [0, 1] but element " << j << " is " << y;
                    throw value_error(message.str());
                }
                return std::pair<T, T>{std::max(x, T(0)) - x * y + std::log1p(std::exp(-std::abs(x))),
                                       T(1) / (T(1) + std::exp(-x)) - y};
            });
        }

        template <class T, std::size_t N, class Label>
        T masked_softmax_cross_entropy(const xt::xtensor<T, N>& logits, const xt::xtensor<Label, N - 1>& target,
                                       const std::size_t* lengths, std::size_t count, xt::xtensor<T, N>* grad)
        {
            static_assert(N >= 2, "xrnn::softmax_cross_entropy: logits must have a class axis");
            static_assert(std::is_integral<Label>::value, "xrnn::softmax_cross_entropy: targets must be class ids");
            constexpr const char* where = "softmax_cross_entropy";
            detail::check_not_empty(where, logits);
            const std::size_t classes = logits.shape()[N - 1];
            const std::vector<std::size_t> row_shape(logits.shape().begin(), logits.shape().end() - 1);
            detail::check_same_shape(where, "target", target.shape(), row_shape);
            const std::size_t rows = logits.size() / classes;
            std::vector<char> real;
            const std::size_t real_count
                = lengths == nullptr ? rows : real_rows(where, logits.shape(), lengths, count, real);
            if (grad != nullptr)
            {
                detail::ensure_shape(*grad, logits.shape());
            }
            T total = 0;
            for (std::size_t r = 0; r < rows; ++r)
            {
                if (lengths != nullptr && !real[r])  // (LM2)
                {
                    if (grad != nullptr)
                    {
                        std::fill(grad->data() + r * classes, grad->data() + (r + 1) * classes, T(0));
                    }
                    continue;
                }
                const Label label = target.data()[r];
                if (!detail::index_in_range(label, classes))
                {
                    throw value_error(std::string(where) + ": class id " + std::to_string(label) + " at row "
                                      + std::to_string(r) + " is outside [0, " + std::to_string(classes) + ")");
                }
                const T* x = logits.data() + r * classes;
                const T peak = *std::max_element(x, x + classes);
                T sum = 0;
                for (std::size_t c = 0; c < classes; ++c)
                {
                    sum += std::exp(x[c] - peak);
                }
                const T log_sum_exp = peak + std::log(sum);
                total += log_sum_exp - x[static_cast<std::size_t>(label)];
                if (grad != nullptr)
                {
                    T* g = grad->data() + r * classes;
                    for (std::size_t c = 0; c < classes; ++c)
                    {
                        g[c] = std::exp(x[c] - log_sum_exp) / static_cast<T>(real_count);
                    }
                    g[static_cast<std::size_t>(label)] -= T(1) / static_cast<T>(real_count);
                }
            }
            return total / static_cast<T>(real_count);
        }
    }  // namespace detail

    /// Mean squared error over all elements; writes dL/dpred into *grad when grad is not null.
    template <class T, std::size_t N>
    T mean_squared_error(const xt::xtensor<T, N>& pred, const xt::xtensor<T, N>& target,
                         xt::xtensor<T, N>* grad = nullptr)
    {
        constexpr const char* where = "mean_squared_error";
        detail::check_not_empty(where, pred);
        detail::check_same_shape(where, "target", target.shape(), pred.shape(), " (the prediction's)");
        const T n = static_cast<T>(pred.size());
        if (grad != nullptr)
        {
            detail::ensure_shape(*grad, pred.shape());
            xt::noalias(*grad) = (T(2) / n) * (pred - target);
        }
        return xt::sum(xt::square(pred - target))() / n;
    }

    /// Binary cross-entropy of logits against targets in [0, 1], averaged over all elements.
    template <class T, std::size_t N>
    T binary_cross_entropy_with_logits(const xt::xtensor<T, N>& logits, const xt::xtensor<T, N>& target,
                                       xt::xtensor<T, N>* grad = nullptr)
    {
        constexpr const char* where = "binary_cross_entropy_with_logits";
        detail::check_not_empty(where, logits);
        detail::check_same_shape(where, "target", target.shape(), logits.shape(), " (the prediction's)");
        for (std::size_t j = 0; j < target.size(); ++j)
        {
            const T y = target.data()[j];
            if (!(y >= T(0) && y <= T(1)))
            {
                std::ostringstream message;
                message.precision(17);
                message << where << ": target expected in [0, 1] but element " << j << " is " << y;
                throw value_error(message.str());
            }
        }
        const T n = static_cast<T>(logits.size());
        if (grad != nullptr)
        {
            detail::ensure_shape(*grad, logits.shape());
            activation::sigmoid::forward(logits, *grad);
            *grad = (*grad - target) / n;
        }
        return xt::sum(xt::maximum(logits, T(0)) - logits * target + xt::log1p(xt::exp(-xt::abs(logits))))() / n;
    }

    /// Softmax cross-entropy: logits (R, C) or (S, B, C), targets (R) or (S, B) class ids in [0, C),
    /// averaged over rows.
    template <class T, std::size_t N, class Label>
    T softmax_cross_entropy(const xt::xtensor<T, N>& logits, const xt::xtensor<Label, N - 1>& target,
                            xt::xtensor<T, N>* grad = nullptr)
    {
        return detail::masked_softmax_cross_entropy(logits, target, nullptr, 0, grad);
    }

    /// Mean squared error over the real steps of sequences pred (S, B, ...) of lengths[b] steps each (LM1, LM2).
    template <class T, std::size_t N>
    T mean_squared_error(const xt::xtensor<T, N>& pred, const xt::xtensor<T, N>& target,
                         const std::vector<std::size_t>& lengths, xt::xtensor<T, N>* grad = nullptr)
    {
        return detail::masked_mean_squared_error(pred, target, lengths.data(), lengths.size(), grad);
    }

    /// Binary cross-entropy of logits (S, B, ...) over the real steps of sequences of lengths[b] steps (LM1, LM2).
    template <class T, std::size_t N>
    T binary_cross_entropy_with_logits(const xt::xtensor<T, N>& logits, const xt::xtensor<T, N>& target,
                                       const std::vector<std::size_t>& lengths, xt::xtensor<T, N>* grad = nullptr)
    {
        return detail::masked_binary_cross_entropy(logits, target, lengths.data(), lengths.size(), grad);
    }

    /// Softmax cross-entropy of logits (S, B, C) against class ids (S, B) over the real steps of sequences of
    /// lengths[b] steps (LM1, LM2): the class ids of the padded steps are not read.
    template <class T, std::size_t N, class Label>
    T softmax_cross_entropy(const xt::xtensor<T, N>& logits, const xt::xtensor<Label, N - 1>& target,
                            const std::vector<std::size_t>& lengths, xt::xtensor<T, N>* grad = nullptr)
    {
        static_assert(N >= 3, "xrnn::softmax_cross_entropy: lengths need sequence logits (S, B, C)");
        return detail::masked_softmax_cross_entropy(logits, target, lengths.data(), lengths.size(), grad);
    }
}  // namespace xrnn

#endif
