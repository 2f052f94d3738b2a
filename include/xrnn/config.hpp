// xtensor-rnn: version, the library's error type and the runtime checks that raise it.
#ifndef XRNN_CONFIG_HPP
#define XRNN_CONFIG_HPP

#include <cstddef>
#include <initializer_list>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>

#define XRNN_VERSION_MAJOR 0
#define XRNN_VERSION_MINOR 1
#define XRNN_VERSION_PATCH 0

namespace xrnn
{
    /// Every error the library raises at run time is an xrnn::error (or derived from it), with a message that
    /// names what was expected and what came.
    class error : public std::runtime_error
    {
    public:
        using std::runtime_error::runtime_error;
    };

    /// A runtime size (batch, steps, features) that does not fit what the layer expects.
    class shape_error : public error
    {
    public:
        using error::error;
    };

    /// A value outside its domain: a token id outside the vocabulary, a class label out of range, a rate not in [0, 1).
    class value_error : public error
    {
    public:
        using error::error;
    };

    /// A call made in the wrong order: backward with no forward before it (recurrent layers and cells: with no
    /// mode::training forward), or an optimizer stepped with another model's parameters.
    class state_error : public error
    {
    public:
        using error::error;
    };

    /// A file that cannot be read or written, or whose contents are not what they claim to be: a missing data
    /// directory, a review that is not UTF-8, a truncated or corrupted weight file, a failed save.
    class io_error : public error
    {
    public:
        using error::error;
    };

    /// Dimension letters used across the library: S steps, B batch, I input features, H hidden units,
    /// G = gates * H pre-activation width, V vocabulary, D embedding width, C classes, T the scalar type.
    /// Sequences are time-major: (S, B, features), row-major.

    /// Whether a forward pass keeps what backward needs and applies dropout.
    enum class mode
    {
        training,
        inference
    };

    namespace detail
    {
        template <class Shape>
        std::string shape_to_string(const Shape& shape)
        {
            std::ostringstream out;
            out << '(';
            bool first = true;
            for (auto extent : shape)
            {
                out << (first ? "" : ", ") << extent;
                first = false;
            }
            out << ')';
            return out.str();
        }

        inline std::string shape_to_string(std::initializer_list<std::size_t> shape)
        {
            return shape_to_string<std::initializer_list<std::size_t>>(shape);
        }

        /// Throws shape_error "<where>: <what> expected shape (a, b)<note> but got (c, d)" unless the shapes agree.
        template <class Got, class Expected>
        void check_same_shape(const char* where, const char* what, const Got& got, const Expected& expected,
                              const char* note = "")
        {
            bool same = got.size() == expected.size();
            auto it = expected.begin();
            for (auto g = got.begin(); same && g != got.end(); ++g, ++it)
            {
                same = static_cast<std::size_t>(*g) == static_cast<std::size_t>(*it);
            }
            if (!same)
            {
                throw shape_error(std::string(where) + ": " + what + " expected shape " + shape_to_string(expected)
                                  + note + " but got " + shape_to_string(got));
            }
        }

        template <class Got>
        void check_shape(const char* where, const char* what, const Got& got, std::initializer_list<std::size_t> expected)
        {
            check_same_shape(where, what, got, expected);
        }

        /// Whether an integer id (signed or not) lies in [0, n).
        template <class Id>
        constexpr bool index_in_range(Id id, std::size_t n) noexcept
        {
            // `id >= Id(0)` is only meaningful for signed ids; written this way to avoid a warning for unsigned ones.
            return id >= Id(0) && static_cast<unsigned long long>(id) < n;
        }

        /// Throws shape_error unless a runtime extent (batch, steps) is at least one.
        inline void check_positive(const char* where, const char* what, std::size_t value)
        {
            if (value == 0)
            {
                throw shape_error(std::string(where) + ": " + what + " must be at least 1 but got 0");
            }
        }

        /// Throws value_error unless 0 <= rate < 1.
        inline void check_rate(const char* where, const char* what, double rate)
        {
            if (!(rate >= 0.0 && rate < 1.0))
            {
                std::ostringstream out;
                out << where << ": " << what << " expected in [0, 1) but got " << rate;
                throw value_error(out.str());
            }
        }
    }  // namespace detail
}  // namespace xrnn

#endif
