// Must not compile: the LSTM reads 64 features but the embedding gives 128 (a dropout in between keeps sizes).
#include <xrnn/xrnn.hpp>

int main()
{
    xrnn::random_engine rng(1);
    xrnn::sequential<xrnn::embedding<float, 100, 128>, xrnn::dropout<float>, xrnn::lstm<float, 64, 32>,
                     xrnn::dense<float, 32, 1>>
        model(xrnn::embedding<float, 100, 128>(rng), xrnn::dropout<float>(0.2, rng), xrnn::lstm<float, 64, 32>(rng),
              xrnn::dense<float, 32, 1>(rng));
}
