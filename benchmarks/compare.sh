#!/usr/bin/env bash
# Builds the benchmark (-O3 -march=native, Release), runs xtensor-rnn and then PyTorch on the same cases and shapes,
# and prints a Markdown table with the ratio per case and the issue's targets.
#
# Usage: bash benchmarks/compare.sh [case ...]          (no argument: every case)
# Environment: XRNN_BENCH_BUILD  build directory (default: <repo>/build-bench)
#              XRNN_BENCH_RAW    file to keep the raw lines in (default: a temporary file)
# Threads: OPENBLAS_NUM_THREADS=2 and OMP_NUM_THREADS=2 for both; xrnn_bench also calls openblas_set_num_threads(2)
# and torch_reference.py torch.set_num_threads(2). PyTorch comes from Debian's python3-torch, so the reference runs
# with /usr/bin/python3.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${XRNN_BENCH_BUILD:-$root/build-bench}
raw=${XRNN_BENCH_RAW:-$(mktemp)}
export OPENBLAS_NUM_THREADS=2
export OMP_NUM_THREADS=2

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DXRNN_BUILD_BENCHMARKS=ON -DXRNN_BUILD_TESTS=OFF \
      -DXRNN_BUILD_EXAMPLES=OFF -DXRNN_INSTALL=OFF >/dev/null
cmake --build "$build" --target xrnn_bench -j2 >/dev/null

cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
echo "machine: ${cpu:-unknown CPU}, $(nproc) cores; $("${CXX:-c++}" --version 2>/dev/null | head -n 1)"
echo "load before: $(cut -d ' ' -f 1-3 /proc/loadavg)"
: >"$raw"
"$build/benchmarks/xrnn_bench" "$@" | tee -a "$raw"
/usr/bin/python3 "$root/benchmarks/torch_reference.py" "$@" | tee -a "$raw"
echo "load after: $(cut -d ' ' -f 1-3 /proc/loadavg)"
echo

python3 - "$raw" <<'EOF'
import sys

rows = {}
for line in open(sys.argv[1]):
    fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
    if "case" in fields and "impl" in fields:
        rows.setdefault(fields["case"], {})[fields["impl"]] = fields

order = ["rnn_train_step", "lstm_train_step", "lstm_train_step_masked", "bilstm_train_step", "gru_train_step", "lstm_forward", "rnn_forward", "gru_forward",
         "lstm_cell_step_b1", "rnn_cell_step_b1", "gru_cell_step_b1", "sgemm_floor"]
floor = float(rows["sgemm_floor"]["xrnn"]["ms"]) if "xrnn" in rows.get("sgemm_floor", {}) else None


def fmt(ms):
    ms = float(ms)
    return f"{ms * 1000:.2f} us" if ms < 1 else f"{ms:.1f} ms"


def target(case, x, t):
    """(target text, met?) for one case; x and t are the xrnn and torch medians in ms."""
    if case == "lstm_train_step":
        parts, ok = [">= 4x torch"], t is not None and t / x >= 4
        if floor:
            parts.append(f"<= 1.5x sgemm_floor (now {x / floor:.2f}x)")
            ok = ok and x / floor <= 1.5
        return ", ".join(parts), ok
    if case == "rnn_train_step":
        return ">= 5x torch", t is not None and t / x >= 5
    if case == "gru_train_step":
        lstm = rows.get("lstm_train_step", {})
        if "xrnn" in lstm and "torch" in lstm:
            want = float(lstm["torch"]["ms"]) / float(lstm["xrnn"]["ms"])
            return f">= lstm's ratio ({want:.1f}x)", t is not None and t / x >= want
        return "", None
    if case == "gru_forward":
        lstm = rows.get("lstm_forward", {})
        if "xrnn" in lstm and "torch" in lstm:
            want = float(lstm["torch"]["ms"]) / float(lstm["xrnn"]["ms"])
            return f">= lstm's ratio ({want:.1f}x)", t is not None and t / x >= want
        return "", None
    if case == "bilstm_train_step":
        one = rows.get("lstm_train_step", {}).get("xrnn")
        if one:
            r = x / float(one["ms"])
            return f"< 2x lstm_train_step (now {r:.2f}x)", r < 2
        return "", None
    if case == "lstm_train_step_masked":
        one = rows.get("lstm_train_step", {}).get("xrnn")
        if one:
            r = x / float(one["ms"])
            return f"~ real tokens: 0.79 of lstm_train_step (now {r:.2f})", None
        return "", None
    if case == "gru_cell_step_b1":
        return "<= 3 us", x <= 0.003
    if case in ("lstm_forward", "rnn_forward"):
        return ">= 4x torch", t is not None and t / x >= 4
    if case == "lstm_cell_step_b1":
        return "<= 5 us", x <= 0.005
    if case == "rnn_cell_step_b1":
        return "<= 1.5 us", x <= 0.0015
    return "", None


print("| case | xrnn median (min-max) | torch median (min-max) | torch / xrnn | target | met |")
print("|---|---|---|---|---|---|")
for case in order + sorted(set(rows) - set(order)):
    r = rows.get(case, {})
    x = r.get("xrnn")
    t = r.get("torch")
    xs = f"{fmt(x['ms'])} ({fmt(x['min'])}-{fmt(x['max'])})" if x else "-"
    ts = f"{fmt(t['ms'])} ({fmt(t['min'])}-{fmt(t['max'])})" if t else "-"
    ratio = f"{float(t['ms']) / float(x['ms']):.1f}x" if x and t else "-"
    text, ok = target(case, float(x["ms"]), float(t["ms"]) if t else None) if x else ("", None)
    met = "" if ok is None else ("yes" if ok else "no")
    print(f"| {case} | {xs} | {ts} | {ratio} | {text} | {met} |")
EOF
