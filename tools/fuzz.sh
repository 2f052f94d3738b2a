#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (-fsanitize=fuzzer,address,undefined) into build-fuzz/ and runs
# each from its committed seed corpus for a bounded time, all at once. Prints the executions of each
# target and fails on any finding: a crash, an exception the API does not document, a broken invariant, a leak,
# undefined behaviour, an input slower than 10 s, or one allocation over 256 MB. Inputs that reproduce a finding are
# kept in build-fuzz/artifacts/; rerun one with ./build-fuzz/<target> <file>.
# Usage: bash tools/fuzz.sh [seconds per target, default 60]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds="${1:-60}"
build="${XRNN_FUZZ_BUILD_DIR:-build-fuzz}"
targets=(fuzz_weights fuzz_text fuzz_safetensors)

bash tools/install-deps.sh

# clang, with libFuzzer and the sanitizer runtimes (Debian: clang + libclang-rt-<version>-dev), from apt if missing.
cxx="${XRNN_FUZZ_CXX:-clang++}"
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
printf 'extern "C" int LLVMFuzzerTestOneInput(const char*, unsigned long) { return 0; }\n' >"$probe/probe.cpp"
if ! "$cxx" -fsanitize=fuzzer,address,undefined "$probe/probe.cpp" -o "$probe/probe" >/dev/null 2>&1; then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    echo "fuzz: installing clang and libclang-rt-14-dev (libFuzzer)"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends clang libclang-rt-14-dev
    "$cxx" -fsanitize=fuzzer,address,undefined "$probe/probe.cpp" -o "$probe/probe"
fi

# Build: a target is rebuilt when it is older than any header of the library or any file of fuzz/.
mkdir -p "$build/artifacts"
flags=(-std=c++17 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
       -Iinclude)
pids=()
for t in "${targets[@]}"; do
    if [ ! -x "$build/$t" ] || [ -n "$(find include fuzz -newer "$build/$t" -type f -print -quit)" ]; then
        echo "fuzz: building $build/$t"
        "$cxx" "${flags[@]}" "fuzz/$t.cpp" -o "$build/$t" -lopenblas &
        pids+=($!)
    fi
done
for pid in "${pids[@]}"; do
    wait "$pid"
done

# Run: new inputs go to build-fuzz/corpus/<target>; the committed seeds in fuzz/corpus/<target> are only read.
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
declare -A run_pid
for t in "${targets[@]}"; do
    mkdir -p "$build/corpus/$t"
    "./$build/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=256 -max_len=8192 \
        -print_final_stats=1 -dict="fuzz/$t.dict" -artifact_prefix="$build/artifacts/$t-" \
        "$build/corpus/$t" "fuzz/corpus/$t" >"$build/$t.log" 2>&1 &
    run_pid[$t]=$!
done

status=0
for t in "${targets[@]}"; do
    if wait "${run_pid[$t]}"; then
        result="no finding"
    else
        result="FINDING (exit code $?)"
        status=1
    fi
    executions="$(sed -n 's/^stat::number_of_executed_units: *//p' "$build/$t.log" | tail -1)"
    coverage="$(grep -o 'cov: [0-9]*' "$build/$t.log" | tail -1 || true)"
    corpus="$(find "$build/corpus/$t" -type f | wc -l)"
    echo "fuzz: $t: ${executions:-?} executions in ${seconds} s, ${coverage:-cov: ?}, $corpus inputs in $build/corpus/$t: $result"
    if [ "$result" != "no finding" ]; then
        echo "---- $build/$t.log (end) ----"
        tail -n 60 "$build/$t.log"
        ls "$build/artifacts/" | sed 's/^/fuzz: artifact: /'
    fi
done
exit "$status"
