// xtensor-rnn: bfloat16 matrix products with float accumulation (precision::bf16, xrnn/precision.hpp).
//
//   C (m x N) (+)= A (m x K) B (K x N)      A, B rounded to bf16 (round to nearest even); C float
//
// Operands are packed once per use into the layout of Intel's AMX tiles, and the portable kernel reads the same
// layout, so both kernels multiply the same bf16 values:
//   A  rows of kp = K rounded up to 32 bf16 values (one 64-byte tile row per 32 k), rows lda >= kp apart
//   B  bf16_panels: column tiles of 16; in each, K/2 rows of 16 pairs (B[2p][j], B[2p+1][j]) (AMX's "VNNI" layout),
//      so that element (k, j) is at ((j / 16) * kp / 2 + k / 2) * 32 + (j % 16) * 2 + k % 2; padding is 0.
// (B1) one tile product: C[i][j] += sum over pairs p of A[i][2p] B[2p][j] + A[i][2p+1] B[2p+1][j]; every bf16
//      product is exact in float, and the sums are rounded as float additions.
//
// The AMX kernel (TDPBF16PS) is written in inline assembly, so that it needs no -mamx flag, and runs only when the
// CPU reports AMX-TILE and AMX-BF16 (CPUID leaf 7) and Linux grants the process the tile state
// (arch_prctl(ARCH_REQ_XCOMP_PERM), once). Each call loads its tile configuration and releases the tiles at its end.
// Everything else runs the portable loops.
#ifndef XRNN_DETAIL_BF16_HPP
#define XRNN_DETAIL_BF16_HPP

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__)) && !defined(XRNN_NO_AMX)
#define XRNN_AMX_POSSIBLE 1
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#else
#define XRNN_AMX_POSSIBLE 0
#endif

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

    /// Pairs [pair_begin, pair_end) of B from a row-major float matrix (rows ld apart; rows >= b.k read as 0).
    inline void pack_panel_rows(bf16_panels& b, const float* src, std::size_t ld, std::size_t pair_begin,
                                std::size_t pair_end)
    {
        for (std::size_t p = pair_begin; p < pair_end; ++p)
        {
            const float* r0 = src + 2 * p * ld;
            const float* r1 = r0 + ld;
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
                        pairs[c] = std::uint32_t(to_bf16(r0[j0 + c])) | (std::uint32_t(to_bf16(r1[j0 + c])) << 16);
                    }
                    std::memcpy(out, pairs, sizeof pairs);
                    continue;
                }
                std::fill(out, out + 2 * bf16_tile_n, bf16_t(0));
                for (std::size_t c = 0; c < width; ++c)
                {
                    out[2 * c] = 2 * p < b.k ? to_bf16(r0[j0 + c]) : bf16_t(0);
                    out[2 * c + 1] = full ? to_bf16(r1[j0 + c]) : bf16_t(0);
                }
            }
        }
    }

    /// Columns [c0, c1) of a row-major float matrix (rows ld apart), rows [r0, r1), written transposed as rows of
    /// A: out[(c - c0) * ldo + r] (rows r >= rows read as 0). By blocks of 32 x 16: rows read whole (vectorised),
    /// columns written a whole cache line at a time, through a tile in L1.
    inline void pack_transposed(bf16_t* out, std::size_t ldo, const float* src, std::size_t ld, std::size_t rows,
                                std::size_t r0, std::size_t r1, std::size_t c0, std::size_t c1) noexcept
    {
        constexpr std::size_t block_rows = 32;  // a 64-byte line of each output row
        constexpr std::size_t block_columns = 16;
        bf16_t tile[block_rows][block_columns];
        for (std::size_t rb = r0; rb < r1; rb += block_rows)
        {
            const std::size_t rn = std::min(block_rows, r1 - rb);
            for (std::size_t cb = c0; cb < c1; cb += block_columns)
            {
                const std::size_t cn = std::min(block_columns, c1 - cb);
                for (std::size_t i = 0; i < rn; ++i)
                {
                    const float* row = src + (rb + i) * ld + cb;
                    for (std::size_t j = 0; j < cn; ++j)
                    {
                        tile[i][j] = rb + i < rows ? to_bf16(row[j]) : bf16_t(0);
                    }
                }
                for (std::size_t j = 0; j < cn; ++j)
                {
                    bf16_t* o = out + (cb + j - c0) * ldo + rb;
                    for (std::size_t i = 0; i < rn; ++i)
                    {
                        o[i] = tile[i][j];
                    }
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

    // ---- which kernel ----------------------------------------------------------------------------------------

    /// Tests run both kernels in one process: with true, bf16_gemm takes the portable loops even where AMX runs.
    inline std::atomic<bool>& bf16_force_portable() noexcept
    {
        static std::atomic<bool> force{false};
        return force;
    }

    /// Whether this CPU and system run AMX tiles for this process: checked, and the tile state requested, once.
    inline bool bf16_amx_available() noexcept
    {
#if XRNN_AMX_POSSIBLE
        static const bool available = [] {
            unsigned a = 0, b = 0, c = 0, d = 0;
            if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0)
            {
                return false;
            }
            const bool amx_bf16 = (d >> 22) & 1u;
            const bool amx_tile = (d >> 24) & 1u;
            if (!amx_bf16 || !amx_tile)
            {
                return false;
            }
            constexpr long arch_req_xcomp_perm = 0x1023;  // <asm/prctl.h>
            constexpr long xfeature_xtiledata = 18;
            return syscall(SYS_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) == 0;
        }();
        return available;
#else
        return false;
#endif
    }

    inline bool bf16_amx_active() noexcept
    {
        return !bf16_force_portable().load(std::memory_order_relaxed) && bf16_amx_available();
    }

    // ---- kernels ---------------------------------------------------------------------------------------------

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

    namespace bf16_impl
    {
        inline void portable(const bf16_product& q) noexcept
        {
            const bf16_panels& b = *q.b;
            for (std::size_t i = 0; i < q.m; ++i)
            {
                const bf16_t* a = q.a + i * q.lda;
                for (std::size_t ct = q.ct0; ct < q.ct1; ++ct)
                {
                    const std::size_t j0 = ct * bf16_tile_n;
                    const std::size_t width = std::min(bf16_tile_n, b.n - j0);
                    float* c = q.c + i * q.ldc + j0;
                    float acc[bf16_tile_n] = {};
                    for (std::size_t j = 0; q.accumulate && j < width; ++j)
                    {
                        acc[j] = c[j];
                    }
                    for (std::size_t kb = q.kb0; kb < q.kb1; ++kb)
                    {
                        const bf16_t* w = b.tile(ct, kb);
                        for (std::size_t p = 0; p < bf16_tile_k / 2; ++p)  // (B1)
                        {
                            const float a0 = from_bf16(a[kb * bf16_tile_k + 2 * p]);
                            const float a1 = from_bf16(a[kb * bf16_tile_k + 2 * p + 1]);
                            const bf16_t* w_p = w + p * 32;
                            for (std::size_t j = 0; j < bf16_tile_n; ++j)
                            {
                                acc[j] += a0 * from_bf16(w_p[2 * j]) + a1 * from_bf16(w_p[2 * j + 1]);
                            }
                        }
                    }
                    std::copy(acc, acc + width, c);
                }
            }
        }

#if XRNN_AMX_POSSIBLE
        /// ldtilecfg's 64-byte operand (palette 1).
        struct alignas(64) tile_config
        {
            std::uint8_t palette = 1;
            std::uint8_t start_row = 0;
            std::uint8_t reserved[14] = {};
            std::uint16_t columns_bytes[16] = {};
            std::uint8_t rows[16] = {};
        };

#define XRNN_TILE_LOAD(t, p, stride)                                                                           \
    __asm__ volatile("tileloadd (%0,%1,1), %%tmm" #t ::"r"(p), "r"(static_cast<long>(stride)) : "memory")
#define XRNN_TILE_STORE(t, p, stride)                                                                          \
    __asm__ volatile("tilestored %%tmm" #t ", (%0,%1,1)" ::"r"(p), "r"(static_cast<long>(stride)) : "memory")
#define XRNN_TILE_ZERO(t) __asm__ volatile("tilezero %%tmm" #t ::: "memory")
#define XRNN_TILE_DP(c, a, b) __asm__ volatile("tdpbf16ps %%tmm" #b ", %%tmm" #a ", %%tmm" #c ::: "memory")

        /// Rows [0, mr) (mr <= 16) on AMX: tiles 0-3 hold C (four column tiles), 4 A, 5-7 B.
        inline void amx_rows(const bf16_product& q, std::size_t mr, const bf16_t* a, float* c_rows) noexcept
        {
            tile_config config;
            for (std::size_t t = 0; t < 8; ++t)
            {
                config.columns_bytes[t] = 64;
                config.rows[t] = static_cast<std::uint8_t>(t < 5 ? mr : 16);
            }
            __asm__ volatile("ldtilecfg %0" ::"m"(config) : "memory");
            const bf16_panels& b = *q.b;
            const long a_stride = static_cast<long>(q.lda * sizeof(bf16_t));
            const long c_stride = static_cast<long>(q.ldc * sizeof(float));
            constexpr long b_stride = 64;
            const std::size_t full_tiles = std::min(q.ct1, b.n / bf16_tile_n);  // column tiles with 16 columns
            std::size_t ct = q.ct0;
            for (; ct + 4 <= full_tiles; ct += 4)
            {
                float* c = c_rows + ct * bf16_tile_n;
                if (q.accumulate)
                {
                    XRNN_TILE_LOAD(0, c, c_stride);
                    XRNN_TILE_LOAD(1, c + 16, c_stride);
                    XRNN_TILE_LOAD(2, c + 32, c_stride);
                    XRNN_TILE_LOAD(3, c + 48, c_stride);
                }
                else
                {
                    XRNN_TILE_ZERO(0);
                    XRNN_TILE_ZERO(1);
                    XRNN_TILE_ZERO(2);
                    XRNN_TILE_ZERO(3);
                }
                for (std::size_t kb = q.kb0; kb < q.kb1; ++kb)
                {
                    XRNN_TILE_LOAD(4, a + kb * bf16_tile_k, a_stride);
                    XRNN_TILE_LOAD(5, b.tile(ct, kb), b_stride);
                    XRNN_TILE_LOAD(6, b.tile(ct + 1, kb), b_stride);
                    XRNN_TILE_DP(0, 4, 5);
                    XRNN_TILE_LOAD(7, b.tile(ct + 2, kb), b_stride);
                    XRNN_TILE_DP(1, 4, 6);
                    XRNN_TILE_LOAD(5, b.tile(ct + 3, kb), b_stride);
                    XRNN_TILE_DP(2, 4, 7);
                    XRNN_TILE_DP(3, 4, 5);
                }
                XRNN_TILE_STORE(0, c, c_stride);
                XRNN_TILE_STORE(1, c + 16, c_stride);
                XRNN_TILE_STORE(2, c + 32, c_stride);
                XRNN_TILE_STORE(3, c + 48, c_stride);
            }
            for (; ct < q.ct1; ++ct)  // single column tiles; a partial one through a scratch tile
            {
                const std::size_t width = std::min(bf16_tile_n, b.n - ct * bf16_tile_n);
                alignas(64) float scratch[bf16_tile_rows * bf16_tile_n];
                float* c = c_rows + ct * bf16_tile_n;
                float* target = width == bf16_tile_n ? c : scratch;
                const long stride = width == bf16_tile_n ? c_stride : long(bf16_tile_n * sizeof(float));
                if (q.accumulate)
                {
                    if (target == scratch)
                    {
                        for (std::size_t i = 0; i < mr; ++i)
                        {
                            std::copy(c + i * q.ldc, c + i * q.ldc + width, scratch + i * bf16_tile_n);
                        }
                    }
                    XRNN_TILE_LOAD(0, target, stride);
                }
                else
                {
                    XRNN_TILE_ZERO(0);
                }
                for (std::size_t kb = q.kb0; kb < q.kb1; ++kb)
                {
                    XRNN_TILE_LOAD(4, a + kb * bf16_tile_k, a_stride);
                    XRNN_TILE_LOAD(5, b.tile(ct, kb), b_stride);
                    XRNN_TILE_DP(0, 4, 5);
                }
                XRNN_TILE_STORE(0, target, stride);
                if (target == scratch)
                {
                    for (std::size_t i = 0; i < mr; ++i)
                    {
                        std::copy(scratch + i * bf16_tile_n, scratch + i * bf16_tile_n + width, c + i * q.ldc);
                    }
                }
            }
            __asm__ volatile("tilerelease" ::: "memory");
        }

        /// 32 rows on AMX, 2 x 2 tiles of C at a time (two A tiles and two B tiles per k block, so that each load
        /// feeds two products); the column tiles left over (an odd one, a partial one) by amx_rows.
        inline void amx_rows32(const bf16_product& q, const bf16_t* a, float* c_rows) noexcept
        {
            tile_config config;
            for (std::size_t t = 0; t < 8; ++t)
            {
                config.columns_bytes[t] = 64;
                config.rows[t] = 16;
            }
            __asm__ volatile("ldtilecfg %0" ::"m"(config) : "memory");
            const bf16_panels& b = *q.b;
            const long a_stride = static_cast<long>(q.lda * sizeof(bf16_t));
            const long c_stride = static_cast<long>(q.ldc * sizeof(float));
            constexpr long b_stride = 64;
            const bf16_t* a_low = a + bf16_tile_rows * q.lda;
            const std::size_t full_tiles = std::min(q.ct1, b.n / bf16_tile_n);
            std::size_t ct = q.ct0;
            for (; ct + 2 <= full_tiles; ct += 2)
            {
                float* c = c_rows + ct * bf16_tile_n;
                float* c_low = c + bf16_tile_rows * q.ldc;
                if (q.accumulate)
                {
                    XRNN_TILE_LOAD(0, c, c_stride);
                    XRNN_TILE_LOAD(1, c + 16, c_stride);
                    XRNN_TILE_LOAD(2, c_low, c_stride);
                    XRNN_TILE_LOAD(3, c_low + 16, c_stride);
                }
                else
                {
                    XRNN_TILE_ZERO(0);
                    XRNN_TILE_ZERO(1);
                    XRNN_TILE_ZERO(2);
                    XRNN_TILE_ZERO(3);
                }
                for (std::size_t kb = q.kb0; kb < q.kb1; ++kb)
                {
                    XRNN_TILE_LOAD(4, a + kb * bf16_tile_k, a_stride);
                    XRNN_TILE_LOAD(6, b.tile(ct, kb), b_stride);
                    XRNN_TILE_DP(0, 4, 6);
                    XRNN_TILE_LOAD(7, b.tile(ct + 1, kb), b_stride);
                    XRNN_TILE_DP(1, 4, 7);
                    XRNN_TILE_LOAD(5, a_low + kb * bf16_tile_k, a_stride);
                    XRNN_TILE_DP(2, 5, 6);
                    XRNN_TILE_DP(3, 5, 7);
                }
                XRNN_TILE_STORE(0, c, c_stride);
                XRNN_TILE_STORE(1, c + 16, c_stride);
                XRNN_TILE_STORE(2, c_low, c_stride);
                XRNN_TILE_STORE(3, c_low + 16, c_stride);
            }
            __asm__ volatile("tilerelease" ::: "memory");
            if (ct < q.ct1)
            {
                bf16_product rest = q;
                rest.ct0 = ct;
                amx_rows(rest, bf16_tile_rows, a, c_rows);
                amx_rows(rest, bf16_tile_rows, a_low, c_rows + bf16_tile_rows * q.ldc);
            }
        }

#undef XRNN_TILE_LOAD
#undef XRNN_TILE_STORE
#undef XRNN_TILE_ZERO
#undef XRNN_TILE_DP
#endif
    }  // namespace bf16_impl

    /// C (+)= A B over the rows, k blocks and column tiles of q (see bf16_product), on AMX where it runs.
    inline void bf16_gemm(const bf16_product& q) noexcept
    {
        if (q.m == 0 || q.ct0 >= q.ct1)
        {
            return;
        }
        if (q.kb0 >= q.kb1)  // an empty sum: C += 0, or C = 0
        {
            const std::size_t begin = q.ct0 * bf16_tile_n;
            const std::size_t end = std::max(begin, std::min(q.b->n, q.ct1 * bf16_tile_n));
            for (std::size_t i = 0; !q.accumulate && i < q.m; ++i)
            {
                std::fill(q.c + i * q.ldc + begin, q.c + i * q.ldc + end, 0.0f);
            }
            return;
        }
#if XRNN_AMX_POSSIBLE
        if (bf16_amx_active())
        {
            std::size_t r = 0;
            for (; r + 2 * bf16_tile_rows <= q.m; r += 2 * bf16_tile_rows)
            {
                bf16_impl::amx_rows32(q, q.a + r * q.lda, q.c + r * q.ldc);
            }
            for (; r < q.m; r += bf16_tile_rows)
            {
                bf16_impl::amx_rows(q, std::min(bf16_tile_rows, q.m - r), q.a + r * q.lda, q.c + r * q.ldc);
            }
            return;
        }
#endif
        bf16_impl::portable(q);
    }
}  // namespace xrnn::detail

#endif
