// Must not compile: layers compute in float or double (BLAS), not int.
#include <xrnn/xrnn.hpp>

int main()
{
    xrnn::random_engine rng(1);
    xrnn::dense<int, 3, 4> layer(rng);
}
