#!/usr/bin/env bash
# Builds the C++17 unit tests with AddressSanitizer and UndefinedBehaviorSanitizer at -O1 in build-sanitize/ and runs
# them with CTest. Any finding fails the run: ASan aborts on its first error (and LeakSanitizer at exit), and UBSan is
# built with -fno-sanitize-recover=all, so undefined behaviour aborts the test instead of printing a warning.
# Not built here: the C++20 copies, the packaging/consumer tests, the compile-fail tests (tests/CMakeLists.txt options).
# Usage: bash tools/sanitize.sh [extra ctest arguments, e.g. -R test_lstm]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
jobs="${XRNN_JOBS:-2}"
build="${XRNN_SANITIZE_BUILD_DIR:-build-sanitize}"

bash tools/install-deps.sh

flags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
cmake -S . -B "$build" \
    -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_CXX_FLAGS="$flags" \
    -DCMAKE_EXE_LINKER_FLAGS="$flags" \
    -DXRNN_BUILD_EXAMPLES=OFF \
    -DXRNN_BUILD_BENCHMARKS=OFF \
    -DXRNN_TEST_CXX20=OFF \
    -DXRNN_TEST_PACKAGING=OFF \
    -DXRNN_TEST_COMPILE_FAIL=OFF \
    -DXRNN_TEST_OPTIMIZATION=-O1
cmake --build "$build" -j "$jobs"

# halt_on_error/abort_on_error: the first finding ends the test with a failure and a stack trace.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:halt_on_error=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:abort_on_error=1}"
# test_allocations replaces malloc itself to count allocations, which cannot coexist with ASan's malloc.
ctest --test-dir "$build" --output-on-failure -j "$jobs" -E '^test_allocations$' "$@"
