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
    }  // namespace detail
}  // namespace xrnn

#endif
