// xtensor-rnn: elementwise loops and a small matrix-vector product over raw arrays, vectorised with xsimd.
//
// The gate nonlinearities of the cells (lstm_cell.hpp, rnn_cell.hpp) are written once, as generic code over a
// "pack" P: P::value is either the scalar T or an xsimd::batch<T> of P::size lanes, and for_each_pack(n, f)
// calls f(P, j) for j = 0, L, 2L, ... with the SIMD pack and then for the scalar tail. The math helpers
// (exp_, tanh_, sigmoid_, ...) take either kind.
//
// xsimd is used when XRNN_USE_XSIMD is 1. It defaults to 1 when XTENSOR_USE_XSIMD is defined or when
// <xsimd/xsimd.hpp> (version 8 or later) can be included, and to 0 otherwise (plain loops, same results up to
// rounding). Define XRNN_USE_XSIMD=0 to force the plain loops. The instruction set is the one the translation
// unit is compiled for (SSE2 by default on x86-64, AVX-512 with -march=native on such a CPU): the headers need
// no -march flag.
//
// flush_denormals_scope: flush-to-zero and denormals-are-zero on the calling thread for its lifetime (x86 SSE;
// nothing elsewhere). The recurrent loops run under it: a gradient decaying through many steps would otherwise
// reach denormal floats, which are many times slower on most CPUs. Define XRNN_KEEP_DENORMALS to leave the
// floating-point mode alone.
#ifndef XRNN_DETAIL_SIMD_HPP
#define XRNN_DETAIL_SIMD_HPP

#include <cmath>
#include <cstddef>
#include <type_traits>
#include <utility>

#ifndef XRNN_USE_XSIMD
#if defined(XTENSOR_USE_XSIMD)
#define XRNN_USE_XSIMD 1
#elif defined(__has_include)
#if __has_include(<xsimd/xsimd.hpp>)
#include <xsimd/xsimd.hpp>
#if defined(XSIMD_VERSION_MAJOR) && XSIMD_VERSION_MAJOR >= 8 && !defined(XSIMD_NO_SUPPORTED_ARCHITECTURE)
#define XRNN_USE_XSIMD 1
#endif
#endif
#endif
#endif
#ifndef XRNN_USE_XSIMD
#define XRNN_USE_XSIMD 0
#endif

#if XRNN_USE_XSIMD
#include <xsimd/xsimd.hpp>
#endif

#if !defined(XRNN_KEEP_DENORMALS) && (defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2))
#include <xmmintrin.h>
#define XRNN_HAS_MXCSR 1
#else
#define XRNN_HAS_MXCSR 0
#endif

namespace xrnn::detail
{
    /// One lane: the scalar tail of every loop, and the whole loop without xsimd.
    template <class T>
    struct scalar_pack
    {
        using value = T;
        static constexpr std::size_t size = 1;

        static value load(const T* p) noexcept
        {
            return *p;
        }

        static void store(T* p, const value& v) noexcept
        {
            *p = v;
        }

        static value broadcast(T v) noexcept
        {
            return v;
        }
    };

#if XRNN_USE_XSIMD
    /// xsimd::batch<T> of the instruction set this translation unit is compiled for.
    template <class T>
    struct simd_pack
    {
        using value = xsimd::batch<T>;
        static constexpr std::size_t size = value::size;

        static value load(const T* p) noexcept
        {
            return value::load_unaligned(p);
        }

        static void store(T* p, const value& v) noexcept
        {
            v.store_unaligned(p);
        }

        static value broadcast(T v) noexcept
        {
            return value(v);
        }
    };

    template <class T>
    using vector_pack = simd_pack<T>;
#else
    template <class T>
    using vector_pack = scalar_pack<T>;
#endif

    /// Calls f(P{}, j) for every j in [0, n): whole SIMD packs first (P = vector_pack<T>), then the tail one
    /// element at a time (P = scalar_pack<T>).
    template <class T, class F>
    void for_each_pack(std::size_t n, F&& f)
    {
        using P = vector_pack<T>;
        std::size_t j = 0;
        if constexpr (P::size > 1)
        {
            for (; j + P::size <= n; j += P::size)
            {
                f(P{}, j);
            }
        }
        for (; j < n; ++j)
        {
            f(scalar_pack<T>{}, j);
        }
    }

    /// for_each_pack over a compile-time count N (the hidden width of a cell): the tail is known statically.
    template <class T, std::size_t N, class F>
    void for_each_pack(F&& f)
    {
        using P = vector_pack<T>;
        constexpr std::size_t packed = P::size > 1 ? N - N % P::size : 0;
        if constexpr (P::size > 1)
        {
            for (std::size_t j = 0; j < packed; j += P::size)
            {
                f(P{}, j);
            }
        }
        for (std::size_t j = packed; j < N; ++j)
        {
            f(scalar_pack<T>{}, j);
        }
    }

    // ---- math on a scalar or on a pack ----------------------------------------------------------------------
    inline float exp_(float x) noexcept
    {
        return std::exp(x);
    }
    inline double exp_(double x) noexcept
    {
        return std::exp(x);
    }
    inline float tanh_(float x) noexcept
    {
        return std::tanh(x);
    }
    inline double tanh_(double x) noexcept
    {
        return std::tanh(x);
    }
    template <class T, class = std::enable_if_t<std::is_floating_point<T>::value>>
    T max_(T a, T b) noexcept
    {
        return a > b ? a : b;
    }
    /// dy where y > 0, else 0 (the derivative of relu written from its output).
    template <class T, class = std::enable_if_t<std::is_floating_point<T>::value>>
    T where_positive_(T y, T dy) noexcept
    {
        return y > T(0) ? dy : T(0);
    }
    template <class T, class = std::enable_if_t<std::is_floating_point<T>::value>>
    T fma_(T a, T b, T c) noexcept
    {
        return a * b + c;  // contracted (or not) as the compiler chooses, like the rest of the scalar code
    }

#if XRNN_USE_XSIMD
    template <class T, class A>
    xsimd::batch<T, A> exp_(const xsimd::batch<T, A>& x) noexcept
    {
        return xsimd::exp(x);
    }
    template <class T, class A>
    xsimd::batch<T, A> tanh_(const xsimd::batch<T, A>& x) noexcept
    {
        return xsimd::tanh(x);
    }
    template <class T, class A>
    xsimd::batch<T, A> max_(const xsimd::batch<T, A>& a, const xsimd::batch<T, A>& b) noexcept
    {
        return xsimd::max(a, b);
    }
    template <class T, class A>
    xsimd::batch<T, A> where_positive_(const xsimd::batch<T, A>& y, const xsimd::batch<T, A>& dy) noexcept
    {
        return xsimd::select(y > xsimd::batch<T, A>(T(0)), dy, xsimd::batch<T, A>(T(0)));
    }
    template <class T, class A>
    xsimd::batch<T, A> fma_(const xsimd::batch<T, A>& a, const xsimd::batch<T, A>& b,
                            const xsimd::batch<T, A>& c) noexcept
    {
        return xsimd::fma(a, b, c);
    }
#endif

    /// 1 / (1 + e^-x)
    template <class V>
    V sigmoid_(const V& x) noexcept
    {
        return V(1) / (V(1) + exp_(-x));
    }

    // ---- small matrix-vector product -------------------------------------------------------------------------

    /// One row of operands of gemv_rows: y += a (1 x k) W (k x N), W row-major.
    template <class T>
    struct gemv_term
    {
        const T* a;
        const T* w;
        std::size_t k;
    };

    namespace gemv_impl
    {
        template <class P, class T, std::size_t LDW, std::size_t... V>
        void block(const T* init, T* y, std::size_t col, const gemv_term<T>* terms, std::size_t term_count,
                   std::index_sequence<V...>)
        {
            using value = typename P::value;
            value acc[sizeof...(V)] = {(init != nullptr ? P::load(init + col + V * P::size) : value(T(0)))...};
            for (std::size_t t = 0; t < term_count; ++t)
            {
                const T* a = terms[t].a;
                const T* w = terms[t].w + col;
                for (std::size_t r = 0; r < terms[t].k; ++r)
                {
                    const value ar = P::broadcast(a[r]);
                    const T* row = w + r * LDW;
                    ((acc[V] = fma_(ar, P::load(row + V * P::size), acc[V])), ...);
                }
            }
            (P::store(y + col + V * P::size, acc[V]), ...);
        }
    }  // namespace gemv_impl

    /// y (N) = init (N; nullptr for zeros) + sum over terms of a_t (1 x k_t) W_t (k_t x N), for a compile-time
    /// width N; y may be init, but no a_t may overlap y. Column blocks of up to 16 SIMD registers (8 where the
    /// instruction set has 16 registers, not 32) are accumulated over all rows of all terms before they are
    /// stored, so each weight is read once and y is written once: this is the batch-1 path, where a BLAS call
    /// costs more than the product (a 1 x 256 by 256 x 512 product is 0.26 MFLOP).
    template <class T, std::size_t N, std::size_t LDW = N>
    void gemv_rows(const T* init, T* y, const gemv_term<T>* terms, std::size_t term_count)
    {
        static_assert(LDW >= N, "xrnn: gemv_rows reads N columns of rows LDW apart");
        using P = vector_pack<T>;
        constexpr std::size_t packs = P::size * sizeof(T) >= 64 ? 16 : 8;             // AVX-512: 32 registers
        constexpr std::size_t wide = packs * P::size;
        constexpr std::size_t wide_end = N - N % wide;                               // blocks of `packs` packs
        constexpr std::size_t pack_end = P::size > 1 ? N - N % P::size : wide_end;  // then one smaller block
        for (std::size_t col = 0; col < wide_end; col += wide)
        {
            gemv_impl::block<P, T, LDW>(init, y, col, terms, term_count, std::make_index_sequence<packs>{});
        }
        if constexpr (pack_end > wide_end)
        {
            gemv_impl::block<P, T, LDW>(init, y, wide_end, terms, term_count,
                                      std::make_index_sequence<(pack_end - wide_end) / P::size>{});
        }
        for (std::size_t col = pack_end; col < N; ++col)  // then single values
        {
            gemv_impl::block<scalar_pack<T>, T, LDW>(init, y, col, terms, term_count, std::make_index_sequence<1>{});
        }
    }

    // ---- floating-point mode ---------------------------------------------------------------------------------

    /// Flush-to-zero and denormals-are-zero on this thread while the object lives (x86 SSE; a no-op elsewhere).
    class flush_denormals_scope
    {
    public:
        flush_denormals_scope() noexcept
        {
#if XRNN_HAS_MXCSR
            m_saved = _mm_getcsr();
            _mm_setcsr(m_saved | 0x8040u);  // FTZ (bit 15) | DAZ (bit 6)
#endif
        }

        ~flush_denormals_scope()
        {
#if XRNN_HAS_MXCSR
            _mm_setcsr(m_saved);
#endif
        }

        flush_denormals_scope(const flush_denormals_scope&) = delete;
        flush_denormals_scope& operator=(const flush_denormals_scope&) = delete;

    private:
#if XRNN_HAS_MXCSR
        unsigned int m_saved = 0;
#endif
    };
}  // namespace xrnn::detail

#endif
