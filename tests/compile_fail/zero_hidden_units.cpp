// Must not compile: an LSTM needs at least one hidden unit.
#include <xrnn/xrnn.hpp>

int main()
{
    xrnn::random_engine rng(1);
    xrnn::lstm<float, 3, 0> layer(rng);
}
