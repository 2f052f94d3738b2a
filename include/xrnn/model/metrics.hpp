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
            double loss_sum = 0.0;     // batch mean loss x loss_weight of the batch
            double loss_weight = 0.0;  // what a batch's mean is over: its samples, or with lengths its real steps
            double metric_sum = 0.0;   // correct predictions, or absolute errors
            double metric_count = 0.0;
            std::size_t samples = 0;

            double loss() const noexcept
            {
                return loss_weight == 0.0 ? 0.0 : loss_sum / loss_weight;
            }
            double metric() const noexcept
            {
                return metric_count == 0.0 ? 0.0 : metric_sum / metric_count;
            }
            void add(const running_score& other) noexcept
            {
                loss_sum += other.loss_sum;
                loss_weight += other.loss_weight;
                metric_sum += other.metric_sum;
                metric_count += other.metric_count;
                samples += other.samples;
            }
        };

        /// With an embedding that masks id 0 (layers/embedding.hpp, (EM1)) the sequence output's step t of
        /// sequence b belongs to its t-th non-zero id: the targets (S, B, ...) of those steps are moved the same
        /// way, target[t, b] = target[s_t, b] with s_t the step of that id, so that each output meets its own.
        template <class Ids, class Target>
        void compact_targets_like_ids(const Ids& ids, Target& target)
        {
            const std::size_t steps = ids.shape()[0];
            const std::size_t batch = ids.shape()[1];
            const std::size_t width = target.size() / (steps * batch);
            for (std::size_t b = 0; b < batch; ++b)
            {
                std::size_t t = 0;
                for (std::size_t s = 0; s < steps; ++s)
                {
                    if (ids.data()[s * batch + b] != 0)
                    {
                        if (t != s)
                        {
                            const auto* from = target.data() + (s * batch + b) * width;
                            std::copy(from, from + width, target.data() + (t * batch + b) * width);
                        }
                        ++t;
                    }
                }
            }
        }

        /// Batch loss (its mean, with dL/dout into *grad when not null), and the metric's sum and count. With
        /// lengths (one per sequence of a sequence output (S, B, ...)), the padded steps are not scored
        /// (loss.hpp, (LM1), (LM2)).
        template <class Out, class Target>
        double score_batch(objective goal, const Out& out, const Target& target, Out* grad, running_score& score,
                           std::size_t samples, const std::size_t* lengths = nullptr)
        {
            using T = typename Out::value_type;
            double loss = 0.0;
            using YV = typename Target::value_type;
            std::vector<char> real;  // (LM1) per row (t, b) of a sequence output; rows of width values each
            const std::size_t count = Out::rank >= 2 ? out.shape()[1] : 0;
            double weight = static_cast<double>(samples);
            if (lengths != nullptr)  // the mean over the data set is the one over all real steps
            {
                weight = static_cast<double>(detail::real_rows("score", out.shape(), lengths, count, real));
            }
            const std::size_t width = lengths != nullptr ? out.size() / real.size() : 1;
            auto scored = [&](std::size_t j) { return lengths == nullptr || real[j / width]; };
            if constexpr (std::is_integral<YV>::value)
            {
                loss = detail::masked_softmax_cross_entropy(out, target, lengths, count, grad);
                const std::size_t classes = out.shape()[Out::rank - 1];
                const std::size_t rows = out.size() / classes;
                for (std::size_t r = 0; r < rows; ++r)
                {
                    if (!scored(r * classes))
                    {
                        continue;
                    }
                    const T* row = out.data() + r * classes;
                    const auto best = static_cast<std::size_t>(std::max_element(row, row + classes) - row);
                    score.metric_sum += best == static_cast<std::size_t>(target.data()[r]) ? 1.0 : 0.0;
                    score.metric_count += 1.0;
                }
            }
            else if (goal == objective::binary_cross_entropy)
            {
                loss = lengths == nullptr ? binary_cross_entropy_with_logits(out, target, grad)
                                          : detail::masked_binary_cross_entropy(out, target, lengths, count, grad);
                for (std::size_t j = 0; j < out.size(); ++j)
                {
                    if (scored(j))
                    {
                        score.metric_sum += (out.data()[j] > T(0)) == (target.data()[j] > T(0.5)) ? 1.0 : 0.0;
                        score.metric_count += 1.0;
                    }
                }
            }
            else
            {
                loss = lengths == nullptr ? mean_squared_error(out, target, grad)
                                          : detail::masked_mean_squared_error(out, target, lengths, count, grad);
                for (std::size_t j = 0; j < out.size(); ++j)
                {
                    if (scored(j))
                    {
                        score.metric_sum += std::abs(static_cast<double>(out.data()[j]) - target.data()[j]);
                        score.metric_count += 1.0;
                    }
                }
            }
            score.loss_sum += loss * weight;
            score.loss_weight += weight;
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

        /// After a forward of a model with a sequence output (TimeMajor) whose embedding masked id 0: the lengths
        /// of the batch's sequences, with the targets moved to their outputs' steps (compact_targets_like_ids);
        /// nullptr (and the targets untouched) otherwise.
        template <bool TimeMajor, class Model, class Batch, class Target>
        const std::size_t* masked_sequence_targets(const Model& model, const Batch& batch, Target& target)
        {
            if constexpr (TimeMajor && std::is_integral<typename Batch::value_type>::value)
            {
                if (const std::size_t* lengths = model.sequence_lengths())
                {
                    compact_targets_like_ids(batch, target);
                    return lengths;
                }
            }
            static_cast<void>(model);
            static_cast<void>(batch);
            static_cast<void>(target);
            return nullptr;
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
                score_batch(goal, out, target, static_cast<std::decay_t<decltype(out)>*>(nullptr), score, count,
                            masked_sequence_targets<Model::template output_time_major<XV, XN>>(model, batch, target));
            }
            return score;
        }
    }  // namespace detail
}  // namespace xrnn

#endif
