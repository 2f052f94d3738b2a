// Must not compile: a float layer cannot feed a double layer.
#include <xrnn/xrnn.hpp>

int main()
{
    xrnn::assert_connectable<xrnn::lstm<float, 8, 16>, xrnn::dense<double, 16, 1>>();
}
