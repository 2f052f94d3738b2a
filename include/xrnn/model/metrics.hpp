// xtensor-rnn: what a model is trained to minimise, and how a batch or a data set is scored: the objective's loss
// and gradient, its metric (accuracy or mean absolute error), and its link function for predictions.
//
// The last layer outputs logits: the objective's link (sigmoid for binary cross-entropy, softmax for softmax
// cross-entropy, identity for MSE) is applied by the loss and by predict(), never twice.
#ifndef XRNN_MODEL_METRICS_HPP
#define XRNN_MODEL_METRICS_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include <xtensor/xtensor.hpp>

#include <xrnn/config.hpp>
#include <xrnn/layers/activations.hpp>
#include <xrnn/loss.hpp>
#include <xrnn/model/batching.hpp>

namespace xrnn
{
    /// What the model is trained to minimise; it also fixes the metric and predict()'s link function.
    enum class objective
    {
        mean_squared_error,     // targets: floats of the output's shape; metric: mean absolute error ("mae")
        binary_cross_entropy,   // on logits; targets in {0, 1} of the output's shape; metric: accuracy
        softmax_cross_entropy   // on logits (.., C); targets: integer class ids (..); metric: accuracy
    };

    /// What evaluate() measured: the mean loss and the metric over all samples.
    struct evaluation
    {
        double loss = 0.0;
        double metric = 0.0;
        std::string metric_name;
        std::size_t samples = 0;
    };

    /// "accuracy" for the classification objectives, "mae" for mean squared error.
    inline std::string metric_name(objective goal)
    {
        return goal == objective::mean_squared_error ? "mae" : "accuracy";
    }

    namespace detail
    {
        inline std::string objective_name(std::uint64_t code)
        {
            switch (code)
            {
            case static_cast<std::uint64_t>(objective::mean_squared_error): return "mean_squared_error";
            case static_cast<std::uint64_t>(objective::binary_cross_entropy): return "binary_cross_entropy";
            case static_cast<std::uint64_t>(objective::softmax_cross_entropy): return "softmax_cross_entropy";
            default: return "objective " + std::to_string(code);
            }
        }

        /// Sums that make an epoch's mean loss and metric exact whatever the batch sizes.
        struct running_score
        {
            double loss_sum = 0.0;    // batch mean loss x samples in the batch
            double metric_sum = 0.0;  // correct predictions, or absolute errors
            double metric_count = 0.0;
            std::size_t samples = 0;

            double loss() const noexcept
            {
                return samples == 0 ? 0.0 : loss_sum / static_cast<double>(samples);
            }
            double metric() const noexcept
            {
                return metric_count == 0.0 ? 0.0 : metric_sum / metric_count;
            }
            void add(const running_score& other) noexcept
            {
                loss_sum += other.loss_sum;
                metric_sum += other.metric_sum;
                metric_count += other.metric_count;
                samples += other.samples;
            }
        };

        /// Batch loss (its mean, with dL/dout into *grad when not null), and the metric's sum and count.
        template <class Out, class Target>
        double score_batch(objective goal, const Out& out, const Target& target, Out* grad, running_score& score,
                           std::size_t samples)
        {
            using T = typename Out::value_type;
            double loss = 0.0;
            using YV = typename Target::value_type;
            if constexpr (std::is_integral<YV>::value)
            {
                loss = softmax_cross_entropy(out, target, grad);
                const std::size_t classes = out.shape()[Out::rank - 1];
                const std::size_t rows = out.size() / classes;
                for (std::size_t r = 0; r < rows; ++r)
                {
                    const T* row = out.data() + r * classes;
                    const auto best = static_cast<std::size_t>(std::max_element(row, row + classes) - row);
                    score.metric_sum += best == static_cast<std::size_t>(target.data()[r]) ? 1.0 : 0.0;
                }
                score.metric_count += static_cast<double>(rows);
            }
            else if (goal == objective::binary_cross_entropy)
            {
                loss = binary_cross_entropy_with_logits(out, target, grad);
                for (std::size_t j = 0; j < out.size(); ++j)
                {
                    score.metric_sum += (out.data()[j] > T(0)) == (target.data()[j] > T(0.5)) ? 1.0 : 0.0;
                }
                score.metric_count += static_cast<double>(out.size());
            }
            else
            {
                loss = mean_squared_error(out, target, grad);
                for (std::size_t j = 0; j < out.size(); ++j)
                {
                    score.metric_sum += std::abs(static_cast<double>(out.data()[j]) - target.data()[j]);
                }
                score.metric_count += static_cast<double>(out.size());
            }
            score.loss_sum += loss * static_cast<double>(samples);
            score.samples += samples;
            return loss;
        }

        /// The objective's link on outputs, in place: sigmoid, softmax over the last axis, or nothing (MSE).
        template <class Out>
        void apply_link(objective goal, Out& out)
        {
            if (goal == objective::binary_cross_entropy)
            {
                activation::sigmoid::forward(out, out);
            }
            else if (goal == objective::softmax_cross_entropy)
            {
                const std::size_t classes = out.shape()[Out::rank - 1];
                activation::softmax::forward_rows(out.data(), out.data(), out.size() / classes, classes);
            }
        }

        /// Targets keep integer class ids as they are; float targets take the model's scalar type.
        template <class T, class YV, std::size_t YN>
        using target_t = xt::xtensor<std::conditional_t<std::is_integral<YV>::value, YV, T>, YN>;

        /// Loss and metric of a model over the samples `index` of x, y, in inference mode, batch by batch.
        template <class Model, class XV, std::size_t XN, class YV, std::size_t YN>
        running_score score_indices(Model& model, objective goal, const xt::xtensor<XV, XN>& x,
                                    const xt::xtensor<YV, YN>& y, const std::vector<std::size_t>& index,
                                    std::size_t batch_size)
        {
            running_score score;
            typename Model::template batch_input_t<XV, XN> batch;
            target_t<typename Model::value_type, YV, YN> target;
            for (std::size_t first = 0; first < index.size(); first += batch_size)
            {
                const std::size_t count = std::min(batch_size, index.size() - first);
                gather<Model::sequence_input>(x, index, first, count, batch);
                gather<Model::template output_time_major<XV, XN>>(y, index, first, count, target);
                const auto& out = model.forward(batch, mode::inference);
                score_batch(goal, out, target, static_cast<std::decay_t<decltype(out)>*>(nullptr), score, count);
            }
            return score;
        }
    }  // namespace detail
}  // namespace xrnn

#endif
