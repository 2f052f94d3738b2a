#!/usr/bin/env bash
# Builds the benchmarks (-O3 -march=native, Release), runs xtensor-rnn, oneDNN (onednn_reference, when libdnnl-dev
# was found) and PyTorch on the same cases and shapes, and prints a Markdown table with the ratios per case, the
# FLOP floor of each case at the measured peak multiply-add rate, and the issues' targets.
#
# Usage: bash benchmarks/compare.sh [case ...]          (no argument: every case)
# Environment: XRNN_BENCH_BUILD  build directory (default: <repo>/build-bench)
#              XRNN_BENCH_USER_BUILD  build directory of the second xrnn_bench, built as a user of the single header
#                               builds (-DXRNN_USE_XSIMD=OFF: no XTENSOR_USE_XSIMD, so xtensor's own containers
#                               are not 64-byte aligned; default: <repo>/build-bench-user; "none" skips it). Its
#                               medians are the table's "xrnn, user build" column (impl xrnn_user), and the
#                               targets are judged on them (as users run it).
#              XRNN_BENCH_RAW    file to keep the raw lines in (default: a temporary file)
#              XRNN_BENCH_ROUNDS rounds of xrnn, its user build and oneDNN, run one after the other in each round
#                               (default 1; PyTorch runs once): each case's median is then the median of the
#                               rounds' medians, its min and max over all rounds, so that a host whose speed
#                               drifts over minutes weighs on every implementation alike
# Threads: OPENBLAS_NUM_THREADS=2 and OMP_NUM_THREADS=2 for all three (oneDNN runs on OpenMP); xrnn_bench also calls openblas_set_num_threads(2)
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
user_build=${XRNN_BENCH_USER_BUILD:-$root/build-bench-user}
if [ "$user_build" != none ]; then
    cmake -S "$root" -B "$user_build" -DCMAKE_BUILD_TYPE=Release -DXRNN_BUILD_BENCHMARKS=ON -DXRNN_BUILD_TESTS=OFF \
          -DXRNN_BUILD_EXAMPLES=OFF -DXRNN_INSTALL=OFF -DXRNN_USE_XSIMD=OFF >/dev/null
    cmake --build "$user_build" --target xrnn_bench -j2 >/dev/null
fi
onednn=""
if cmake --build "$build" --target help 2>/dev/null | grep onednn_reference >/dev/null; then
    cmake --build "$build" --target onednn_reference -j2 >/dev/null
    onednn="$build/benchmarks/onednn_reference"
fi

cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
echo "machine: ${cpu:-unknown CPU}, $(nproc) cores; $("${CXX:-c++}" --version 2>/dev/null | head -n 1)"
echo "load before: $(cut -d ' ' -f 1-3 /proc/loadavg)"
: >"$raw"
rounds=${XRNN_BENCH_ROUNDS:-1}
for ((round = 1; round <= rounds; round++)); do
    [ "$rounds" -gt 1 ] && echo "# round $round of $rounds"
    # the peak multiply-add rate and the streaming floors first (printed by xrnn_bench for every case or when named)
    "$build/benchmarks/xrnn_bench" ${1:+peak_fma stream_floor} "$@" | tee -a "$raw"
    if [ "$user_build" != none ]; then
        "$user_build/benchmarks/xrnn_bench" "$@" | grep '^case=' | sed 's/ impl=xrnn/ impl=xrnn_user/' | tee -a "$raw"
    fi
    if [ -n "$onednn" ]; then
        "$onednn" "$@" | tee -a "$raw"
    else
        echo "# no oneDNN reference (libdnnl-dev not found)"
    fi
done
/usr/bin/python3 "$root/benchmarks/torch_reference.py" "$@" | tee -a "$raw"
echo "load after: $(cut -d ' ' -f 1-3 /proc/loadavg)"
echo

python3 - "$raw" <<'EOF'
import sys

import statistics

rows = {}
peak = None  # one core's measured multiply-add rate, GFLOP/s (the highest of the rounds)
stream = {}  # per cell: reading its weights once from cache, ms (the lowest of the rounds)
runs = {}  # (case, impl): each round's fields
for line in open(sys.argv[1]):
    fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
    if line.startswith("# peak_fma") and "gflops_per_core" in fields:
        peak = max(peak or 0.0, float(fields["gflops_per_core"]))
    if line.startswith("# stream_floor"):
        for cell, us in fields.items():
            stream[cell] = min(stream.get(cell, float("inf")), float(us) / 1000)
    if "case" in fields and "impl" in fields:
        runs.setdefault((fields["case"], fields["impl"]), []).append(fields)
for (case, impl), each in runs.items():  # one round: its fields; several: median of medians, min and max of all
    merged = dict(each[0])
    merged["ms"] = str(statistics.median(float(f["ms"]) for f in each))
    merged["min"] = str(min(float(f["min"]) for f in each))
    merged["max"] = str(max(float(f["max"]) for f in each))
    rows.setdefault(case, {})[impl] = merged

order = ["rnn_layer_train", "lstm_layer_train", "gru_layer_train", "rnn_layer_forward", "lstm_layer_forward",
         "gru_layer_forward", "rnn_cell_step_b1", "lstm_cell_step_b1", "gru_cell_step_b1", "rnn_train_step",
         "lstm_train_step", "lstm_train_step_masked",
         "bilstm_train_step", "gru_train_step", "rnn_forward", "lstm_forward", "gru_forward", "sgemm_floor"]
threads = 2
S, B, D, H = 200, 64, 128, 128
gates = {"rnn": 1, "lstm": 4, "gru": 3}


def flops(case):
    """Multiply-adds x 2 of a case's matrix products: a forward is x W_x and h W_h per step; training adds
    dh = dz W_h^T, dW_x, dW_h and dx (3x the forward); a batch-1 step is one row of a forward step."""
    cell = "lstm" if case == "sgemm_floor" else case.split("_")[0]
    if cell not in gates:
        return None
    forward = 2.0 * S * B * (D + H) * gates[cell] * H
    if case.endswith("_cell_step_b1"):
        return forward / (S * B)
    return 3 * forward if ("train" in case or case == "sgemm_floor") else forward


def floor_ms(case):
    """The case's FLOPs at the peak rate of the cores it runs on, in ms; for a batch-1 step (one core), the larger
    of that and the time to stream its weights once from cache."""
    f = flops(case)
    if f is None or peak is None:
        return None
    if case.endswith("_cell_step_b1"):
        return max(f / (peak * 1e9) * 1e3, stream.get(case.split("_")[0], 0.0))
    return f / (peak * 1e9 * threads) * 1e3


def fmt(ms):
    return f"{ms * 1000:.2f} us" if ms < 1 else f"{ms:.1f} ms"


def target(case, x, t, o):
    """(target text, met?) for one case; x, t, o: the xrnn, torch and onednn medians in ms (None if absent)."""
    fl = floor_ms(case)
    if case.endswith("_layer_train") or case.endswith("_layer_forward"):
        ok = o is not None and o / x >= 1.25
        if case == "lstm_layer_train" and fl:
            return ">= 1.25x onednn, <= 1.3x floor", ok and x / fl <= 1.3
        if fl:
            return ">= 1.25x onednn or <= 1.15x floor", ok or x / fl <= 1.15
        return ">= 1.25x onednn", ok
    limits = {"lstm_cell_step_b1": 0.003, "gru_cell_step_b1": 0.0025, "rnn_cell_step_b1": 0.0008}
    if case in limits:
        return f"<= {limits[case] * 1000:g} us", x <= limits[case]
    one = rows.get("lstm_train_step", {}).get("xrnn")
    if case == "bilstm_train_step" and one:
        r = x / float(one["ms"])
        return f"< 2x lstm_train_step (now {r:.2f}x)", r < 2
    if case == "lstm_train_step_masked" and one:
        r = x / float(one["ms"])
        return f"~ real tokens: 0.79 of lstm_train_step (now {r:.2f})", None
    wants = {"lstm_train_step": 4, "rnn_train_step": 5, "lstm_forward": 4, "rnn_forward": 4}
    if case in wants:
        return f">= {wants[case]}x torch", None if t is None else t / x >= wants[case]
    return "", None


def median(r, impl):
    return float(r[impl]["ms"]) if impl in r else None


if peak:
    print(f"peak multiply-add rate measured: {peak:.1f} GFLOP/s per core, {peak * threads:.0f} on {threads} cores")
if stream:
    print("streaming each cell's weights once from cache (the batch-1 floor): "
          + ", ".join(f"{cell} {ms * 1000:.2f} us" for cell, ms in stream.items()))
print()
print("| case | xrnn median (min-max) | xrnn, user build | onednn f32 | torch | onednn / xrnn | torch / xrnn "
      "| FLOP floor | xrnn / floor | target | met |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for case in order + sorted(set(rows) - set(order)):
    r = rows.get(case, {})
    if not r:
        continue
    x = r.get("xrnn")
    xs = f"{fmt(float(x['ms']))} ({fmt(float(x['min']))}-{fmt(float(x['max']))})" if x else "-"
    xm, tm, om = median(r, "xrnn"), median(r, "torch"), median(r, "onednn")
    fl = floor_ms(case)
    um = median(r, "xrnn_user")
    # targets are judged as users run it: on the user build's median when there is one
    text, ok = target(case, um or xm, tm, om) if xm else ("", None)
    met = "" if ok is None else ("yes" if ok else "no")
    cells = [case, xs] + [fmt(m) if m is not None else "-" for m in (um, om, tm)]
    cells += [f"{m / xm:.2f}x" if xm and m else "-" for m in (om, tm)]
    cells += [fmt(fl) if fl else "-", f"{xm / fl:.2f}x" if fl and xm else "-", text, met]
    print("| " + " | ".join(cells) + " |")

# bfloat16: xrnn with precision::bf16 (impl=xrnn_bf16) against oneDNN's bf16 (inference only: oneDNN 2.6 has no
# bf16 backward with plain layouts) and against both float implementations
bf16_cases = [c for c in order + sorted(set(rows) - set(order)) if "xrnn_bf16" in rows.get(c, {})]
if bf16_cases:
    print()
    print("| case (bf16 products) | xrnn bf16 median (min-max) | onednn bf16 | onednn bf16 / xrnn bf16 "
          "| xrnn f32 / xrnn bf16 | onednn f32 / xrnn bf16 | target | met |")
    print("|---|---|---|---|---|---|---|---|")
    for case in bf16_cases:
        r = rows[case]
        b = r["xrnn_bf16"]
        bm = float(b["ms"])
        om, xm, obm = median(r, "onednn"), median(r, "xrnn"), median(r, "onednn_bf16")
        cells = [case, f"{fmt(bm)} ({fmt(float(b['min']))}-{fmt(float(b['max']))})", fmt(obm) if obm else "-"]
        cells += [f"{m / bm:.2f}x" if m else "-" for m in (obm, xm, om)]
        wanted = case.split("_")[0] in ("lstm", "gru")
        if wanted and obm:
            cells += [">= 1x onednn bf16", "yes" if obm / bm >= 1 else "no"]
        elif wanted:
            cells += [">= 1x onednn bf16 (no oneDNN bf16 here; vs f32)", "yes" if om and om / bm >= 1 else "no"]
        else:
            cells += ["", ""]
        print("| " + " | ".join(cells) + " |")
EOF
