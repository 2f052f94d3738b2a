// xtensor-rnn: the large products of a recurrent layer's backward on xrnn's own threads (threads.hpp).
//
//   accumulate_outer_products   G_t (k_t x N) += A_t^T D   for a few terms sharing D (rows x N), summed over rows:
//                               (Q4) dW_x += X~^T dZ and (Q5) dW_h += H~^T dZ over all steps, in one pass over dZ
//   parallel_gemm_rows          Y (m x N) = sum of A_t W_t (small_gemm.hpp's gemm_rows) with the rows split over
//                               the threads: (Q7) dX = dZ W_x^T from a transposed copy of W_x
// Both take the rows as live_rows: per step, the rows of the sequences still alive (a prefix of the batch when
// the rows run sorted by length, layers/length_order.hpp), so that a padded batch costs its real tokens.
//
// Why not BLAS: OpenBLAS runs these on its own thread pool, whose idle workers spin for a while after each call
// and take a core from xrnn's threads in the next pass (measured in benchmarks/README.md), and OpenBLAS 0.3.21 has
// no way to make one call single-threaded without changing the process's global setting.
//
// accumulate_outer_products: the N columns are split into fixed parts of part_columns (each part one task of the
// pass, whatever the number of threads); within a part, the rows are taken in chunks of chunk_rows (a chunk of D's
// columns and of A stays in L2 while every tile of G runs over it), and each tile of G (Rows x Packs packs, as in
// small_gemm.hpp) is loaded, accumulated in registers over the chunk's rows and stored back. Every element of G is
// therefore summed in the same order (chunk by chunk, rows ascending) whatever the number of threads, and
// parallel_gemm_rows computes each row alone: results are bit-identical on any number of threads.
#ifndef XRNN_DETAIL_OUTER_GEMM_HPP
#define XRNN_DETAIL_OUTER_GEMM_HPP

#include <algorithm>
#include <cstddef>
#include <utility>

#include <xrnn/detail/simd.hpp>
#include <xrnn/detail/small_gemm.hpp>
#include <xrnn/threads.hpp>

namespace xrnn::detail
{
    /// One term of accumulate_outer_products: G (k x N, rows ldg apart) += A^T D, A (rows x k, rows lda apart).
    template <class T>
    struct outer_term
    {
        const T* a;
        std::size_t lda;
        std::size_t k;
        T* g;
        std::size_t ldg;
    };

    /// The rows of D (and of A, and of the products' outputs) that take part: blocks of block rows (a batch's
    /// steps), of which the first count[b] of block b (all of them when count is nullptr). The rows after are
    /// sequences past their length (layers/recurrent_cell.hpp, (M2)), whose dZ is 0: skipping them changes no sum.
    struct live_rows
    {
        std::size_t blocks;
        std::size_t block;
        const std::size_t* count = nullptr;
    };

    namespace outer_gemm_impl
    {
        constexpr std::size_t max_chunk_blocks = 256;

        template <class P, class T, std::size_t... J>
        XRNN_TILE_INLINE void load_row(typename P::value (&acc)[sizeof...(J)], const T* g, std::index_sequence<J...>)
        {
            ((acc[J] = P::load(g + J * P::size)), ...);
        }

        /// The rows of a chunk that are summed: ranges [first, second) in ascending order.
        struct row_ranges
        {
            const std::pair<std::size_t, std::size_t>* range;
            std::size_t count;
        };

        /// G[0:R, 0:V packs] += sum over the rows r of the ranges of A[r, 0:R]^T D[r, 0:V packs]; a, d, g at the
        /// tile's corner.
        template <class P, class T, std::size_t... R, std::size_t... V>
        XRNN_TILE_INLINE void tile(row_ranges rows, const T* a, std::size_t lda, const T* d, std::size_t ldd, T* g,
                                   std::size_t ldg, std::index_sequence<R...>, std::index_sequence<V...>)
        {
            using value = typename P::value;
            using packs = std::index_sequence<V...>;
            value acc[sizeof...(R)][sizeof...(V)];
            (load_row<P>(acc[R], g + R * ldg, packs{}), ...);
            for (std::size_t k = 0; k < rows.count; ++k)
            {
                for (std::size_t r = rows.range[k].first; r < rows.range[k].second; ++r)
                {
                    const T* d_row = d + r * ldd;
                    const T* a_row = a + r * lda;
                    const value w[sizeof...(V)] = {P::load(d_row + V * P::size)...};
                    (small_gemm_impl::fma_row<P>(acc[R], P::broadcast(a_row[R]), w, packs{}), ...);
                }
            }
            (small_gemm_impl::store_row<P>(g + R * ldg, acc[R], packs{}), ...);
        }

        /// Rows rows of G (at a, g) over Width columns (at d, g): wide tiles, one narrower tile, single columns.
        template <class T, std::size_t Width, std::size_t Rows>
        XRNN_TILE_INLINE void row_block(row_ranges chunk, const T* a, std::size_t lda, const T* d, std::size_t ldd,
                                        T* g, std::size_t ldg)
        {
            using P = vector_pack<T>;
            constexpr std::size_t packs = gemm_tile<T>::packs;
            constexpr std::size_t wide = packs * P::size;
            constexpr std::size_t wide_end = Width - Width % wide;
            constexpr std::size_t pack_end = P::size > 1 ? Width - Width % P::size : wide_end;
            using rows = std::make_index_sequence<Rows>;
            for (std::size_t col = 0; col < wide_end; col += wide)
            {
                tile<P>(chunk, a, lda, d + col, ldd, g + col, ldg, rows{}, std::make_index_sequence<packs>{});
            }
            if constexpr (pack_end > wide_end)
            {
                tile<P>(chunk, a, lda, d + wide_end, ldd, g + wide_end, ldg, rows{},
                        std::make_index_sequence<(pack_end - wide_end) / P::size>{});
            }
            for (std::size_t col = pack_end; col < Width; ++col)
            {
                tile<scalar_pack<T>>(chunk, a, lda, d + col, ldd, g + col, ldg, rows{}, std::make_index_sequence<1>{});
            }
        }

        template <class T, std::size_t Width, std::size_t... M>
        void remainder_rows(std::size_t m, row_ranges chunk, const T* a, std::size_t lda, const T* d,
                            std::size_t ldd, T* g, std::size_t ldg, std::index_sequence<M...>)
        {
            ((m == M + 1 ? row_block<T, Width, M + 1>(chunk, a, lda, d, ldd, g, ldg) : void()), ...);
        }

        /// One part: columns [0, Width) of D and of every G (pointers at the part's first column).
        template <class T, std::size_t Width>
        void part(const live_rows& live, std::size_t chunk_rows, const T* d, std::size_t ldd,
                  const outer_term<T>* terms, std::size_t term_count, std::size_t column)
        {
            constexpr std::size_t tile_rows = gemm_tile<T>::rows;
            const std::size_t rows = live.blocks * live.block;
            // chunks of chunk_rows rows; with counts, of whole blocks (at least one), each summing their live rows
            const std::size_t chunk_blocks
                = std::min(max_chunk_blocks, std::max<std::size_t>(1, chunk_rows / live.block));
            const std::size_t step = live.count == nullptr ? chunk_rows : chunk_blocks * live.block;
            std::pair<std::size_t, std::size_t> ranges[max_chunk_blocks];
            for (std::size_t r0 = 0; r0 < rows; r0 += step)
            {
                row_ranges chunk{ranges, 0};
                if (live.count == nullptr)
                {
                    ranges[chunk.count++] = {r0, std::min(rows, r0 + step)};
                }
                const std::size_t b_end = std::min(live.blocks, r0 / live.block + chunk_blocks);
                for (std::size_t b = r0 / live.block; live.count != nullptr && b < b_end; ++b)
                {
                    if (live.count[b] > 0)
                    {
                        ranges[chunk.count++] = {b * live.block, b * live.block + live.count[b]};
                    }
                }
                if (chunk.count == 0)
                {
                    continue;
                }
                for (std::size_t t = 0; t < term_count; ++t)
                {
                    const outer_term<T>& term = terms[t];
                    for (std::size_t i = 0; i < term.k; i += tile_rows)
                    {
                        const T* a = term.a + i;
                        T* g = term.g + i * term.ldg + column;
                        if (i + tile_rows <= term.k)
                        {
                            row_block<T, Width, tile_rows>(chunk, a, term.lda, d, ldd, g, term.ldg);
                        }
                        else
                        {
                            remainder_rows<T, Width>(term.k - i, chunk, a, term.lda, d, ldd, g, term.ldg,
                                                     std::make_index_sequence<tile_rows - 1>{});
                        }
                    }
                }
            }
        }
    }  // namespace outer_gemm_impl

    /// Columns of one part of accumulate_outer_products: two wide tiles (96 floats with AVX-512), so that A is
    /// read N / part_columns times in all while the parts still keep two or three threads busy.
    template <class T>
    constexpr std::size_t outer_part_columns = 2 * gemm_tile<T>::packs * vector_pack<T>::size;

    /// Rows of D per chunk of accumulate_outer_products (see the top of this file).
    constexpr std::size_t outer_chunk_rows = 256;

    /// For every term t: G_t (k_t x N) += A_t^T D, D (rows x N, rows ldd apart), summed over the rows; on xrnn's
    /// threads, bit-identical on any number of them. No G_t may overlap D or an A.
    template <class T, std::size_t N, std::size_t Terms>
    void accumulate_outer_products(const live_rows& rows, const T* d, std::size_t ldd,
                                   const outer_term<T> (&terms)[Terms])
    {
        constexpr std::size_t width = outer_part_columns<T>;
        constexpr std::size_t whole = N / width;
        constexpr std::size_t parts = whole + (N % width != 0 ? 1 : 0);
        if (rows.blocks == 0 || rows.block == 0)
        {
            return;
        }
        parallel_for(parts, [&](std::size_t p) {
            flush_denormals_scope flush_denormals;
            const std::size_t column = p * width;
            if (p < whole)
            {
                outer_gemm_impl::part<T, width>(rows, outer_chunk_rows, d + column, ldd, terms, Terms, column);
            }
            else if constexpr (N % width != 0)
            {
                outer_gemm_impl::part<T, N % width>(rows, outer_chunk_rows, d + column, ldd, terms, Terms, column);
            }
        });
    }

    /// gemm_rows (small_gemm.hpp) over the live rows, in parts of about 256 rows on xrnn's threads; the other
    /// rows of Y (N values each) are set to 0.
    template <class T, std::size_t N, std::size_t LDW = N, std::size_t Terms>
    void parallel_gemm_rows(const live_rows& rows, T* y, std::size_t ldy, const gemm_term<T> (&terms)[Terms])
    {
        constexpr std::size_t part_rows = 32 * gemm_tile<T>::rows;
        if (rows.count == nullptr)  // one range: parts of whole register tiles
        {
            const std::size_t m = rows.blocks * rows.block;
            parallel_for((m + part_rows - 1) / part_rows, [&](std::size_t p) {
                flush_denormals_scope flush_denormals;
                const std::size_t r = p * part_rows;
                gemm_term<T> block[Terms];
                for (std::size_t t = 0; t < Terms; ++t)
                {
                    block[t] = terms[t];
                    block[t].a += r * terms[t].lda;
                }
                gemm_rows<T, N, LDW>(std::min(part_rows, m - r), y + r * ldy, ldy, block);
            });
            return;
        }
        const std::size_t blocks_per_part = std::max<std::size_t>(1, part_rows / std::max<std::size_t>(1, rows.block));
        parallel_for((rows.blocks + blocks_per_part - 1) / blocks_per_part, [&](std::size_t p) {
            flush_denormals_scope flush_denormals;
            for (std::size_t b = p * blocks_per_part; b < std::min(rows.blocks, (p + 1) * blocks_per_part); ++b)
            {
                const std::size_t r = b * rows.block;
                const std::size_t n = rows.count[b];
                gemm_term<T> block[Terms];
                for (std::size_t t = 0; t < Terms; ++t)
                {
                    block[t] = terms[t];
                    block[t].a += r * terms[t].lda;
                }
                if (n > 0)
                {
                    gemm_rows<T, N, LDW>(n, y + r * ldy, ldy, block);
                }
                for (std::size_t i = n; i < rows.block; ++i)
                {
                    std::fill(y + (r + i) * ldy, y + (r + i) * ldy + N, T(0));
                }
            }
        });
    }
}  // namespace xrnn::detail

#endif
