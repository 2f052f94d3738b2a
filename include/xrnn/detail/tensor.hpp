// xtensor-rnn: small helpers over xtensor containers used by every layer.
#ifndef XRNN_DETAIL_TENSOR_HPP
#define XRNN_DETAIL_TENSOR_HPP

#include <array>
#include <cstddef>

#include <xtensor/xadapt.hpp>
#include <xtensor/xnoalias.hpp>
#include <xtensor/xtensor.hpp>

namespace xrnn::detail
{
    /// Resizes a workspace only when its shape changes, so steady-state training allocates nothing.
    template <class T, std::size_t N>
    void ensure_shape(xt::xtensor<T, N>& tensor, const std::array<std::size_t, N>& shape)
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
    template <class T>
    void ensure_capacity(xt::xtensor<T, 1>& buffer, std::size_t n)
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
