#!/usr/bin/env bash
# Installs what flashdist needs on Debian (OpenMPI's runtime and headers) and what launch/'s plots
# need from PyPI (matplotlib) if it is missing, then builds the release binary .build/release/flashdist:
# AVX2 + FMA kernels and AVX-512 kernels in one binary, the widest the CPU has chosen at run time
# (FLASHDIST_ISA=avx2|avx512 forces one).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v mpirun >/dev/null 2>&1 || missing+=(openmpi-bin)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
pkg-config --exists ompi-c 2>/dev/null || missing+=(libopenmpi-dev)
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
python3 -c "import matplotlib" 2>/dev/null || python3 -m pip install -q matplotlib

swift build -c release
