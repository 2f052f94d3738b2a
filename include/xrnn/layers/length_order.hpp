// xtensor-rnn: the lengths of a batch's sequences in a layer: given_lengths, what a layer's set_lengths keeps and
// checks against each batch (recurrent, bidirectional and pooling layers), and length_order, the order a recurrent
// layer runs the sequences in: sorted by decreasing length (PyTorch's pack_padded_sequence(enforce_sorted=False)
// sorts them the same way).
//
// With lengths, the engine skips a tile of rows at step t only when all its rows are past their length, and
// splits a tile into runs of alive rows otherwise (recurrent_masking.hpp, (M1)-(M4)). In the data's order almost
// every tile holds one long sequence: on the first 64 IMDB reviews cut at 200 words (79% real tokens) every
// 8-row tile is alive at every step, so masking would save nothing and cost the split runs. Sorted, the rows
// alive at step t are the first n_t ones: one run per tile, and a step costs its alive rows (83% of the padded
// rectangle there, with 8-row tiles). So a layer given lengths that are not already non-increasing runs:
//   (M7) row i of the sorted batch = row order[i] of the layer's, order the stable sort by decreasing length:
//        x, the initial states and dy are gathered into that order before the cells run; the outputs, the
//        final states, dx and the initial states' gradients are scattered back after
// Each row's values are computed as they would be in any position; the parameter gradients sum the rows in
// another order (rounding), and dropout masks, drawn row by row, fall on other sequences.
#ifndef XRNN_LAYERS_LENGTH_ORDER_HPP
#define XRNN_LAYERS_LENGTH_ORDER_HPP

#include <algorithm>
#include <cstddef>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include <xrnn/config.hpp>

namespace xrnn
{
    namespace detail
    {
        /// A value_error naming who() (called only then) when one of lengths[0 .. batch) is outside [1, steps].
        template <class Who>
        void check_length_range(const Who& who, const std::size_t* lengths, std::size_t batch, std::size_t steps)
        {
            for (std::size_t b = 0; b < batch; ++b)
            {
                if (lengths[b] < 1 || lengths[b] > steps)
                {
                    throw value_error(who() + ": lengths expected in [1, " + std::to_string(steps)
                                      + "] (the steps of x) but sequence " + std::to_string(b) + " has length "
                                      + std::to_string(lengths[b]));
                }
            }
        }

        /// The lengths a layer is given for its next forwards (its set_lengths), checked against each batch: what
        /// recurrent, bidirectional and pooling layers share.
        class given_lengths
        {
        public:
            /// count lengths, or nullptr for sequences of all S steps.
            void set(const std::size_t* lengths, std::size_t count)
            {
                m_given = lengths != nullptr;
                if (m_given)
                {
                    m_lengths.assign(lengths, lengths + count);
                }
            }

            /// The lengths for a batch of `batch` sequences of `steps` steps, or nullptr when none were given;
            /// a shape_error for another count, a value_error for a length outside [1, steps], naming who() (called
            /// only then: a forward allocates nothing).
            template <class Who>
            const std::size_t* check(const Who& who, std::size_t batch, std::size_t steps) const
            {
                if (!m_given)
                {
                    return nullptr;
                }
                if (m_lengths.size() != batch)
                {
                    throw shape_error(who() + ": expected one length per sequence (" + std::to_string(batch)
                                      + ") but got " + std::to_string(m_lengths.size()));
                }
                check_length_range(who, m_lengths.data(), batch, steps);
                return m_lengths.data();
            }

            bool given() const noexcept
            {
                return m_given;
            }

            std::size_t operator[](std::size_t b) const noexcept
            {
                return m_lengths[b];
            }

            std::size_t bytes() const noexcept
            {
                return m_lengths.capacity() * sizeof(std::size_t);
            }

        private:
            bool m_given = false;
            std::vector<std::size_t> m_lengths;
        };

        /// (M7) The order a layer runs a batch of sequences of given lengths in.
        class length_order
        {
        public:
            /// Sorts the rows by decreasing length (stable) unless lengths is nullptr or already non-increasing;
            /// returns whether the rows run in another order than the caller's.
            bool arrange(const std::size_t* lengths, std::size_t batch)
            {
                m_active = lengths != nullptr && !std::is_sorted(lengths, lengths + batch, std::greater<>());
                if (m_active)
                {
                    m_order.resize(batch);
                    std::iota(m_order.begin(), m_order.end(), std::size_t(0));
                    // stable by the index (std::stable_sort would allocate a buffer on every call)
                    std::sort(m_order.begin(), m_order.end(), [&](std::size_t a, std::size_t b) {
                        return lengths[a] != lengths[b] ? lengths[a] > lengths[b] : a < b;
                    });
                    m_lengths.resize(batch);
                    for (std::size_t i = 0; i < batch; ++i)
                    {
                        m_lengths[i] = lengths[m_order[i]];
                    }
                }
                return m_active;
            }

            /// Whether the last arrange() sorted the rows.
            bool active() const noexcept
            {
                return m_active;
            }

            /// The sorted lengths (valid while active()).
            const std::size_t* lengths() const noexcept
            {
                return m_lengths.data();
            }

            /// to[t, i, :] = from[t, order[i], :] for steps blocks of batch rows of width values.
            template <class T>
            void gather(const T* from, T* to, std::size_t steps, std::size_t width) const
            {
                const std::size_t batch = m_order.size();
                for (std::size_t t = 0; t < steps; ++t)
                {
                    for (std::size_t i = 0; i < batch; ++i)
                    {
                        const T* src = from + (t * batch + m_order[i]) * width;
                        std::copy(src, src + width, to + (t * batch + i) * width);
                    }
                }
            }

            /// to[t, order[i], :] = from[t, i, :]: gather's inverse.
            template <class T>
            void scatter(const T* from, T* to, std::size_t steps, std::size_t width) const
            {
                const std::size_t batch = m_order.size();
                for (std::size_t t = 0; t < steps; ++t)
                {
                    for (std::size_t i = 0; i < batch; ++i)
                    {
                        const T* src = from + (t * batch + i) * width;
                        std::copy(src, src + width, to + (t * batch + m_order[i]) * width);
                    }
                }
            }

            std::size_t bytes() const noexcept
            {
                return (m_order.capacity() + m_lengths.capacity()) * sizeof(std::size_t);
            }

        private:
            bool m_active = false;
            std::vector<std::size_t> m_order;    // row i of the sorted batch is row m_order[i] of the caller's
            std::vector<std::size_t> m_lengths;  // m_lengths[i] = lengths[m_order[i]]
        };
    }  // namespace detail
}  // namespace xrnn

#endif
