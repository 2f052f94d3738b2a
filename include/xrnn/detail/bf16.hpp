// xtensor-rnn: bfloat16 values and the packed operands of bf16 products (precision::bf16, xrnn/precision.hpp);
// the products themselves are in detail/bf16_gemm.hpp (and its AVX512-BF16 kernel in detail/bf16_avx512.hpp).
//
//   C (m x N) (+)= A (m x K) B (K x N)      A, B rounded to bf16 (round to nearest even); C float
//
// Operands are packed once per use into the layout of Intel's AMX tiles, and the AVX512-BF16 and portable kernels
// read the same layout, so every kernel multiplies the same bf16 values:
//   A  rows of kp = K rounded up to 32 bf16 values (one 64-byte tile row per 32 k), rows lda >= kp apart
//   B  bf16_panels: column tiles of 16; in each, K/2 rows of 16 pairs (B[2p][j], B[2p+1][j]) (AMX's "VNNI" layout),
//      so that element (k, j) is at ((j / 16) * kp / 2 + k / 2) * 32 + (j % 16) * 2 + k % 2; padding is 0.
#ifndef XRNN_DETAIL_BF16_HPP
#define XRNN_DETAIL_BF16_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace xrnn::detail
{
    using bf16_t = std::uint16_t;

    /// float to bfloat16, rounded to nearest (ties to even); NaN stays NaN, overflow gives infinity. Branch-free,
    /// so that the packing loops vectorise.
    inline bf16_t to_bf16(float f) noexcept
    {
        std::uint32_t u;
        std::memcpy(&u, &f, sizeof u);
        const std::uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
        const std::uint32_t quiet_nan = (u >> 16) | 0x40u;
        return static_cast<bf16_t>((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
    }

    inline float from_bf16(bf16_t b) noexcept
    {
        const std::uint32_t u = static_cast<std::uint32_t>(b) << 16;
        float f;
        std::memcpy(&f, &u, sizeof f);
        return f;
    }

    constexpr std::size_t bf16_tile_k = 32;     // k per tile row (64 bytes)
    constexpr std::size_t bf16_tile_n = 16;     // columns per tile
    constexpr std::size_t bf16_tile_rows = 16;  // rows of A and C per tile

    constexpr std::size_t bf16_round_up(std::size_t n, std::size_t block) noexcept
    {
        return (n + block - 1) / block * block;
    }

    /// B (K x N) in AMX's layout (see the top of this file). Reshaping to the same size does not allocate.
    struct bf16_panels
    {
        std::vector<bf16_t> data;
        std::size_t k = 0;   // K
        std::size_t n = 0;   // N
        std::size_t kp = 0;  // K rounded up to 32

        void reshape(std::size_t rows, std::size_t columns)
        {
            k = rows;
            n = columns;
            kp = bf16_round_up(rows, bf16_tile_k);
            data.resize(kp * bf16_round_up(columns, bf16_tile_n));
        }

        std::size_t column_tiles() const noexcept
        {
            return (n + bf16_tile_n - 1) / bf16_tile_n;
        }

        std::size_t k_blocks() const noexcept
        {
            return kp / bf16_tile_k;
        }

        /// The 16 x 32 tile of k block kb in column tile ct (rows 64 bytes apart).
        const bf16_t* tile(std::size_t ct, std::size_t kb) const noexcept
        {
            return data.data() + (ct * (kp / 2) + kb * 16) * 32;
        }

        bf16_t* pair_row(std::size_t ct, std::size_t pair) noexcept
        {
            return data.data() + (ct * (kp / 2) + pair) * 32;
        }
    };

    /// The arguments of bf16_gemm: C[0:m, cols] (+)= A[0:m, k blocks kb0..kb1) B[those k, cols], cols the column
    /// tiles [ct0, ct1) of B (the last one may be partial); c at C's column 0, rows ldc apart.
    struct bf16_product
    {
        std::size_t m;
        const bf16_t* a;
        std::size_t lda;
        const bf16_panels* b;
        std::size_t kb0, kb1;
        std::size_t ct0, ct1;
        float* c;
        std::size_t ldc;
        bool accumulate;
    };

    /// B(k, j) = value(k, j) for k < rows, j < columns, 0 in the padding, for the pairs [pair_begin, pair_end).
    template <class F>
    void pack_panel_pairs(bf16_panels& b, std::size_t pair_begin, std::size_t pair_end, F&& value)
    {
        for (std::size_t ct = 0; ct < b.column_tiles(); ++ct)
        {
            for (std::size_t p = pair_begin; p < pair_end; ++p)
            {
                bf16_t* out = b.pair_row(ct, p);
                for (std::size_t c = 0; c < bf16_tile_n; ++c)
                {
                    const std::size_t j = ct * bf16_tile_n + c;
                    for (std::size_t h = 0; h < 2; ++h)
                    {
                        const std::size_t k = 2 * p + h;
                        out[2 * c + h] = (j < b.n && k < b.k) ? to_bf16(value(k, j)) : bf16_t(0);
                    }
                }
            }
        }
    }

    /// The whole of B from value(k, j).
    template <class F>
    void pack_panels(bf16_panels& b, std::size_t rows, std::size_t columns, F&& value)
    {
        b.reshape(rows, columns);
        pack_panel_pairs(b, 0, b.kp / 2, value);
    }

    inline bf16_t bf16_of(float f) noexcept
    {
        return to_bf16(f);
    }
    inline bf16_t bf16_of(bf16_t b) noexcept
    {
        return b;
    }

    /// Pairs [pair_begin, pair_end) of B from a row-major matrix of floats (rounded by to_bf16) or of bf16 values
    /// (rows ld apart; rows >= b.k read as 0).
    template <class Value>
    void pack_panel_rows(bf16_panels& b, const Value* src, std::size_t ld, std::size_t pair_begin,
                         std::size_t pair_end)
    {
        static_assert(std::is_same<Value, float>::value || std::is_same<Value, bf16_t>::value,
                      "xrnn: pack_panel_rows reads floats or bf16 values");
        for (std::size_t p = pair_begin; p < pair_end; ++p)
        {
            const Value* r0 = src + 2 * p * ld;
            const Value* r1 = r0 + ld;
            const bool full = 2 * p + 1 < b.k;
            for (std::size_t ct = 0; ct < b.column_tiles(); ++ct)
            {
                bf16_t* out = b.pair_row(ct, p);
                const std::size_t j0 = ct * bf16_tile_n;
                const std::size_t width = std::min(bf16_tile_n, b.n - j0);
                if (full && width == bf16_tile_n)  // the common case, in one vectorisable loop
                {
                    std::uint32_t pairs[bf16_tile_n];
                    for (std::size_t c = 0; c < bf16_tile_n; ++c)
                    {
                        pairs[c] = std::uint32_t(bf16_of(r0[j0 + c])) | (std::uint32_t(bf16_of(r1[j0 + c])) << 16);
                    }
                    std::memcpy(out, pairs, sizeof pairs);
                    continue;
                }
                std::fill(out, out + 2 * bf16_tile_n, bf16_t(0));
                for (std::size_t c = 0; c < width; ++c)
                {
                    out[2 * c] = 2 * p < b.k ? bf16_of(r0[j0 + c]) : bf16_t(0);
                    out[2 * c + 1] = full ? bf16_of(r1[j0 + c]) : bf16_t(0);
                }
            }
        }
    }

    /// One row of A: the values of the segments one after another, then 0 up to kp.
    struct bf16_segment
    {
        const float* p;
        std::size_t width;
    };

    inline void pack_row(bf16_t* out, std::size_t kp, const bf16_segment* segments, std::size_t count) noexcept
    {
        std::size_t k = 0;
        for (std::size_t s = 0; s < count; ++s)
        {
            for (std::size_t i = 0; i < segments[s].width; ++i)
            {
                out[k + i] = to_bf16(segments[s].p[i]);
            }
            k += segments[s].width;
        }
        std::fill(out + k, out + kp, bf16_t(0));
    }

    /// The packed operands of a recurrent layer with precision::bf16 (layers/recurrent_bf16.hpp).
    struct bf16_workspace
    {
        bf16_panels w;                  // (R3): W_x and W_h laid out as z, (I + H) x Gz
        bf16_panels w_h_t;              // (Q2): W_h^T over z's columns, Gz x H
        bf16_panels w_x_t;              // (Q7): W_x^T over z's columns, Gz x I
        bf16_panels dz;                 // (Q4), (Q5): dZ, (S B) x Gz
        std::vector<bf16_t> dz_rows;    // (Q7): dZ as rows of A, (S B) x (Gz rounded up to 32)
        std::vector<bf16_t> inputs_t;   // (Q4), (Q5): [X~ | H~_prev]^T, (I + H) x (S B rounded up to 32)
        std::vector<float> grads;       // (Q4), (Q5): [X~ | H~_prev]^T dZ, (I + H) x Gz

        std::size_t bytes() const noexcept
        {
            return (w.data.size() + w_h_t.data.size() + w_x_t.data.size() + dz.data.size() + dz_rows.size()
                    + inputs_t.size())
                       * sizeof(bf16_t)
                   + grads.size() * sizeof(float);
        }
    };

    /// A calling thread's scratch rows of A (grow-only, so a thread allocates only the first time).
    inline bf16_t* bf16_thread_rows(std::size_t values)
    {
        thread_local std::vector<bf16_t> rows;
        if (rows.size() < values)
        {
            rows.resize(values);
        }
        return rows.data();
    }

}  // namespace xrnn::detail

#endif
