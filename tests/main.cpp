// The doctest main(), compiled once into the static library xrnn_doctest_main that every test links.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
