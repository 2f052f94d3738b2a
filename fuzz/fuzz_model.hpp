// The model the weight-file fuzzer loads into, shared with make_corpus.cpp so that the seed corpus holds valid files
// of it: an embedding, an LSTM with input and recurrent dropout (two random engines), a dropout layer and a dense
// head, small enough that a file is about a kilobyte.
#ifndef XRNN_FUZZ_MODEL_HPP
#define XRNN_FUZZ_MODEL_HPP

#include <xrnn/model.hpp>

namespace xrnn_fuzz
{
    using model = xrnn::sequential<xrnn::embedding<float, 6, 4>, xrnn::lstm<float, 4, 5>, xrnn::dropout<float>,
                                   xrnn::dense<float, 5, 1>>;

    inline model make_model(std::uint64_t seed)
    {
        xrnn::random_engine rng(seed);
        xrnn::recurrent_options options;
        options.dropout = 0.2;
        options.recurrent_dropout = 0.2;
        return model(xrnn::embedding<float, 6, 4>(rng), xrnn::lstm<float, 4, 5>(rng, options),
                     xrnn::dropout<float>(0.3, rng), xrnn::dense<float, 5, 1>(rng));
    }
}  // namespace xrnn_fuzz

#endif
