// xtensor-rnn: compile-time check that one layer can feed the next.
//
// Layer sizes are template arguments, so a mismatch between neighbours is known before the program runs:
//   xrnn::assert_connectable<xrnn::embedding<float, 10000, 128>, xrnn::lstm<float, 128, 64>>();  // compiles
//   xrnn::assert_connectable<xrnn::embedding<float, 10000, 100>, xrnn::lstm<float, 128, 64>>();  // error:
//     "xrnn: the upper layer's input size must equal the lower layer's output size"
// A model that composes layers calls it for every neighbouring pair.
#ifndef XRNN_CONNECT_HPP
#define XRNN_CONNECT_HPP

#include <cstddef>
#include <type_traits>

namespace xrnn
{
    template <class Lower, class Upper>
    constexpr bool connectable = Lower::output_size == Upper::input_size
                                 && std::is_same<typename Lower::value_type, typename Upper::value_type>::value;

    template <class Lower, class Upper>
    constexpr void assert_connectable() noexcept
    {
        static_assert(std::is_same<typename Lower::value_type, typename Upper::value_type>::value,
                      "xrnn: neighbouring layers must use the same scalar type T");
        static_assert(Lower::output_size == Upper::input_size,
                      "xrnn: the upper layer's input size must equal the lower layer's output size");
    }
}  // namespace xrnn

#endif
