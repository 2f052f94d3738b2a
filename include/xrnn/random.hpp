// xtensor-rnn: the random engine behind every draw the library makes (initialisation, dropout masks, shuffles).
//
// Why not <random>: the standard distributions are implementation-defined, so the same seed would give other
// weights with another standard library. xoshiro256** seeded through splitmix64 and the conversions below are
// fully specified here, so one seed gives bit-identical weights and losses on every platform.
#ifndef XRNN_RANDOM_HPP
#define XRNN_RANDOM_HPP

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include <xrnn/config.hpp>

namespace xrnn
{
    class random_engine
    {
    public:
        using result_type = std::uint64_t;

        explicit random_engine(std::uint64_t seed) noexcept
        {
            reseed(seed);
        }

        void reseed(std::uint64_t seed) noexcept
        {
            // splitmix64 spreads any seed (0 included) over the 256-bit state.
            for (auto& word : m_state)
            {
                seed += 0x9e3779b97f4a7c15ull;
                std::uint64_t z = seed;
                z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
                z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
                word = z ^ (z >> 31);
            }
        }

        /// The full 256-bit state, so that a checkpoint can continue a stream exactly where it stopped.
        using state_type = std::array<std::uint64_t, 4>;

        state_type state() const noexcept
        {
            return {m_state[0], m_state[1], m_state[2], m_state[3]};
        }

        /// Restores a state from state(). All zeros is the one state xoshiro never leaves (it would draw only
        /// zeros, so every dropout mask would keep everything): it is a value_error, and nothing changes.
        void set_state(const state_type& state)
        {
            if ((state[0] | state[1] | state[2] | state[3]) == 0)
            {
                throw value_error("random_engine::set_state: expected a state with a non-zero word but got all zeros");
            }
            for (std::size_t k = 0; k < 4; ++k)
            {
                m_state[k] = state[k];
            }
        }

        static constexpr result_type min() noexcept
        {
            return 0;
        }

        static constexpr result_type max() noexcept
        {
            return ~result_type(0);
        }

        /// xoshiro256** (Blackman and Vigna, 2018).
        result_type operator()() noexcept
        {
            const std::uint64_t result = rotl(m_state[1] * 5, 7) * 9;
            const std::uint64_t t = m_state[1] << 17;
            m_state[2] ^= m_state[0];
            m_state[3] ^= m_state[1];
            m_state[1] ^= m_state[2];
            m_state[0] ^= m_state[3];
            m_state[2] ^= t;
            m_state[3] = rotl(m_state[3], 45);
            return result;
        }

        /// A new engine for a sub-task (one layer's dropout, say) whose stream does not overlap this one's.
        random_engine split() noexcept
        {
            return random_engine((*this)());
        }

        /// Uniform in [0, 1) with 53 random bits.
        double uniform() noexcept
        {
            return static_cast<double>((*this)() >> 11) * 0x1.0p-53;
        }

        /// Uniform in [low, high).
        double uniform(double low, double high) noexcept
        {
            return low + (high - low) * uniform();
        }

        /// Standard normal by the Box-Muller transform (one value per call, so the stream position is simple).
        double normal() noexcept
        {
            const double u1 = 1.0 - uniform();  // in (0, 1]: log stays finite
            const double u2 = uniform();
            return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586476925 * u2);
        }

        /// Uniform integer in [0, n) without modulo bias (rejection below 2^64 mod n, as arc4random_uniform), for shuffles.
        std::uint64_t below(std::uint64_t n) noexcept
        {
            if (n == 0)
            {
                return 0;
            }
            const std::uint64_t threshold = (0 - n) % n;
            for (;;)
            {
                const std::uint64_t r = (*this)();
                if (r >= threshold)
                {
                    return r % n;
                }
            }
        }

    private:
        static std::uint64_t rotl(std::uint64_t x, int k) noexcept
        {
            return (x << k) | (x >> (64 - k));
        }

        std::uint64_t m_state[4];
    };
}  // namespace xrnn

#endif
