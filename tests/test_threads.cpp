// xrnn's threads (threads.hpp): every part of a pass runs once, errors reach the caller, nested and concurrent
// passes run on the calling thread; and what the layers compute does not depend on the number of threads, to the
// bit (each row of the batch is computed in the same order whichever thread takes it).
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <xtensor/xtensor.hpp>

#include <xrnn/layers/embedding.hpp>
#include <xrnn/layers/gru.hpp>
#include <xrnn/layers/lstm.hpp>
#include <xrnn/layers/rnn.hpp>
#include <xrnn/threads.hpp>

#include "support/gradcheck.hpp"

namespace
{
    /// Restores the default thread count when a test case ends, passed or not.
    struct default_threads_after
    {
        ~default_threads_after()
        {
            xrnn::set_num_threads(0);
        }
    };

    template <class A, class B>
    bool same_bits(const A& a, const B& b)
    {
        return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(*a.data())) == 0;
    }

    /// What a layer computes in one training step and one inference forward, for comparing runs.
    template <class T>
    struct layer_results
    {
        std::vector<xt::xtensor<T, 3>> tensors;
        std::vector<xt::xtensor<T, 2>> gradients;
    };

    /// A training forward and backward, then an inference forward, of a fresh layer (same seed every time) with
    /// num_threads() = threads.
    template <class Layer>
    layer_results<typename Layer::value_type> run_layer(std::size_t threads, const xrnn::recurrent_options& options,
                                                        std::size_t steps, std::size_t batch)
    {
        using T = typename Layer::value_type;
        xrnn::set_num_threads(threads);
        REQUIRE(xrnn::num_threads() == threads);
        xrnn::random_engine rng(21);
        Layer layer(rng, options);
        const auto x = xrnn_test::random_tensor<T, 3>({steps, batch, Layer::input_size}, 3);
        const auto dy = xrnn_test::random_tensor<T, 3>({steps, batch, Layer::hidden_size}, 4);
        layer_results<T> out;
        out.tensors.push_back(layer.forward(x, xrnn::mode::training));
        out.tensors.push_back(layer.final_state().h);
        out.tensors.push_back(layer.backward(dy));
        layer.for_each_parameter([&](const auto&, auto&, auto& grad) {
            out.gradients.emplace_back(xt::xtensor<T, 2>::from_shape({std::size_t(1), grad.size()}));
            std::copy(grad.begin(), grad.end(), out.gradients.back().begin());
        });
        out.tensors.push_back(layer.forward(x));
        if constexpr (Layer::has_cell_state)
        {
            out.tensors.push_back(layer.final_state().c);
        }
        return out;
    }

    /// Every result bit-identical with 1, 2 and 3 threads. The shapes split: a part takes at least 2^22
    /// multiply-adds over all steps (recurrent_forward.hpp, part_count), and a row here is S (I + H) G of them.
    template <class Layer>
    void check_thread_count_independent(const xrnn::recurrent_options& options, std::size_t steps, std::size_t batch)
    {
        default_threads_after restore;
        const auto one = run_layer<Layer>(1, options, steps, batch);
        for (std::size_t threads : {2, 3})
        {
            INFO("threads: ", threads);
            const auto many = run_layer<Layer>(threads, options, steps, batch);
            REQUIRE(many.tensors.size() == one.tensors.size());
            for (std::size_t k = 0; k < one.tensors.size(); ++k)
            {
                INFO("result ", k);
                CHECK(same_bits(many.tensors[k], one.tensors[k]));
            }
            REQUIRE(many.gradients.size() == one.gradients.size());
            for (std::size_t k = 0; k < one.gradients.size(); ++k)
            {
                INFO("gradient ", k);
                CHECK(same_bits(many.gradients[k], one.gradients[k]));
            }
        }
    }
}  // namespace

TEST_CASE("threads: every part of a pass runs exactly once, on any number of threads")
{
    default_threads_after restore;
    for (std::size_t threads : {1, 2, 3, 5})
    {
        xrnn::set_num_threads(threads);
        CHECK(xrnn::num_threads() == threads);
        for (std::size_t parts : {0, 1, 2, 7, 100})
        {
            INFO("threads ", threads, ", parts ", parts);
            std::vector<std::atomic<int>> runs(parts);
            xrnn::detail::parallel_for(parts, [&](std::size_t p) { runs[p].fetch_add(1); });
            CHECK(std::all_of(runs.begin(), runs.end(), [](const std::atomic<int>& r) { return r.load() == 1; }));
        }
    }
    xrnn::set_num_threads(0);
    CHECK(xrnn::num_threads() >= 1);
}

TEST_CASE("threads: an exception thrown in a part reaches the caller, and the pool works after it")
{
    default_threads_after restore;
    xrnn::set_num_threads(2);
    CHECK_THROWS_AS(xrnn::detail::parallel_for(4,
                                               [](std::size_t p) {
                                                   if (p == 3)
                                                   {
                                                       throw xrnn::value_error("part 3");
                                                   }
                                               }),
                    xrnn::value_error);
    std::atomic<std::size_t> sum{0};
    xrnn::detail::parallel_for(10, [&](std::size_t p) { sum.fetch_add(p); });
    CHECK(sum.load() == 45);
}

TEST_CASE("threads: a pass inside a pass, and passes from several threads at once, run on the calling thread")
{
    default_threads_after restore;
    xrnn::set_num_threads(2);
    std::atomic<std::size_t> inner{0};
    xrnn::detail::parallel_for(3, [&](std::size_t) {
        const auto caller = std::this_thread::get_id();
        xrnn::detail::parallel_for(4, [&](std::size_t) {
            CHECK(std::this_thread::get_id() == caller);
            inner.fetch_add(1);
        });
    });
    CHECK(inner.load() == 12);

    // four threads, each with its own layer: the same outputs as one after the other
    using layer = xrnn::rnn<float, 32, 32, 1, xrnn::output::sequence>;
    const auto x = xrnn_test::random_tensor<float, 3>({64, 24, 32}, 8);
    xrnn::random_engine rng(2);
    const layer prototype(rng);
    layer serial = prototype;
    const xt::xtensor<float, 3> expected = serial.forward(x);
    std::vector<layer> layers(4, prototype);
    std::vector<xt::xtensor<float, 3>> results(4);
    std::vector<std::thread> users;
    for (std::size_t u = 0; u < 4; ++u)
    {
        users.emplace_back([&, u] {
            for (int rep = 0; rep < 5; ++rep)
            {
                results[u] = layers[u].forward(x);
            }
        });
    }
    for (auto& user : users)
    {
        user.join();
    }
    for (const auto& result : results)
    {
        CHECK(same_bits(result, expected));
    }
}

TEST_CASE("threads: rnn, lstm and gru give the same bits on 1, 2 and 3 threads (forward, backward, inference)")
{
    xrnn::recurrent_options plain;
    xrnn::recurrent_options dropout;
    dropout.dropout = 0.2;
    dropout.recurrent_dropout = 0.3;
    // multiply-adds per row: 64 * 64 * 32 (rnn), 64 * 64 * 128 (lstm float), 50 * 64 * 160, 3000 * 12 * 7, so
    // parts of at least 32, 8, 9 and 17 rows: every batch below splits into 2 parts on 2 threads and 2-3 on 3
    check_thread_count_independent<xrnn::rnn<float, 32, 32, 1, xrnn::output::sequence>>(plain, 64, 70);
    check_thread_count_independent<xrnn::lstm<float, 32, 32, 2, xrnn::output::sequence>>(dropout, 64, 21);
    check_thread_count_independent<xrnn::lstm<double, 24, 40, 1, xrnn::output::sequence>>(plain, 50, 40);
    check_thread_count_independent<xrnn::rnn<double, 5, 7, 1, xrnn::output::sequence, xrnn::nonlinearity::relu>>(
        dropout, 3000, 40);
    // gru: 64 * (32 * 96 + 32 * 96) and 50 * (24 * 120 + 40 * 120) multiply-adds per row: parts of at least 11 and 11
    check_thread_count_independent<xrnn::gru<float, 32, 32, 2, xrnn::output::sequence>>(dropout, 64, 30);
    check_thread_count_independent<xrnn::gru<double, 24, 40, 1, xrnn::output::sequence>>(plain, 50, 40);
}

TEST_CASE("threads: the embedding gather gives the same output on 1 and 2 threads")
{
    default_threads_after restore;
    constexpr std::size_t S = 64;
    constexpr std::size_t B = 40;  // 64 * 40 * 128 values: above the 2^18 of a parallel gather
    xrnn::random_engine rng(4);
    xrnn::embedding<float, 1000, 128> embed(rng);
    xt::xtensor<int, 2> ids({S, B});
    for (std::size_t j = 0; j < ids.size(); ++j)
    {
        ids.data()[j] = static_cast<int>((j * 7919) % 1000);
    }
    xrnn::set_num_threads(1);
    const xt::xtensor<float, 3> serial = embed.forward(ids);
    xrnn::set_num_threads(2);
    const xt::xtensor<float, 3> parallel = embed.forward(ids);
    CHECK(same_bits(parallel, serial));
    for (std::size_t j = 0; j < ids.size(); j += 97)
    {
        const auto id = static_cast<std::size_t>(ids.data()[j]);
        CHECK(std::equal(parallel.data() + j * 128, parallel.data() + (j + 1) * 128, embed.p.w.data() + id * 128));
    }
}
