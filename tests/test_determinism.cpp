// Determinism: one seed gives bit-identical weights, dropout masks and losses; another seed gives others.
#include <vector>

#include <doctest/doctest.h>

#include <xrnn/xrnn.hpp>

namespace
{
    /// Builds Embedding -> LSTM (dropout, recurrent dropout) -> Dense from `seed`, trains 3 Adam steps on fixed
    /// data and returns the losses followed by every weight.
    std::vector<float> train_three_steps(std::uint64_t seed, xrnn::init_scheme scheme)
    {
        xrnn::random_engine rng(seed);
        xrnn::recurrent_options options;
        options.dropout = 0.2;
        options.recurrent_dropout = 0.2;
        options.init = scheme;
        xrnn::embedding<float, 20, 8> emb(rng, scheme);
        xrnn::lstm<float, 8, 16, 2> lstm(rng, options);
        xrnn::dense<float, 16, 1> head(rng, scheme);
        xrnn::adam<float> optimizer(0.01);

        xrnn::random_engine data_rng(12345);  // the same data for every seed
        xt::xtensor<int, 2> ids({10, 4});
        for (auto& id : ids)
        {
            id = static_cast<int>(data_rng.below(20));
        }
        xt::xtensor<float, 2> labels = {{1.0f}, {0.0f}, {1.0f}, {0.0f}};
        xt::xtensor<float, 2> dlogits;
        std::vector<float> trace;
        for (int step = 0; step < 3; ++step)
        {
            xrnn::zero_grad(emb, lstm, head);
            const auto& logits = head.forward(
                lstm.forward(emb.forward(ids, xrnn::mode::training), xrnn::mode::training), xrnn::mode::training);
            trace.push_back(xrnn::binary_cross_entropy_with_logits(logits, labels, &dlogits));
            emb.backward(lstm.backward(head.backward(dlogits)));
            optimizer.step(emb, lstm, head);
        }
        xrnn::for_each_parameter(
            [&](const auto&, auto& value, auto&) { trace.insert(trace.end(), value.begin(), value.end()); }, emb,
            lstm, head);
        return trace;
    }
}  // namespace

TEST_CASE("determinism: the same seed gives bit-identical losses and weights after training with dropout")
{
    for (auto scheme : {xrnn::init_scheme::keras, xrnn::init_scheme::pytorch})
    {
        const auto first = train_three_steps(7, scheme);
        const auto second = train_three_steps(7, scheme);
        REQUIRE(first.size() == second.size());
        CHECK(first == second);  // exact equality, not closeness
    }
}

TEST_CASE("determinism: another seed gives other initial weights, masks and losses")
{
    const auto first = train_three_steps(7, xrnn::init_scheme::keras);
    const auto other = train_three_steps(8, xrnn::init_scheme::keras);
    REQUIRE(first.size() == other.size());
    CHECK(first[0] != other[0]);
    std::size_t differing = 0;
    for (std::size_t j = 0; j < first.size(); ++j)
    {
        differing += first[j] != other[j];
    }
    CHECK(differing > first.size() / 2);
}

TEST_CASE("determinism: a layer copy continues the same dropout mask stream as the original")
{
    xrnn::random_engine rng(3);
    xrnn::recurrent_options options;
    options.dropout = 0.5;
    xrnn::rnn<double, 4, 3> a(rng, options);
    auto b = a;
    xt::xtensor<double, 3> x({5, 6, 4}, 1.0);
    for (int call = 0; call < 3; ++call)
    {
        const xt::xtensor<double, 2> ya = a.forward(x, xrnn::mode::training);
        CHECK(ya == b.forward(x, xrnn::mode::training));
    }
}
