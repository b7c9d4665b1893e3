#!/usr/bin/env bash
# Faults: a full disk under mpirun and alone, a crash at each step of the output switch,
# SIGINT/SIGTERM mid-run, ranks started differently, and paths that are not UTF-8. After each, the output directory must hold one complete set (the
# earlier one, or the new one when the switch was made), as Tests/faults/check_set.py reads it,
# and the run must end with one "flashdist: error:" line or the signal's exit code. Ends with
# "N passed, M failed" and exits non-zero if any failed.
#
# usage: Tests/faults/run.sh [FLASHDIST_BIN]
# The disk-full cases mount a 1 MiB tmpfs, so they need root; otherwise they are skipped with
# the reason printed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(realpath "${1:-$here/../../.build/release/flashdist}")
mpirun=(mpirun --oversubscribe ${FLASHDIST_MPIRUN_FLAGS:-})
if [ "$(id -u)" = 0 ]; then mpirun+=(--allow-run-as-root); fi
work=$(mktemp -d)
trap 'mountpoint -q "$work/small" && umount "$work/small"; rm -rf "$work"' EXIT
. "$here/../results.sh"


# holds DIR REF NAMES: DIR's current set is exactly NAMES, byte for byte REF's files.
holds() {
    local found
    found=$(python3 "$here/check_set.py" "$1" "$2" 2>&1) || { echo "$found"; return 1; }
    [ "$found" = "$3" ] || { echo "set is '$found', expected '$3'"; return 1; }
}

# errors LOG FRAGMENT: LOG has exactly one "flashdist: error:" line, and it holds FRAGMENT.
errors() {
    local lines
    lines=$(grep -c '^flashdist: error:' <<<"$1")
    [ "$lines" = 1 ] && grep '^flashdist: error:' <<<"$1" | grep -qF -- "$2" \
        || { echo "$lines error lines: $(grep '^flashdist: error:' <<<"$1" | head -2)"; return 1; }
}

python3 "$here/../mpi/make_inputs.py" "$work/big" 1 512 512 4 4 64
python3 "$here/../mpi/make_inputs.py" "$work/a" 1 40 40 2 1 16
python3 "$here/../mpi/make_inputs.py" "$work/b" 1 48 40 2 1 16
inputs() { echo --q "$work/$1/q.npy" --k "$work/$1/k.npy" --v "$work/$1/v.npy"; }
# References: set A (forward and backward of a), set B (forward of b, causal), B as safetensors.
"$bin" attention $(inputs a) --do "$work/a/do.npy" --out "$work/ref-a"
"$bin" attention $(inputs b) --causal --out "$work/ref-b"
"$bin" attention $(inputs b) --causal --out-format safetensors --out "$work/ref-b-st"
set_a="dk.npy dq.npy dv.npy lse.npy o.npy" set_b="lse.npy o.npy"

# Finding 1: a full disk, under mpirun (both partitions, 2 and 3 ranks) and alone. The run must
# fail with one error line naming the full device, and the earlier set must stay whole.
if [ "$(id -u)" != 0 ]; then
    echo "skip disk full: mounting a tmpfs needs root"
elif ! mkdir -p "$work/small" || ! mount -t tmpfs -o size=1m tmpfs "$work/small" 2>/dev/null; then
    echo "skip disk full: cannot mount a tmpfs here"
else
    for launch in "threaded" "heads 2" "heads 3" "sequence 2" "sequence 3"; do
        out="$work/small/out"
        rm -rf "$out"
        "$bin" attention $(inputs a) --do "$work/a/do.npy" --out "$out" >/dev/null
        set -- $launch
        if [ "$1" = threaded ]; then runner=("$bin"); else runner=("${mpirun[@]}" -np "$2" "$bin"); fi
        log=$(timeout 60 "${runner[@]}" attention $(inputs big) --do "$work/big/do.npy" --threads 1 ${2:+--partition $1} --out "$out" 2>&1)
        status=$?
        why=$(errors "$log" "No space left on device") && why=$(holds "$out" "$work/ref-a" "$set_a")
        result $(( $? != 0 || status == 0 || status == 124 )) "disk full, $launch: one error, earlier set kept" "exit $status; $why"
    done
    umount "$work/small"
fi

# The output switch killed at each of its steps (FLASHDIST_FAULT_AT makes the process _exit
# there): before the switch DIR holds set A whole, after it set B whole, with A's dq, dk, dv
# gone; the next run succeeds and leaves one set directory.
for launch in threaded "mpirun 2"; do
    if [ "$launch" = threaded ]; then runner=("$bin"); else runner=("${mpirun[@]}" -np 2 "$bin"); fi
    formats="npy safetensors"
    [ "$launch" = threaded ] || formats=npy
    for format in $formats; do
        ref="$work/ref-b" names=$set_b
        [ $format = safetensors ] && ref="$work/ref-b-st" names="out.safetensors"
        for step in synced manifest linked switched cleaned; do
            out="$work/switch"
            rm -rf "$out"
            "$bin" attention $(inputs a) --do "$work/a/do.npy" --out "$out"
            FLASHDIST_FAULT_AT=$step "${runner[@]}" attention $(inputs b) --causal --out-format $format --out "$out" >/dev/null 2>&1
            status=$?
            case $step in synced|manifest|linked) why=$(holds "$out" "$work/ref-a" "$set_a") ;;
                          *) why=$(holds "$out" "$ref" "$names") ;; esac
            ok=$?
            "${runner[@]}" attention $(inputs b) --causal --out-format $format --out "$out" >/dev/null 2>&1
            again=$?
            sets=$(ls -A "$out" | grep -c '^\.flashdist-set-')
            why+="; exit $status, next run exit $again, $sets set directories"
            result $(( ok != 0 || status == 0 || again != 0 || sets != 1 )) "killed at '$step', $launch, $format" "$why"
            [ $again = 0 ] && why=$(holds "$out" "$ref" "$names") || why="next run failed"
            result $? "run after the kill at '$step', $launch, $format: set B whole" "$why"
        done
    done
done

# Finding 4a: an output name taken by a directory fails before anything is written.
out="$work/taken"
"$bin" attention $(inputs a) --do "$work/a/do.npy" --out "$out"
rm "$out/dv.npy" && mkdir "$out/dv.npy"
log=$("$bin" attention $(inputs b) --causal --do "$work/b/do.npy" --out "$out" 2>&1)
status=$?
why=$(errors "$log" "$out/dv.npy: is a directory") && why=$(for n in dk dq lse o; do cmp "$work/ref-a/$n.npy" "$out/$n.npy" || exit 1; done)
result $(( $? != 0 || status == 0 )) "an output name that is a directory: one error, nothing replaced" "exit $status; $why"

# SIGTERM and SIGINT mid-run, alone and to mpirun (which forwards them to the ranks): exit 143
# or 130 alone, the unfinished set removed, the earlier one whole. mpirun exits non-zero and
# SIGKILLs the ranks a second after its SIGTERM, which on a loaded machine can come before rank 0
# has removed the set: then the next run in DIR must remove it.
# The run is long enough (16384 rows: seconds even on the AVX-512 kernels) for the signal to land
# before the output switch.
python3 "$here/../mpi/make_inputs.py" "$work/long" 1 16384 16384 4 4 64
for launch in "TERM threaded" "INT threaded" "TERM mpirun"; do
    set -- $launch
    signal=$1 out="$work/signal-$1-$2"
    if [ $2 = threaded ]; then runner=("$bin"); else runner=("${mpirun[@]}" -np 2 "$bin"); fi
    "$bin" attention $(inputs a) --do "$work/a/do.npy" --out "$out"
    "${runner[@]}" attention $(inputs long) --do "$work/long/do.npy" --threads 1 --out "$out" >/dev/null 2>&1 &
    job=$!
    for _ in $(seq 300); do [ "$(ls -A "$out" | grep -c "^\.flashdist-set-")" = 2 ] && break; sleep 0.05; done
    kill -$signal $job
    wait $job
    status=$?
    expected=$([ $signal = TERM ] && echo 143 || echo 130)
    why=$(holds "$out" "$work/ref-a" "$set_a")
    whole=$?
    if [ $2 = mpirun ]; then
        (( status != 0 )) && expected=$status
        "$bin" attention $(inputs a) --do "$work/a/do.npy" --out "$out"
    fi
    sets=$(ls -A "$out" | grep -c '^\.flashdist-set-')
    result $(( whole != 0 || status != expected || sets != 1 )) "SIG$signal mid-run, $2: exit $expected, unfinished set removed$([ $2 = mpirun ] && echo " (or by the next run)")" \
        "exit $status, $sets set directories; $why"
done

# Finding 6: ranks started with other arguments, or seeing other copies of an input, stop with
# one error naming the rank before anything is computed or written; never a hang.
# differ NAME FRAGMENT OUT -- ARGS0 -- ARGS1: rank 0 runs ARGS0, rank 1 ARGS1 (mpirun's A : B).
differ() {
    local name=$1 fragment=$2 out=$3 start=$SECONDS; shift 4
    local first=() second=()
    while [ "$1" != -- ]; do first+=("$1"); shift; done; shift
    second=("$@")
    log=$(timeout 60 "${mpirun[@]}" -np 1 "${first[@]}" : -np 1 "${second[@]}" 2>&1 >/dev/null)
    status=$?
    why=$(errors "$log" "$fragment")
    local ok=$?
    [ -e "$out" ] && { ok=1; why+="; $out was created"; }
    result $(( ok != 0 || status == 0 || status == 124 || SECONDS - start > 30 )) "ranks differ: $name" "exit $status; $why"
}
base=(attention $(inputs a) --out "$work/differ")
differ "--causal on one rank" "rank 1 was started with other arguments" "$work/differ" \
    -- "$bin" "${base[@]}" -- "$bin" "${base[@]}" --causal
differ "--do on one rank" "rank 1 was started with other arguments" "$work/differ" \
    -- "$bin" "${base[@]}" --do "$work/a/do.npy" -- "$bin" "${base[@]}"
differ "attention and backward" "rank 1 was started with other arguments" "$work/differ" \
    -- "$bin" "${base[@]}" -- "$bin" backward $(inputs a) --o "$work/ref-a/o.npy" --lse "$work/ref-a/lse.npy" --do "$work/a/do.npy" --out "$work/differ"
# Same arguments, but each rank's working directory holds another k.npy (as nodes with stale copies would).
mkdir -p "$work/node0" "$work/node1"
cp "$work/a/"{q,k,v}.npy "$work/node0/"
cp "$work/a/"{q,v}.npy "$work/node1/" && cp "$work/b/k.npy" "$work/node1/k.npy"
differ "another copy of k.npy" "k.npy: rank 1 sees another file than rank 0" "$work/differ" \
    -- --wdir "$work/node0" "$bin" attention --q q.npy --k k.npy --v v.npy --out "$work/differ" \
    -- --wdir "$work/node1" "$bin" attention --q q.npy --k k.npy --v v.npy --out "$work/differ"

# Finding 7: paths that are not UTF-8 are used as the bytes given, alone and under mpirun.
odd=$'in\xff\xfe'
mkdir -p "$work/$odd" && cp "$work/a/"{q,k,v}.npy "$work/$odd/" && mv "$work/$odd/q.npy" "$work/$odd/q"$'\xff'".npy"
for launch in threaded mpirun; do
    out="$work/out-$launch"$'\xff\xfe'
    if [ $launch = threaded ]; then runner=("$bin"); else runner=("${mpirun[@]}" -np 2 "$bin"); fi
    log=$("${runner[@]}" attention --q "$work/$odd/q"$'\xff'".npy" --k "$work/$odd/k.npy" --v "$work/$odd/v.npy" --out "$out" 2>&1)
    status=$?
    why=$(holds "$out" "$work/ref-a" "lse.npy o.npy")
    result $(( $? != 0 || status != 0 )) "non-UTF-8 paths, $launch: read and written as given" "exit $status; $why; $log"
done

summary
