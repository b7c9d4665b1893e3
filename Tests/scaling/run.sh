#!/usr/bin/env bash
# The scaling tools on tiny shapes (no timing is asserted): `bench --record` writing CSV and JSON
# lines, appending, refusing a CSV of another header; bench under mpirun -np 2 recording one row;
# launch/sweep.py --resume skipping recorded configurations; launch/plot.py writing SVG (matplotlib,
# text kept as text) with axes and legends from synthetic records, and one clear message per bad record file while the rest is
# still plotted; launch/profile_report.py naming only functions and files the kernels have. Ends
# with "N passed, M failed" and exits non-zero if any failed.
#
# usage: Tests/scaling/run.sh [FLASHDIST_BIN]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
launch="$here/../../launch"
bin=$(realpath "${1:-$here/../../.build/release/flashdist}")
mpirun=(mpirun --oversubscribe --bind-to none ${FLASHDIST_MPIRUN_FLAGS:-})
if [ "$(id -u)" = 0 ]; then mpirun+=(--allow-run-as-root); fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ -n "${KEEP_WORK:-}" ] && trap - EXIT && echo "work: $work"
. "$here/../results.sh"
tiny=(bench --seqlen-q 128 --heads 2 --head-dim 32 --warmup 0 --repeats 1)


# check NAME PYTHON-CODE: runs the code with records.py importable; any output is the failure.
check() {
    local why
    why=$(PYTHONPATH="$launch" python3 -c "$2" 2>&1)
    result $(( ${#why} > 0 )) "$1" "$why"
}

# Records: CSV and JSON lines, two runs appended, columns as launch/records.py knows them.
"$bin" "${tiny[@]}" --record "$work/r.csv" >/dev/null 2>"$work/stderr" && "$bin" "${tiny[@]}" --backward --record "$work/r.csv" >/dev/null
result $? "bench --record writes CSV"
result $(( $(wc -c <"$work/stderr") > 0 )) "bench is silent on stderr when it is not a terminal" "$(head -c 200 "$work/stderr")"
check "CSV: header of the known columns, two rows, backward columns empty then filled" "
import csv, records
rows = list(csv.reader(open('$work/r.csv')))
assert rows[0] == records.COLUMNS, f'header {rows[0]}'
assert len(rows) == 3, f'{len(rows) - 1} rows'
got, messages = records.read('$work/r.csv')
assert not messages, messages
assert got[0]['bwd_s'] is None and got[1]['bwd_s'] > 0 and got[1]['ranks'] == 1 and got[1]['partition'] == 'none'
assert got[1]['scores_bytes'] == 4 * 2 * 128 * 128 and got[1]['rank_rss_bytes'][0] > 0, got[1]"
"$bin" "${tiny[@]}" --record "$work/r.jsonl" >/dev/null && "$bin" "${tiny[@]}" --causal --record "$work/r.jsonl" >/dev/null
result $? "bench --record writes JSON lines"
check "JSONL: two objects with every column" "
import json, records
lines = open('$work/r.jsonl').read().splitlines()
assert len(lines) == 2, f'{len(lines)} lines'
for line in lines: assert list(json.loads(line)) == records.COLUMNS, line
assert json.loads(lines[1])['causal'] is True"

# refused NAME FRAGMENT ARGS...: flashdist fails with one error line holding FRAGMENT.
refused() {
    local name=$1 fragment=$2; shift 2
    local log status
    log=$("$@" 2>&1 >/dev/null)
    status=$?
    local lines=$(grep -c '^flashdist: error:' <<<"$log")
    result $(( status == 0 || lines != 1 )) "$name" "exit $status, $lines error lines: $(head -c 300 <<<"$log")"
    grep -q -- "$fragment" <<<"$log" || result 1 "$name: message names the problem" "$(head -c 300 <<<"$log")"
}
printf 'date,version,fwd_s\n2026-01-01,0.4.0,1.0\n' >"$work/old.csv"
cp "$work/old.csv" "$work/old-copy.csv"
refused "a CSV of another header is refused" "header differs" "$bin" "${tiny[@]}" --record "$work/old.csv"
cmp -s "$work/old.csv" "$work/old-copy.csv"
result $? "the refused CSV is left as it was"
refused "a record file neither .csv nor .jsonl is refused" ".csv or .jsonl" "$bin" "${tiny[@]}" --record "$work/r.txt"
refused "bench --verify under mpirun is refused" "without mpirun" "${mpirun[@]}" -np 2 "$bin" "${tiny[@]}" --verify
refused "bench --algorithm standard under mpirun is refused" "without mpirun" "${mpirun[@]}" -np 2 "$bin" "${tiny[@]}" --algorithm standard
refused "bench --algorithm standard with --block-q is refused" "--block-q" "$bin" "${tiny[@]}" --algorithm standard --block-q 32
refused "bench --algorithm standard that cannot fit is refused" "GiB available" "$bin" "${tiny[@]}" --algorithm standard --seqlen-q 1048576
refused "bench --block-q not a multiple of 16 is refused" "multiple of 16" "$bin" "${tiny[@]}" --block-q 24

# The standard algorithm and the tile override record their rows: impl flashdist-standard.
"$bin" "${tiny[@]}" --algorithm standard --backward --record "$work/standard.csv" >/dev/null &&
    "$bin" "${tiny[@]}" --block-q 16 --block-k 32 --backward --record "$work/standard.csv" >/dev/null
result $? "bench --algorithm standard and --block-q/--block-k run"
check "standard and flash rows carry their impl" "
import records
rows, messages = records.read('$work/standard.csv')
assert not messages and [r['impl'] for r in rows] == ['flashdist-standard', 'flashdist'], rows"

# A row cut short by a killed run stays a line of its own: the next row is whole.
head -c -20 "$work/r.csv" >"$work/cut.csv"
"$bin" "${tiny[@]}" --record "$work/cut.csv" >/dev/null
check "appending after a cut line keeps the new row whole" "
import records
rows, messages = records.read('$work/cut.csv')
assert len(rows) == 2 and len(messages) == 1 and 'line 3' in messages[0], (len(rows), messages)"

# Under mpirun: one row from rank 0 with ranks = 2 and every rank's detail, both partitions.
for partition in heads sequence; do
    "${mpirun[@]}" -np 2 "$bin" "${tiny[@]}" --backward --threads 1 --partition $partition --record "$work/mpi-$partition.csv" >/dev/null 2>&1
    result $? "bench under mpirun -np 2, $partition partition"
    check "mpirun -np 2, $partition: exactly one row, ranks = 2, two ranks of detail" "
import records
rows, messages = records.read('$work/mpi-$partition.csv')
assert not messages and len(rows) == 1, (messages, len(rows))
r = rows[0]
assert r['ranks'] == 2 and r['partition'] == '$partition' and r['hosts'] == 1, r
assert len(r['rank_fwd_s']) == 2 and len(r['rank_bwd_s']) == 2 and len(r['rank_sent_bytes']) == 2, r
assert r['fwd_s'] == max(r['rank_fwd_s']) or r['fwd_s'] >= min(r['rank_fwd_s']), r
assert ('$partition' == 'heads') == (r['comm_bytes'] == 0), r['comm_bytes']"
done

# launch/model.py counts the bytes the partitions send as --stats does: bench's comm_bytes (all
# ranks, per forward + backward) under mpirun equals the model's, for uneven splits and GQA. The
# ring deals whole blocks of keys as wide as the machine's tiles make them (64 to 256 keys):
# 512 and 768 keys split evenly over 2 and 3 ranks for any of those, as the model assumes.
for shape in "sequence 3 4 2 100" "sequence 2 6 3 77" "heads 3 6 2 64" "heads 2 4 1 50" "ring 2 4 2 512" \
             "ring 3 6 3 768"; do
    set -- $shape
    "${mpirun[@]}" -np $2 "$bin" bench --seqlen-q $5 --heads $3 --kv-heads $4 --head-dim 32 --warmup 0 --repeats 1 \
        --backward --threads 1 --partition $1 --record "$work/model-$1-$2-$3.csv" >/dev/null 2>&1
    check "model.py's bytes = bench's, $1 partition, np $2, H=$3 kv=$4 N=$5" "
import model, records
row = records.read('$work/model-$1-$2-$3.csv')[0][0]
if '$1' == 'sequence':
    forward, backward = model.sequence_bytes($2, 1, $5, $3, $4, 32, $2)
    predicted = sum(forward) + sum(backward)
elif '$1' == 'ring':
    forward, backward = model.ring_bytes($2, 1, $5, $3, $4, 32)
    predicted = sum(forward) + sum(backward)
else:
    a = model.Heads($3, $4, $2)
    predicted = sum(a.split_group_bytes(r, 1, $5, 32) for r in range($2))
assert row['comm_bytes'] == predicted, (row['comm_bytes'], predicted)"
done

# sweep --resume: a second run skips what the first recorded; without --resume it appends again.
sweep=(python3 "$launch/sweep.py" threads --threads 1 --seqlen 128 --heads 2 --head-dim 32 --repeats 1 --warmup 0
       --flashdist "$bin" --record "$work/sweep.csv")
"${sweep[@]}" >/dev/null 2>&1 && "${sweep[@]}" --resume >"$work/resumed" 2>&1
result $? "sweep runs, then runs again with --resume"
rows=$(( $(wc -l <"$work/sweep.csv") - 1 ))
result $(( rows != 1 )) "sweep --resume skips the recorded configuration" "$rows rows"
grep -q "recorded already, skipped" "$work/resumed"
result $? "sweep --resume says what it skipped" "$(cat "$work/resumed")"
"${sweep[@]}" >/dev/null 2>&1
result $(( $(wc -l <"$work/sweep.csv") - 1 != 2 )) "sweep without --resume appends again"

# plot: synthetic records of every experiment give four SVG files with axes and legends.
PYTHONPATH="$launch" python3 - "$work" <<'EOF'
import sys, records
work = sys.argv[1]
base = dict(date="2026-01-01T00:00:00Z", version="0.5.0", impl="flashdist", cpu="Test CPU", cores=4, hosts=1,
            batch=1, heads=8, kv_heads=8, seqlen_q=1024, seqlen_k=1024, head_dim=64, causal=False, peak_gflops=100.0,
            comm_bytes=0, comm_s=0.0, partition="none", ranks=1, threads=1)
def row(**fields):
    r = dict(base, **fields)
    r.setdefault("fwd_gflops", 4 * 8 * r["seqlen_q"] ** 2 * 64 / r["fwd_s"] / 1e9)
    r.setdefault("bwd_gflops", 2.5 * r["fwd_gflops"] * r["fwd_s"] / r["bwd_s"])
    return r
rows = [row(experiment="threads", threads=t, fwd_s=1.0 / t, bwd_s=2.4 / t) for t in (1, 2, 4)]
rows += [row(experiment="ranks-strong", partition=p, ranks=n, fwd_s=1.1 / n, bwd_s=2.5 / n, comm_s=0.05 * (n > 1))
         for p in ("heads", "sequence") for n in (1, 2, 4)]
rows += [row(experiment="ranks-weak", partition="sequence", ranks=n, heads=4 * n, fwd_s=1.0, bwd_s=2.5, comm_s=0.1)
         for n in (1, 2)]
for n in (512, 1024, 2048, 4096):
    t = (n / 1024) ** 2
    rows.append(row(experiment="seqlen", threads=4, seqlen_q=n, seqlen_k=n, fwd_s=0.1 * t, bwd_s=0.25 * t,
                    peak_rss_bytes=20_000_000 + 4000 * n, tensor_bytes=4 * 8 * n * 8 * 64 + 32 * n,
                    scores_bytes=4 * 8 * n * n))
    rows.append(row(experiment="torch", threads=4, seqlen_q=n, fwd_s=0.1 * t, bwd_s=0.25 * t))
    rows.append(row(experiment="torch", impl="torch-sdpa", threads=4, seqlen_q=n, fwd_s=0.2 * t, bwd_s=0.3 * t))
for r in rows:
    records.append(f"{work}/synthetic.csv", r)
EOF
python3 "$launch/plot.py" "$work/synthetic.csv" --out "$work/plots" >"$work/plot.log" 2>&1
result $? "plot writes the synthetic records' plots" "$(cat "$work/plot.log")"
check "plots are valid SVG with axis labels and legends" "
import xml.etree.ElementTree as ET
expected = {'scaling': ['cores used (ranks × threads per rank)', 'speed-up over the fewest cores', 'efficiency (%)', 'ideal',
                        'threads, one process', 'ranks × 1 thread, sequence partition', 'weak: 4 heads per rank, sequence partition'],
            'throughput': ['sequence length N (log scale)', 'GFLOP/s', 'flashdist forward', 'PyTorch SDPA backward', 'FMA peak (median of runs)'],
            'memory': ['bytes (log scale)', 'flashdist peak RSS (measured)', 'standard attention: tensors + N×N scores (computed)'],
            'comm': ['seconds per forward + backward', 'transfers (all-to-all)', 'compute']}
for name, texts in expected.items():
    root = ET.parse('$work/plots/' + name + '.svg').getroot()
    assert root.tag.endswith('svg'), name
    found = {''.join(t.itertext()) for t in root.iter('{http://www.w3.org/2000/svg}text')}
    missing = [t for t in texts if not any(f.startswith(t) for f in found)]
    assert not missing, f'{name}.svg lacks {missing}'
    assert sum(e.tag.endswith('path') for e in root.iter()) > 10, f'{name}.svg draws no lines'"

# plot: bad files beside a good one. Each problem is one line naming its file; the plots are written.
: >"$work/empty.csv"
head -c -30 "$work/synthetic.csv" >"$work/truncated.csv"
sed '1s/$/,mystery/; 2,$s/$/,1/' "$work/synthetic.csv" >"$work/unknown.csv"
printf '{"version": "0.4.0", "impl": "flashdist", "experiment": "threads", "threads": 1, "fwd_s": 2.0}\n{"version": "0.4' >"$work/old.jsonl"
printf 'not,a,record\n' >"$work/foreign.csv"
python3 "$launch/plot.py" "$work/synthetic.csv" "$work/empty.csv" "$work/truncated.csv" "$work/unknown.csv" "$work/old.jsonl" \
    "$work/missing.csv" --out "$work/mixed" >"$work/mixed.log" 2>&1
result $? "plot with bad files beside good ones succeeds" "$(cat "$work/mixed.log")"
for expect in "empty.csv: empty" "truncated.csv: line" "unknown.csv: unknown column mystery ignored" \
              "old.jsonl: line 2 is not a complete JSON object" "several flashdist versions: 0.4.0 (1 rows), 0.5.0" \
              "missing.csv: cannot be read"; do
    grep -qF -- "$expect" "$work/mixed.log"
    result $? "plot message: $expect" "$(cat "$work/mixed.log")"
done
result $(( $(ls "$work/mixed"/*.svg 2>/dev/null | wc -l) != 4 )) "plot still writes all four plots" "$(ls "$work/mixed")"
python3 "$launch/plot.py" "$work/empty.csv" "$work/foreign.csv" --out "$work/none" >"$work/none.log" 2>&1
status=$?
grep -q "nothing to plot" "$work/none.log"
result $(( status == 0 || $? != 0 )) "plot of nothing usable fails with a clear message" "exit $status: $(cat "$work/none.log")"

# launch/profile_report.py splits cachegrind's counts by the kernels' function and file names: each
# it names must still be one of theirs, or a rename would silently move its part into "other".
check "profile_report's parts name functions and files the kernels have" "
import glob, os, re, profile_report
sources = glob.glob('$here/../../Sources/FlashKernels/*.swift')
defined = {m for f in sources for m in re.findall(r'\\bfunc\\s+(\\w+)', open(f).read())}
files = {os.path.basename(f) for f in sources}
for part, functions, names in profile_report.PARTS:
    for name in sorted(functions - defined): print(part, 'names no function', name)
    for name in sorted(names - files): print(part, 'names no file', name)
"

summary
