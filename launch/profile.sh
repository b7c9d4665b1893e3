#!/usr/bin/env bash
# Where the kernels' time goes, by instruction and cache-miss counts: `flashdist bench` (one
# thread, one timed run, small N) under valgrind's cachegrind, forward alone and forward +
# backward, per instruction set, then launch/profile_report.py's breakdown table of each (products,
# exp, max/sum pass, packing; L1d and L2-sized last-level misses).
#
# usage: launch/profile.sh [FLASHDIST_BIN] [OUT_DIR]
# SEQLEN (2048), HEADS (2), HEAD_DIM (64) set the shape, ISAS ("avx2 avx512") the paths tried.
#
# Counts, not times: they are the same on a loaded machine, which makes them the measure for
# before/after comparisons of small changes. cachegrind simulates L1d and one last level; the
# last level is given this CPU's L2 size and ways (sysfs), since with K and V of a head about
# L2-sized (2 × 2048 × 64 floats = 1 MiB) the misses on K and V are what it shows. An instruction
# set valgrind cannot decode (3.19 has no AVX-512) is skipped with a note.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(realpath "${1:-$here/../.build/release/flashdist}")
out=${2:-$(mktemp -d /tmp/flashdist-profile.XXXXXX)}
mkdir -p "$out"
n=${SEQLEN:-2048} heads=${HEADS:-2} d=${HEAD_DIM:-64}

if ! command -v valgrind >/dev/null; then
    if [ "$(id -u)" = 0 ]; then apt-get install -y valgrind >/dev/null; else
        echo "profile.sh: valgrind is missing; install it (apt-get install -y valgrind)" >&2; exit 1; fi
fi
cache=/sys/devices/system/cpu/cpu0/cache
l2=""; ways=16
for index in "$cache"/index*; do
    if [ "$(cat "$index/level")" = 2 ]; then
        size=$(cat "$index/size"); ways=$(cat "$index/ways_of_associativity" 2>/dev/null || echo 16)
        case $size in *K) l2=$(( ${size%K} * 1024 ));; *M) l2=$(( ${size%M} * 1048576 ));; *) l2=$size;; esac
    fi
done
l2=${l2:-1048576}
field() { grep -m1 "^$1[[:space:]]*:" /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'; }
cpu="$(field "model name") (family $(field "cpu family") model $(field model))"
bench=(bench --seqlen-q "$n" --heads "$heads" --head-dim "$d" --threads 1 --warmup 0 --repeats 1 --peak-gflops 1)
echo "flashdist profile: $cpu, L2 $((l2 / 1024)) KiB ($ways ways), N = $n, H = $heads, D = $d, 1 thread; outputs in $out" >&2

for isa in ${ISAS:-avx2 avx512}; do
    if ! FLASHDIST_ISA=$isa FLASHDIST_TUNING=off valgrind --tool=none -q "$bin" bench --seqlen-q 32 --heads 1 --warmup 0 \
            --repeats 1 --peak-gflops 1 >/dev/null 2>&1; then
        echo "$isa: skipped, it does not run under $(valgrind --version) (on this CPU, or valgrind cannot decode it)" >&2
        continue
    fi
    # Both runs at once: counts do not depend on timing.
    echo "$isa: cachegrind of the forward and of forward + backward (10-20 minutes at N = 2048)…" >&2
    for phase in forward forward-backward; do
        extra=(); [ $phase = forward-backward ] && extra=(--backward)
        FLASHDIST_ISA=$isa FLASHDIST_TUNING=off valgrind --tool=cachegrind --cache-sim=yes --LL="$l2,$ways,64" \
            --cachegrind-out-file="$out/$isa-$phase.out" "$bin" "${bench[@]}" "${extra[@]}" >"$out/$isa-$phase.log" 2>&1 &
    done
    wait
    python3 "$here/profile_report.py" "$out/$isa-forward.out" "$out/$isa-forward-backward.out" --functions 12 \
        --title "$cpu, $isa path, N = $n, H = $heads, D = $d, 1 thread" | tee "$out/$isa-report.md"
    echo
done
