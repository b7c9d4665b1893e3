#!/usr/bin/env bash
# flashdist across 3–4 emulated nodes (launch/cluster.sh: network namespaces, TCP only): golden
# cases under each partition of PARTITIONS, every output byte-for-byte equal to the threaded run
# and within the golden tolerance; a node killed mid-run ends the job with a non-zero exit and no
# outputs; the script refusing without root and removing every namespace when done. Ends with
# "N passed, M failed" and exits non-zero if any failed. Needs root (CI runs as root).
#
# usage: Tests/cluster/run.sh [FLASHDIST_BIN [GOLDEN_DIR]]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cluster="$here/../../launch/cluster.sh"
bin=$(realpath "${1:-$here/../../.build/release/flashdist}")
golden=$(realpath "${2:-${FLASHDIST_GOLDEN:-$here/../../../shared/golden}}")
# The partitions every case runs under, as PARTITION:RANKS[:ULYSSES]: the hybrid needs 4 ranks
# (a Ulysses group of 2 and a ring of 2 across groups).
PARTITIONS="heads:3 sequence:3 ring:3 hybrid:4:2"
# Small cases with at least 3 heads (the heads partition needs a head per rank): GQA, causal with
# ALiBi, odd sizes.
CASES="gqa alibi_causal odd_sizes"
NODES=4
export FLASHDIST_CLUSTER_DIR=$(mktemp -d)/cluster
work=$(mktemp -d)
trap 'bash "$cluster" down; rm -rf "$work" "$(dirname "$FLASHDIST_CLUSTER_DIR")"' EXIT
. "$here/../results.sh"


if [ "$(id -u)" != 0 ]; then
    echo "cluster tests need root (network namespaces); skipped"
    echo "0 passed, 0 failed"
    exit 0
fi

# ip and tc (iproute2) are not on every fresh machine.
if ! command -v ip >/dev/null || ! command -v tc >/dev/null; then
    echo "cluster tests: installing iproute2" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null
fi

why=$(setpriv --reuid=65534 --regid=65534 --clear-groups bash "$cluster" up 2 2>&1)
status=$?
result $(( status == 0 || $(wc -l <<<"$why") != 1 )) "without root: one line, non-zero exit" "exit $status: $why"

bash "$cluster" up $NODES 2>/dev/null
result $? "cluster.sh up $NODES"
. "$FLASHDIST_CLUSTER_DIR/env"
# Host names from stdout only: mpirun's rsh launcher may warn on stderr that setpgid lost a race
# with the child's exec (EACCES), which is harmless.
hosts=$(mpirun -np $NODES hostname 2>"$work/placement.err" | sort | tr '\n' ' ')
result $([ "$hosts" = "fdnode0 fdnode1 fdnode2 fdnode3 " ]; echo $?) "mpirun places one rank on each node" "$hosts $(head -c 300 "$work/placement.err")"

# Each case: the threaded run (and its check against the float64 reference), then the same case
# on the nodes under each partition, byte-for-byte the threaded outputs.
for case in $CASES; do
    why=$(PYTHONPATH="$golden" python3 -c "
import sys; from check import run_case
sys.exit(run_case('$bin', '$golden/$case', None, 2, '$work/$case-threaded') or None)" 2>&1)
    result $? "$case: threaded run within the golden tolerance" "$why"
    for spec in $PARTITIONS; do
        IFS=: read -r partition ranks ulysses <<<"$spec"
        out="$work/$case-$partition"
        why=$(PYTHONPATH="$golden" python3 -c "
import sys; from check import run_case
extra = ['--partition', '$partition'] + (['--ulysses', '$ulysses'] if '$ulysses' else [])
sys.exit(run_case('$bin', '$golden/$case', $ranks, 1, '$out', extra) or None)" 2>&1)
        result $? "$case: $ranks nodes, $partition partition, within the golden tolerance" "$why"
        differ=""
        for file in "$work/$case-threaded"/*.npy; do
            cmp -s "$file" "$out/$(basename "$file")" || differ+="$(basename "$file") "
        done
        result $([ -z "$differ" ]; echo $?) "$case: $ranks nodes, $partition partition, byte-for-byte the threaded run" \
            "differ: $differ"
    done
done

# A node killed mid-run: once the job has made its unfinished output set, every process of node 1 is
# killed. mpirun must exit non-zero and leave no output file.
python3 "$here/../mpi/make_inputs.py" "$work/big/in" 1 4096 4096 3 3 64
mpirun -np $NODES "$bin" attention --q "$work/big/in/q.npy" --k "$work/big/in/k.npy" --v "$work/big/in/v.npy" \
    --do "$work/big/in/do.npy" --threads 1 --partition sequence --out "$work/big/out" >"$work/big/log" 2>&1 &
job=$!
for _ in $(seq 300); do compgen -G "$work/big/out/.flashdist-set-*" >/dev/null && break; sleep 0.1; done
for pid in $(ip netns pids fdnode1); do kill -9 "$pid"; done
start=$SECONDS
wait $job
status=$?
leftovers=$(ls -A "$work/big/out" 2>/dev/null | grep -v '^\.flashdist-set-')
result $(( status == 0 || ${#leftovers} > 0 )) "node killed mid-run: mpirun fails within $((SECONDS - start)) s, no output file" \
    "exit $status, left: ${leftovers:-nothing but the unfinished set}"

bash "$cluster" down
left=$( (ip netns list | grep '^fdnode'; ip -o link show | grep -o 'fd\(br\|veth\)[0-9]*') 2>/dev/null | tr '\n' ' ')
result $([ -z "$left" ]; echo $?) "cluster.sh down removes every namespace, link and bridge" "left: $left"

# Interrupted: `run` tears the nodes down on ^C too (SIGINT to its process group; a background
# job starts with SIGINT ignored, so it is restored before the script starts).
python3 -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.setsid(); os.execvp("bash", sys.argv[1:])' \
    bash "$cluster" run 2 -- sleep 30 >/dev/null 2>&1 &
runner=$!
for _ in $(seq 100); do ip netns list | grep -q '^fdnode1' && break; sleep 0.1; done
sleep 0.3
kill -INT -- -$runner
wait $runner
status=$?
left=$( (ip netns list | grep '^fdnode'; ip -o link show | grep -o 'fd\(br\|veth\)[0-9]*') 2>/dev/null | tr '\n' ' ')
result $(( status == 0 || ${#left} > 0 )) "cluster.sh run, interrupted: non-zero exit, nothing left" "exit $status, left: $left"

summary
