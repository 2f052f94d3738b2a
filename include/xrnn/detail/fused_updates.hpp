// xtensor-rnn: the optimizers' update rules (optim.hpp) as one SIMD pass over each parameter.
//
// Each function reads p, g and the state buffers once and writes p and the buffers once, with the arithmetic in
// the order of optim.hpp's formulas (so the results are those of the former one-expression-per-buffer xtensor
// code, up to the compiler's contraction of a multiply and an add into one FMA). A parameter of more than
// update_part_size values is split into parts of that size over xrnn's threads (threads.hpp): the update is
// elementwise, so the results do not depend on the number of threads.
//   sgd_update      v = mu v + (g + wd p) (v = g + wd p at the first step);  p -= lr (nesterov ? g + wd p + mu v : v)
//                   (mu = 0: p -= lr (g + wd p), no buffer)
//   adam_update     m = b1 m + (1 - b1) g';  v = b2 v + (1 - b2) g'^2;  p -= step_size m / (sqrt(v) / bc2 + eps)
//   rmsprop_update  v = a v + (1 - a) g'^2;  p -= lr g' / (sqrt(v) + eps)          with g' = g + wd p
#ifndef XRNN_DETAIL_FUSED_UPDATES_HPP
#define XRNN_DETAIL_FUSED_UPDATES_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>

#include <xrnn/detail/simd.hpp>
#include <xrnn/threads.hpp>

namespace xrnn::detail
{
    /// Values per part of a parallel update: 3-4 arrays of 64 KiB each, and enough work to pay for a thread.
    constexpr std::size_t update_part_size = std::size_t(1) << 14;

    /// f(P, j) for every pack of [0, n) (for_each_pack), the parts of update_part_size on xrnn's threads.
    template <class T, class F>
    void for_each_pack_parallel(std::size_t n, F&& f)
    {
        const std::size_t parts = (n + update_part_size - 1) / update_part_size;
        parallel_for(parts, [&](std::size_t part) {
            const std::size_t begin = part * update_part_size;
            for_each_pack<T>(std::min(update_part_size, n - begin),
                             [&](auto pack, std::size_t j) { f(pack, begin + j); });
        });
    }

    template <class T>
    struct sgd_constants
    {
        T lr, mu, wd;
        bool nesterov, first_step;
    };

    template <class T>
    void sgd_update(T* p, const T* g, T* v, std::size_t n, const sgd_constants<T>& c)
    {
        for_each_pack_parallel<T>(n, [&](auto pack, std::size_t j) {
            using P = decltype(pack);
            using value = typename P::value;
            const value pj = P::load(p + j);
            const value gj = P::load(g + j);
            const value lr(c.lr);
            const value wd(c.wd);
            if (c.mu == T(0))
            {
                P::store(p + j, pj - lr * (gj + wd * pj));
                return;
            }
            const value mu(c.mu);
            const value vj = c.first_step ? value(gj + wd * pj) : value(mu * P::load(v + j) + gj + wd * pj);
            P::store(v + j, vj);
            P::store(p + j, c.nesterov ? value(pj - lr * (gj + wd * pj + mu * vj)) : value(pj - lr * vj));
        });
    }

    template <class T>
    struct adam_constants
    {
        T b1, b2, step_size, bias_correction2_sqrt, eps, wd;
    };

    template <class T>
    void adam_update(T* p, const T* g, T* m, T* v, std::size_t n, const adam_constants<T>& c)
    {
        for_each_pack_parallel<T>(n, [&](auto pack, std::size_t j) {
            using P = decltype(pack);
            using value = typename P::value;
            using std::sqrt;
            const value pj = P::load(p + j);
            const value gj = P::load(g + j) + value(c.wd) * pj;
            const value mj = value(c.b1) * P::load(m + j) + value(T(1) - c.b1) * gj;
            const value vj = value(c.b2) * P::load(v + j) + value(T(1) - c.b2) * (gj * gj);
            P::store(m + j, mj);
            P::store(v + j, vj);
            P::store(p + j, pj - value(c.step_size) * mj / (sqrt(vj) / value(c.bias_correction2_sqrt) + value(c.eps)));
        });
    }

    template <class T>
    struct rmsprop_constants
    {
        T lr, alpha, eps, wd;
    };

    template <class T>
    void rmsprop_update(T* p, const T* g, T* v, std::size_t n, const rmsprop_constants<T>& c)
    {
        for_each_pack_parallel<T>(n, [&](auto pack, std::size_t j) {
            using P = decltype(pack);
            using value = typename P::value;
            using std::sqrt;
            const value pj = P::load(p + j);
            const value gj = P::load(g + j) + value(c.wd) * pj;
            const value vj = value(c.alpha) * P::load(v + j) + value(T(1) - c.alpha) * (gj * gj);
            P::store(v + j, vj);
            P::store(p + j, pj - value(c.lr) * gj / (sqrt(vj) + value(c.eps)));
        });
    }
}  // namespace xrnn::detail

#endif
