#!/usr/bin/env bash
# Forward + backward at Nq = Nk = 32768, H = 2, D = 64 must peak below twice the bytes of its
# tensors (q, k, v, o, dO, dq, dk, dv and lse): an N×N float32 score matrix alone would be 4 GiB
# per head. Memory, not time, is asserted.
set -euo pipefail
bin="${1:-.build/release/flashdist}"
n=32768 heads=2 dim=64
line=$("$bin" bench --seqlen-q $n --heads $heads --head-dim $dim --backward --warmup 0 --repeats 1 --json)
rss=$(sed -E 's/.*"peak_rss_bytes": ([0-9]+).*/\1/' <<<"$line")
tensors=$(( 8 * n * heads * dim * 4 + n * heads * 4 ))
echo "memory: N=$n H=$heads D=$dim peak RSS $((rss / 1048576)) MiB, tensors $((tensors / 1048576)) MiB," \
     "ratio $(awk "BEGIN { printf \"%.2f\", $rss / $tensors }"), N×N scores would be $((n * n * 4 / 1073741824)) GiB per head"
if (( rss >= 2 * tensors )); then
    echo "memory: FAIL peak RSS is not below 2x the tensor bytes" >&2
    exit 1
fi
