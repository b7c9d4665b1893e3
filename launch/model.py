#!/usr/bin/env python3
"""A scaling model of flashdist on a cluster: forward, backward and total time, and the share spent
in transfers, for each partition (heads, sequence/Ulysses, ring, hybrid).

usage: python3 launch/model.py predict [cluster] [problem] [--partitions …]     one table
       python3 launch/model.py scaling --record FILE.csv [--out DIR] [cluster]  strong and weak
                                       scaling to 1,024 nodes for a 1M-token sequence, plot
       python3 launch/model.py validate --record FILE.jsonl [--out DIR]         runs on emulated
                                       nodes (launch/cluster.sh, root) against the model

The cluster: --nodes P (one rank per node, all its cores as threads), --cores, per-core GFLOP/s
of forward and backward as `flashdist bench --threads 1` measures them on the node type
(--core-gflops-fwd/-bwd, counted as flash-attn does: forward 4·B·H·N²·D, halved when causal,
backward 2.5×), link --bandwidth (bit/s, e.g. 100e9) and --latency (s) per message.

Compute: the slowest rank's share of the flops over its cores. heads and sequence give each rank
whole heads (GQA groups kept together where kv_heads ≥ P, as HeadAssignment does): with more
ranks than heads some ranks idle, so their time stops falling at P = H. ring splits the rows of
every head evenly (zigzag: causal work balanced). hybrid is Ulysses over groups of U ranks and a
ring over R = P/U, with U the divisor of P (≤ H) that predicts the least time.

Transfers (bytes per rank as `--stats` reports them, float32):
  heads     none, except dK/dV contributions of GQA groups split over ranks (P > kv_heads):
            2·B·N·D·4 per query head of the group held away from the writing rank
  sequence  all-to-alls (Reshard): forward q, k, v to heads and o back; backward dO to heads,
            dQ, dK, dV back; rank r sends its N/P rows of the heads other ranks own
            (for k, v: the kv heads they read, so kv heads are sent twice when P > kv_heads)
  ring      K/V blocks of 2·(N/P)·kv_heads·D·4 bytes per step, P−1 steps per pass (every
            rank's but the next one's own, passed on); the backward sends its own K/V to the others, the per-head dK/dV sums of every key block to the next
            rank in row order (2·N·H·D_p·4, D_p = D rounded up to 16; not from the last rank),
            and from the last rank each block's dK, dV to its owner (2·(N − N/P)·kv_heads·D·4).
            Forward: keys are visited in key order and passed from rank to rank, so rank r waits
            for rank 0's to cross r links before it computes; later blocks travel while earlier
            ones are computed (ring_forward_seconds replays that schedule). Backward: a pipeline, the longer of compute and the busiest
            link, plus its filling. (Without a mask; zigzag under causal masks hands sums on more
            often.)
  hybrid    sequence's all-to-alls within groups of U (on N/R rows), then the ring over R with
            the kv heads of the group's share (at least one).
Blocking transfers add to compute (heads, sequence); a collective of P ranks costs (P − 1)
latencies plus the bytes the busiest rank sends over the link bandwidth.
"""
import argparse, csv, json, math, os, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARTITIONS = ("heads", "sequence", "ring", "hybrid")
FLOAT = 4


def even(count, parts, part):
    """HeadAssignment's EvenSplit: the range of `part`."""
    return range(part * count // parts, (part + 1) * count // parts)


class Heads:
    """HeadAssignment: which query heads rank r owns, which kv heads it reads and writes."""

    def __init__(self, heads, kv_heads, ranks):
        self.heads, self.kv, self.ranks, self.group = heads, kv_heads, ranks, heads // kv_heads

    def of(self, r):
        if self.kv < self.ranks:
            return even(self.heads, self.ranks, r)
        groups = even(self.kv, self.ranks, r)
        return range(groups.start * self.group, groups.stop * self.group)

    def read(self, r):
        own = self.of(r)
        return range(own.start // self.group, (own.stop - 1) // self.group + 1) if own else range(0)

    def written(self, r):
        own = self.of(r)
        return range((own.start + self.group - 1) // self.group, (own.stop + self.group - 1) // self.group)

    def split_group_bytes(self, r, batch, n, d):
        """dK and dV contributions rank r sends for groups whose kv head another rank writes."""
        sent = 0
        for kv in self.read(r):
            group = range(kv * self.group, (kv + 1) * self.group)
            writer = next(w for w in range(self.ranks) if group.start in self.of(w))
            if writer != r:
                mine = len(set(self.of(r)) & set(group))
                sent += 2 * batch * n * mine * d * FLOAT
        return sent


def all_to_all_bytes(rows, heads_of, r, ranks, d, batch, to_heads):
    """Bytes rank r sends in one Reshard: to heads, its rows of every other rank's heads; back to
    the sequence, its heads of every other rank's rows."""
    if to_heads:
        return sum(batch * len(rows(r)) * len(heads_of(s)) * d * FLOAT for s in range(ranks) if s != r)
    return sum(batch * len(rows(s)) * len(heads_of(r)) * d * FLOAT for s in range(ranks) if s != r)


def sequence_bytes(p, batch, n, heads, kv_heads, d, ranks):
    """(forward, backward) bytes sent by the busiest rank, and the collectives per pass."""
    a = Heads(heads, kv_heads, ranks)
    rows = lambda r: even(n, ranks, r)
    forward, backward = [], []
    for r in range(ranks):
        f = (all_to_all_bytes(rows, a.of, r, ranks, d, batch, True) + all_to_all_bytes(rows, a.of, r, ranks, d, batch, False)
             + 2 * all_to_all_bytes(rows, a.read, r, ranks, d, batch, True))
        b = (all_to_all_bytes(rows, a.of, r, ranks, d, batch, True) + all_to_all_bytes(rows, a.of, r, ranks, d, batch, False)
             + 2 * all_to_all_bytes(rows, a.written, r, ranks, d, batch, False) + a.split_group_bytes(r, batch, n, d))
        forward.append(f)
        backward.append(b)
    return forward, backward


def flops(problem):
    b, n, h, d, causal = (problem[k] for k in ("batch", "seqlen", "heads", "head_dim", "causal"))
    forward = 4 * b * h * n * n * d * (0.5 if causal else 1)
    return forward, 2.5 * forward


def collective(bytes_sent, peers, cluster):
    return (peers * cluster["latency"] if peers else 0) + 8 * bytes_sent / cluster["bandwidth"]


def predict(partition, problem, cluster, ulysses=None):
    """dict(fwd_s, bwd_s, total_s, transfer_share, fwd_bytes, bwd_bytes, …) or None where the
    partition cannot run this problem on these nodes."""
    p, cores = cluster["nodes"], cluster["cores"]
    b, n, h, kv, d = (problem[k] for k in ("batch", "seqlen", "heads", "kv_heads", "head_dim"))
    f_flops, b_flops = flops(problem)
    speed_f, speed_b = cores * cluster["core_gflops_fwd"] * 1e9, cores * cluster["core_gflops_bwd"] * 1e9
    if partition in ("heads", "sequence"):
        if partition == "heads" and p > h:
            return None
        a = Heads(h, kv, p)
        busiest = max(len(a.of(r)) for r in range(p))
        compute_f, compute_b = f_flops * busiest / h / speed_f, b_flops * busiest / h / speed_b
        if partition == "heads":
            fwd_bytes, bwd_bytes = 0, max(a.split_group_bytes(r, b, n, d) for r in range(p))
            comm_f, comm_b = 0, collective(bwd_bytes, 1 if bwd_bytes else 0, cluster)
        else:
            forward, backward = sequence_bytes(p, b, n, h, kv, d, p)
            fwd_bytes, bwd_bytes = max(forward), max(backward)
            comm_f = collective(fwd_bytes, 4 * (p - 1), cluster) if p > 1 else 0
            comm_b = collective(bwd_bytes, 4 * (p - 1), cluster) if p > 1 else 0
        return result(partition, compute_f + comm_f, compute_b + comm_b, comm_f + comm_b, fwd_bytes, bwd_bytes)
    if partition == "ring":
        return ring(problem, cluster, p, h, kv, f_flops / p / speed_f, b_flops / p / speed_b, 0, 0, "ring")
    # hybrid: the best U (1 < U < P, U | P, U ≤ H) unless one is given.
    choices = [ulysses] if ulysses else [u for u in range(2, p) if p % u == 0 and u <= h]
    best = None
    for u in choices:
        r = p // u
        forward, backward = sequence_bytes(u, b, n // r, h, kv, d, u)
        busiest = max(len(Heads(h, kv, u).of(x)) for x in range(u))
        kv_share = max(len(Heads(h, kv, u).read(x)) for x in range(u))
        a2a_f = collective(max(forward), 4 * (u - 1), cluster)
        a2a_b = collective(max(backward), 4 * (u - 1), cluster)
        guess = ring(problem, cluster, r, busiest, kv_share, f_flops * busiest / h / r / speed_f, b_flops * busiest / h / r / speed_b,
                     a2a_f, a2a_b, f"hybrid U={u}", a2a_bytes=(max(forward), max(backward)))
        if best is None or guess["total_s"] < best["total_s"]:
            best = dict(guess, ulysses=u)
    return best


def ring_bytes(r, batch, n, heads, kv_heads, d, key_block=64):
    """(forward, backward) bytes each of R ring ranks sends, without a mask (the README's formulas,
    which `--stats` matches): in the forward keys and values, its own and those it passes on; in
    the backward its keys and values to the others,
    the per-head sums of every key block to the next rank (not from the last), and the last
    rank's final dK, dV of the blocks others own. Keys are dealt in whole blocks of `key_block`
    (the ring's block: a whole number of both passes' key blocks, 64 to 256 keys by the tiles)."""
    padded = -(-d // 16) * 16
    blocks = -(-n // key_block)
    keys = [min(n, b.stop * key_block) - min(n, b.start * key_block) for b in (even(blocks, r, x) for x in range(r))]
    # Its own keys straight to the R − 1 others (the backward; the forward with two ranks), or in
    # the forward of more, passed on around the ring: every rank's but the next one's own.
    own = [(r - 1) * 2 * batch * m * kv_heads * d * FLOAT for m in keys]
    forward = own if r <= 2 else [2 * batch * (sum(keys) - keys[(x + 1) % r]) * kv_heads * d * FLOAT for x in range(r)]
    backward = [f + (2 * batch * n * heads * padded * FLOAT if x < r - 1 else 2 * batch * (n - keys[x]) * kv_heads * d * FLOAT)
                for x, f in enumerate(own)] if r > 1 else [0]
    return forward, backward


def ring(problem, cluster, r, heads, kv_heads, compute_f, compute_b, a2a_f, a2a_b, name, a2a_bytes=(0, 0)):
    """The forward as `ring_forward_seconds` schedules it; the backward a pipeline (see
    `ring_backward_seconds`). `compute_f`/`compute_b`: one rank's compute."""
    b, n, d = problem["batch"], problem["seqlen"], problem["head_dim"]
    forward, backward = ring_bytes(r, b, n, heads, kv_heads, d)
    steps = max(r - 1, 1)
    send_f = collective(max(forward) / steps, 1, cluster)
    fwd = a2a_f + ring_forward_seconds(r, compute_f / r, send_f)
    bwd = a2a_b + ring_backward_seconds(r, problem, cluster, heads, kv_heads, compute_b, collective(max(backward), steps, cluster))
    exposed = fwd + bwd - compute_f - compute_b
    return result(name, fwd, bwd, max(0, exposed), a2a_bytes[0] + max(forward), a2a_bytes[1] + max(backward))


def ring_forward_seconds(ranks, step, send):
    """The forward as RingAttention runs it: each rank visits the keys of every rank in key order,
    rank 0's first (the online softmax's order, which keeps the bytes those of one process), its
    own at once and another's once it has arrived, `step` seconds of compute each. Keys pass from
    rank to rank around the ring (RingLayout.relaysKeys; with two ranks that is the same as
    sending them straight): the owner sends its own at once, any other rank hands a block on when
    it comes to it in key order, before computing on it, and each link carries its blocks one
    after the other in key order, `send` seconds each. So rank r waits for rank 0's keys to come through r − 1 links before it computes
    anything, and from then on blocks arrive as fast as the links or the compute allow. Returns
    the slowest rank's time."""
    if ranks == 1:
        return step
    clock, link_free = [0.0] * ranks, [0.0] * ranks  # link x carries x → x + 1
    for owner in range(ranks):
        handed = 0.0  # when the previous rank on the path hands the block on: its owner, at once
        for hop in range(1, ranks):
            x = (owner + hop) % ranks
            sender = (x - 1) % ranks
            arrival = max(handed, link_free[sender]) + send
            link_free[sender] = arrival
            # x hands it on (or computes on it) once it is done with the blocks before it.
            handed = max(clock[x], arrival)
            clock[x] = handed + step
        clock[owner] += step
    return max(clock)


def ring_backward_seconds(ranks, problem, cluster, heads, kv_heads, compute, link, key_block=64):
    """RingBackward is a pipeline over key blocks: a block's dK/dV sums pass from the rows of one
    rank to those of the next while every rank works on other blocks, so in steady state a rank is
    limited by its compute or by its link (`link`: the busiest rank's bytes), whichever is longer;
    filling the pipeline costs, per rank after the first, one item (a key block against a rank's
    rows) of compute and the transfer of its keys, values and sums."""
    if ranks == 1:
        return compute
    b, n, d = problem["batch"], problem["seqlen"], problem["head_dim"]
    blocks = -(-n // key_block)
    item_bytes = 2 * b * key_block * (kv_heads * d + heads * (-(-d // 16) * 16)) * FLOAT
    return max(compute, link) + (ranks - 1) * (compute / blocks + collective(item_bytes, 1, cluster))


def result(name, fwd, bwd, transfers, fwd_bytes, bwd_bytes):
    return dict(partition=name, fwd_s=fwd, bwd_s=bwd, total_s=fwd + bwd, transfer_share=transfers / (fwd + bwd),
                fwd_bytes=fwd_bytes, bwd_bytes=bwd_bytes)


def add_cluster(ap, nodes="1024"):
    ap.add_argument("--nodes", default=nodes, help="nodes P (comma list for predict)")
    ap.add_argument("--cores", type=int, default=64)
    ap.add_argument("--core-gflops-fwd", type=float, default=None, help="per core (default: measured here, see README)")
    ap.add_argument("--core-gflops-bwd", type=float, default=None)
    ap.add_argument("--bandwidth", type=float, default=100e9, help="bit/s per link")
    ap.add_argument("--latency", type=float, default=5e-6, help="seconds per message")


def add_problem(ap):
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seqlen", type=int, default=1 << 20)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--causal", action=argparse.BooleanOptionalAction, default=True)


# Per-core GFLOP/s measured by `flashdist bench` on this machine's cores (AMD EPYC, Zen 4, 1 MiB
# L2, haswell build: AVX2 + FMA) when it was quiet: B=1 H=8 N=16384 D=128 causal on 2 threads,
# 227.6 and 235.0 GFLOP/s forward and backward (README, "Speed against PyTorch"), halved.
MEASURED_CORE_GFLOPS = dict(fwd=113.8, bwd=117.5)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    one = sub.add_parser("predict", help="one table")
    add_cluster(one)
    add_problem(one)
    one.add_argument("--partitions", default=",".join(PARTITIONS))
    one.add_argument("--ulysses", type=int, help="hybrid: U (default: the best)")
    many = sub.add_parser("scaling", help="strong and weak scaling to --nodes, records and plot")
    add_cluster(many)
    add_problem(many)
    many.add_argument("--record", required=True)
    many.add_argument("--out", default=os.path.join(ROOT, "launch", "figures"))
    check = sub.add_parser("validate", help="emulated nodes against the model")
    check.add_argument("--record", required=True)
    check.add_argument("--out", default=os.path.join(ROOT, "launch", "figures"))
    check.add_argument("--flashdist", default=os.path.join(ROOT, ".build", "release", "flashdist"))
    check.add_argument("--repeats", type=int, default=3)
    check.add_argument("--fresh", action="store_true")
    a = ap.parse_args()
    if a.command == "validate":
        import validate_model
        return validate_model.run(a)
    cluster = cluster_of(a)
    problem = dict(batch=a.batch, seqlen=a.seqlen, heads=a.heads, kv_heads=a.kv_heads, head_dim=a.head_dim, causal=a.causal)
    if a.command == "predict":
        print(f"{'nodes':>6} {'partition':<14} {'fwd s':>10} {'bwd s':>10} {'total s':>10} {'transfers':>9} {'bytes/rank':>12}")
        for p in [int(x) for x in str(a.nodes).split(",")]:
            for partition in a.partitions.split(","):
                r = predict(partition, problem, dict(cluster, nodes=p), a.ulysses)
                if r:
                    print(f"{p:>6} {r['partition']:<14} {r['fwd_s']:>10.4g} {r['bwd_s']:>10.4g} {r['total_s']:>10.4g} "
                          f"{100 * r['transfer_share']:>8.1f}% {r['fwd_bytes'] + r['bwd_bytes']:>12.4g}")
                else:
                    why = "more nodes than heads" if partition == "heads" else "no U with 1 < U < P dividing P"
                    print(f"{p:>6} {partition:<14} cannot run: {why}")
        return
    scaling(a, cluster, problem)


def cluster_of(a):
    fwd, bwd = a.core_gflops_fwd or MEASURED_CORE_GFLOPS["fwd"], a.core_gflops_bwd or MEASURED_CORE_GFLOPS["bwd"]
    if not fwd or not bwd:
        sys.exit("model: error: give --core-gflops-fwd and --core-gflops-bwd (flashdist bench --threads 1 on the node type)")
    return dict(nodes=int(str(a.nodes).split(",")[-1]), cores=a.cores, core_gflops_fwd=fwd, core_gflops_bwd=bwd,
                bandwidth=a.bandwidth, latency=a.latency)


def scaling(a, cluster, problem):
    """Strong: N fixed, nodes 1 … P. Weak: N / nodes fixed at N / P (so the last point is the
    strong one); attention's work per node then grows with the nodes, as N² / P."""
    top = cluster["nodes"]
    counts = [1 << i for i in range(int(math.log2(top)) + 1)]
    rows = []
    for scaling_kind in ("strong", "weak"):
        for p in counts:
            shape = dict(problem, seqlen=problem["seqlen"] if scaling_kind == "strong" else problem["seqlen"] // top * p)
            for partition in PARTITIONS:
                r = predict(partition, shape, dict(cluster, nodes=p))
                if r:
                    rows.append(dict(r, scaling=scaling_kind, nodes=p, seqlen=shape["seqlen"], partition=partition,
                                     ulysses=r.get("ulysses", ""), cores=cluster["cores"],
                                     bandwidth=cluster["bandwidth"], latency=cluster["latency"],
                                     core_gflops_fwd=cluster["core_gflops_fwd"], core_gflops_bwd=cluster["core_gflops_bwd"]))
    os.makedirs(os.path.dirname(os.path.abspath(a.record)), exist_ok=True)
    with open(a.record, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"model: wrote {a.record}")
    for p in (top,):
        for partition in PARTITIONS:
            r = next((x for x in rows if x["scaling"] == "strong" and x["nodes"] == p and x["partition"] == partition), None)
            if r:
                print(f"model: strong, {p} nodes, {partition}{' U=' + str(r['ulysses']) if r['ulysses'] else ''}: "
                      f"fwd {r['fwd_s']:.4g} s, bwd {r['bwd_s']:.4g} s, total {r['total_s']:.4g} s, "
                      f"{100 * r['transfer_share']:.1f}% in transfers")
    # Ahead by more than 1%: below that the layouts tie (same compute, transfers hidden or tiny).
    crossover = next((p for p in counts if min(best(rows, p, x) for x in ("ring", "hybrid"))
                      < 0.99 * min(best(rows, p, x) for x in ("heads", "sequence"))), None)
    print(f"model: strong scaling, ring or hybrid more than 1% faster than heads and sequence from {crossover} nodes on")
    plot_scaling(rows, a.out, problem, cluster, crossover)


def best(rows, p, partition):
    r = next((x for x in rows if x["scaling"] == "strong" and x["nodes"] == p and x["partition"] == partition), None)
    return r["total_s"] if r else math.inf


def plot_scaling(rows, out, problem, cluster, crossover):
    from plotting import log2_axis, plt, save, size_text
    os.makedirs(out, exist_ok=True)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11.5, 4.8))
    figure.suptitle(f"Predicted scaling, causal attention over N = {size_text(problem['seqlen'])} tokens",
                    fontweight="bold")
    for panel, kind in ((left, "strong"), (right, "weak")):
        for i, partition in enumerate(PARTITIONS):
            mine = sorted((r for r in rows if r["scaling"] == kind and r["partition"] == partition), key=lambda r: r["nodes"])
            if mine:
                panel.plot([r["nodes"] for r in mine], [r["total_s"] for r in mine], "o-", ms=3, color=f"C{i}",
                           label=partition + (" (best U)" if partition == "hybrid" else ""))
        log2_axis(panel, "x", lambda v: f"{v:g}")
        panel.set_yscale("log")
        panel.set_xlabel("nodes (log scale)")
        panel.set_ylabel("forward + backward, seconds (log scale)")
        panel.legend()
    left.set_title(f"strong: N = {size_text(problem['seqlen'])} on every node count")
    if crossover:
        left.axvline(crossover, color="#888", ls=":")
        left.annotate(f"ring/hybrid ahead from {crossover} nodes", (crossover, left.get_ylim()[1]), fontsize=8,
                      xytext=(4, -12), textcoords="offset points")
    right.set_title(f"weak: N / nodes = {size_text(problem['seqlen'] // cluster['nodes'])} tokens per node")
    save(figure, os.path.join(out, "model-scaling.svg"),
         note=f"model: {cluster['cores']} cores per node at {cluster['core_gflops_fwd']:.1f} / {cluster['core_gflops_bwd']:.1f} "
              f"GFLOP/s per core (fwd / bwd, measured here), {cluster['bandwidth'] / 1e9:g} Gbit/s links, "
              f"{cluster['latency'] * 1e6:g} µs per message; H={problem['heads']} kv={problem['kv_heads']} D={problem['head_dim']}")
    print(f"model: wrote {os.path.join(out, 'model-scaling.svg')}")


if __name__ == "__main__":
    main()
