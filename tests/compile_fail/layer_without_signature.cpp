// Must not compile: a user's layer that has everything a sequential needs but its signature() (the weight files'
// check), so the model names the member to add instead of failing somewhere inside io/.
#include <cstddef>
#include <string>

#include <xrnn/xrnn.hpp>

struct scale_layer
{
    using value_type = float;
    static constexpr std::size_t input_size = 4;
    static constexpr std::size_t output_size = 4;
    static constexpr bool reads_sequence = false;
    static constexpr bool reads_token_ids = false;
    static const char* name() noexcept
    {
        return "scale";
    }
    template <class F>
    void for_each_random_engine(F&&)
    {
    }
    template <class F>
    void for_each_parameter(F&&)
    {
    }
};

int main()
{
    xrnn::random_engine rng(1);
    xrnn::sequential<xrnn::dense<float, 4, 4>, scale_layer> model(xrnn::dense<float, 4, 4>(rng), scale_layer{});
}
