// The fast paths give the numbers of the general path: the batch-1 cell step (register-blocked matrix-vector
// product, nothing cached), the inference forward without caches (input projection in chunks, two rows of c),
// the batch-1 recurrent product inside a layer; backward consumes the gate cache; the floating-point mode is
// restored after a forward.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include <doctest/doctest.h>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <xrnn/layers/gru.hpp>
#include <xrnn/layers/lstm.hpp>
#include <xrnn/layers/rnn.hpp>
#include <xrnn/optim.hpp>

#include "support/gradcheck.hpp"

namespace
{
    template <class T>
    constexpr double tolerance = std::is_same<T, float>::value ? 2e-6 : 1e-13;

    /// max |a - b| / max(1, max |b|)
    template <class A, class B>
    double max_difference(const A& a, const B& b, std::size_t n)
    {
        double diff = 0.0;
        double scale = 1.0;
        for (std::size_t j = 0; j < n; ++j)
        {
            diff = std::max(diff, std::abs(static_cast<double>(a[j]) - static_cast<double>(b[j])));
            scale = std::max(scale, std::abs(static_cast<double>(b[j])));
        }
        return diff / scale;
    }

    template <class T, std::size_t N>
    xt::xtensor<T, N> random_of(const std::array<std::size_t, N>& shape, std::uint64_t seed)
    {
        return xrnn_test::random_tensor<T, N>(shape, seed);
    }

    /// Streams 6 batch-1 steps through the fast path (the returned state fed back in, aliasing the cell's own
    /// buffer) and the same steps as row 0 of a batch of 2 through the general path (BLAS, caches).
    template <class Cell>
    void check_cell_step_batch1()
    {
        using T = typename Cell::value_type;
        constexpr std::size_t I = Cell::input_size;
        constexpr std::size_t H = Cell::hidden_size;
        xrnn::random_engine rng(11);
        Cell fast(rng);
        Cell general = fast;
        typename Cell::state_type start;
        typename Cell::state_type start2;
        start.h = random_of<T, 2>({1, H}, 1);
        start2.h = xt::xtensor<T, 2>({2, H});
        std::copy(start.h.begin(), start.h.end(), start2.h.begin());
        std::copy(start.h.begin(), start.h.end(), start2.h.begin() + H);
        if constexpr (Cell::has_cell_state)
        {
            start.c = random_of<T, 2>({1, H}, 2);
            start2.c = xt::xtensor<T, 2>({2, H});
            std::copy(start.c.begin(), start.c.end(), start2.c.begin());
            std::copy(start.c.begin(), start.c.end(), start2.c.begin() + H);
        }
        const typename Cell::state_type* state = &start;
        typename Cell::state_type state2 = start2;
        for (std::size_t t = 0; t < 6; ++t)
        {
            const auto x = random_of<T, 2>({1, I}, 10 + t);
            xt::xtensor<T, 2> x2({2, I});
            std::copy(x.begin(), x.end(), x2.begin());
            std::copy(x.begin(), x.end(), x2.begin() + I);
            state = &fast.forward(x, *state);
            state2 = general.forward(x2, state2);
            INFO("step ", t);
            CHECK(max_difference(state->h.data(), state2.h.data(), H) < tolerance<T>);
            if constexpr (Cell::has_cell_state)
            {
                CHECK(max_difference(state->c.data(), state2.c.data(), H) < tolerance<T>);
            }
        }
        // after an inference step there is nothing to backpropagate
        typename Cell::state_type d = start;
        CHECK_THROWS_AS(fast.backward(d), xrnn::state_error);
    }

    /// Inference forward (chunked input projection, no caches) against a training forward of the same layer, on
    /// enough steps for several chunks; the final states too.
    template <class Layer>
    void check_inference_equals_training(std::size_t steps, std::size_t batch)
    {
        using T = typename Layer::value_type;
        xrnn::random_engine rng(5);
        Layer inference(rng);
        Layer training = inference;
        const auto x = random_of<T, 3>({steps, batch, Layer::input_size}, 3);
        const auto y_inf = inference.forward(x);
        const auto y_train = training.forward(x, xrnn::mode::training);
        REQUIRE(y_inf.size() == y_train.size());
        CHECK(max_difference(y_inf.data(), y_train.data(), y_inf.size()) < tolerance<T>);
        const auto& s_inf = inference.final_state();
        const auto& s_train = training.final_state();
        CHECK(max_difference(s_inf.h.data(), s_train.h.data(), s_inf.h.size()) < tolerance<T>);
        if constexpr (Layer::has_cell_state)
        {
            CHECK(max_difference(s_inf.c.data(), s_train.c.data(), s_inf.c.size()) < tolerance<T>);
        }
        // a training forward after inference ones still backpropagates (the buffers grow back)
        inference.forward(x, xrnn::mode::training);
        CHECK_NOTHROW(inference.backward(y_train));
    }

    /// A layer on batch 1 (register-blocked recurrent product) against the same sequence twice in a batch of 2
    /// (BLAS): the outputs equal row 0, and the weight gradients are half those of the doubled batch.
    template <class Layer>
    void check_batch1_layer()
    {
        using T = typename Layer::value_type;
        constexpr std::size_t S = 7;
        constexpr std::size_t I = Layer::input_size;
        constexpr std::size_t H = Layer::hidden_size;
        xrnn::random_engine rng(9);
        Layer one(rng);
        Layer two = one;
        const auto x1 = random_of<T, 3>({S, 1, I}, 4);
        xt::xtensor<T, 3> x2({S, 2, I});
        for (std::size_t t = 0; t < S; ++t)
        {
            for (std::size_t b = 0; b < 2; ++b)
            {
                std::copy(x1.data() + t * I, x1.data() + (t + 1) * I, x2.data() + (t * 2 + b) * I);
            }
        }
        for (auto m : {xrnn::mode::inference, xrnn::mode::training})
        {
            const xt::xtensor<T, 3> y1 = one.forward(x1, m);
            const xt::xtensor<T, 3> y2 = two.forward(x2, m);
            for (std::size_t t = 0; t < S; ++t)
            {
                CHECK(max_difference(y1.data() + t * H, y2.data() + t * 2 * H, H) < tolerance<T>);
                CHECK(max_difference(y1.data() + t * H, y2.data() + (t * 2 + 1) * H, H) < tolerance<T>);
            }
        }
        const auto dy1 = random_of<T, 3>({S, 1, H}, 6);
        xt::xtensor<T, 3> dy2({S, 2, H});
        for (std::size_t t = 0; t < S; ++t)
        {
            for (std::size_t b = 0; b < 2; ++b)
            {
                std::copy(dy1.data() + t * H, dy1.data() + (t + 1) * H, dy2.data() + (t * 2 + b) * H);
            }
        }
        xrnn::zero_grad(one, two);
        const xt::xtensor<T, 3> dx1 = one.backward(dy1);
        const xt::xtensor<T, 3> dx2 = two.backward(dy2);
        for (std::size_t t = 0; t < S; ++t)
        {
            CHECK(max_difference(dx1.data() + t * I, dx2.data() + t * 2 * I, I) < tolerance<T>);
        }
        std::vector<xt::xtensor<T, 1>> g1;
        one.for_each_parameter([&](const auto&, auto&, auto& grad) {
            g1.emplace_back(xt::xtensor<T, 1>::from_shape({grad.size()}));
            std::copy(grad.begin(), grad.end(), g1.back().begin());
        });
        std::size_t k = 0;
        two.for_each_parameter([&](const auto& name, auto&, auto& grad) {
            INFO("parameter ", name);
            xt::xtensor<T, 1> half = xt::xtensor<T, 1>::from_shape({grad.size()});
            std::transform(grad.begin(), grad.end(), half.begin(), [](T v) { return v / T(2); });
            CHECK(max_difference(g1[k].data(), half.data(), half.size()) < tolerance<T>);
            ++k;
        });
    }
}  // namespace

TEST_CASE("fast paths: the batch-1 inference cell step equals the general step (lstm, rnn, gru; float, double)")
{
    check_cell_step_batch1<xrnn::lstm_cell<double, 5, 7>>();        // widths that leave a scalar tail
    check_cell_step_batch1<xrnn::lstm_cell<double, 16, 32>>();
    check_cell_step_batch1<xrnn::lstm_cell<float, 128, 128>>();     // the benchmark's shape
    check_cell_step_batch1<xrnn::lstm_cell<float, 3, 37>>();
    check_cell_step_batch1<xrnn::rnn_cell<double, 5, 7>>();
    check_cell_step_batch1<xrnn::rnn_cell<float, 128, 128>>();
    check_cell_step_batch1<xrnn::rnn_cell<double, 4, 19, xrnn::nonlinearity::relu>>();
    check_cell_step_batch1<xrnn::gru_cell<double, 5, 7>>();
    check_cell_step_batch1<xrnn::gru_cell<double, 16, 32>>();
    check_cell_step_batch1<xrnn::gru_cell<float, 128, 128>>();
    check_cell_step_batch1<xrnn::gru_cell<float, 3, 37>>();
}

TEST_CASE("fast paths: an inference forward (chunked, no caches) equals a training forward")
{
    // batch 2: 256 steps per chunk, so 300 steps take two chunks
    check_inference_equals_training<xrnn::lstm<double, 3, 5, 2, xrnn::output::sequence>>(300, 2);
    check_inference_equals_training<xrnn::lstm<float, 8, 16, 1, xrnn::output::last>>(70, 16);
    check_inference_equals_training<xrnn::rnn<double, 3, 5, 2, xrnn::output::sequence>>(300, 2);
    check_inference_equals_training<xrnn::rnn<float, 4, 6, 1, xrnn::output::sequence, xrnn::nonlinearity::relu>>(
        600, 1);
    check_inference_equals_training<xrnn::gru<double, 3, 5, 2, xrnn::output::sequence>>(300, 2);
    check_inference_equals_training<xrnn::gru<float, 8, 16, 1, xrnn::output::last>>(70, 16);
    check_inference_equals_training<xrnn::gru<float, 5, 19, 1, xrnn::output::sequence>>(600, 1);
}

TEST_CASE("fast paths: a layer on batch 1 equals the same sequence in a batch of 2, forward and backward")
{
    check_batch1_layer<xrnn::lstm<double, 4, 6, 1, xrnn::output::sequence>>();
    check_batch1_layer<xrnn::lstm<float, 16, 32, 2, xrnn::output::sequence>>();
    check_batch1_layer<xrnn::rnn<double, 4, 6, 2, xrnn::output::sequence>>();
    check_batch1_layer<xrnn::rnn<float, 5, 19, 1, xrnn::output::sequence, xrnn::nonlinearity::relu>>();
    check_batch1_layer<xrnn::gru<double, 4, 6, 2, xrnn::output::sequence>>();
    check_batch1_layer<xrnn::gru<float, 16, 32, 1, xrnn::output::sequence>>();
}

TEST_CASE("fast paths: backward consumes the gate cache, so a second backward needs a new training forward")
{
    xrnn::random_engine rng(1);
    xrnn::lstm<double, 3, 4> layer(rng);
    const auto x = random_of<double, 3>({5, 2, 3}, 1);
    const auto dy = random_of<double, 2>({2, 4}, 2);
    layer.forward(x, xrnn::mode::training);
    layer.backward(dy);
    CHECK_THROWS_WITH_AS(layer.backward(dy), "lstm_cell::backward: call forward(x, mode::training) before backward",
                         xrnn::state_error);
    layer.forward(x, xrnn::mode::training);
    CHECK_NOTHROW(layer.backward(dy));
}

TEST_CASE("fast paths: the floating-point mode (denormals) is the caller's again after forward and backward")
{
    xrnn::random_engine rng(1);
    xrnn::lstm<float, 3, 4> layer(rng);
    const auto x = random_of<float, 3>({5, 2, 3}, 1);
    const auto dy = random_of<float, 2>({2, 4}, 2);
    layer.forward(x, xrnn::mode::training);
    layer.backward(dy);
    volatile float tiny = std::numeric_limits<float>::min();  // smallest normal
    volatile float half = 0.5f;
    CHECK(tiny * half != 0.0f);  // a denormal result, not flushed to zero
}

TEST_CASE("fast paths: a stacked layer copied between forward and backward backpropagates on its own buffers")
{
    // the upper layer keeps no copy of its input (the hidden sequence of the layer below): backward must read the
    // copy's own buffers, not the original's
    xrnn::random_engine rng(2);
    using layer_type = xrnn::lstm<double, 3, 4, 2, xrnn::output::sequence>;
    layer_type original(rng);
    layer_type reference = original;
    const auto x = random_of<double, 3>({6, 2, 3}, 1);
    const auto other = random_of<double, 3>({6, 2, 3}, 3);
    const auto dy = random_of<double, 3>({6, 2, 4}, 2);
    original.forward(x, xrnn::mode::training);
    layer_type copy = original;
    original.forward(other, xrnn::mode::training);  // overwrites the original's caches
    reference.forward(x, xrnn::mode::training);
    xrnn::zero_grad(copy, reference);
    const xt::xtensor<double, 3> dx_copy = copy.backward(dy);
    const xt::xtensor<double, 3> dx_reference = reference.backward(dy);
    CHECK(dx_copy == dx_reference);
    std::vector<xt::xtensor<double, 2>> grads;
    copy.for_each_parameter([&](const auto&, auto&, auto& grad) {
        grads.emplace_back(xt::xtensor<double, 2>::from_shape({1, grad.size()}));
        std::copy(grad.begin(), grad.end(), grads.back().begin());
    });
    std::size_t k = 0;
    reference.for_each_parameter([&](const auto& name, auto&, auto& grad) {
        INFO("parameter ", name);
        CHECK(std::equal(grad.begin(), grad.end(), grads[k++].begin()));
    });
}

TEST_CASE("fast paths: the recurrent weights start on 64-byte cache lines, also after a copy and a load")
{
    // With malloc's 16-byte alignment every 64-byte load of a register tile straddles two cache lines (the batch-1
    // LSTM step took 6.1 instead of 3.8 us); xt::xtensor's default allocator aligns only where
    // XTENSOR_USE_XSIMD is defined, which a user's build need not do.
    const auto aligned = [](const auto& tensor) {
        return reinterpret_cast<std::uintptr_t>(tensor.data()) % 64 == 0;
    };
    xrnn::random_engine rng(5);
    xrnn::lstm_cell<float, 128, 128> cell(rng);
    CHECK(aligned(cell.p.w_x));
    CHECK(aligned(cell.p.w_h));
    CHECK(aligned(cell.dp.w_x));
    const xrnn::lstm_cell<float, 128, 128> copy = cell;
    CHECK(aligned(copy.p.w_x));
    CHECK(copy.p.w_x == cell.p.w_x);
    // assigned from a plain xt::xtensor (as a weight loader does): the storage keeps its allocator
    const xt::xtensor<float, 2> plain = random_of<float, 2>({3, 12}, 11);
    xrnn::gru_cell<double, 3, 4> gru(rng);
    gru.p.w_x = xt::cast<double>(plain);
    CHECK(aligned(gru.p.w_x));
    CHECK(gru.p.w_x(2, 11) == static_cast<double>(plain(2, 11)));
    xrnn::lstm<float, 8, 16, 2> layer(rng);
    CHECK(aligned(layer.layer<1>().p.w_h));
}

namespace
{
    /// gemm_row_runs on four runs together against the same runs one call each, against a double reference and
    /// against W packed by column tiles: the same bits in the three runs (each element summed in the same order,
    /// however the rows are grouped), with runs of any length (remainder tiles), k split into several L1 blocks,
    /// a scalar tail of columns and W a column range of a wider matrix.
    template <class T, std::size_t N, std::size_t LDW>
    void check_row_runs(std::size_t k0, std::size_t k1)
    {
        constexpr std::size_t rows = 48;
        const auto a0 = random_of<T, 2>({rows, k0 + 3}, 21);  // rows k0 + 3 apart
        const auto a1 = random_of<T, 2>({rows, k1}, 22);
        const auto w0 = random_of<T, 2>({k0, LDW}, 23);
        const auto w1 = random_of<T, 2>({k1, LDW}, 24);
        const xrnn::detail::gemm_term<T> terms[2] = {{a0.data(), k0 + 3, w0.data(), k0}, {a1.data(), k1, w1.data(), k1}};
        const xrnn::detail::row_run runs[4] = {{0, 8}, {11, 3}, {16, 21}, {47, 1}};
        xt::xtensor<T, 2> together = xt::zeros<T>({rows, N + 2});  // rows N + 2 apart
        xt::xtensor<T, 2> alone = together;
        xt::xtensor<T, 2> packed = together;
        xrnn::detail::gemm_row_runs<T, N, LDW>(runs, 4, together.data(), N + 2, terms);
        // the same from W packed by column tiles
        std::vector<T> w0_packed(k0 * N + 1), w1_packed(k1 * N + 1);
        xrnn::detail::pack_column_tiles<T, N, LDW>(w0.data(), k0, w0_packed.data());
        xrnn::detail::pack_column_tiles<T, N>(k1, w1_packed.data(), [&](std::size_t i, std::size_t j) { return w1(i, j); });
        const xrnn::detail::gemm_term<T> packed_terms[2] = {{a0.data(), k0 + 3, w0_packed.data(), k0},
                                                            {a1.data(), k1, w1_packed.data(), k1}};
        xrnn::detail::gemm_row_runs<T, N, N, true>(runs, 4, packed.data(), N + 2, packed_terms);
        CHECK(std::equal(packed.begin(), packed.end(), together.begin()));
        for (const auto& run : runs)
        {
            xrnn::detail::gemm_row_runs<T, N, LDW>(&run, 1, alone.data(), N + 2, terms);
        }
        CHECK(std::equal(together.begin(), together.end(), alone.begin()));
        double worst = 0.0;  // relative to the sum of |a w|, the bound of a sum's rounding error over k terms
        for (const auto& run : runs)
        {
            for (std::size_t i = run.first; i < run.first + run.count; ++i)
            {
                for (std::size_t j = 0; j < N; ++j)
                {
                    double sum = 0.0;
                    double magnitude = 0.0;
                    for (std::size_t k = 0; k < k0; ++k)
                    {
                        sum += double(a0(i, k)) * double(w0(k, j));
                        magnitude += std::abs(double(a0(i, k)) * double(w0(k, j)));
                    }
                    for (std::size_t k = 0; k < k1; ++k)
                    {
                        sum += double(a1(i, k)) * double(w1(k, j));
                        magnitude += std::abs(double(a1(i, k)) * double(w1(k, j)));
                    }
                    worst = std::max(worst, std::abs(double(together(i, j)) - sum) / magnitude);
                }
            }
        }
        CHECK(worst < double(k0 + k1) * std::numeric_limits<T>::epsilon());
        CHECK(together(12, N - 1) != T(0));
        CHECK(together(10, 0) == T(0));  // between the runs: untouched
    }
}

namespace
{
    /// The first forward's 40 steps read the weights packed (40 >= packed_steps); the two pieces of 20, the second
    /// from the first's final states, read them as they are: the same sums in the same order.
    template <class Layer>
    void check_long_sequence_equals_pieces()
    {
        static_assert(40 >= Layer::first_cell_type::packed_steps && 20 < Layer::first_cell_type::packed_steps,
                      "one forward packs, the other does not");
        xrnn::random_engine rng(8);
        Layer whole(rng);
        Layer pieces = whole;
        const auto x = random_of<float, 3>({40, 19, Layer::input_size}, 9);
        const xt::xtensor<float, 3> y_whole = whole.forward(x);
        const xt::xtensor<float, 3> first = xt::view(x, xt::range(0, 20));
        const xt::xtensor<float, 3> second = xt::view(x, xt::range(20, 40));
        const xt::xtensor<float, 3> y_first = pieces.forward(first);
        const auto middle = pieces.final_state();
        const xt::xtensor<float, 3> y_second = pieces.forward(second, middle);
        CHECK(std::equal(y_first.begin(), y_first.end(), y_whole.begin()));
        CHECK(std::equal(y_second.begin(), y_second.end(), y_whole.begin() + y_first.size()));
    }
}  // namespace

TEST_CASE("fast paths: a long sequence (weights packed by column tiles) gives the bits of its pieces (not packed)")
{
    check_long_sequence_equals_pieces<xrnn::lstm<float, 24, 40, 2, xrnn::output::sequence>>();
    check_long_sequence_equals_pieces<xrnn::gru<float, 24, 40, 1, xrnn::output::sequence>>();
}

TEST_CASE("fast paths: products over several runs of rows give the bits of one run at a time")
{
    check_row_runs<float, 512, 512>(128, 128);  // the LSTM's (R3)
    check_row_runs<float, 37, 40>(300, 7);      // k in three blocks, a scalar tail
    check_row_runs<double, 100, 130>(200, 0);   // a term without rows
    check_row_runs<double, 5, 5>(1, 150);
}
