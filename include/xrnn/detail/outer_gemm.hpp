// xtensor-rnn: the large products of a recurrent layer's backward on xrnn's own threads (threads.hpp).
//
//   accumulate_outer_products   G_t (k_t x N) += A_t^T D   for a few terms sharing D (rows x N), summed over rows:
//                               (Q4) dW_x += X~^T dZ and (Q5) dW_h += H~^T dZ over all steps, in one pass over dZ
//   parallel_gemm_rows          Y (m x N) = sum of A_t W_t (small_gemm.hpp's gemm_rows) with the rows split over
//                               the threads: (Q7) dX = dZ W_x^T from a transposed copy of W_x
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

    namespace outer_gemm_impl
    {
        template <class P, class T, std::size_t... J>
        XRNN_TILE_INLINE void load_row(typename P::value (&acc)[sizeof...(J)], const T* g, std::index_sequence<J...>)
        {
            ((acc[J] = P::load(g + J * P::size)), ...);
        }

        /// G[0:R, 0:V packs] += sum over r in [r0, r1) of A[r, 0:R]^T D[r, 0:V packs]; a, d, g at the tile's corner.
        template <class P, class T, std::size_t... R, std::size_t... V>
        XRNN_TILE_INLINE void tile(std::size_t r0, std::size_t r1, const T* a, std::size_t lda, const T* d,
                                   std::size_t ldd, T* g, std::size_t ldg, std::index_sequence<R...>,
                                   std::index_sequence<V...>)
        {
            using value = typename P::value;
            using packs = std::index_sequence<V...>;
            value acc[sizeof...(R)][sizeof...(V)];
            (load_row<P>(acc[R], g + R * ldg, packs{}), ...);
            for (std::size_t r = r0; r < r1; ++r)
            {
                const T* d_row = d + r * ldd;
                const T* a_row = a + r * lda;
                const value w[sizeof...(V)] = {P::load(d_row + V * P::size)...};
                (small_gemm_impl::fma_row<P>(acc[R], P::broadcast(a_row[R]), w, packs{}), ...);
            }
            (small_gemm_impl::store_row<P>(g + R * ldg, acc[R], packs{}), ...);
        }

        /// Rows rows of G (at a, g) over Width columns (at d, g): wide tiles, one narrower tile, single columns.
        template <class T, std::size_t Width, std::size_t Rows>
        XRNN_TILE_INLINE void row_block(std::size_t r0, std::size_t r1, const T* a, std::size_t lda, const T* d,
                                        std::size_t ldd, T* g, std::size_t ldg)
        {
            using P = vector_pack<T>;
            constexpr std::size_t packs = gemm_tile<T>::packs;
            constexpr std::size_t wide = packs * P::size;
            constexpr std::size_t wide_end = Width - Width % wide;
            constexpr std::size_t pack_end = P::size > 1 ? Width - Width % P::size : wide_end;
            using rows = std::make_index_sequence<Rows>;
            for (std::size_t col = 0; col < wide_end; col += wide)
            {
                tile<P>(r0, r1, a, lda, d + col, ldd, g + col, ldg, rows{}, std::make_index_sequence<packs>{});
            }
            if constexpr (pack_end > wide_end)
            {
                tile<P>(r0, r1, a, lda, d + wide_end, ldd, g + wide_end, ldg, rows{},
                        std::make_index_sequence<(pack_end - wide_end) / P::size>{});
            }
            for (std::size_t col = pack_end; col < Width; ++col)
            {
                tile<scalar_pack<T>>(r0, r1, a, lda, d + col, ldd, g + col, ldg, rows{}, std::make_index_sequence<1>{});
            }
        }

        template <class T, std::size_t Width, std::size_t... M>
        void remainder_rows(std::size_t m, std::size_t r0, std::size_t r1, const T* a, std::size_t lda, const T* d,
                            std::size_t ldd, T* g, std::size_t ldg, std::index_sequence<M...>)
        {
            ((m == M + 1 ? row_block<T, Width, M + 1>(r0, r1, a, lda, d, ldd, g, ldg) : void()), ...);
        }

        /// One part: columns [0, Width) of D and of every G (pointers at the part's first column).
        template <class T, std::size_t Width>
        void part(std::size_t rows, std::size_t chunk_rows, const T* d, std::size_t ldd, const outer_term<T>* terms,
                  std::size_t term_count, std::size_t column)
        {
            constexpr std::size_t tile_rows = gemm_tile<T>::rows;
            for (std::size_t r0 = 0; r0 < rows; r0 += chunk_rows)
            {
                const std::size_t r1 = std::min(rows, r0 + chunk_rows);
                for (std::size_t t = 0; t < term_count; ++t)
                {
                    const outer_term<T>& term = terms[t];
                    for (std::size_t i = 0; i < term.k; i += tile_rows)
                    {
                        const T* a = term.a + i;
                        T* g = term.g + i * term.ldg + column;
                        if (i + tile_rows <= term.k)
                        {
                            row_block<T, Width, tile_rows>(r0, r1, a, term.lda, d, ldd, g, term.ldg);
                        }
                        else
                        {
                            remainder_rows<T, Width>(term.k - i, r0, r1, a, term.lda, d, ldd, g, term.ldg,
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
    void accumulate_outer_products(std::size_t rows, const T* d, std::size_t ldd, const outer_term<T> (&terms)[Terms])
    {
        constexpr std::size_t width = outer_part_columns<T>;
        constexpr std::size_t whole = N / width;
        constexpr std::size_t parts = whole + (N % width != 0 ? 1 : 0);
        if (rows == 0)
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

    /// gemm_rows (small_gemm.hpp) over m rows, in parts of whole register tiles on xrnn's threads.
    template <class T, std::size_t N, std::size_t LDW = N, std::size_t Terms>
    void parallel_gemm_rows(std::size_t m, T* y, std::size_t ldy, const gemm_term<T> (&terms)[Terms])
    {
        constexpr std::size_t part_rows = 32 * gemm_tile<T>::rows;
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
    }
}  // namespace xrnn::detail

#endif
