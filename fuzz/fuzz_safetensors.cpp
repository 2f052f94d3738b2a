// libFuzzer target: the safetensors reader (include/xrnn/io/safetensors.hpp) on arbitrary bytes, in memory.
//
// Every input is parsed; when the format's checks pass, every tensor of a readable dtype is converted (its size is
// bounded by the input's), and the input is loaded into the model of fuzz_model.hpp with PyTorch's and Keras's names.
// The only acceptable outcomes are success and xrnn::io_error; anything else (another exception, a crash, a leak,
// undefined behaviour, an allocation over -malloc_limit_mb) is a finding. A refused load must leave the model exactly
// as it was (all or nothing), and a parsed file's tensors must lie inside its data buffer.
//
// Built and run by tools/fuzz.sh; the seed corpus (fuzz/corpus/fuzz_safetensors) is made by fuzz/make_corpus.cpp.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <xrnn/io/safetensors.hpp>

#include "fuzz_model.hpp"

namespace
{
    using model_type = xrnn_fuzz::model;

    const model_type& pristine()
    {
        static const model_type m = xrnn_fuzz::make_model(1);
        return m;
    }

    std::vector<float> weights_of(model_type& m)
    {
        std::vector<float> all;
        m.for_each_parameter(
            [&](const auto&, auto& value, auto&) { all.insert(all.end(), value.begin(), value.end()); });
        return all;
    }

    [[noreturn]] void finding(const char* what, const char* detail)
    {
        std::fprintf(stderr, "fuzz_safetensors: %s: %s\n", what, detail);
        std::abort();
    }

    void parse(const std::string& bytes)
    {
        xrnn::io::safetensors_view view;
        try
        {
            view = xrnn::io::parse_safetensors(bytes, "fuzz input");
        }
        catch (const xrnn::io_error&)
        {
            return;
        }
        for (const auto& t : view.tensors)
        {
            if (t.begin > t.end || t.end > view.data_size || view.data + view.data_size != bytes.data() + bytes.size())
            {
                finding("a parsed tensor lies outside the data buffer", t.name.c_str());
            }
            if (xrnn::io::safetensors_dtype_readable(t.dtype))
            {
                try
                {
                    (void)xrnn::io::safetensors_values<float>(view, t);
                    (void)xrnn::io::safetensors_values<double>(view, t);
                }
                catch (const xrnn::io_error&)
                {
                }
            }
        }
    }

    void load(const std::string& bytes, xrnn::weight_convention c)
    {
        model_type m = pristine();
        const std::vector<float> before = weights_of(m);
        try
        {
            xrnn::load_safetensors_from_bytes(bytes, m, c, {}, "fuzz input");
        }
        catch (const xrnn::io_error&)
        {
            const auto now = weights_of(m);  // compared bit for bit (NaN is not equal to itself)
            if (now.size() != before.size() || std::memcmp(now.data(), before.data(), now.size() * sizeof(float)) != 0)
            {
                finding("a refused file changed the model", "");
            }
            return;
        }
        const xt::xtensor<int, 2> ids = {{0, 1, 2}, {3, 4, 5}};
        (void)m.forward(ids, xrnn::mode::inference);
    }
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string bytes(reinterpret_cast<const char*>(data), size);
    try
    {
        parse(bytes);
        load(bytes, xrnn::weight_convention::torch);
        load(bytes, xrnn::weight_convention::keras);
    }
    catch (const std::exception& e)  // not an io_error: the reader may throw nothing else
    {
        finding("unexpected exception", e.what());
    }
    return 0;
}
