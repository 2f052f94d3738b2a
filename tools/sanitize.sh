#!/usr/bin/env bash
# Builds the C++17 unit tests with AddressSanitizer and UndefinedBehaviorSanitizer at -O0 in build-sanitize/ and runs
# them with CTest. Any finding fails the run: ASan aborts on its first error (and LeakSanitizer at exit), and UBSan is
# built with -fno-sanitize-recover=all, so undefined behaviour aborts the test instead of printing a warning.
# Not built here: the C++20 copies, the plain-loop and all-BLAS copies (the same code under other kernels, run by
# tools/test.sh), the packaging/consumer tests, the compile-fail tests (tests/CMakeLists.txt options): CI's time.
# -O0 with line tables only (-g1): the sanitized build was CI's longest stage (51 of 72 minutes at -O1 with -g on
# Dec 1); -O0 -g1 compiles in about half the time (test_lstm.cpp: 49 s against 104 s), and the tests run about 5x
# slower (6 minutes in all), with nothing optimised away from the checks; reports keep function names and lines.
# Then the tests of xrnn's threads again with ThreadSanitizer, in build-sanitize-thread/ (any report fails).
# Usage: bash tools/sanitize.sh [extra ctest arguments, e.g. -R test_lstm]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
jobs="${XRNN_JOBS:-2}"
build="${XRNN_SANITIZE_BUILD_DIR:-build-sanitize}"

bash tools/install-deps.sh

flags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
cmake -S . -B "$build" \
    -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_CXX_FLAGS_DEBUG=-g1 \
    -DCMAKE_CXX_FLAGS="$flags" \
    -DCMAKE_EXE_LINKER_FLAGS="$flags" \
    -DXRNN_BUILD_EXAMPLES=OFF \
    -DXRNN_BUILD_BENCHMARKS=OFF \
    -DXRNN_TEST_CXX20=OFF \
    -DXRNN_TEST_PACKAGING=OFF \
    -DXRNN_TEST_COMPILE_FAIL=OFF \
    -DXRNN_TEST_VARIANTS=OFF \
    -DXRNN_TEST_OPTIMIZATION=-O0
cmake --build "$build" -j "$jobs"

# halt_on_error/abort_on_error: the first finding ends the test with a failure and a stack trace.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:halt_on_error=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:abort_on_error=1}"
# test_allocations replaces malloc itself to count allocations, which cannot coexist with ASan's malloc.
ctest --test-dir "$build" --output-on-failure -j "$jobs" -E '^test_allocations$' "$@"

# ThreadSanitizer, on the tests of xrnn's own threads (the thread pool, the parallel layers and their results on 1-3
# threads, the thread limit, masked batches on 1-3 threads, the two directions of a bidirectional layer at once)
# and of serving (predictors on many threads, the usage guard of a model): a separate
# build, since TSan cannot be combined with ASan. OpenBLAS is kept to one
# thread here: its own threads synchronise in code TSan does not see, which it would report as races that are not
# xrnn's.
tsan_build="${build}-thread"
tsan_flags="-fsanitize=thread -fno-omit-frame-pointer"
cmake -S . -B "$tsan_build" \
    -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_CXX_FLAGS_DEBUG=-g1 \
    -DCMAKE_CXX_FLAGS="$tsan_flags" \
    -DCMAKE_EXE_LINKER_FLAGS="$tsan_flags" \
    -DXRNN_BUILD_EXAMPLES=OFF \
    -DXRNN_BUILD_BENCHMARKS=OFF \
    -DXRNN_TEST_CXX20=OFF \
    -DXRNN_TEST_PACKAGING=OFF \
    -DXRNN_TEST_COMPILE_FAIL=OFF \
    -DXRNN_TEST_OPTIMIZATION=-O1
tsan_tests=(test_threads test_files test_predictor test_masking test_bidirectional test_bf16)
cmake --build "$tsan_build" -j "$jobs" --target "${tsan_tests[@]}"
OPENBLAS_NUM_THREADS=1 TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:second_deadlock_stack=1}" \
    ctest --test-dir "$tsan_build" --output-on-failure -j "$jobs" -R "^($(IFS='|'; echo "${tsan_tests[*]}"))\$"
