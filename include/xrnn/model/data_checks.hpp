// xtensor-rnn: the checks of a model's data before any batch runs, so that a bad sample is refused with a
// message naming it, not found by the loss of some batch after training has already changed the weights.
//
// x is (N, S) token ids for a model that starts with an embedding, (N, S, F) features for one that starts with a
// recurrent layer, (N, F) for one that starts with a dense layer. y has one target per output: (N, out) or
// (N, S, out) floats, or class ids (N) or (N, S) for softmax cross-entropy. Errors are xrnn::shape_error or
// xrnn::value_error; a wrong type or rank of x or y is a static_assert.
#ifndef XRNN_MODEL_DATA_CHECKS_HPP
#define XRNN_MODEL_DATA_CHECKS_HPP

#include <algorithm>
#include <array>
#include <cstddef>
#include <numeric>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <xtensor/xtensor.hpp>

#include <xrnn/config.hpp>
#include <xrnn/detail/tensor.hpp>
#include <xrnn/model/metrics.hpp>

namespace xrnn
{
    namespace detail
    {
        inline std::vector<std::size_t> all_indices(std::size_t n)
        {
            std::vector<std::size_t> index(n);
            std::iota(index.begin(), index.end(), std::size_t(0));
            return index;
        }

        inline void check_batch_size(const char* where, std::size_t batch_size)
        {
            check_positive(where, "batch_size", batch_size);
        }

        /// x: not empty, sequences of at least one step, token ids inside the first layer's vocabulary.
        template <class Model, class XV, std::size_t XN>
        void check_inputs(const char* where, const xt::xtensor<XV, XN>& x)
        {
            using first_layer = typename Model::first_layer;
            constexpr bool sequence_input = Model::sequence_input;
            static_assert(std::is_integral<XV>::value == first_layer::reads_token_ids,
                          "xrnn::sequential: x must hold integer token ids for a model that starts with an embedding, "
                          "floating-point features otherwise");
            static_assert(!sequence_input || XN >= 2, "xrnn::sequential: sequence data must be (N, S) or (N, S, F)");
            if (x.shape()[0] == 0)
            {
                throw shape_error(std::string(where) + ": the data set is empty (x has 0 samples, shape "
                                  + shape_to_string(x.shape()) + ")");
            }
            if constexpr (sequence_input)
            {
                if (x.shape()[1] == 0)
                {
                    throw shape_error(std::string(where) + ": sequences of 0 steps (x shape "
                                      + shape_to_string(x.shape()) + ")");
                }
            }
            if constexpr (first_layer::reads_token_ids)
            {
                // All ids before the first batch: the embedding would refuse a bad one only when its batch comes,
                // after fit() had already trained on the batches before it.
                constexpr std::size_t vocabulary = first_layer::vocabulary_size;
                const std::size_t steps = x.shape()[1];
                const std::size_t per_sample = x.size() / x.shape()[0];
                for (std::size_t j = 0; j < x.size(); ++j)
                {
                    if (!index_in_range(x.data()[j], vocabulary))
                    {
                        throw value_error(std::string(where) + ": token id " + std::to_string(x.data()[j])
                                          + " of sample " + std::to_string(j / per_sample) + ", step "
                                          + std::to_string((j % per_sample) % steps) + " is outside the vocabulary [0, "
                                          + std::to_string(vocabulary) + ")");
                    }
                }
            }
        }

        /// x as check_inputs, and y: as many samples, one target per output, values the objective can take.
        template <class Model, class XV, std::size_t XN, class YV, std::size_t YN>
        void check_data(const char* where, objective goal, const xt::xtensor<XV, XN>& x, const xt::xtensor<YV, YN>& y)
        {
            constexpr std::size_t output_size = Model::output_size;
            check_inputs<Model>(where, x);
            if (y.shape()[0] != x.shape()[0])
            {
                throw shape_error(std::string(where) + ": y has " + std::to_string(y.shape()[0])
                                  + " samples but x has " + std::to_string(x.shape()[0]) + " (x shape "
                                  + shape_to_string(x.shape()) + ", y shape " + shape_to_string(y.shape()) + ")");
            }
            constexpr std::size_t out_rank = Model::template output_t<XV, XN>::rank;
            if constexpr (YN + 1 >= out_rank && YN <= out_rank)  // other ranks: a static_assert below says why
            {
                // One target per output: y (N, out) or (N, S, out), class ids (N) or (N, S); checked before any
                // batch, so a wrong y is not found only by the loss of the first batch.
                std::array<std::size_t, YN> expected;
                std::copy(y.shape().begin(), y.shape().end(), expected.begin());
                if constexpr (YN >= 2 && out_rank == 3)
                {
                    expected[1] = x.shape()[1];
                }
                if constexpr (!std::is_integral<YV>::value)
                {
                    expected[YN - 1] = output_size;
                }
                check_same_shape(where, "y", y.shape(), expected, " (one target per output of the model)");
            }
            if constexpr (std::is_integral<YV>::value)
            {
                static_assert(YN + 1 == out_rank,
                              "xrnn::sequential: integer targets are class ids, one per output row: y (N) for a "
                              "(B, C) output, y (N, S) for an (S, B, C) output");
                if (goal != objective::softmax_cross_entropy)
                {
                    throw value_error(std::string(where) + ": integer class ids as targets need "
                                      "objective::softmax_cross_entropy; this model was compiled for another");
                }
                const std::size_t per_sample = y.size() / y.shape()[0];
                for (std::size_t j = 0; j < y.size(); ++j)
                {
                    if (!index_in_range(y.data()[j], output_size))
                    {
                        throw value_error(std::string(where) + ": class id " + std::to_string(y.data()[j])
                                          + " of sample " + std::to_string(j / per_sample) + " is outside [0, "
                                          + std::to_string(output_size) + ")");
                    }
                }
            }
            else
            {
                static_assert(YN == out_rank, "xrnn::sequential: float targets must have the output's rank: y (N, out) "
                                              "for a (B, out) output, y (N, S, out) for an (S, B, out) output");
                if (goal == objective::softmax_cross_entropy)
                {
                    throw value_error(std::string(where) + ": objective::softmax_cross_entropy needs integer class ids "
                                      "as targets, but y holds floating-point values");
                }
                if (goal == objective::binary_cross_entropy)
                {
                    for (std::size_t j = 0; j < y.size(); ++j)
                    {
                        const YV v = y.data()[j];
                        if (!(v == YV(0) || v == YV(1)))
                        {
                            std::ostringstream message;
                            message << where << ": binary cross-entropy labels expected in {0, 1} but sample "
                                    << j / (y.size() / y.shape()[0]) << " has " << v;
                            throw value_error(message.str());
                        }
                    }
                }
            }
        }
    }  // namespace detail
}  // namespace xrnn

#endif
