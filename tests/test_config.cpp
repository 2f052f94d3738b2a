// config.hpp: the error hierarchy, the runtime checks and their messages, the version macros.
#include <array>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <doctest/doctest.h>

#include <xrnn/config.hpp>

TEST_CASE("config: shape_error, value_error and state_error are xrnn::errors and std::runtime_errors")
{
    static_assert(std::is_base_of<std::runtime_error, xrnn::error>::value, "xrnn::error is a runtime_error");
    static_assert(std::is_base_of<xrnn::error, xrnn::shape_error>::value, "shape_error is an xrnn::error");
    static_assert(std::is_base_of<xrnn::error, xrnn::value_error>::value, "value_error is an xrnn::error");
    static_assert(std::is_base_of<xrnn::error, xrnn::state_error>::value, "state_error is an xrnn::error");
    static_assert(!std::is_base_of<xrnn::shape_error, xrnn::value_error>::value, "the three are distinct");
    static_assert(!std::is_base_of<xrnn::value_error, xrnn::state_error>::value, "the three are distinct");

    // Caught through each base, with the message intact.
    CHECK_THROWS_WITH_AS(throw xrnn::shape_error("shape"), "shape", xrnn::error);
    CHECK_THROWS_WITH_AS(throw xrnn::value_error("value"), "value", xrnn::error);
    CHECK_THROWS_WITH_AS(throw xrnn::state_error("state"), "state", xrnn::error);
    CHECK_THROWS_WITH_AS(throw xrnn::shape_error("shape"), "shape", std::runtime_error);
    CHECK_THROWS_WITH_AS(throw xrnn::value_error("value"), "value", std::runtime_error);
    CHECK_THROWS_WITH_AS(throw xrnn::state_error("state"), "state", std::runtime_error);
    CHECK_THROWS_AS(throw xrnn::error("base"), std::runtime_error);

    // ... and not as a sibling.
    bool caught_as_sibling = false;
    try
    {
        try
        {
            throw xrnn::shape_error("shape");
        }
        catch (const xrnn::value_error&)
        {
            caught_as_sibling = true;
        }
    }
    catch (const xrnn::shape_error&)
    {
    }
    CHECK_FALSE(caught_as_sibling);
}

TEST_CASE("config: check_shape accepts equal shapes and names where, what, expected and got otherwise")
{
    using xrnn::detail::check_shape;
    CHECK_NOTHROW(check_shape("where", "what", std::array<std::size_t, 2>{2, 3}, {2, 3}));
    CHECK_NOTHROW(check_shape("where", "what", std::vector<int>{4, 1, 7}, {4, 1, 7}));
    CHECK_NOTHROW(check_shape("where", "what", std::vector<std::size_t>{}, {}));

    CHECK_THROWS_WITH_AS(check_shape("where", "what", std::array<std::size_t, 2>{2, 4}, {2, 3}),
                         "where: what expected shape (2, 3) but got (2, 4)", xrnn::shape_error);
    // a rank mismatch is a shape mismatch too, in either direction
    CHECK_THROWS_WITH_AS(check_shape("layer::forward", "x", std::array<std::size_t, 3>{5, 2, 3}, {2, 3}),
                         "layer::forward: x expected shape (2, 3) but got (5, 2, 3)", xrnn::shape_error);
    CHECK_THROWS_WITH_AS(check_shape("f", "dy", std::array<std::size_t, 1>{6}, {6, 1}),
                         "f: dy expected shape (6, 1) but got (6)", xrnn::shape_error);
    CHECK_THROWS_WITH_AS(check_shape("f", "h", std::vector<std::size_t>{}, {1}), "f: h expected shape (1) but got ()",
                         xrnn::shape_error);
}

TEST_CASE("config: shape_to_string writes (a, b, c)")
{
    CHECK(xrnn::detail::shape_to_string({}) == "()");
    CHECK(xrnn::detail::shape_to_string({7}) == "(7)");
    CHECK(xrnn::detail::shape_to_string({3, 0, 12}) == "(3, 0, 12)");
    CHECK(xrnn::detail::shape_to_string(std::vector<long>{2, 5}) == "(2, 5)");
}

TEST_CASE("config: check_positive rejects zero extents with a shape_error naming them")
{
    CHECK_NOTHROW(xrnn::detail::check_positive("where", "batch", 1));
    CHECK_NOTHROW(xrnn::detail::check_positive("where", "batch", 1000));
    CHECK_THROWS_WITH_AS(xrnn::detail::check_positive("rnn::forward", "steps (x.shape()[0])", 0),
                         "rnn::forward: steps (x.shape()[0]) must be at least 1 but got 0", xrnn::shape_error);
}

TEST_CASE("config: check_rate accepts [0, 1) and rejects 1, negatives and NaN with a value_error")
{
    using xrnn::detail::check_rate;
    CHECK_NOTHROW(check_rate("dropout", "rate", 0.0));
    CHECK_NOTHROW(check_rate("dropout", "rate", 0.5));
    CHECK_NOTHROW(check_rate("dropout", "rate", 0.999));

    CHECK_THROWS_WITH_AS(check_rate("dropout", "rate", 1.0), "dropout: rate expected in [0, 1) but got 1",
                         xrnn::value_error);
    CHECK_THROWS_WITH_AS(check_rate("dropout", "rate", -0.1), "dropout: rate expected in [0, 1) but got -0.1",
                         xrnn::value_error);
    CHECK_THROWS_WITH_AS(check_rate("lstm", "recurrent_dropout", 1.5),
                         "lstm: recurrent_dropout expected in [0, 1) but got 1.5", xrnn::value_error);
    CHECK_THROWS_WITH_AS(check_rate("dropout", "rate", std::numeric_limits<double>::quiet_NaN()),
                         "dropout: rate expected in [0, 1) but got nan", xrnn::value_error);
    CHECK_THROWS_AS(check_rate("dropout", "rate", std::numeric_limits<double>::infinity()), xrnn::value_error);
}

TEST_CASE("config: version macros are integer constants usable in #if, and say 0.1.0")
{
    // Pinned to project(xrnn VERSION ...) in CMakeLists.txt (tests/cmake_import checks the installed package agrees);
    // update both together when releasing.
#if !defined(XRNN_VERSION_MAJOR) || !defined(XRNN_VERSION_MINOR) || !defined(XRNN_VERSION_PATCH)
    FAIL("a version macro is missing");
#elif XRNN_VERSION_MAJOR * 10000 + XRNN_VERSION_MINOR * 100 + XRNN_VERSION_PATCH != 100
    FAIL("the version macros do not say 0.1.0");
#else
    const std::string version = std::to_string(XRNN_VERSION_MAJOR) + "." + std::to_string(XRNN_VERSION_MINOR) + "."
                                + std::to_string(XRNN_VERSION_PATCH);
    CHECK(version == "0.1.0");
#endif
}
