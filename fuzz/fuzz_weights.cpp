// libFuzzer target: the weight-file and checkpoint loaders (include/xrnn/io/) on arbitrary bytes, in memory.
//
// Every input is loaded as weights and as a checkpoint (the file's kind field lets at most one get past the header),
// once as it is and once with its last 8 bytes replaced by the right checksum, so that mutations also reach the
// tensors behind the checksum. The only acceptable outcomes are success and xrnn::io_error; anything else (another
// exception, a crash, a leak, undefined behaviour, an allocation over -malloc_limit_mb) is a finding. A refused
// input must also leave the model, its random engines and the optimizer exactly as they were (all or nothing).
//
// Built and run by tools/fuzz.sh; the seed corpus (fuzz/corpus/fuzz_weights) is made by fuzz/make_corpus.cpp.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_model.hpp"

namespace
{
    using model_type = xrnn_fuzz::model;

    struct fixture
    {
        model_type pristine = xrnn_fuzz::make_model(1);
        xrnn::adam<float> trained_optimizer;  // has state for the model's parameters, as after a step
        fixture()
        {
            trained_optimizer.step(pristine);
        }
    };

    const fixture& shared()
    {
        static const fixture f;
        return f;
    }

    std::vector<float> weights_of(model_type& m)
    {
        std::vector<float> all;
        m.for_each_parameter([&](const auto&, auto& value, auto&) { all.insert(all.end(), value.begin(), value.end()); });
        return all;
    }

    std::vector<xrnn::random_engine::state_type> engines_of(model_type& m)
    {
        std::vector<xrnn::random_engine::state_type> all;
        xrnn::for_each_random_engine(m, [&](const std::string&, xrnn::random_engine& e) { all.push_back(e.state()); });
        return all;
    }

    [[noreturn]] void finding(const char* what, const char* detail)
    {
        std::fprintf(stderr, "fuzz_weights: %s: %s\n", what, detail);
        std::abort();
    }

    bool same_bits(const std::vector<float>& a, const std::vector<float>& b)
    {
        return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
    }

    void load_weights(const std::string& bytes)
    {
        model_type m = shared().pristine;
        const std::vector<float> before = weights_of(m);
        try
        {
            xrnn::load_weights_from_bytes(bytes, m, "fuzz input");
        }
        catch (const xrnn::io_error&)
        {
            if (!same_bits(weights_of(m), before))
            {
                finding("a refused weight file changed the model", "");
            }
            return;
        }
        // Loaded: the weights may be anything a float can be; a forward pass must still be well defined.
        const xt::xtensor<int, 2> ids = {{0, 1, 2}, {3, 4, 5}};
        (void)m.forward(ids, xrnn::mode::inference);
    }

    void load_checkpoint(const std::string& bytes)
    {
        model_type m = shared().pristine;
        xrnn::adam<float> optimizer = shared().trained_optimizer;
        const std::vector<float> before = weights_of(m);
        const auto engines = engines_of(m);
        const auto state = optimizer.snapshot();
        try
        {
            const xrnn::training_progress<float> progress =
                xrnn::apply_checkpoint(xrnn::read_checkpoint_from_bytes(bytes, m, optimizer, "fuzz input"), m, optimizer);
            if (progress.history.size() != progress.epoch)
            {
                finding("a loaded checkpoint's history does not have one row per epoch", "");
            }
        }
        catch (const xrnn::io_error&)
        {
            const auto now = optimizer.snapshot();
            if (!same_bits(weights_of(m), before) || engines_of(m) != engines || now.slots != state.slots
                || now.steps != state.steps || now.hyper != state.hyper)
            {
                finding("a refused checkpoint changed the model or the optimizer", "");
            }
        }
    }

    void load_both(const std::string& bytes)
    {
        try
        {
            load_weights(bytes);
            load_checkpoint(bytes);
        }
        catch (const std::exception& e)  // not an io_error: the loaders may throw nothing else
        {
            finding("unexpected exception", e.what());
        }
    }
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    std::string bytes(reinterpret_cast<const char*>(data), size);
    load_both(bytes);
    if (bytes.size() >= 8)
    {
        const std::uint64_t checksum = xrnn::io::fnv1a64(bytes.data(), bytes.size() - 8);
        xrnn::io::binary_writer tail;
        tail.put(checksum);
        bytes.replace(bytes.size() - 8, 8, tail.bytes());
        load_both(bytes);
    }
    return 0;
}
