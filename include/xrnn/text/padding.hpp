// xtensor-rnn: pad_sequences, ragged id sequences -> one rectangular (N, maxlen) array, as Keras's pad_sequences.
//
// Keras pads and truncates at the front by default ("pre"): a many-to-one model reads its answer after the last
// step, so the review's last words should be the last steps and the padding should come before them, where the
// recurrent state can forget it.
//
// The result is batch-major (N, maxlen), as in Keras. The recurrent layers take time-major ids (S, B): give them
// xt::transpose of a batch of rows.
#ifndef XRNN_TEXT_PADDING_HPP
#define XRNN_TEXT_PADDING_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <xtensor/xtensor.hpp>

#include <xrnn/config.hpp>

namespace xrnn
{
    /// Where a short sequence gets its padding: before its ids (pre) or after them (post).
    enum class padding
    {
        pre,
        post
    };

    /// Which end of a long sequence is cut: the beginning (pre, keeping the last maxlen ids) or the end (post).
    enum class truncating
    {
        pre,
        post
    };

    /// Row i holds sequences[i], cut to maxlen ids and padded with value up to maxlen. value_error if maxlen is 0.
    ///   pad_sequences({{1, 2}, {1, 2, 3, 4, 5}}, 4)  ->  {{0, 0, 1, 2}, {2, 3, 4, 5}}
    ///   pad_sequences({{1, 2}, {1, 2, 3, 4, 5}}, 4, padding::post, truncating::post)  ->  {{1, 2, 0, 0}, {1, 2, 3, 4}}
    inline xt::xtensor<std::int32_t, 2> pad_sequences(const std::vector<std::vector<std::int32_t>>& sequences,
                                                      std::size_t maxlen, padding pad = padding::pre,
                                                      truncating cut = truncating::pre, std::int32_t value = 0)
    {
        if (maxlen == 0)
        {
            throw value_error("pad_sequences: maxlen expected >= 1 but got 0");
        }
        xt::xtensor<std::int32_t, 2> out({sequences.size(), maxlen}, value);
        for (std::size_t i = 0; i < sequences.size(); ++i)
        {
            const auto& seq = sequences[i];
            const std::size_t kept = std::min(seq.size(), maxlen);
            const auto first = cut == truncating::pre ? seq.end() - static_cast<std::ptrdiff_t>(kept) : seq.begin();
            const std::size_t column = pad == padding::pre ? maxlen - kept : 0;
            std::copy(first, first + static_cast<std::ptrdiff_t>(kept), out.data() + i * maxlen + column);
        }
        return out;
    }
}  // namespace xrnn

#endif
