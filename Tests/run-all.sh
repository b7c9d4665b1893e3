#!/usr/bin/env bash
# The whole test suite: set-up and build, the Swift tests, the memory check, the MPI tests
# (Tests/mpi), the faults (Tests/faults: full disk, crashes in the output switch, signals,
# ranks started differently), the record, sweep and plot tools (Tests/scaling), golden cases
# across emulated nodes (Tests/cluster, as root), the golden reference cases in ../shared/golden
# (FLASHDIST_GOLDEN overrides the folder), under mpirun and then alone on the kernels of every
# instruction set the CPU has, and the Python package
# (python/tests, with torch: a fresh `pip install torch` takes ~4 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
golden="${FLASHDIST_GOLDEN:-../shared/golden}"

bash launch/setup.sh
python3 -c "import numpy" 2>/dev/null || python3 -m pip install -q numpy

swift test -c release
bash Tests/memory-check.sh .build/release/flashdist
bash Tests/mpi/run.sh .build/release/flashdist
bash Tests/mpi/golden.sh .build/release/flashdist "$golden"
bash Tests/faults/run.sh .build/release/flashdist
bash Tests/scaling/run.sh .build/release/flashdist
bash Tests/cluster/run.sh .build/release/flashdist "$golden"
# The golden cases once per instruction set this CPU runs (bench refuses one it lacks).
for isa in avx2 avx512; do
    if FLASHDIST_ISA=$isa .build/release/flashdist bench --seqlen-q 32 --heads 1 --warmup 0 --repeats 1 >/dev/null 2>&1; then
        echo "run-all: golden cases on the $isa kernels"
        FLASHDIST_ISA=$isa python3 "$golden/check.py" .build/release/flashdist "$golden" --features all,sinks,vdim,precise
    else
        echo "run-all: this CPU has no $isa; its kernels are not tested here"
    fi
done
python3 -c "import torch, pytest, mpi4py" 2>/dev/null || python3 -m pip install -q torch pytest mpi4py
python3 -m pip install -q ./python
python3 -m pytest -q python/tests
