// No heap allocation in the time loops: once a layer's workspaces exist (one warm-up step), a training forward
// and backward of rnn and lstm, an inference forward, and a batch-1 streaming cell step allocate nothing. And the
// memory a training step keeps, workspace_bytes(), is the formula of recurrent_cell.hpp ("Memory").
//
// The hook: this executable replaces the global operator new/delete with counting versions, and on glibc also
// interposes malloc, calloc, realloc, posix_memalign, aligned_alloc and memalign (forwarding to glibc's own
// __libc_* functions), because with XTENSOR_USE_XSIMD xtensor's containers allocate through xsimd's aligned
// allocator, i.e. posix_memalign, not operator new. Counting is switched on only around the calls measured, and
// counts every thread. Allocations made by the BLAS library's own code (OpenBLAS mallocs a small job structure in
// some sgemm calls) are counted apart, by the caller's address: they are reported, and not the layers' doing.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#if defined(__GLIBC__)
#include <link.h>
#endif

#include <doctest/doctest.h>
#include <xtensor/xtensor.hpp>

#include <xrnn/layers/bidirectional.hpp>
#include <xrnn/layers/dense.hpp>
#include <xrnn/layers/embedding.hpp>
#include <xrnn/layers/gru.hpp>
#include <xrnn/layers/lstm.hpp>
#include <xrnn/layers/rnn.hpp>
#include <xrnn/loss.hpp>
#include <xrnn/optim.hpp>
#include <xrnn/threads.hpp>

#include "support/gradcheck.hpp"

namespace
{
    std::atomic<bool> g_counting{false};
    std::atomic<std::size_t> g_allocations{0};
    std::atomic<std::size_t> g_blas_allocations{0};

    // address ranges of the loaded BLAS library's segments (found once, before any counting)
    struct address_range
    {
        std::uintptr_t begin;
        std::uintptr_t end;
    };
    address_range g_blas_ranges[16];
    std::atomic<std::size_t> g_blas_range_count{0};

    bool in_blas(const void* address) noexcept
    {
        const auto a = reinterpret_cast<std::uintptr_t>(address);
        const std::size_t n = g_blas_range_count.load(std::memory_order_relaxed);
        for (std::size_t j = 0; j < n; ++j)
        {
            if (a >= g_blas_ranges[j].begin && a < g_blas_ranges[j].end)
            {
                return true;
            }
        }
        return false;
    }

    /// caller: the return address of the allocation function (who called malloc), or nullptr for operator new.
    void note_allocation(const void* caller) noexcept
    {
        if (g_counting.load(std::memory_order_relaxed))
        {
            if (caller != nullptr && in_blas(caller))
            {
                g_blas_allocations.fetch_add(1, std::memory_order_relaxed);
            }
            else
            {
                g_allocations.fetch_add(1, std::memory_order_relaxed);
            }
        }
    }

#if defined(__GLIBC__)
    int find_blas(dl_phdr_info* info, std::size_t, void*)
    {
        if (info->dlpi_name == nullptr || std::strstr(info->dlpi_name, "blas") == nullptr)
        {
            return 0;
        }
        for (int j = 0; j < info->dlpi_phnum; ++j)
        {
            const auto& ph = info->dlpi_phdr[j];
            const std::size_t n = g_blas_range_count.load();
            if (ph.p_type == PT_LOAD && n < 16)
            {
                g_blas_ranges[n] = {info->dlpi_addr + ph.p_vaddr, info->dlpi_addr + ph.p_vaddr + ph.p_memsz};
                g_blas_range_count.store(n + 1);
            }
        }
        return 0;
    }

    const bool g_blas_found = [] {
        dl_iterate_phdr(find_blas, nullptr);
        return g_blas_range_count.load() > 0;
    }();
#else
    const bool g_blas_found = false;
#endif

    void* counted_new(std::size_t n)
    {
        note_allocation(nullptr);
        if (void* p = std::malloc(n == 0 ? 1 : n))
        {
            return p;
        }
        throw std::bad_alloc();
    }

    void* counted_new_aligned(std::size_t n, std::align_val_t align)
    {
        note_allocation(nullptr);
        void* p = nullptr;
        const std::size_t a = std::max(static_cast<std::size_t>(align), sizeof(void*));
        if (posix_memalign(&p, a, n == 0 ? 1 : n) != 0)
        {
            throw std::bad_alloc();
        }
        return p;
    }

    std::size_t g_blas_total = 0;  // BLAS-internal allocations seen in all counted calls

    /// Allocations made by f() (all threads), not counting those made by the BLAS library's own code.
    template <class F>
    std::size_t allocations_in(F&& f)
    {
        g_allocations.store(0);
        g_blas_allocations.store(0);
        g_counting.store(true);
        f();
        g_counting.store(false);
        g_blas_total += g_blas_allocations.load();
        return g_allocations.load();
    }
}  // namespace

// ---- the global operator new/delete, counting -------------------------------------------------------------------
void* operator new(std::size_t n)
{
    return counted_new(n);
}
void* operator new[](std::size_t n)
{
    return counted_new(n);
}
void* operator new(std::size_t n, std::align_val_t a)
{
    return counted_new_aligned(n, a);
}
void* operator new[](std::size_t n, std::align_val_t a)
{
    return counted_new_aligned(n, a);
}
void operator delete(void* p) noexcept
{
    std::free(p);
}
void operator delete[](void* p) noexcept
{
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept
{
    std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept
{
    std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept
{
    std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept
{
    std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept
{
    std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept
{
    std::free(p);
}

// ---- glibc: the malloc family, counting (free is glibc's own) ----------------------------------------------------
#if defined(__GLIBC__)
#define XRNN_TEST_COUNTS_MALLOC 1
extern "C"
{
    void* __libc_malloc(std::size_t);
    void* __libc_calloc(std::size_t, std::size_t);
    void* __libc_realloc(void*, std::size_t);
    void* __libc_memalign(std::size_t, std::size_t);

    void* malloc(std::size_t n)
    {
        note_allocation(__builtin_return_address(0));
        return __libc_malloc(n);
    }
    void* calloc(std::size_t count, std::size_t n)
    {
        note_allocation(__builtin_return_address(0));
        return __libc_calloc(count, n);
    }
    void* realloc(void* p, std::size_t n)
    {
        note_allocation(__builtin_return_address(0));
        return __libc_realloc(p, n);
    }
    void* memalign(std::size_t align, std::size_t n)
    {
        note_allocation(__builtin_return_address(0));
        return __libc_memalign(align, n);
    }
    void* aligned_alloc(std::size_t align, std::size_t n)
    {
        note_allocation(__builtin_return_address(0));
        return __libc_memalign(align, n);
    }
    int posix_memalign(void** p, std::size_t align, std::size_t n)
    {
        note_allocation(__builtin_return_address(0));
        if (align % sizeof(void*) != 0 || (align & (align - 1)) != 0)
        {
            return EINVAL;
        }
        *p = __libc_memalign(align, n);
        return *p != nullptr ? 0 : ENOMEM;
    }
}
#else
#define XRNN_TEST_COUNTS_MALLOC 0
#endif

namespace
{
    constexpr std::size_t V = 50;
    constexpr std::size_t D = 16;
    constexpr std::size_t H = 32;

    /// Embedding -> Recurrent -> Dense(1), BCE, Adam: warms up with one training step, then counts the
    /// allocations of the recurrent layer's training forward and backward, and of an inference forward.
    template <class Recurrent>
    void check_recurrent_allocates_nothing(const xrnn::recurrent_options& options, std::size_t steps,
                                           std::size_t batch, bool with_lengths = false)
    {
        xrnn::random_engine rng(3);
        xrnn::embedding<float, V, D> embed(rng);
        Recurrent recurrent(rng, options);
        xrnn::dense<float, Recurrent::output_size, 1> head(rng);
        std::vector<std::size_t> lengths(batch);
        for (std::size_t b = 0; b < batch; ++b)
        {
            lengths[b] = 1 + (b * 13) % steps;  // variable lengths (masking), given once for every forward
        }
        if (with_lengths)
        {
            recurrent.set_lengths(lengths.data(), lengths.size());
        }
        xrnn::adam<float> adam(1e-3);
        xt::xtensor<int, 2> ids({steps, batch});
        for (auto& id : ids)
        {
            id = static_cast<int>(rng.below(V));
        }
        xt::xtensor<float, 2> labels({batch, 1});
        for (auto& y : labels)
        {
            y = static_cast<float>(rng.below(2));
        }
        xt::xtensor<float, 2> dlogits;

        auto step = [&] {
            xrnn::zero_grad(embed, recurrent, head);
            const auto& logits = head.forward(
                recurrent.forward(embed.forward(ids, xrnn::mode::training), xrnn::mode::training),
                xrnn::mode::training);
            xrnn::binary_cross_entropy_with_logits(logits, labels, &dlogits);
            embed.backward(recurrent.backward(head.backward(dlogits)));
            adam.step(embed, recurrent, head);
        };
        step();  // warm-up: the workspaces are made here
        recurrent.forward(embed.forward(ids));  // and the inference ones

        for (int repeat = 0; repeat < 2; ++repeat)
        {
            const xt::xtensor<float, 3>* x = nullptr;
            const typename Recurrent::output_type* y = nullptr;
            const xt::xtensor<float, 2>* logits = nullptr;
            const xt::xtensor<float, 2>* dy = nullptr;
            const xt::xtensor<float, 3>* dx = nullptr;
            CHECK(allocations_in([&] { x = &embed.forward(ids, xrnn::mode::training); }) == 0);
            CHECK(allocations_in([&] { y = &recurrent.forward(*x, xrnn::mode::training); }) == 0);
            CHECK(allocations_in([&] { logits = &head.forward(*y, xrnn::mode::training); }) == 0);
            xrnn::binary_cross_entropy_with_logits(*logits, labels, &dlogits);
            CHECK(allocations_in([&] { dy = &head.backward(dlogits); }) == 0);
            CHECK(allocations_in([&] { dx = &recurrent.backward(*dy); }) == 0);
            CHECK(allocations_in([&] { embed.backward(*dx); }) == 0);
            CHECK(allocations_in([&] { recurrent.forward(*x); }) == 0);
        }
    }

    /// Streaming: 100 batch-1 inference steps of a cell, the state fed back in, after one warm-up step.
    template <class Cell>
    void check_cell_step_allocates_nothing()
    {
        xrnn::random_engine rng(4);
        Cell cell(rng);
        const auto x = xrnn_test::random_tensor<float, 2>({1, Cell::input_size}, 1);
        typename Cell::state_type start;
        start.h = xrnn_test::random_tensor<float, 2>({1, Cell::hidden_size}, 2);
        if constexpr (Cell::has_cell_state)
        {
            start.c = xrnn_test::random_tensor<float, 2>({1, Cell::hidden_size}, 3);
        }
        const typename Cell::state_type* state = &cell.forward(x, start);
        CHECK(allocations_in([&] {
                  for (int t = 0; t < 100; ++t)
                  {
                      state = &cell.forward(x, *state);
                  }
              }) == 0);
    }
}  // namespace

TEST_CASE("allocations: the hook counts (a vector, an xtensor)")
{
    MESSAGE("BLAS library found for the separate count: ", std::string(g_blas_found ? "yes" : "no"));
    CHECK(allocations_in([] { std::vector<int> v(10); }) >= 1);
    CHECK(allocations_in([] { xt::xtensor<float, 1> t({10}); }) >= 1);
    CHECK(allocations_in([] {}) == 0);
}

TEST_CASE("allocations: none in a training forward and backward of rnn, lstm and gru once the workspaces exist")
{
    xrnn::recurrent_options plain;
    xrnn::recurrent_options dropout;
    dropout.dropout = 0.2;
    dropout.recurrent_dropout = 0.3;
    xrnn::recurrent_options truncated;
    truncated.bptt_steps = 7;
    check_recurrent_allocates_nothing<xrnn::lstm<float, D, H>>(plain, 40, 8);
    check_recurrent_allocates_nothing<xrnn::rnn<float, D, H>>(plain, 40, 8);
    check_recurrent_allocates_nothing<xrnn::lstm<float, D, H, 2>>(dropout, 30, 4);
    check_recurrent_allocates_nothing<xrnn::rnn<float, D, H, 2, xrnn::output::last, xrnn::nonlinearity::relu>>(
        dropout, 30, 4);
    check_recurrent_allocates_nothing<xrnn::lstm<float, D, H>>(truncated, 30, 4);
    check_recurrent_allocates_nothing<xrnn::lstm<float, D, H>>(plain, 12, 1);  // batch 1
    check_recurrent_allocates_nothing<xrnn::gru<float, D, H>>(plain, 40, 8);
    check_recurrent_allocates_nothing<xrnn::gru<float, D, H, 2>>(dropout, 30, 4);
    check_recurrent_allocates_nothing<xrnn::gru<float, D, H>>(truncated, 30, 4);
    check_recurrent_allocates_nothing<xrnn::gru<float, D, H>>(plain, 12, 1);
    // variable lengths (both paths of the steps: alive runs and dead rows) and bidirectional layers
    check_recurrent_allocates_nothing<xrnn::lstm<float, D, H, 2>>(dropout, 30, 11, true);
    check_recurrent_allocates_nothing<xrnn::gru<float, D, H>>(truncated, 30, 11, true);
    check_recurrent_allocates_nothing<xrnn::bilstm<float, D, H, 2>>(dropout, 30, 11, true);
    check_recurrent_allocates_nothing<xrnn::bigru<float, D, H>>(plain, 30, 4);
    MESSAGE("allocations made inside the BLAS library during the counted calls (not counted above): ",
            g_blas_total);
}

TEST_CASE("allocations: none in the thread pool's passes (2 threads, batches that split)")
{
    // 200 steps: 200 * 48 * 128 (lstm) and 200 * 48 * 32 (rnn) multiply-adds per row, so batch 40 splits into
    // 2 parts (recurrent_forward.hpp, part_count); the warm-up step starts the pool's worker
    xrnn::set_num_threads(2);
    xrnn::recurrent_options dropout;
    dropout.dropout = 0.2;
    dropout.recurrent_dropout = 0.3;
    check_recurrent_allocates_nothing<xrnn::lstm<float, D, H>>(xrnn::recurrent_options{}, 200, 40);
    check_recurrent_allocates_nothing<xrnn::rnn<float, D, H>>(dropout, 200, 40);
    check_recurrent_allocates_nothing<xrnn::gru<float, D, H>>(dropout, 200, 40);
    check_recurrent_allocates_nothing<xrnn::lstm<float, D, H>>(dropout, 200, 40, true);
    check_recurrent_allocates_nothing<xrnn::bilstm<float, D, H>>(dropout, 200, 40, true);  // both directions at once
    xrnn::set_num_threads(0);
}

TEST_CASE("allocations: none in a streaming batch-1 cell step")
{
    check_cell_step_allocates_nothing<xrnn::lstm_cell<float, 128, 128>>();
    check_cell_step_allocates_nothing<xrnn::rnn_cell<float, 128, 128>>();
    check_cell_step_allocates_nothing<xrnn::lstm_cell<float, 5, 7>>();
    check_cell_step_allocates_nothing<xrnn::gru_cell<float, 128, 128>>();
    check_cell_step_allocates_nothing<xrnn::gru_cell<float, 5, 7>>();
}

TEST_CASE("memory: a training step keeps what recurrent_cell.hpp states (the IMDB LSTM shapes)")
{
    // Embedding(10000, 128) -> LSTM(128, 128) -> Dense(1) on S = 200 steps, batch B = 64, float.
    constexpr std::size_t S = 200;
    constexpr std::size_t B = 64;
    constexpr std::size_t I = 128;
    constexpr std::size_t Hd = 128;
    constexpr std::size_t G = 4 * Hd;
    constexpr std::size_t e = sizeof(float);
    xrnn::random_engine rng(1);
    xrnn::lstm<float, I, Hd> lstm(rng);
    const auto x = xrnn_test::random_tensor<float, 3>({S, B, I}, 1);
    const auto dy = xrnn_test::random_tensor<float, 2>({B, Hd}, 2);
    std::size_t before = 0;
    CHECK(allocations_in([&] { before = lstm.workspace_bytes(); }) == 0);
    CHECK(before == 0);
    lstm.forward(x, xrnn::mode::training);
    lstm.backward(dy);

    // per layer: gates/dz, h_0..h_S, c_0..c_S, the input copy (first layer), dx; then the (B, H) running
    // gradients dh, dc, the register-blocked backward's W_h^T (G, H), (Q7)'s W_x^T (G, I) (the buffers where
    // the forward packs W_h, W_x: 200 steps >= packed_steps), bias sums per tile of rows and the packed chunks of
    // (Q4) and (Q5) (one product over the G columns); the stack: its output (B, H), final h and c (1, B, H),
    // initial-state gradients (1, B, H)
    static_assert(S >= xrnn::lstm_cell<float, I, Hd>::packed_steps, "the forward packs its weights");
    const std::size_t grows = (S * B * G + 2 * (S + 1) * B * Hd + S * B * I + S * B * I) * e;
    constexpr std::size_t tile = xrnn::detail::gemm_tile<float>::rows;
    const std::size_t fixed =
        (2 * B * Hd + G * Hd + G * I + (B + tile - 1) / tile * G + xrnn::detail::outer_scratch_values<float, G>(I + Hd))
            * e
        + (B * Hd + 4 * B * Hd) * e;
    CHECK(lstm.workspace_bytes() == grows + fixed);
    MESSAGE("IMDB LSTM training step (S = 200, B = 64, I = H = 128, float): the lstm layer holds ",
            lstm.workspace_bytes(), " bytes (", lstm.workspace_bytes() / 1048576.0, " MiB), of which ", grows,
            " grow with S x B");

    // a fresh layer that only runs inference keeps h (its output), one step's gates (a chunk of steps' on the
    // BLAS path), two rows of c and W_x, W_h packed for (R3)
    xrnn::random_engine rng2(1);
    xrnn::lstm<float, I, Hd> inference(rng2);
    inference.forward(x);
    using cell = xrnn::lstm_cell<float, I, Hd>;
    static_assert(cell::register_blocked_steps, "the IMDB LSTM's weights (512 KiB) take the register-blocked path");
    const std::size_t chunk_steps = 1;
    const std::size_t expected = ((S + 1) * B * Hd + chunk_steps * B * G + 2 * B * Hd) * e + (I * G + Hd * G) * e
                                 + (B * Hd + 4 * B * Hd) * e;
    CHECK(inference.workspace_bytes() == expected);
    MESSAGE("the same layer after an inference forward only: ", inference.workspace_bytes(), " bytes");
}

TEST_CASE("memory: a gru training step keeps what recurrent_cell.hpp states (z of 4H columns, the direct dh')")
{
    // Embedding(10000, 128) -> GRU(128, 128) on S = 200 steps, batch B = 64, float; W_x, W_h (128, 384), b (512).
    constexpr std::size_t S = 200;
    constexpr std::size_t B = 64;
    constexpr std::size_t I = 128;
    constexpr std::size_t Hd = 128;
    constexpr std::size_t Gh = 3 * Hd;
    constexpr std::size_t Gz = 4 * Hd;
    constexpr std::size_t e = sizeof(float);
    xrnn::random_engine rng(1);
    xrnn::gru<float, I, Hd> gru(rng);
    const auto x = xrnn_test::random_tensor<float, 3>({S, B, I}, 1);
    const auto dy = xrnn_test::random_tensor<float, 2>({B, Hd}, 2);
    gru.forward(x, xrnn::mode::training);
    gru.backward(dy);
    // per layer: gates/dz (Gz wide), h_0..h_S, the input copy, dx; then the running dh, the cell's direct dh',
    // W_h^T (Gh, H), W_x^T (Gx = Gh, I) (where the forward packs W_h, W_x), the bias sums per tile of rows (Gz
    // wide) and the packed chunks of (Q4), (Q5) (the largest of their three products: the 2H shared columns, the
    // input-only and the recurrent-only H); the stack: output (B, H), final h (1, B, H), initial-state gradient
    // (1, B, H)
    const std::size_t grows = (S * B * Gz + (S + 1) * B * Hd + S * B * I + S * B * I) * e;
    constexpr std::size_t tile = xrnn::detail::gemm_tile<float>::rows;
    const std::size_t packs = std::max({xrnn::detail::outer_scratch_values<float, 2 * Hd>(I + Hd),
                                        xrnn::detail::outer_scratch_values<float, Hd>(I),
                                        xrnn::detail::outer_scratch_values<float, Hd>(Hd)});
    const std::size_t fixed = (2 * B * Hd + Gh * Hd + Gh * I + (B + tile - 1) / tile * Gz + packs) * e + 3 * B * Hd * e;
    CHECK(gru.workspace_bytes() == grows + fixed);
    MESSAGE("IMDB GRU training step (S = 200, B = 64, I = H = 128, float): the gru layer holds ",
            gru.workspace_bytes(), " bytes (", gru.workspace_bytes() / 1048576.0, " MiB), of which ", grows,
            " grow with S x B");

    xrnn::random_engine rng2(1);
    xrnn::gru<float, I, Hd> inference(rng2);
    inference.forward(x);
    const std::size_t expected = ((S + 1) * B * Hd + B * Gz + I * Gh + Hd * Gh) * e + 3 * B * Hd * e;
    CHECK(inference.workspace_bytes() == expected);
}
