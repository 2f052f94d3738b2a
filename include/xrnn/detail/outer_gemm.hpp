// xtensor-rnn: the large products of a recurrent layer's backward on xrnn's own threads (threads.hpp).
//
//   accumulate_outer_products   G_t (k_t x N) += A_t^T D   for a few terms sharing D (rows x N), summed over rows:
//                               (Q4) dW_x += X~^T dZ and (Q5) dW_h += H~^T dZ over all steps, in one pass over dZ
//   parallel_gemm_rows          Y (m x N) = sum of A_t W_t (small_gemm.hpp's gemm_row_runs) with the rows split over
//                               the threads: (Q7) dX = dZ W_x^T from W_x^T packed by column tiles, on the BLAS path
//                               (the register-blocked path does it in its time loop)
// Both take the rows as live_rows: per step, the rows of the sequences still alive (a prefix of the batch when
// the rows run sorted by length, layers/length_order.hpp), so that a padded batch costs its real tokens.
//
// Why not BLAS: OpenBLAS runs these on its own thread pool, whose idle workers spin for a while after each call
// and take a core from xrnn's threads in the next pass (measured in benchmarks/README.md), and OpenBLAS 0.3.21 has
// no way to make one call single-threaded without changing the process's global setting.
//
// accumulate_outer_products: the N columns are split into one part per thread (whole SIMD packs, about as many
// each). A part takes the live rows in chunks of outer_chunk_rows and packs each chunk once into the scratch the
// caller owns: D's columns of the part by column block (one tile wide), and A by tile row (8 of its columns). Each
// tile of G (Rows x Packs packs, as in small_gemm.hpp) is then loaded, accumulated in registers over the chunk's
// rows from two contiguous streams (a 4 KB block of A~ and a 24 KB block of D~, both in L1) and stored back; a
// column block's D~ stays in L1 while every tile row of every term runs over it, and A is read from memory once
// per part. Before the packing, each tile gathered its rows ldd apart from L2 or memory, and A was read once per
// 96 columns: IMDB LSTM shapes, (Q4) + (Q5), 2 threads, 16.2 ms -> 13.4 ms (206 -> 251 GFLOP/s). The packing
// copies 8 rows at a time, so that each block gets a contiguous piece: row after row, a row's pieces went to
// blocks 4 KB apart, all in one set of L1 (13.9 -> 13.2 ms in a probe of the same product).
// Every element of G is summed in the same order (rows ascending; a store and a reload between chunks round
// nothing) whatever the number of threads or the chunk size, and parallel_gemm_rows computes each row alone:
// results are bit-identical on any number of threads.
#ifndef XRNN_DETAIL_OUTER_GEMM_HPP
#define XRNN_DETAIL_OUTER_GEMM_HPP

#include <algorithm>
#include <cstddef>
#include <type_traits>
#include <utility>

#include <xrnn/detail/simd.hpp>
#include <xrnn/detail/small_gemm.hpp>
#include <xrnn/detail/tensor.hpp>
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
    /// sequences past their length (layers/recurrent_masking.hpp, (M2)), whose dZ is 0: skipping them changes no sum.
    struct live_rows
    {
        std::size_t blocks;
        std::size_t block;
        const std::size_t* count = nullptr;
    };

    /// Live rows of D per chunk of accumulate_outer_products (see the top of this file): a column block of D~
    /// (24 KB in float with AVX-512) and a tile row of A~ (4 KB) stay in a 48 KB L1 beside the tile's other lines.
    /// 64, 128 and 192 measured within noise of each other (benchmarks/README.md).
    constexpr std::size_t outer_chunk_rows = 128;

    namespace outer_gemm_impl
    {
        template <class P, class T, std::size_t... J>
        XRNN_TILE_INLINE void load_row(typename P::value (&acc)[sizeof...(J)], const T* g, std::index_sequence<J...>)
        {
            ((acc[J] = P::load(g + J * P::size)), ...);
        }

        /// G[0:R, 0:V packs] += sum over r < n of a[r][R] d[r][V packs]; a (n x R) and d (n x V packs) packed
        /// contiguous, g at the tile's corner.
        template <class P, class T, std::size_t... R, std::size_t... V>
        XRNN_TILE_INLINE void tile(std::size_t n, const T* a, const T* d, T* g, std::size_t ldg,
                                   std::index_sequence<R...>, std::index_sequence<V...>)
        {
            using value = typename P::value;
            using packs = std::index_sequence<V...>;
            constexpr std::size_t rows = sizeof...(R);
            constexpr std::size_t width = sizeof...(V) * P::size;
            value acc[rows][sizeof...(V)];
            (load_row<P>(acc[R], g + R * ldg, packs{}), ...);
            for (std::size_t r = 0; r < n; ++r)
            {
                const value w[sizeof...(V)] = {P::load(d + r * width + V * P::size)...};
                (small_gemm_impl::fma_row<P>(acc[R], P::broadcast(a[r * rows + R]), w, packs{}), ...);
            }
            (small_gemm_impl::store_row<P>(g + R * ldg, acc[R], packs{}), ...);
        }

        /// f(column, width) for one block of 1 .. packs - 1 SIMD packs (none when count is 0).
        template <class P, class F, std::size_t... K>
        XRNN_TILE_INLINE void narrower_block(std::size_t count, std::size_t column, F& f, std::index_sequence<K...>)
        {
            ((count == K + 1 ? f(column, std::integral_constant<std::size_t, (K + 1) * P::size>{}) : void()), ...);
        }

        /// f(column, width) for the column blocks of a part, each one tile wide: the SIMD packs [first, last) in
        /// wide tiles and one narrower tile, then, in the last part (tail), N's columns after its last whole pack.
        template <class T, std::size_t N, class F>
        XRNN_TILE_INLINE void for_each_block(std::size_t first, std::size_t last, bool tail, F&& f)
        {
            using P = vector_pack<T>;
            constexpr std::size_t packs = gemm_tile<T>::packs;
            constexpr std::size_t pack_end = N - N % P::size;
            std::size_t col = first;
            for (; col + packs * P::size <= last; col += packs * P::size)
            {
                f(col, std::integral_constant<std::size_t, packs * P::size>{});
            }
            narrower_block<P>((last - col) / P::size, col, f, std::make_index_sequence<packs - 1>{});
            for (col = pack_end; tail && col < N; ++col)
            {
                f(col, std::integral_constant<std::size_t, 1>{});
            }
        }

        /// m rows (1 .. Rows of a tile) of G by one column block of W columns at g: G += A~^T D~, a being A~
        /// packed (n x m), d the block of D~ (n x W).
        template <class T, std::size_t W, std::size_t... M>
        XRNN_TILE_INLINE void block_rows(std::size_t m, std::size_t n, const T* a, const T* d, T* g, std::size_t ldg,
                                         std::index_sequence<M...>)
        {
            using P = std::conditional_t<W % vector_pack<T>::size == 0, vector_pack<T>, scalar_pack<T>>;
            ((m == M + 1 ? tile<P>(n, a, d, g, ldg, std::make_index_sequence<M + 1>{},
                                   std::make_index_sequence<W / P::size>{})
                         : void()),
             ...);
        }

        /// to[0:W] = from[0:W], by SIMD packs where W allows.
        template <std::size_t W, class T>
        XRNN_TILE_INLINE void copy_values(const T* from, T* to)
        {
            using P = vector_pack<T>;
            if constexpr (W % P::size == 0)
            {
                for (std::size_t j = 0; j < W; j += P::size)
                {
                    P::store(to + j, P::load(from + j));
                }
            }
            else
            {
                std::copy(from, from + W, to);
            }
        }

        /// One part: the columns [first, last) of D and of every G (and the tail, see for_each_block), over the
        /// live rows in chunks of up to outer_chunk_rows, in ascending order, packed into scratch (see the top of
        /// this file).
        template <class T, std::size_t N>
        void part(const live_rows& live, const T* d, std::size_t ldd, const outer_term<T>* terms,
                  std::size_t term_count, std::size_t first, std::size_t last, bool tail, T* scratch)
        {
            constexpr std::size_t tile_rows = gemm_tile<T>::rows;
            constexpr std::size_t chunk_rows = outer_chunk_rows;
            const std::size_t columns = (tail ? N : last) - first;
            T* const packed_d = scratch;  // chunk_rows * columns, then A~: chunk_rows * the terms' k
            T* const packed_a = packed_d + chunk_rows * columns;
            row_run runs[chunk_rows];
            std::size_t rows[chunk_rows];  // the chunk's rows, in order
            std::size_t block = 0;
            std::size_t offset = 0;  // the next live row is block * live.block + offset
            for (;;)
            {
                std::size_t run_count = 0;
                std::size_t n = 0;
                while (n < chunk_rows && block < live.blocks)
                {
                    const std::size_t alive = live.count == nullptr ? live.block : live.count[block];
                    if (offset >= alive)
                    {
                        ++block;
                        offset = 0;
                        continue;
                    }
                    const std::size_t take = std::min(alive - offset, chunk_rows - n);
                    runs[run_count++] = {block * live.block + offset, take};
                    n += take;
                    offset += take;
                }
                if (n == 0)
                {
                    return;
                }
                // the chunk's rows, in order
                std::size_t listed = 0;
                for (std::size_t k = 0; k < run_count; ++k)
                {
                    for (std::size_t r = runs[k].first; r < runs[k].first + runs[k].count; ++r)
                    {
                        rows[listed++] = r;
                    }
                }
                // D~: in groups of tile_rows rows, each group's columns into their blocks (a contiguous piece per
                // block and group; the blocks are a multiple of 4 KiB apart)
                for (std::size_t at = 0; at < n; at += tile_rows)
                {
                    const std::size_t group = std::min(tile_rows, n - at);
                    for_each_block<T, N>(first, last, tail, [&](std::size_t col, auto width) {
                        constexpr std::size_t w = decltype(width)::value;
                        T* to = packed_d + (col - first) * n + at * w;
                        for (std::size_t g = 0; g < group; ++g)
                        {
                            copy_values<w>(d + rows[at + g] * ldd + col, to + g * w);
                        }
                    });
                }
                // A~: term by term, tile row by tile row (the last one m < tile_rows wide), in groups of tile_rows
                // rows, so that each tile row gets a contiguous piece per group (row after row, a row's values
                // went to tile rows 4 KiB apart, all in one set of L1: measured 1.03x on the GRU layer's training)
                T* out = packed_a;
                for (std::size_t t = 0; t < term_count; ++t)
                {
                    const outer_term<T>& term = terms[t];
                    for (std::size_t at = 0; at < n; at += tile_rows)
                    {
                        const std::size_t group = std::min(tile_rows, n - at);
                        for (std::size_t i = 0; i < term.k; i += tile_rows)
                        {
                            const std::size_t m = std::min(tile_rows, term.k - i);
                            T* to = out + i * n + at * m;
                            for (std::size_t g = 0; g < group; ++g)
                            {
                                const T* from = term.a + rows[at + g] * term.lda + i;
                                if (m == tile_rows)
                                {
                                    copy_values<tile_rows>(from, to + g * tile_rows);
                                }
                                else
                                {
                                    std::copy(from, from + m, to + g * m);
                                }
                            }
                        }
                    }
                    out += term.k * n;
                }

                // G: column block by column block (its D~ stays in L1), every tile row of every term
                for_each_block<T, N>(first, last, tail, [&](std::size_t col, auto width) {
                    constexpr std::size_t w = decltype(width)::value;
                    const T* a = packed_a;
                    for (std::size_t t = 0; t < term_count; ++t)
                    {
                        const outer_term<T>& term = terms[t];
                        for (std::size_t i = 0; i < term.k; i += tile_rows)
                        {
                            block_rows<T, w>(std::min(tile_rows, term.k - i), n, a + i * n,
                                             packed_d + (col - first) * n, term.g + i * term.ldg + col, term.ldg,
                                             std::make_index_sequence<tile_rows>{});
                        }
                        a += term.k * n;
                    }
                });
            }
        }
    }  // namespace outer_gemm_impl

    namespace outer_gemm_impl
    {
        /// Parts of accumulate_outer_products<T, N>: one per thread (A is read once per part), a wide tile each
        /// at least.
        template <class T, std::size_t N>
        std::size_t parts()
        {
            return std::max<std::size_t>(1, std::min(num_threads(), N / vector_pack<T>::size / gemm_tile<T>::packs));
        }

        /// Scratch values of one of parts parts: a chunk of D~ (its columns, the tail's included) and of A~.
        template <class T, std::size_t N>
        std::size_t part_values(std::size_t parts, std::size_t a_values)
        {
            constexpr std::size_t size = vector_pack<T>::size;
            return outer_chunk_rows * ((N / size + parts - 1) / parts * size + N % size + a_values);
        }
    }  // namespace outer_gemm_impl

    /// The scratch values accumulate_outer_products<T, N> uses on the current number of threads, the terms'
    /// k summing to a_values: per part, a chunk of D~ (its columns) and of A~ (a_values).
    template <class T, std::size_t N>
    std::size_t outer_scratch_values(std::size_t a_values)
    {
        const std::size_t parts = outer_gemm_impl::parts<T, N>();
        return parts * outer_gemm_impl::part_values<T, N>(parts, a_values);
    }

    /// For every term t: G_t (k_t x N) += A_t^T D, D (rows x N, rows ldd apart), summed over the rows; on xrnn's
    /// threads, bit-identical on any number of them. No G_t may overlap D or an A. scratch (a 1-D xtensor) holds
    /// the packed chunks, outer_scratch_values(...) values, and is grown to that if smaller.
    template <class T, std::size_t N, std::size_t Terms, class Scratch>
    void accumulate_outer_products(const live_rows& rows, const T* d, std::size_t ldd,
                                   const outer_term<T> (&terms)[Terms], Scratch& scratch)
    {
        constexpr std::size_t size = vector_pack<T>::size;
        if (rows.blocks == 0 || rows.block == 0)
        {
            return;
        }
        const std::size_t parts = outer_gemm_impl::parts<T, N>();
        std::size_t a_values = 0;
        for (const outer_term<T>& term : terms)
        {
            a_values += term.k;
        }
        const std::size_t part_values = outer_gemm_impl::part_values<T, N>(parts, a_values);
        ensure_capacity(scratch, parts * part_values);
        T* const scratch_data = scratch.data();
        parallel_for(parts, [&](std::size_t p) {
            flush_denormals_scope flush_denormals;
            constexpr std::size_t packs = N / size;  // whole SIMD packs; the columns after them: the last part
            outer_gemm_impl::part<T, N>(rows, d, ldd, terms, Terms, p * packs / parts * size,
                                        (p + 1) * packs / parts * size, p + 1 == parts,
                                        scratch_data + p * part_values);
        });
    }

    /// gemm_row_runs (small_gemm.hpp) over the live rows, in parts of about 256 rows on xrnn's threads; the other
    /// rows of Y (N values each) are set to 0.
    template <class T, std::size_t N, std::size_t LDW = N, bool Packed = false, std::size_t Terms>
    void parallel_gemm_rows(const live_rows& rows, T* y, std::size_t ldy, const gemm_term<T> (&terms)[Terms])
    {
        constexpr std::size_t part_rows = 32 * gemm_tile<T>::rows;
        if (rows.count == nullptr)  // one range: parts of whole register tiles
        {
            const std::size_t m = rows.blocks * rows.block;
            parallel_for((m + part_rows - 1) / part_rows, [&](std::size_t p) {
                flush_denormals_scope flush_denormals;
                const row_run run{p * part_rows, std::min(part_rows, m - p * part_rows)};
                gemm_row_runs<T, N, LDW, Packed>(&run, 1, y, ldy, terms);
            });
            return;
        }
        const std::size_t blocks_per_part = std::max<std::size_t>(1, part_rows / std::max<std::size_t>(1, rows.block));
        parallel_for((rows.blocks + blocks_per_part - 1) / blocks_per_part, [&](std::size_t p) {
            flush_denormals_scope flush_denormals;
            for (std::size_t b = p * blocks_per_part; b < std::min(rows.blocks, (p + 1) * blocks_per_part); ++b)
            {
                const row_run run{b * rows.block, rows.count[b]};
                if (run.count > 0)
                {
                    gemm_row_runs<T, N, LDW, Packed>(&run, 1, y, ldy, terms);
                }
                for (std::size_t i = run.first + run.count; i < run.first + rows.block; ++i)
                {
                    std::fill(y + i * ldy, y + i * ldy + N, T(0));
                }
            }
        });
    }
}  // namespace xrnn::detail

#endif
