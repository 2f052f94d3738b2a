// Errors across layers: every runtime mistake is an xrnn::error whose message names what was expected and what
// came; nothing crashes and nothing is computed from garbage. (Compile-time mistakes: tests/compile_fail/.)
#include <string>

#include <doctest/doctest.h>

#include <xrnn/xrnn.hpp>

namespace
{
    /// Runs f, requires an exception of type E, and returns its message.
    template <class E, class F>
    std::string message_of(F&& f)
    {
        try
        {
            f();
        }
        catch (const E& e)
        {
            static_assert(std::is_base_of<xrnn::error, E>::value, "library errors derive from xrnn::error");
            return e.what();
        }
        FAIL("no exception");
        return {};
    }
}  // namespace

TEST_CASE("errors: a runtime chain of layers with mismatched widths names both shapes")
{
    xrnn::random_engine rng(1);
    xrnn::embedding<float, 50, 8> emb(rng);
    xrnn::lstm<float, 16, 4> lstm(rng);  // reads 16 features, gets 8
    xt::xtensor<int, 2> ids({3, 2}, 1);
    const auto text = message_of<xrnn::shape_error>([&] { lstm.forward(emb.forward(ids)); });
    CHECK(text == "lstm::forward: x expected shape (S, B, 16) with S, B >= 1 but got (3, 2, 8)");
}

TEST_CASE("errors: token ids outside the vocabulary, negative or too large, are value_errors")
{
    xrnn::random_engine rng(2);
    xrnn::embedding<float, 10, 4> emb(rng);
    xt::xtensor<long, 2> ids = {{1, 2}, {3, -1}};
    CHECK(message_of<xrnn::value_error>([&] { emb.forward(ids); })
          == "embedding::forward: token id -1 at step 1, batch 1 is outside the vocabulary [0, 10)");
    ids(1, 1) = 10;
    CHECK(message_of<xrnn::value_error>([&] { emb.forward(ids); })
          == "embedding::forward: token id 10 at step 1, batch 1 is outside the vocabulary [0, 10)");
}

TEST_CASE("errors: a failed forward leaves the layer usable and its weights untouched")
{
    xrnn::random_engine rng(3);
    xrnn::lstm<double, 3, 4> lstm(rng);
    const auto weights = lstm.layer<0>().p.w_x;
    xt::xtensor<double, 3> good({4, 2, 3}, 0.5);
    const xt::xtensor<double, 2> before = lstm.forward(good);
    xt::xtensor<double, 3> bad({4, 2, 5}, 0.5);
    CHECK_THROWS_AS(lstm.forward(bad), xrnn::shape_error);
    CHECK(lstm.layer<0>().p.w_x == weights);
    CHECK(lstm.forward(good) == before);
}

TEST_CASE("errors: empty batches and zero steps are shape_errors, not empty results")
{
    xrnn::random_engine rng(4);
    xrnn::rnn<float, 3, 4> rnn(rng);
    xrnn::dense<float, 3, 2> dense(rng);
    xrnn::embedding<float, 5, 3> emb(rng);
    CHECK_THROWS_AS(rnn.forward(xt::xtensor<float, 3>({0, 2, 3})), xrnn::shape_error);
    CHECK_THROWS_AS(rnn.forward(xt::xtensor<float, 3>({2, 0, 3})), xrnn::shape_error);
    CHECK_THROWS_AS(dense.forward(xt::xtensor<float, 2>({0, 3})), xrnn::shape_error);
    CHECK_THROWS_AS(emb.forward(xt::xtensor<int, 2>({0, 3})), xrnn::shape_error);
}

TEST_CASE("errors: backward in the wrong order is a state_error")
{
    xrnn::random_engine rng(5);
    xrnn::rnn<float, 3, 4> rnn(rng);
    xt::xtensor<float, 2> dy({2, 4}, 1.0f);
    CHECK(message_of<xrnn::state_error>([&] { rnn.backward(dy); })
          == "rnn::backward: call forward(x, mode::training) before backward");
}

TEST_CASE("errors: an optimizer stepped with another model's parameters is a state_error")
{
    xrnn::random_engine rng(6);
    xrnn::dense<float, 3, 2> a(rng);
    xrnn::dense<float, 4, 2> b(rng);
    xrnn::adam<float> optimizer;
    optimizer.step(a);
    CHECK(message_of<xrnn::state_error>([&] { optimizer.step(b); })
          == "adam::step: parameter 0 is w with 8 values, but the state was made for w with 6; use one optimizer per "
             "model");
}
