#!/usr/bin/env bash
# Installs what building and testing xrnn need on Debian/Ubuntu (apt only). Fast no-op when all is present.
# Usage: bash tools/install-deps.sh   (runs apt-get through sudo when not root)
set -euo pipefail

# Tools: installed from apt only when the command is missing (a cmake or python3 from elsewhere is fine).
tools=(g++ cmake make python3)
# Libraries: Debian packages. libopenblas-dev also provides the LAPACK that xtensor-blas' CMake config looks up.
# gnuplot-nox (gnuplot without X11) draws the examples' PNG plots.
# nlohmann-json3-dev parses safetensors headers (include/xrnn/io/safetensors.hpp, opt-in).
# openmpi-bin and libopenmpi-dev: data-parallel training (include/xrnn/mpi.hpp, opt-in) and its mpirun tests.
packages=(libxtensor-dev libxtensor-blas-dev libxsimd-dev xtl-dev libopenblas-dev doctest-dev gnuplot-nox
          nlohmann-json3-dev openmpi-bin libopenmpi-dev)

missing=()
for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all dependencies present"
    exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install-deps: need root or sudo to install: ${missing[*]}" >&2
        exit 1
    fi
    sudo=(sudo)
fi

echo "install-deps: installing ${missing[*]}"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
