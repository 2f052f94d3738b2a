// xtensor-rnn: weight initialisation. Every draw comes from a random_engine the caller seeds.
#ifndef XRNN_INIT_HPP
#define XRNN_INIT_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include <xtensor/xtensor.hpp>

#include <xrnn/random.hpp>

namespace xrnn
{
    /// Which framework's default initialisation a layer copies.
    ///  keras:   input kernels Glorot-uniform, recurrent kernels orthogonal, biases zero (LSTM forget-gate bias 1),
    ///           embeddings uniform(-0.05, 0.05).
    ///  pytorch: recurrent and dense weights and biases uniform(-1/sqrt(fan), 1/sqrt(fan)), embeddings N(0, 1).
    enum class init_scheme
    {
        keras,
        pytorch
    };

    namespace init
    {
        /// Every element uniform in [-limit, limit).
        template <class T, std::size_t N, xt::layout_type L, class A>
        void uniform(xt::xtensor<T, N, L, A>& w, double limit, random_engine& rng)
        {
            for (auto& v : w)
            {
                v = static_cast<T>(rng.uniform(-limit, limit));
            }
        }

        /// Every element from N(0, stddev^2).
        template <class T, std::size_t N, xt::layout_type L, class A>
        void normal(xt::xtensor<T, N, L, A>& w, double stddev, random_engine& rng)
        {
            for (auto& v : w)
            {
                v = static_cast<T>(stddev * rng.normal());
            }
        }

        /// Glorot (Xavier) uniform: limit = sqrt(6 / (fan_in + fan_out)); for a (fan_in, fan_out) kernel.
        template <class T, xt::layout_type L, class A>
        void glorot_uniform(xt::xtensor<T, 2, L, A>& w, random_engine& rng)
        {
            const double fan_in = static_cast<double>(w.shape()[0]);
            const double fan_out = static_cast<double>(w.shape()[1]);
            uniform(w, std::sqrt(6.0 / (fan_in + fan_out)), rng);
        }

        /// Orthogonal as Keras draws it: a normal matrix made orthonormal (QR with the signs of R's diagonal
        /// folded in, which is what Gram-Schmidt gives). A (rows, cols) kernel gets orthonormal columns when
        /// rows >= cols and orthonormal rows otherwise (the LSTM's (H, 4H) recurrent kernel: rows).
        template <class T, xt::layout_type L, class A>
        void orthogonal(xt::xtensor<T, 2, L, A>& w, random_engine& rng)
        {
            const std::size_t rows = w.shape()[0];
            const std::size_t cols = w.shape()[1];
            const std::size_t count = std::min(rows, cols);   // vectors to orthonormalise
            const std::size_t length = std::max(rows, cols);  // their length
            std::vector<double> q(count * length);            // vector v is q[v * length .. (v + 1) * length)
            for (auto& v : q)
            {
                v = rng.normal();
            }
            // Modified Gram-Schmidt, run twice per vector so the result is orthonormal to rounding in double.
            for (std::size_t v = 0; v < count; ++v)
            {
                double* qv = q.data() + v * length;
                for (int pass = 0; pass < 2; ++pass)
                {
                    for (std::size_t u = 0; u < v; ++u)
                    {
                        const double* qu = q.data() + u * length;
                        double projection = 0.0;
                        for (std::size_t i = 0; i < length; ++i)
                        {
                            projection += qu[i] * qv[i];
                        }
                        for (std::size_t i = 0; i < length; ++i)
                        {
                            qv[i] -= projection * qu[i];
                        }
                    }
                }
                double norm = 0.0;
                for (std::size_t i = 0; i < length; ++i)
                {
                    norm += qv[i] * qv[i];
                }
                norm = std::sqrt(norm);
                for (std::size_t i = 0; i < length; ++i)
                {
                    qv[i] /= norm;
                }
            }
            for (std::size_t r = 0; r < rows; ++r)
            {
                for (std::size_t c = 0; c < cols; ++c)
                {
                    // rows >= cols: vector c is column c; rows < cols: vector r is row r.
                    w(r, c) = static_cast<T>(rows >= cols ? q[c * length + r] : q[r * length + c]);
                }
            }
        }
    }  // namespace init
}  // namespace xrnn

#endif
