// Must not compile: a recurrent layer needs num_layers >= 1.
#include <xrnn/xrnn.hpp>

int main()
{
    xrnn::random_engine rng(1);
    xrnn::rnn<float, 3, 4, 0> layer(rng);
}
