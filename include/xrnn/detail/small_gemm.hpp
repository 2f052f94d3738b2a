// xtensor-rnn: a register-blocked product of a few rows by small weight matrices of compile-time width.
//
//   Y (m x N) = sum over terms of A_t (m x k_t) W_t (k_t x N)        W_t row-major, rows LDW >= N apart (a
//                                                                    column range of a wider matrix), or packed
//                                                                    by column tiles; A_t rows lda_t apart, Y
//                                                                    rows ldy apart
//
// This is (R3) of one recurrent step for a slice of the batch, z_t = x_t W_x + h_{t-1} W_h, and the backward's
// (Q2) and (Q7) per step (layers/recurrent_forward.hpp, recurrent_backward.hpp): gemm_row_runs on the runs of
// rows a thread has in a step, where a BLAS call per step would pay its call and threading overhead 200 times
// for 1 MFLOP each, and would leave the input projection to a separate pass over memory.
//
// Blocking: Y is computed in tiles of Rows rows x Packs SIMD packs (8 x 3 with AVX-512's 32 registers, 4 x 3
// with 16): per k, Packs loads of W and Rows broadcasts of A feed Rows * Packs independent FMAs, so the loop is
// bound by the FMA units, not by loads. Every element is summed in the same order (terms, then k ascending)
// whatever tile it falls in, so a row's result does not depend on how the rows are split among threads.
#ifndef XRNN_DETAIL_SMALL_GEMM_HPP
#define XRNN_DETAIL_SMALL_GEMM_HPP

#include <algorithm>
#include <cstddef>
#include <type_traits>
#include <utility>

#include <xrnn/detail/simd.hpp>

namespace xrnn::detail
{
    /// One operand pair of gemm_row_runs: A (m x k, rows lda apart) times W (k x N, row-major).
    template <class T>
    struct gemm_term
    {
        const T* a;
        std::size_t lda;
        const T* w;
        std::size_t k;
    };

    namespace small_gemm_impl
    {
        // Forced inline: the accumulators only stay in registers if the whole tile is one function, and GCC's
        // inliner gives up on these helpers in large translation units (measured 2.4x slower there).
#if defined(__GNUC__) || defined(__clang__)
#define XRNN_TILE_INLINE inline __attribute__((always_inline))
#else
#define XRNN_TILE_INLINE inline
#endif

        /// acc[V] += a * w[V] for one row of a tile.
        template <class P, std::size_t... J>
        XRNN_TILE_INLINE void fma_row(typename P::value (&acc)[sizeof...(J)], const typename P::value& a,
                                      const typename P::value (&w)[sizeof...(J)], std::index_sequence<J...>)
        {
            ((acc[J] = fma_(a, w[J], acc[J])), ...);
        }

        template <class P, std::size_t... J>
        XRNN_TILE_INLINE void zero_row(typename P::value (&acc)[sizeof...(J)], std::index_sequence<J...>)
        {
            ((acc[J] = typename P::value(0)), ...);
        }

        template <class P, class T, std::size_t... J>
        XRNN_TILE_INLINE void load_row(typename P::value (&acc)[sizeof...(J)], const T* y, std::index_sequence<J...>)
        {
            ((acc[J] = P::load(y + J * P::size)), ...);
        }

        template <class P, class T, std::size_t... J>
        XRNN_TILE_INLINE void store_row(T* y, const typename P::value (&acc)[sizeof...(J)], std::index_sequence<J...>)
        {
            (P::store(y + J * P::size, acc[J]), ...);
        }

        /// f(col, packs, P) for each column tile of N: tiles of Packs packs, one narrower tile of whole packs, then
        /// single columns (P = scalar_pack, packs = 1).
        template <class T, std::size_t N, std::size_t Packs, class F>
        XRNN_TILE_INLINE void for_each_column_tile(F&& f)
        {
            using P = vector_pack<T>;
            constexpr std::size_t wide = Packs * P::size;
            constexpr std::size_t wide_end = N - N % wide;
            constexpr std::size_t pack_end = P::size > 1 ? N - N % P::size : wide_end;
            for (std::size_t col = 0; col < wide_end; col += wide)
            {
                f(col, std::integral_constant<std::size_t, Packs>{}, P{});
            }
            if constexpr (pack_end > wide_end)
            {
                f(wide_end, std::integral_constant<std::size_t, (pack_end - wide_end) / P::size>{}, P{});
            }
            for (std::size_t col = pack_end; col < N; ++col)
            {
                f(col, std::integral_constant<std::size_t, 1>{}, scalar_pack<T>{});
            }
        }

        /// Tile of sizeof...(R) rows x sizeof...(V) packs at column col, for one term and its k in [k0, k1),
        /// starting from 0 (first) or from what y holds; w points at the tile's first column, its rows LDW apart.
        template <class P, class T, std::size_t LDW, std::size_t... R, std::size_t... V>
        XRNN_TILE_INLINE void tile_part(T* y, std::size_t ldy, std::size_t col, const T* a, std::size_t lda,
                                        const T* w, std::size_t k0, std::size_t k1, bool first,
                                        std::index_sequence<R...>, std::index_sequence<V...>)
        {
            using value = typename P::value;
            using packs = std::index_sequence<V...>;
            value acc[sizeof...(R)][sizeof...(V)];
            if (first)
            {
                (zero_row<P>(acc[R], packs{}), ...);
            }
            else
            {
                (load_row<P>(acc[R], y + R * ldy + col, packs{}), ...);
            }
            for (std::size_t k = k0; k < k1; ++k)
            {
                const T* w_row = w + k * LDW;
                const value wk[sizeof...(V)] = {P::load(w_row + V * P::size)...};
                (fma_row<P>(acc[R], P::broadcast(a[R * lda + k]), wk, packs{}), ...);
            }
            (store_row<P>(y + R * ldy + col, acc[R], packs{}), ...);
        }

        /// tile_part on m <= Rows rows: Rows at once, or the m rows by a tile of exactly m.
        template <class P, class T, std::size_t LDW, std::size_t Rows, std::size_t Packs, std::size_t... M>
        XRNN_TILE_INLINE void tile_part_rows(std::size_t m, T* y, std::size_t ldy, std::size_t col, const T* a,
                                             std::size_t lda, const T* w, std::size_t k0, std::size_t k1,
                                             bool first, std::index_sequence<M...>)
        {
            if (m == Rows)
            {
                tile_part<P, T, LDW>(y, ldy, col, a, lda, w, k0, k1, first, std::make_index_sequence<Rows>{},
                                     std::make_index_sequence<Packs>{});
                return;
            }
            ((m == M + 1 ? tile_part<P, T, LDW>(y, ldy, col, a, lda, w, k0, k1, first,
                                                std::make_index_sequence<M + 1>{}, std::make_index_sequence<Packs>{})
                         : void()),
             ...);
        }
    }  // namespace small_gemm_impl

    /// Rows x Packs of a gemm_row_runs tile: as many accumulators as leave room for the W packs and a broadcast.
    template <class T>
    struct gemm_tile
    {
        static constexpr bool wide_registers = vector_pack<T>::size * sizeof(T) >= 64;  // AVX-512: 32 registers
        static constexpr std::size_t rows = wide_registers ? 8 : 4;
        static constexpr std::size_t packs = 3;
    };

    /// Rows [first, first + count) of a gemm_row_runs call.
    struct row_run
    {
        std::size_t first;
        std::size_t count;
    };

    /// W (k x N) packed column tile by column tile for gemm_row_runs<..., true>, W(i, j) = value(i, j): the tile of
    /// columns [col, col + width) is its k rows of width values one after the other, from out + col * k on (k * N
    /// values in all). A block of a tile's rows is then contiguous and stays in L1 while the runs' tiles read it,
    /// where rows of W a few KiB apart fall into a few of L1's sets (measured 160 -> 168 GFLOP/s per core on
    /// the LSTM's (R3) for 32 rows).
    template <class T, std::size_t N, class Value>
    void pack_column_tiles(std::size_t k, T* out, Value&& value)
    {
        constexpr std::size_t packs = gemm_tile<T>::packs;
        small_gemm_impl::for_each_column_tile<T, N, packs>([&](std::size_t col, auto packs_here, auto pack_type) {
            constexpr std::size_t width = decltype(packs_here)::value * decltype(pack_type)::size;
            T* tile = out + col * k;
            for (std::size_t i = 0; i < k; ++i)
            {
                for (std::size_t j = 0; j < width; ++j)
                {
                    tile[i * width + j] = value(i, col + j);
                }
            }
        });
    }

    /// pack_column_tiles of N columns of a row-major W (k rows, LDW apart), by copies of whole tile rows.
    template <class T, std::size_t N, std::size_t LDW = N>
    void pack_column_tiles(const T* w, std::size_t k, T* out)
    {
        constexpr std::size_t packs = gemm_tile<T>::packs;
        small_gemm_impl::for_each_column_tile<T, N, packs>([&](std::size_t col, auto packs_here, auto pack_type) {
            constexpr std::size_t width = decltype(packs_here)::value * decltype(pack_type)::size;
            T* tile = out + col * k;
            for (std::size_t i = 0; i < k; ++i)
            {
                std::copy(w + i * LDW + col, w + i * LDW + col + width, tile + i * width);
            }
        });
    }

    /// Y = sum over terms of A_t W_t (see the top of this file) on the rows of several runs (row i of A_t at
    /// terms[t].a + i * lda_t, of Y at y + i * ldy), computed together so that each block of W is read from L2
    /// once for all of them: per column tile, per term and per block of k_block rows of W_t (at most 24 KiB),
    /// every tile of Rows rows of every run. With Packed, each terms[t].w is W_t packed by pack_column_tiles
    /// (LDW is then not used), whose blocks stay in L1. A tile's sums are kept in Y between blocks, exactly as
    /// floats, so every element is summed in the same order (terms, then k ascending) whatever the runs, the
    /// tiles it falls in or the packing: the results are bit-identical however the rows are grouped or split
    /// among threads. The runs may not overlap; Y may not overlap any A_t or W_t.
    template <class T, std::size_t N, std::size_t LDW = N, bool Packed = false, std::size_t Terms>
    void gemm_row_runs(const row_run* runs, std::size_t run_count, T* y, std::size_t ldy,
                       const gemm_term<T> (&terms)[Terms])
    {
        static_assert(LDW >= N, "xrnn: gemm_row_runs reads N columns of rows LDW apart");
        constexpr std::size_t rows = gemm_tile<T>::rows;
        constexpr std::size_t packs = gemm_tile<T>::packs;
        constexpr std::size_t wide = packs * vector_pack<T>::size;
        constexpr std::size_t k_block = std::max<std::size_t>(16, (std::size_t(24) << 10) / (wide * sizeof(T)));
        small_gemm_impl::for_each_column_tile<T, N, packs>([&](std::size_t col, auto packs_here, auto pack_type) {
            using Q = decltype(pack_type);
            constexpr std::size_t width = decltype(packs_here)::value;
            constexpr std::size_t ldw = Packed ? width * Q::size : LDW;
            for (std::size_t t = 0; t < Terms; ++t)
            {
                const gemm_term<T>& term = terms[t];
                const T* w = Packed ? term.w + col * term.k : term.w + col;  // the tile's first column
                for (std::size_t k0 = 0; k0 < term.k || (t == 0 && k0 == 0); k0 += k_block)
                {
                    const std::size_t k1 = std::min(term.k, k0 + k_block);
                    const bool first = t == 0 && k0 == 0;
                    for (std::size_t i = 0; i < run_count; ++i)
                    {
                        for (std::size_t r = runs[i].first; r < runs[i].first + runs[i].count; r += rows)
                        {
                            const std::size_t m = std::min(rows, runs[i].first + runs[i].count - r);
                            small_gemm_impl::tile_part_rows<Q, T, ldw, rows, width>(
                                m, y + r * ldy, ldy, col, term.a + r * term.lda, term.lda, w, k0, k1, first,
                                std::make_index_sequence<rows - 1>{});
                        }
                    }
                }
            }
        });
    }
}  // namespace xrnn::detail

#endif
