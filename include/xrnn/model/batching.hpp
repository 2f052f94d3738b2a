// xtensor-rnn: moving samples between the user's batch-major data and the layers' time-major batches.
//
// Data sets are batch-major as in Keras: x (N, S) token ids or (N, S, F) features, y (N, ...). The recurrent
// layers read (S, B, ...), so a batch of sequences is gathered with its first two axes swapped; samples that are
// not sequences (and targets of many-to-one models) are gathered row by row.
#ifndef XRNN_MODEL_BATCHING_HPP
#define XRNN_MODEL_BATCHING_HPP

#include <algorithm>
#include <array>
#include <cstddef>
#include <vector>

#include <xtensor/xtensor.hpp>

#include <xrnn/detail/tensor.hpp>
#include <xrnn/random.hpp>

namespace xrnn
{
    namespace detail
    {
        /// out (S, B, rest...) = x[index[first..first+B)] with x (N, S, rest...), converted to out's value type.
        template <class In, std::size_t N, class Out>
        void gather_time_major(const xt::xtensor<In, N>& x, const std::vector<std::size_t>& index, std::size_t first,
                               std::size_t count, xt::xtensor<Out, N>& out)
        {
            static_assert(N >= 2, "xrnn: a batch of sequences needs at least the axes (N, S)");
            std::array<std::size_t, N> shape;
            std::copy(x.shape().begin(), x.shape().end(), shape.begin());
            const std::size_t steps = shape[1];
            shape[0] = steps;
            shape[1] = count;
            ensure_shape(out, shape);
            const std::size_t inner = steps == 0 ? 0 : x.size() / (x.shape()[0] * steps);
            for (std::size_t b = 0; b < count; ++b)
            {
                const In* sample = x.data() + index[first + b] * steps * inner;
                for (std::size_t t = 0; t < steps; ++t)
                {
                    std::copy(sample + t * inner, sample + (t + 1) * inner, out.data() + (t * count + b) * inner);
                }
            }
        }

        /// out (B, rest...) = x[index[first..first+B)] with x (N, rest...).
        template <class In, std::size_t N, class Out>
        void gather_rows(const xt::xtensor<In, N>& x, const std::vector<std::size_t>& index, std::size_t first,
                         std::size_t count, xt::xtensor<Out, N>& out)
        {
            std::array<std::size_t, N> shape;
            std::copy(x.shape().begin(), x.shape().end(), shape.begin());
            shape[0] = count;
            ensure_shape(out, shape);
            const std::size_t inner = x.shape()[0] == 0 ? 0 : x.size() / x.shape()[0];
            for (std::size_t b = 0; b < count; ++b)
            {
                const In* sample = x.data() + index[first + b] * inner;
                std::copy(sample, sample + inner, out.data() + b * inner);
            }
        }

        /// Gathers time-major when the batch is a sequence batch, row by row otherwise.
        template <bool TimeMajor, class In, std::size_t N, class Out>
        void gather(const xt::xtensor<In, N>& x, const std::vector<std::size_t>& index, std::size_t first,
                    std::size_t count, xt::xtensor<Out, N>& out)
        {
            if constexpr (TimeMajor)
            {
                gather_time_major(x, index, first, count, out);
            }
            else
            {
                gather_rows(x, index, first, count, out);
            }
        }

        /// The inverse for outputs: result[first + b] = y[:, b] (time-major y) or y[b] (row-major y).
        template <bool TimeMajor, class T, std::size_t N>
        void scatter(const xt::xtensor<T, N>& y, std::size_t first, xt::xtensor<T, N>& result)
        {
            if constexpr (TimeMajor)
            {
                const std::size_t steps = y.shape()[0];
                const std::size_t count = y.shape()[1];
                const std::size_t inner = y.size() / std::max<std::size_t>(steps * count, 1);
                for (std::size_t t = 0; t < steps; ++t)
                {
                    for (std::size_t b = 0; b < count; ++b)
                    {
                        const T* from = y.data() + (t * count + b) * inner;
                        std::copy(from, from + inner, result.data() + ((first + b) * steps + t) * inner);
                    }
                }
            }
            else
            {
                std::copy(y.begin(), y.end(), result.data() + first * (y.size() / std::max<std::size_t>(y.shape()[0], 1)));
            }
        }

        /// The length of each sample of token ids x (N, S, ...): its number of non-zero ids (0 is padding).
        template <class XV, std::size_t XN>
        std::vector<std::size_t> sample_lengths(const xt::xtensor<XV, XN>& x)
        {
            const std::size_t n = x.shape()[0];
            const std::size_t per_sample = n == 0 ? 0 : x.size() / n;
            std::vector<std::size_t> lengths(n, 0);
            for (std::size_t i = 0; i < n; ++i)
            {
                const XV* sample = x.data() + i * per_sample;
                lengths[i] = static_cast<std::size_t>(std::count_if(sample, sample + per_sample,
                                                                    [](XV v) { return v != XV(0); }));
            }
            return lengths;
        }

        /// Bucketing (fit_options::bucket_by_length): order, already shuffled, is cut into pools of `pool` batches;
        /// each pool is sorted by length (stable), so that its batches hold sequences of similar lengths, and
        /// then the whole batches are shuffled with rng (the last, partial batch stays last). Deterministic for a
        /// seed.
        inline void bucket_by_length(std::vector<std::size_t>& order, const std::vector<std::size_t>& lengths,
                                     std::size_t batch_size, std::size_t pool, random_engine& rng)
        {
            // batch_size * pool, saturated at the whole order (a batch_size near SIZE_MAX must not wrap to 0)
            const std::size_t pool_size = batch_size > order.size() / pool ? order.size() : batch_size * pool;
            for (std::size_t first = 0; first < order.size(); first += pool_size)
            {
                const auto begin = order.begin() + static_cast<std::ptrdiff_t>(first);
                const auto end = order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), first + pool_size));
                std::stable_sort(begin, end, [&](std::size_t a, std::size_t b) { return lengths[a] < lengths[b]; });
            }
            const std::size_t full = order.size() / batch_size;
            std::vector<std::size_t> batches(full);
            for (std::size_t i = 0; i < full; ++i)
            {
                batches[i] = i;
            }
            for (std::size_t i = full; i > 1; --i)  // Fisher-Yates over whole batches
            {
                std::swap(batches[i - 1], batches[rng.below(i)]);
            }
            std::vector<std::size_t> shuffled(order);
            for (std::size_t i = 0; i < full; ++i)
            {
                std::copy(order.begin() + static_cast<std::ptrdiff_t>(batches[i] * batch_size),
                          order.begin() + static_cast<std::ptrdiff_t>((batches[i] + 1) * batch_size),
                          shuffled.begin() + static_cast<std::ptrdiff_t>(i * batch_size));
            }
            order.swap(shuffled);
        }
    }  // namespace detail
}  // namespace xrnn

#endif
