// xtensor-rnn: the AVX512-BF16 kernel of bf16_gemm (detail/bf16_gemm.hpp), for CPUs that have the instruction
// but no AMX tiles (AMD Zen 4 and later, Intel Cooper Lake), on the same packed operands (detail/bf16.hpp).
//
// (B1) as in bf16_gemm.hpp: C[i][j] += sum over pairs p of A[i][2p] B[2p][j] + A[i][2p+1] B[2p+1][j]. VDPBF16PS
// does one pair for 16 columns: each 32-bit lane of its second operand is a pair of A broadcast, of its third the
// pair (B[2p][j], B[2p+1][j]), which is how a bf16_panels column tile stores its pair rows (AMX's VNNI layout).
// Register tiles of 8 rows x 3 column tiles (24 accumulators of 16 floats, 3 loads of B and 8 broadcasts of A per
// pair), as the float kernel (small_gemm.hpp); fewer rows or column tiles at the edges, and a partial last column
// tile through masked loads and stores. The instruction rounds each pair's sum into the accumulator and treats
// denormals as 0, so results differ from the portable loops in the last bits of the float sums, as AMX's do.
//
// The functions carry their own target attribute, so the headers need no -m flag; bf16_gemm calls them only when
// the CPU reports AVX512-BF16 (CPUID leaf 7, sub-leaf 1) and the system saves the AVX-512 registers (XCR0).
// avx512_available(), the same check without the BF16 instructions, chooses bf16_transpose.hpp's AVX-512 kernel.
#ifndef XRNN_DETAIL_BF16_AVX512_HPP
#define XRNN_DETAIL_BF16_AVX512_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include <xrnn/detail/bf16.hpp>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(XRNN_NO_AVX512_BF16)
#define XRNN_AVX512_BF16_POSSIBLE 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define XRNN_AVX512_BF16_POSSIBLE 0
#endif

namespace xrnn::detail
{
    /// Whether this CPU runs AVX-512 (F, BW and VL) for this process, the system saving the ZMM and mask
    /// registers (XCR0): checked once.
    inline bool avx512_available() noexcept
    {
#if XRNN_AVX512_BF16_POSSIBLE
        static const bool available = [] {
            unsigned a = 0, b = 0, c = 0, d = 0;
            if (__get_cpuid_count(1, 0, &a, &b, &c, &d) == 0 || ((c >> 27) & 1u) == 0)  // OSXSAVE
            {
                return false;
            }
            unsigned xcr0_low = 0, xcr0_high = 0;
            __asm__("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
            if ((xcr0_low & 0xe6u) != 0xe6u)  // SSE, AVX, opmask and both halves of the ZMM registers
            {
                return false;
            }
            if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0)
            {
                return false;
            }
            const bool avx512f = (b >> 16) & 1u;
            const bool avx512bw = (b >> 30) & 1u;
            const bool avx512vl = (b >> 31) & 1u;
            return avx512f && avx512bw && avx512vl;
        }();
        return available;
#else
        return false;
#endif
    }

    /// Whether this CPU runs AVX512-BF16 for this process: checked once.
    inline bool bf16_avx512_available() noexcept
    {
#if XRNN_AVX512_BF16_POSSIBLE
        static const bool available = [] {
            unsigned a = 0, b = 0, c = 0, d = 0;
            if (!avx512_available() || __get_cpuid_count(7, 0, &a, &b, &c, &d) == 0 || a < 1
                || __get_cpuid_count(7, 1, &a, &b, &c, &d) == 0)
            {
                return false;
            }
            return ((a >> 5) & 1u) != 0;  // AVX512_BF16
        }();
        return available;
#else
        return false;
#endif
    }

#if XRNN_AVX512_BF16_POSSIBLE
#define XRNN_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"), always_inline)) inline

    namespace bf16_avx512_impl
    {
        // (No lambdas here: they would not inherit the target attribute.)

        /// The mask of column tile v of Columns: all 16 columns but in the last one.
        template <std::size_t Columns>
        XRNN_BF16_TARGET __mmask16 mask_of(std::size_t v, __mmask16 last) noexcept
        {
            return v + 1 == Columns ? last : __mmask16(0xffff);
        }

        template <std::size_t... V>
        XRNN_BF16_TARGET void start_row(__m512 (&acc)[sizeof...(V)], const float* c, bool accumulate, __mmask16 last,
                                        std::index_sequence<V...>) noexcept
        {
            if (accumulate)
            {
                ((acc[V] = _mm512_maskz_loadu_ps(mask_of<sizeof...(V)>(V, last), c + V * bf16_tile_n)), ...);
            }
            else
            {
                ((acc[V] = _mm512_setzero_ps()), ...);
            }
        }

        /// acc[v] += the pair of A at a_pair times pair row w[v] of column tile v.
        template <std::size_t... V>
        XRNN_BF16_TARGET void dot_row(__m512 (&acc)[sizeof...(V)], const bf16_t* a_pair,
                                      const __m512i (&w)[sizeof...(V)], std::index_sequence<V...>) noexcept
        {
            std::int32_t pair;
            std::memcpy(&pair, a_pair, sizeof pair);
            const __m512bh ap = (__m512bh)_mm512_set1_epi32(pair);
            ((acc[V] = _mm512_dpbf16_ps(acc[V], ap, (__m512bh)w[V])), ...);
        }

        template <std::size_t... V>
        XRNN_BF16_TARGET void store_row(float* c, const __m512 (&acc)[sizeof...(V)], __mmask16 last,
                                        std::index_sequence<V...>) noexcept
        {
            (_mm512_mask_storeu_ps(c + V * bf16_tile_n, mask_of<sizeof...(V)>(V, last), acc[V]), ...);
        }

        template <std::size_t... V>
        XRNN_BF16_TARGET void load_pairs(__m512i (&w)[sizeof...(V)], const bf16_t* const (&panel)[sizeof...(V)],
                                         std::size_t p, std::index_sequence<V...>) noexcept
        {
            ((w[V] = _mm512_loadu_si512(panel[V] + p * 2 * bf16_tile_n)), ...);
        }

        /// Column tiles [ct, ct + Columns) of rows [0, sizeof...(R)) from a (rows lda apart) into c (C's column 0);
        /// the last column tile keeps only the columns of last.
        template <std::size_t Columns, std::size_t... R>
        XRNN_BF16_TARGET void tile(const bf16_product& q, const bf16_t* a, float* c, std::size_t ct, __mmask16 last,
                                   std::index_sequence<R...>) noexcept
        {
            using columns = std::make_index_sequence<Columns>;
            const bf16_panels& b = *q.b;
            const bf16_t* panel[Columns];
            for (std::size_t v = 0; v < Columns; ++v)
            {
                panel[v] = b.data.data() + (ct + v) * (b.kp / 2) * 2 * bf16_tile_n;
            }
            float* c_tile = c + ct * bf16_tile_n;
            __m512 acc[sizeof...(R)][Columns];
            (start_row(acc[R], c_tile + R * q.ldc, q.accumulate, last, columns{}), ...);
            for (std::size_t p = q.kb0 * (bf16_tile_k / 2); p < q.kb1 * (bf16_tile_k / 2); ++p)  // (B1)
            {
                __m512i w[Columns];
                load_pairs(w, panel, p, columns{});
                (dot_row(acc[R], a + R * q.lda + 2 * p, w, columns{}), ...);
            }
            (store_row(c_tile + R * q.ldc, acc[R], last, columns{}), ...);
        }

        /// tile on exactly rows rows (1..8) of Columns column tiles.
        template <std::size_t Columns, std::size_t... M>
        XRNN_BF16_TARGET void tile_rows(std::size_t rows, const bf16_product& q, const bf16_t* a, float* c,
                                        std::size_t ct, __mmask16 last, std::index_sequence<M...>) noexcept
        {
            ((rows == M + 1 ? tile<Columns>(q, a, c, ct, last, std::make_index_sequence<M + 1>{}) : void()), ...);
        }
    }  // namespace bf16_avx512_impl

    /// bf16_gemm's product on AVX512-BF16 (call only when bf16_avx512_available()).
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) inline void bf16_avx512_gemm(
        const bf16_product& q) noexcept
    {
        constexpr std::size_t rows = 8;
        constexpr std::size_t columns = 3;
        const std::size_t n = q.b->n;
        for (std::size_t i = 0; i < q.m; i += rows)
        {
            const std::size_t m = std::min(rows, q.m - i);
            const bf16_t* a = q.a + i * q.lda;
            float* c = q.c + i * q.ldc;
            for (std::size_t ct = q.ct0; ct < q.ct1;)
            {
                const std::size_t here = std::min(columns, q.ct1 - ct);
                const std::size_t last = ct + here - 1;  // its columns: up to n
                const std::size_t width = std::min(bf16_tile_n, n - last * bf16_tile_n);
                const __mmask16 mask = static_cast<__mmask16>((1u << width) - 1u);
                const auto seq = std::make_index_sequence<rows>{};
                if (here == 3)
                {
                    bf16_avx512_impl::tile_rows<3>(m, q, a, c, ct, mask, seq);
                }
                else if (here == 2)
                {
                    bf16_avx512_impl::tile_rows<2>(m, q, a, c, ct, mask, seq);
                }
                else
                {
                    bf16_avx512_impl::tile_rows<1>(m, q, a, c, ct, mask, seq);
                }
                ct += here;
            }
        }
    }

#undef XRNN_BF16_TARGET
#endif
}  // namespace xrnn::detail

#endif
