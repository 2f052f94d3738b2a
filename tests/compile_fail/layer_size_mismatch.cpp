// Must not compile: an embedding of width 100 cannot feed an lstm that reads 128 features.
#include <xrnn/xrnn.hpp>

int main()
{
    xrnn::assert_connectable<xrnn::embedding<float, 10000, 100>, xrnn::lstm<float, 128, 64>>();
}
