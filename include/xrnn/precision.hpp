// xtensor-rnn: the precision of a recurrent layer's matrix products, chosen at compile time.
//
//   xrnn::lstm<float, In, Hidden, Layers, Out, xrnn::precision::bf16>
//
// precision::native (the default): every product in T, as the rest of the library.
// precision::bf16 (mixed precision, T = float only): the weights, states, gates and gradients stay float, and the
// optimizer updates the float weights; only the operands of the matrix products, (R3), (Q2), (Q4), (Q5) and (Q7)
// (recurrent_forward.hpp, recurrent_backward.hpp), are rounded to bfloat16 (8-bit mantissa, round to nearest even)
// and multiplied with float accumulation, as oneDNN's and PyTorch's bf16 autocast do. Each product term then has a
// relative error of at most 2 u + u^2, u = 2^-8, against about 2^-24 in float: results agree with float to about
// 3 significant digits.
// The gate equations run in float. The weights are rounded into bf16 panels at the start of each forward and
// backward pass, so a weight changed between passes (an optimizer step, a load) is always the one used.
//
// Where the products run (xrnn::bf16_backend()):
//   amx       Intel AMX tiles (Sapphire Rapids and later, Linux 5.16 or later): chosen at run time when the CPU
//             reports AMX-TILE and AMX-BF16 and the kernel grants this process the tile state (arch_prctl); the
//             headers need no -m flag for it
//   avx512_bf16  the AVX512-BF16 dot-product instruction (AMD Zen 4 and later, Intel Cooper Lake; or AMX refused),
//             chosen at run time from CPUID and XCR0, again with no -m flag. Each instruction does twice the
//             multiplies of a float FMA, so it pays where it issues as fast as one (not yet measured on Zen 4). On
//             Sapphire Rapids with AMX skipped it issues every 2 cycles: 106 GFLOP/s per core, against 215 for
//             float FMAs, 810 on AMX and 11-16 for the portable loops.
//   portable  plain loops over the same bf16 operands (same results up to the order and rounding of float
//             additions): every other CPU, compiler or system. It is slower than float products, so bf16 pays only
//             where bf16_backend() says amx, or avx512_bf16 on a CPU whose instruction is fast.
// A step of batch 1 (predictor::stream, forward_step) runs its matrix-vector products in float on either backend:
// they stream the weights and gain nothing from tiles.
#ifndef XRNN_PRECISION_HPP
#define XRNN_PRECISION_HPP

#include <type_traits>

#include <xrnn/detail/bf16_gemm.hpp>

namespace xrnn
{
    namespace precision
    {
        /// Products in the layer's scalar type T.
        struct native
        {
            static constexpr const char* name = "native";
        };

        /// Products in bfloat16 with float accumulation; weights, states and gradients in float.
        struct bf16
        {
            static constexpr const char* name = "bf16";
        };
    }  // namespace precision

    template <class P>
    constexpr bool is_bf16_precision = std::is_same<P, precision::bf16>::value;

    /// Which kernel bf16 products run on in this process (decided once, on first use).
    enum class bf16_kernel
    {
        amx,
        avx512_bf16,
        portable
    };

    inline bf16_kernel bf16_backend() noexcept
    {
        return detail::bf16_amx_active()      ? bf16_kernel::amx
               : detail::bf16_avx512_active() ? bf16_kernel::avx512_bf16
                                              : bf16_kernel::portable;
    }

    inline const char* to_string(bf16_kernel k) noexcept
    {
        return k == bf16_kernel::amx ? "amx" : k == bf16_kernel::avx512_bf16 ? "avx512_bf16" : "portable";
    }
}  // namespace xrnn

#endif
