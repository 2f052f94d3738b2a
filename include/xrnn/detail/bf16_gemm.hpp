// xtensor-rnn: bfloat16 matrix products with float accumulation on packed operands (detail/bf16.hpp): Intel AMX
// tiles where the CPU and the system allow them, else AVX512-BF16 where the CPU has it (detail/bf16_avx512.hpp),
// else portable loops.
//
// (B1) one tile product: C[i][j] += sum over pairs p of A[i][2p] B[2p][j] + A[i][2p+1] B[2p+1][j]; every bf16
//      product is exact in float, and the sums are rounded as float additions.
//
// The AMX kernel (TDPBF16PS) is written in inline assembly, so that it needs no -mamx flag, and runs only when the
// CPU reports AMX-TILE and AMX-BF16 (CPUID leaf 7) and Linux grants the process the tile state
// (arch_prctl(ARCH_REQ_XCOMP_PERM), once). It takes 32 rows at a time as 2 x 2 tiles of C (two A and two B tiles
// per 32 k, each feeding two products) and the rows left as four column tiles of one A tile; each call loads its
// tile configuration and releases the tiles at its end.
#ifndef XRNN_DETAIL_BF16_GEMM_HPP
#define XRNN_DETAIL_BF16_GEMM_HPP

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include <xrnn/detail/bf16.hpp>
#include <xrnn/detail/bf16_avx512.hpp>

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
    // ---- which kernel ----------------------------------------------------------------------------------------

    /// Tests run every kernel in one process: with true, bf16_gemm takes the portable loops whatever the CPU has.
    inline std::atomic<bool>& bf16_force_portable() noexcept
    {
        static std::atomic<bool> force{false};
        return force;
    }

    /// With true, bf16_gemm does not use AMX (the next kernel the CPU has runs): tests and benchmarks of the
    /// AVX512-BF16 kernel on a CPU that has both.
    inline std::atomic<bool>& bf16_skip_amx() noexcept
    {
        static std::atomic<bool> skip{false};
        return skip;
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
        return !bf16_force_portable().load(std::memory_order_relaxed)
               && !bf16_skip_amx().load(std::memory_order_relaxed) && bf16_amx_available();
    }

    /// Whether bf16_gemm runs the AVX512-BF16 kernel (detail/bf16_avx512.hpp): the CPU has it and not AMX (or AMX
    /// is skipped), and the portable loops are not forced.
    inline bool bf16_avx512_active() noexcept
    {
        return !bf16_force_portable().load(std::memory_order_relaxed) && !bf16_amx_active()
               && bf16_avx512_available();
    }

    // ---- kernels ---------------------------------------------------------------------------------------------

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

        /// ldtilecfg: tiles 0-3 (C) and 4 (A) of rows rows, 5-7 (B) of 16 (k pairs), all 64 bytes wide.
        inline void configure_tiles(std::size_t rows) noexcept
        {
            tile_config config;
            for (std::size_t t = 0; t < 8; ++t)
            {
                config.columns_bytes[t] = 64;
                config.rows[t] = static_cast<std::uint8_t>(t < 5 ? rows : 16);
            }
            __asm__ volatile("ldtilecfg %0" ::"m"(config) : "memory");
        }

        /// Tiles 0-3 from the C tiles at c0..c3 (rows stride bytes apart), or 0 when not accumulating.
        inline void start_accumulators(bool accumulate, const float* c0, const float* c1, const float* c2,
                                       const float* c3, long stride) noexcept
        {
            if (accumulate)
            {
                XRNN_TILE_LOAD(0, c0, stride);
                XRNN_TILE_LOAD(1, c1, stride);
                XRNN_TILE_LOAD(2, c2, stride);
                XRNN_TILE_LOAD(3, c3, stride);
            }
            else
            {
                XRNN_TILE_ZERO(0);
                XRNN_TILE_ZERO(1);
                XRNN_TILE_ZERO(2);
                XRNN_TILE_ZERO(3);
            }
        }

        inline void store_accumulators(float* c0, float* c1, float* c2, float* c3, long stride) noexcept
        {
            XRNN_TILE_STORE(0, c0, stride);
            XRNN_TILE_STORE(1, c1, stride);
            XRNN_TILE_STORE(2, c2, stride);
            XRNN_TILE_STORE(3, c3, stride);
        }

        /// Rows [0, mr) (mr <= 16) on AMX: tiles 0-3 hold C (four column tiles), 4 A, 5-7 B.
        inline void amx_rows(const bf16_product& q, std::size_t mr, const bf16_t* a, float* c_rows) noexcept
        {
            configure_tiles(mr);
            const bf16_panels& b = *q.b;
            const long a_stride = static_cast<long>(q.lda * sizeof(bf16_t));
            const long c_stride = static_cast<long>(q.ldc * sizeof(float));
            constexpr long b_stride = 64;
            const std::size_t full_tiles = std::min(q.ct1, b.n / bf16_tile_n);  // column tiles with 16 columns
            std::size_t ct = q.ct0;
            for (; ct + 4 <= full_tiles; ct += 4)
            {
                float* c = c_rows + ct * bf16_tile_n;
                start_accumulators(q.accumulate, c, c + 16, c + 32, c + 48, c_stride);
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
                store_accumulators(c, c + 16, c + 32, c + 48, c_stride);
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
            configure_tiles(bf16_tile_rows);
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
                start_accumulators(q.accumulate, c, c + 16, c_low, c_low + 16, c_stride);
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
                store_accumulators(c, c + 16, c_low, c_low + 16, c_stride);
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
#if XRNN_AVX512_BF16_POSSIBLE
        if (bf16_avx512_active())
        {
            bf16_avx512_gemm(q);
            return;
        }
#endif
        bf16_impl::portable(q);
    }
}  // namespace xrnn::detail

#endif
