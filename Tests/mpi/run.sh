#!/usr/bin/env bash
# The MPI tests: the all-to-all re-shard round trip on uneven shapes; every output byte-for-byte
# equal to the single-process threaded run for 1 to 4 ranks with the heads and sequence partitions
# and 1 to 5 with the ring and hybrid ones, forward and `flashdist backward`; a rank killed mid-run;
# bad input; one instruction set for all ranks. Ends with "N passed, M failed" and exits
# non-zero if any failed.
#
# usage: Tests/mpi/run.sh [FLASHDIST_BIN] [RESHARD_CHECK_BIN]
# FLASHDIST_MPIRUN_FLAGS adds mpirun flags, e.g. "--mca btl self,vader".
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(realpath "${1:-$here/../../.build/release/flashdist}")
reshard=$(realpath "${2:-$(dirname "$bin")/reshard-check}")
mpirun=(mpirun --oversubscribe ${FLASHDIST_MPIRUN_FLAGS:-})
if [ "$(id -u)" = 0 ]; then mpirun+=(--allow-run-as-root); fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. "$here/../results.sh"


# same REF DIR NAMES...: every named .npy in DIR is byte-for-byte the one in REF.
same() {
    local ref=$1 dir=$2; shift 2
    for name in "$@"; do cmp -s "$ref/$name.npy" "$dir/$name.npy" || { echo "$name.npy differs"; return 1; }; done
}

for np in 1 2 3 4; do
    why=$("${mpirun[@]}" -np $np "$reshard" 2>&1)
    result $? "reshard round trip, $np ranks" "$(grep FAIL <<<"$why" | head -3)"
done

# Byte for byte: H = 6, Hkv = 2 (so 3 and 4 ranks split GQA groups), causal, Nq != Nk both ways;
# then softcap + ALiBi + dropout (mask included) on a fixed-length batch, attention sinks with rows
# that see no key (dsinks too), and a variable-length batch with an empty sequence and sinks, each
# with their flags on every run; then v with a head dim of its own, narrower (48 → 16) and, on the
# variable-length batch, wider and not a whole vector (16 → 24). lse's residual is saved and
# handed to `flashdist backward`.
cases=("2 100 77 6 2 32|" "2 77 100 6 2 32|"
       "2 60 45 6 2 16|--softcap 4 --alibi-slopes @/alibi_slopes.npy --dropout 0.25 --seed 7 --save-dropout-mask"
       "2 100 77 6 2 32|--sinks @/sinks.npy"
       "varlen 0,17,17,90 0,40,41,71 6 2 16|--cu-seqlens-q @/cu_seqlens_q.npy --cu-seqlens-k @/cu_seqlens_k.npy --softcap 3 --alibi-slopes @/alibi_slopes.npy --dropout 0.1 --seed 3 --sinks @/sinks.npy"
       "2 100 77 6 2 48 16|"
       "varlen 0,17,17,90 0,40,41,71 6 2 16 24|--cu-seqlens-q @/cu_seqlens_q.npy --cu-seqlens-k @/cu_seqlens_k.npy --dropout 0.1 --seed 3")
for entry in "${cases[@]}"; do
    shape=${entry%%|*}
    case="$work/case-$(tr ' ,' 'x-' <<<"$shape")$(grep -o -- --sinks <<<"$entry")"
    python3 "$here/make_inputs.py" "$case/in" $shape
    read -ra flags <<<"${entry#*|}"
    flags=("${flags[@]//@/$case/in}")
    gradients=(dq dk dv)
    [[ " ${flags[*]} " == *" --sinks "* ]] && gradients+=(dsinks)
    outputs=(o lse lse_residual "${gradients[@]}")
    [[ " ${flags[*]} " == *" --save-dropout-mask "* ]] && outputs+=(dropout_mask)
    inputs=(--q "$case/in/q.npy" --k "$case/in/k.npy" --v "$case/in/v.npy" --causal "${flags[@]}")
    saved=(--o "$case/ref/o.npy" --lse "$case/ref/lse.npy" --lse-residual "$case/ref/lse_residual.npy" --do "$case/in/do.npy")
    "$bin" attention "${inputs[@]}" --do "$case/in/do.npy" --save-lse-residual --threads 2 --out "$case/ref"
    "$bin" backward "${inputs[@]}" "${saved[@]}" --out "$case/backward"
    result $? "backward without mpirun = threaded attention, ${shape// /,} ${flags[*]:+(options)}" "$(same "$case/ref" "$case/backward" "${gradients[@]}")"
    # hybrid runs as NP:U (U ranks per all-to-all group; 3 and 5 split the 2 kv heads' groups).
    for partition in heads sequence ring hybrid; do
        case $partition in ring) runs="1 2 3 4 5";; hybrid) runs="1:1 2:2 3:3 4:2 5:5";; *) runs="1 2 3 4";; esac
        for run in $runs; do
            np=${run%%:*}
            extra=(--partition $partition); [ $partition = hybrid ] && extra+=(--ulysses "${run#*:}")
            out="$case/$partition-${run/:/-}"
            why=$("${mpirun[@]}" -np $np "$bin" attention "${inputs[@]}" --do "$case/in/do.npy" --save-lse-residual "${extra[@]}" --out "$out/fwd" 2>&1 \
                  && same "$case/ref" "$out/fwd" "${outputs[@]}")
            result $? "attention, ${extra[*]}, $np ranks, ${shape// /,} ${flags[*]:+(options)}" "$why"
            why=$("${mpirun[@]}" -np $np "$bin" backward "${inputs[@]}" "${saved[@]}" "${extra[@]}" --out "$out/bwd" 2>&1 \
                  && same "$case/ref" "$out/bwd" "${gradients[@]}")
            result $? "backward, ${extra[*]}, $np ranks, ${shape// /,} ${flags[*]:+(options)}" "$why"
        done
    done
done

# Many key blocks: far more sums and gradients in flight than a rank lets run at once, so
# the ring's backward recycles its send buffers (a buffer freed before its send completed once
# corrupted dk here); causal, so the rows are zigzagged. About 20 s.
many="$work/many"
python3 "$here/make_inputs.py" "$many/in" 1 16384 16384 2 2 64
manyflags=(--q "$many/in/q.npy" --k "$many/in/k.npy" --v "$many/in/v.npy" --do "$many/in/do.npy" --causal)
"$bin" attention "${manyflags[@]}" --threads 2 --out "$many/ref"
why=$("${mpirun[@]}" -np 4 "$bin" attention "${manyflags[@]}" --threads 1 --partition ring --out "$many/ring" 2>&1 \
      && same "$many/ref" "$many/ring" o lse dq dk dv)
result $? "attention, --partition ring, 4 ranks, 64 key blocks of 256 keys, keys passed around the ring" "$why"
# The hybrid's ring over 3 groups of 2 passes keys around too.
why=$("${mpirun[@]}" -np 6 "$bin" attention "${manyflags[@]}" --threads 1 --partition hybrid --ulysses 2 --out "$many/hybrid" 2>&1 \
      && same "$many/ref" "$many/hybrid" o lse dq dk dv)
result $? "attention, --partition hybrid --ulysses 2, 6 ranks (a ring of 3 groups)" "$why"

# safetensors in and out with half-precision outputs: out.safetensors byte-for-byte the threaded
# run's, forward (bfloat16) and `flashdist backward` (float16), both partitions.
st="$work/safetensors"
python3 "$here/make_inputs.py" "$st/in" 2 50 40 6 2 16
stflags=(--input "$st/in/inputs.safetensors" --causal --softcap 5 --out-format safetensors)
"$bin" attention "${stflags[@]}" --out-dtype bfloat16 --threads 2 --out "$st/ref"
"$bin" attention --q "$st/in/q.npy" --k "$st/in/k.npy" --v "$st/in/v.npy" --causal --softcap 5 --out "$st/saved"
stsaved=(--o "$st/saved/o.npy" --lse "$st/saved/lse.npy")
"$bin" backward "${stflags[@]}" "${stsaved[@]}" --out-dtype float16 --out "$st/ref-bwd"
for partition in heads sequence ring hybrid; do
    for np in 2 3; do
        why=$("${mpirun[@]}" -np $np "$bin" attention "${stflags[@]}" --out-dtype bfloat16 --partition $partition --out "$st/$partition-$np" 2>&1 \
              && cmp "$st/ref/out.safetensors" "$st/$partition-$np/out.safetensors")
        result $? "safetensors in and out, bfloat16, $partition, $np ranks" "$why"
        why=$("${mpirun[@]}" -np $np "$bin" backward "${stflags[@]}" "${stsaved[@]}" --out-dtype float16 --partition $partition \
              --out "$st/bwd-$partition-$np" 2>&1 && cmp "$st/ref-bwd/out.safetensors" "$st/bwd-$partition-$np/out.safetensors")
        result $? "backward, safetensors, float16, $partition, $np ranks" "$why"
    done
done

# A small two-head problem for the run after the kill and the bad inputs.
h2="$work/h2"
python3 "$here/make_inputs.py" "$h2/in" 1 40 40 2 1 16

# A rank killed mid-run: once the run has created its new output set (before any compute, or
# DELAY seconds later, in the ring's compute and transfers), kill -9 one rank. mpirun must fail,
# DIR must hold nothing but that set's directory, and the next run in DIR must succeed and remove
# it (leaving its own set, the current one, alone).
big="$work/big"
python3 "$here/make_inputs.py" "$big/in" 1 8192 8192 4 4 64
small=(--q "$h2/in/q.npy" --k "$h2/in/k.npy" --v "$h2/in/v.npy")
# killed NAME DELAY OUT FLAGS...
killed() {
    local name=$1 delay=$2 out=$3; shift 3
    "${mpirun[@]}" -np 2 "$bin" attention --q "$big/in/q.npy" --k "$big/in/k.npy" --v "$big/in/v.npy" --do "$big/in/do.npy" \
        --threads 1 "$@" --out "$out" >"$out.log" 2>&1 &
    local job=$!
    for _ in $(seq 300); do compgen -G "$out/.flashdist-set-*" >/dev/null && break; sleep 0.1; done
    sleep "$delay"
    kill -9 "$(pgrep -P $job | tail -1)"
    wait $job
    local status=$?
    local leftovers=$(ls -A "$out" | grep -v '^\.flashdist-set-')
    result $(( status == 0 || ${#leftovers} > 0 )) "$name: mpirun fails, no output file" \
        "exit $status, left: ${leftovers:-nothing but the unfinished set}"
    "${mpirun[@]}" -np 2 "$bin" attention "${small[@]}" --out "$out" >/dev/null 2>&1
    status=$?
    result $(( status != 0 || $(ls -A "$out" | grep -c '^\.flashdist-set-') != 1 )) "run after the kill succeeds and cleans up" \
        "exit $status, directory holds: $(ls -A "$out" | tr '\n' ' ')"
}
killed "rank killed mid-run" 0 "$big/out"
killed "rank killed in the ring's compute" 1 "$big/ring" --partition ring

# Bad input under mpirun -np N: exactly one "flashdist: error:" line naming the problem, a
# non-zero exit within seconds, and nothing written.
# bad NAME NP FRAGMENT OUT ARGS...: runs flashdist ARGS on NP ranks, writing to OUT.
bad() {
    local name=$1 np=$2 fragment=$3 out=$4; shift 4
    local start=$SECONDS log status lines
    log=$(timeout 60 "${mpirun[@]}" -np "$np" "$bin" "$@" --out "$out" 2>&1 >/dev/null)
    status=$?
    lines=$(grep -c '^flashdist: error:' <<<"$log")
    local why="exit $status, $lines error lines, $((SECONDS - start)) s: $(grep '^flashdist: error:' <<<"$log" | head -2)"
    local ok=$(( status != 0 && status != 124 && lines == 1 && SECONDS - start < 30 ))
    grep '^flashdist: error:' <<<"$log" | grep -qF -- "$fragment" || ok=0
    if [ -e "$out" ] && [ ! -f "$out" ]; then ok=0; why+="; $out was created"; fi
    result $(( ! ok )) "bad input, $np ranks: $name" "$why"
}
bad "missing file" 2 "$h2/in/missing.npy" "$work/bad1" attention --q "$h2/in/missing.npy" --k "$h2/in/k.npy" --v "$h2/in/v.npy"
bad "more ranks than heads, --partition heads" 3 "--partition sequence" "$work/bad2" attention --q "$h2/in/q.npy" --k "$h2/in/k.npy" --v "$h2/in/v.npy" \
    --partition heads
# Without --partition, more ranks than kv heads take the ring partition: same bytes as threaded.
"$bin" attention "${small[@]}" --threads 2 --out "$work/h2-threaded" >/dev/null
why=$("${mpirun[@]}" -np 3 "$bin" attention "${small[@]}" --out "$work/h2-default" 2>&1 \
      && same "$work/h2-threaded" "$work/h2-default" o lse)
result $? "more ranks than kv heads, no --partition: the ring partition, same bytes" "$why"
bad "lse of the wrong shape" 2 "$h2/in/q.npy" "$work/bad3" backward --q "$h2/in/q.npy" --k "$h2/in/k.npy" --v "$h2/in/v.npy" \
    --o "$h2/in/q.npy" --lse "$h2/in/q.npy" --do "$h2/in/do.npy"
bad "--ulysses not dividing the ranks" 3 "--ulysses 2" "$work/bad4" attention --q "$h2/in/q.npy" --k "$h2/in/k.npy" --v "$h2/in/v.npy" \
    --partition hybrid --ulysses 2
touch "$work/a-file"
bad "output path is a file" 2 "$work/a-file" "$work/a-file" attention --q "$h2/in/q.npy" --k "$h2/in/k.npy" --v "$h2/in/v.npy" \
    --partition sequence

# One kernel configuration for all ranks: rank 1 forced to avx2 makes rank 0 (which would take
# its widest) run avx2 too; an instruction set rank 1 does not know is one error line from all.
tiny=(bench --seqlen-q 32 --heads 2 --warmup 0 --repeats 1)
log=$("${mpirun[@]}" -np 1 env -u FLASHDIST_ISA "$bin" "${tiny[@]}" : -np 1 env FLASHDIST_ISA=avx2 "$bin" "${tiny[@]}" 2>&1)
grep -q "avx2 kernels" <<<"$log"
result $? "rank 1 forced to avx2: every rank runs avx2" "$(head -2 <<<"$log")"
log=$(timeout 60 "${mpirun[@]}" -np 1 env -u FLASHDIST_ISA "$bin" "${tiny[@]}" : -np 1 env FLASHDIST_ISA=avx9 "$bin" "${tiny[@]}" 2>&1)
status=$?
result $(( status == 0 || status == 124 || $(grep -c "^flashdist: error: FLASHDIST_ISA: 'avx9'" <<<"$log") != 1 )) \
    "unknown FLASHDIST_ISA on rank 1: one error line, non-zero exit" "exit $status: $(head -2 <<<"$log")"


# Tiles: rank 0's for the instruction set all ranks agree on. A tuning file whose avx2 entry says
# rows of 16: rank 0 (its widest set) reading it and rank 1 forced to avx2 run rank 0's tuned
# tiles; the file on rank 1 only changes nothing. bench reports the configuration rank 0 shared.
tuning="$work/tuning.json"
FLASHDIST_TUNING=$tuning FLASHDIST_ISA=avx2 "$bin" tune --shape 32:16 --heads 1 --rounds 1 --threads 1 >/dev/null
python3 -c 'import json, sys; f = json.load(open(sys.argv[1])); f["entries"][0]["tiles"] = {"forward_rows": 16, "backward_rows": 16, "backward_keys": 16}; json.dump(f, open(sys.argv[1], "w"))' "$tuning"
log=$("${mpirun[@]}" -np 1 env -u FLASHDIST_ISA FLASHDIST_TUNING="$tuning" "$bin" "${tiny[@]}" \
      : -np 1 env FLASHDIST_ISA=avx2 FLASHDIST_TUNING=off "$bin" "${tiny[@]}" 2>&1)
grep -q "tiles (tuned): forward 16 rows × 64 keys, backward 16 rows × 16 keys" <<<"$log"
result $? "tuning file on rank 0, rank 1 forced to avx2: rank 0's tuned avx2 tiles" "$(grep -m1 'tiles' <<<"$log")"
log=$("${mpirun[@]}" -np 1 env FLASHDIST_TUNING=off "$bin" "${tiny[@]}" : -np 1 env FLASHDIST_TUNING="$tuning" "$bin" "${tiny[@]}" 2>&1)
grep -q "tiles (fitted)" <<<"$log"
result $? "tuning file on rank 1 only: fitted tiles" "$(grep -m1 'tiles' <<<"$log")"
why=$("${mpirun[@]}" -np 1 env FLASHDIST_TUNING="$tuning" FLASHDIST_ISA=avx2 "$bin" attention "${small[@]}" --partition ring --out "$work/h2-tuned" \
      : -np 1 env FLASHDIST_TUNING=off "$bin" attention "${small[@]}" --partition ring --out "$work/h2-tuned" 2>&1 \
      && same "$work/h2-threaded" "$work/h2-tuned" o lse)
result $? "ring with rank 0's tuned tiles: the threaded run's bytes" "$why"
log=$(timeout 60 "${mpirun[@]}" -np 2 env FLASHDIST_TUNING="$work/tuning-mpi.json" "$bin" tune --shape 32:16 2>&1)
status=$?
result $(( status == 0 || status == 124 || $(grep -c "^flashdist: error: flashdist tune runs without mpirun" <<<"$log") != 1 )) \
    "tune under mpirun: one error line, non-zero exit, no file" "exit $status: $(grep -m2 flashdist <<<"$log")"
[ ! -e "$work/tuning-mpi.json" ] || result 1 "tune under mpirun wrote no file" "$work/tuning-mpi.json exists"

summary
