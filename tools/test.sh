#!/usr/bin/env bash
# Installs the dependencies, configures build/ (Release), builds and runs every test with CTest.
# Usage: bash tools/test.sh [extra ctest arguments, e.g. -R test_lstm]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
jobs="${XRNN_JOBS:-2}"

bash tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs" "$@"
