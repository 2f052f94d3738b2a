// xtensor-rnn: a float matrix transposed into bf16 rows: the A of (BF4) dW = [X~ | H~]^T dZ
// (layers/recurrent_bf16.hpp), whose k runs over the steps' rows, so that X~ and H~ are read row by row but
// written column by column.
//
//   out[(c - c0) * ldo + r] = bf16(src[r * ld + c])   for r in [r0, r1), c in [c0, c1); 0 where keep(r) is false
//
// By blocks of 32 rows x 16 columns: 32 rows of 16 floats in, 16 rows of 32 bf16 values (a 64-byte line each)
// out. Two kernels, which write the same bits (to_bf16's rounding, detail/bf16.hpp):
//   portable   the block through a tile in L1, the rows converted in a loop the compiler vectorises and the
//              columns gathered one value at a time: about 1 ns per value, 13-15% of a bf16 LSTM training step
//              on the IMDB shapes
//   AVX-512    each pair of rows (2i, 2i+1) converted in integer lanes into 16 pairs of bf16, one 32-bit lane per
//              column: (T1) P[i][c] = bf16(src[2i][c]) | bf16(src[2i+1][c]) << 16. The output row of column c
//              is then (P[0][c], .., P[15][c]), so the block's transposition is a 16 x 16 transposition of
//              32-bit lanes: (T2) in four rounds of shuffles (within 128-bit lanes by 32 and 64 bits, then the
//              128-bit lanes across registers).
// The AVX-512 kernel carries its own target attribute, so the headers need no -m flag; it runs on whole blocks
// when the CPU reports AVX-512 (detail/bf16_avx512.hpp), and the portable kernel takes the edges.
#ifndef XRNN_DETAIL_BF16_TRANSPOSE_HPP
#define XRNN_DETAIL_BF16_TRANSPOSE_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include <xrnn/detail/bf16.hpp>
#include <xrnn/detail/bf16_avx512.hpp>

namespace xrnn::detail
{
    /// Rows and columns of pack_transposed's blocks: a 64-byte line of 32 bf16 values per output row.
    constexpr std::size_t transpose_block_rows = 32;
    constexpr std::size_t transpose_block_columns = 16;

    /// One block of pack_transposed (rn <= 32 rows from src's row 0, cn <= 16 columns), portable: out at the
    /// block's first output value, src at its first input value.
    inline void pack_transposed_block(bf16_t* out, std::size_t ldo, const float* src, std::size_t ld,
                                      const bool* kept, std::size_t rn, std::size_t cn) noexcept
    {
        bf16_t tile[transpose_block_rows][transpose_block_columns];
        for (std::size_t i = 0; i < rn; ++i)
        {
            const float* row = src + i * ld;
            for (std::size_t j = 0; j < cn; ++j)
            {
                tile[i][j] = kept[i] ? to_bf16(row[j]) : bf16_t(0);
            }
        }
        for (std::size_t j = 0; j < cn; ++j)
        {
            bf16_t* o = out + j * ldo;
            for (std::size_t i = 0; i < rn; ++i)
            {
                o[i] = tile[i][j];
            }
        }
    }

#if XRNN_AVX512_BF16_POSSIBLE
#define XRNN_TRANSPOSE_TARGET __attribute__((target("avx512f"), always_inline)) inline

    namespace bf16_transpose_impl
    {
        // The shuffles and the shift through their zero-masking forms with every lane kept: GCC 12's plain forms
        // start from an "undefined" register that -Wuninitialized reports once inlined (GCC bug 105593).
        constexpr __mmask16 all16 = 0xffff;
        constexpr __mmask8 all8 = 0xff;

        XRNN_TRANSPOSE_TARGET __m512i shift_right_16(__m512i a) noexcept
        {
            return _mm512_maskz_srli_epi32(all16, a, 16);
        }
        XRNN_TRANSPOSE_TARGET __m512i unpack_low32(__m512i a, __m512i b) noexcept
        {
            return _mm512_maskz_unpacklo_epi32(all16, a, b);
        }
        XRNN_TRANSPOSE_TARGET __m512i unpack_high32(__m512i a, __m512i b) noexcept
        {
            return _mm512_maskz_unpackhi_epi32(all16, a, b);
        }
        XRNN_TRANSPOSE_TARGET __m512i unpack_low64(__m512i a, __m512i b) noexcept
        {
            return _mm512_maskz_unpacklo_epi64(all8, a, b);
        }
        XRNN_TRANSPOSE_TARGET __m512i unpack_high64(__m512i a, __m512i b) noexcept
        {
            return _mm512_maskz_unpackhi_epi64(all8, a, b);
        }
        template <int Lanes>
        XRNN_TRANSPOSE_TARGET __m512i shuffle_lanes(__m512i a, __m512i b) noexcept
        {
            return _mm512_maskz_shuffle_i32x4(all16, a, b, Lanes);
        }

        /// 16 floats' bits u with to_bf16(u) in the high half of each lane: rounded to nearest even, a NaN
        /// made quiet.
        XRNN_TRANSPOSE_TARGET __m512i rounded_high(__m512i u) noexcept
        {
            const __m512i lsb = _mm512_and_si512(shift_right_16(u), _mm512_set1_epi32(1));
            const __m512i rounded = _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb);
            const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                          _mm512_set1_epi32(0x7f800000));
            return _mm512_mask_or_epi32(rounded, nan, u, _mm512_set1_epi32(0x00400000));
        }

        /// (T1) for rows 2i and 2i + 1 (0 for a row not kept: its values are not read).
        XRNN_TRANSPOSE_TARGET __m512i row_pair(const float* row0, const float* row1, bool kept0, bool kept1) noexcept
        {
            const __m512i u0 = kept0 ? _mm512_loadu_si512(row0) : _mm512_setzero_si512();
            const __m512i u1 = kept1 ? _mm512_loadu_si512(row1) : _mm512_setzero_si512();
            // a dropped row's rounded_high(0) is 0x7fff: its bf16 value, the high half, is 0
            return _mm512_or_si512(shift_right_16(rounded_high(u0)),
                                   _mm512_and_si512(rounded_high(u1), _mm512_set1_epi32(std::int32_t(0xffff0000u))));
        }
    }  // namespace bf16_transpose_impl

    /// One whole block (32 x 16) of pack_transposed on AVX-512 (call only when avx512_available()).
    __attribute__((target("avx512f"))) inline void pack_transposed_block_avx512(bf16_t* out, std::size_t ldo,
                                                                                 const float* src, std::size_t ld,
                                                                                 const bool* kept) noexcept
    {
        using namespace bf16_transpose_impl;
        __m512i p[16];
#pragma GCC unroll 16
        for (std::size_t i = 0; i < 16; ++i)  // (T1)
        {
            p[i] = row_pair(src + 2 * i * ld, src + (2 * i + 1) * ld, kept[2 * i], kept[2 * i + 1]);
        }
        // (T2) round 1, within 128-bit lanes: t[2k] = (p[2k][4L], p[2k+1][4L], p[2k][4L+1], p[2k+1][4L+1]) in
        // lane L, t[2k+1] the same of columns 4L+2 and 4L+3
        __m512i t[16];
#pragma GCC unroll 8
        for (std::size_t k = 0; k < 8; ++k)
        {
            t[2 * k] = unpack_low32(p[2 * k], p[2 * k + 1]);
            t[2 * k + 1] = unpack_high32(p[2 * k], p[2 * k + 1]);
        }
        // round 2: u[4m+o] holds, in lane L, the pairs 4m .. 4m+3 of column 4L+o
        __m512i u[16];
#pragma GCC unroll 4
        for (std::size_t m = 0; m < 4; ++m)
        {
            u[4 * m] = unpack_low64(t[4 * m], t[4 * m + 2]);
            u[4 * m + 1] = unpack_high64(t[4 * m], t[4 * m + 2]);
            u[4 * m + 2] = unpack_low64(t[4 * m + 1], t[4 * m + 3]);
            u[4 * m + 3] = unpack_high64(t[4 * m + 1], t[4 * m + 3]);
        }
        // rounds 3 and 4: column 4L+o's output row takes lane L of u[o], u[4+o], u[8+o], u[12+o] (a 4 x 4
        // transposition of 128-bit lanes)
#pragma GCC unroll 4
        for (std::size_t o = 0; o < 4; ++o)
        {
            const __m512i ab_low = shuffle_lanes<0x44>(u[o], u[4 + o]);    // a0 a1 b0 b1
            const __m512i ab_high = shuffle_lanes<0xee>(u[o], u[4 + o]);   // a2 a3 b2 b3
            const __m512i cd_low = shuffle_lanes<0x44>(u[8 + o], u[12 + o]);
            const __m512i cd_high = shuffle_lanes<0xee>(u[8 + o], u[12 + o]);
            _mm512_storeu_si512(out + o * ldo, shuffle_lanes<0x88>(ab_low, cd_low));  // a0 b0 c0 d0
            _mm512_storeu_si512(out + (4 + o) * ldo, shuffle_lanes<0xdd>(ab_low, cd_low));
            _mm512_storeu_si512(out + (8 + o) * ldo, shuffle_lanes<0x88>(ab_high, cd_high));
            _mm512_storeu_si512(out + (12 + o) * ldo, shuffle_lanes<0xdd>(ab_high, cd_high));
        }
    }

#undef XRNN_TRANSPOSE_TARGET
#endif

    /// Which kernels pack_transposed may use: the CPU's best, or the portable one alone (tests compare them).
    enum class transpose_kernel
    {
        best,
        portable
    };

    /// Columns [c0, c1) of a row-major float matrix (rows ld apart), rows [r0, r1), written transposed as rows
    /// of A: out[(c - c0) * ldo + r], and 0 for the rows r where keep(r) is false (not read).
    template <class Keep>
    void pack_transposed(bf16_t* out, std::size_t ldo, const float* src, std::size_t ld, Keep&& keep, std::size_t r0,
                         std::size_t r1, std::size_t c0, std::size_t c1,
                         transpose_kernel kernel = transpose_kernel::best) noexcept
    {
        constexpr std::size_t rows = transpose_block_rows;
        constexpr std::size_t columns = transpose_block_columns;
#if XRNN_AVX512_BF16_POSSIBLE
        const bool avx512 = kernel == transpose_kernel::best && avx512_available();
#else
        (void)kernel;
#endif
        bool kept[rows];
        for (std::size_t rb = r0; rb < r1; rb += rows)
        {
            const std::size_t rn = std::min(rows, r1 - rb);
            for (std::size_t i = 0; i < rn; ++i)
            {
                kept[i] = keep(rb + i);
            }
            for (std::size_t cb = c0; cb < c1; cb += columns)
            {
                const std::size_t cn = std::min(columns, c1 - cb);
                bf16_t* o = out + (cb - c0) * ldo + rb;
                const float* s = src + rb * ld + cb;
#if XRNN_AVX512_BF16_POSSIBLE
                if (avx512 && rn == rows && cn == columns)
                {
                    pack_transposed_block_avx512(o, ldo, s, ld, kept);
                    continue;
                }
#endif
                pack_transposed_block(o, ldo, s, ld, kept, rn, cn);
            }
        }
    }
}  // namespace xrnn::detail

#endif
