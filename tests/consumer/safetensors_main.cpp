// The opt-in single header single_include/xrnn/safetensors.hpp (beside xrnn.hpp) compiles and round-trips a model.
#include <xrnn/safetensors.hpp>

#include <cstdio>

int main()
{
    xrnn::random_engine rng(1);
    using model = xrnn::sequential<xrnn::embedding<float, 5, 3>, xrnn::gru<float, 3, 4>, xrnn::dense<float, 4, 1>>;
    model a(rng), b(rng);
    const std::string bytes = xrnn::save_safetensors_to_bytes(a, xrnn::weight_convention::keras);
    xrnn::load_safetensors_from_bytes(bytes, b, xrnn::weight_convention::keras);
    std::vector<float> wa, wb;
    a.for_each_parameter([&](const auto&, auto& v, auto&) { wa.insert(wa.end(), v.begin(), v.end()); });
    b.for_each_parameter([&](const auto&, auto& v, auto&) { wb.insert(wb.end(), v.begin(), v.end()); });
    std::printf("single-header safetensors: %zu bytes, round trip %s\n", bytes.size(), wa == wb ? "ok" : "FAILED");
    return wa == wb ? 0 : 1;
}
