// xtensor-rnn: matrix products into preallocated, row-major buffers.
//
// xt::linalg::dot allocates and returns an xarray, so hot paths call BLAS through xtensor-blas's cxxblas
// binding layer here instead: C = alpha * op(A) op(B) + beta * C written in place, with beta = 1 to accumulate
// (gradients) and beta = 0 to overwrite. Matrices are raw pointers plus leading dimensions, so a step of a
// (S, B, H) sequence buffer is just `data + t * B * H` with no view or copy.
#ifndef XRNN_DETAIL_BLAS_HPP
#define XRNN_DETAIL_BLAS_HPP

#include <cstddef>
#include <type_traits>

#include <xtensor-blas/xblas.hpp>

namespace xrnn::detail
{
    enum class transpose : bool
    {
        no = false,
        yes = true
    };

    /// C (m x n) = alpha * op(A) (m x k) * op(B) (k x n) + beta * C, all row-major.
    template <class T>
    void gemm(transpose trans_a, transpose trans_b, std::size_t m, std::size_t n, std::size_t k, T alpha,
              const T* a, std::size_t lda, const T* b, std::size_t ldb, T beta, T* c, std::size_t ldc)
    {
        static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value,
                      "xrnn: the scalar type must be float or double (BLAS)");
        using index = xt::blas_index_t;
        if (m == 0 || n == 0)
        {
            return;
        }
        if (k == 0)
        {
            // BLAS leaves C untouched for k = 0 only when beta = 1; make the empty product explicit.
            for (std::size_t r = 0; r < m; ++r)
            {
                for (std::size_t col = 0; col < n; ++col)
                {
                    c[r * ldc + col] = beta == T(0) ? T(0) : beta * c[r * ldc + col];
                }
            }
            return;
        }
        cxxblas::gemm<index>(cxxblas::StorageOrder::RowMajor,
                             trans_a == transpose::yes ? cxxblas::Transpose::Trans : cxxblas::Transpose::NoTrans,
                             trans_b == transpose::yes ? cxxblas::Transpose::Trans : cxxblas::Transpose::NoTrans,
                             static_cast<index>(m), static_cast<index>(n), static_cast<index>(k), alpha, a,
                             static_cast<index>(lda), b, static_cast<index>(ldb), beta, c, static_cast<index>(ldc));
    }

    /// Y (rows x n) = X (rows x k) W (k x n) + beta * Y.
    template <class T>
    void matmul(const T* x, const T* w, T* y, std::size_t rows, std::size_t k, std::size_t n, T beta = T(0))
    {
        gemm(transpose::no, transpose::no, rows, n, k, T(1), x, k, w, n, beta, y, n);
    }

    /// Y (rows x k) = D (rows x n) W^T (W is k x n) + beta * Y: the gradient of X in Y = X W.
    template <class T>
    void matmul_transposed_weight(const T* d, const T* w, T* y, std::size_t rows, std::size_t n, std::size_t k,
                                  T beta = T(0))
    {
        gemm(transpose::no, transpose::yes, rows, k, n, T(1), d, n, w, n, beta, y, k);
    }

    /// G (k x n) += X^T (X is rows x k) D (rows x n): the gradient of W in Y = X W, summed over rows.
    template <class T>
    void accumulate_weight_gradient(const T* x, const T* d, T* g, std::size_t rows, std::size_t k, std::size_t n)
    {
        gemm(transpose::yes, transpose::no, k, n, rows, T(1), x, k, d, n, T(1), g, n);
    }
}  // namespace xrnn::detail

#endif
