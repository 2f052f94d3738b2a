#!/usr/bin/env bash
# Installs the dependencies, builds the quickstart example and runs it.
# Usage: bash tools/demo.sh [quickstart arguments, e.g. --epochs 3]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
jobs="${XRNN_JOBS:-2}"

bash tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DXRNN_BUILD_EXAMPLES=ON
cmake --build build --target quickstart -j "$jobs"
./build/examples/quickstart "$@"
