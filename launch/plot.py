#!/usr/bin/env python3
"""Plots of flashdist bench records (launch/sweep.py's files), as SVG, with matplotlib.

usage: python3 launch/plot.py FILE... --out DIR

Writes what the records hold data for:
  scaling.svg     speed-up and parallel efficiency against ideal, over threads and over ranks
                  (experiments threads, ranks-strong, ranks-weak)
  throughput.svg  GFLOP/s and share of the FMA peak against N (seqlen), and flashdist beside
                  PyTorch SDPA (torch)
  memory.svg      peak RSS against N beside the tensors and what a standard attention's N×N
                  scores would add (seqlen)
  comm.svg        the share of time in transfers, sequence partition (ranks-*)

Where a configuration was recorded more than once, its fastest run is plotted. Problems in the
files (empty, truncated lines, unknown columns, several versions, rows a plot cannot use) are one
line each on stderr; everything readable is still plotted. Exits non-zero only when nothing could
be plotted.
"""
import argparse, os, statistics, sys

import records
from plotting import bytes_text, log2_axis, plt, save, size_text

PLOTTED_EXPERIMENTS = ("threads", "ranks-strong", "ranks-weak", "seqlen", "torch")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+", help="record files (.csv or .jsonl)")
    ap.add_argument("--out", required=True, help="directory for the SVG files (created if missing)")
    a = ap.parse_args()
    rows, messages = records.read_all(a.files)
    for message in messages:
        print(f"plot: {message}", file=sys.stderr)
    others = [r for r in rows if r.get("experiment") not in PLOTTED_EXPERIMENTS]
    if others:
        names = sorted({repr(r.get("experiment") or "") for r in others})
        print(f"plot: {len(others)} rows of experiment {', '.join(names)} are not plotted "
              f"(plotted: {', '.join(PLOTTED_EXPERIMENTS)})", file=sys.stderr)
    os.makedirs(a.out, exist_ok=True)
    written = 0
    for name, draw in (("scaling", scaling), ("throughput", throughput), ("memory", memory), ("comm", communication)):
        drawn = draw(rows)
        if drawn is None:
            print(f"plot: no usable rows for {name}.svg; not written", file=sys.stderr)
            continue
        path = os.path.join(a.out, f"{name}.svg")
        figure, note = drawn
        save(figure, path, note=note)
        print(f"plot: wrote {path}")
        written += 1
    if not written:
        sys.exit("plot: error: nothing to plot")


def usable(rows, experiment, needed, plot):
    """The rows of `experiment` that have every column in `needed`; one message for the others."""
    mine = [r for r in rows if r.get("experiment") == experiment]
    good = [r for r in mine if all(r.get(c) is not None for c in needed)]
    if len(good) < len(mine):
        missing = sorted({c for r in mine for c in needed if r.get(c) is None})
        print(f"plot: {len(mine) - len(good)} rows of experiment {experiment} lack {', '.join(missing)}; "
              f"left out of {plot}", file=sys.stderr)
    return good


def seconds(row):
    """Forward plus backward when the backward ran."""
    return row["fwd_s"] + (row.get("bwd_s") or 0)


def fastest(rows, key):
    """The fastest row of each configuration, by `key`: on a shared machine other work only ever
    slows a run down, so the best of repeated sweeps is the closest to what the code can do."""
    best = {}
    for row in rows:
        if key(row) not in best or seconds(row) < seconds(best[key(row)]):
            best[key(row)] = row
    return list(best.values())


def shape_text(row):
    return (f"B={row['batch']} H={row['heads']} N={row['seqlen_q']} D={row['head_dim']}"
            + (" causal" if row.get("causal") else ""))


def machine_text(rows):
    hosts = max(r.get("hosts") or 1 for r in rows)
    return f"{rows[0].get('cpu', '?')}, {rows[0].get('cores', '?')} cores" + (f", {hosts} hosts" if hosts > 1 else "")


def scaling(rows):
    needed = ("fwd_s", "threads", "ranks", "seqlen_q", "heads")
    strong = {"threads": "threads, one process", "ranks-strong": "ranks × {t} thread, {p} partition"}
    series = []
    for experiment in ("threads", "ranks-strong", "ranks-weak"):
        good = fastest(usable(rows, experiment, needed, "scaling.svg"),
                      lambda r: (r["partition"], r["threads"], r["ranks"], r["heads"], r["seqlen_q"]))
        for partition in sorted({r["partition"] for r in good}):
            points = sorted(((r["ranks"] * r["threads"], seconds(r), r) for r in good if r["partition"] == partition),
                            key=lambda p: p[0])
            if len(points) < 2:
                continue
            cores, time, first = points[0]
            weak = experiment == "ranks-weak"
            label = (strong.get(experiment, "weak: {h} heads per rank, {p} partition")
                     .format(t=first["threads"], p=partition, h=first["heads"] // first["ranks"]))
            speedup = [(c, cores * time / t) for c, t, _ in points]
            efficiency = [(c, 100 * (time / t if weak else cores * time / t / c)) for c, t, _ in points]
            series.append((label, weak, speedup, efficiency, first))
    if not series:
        return None
    used = [s[4] for s in series]
    top = max(c for s in series for c, _ in s[2])
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 5.2))
    figure.suptitle("Parallel scaling of forward + backward", fontweight="bold")
    strong_series = [s for s in series if not s[1]]
    left.set_title("Speed-up (strong scaling)")
    left.plot([1, top], [1, top], "--", color="#888", label="ideal")
    # The values go into the legend: at a handful of core counts the lines lie on top of each other.
    for label, _, speedup, _, _ in strong_series:
        left.plot(*zip(*speedup), "o-", label="{}: {:.2f}× on {} cores".format(label, max(speedup)[1], max(speedup)[0]))
    left.set(xlabel="cores used (ranks × threads per rank)", ylabel="speed-up over the fewest cores", ylim=(0, None))
    right.set_title("Parallel efficiency")
    right.plot([1, top], [100, 100], "--", color="#888", label="ideal (100%)")
    for label, weak, _, efficiency, _ in series:
        right.plot(*zip(*efficiency), "o" + (":" if weak else "-"),
                   label="{}: {:.0f}% on {} cores".format(label, max(efficiency)[1], max(efficiency)[0]))
    right.set(xlabel="cores used (ranks × threads per rank)", ylabel="efficiency (%)", ylim=(0, 120))
    for panel in (left, right):
        if top <= 16:
            panel.set_xticks(range(1, top + 1))
        # Legends below the panels: at a handful of core counts the lines fill the plot area.
        panel.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14))
    note = (f"{machine_text(used)}; strong scaling at {shape_text(next((s[4] for s in series if not s[1]), used[0]))}; "
            "weak: work per rank fixed")
    return figure, note


def throughput(rows):
    needed = ("fwd_s", "fwd_gflops", "seqlen_q", "peak_gflops")
    sweep = fastest(usable(rows, "seqlen", needed, "throughput.svg"), lambda r: r["seqlen_q"])
    versus = usable(rows, "torch", ("fwd_gflops", "seqlen_q"), "throughput.svg")
    if len(sweep) < 2 and len(versus) < 2:
        return None
    panels = [p for p in (sweep, versus) if p]
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.6), squeeze=False)
    figure.suptitle("Throughput against sequence length", fontweight="bold")
    axes = list(axes[0])
    if sweep:
        panel = axes.pop(0)
        peak = statistics.median(r["peak_gflops"] for r in sweep)
        panel.set_title(f"flashdist, {sweep[0]['threads']} threads, H={sweep[0]['heads']} D={sweep[0]['head_dim']}")
        panel.axhline(peak, ls="--", color="#888", label="FMA peak (median of runs)")
        draw_phases(panel, sweep, "flashdist")
        log2_axis(panel, "x", size_text)
        panel.set(xlabel="sequence length N (log scale)", ylabel="GFLOP/s", ylim=(0, None))
        share = panel.secondary_yaxis("right", functions=(lambda g: 100 * g / peak, lambda p: p * peak / 100))
        share.set_ylabel(f"% of measured FMA peak ({peak:.0f} GFLOP/s)")
        panel.legend(loc="lower right")
    if versus:
        panel = axes.pop(0)
        panel.set_title(f"flashdist vs PyTorch SDPA, {versus[0]['threads']} threads")
        for impl in ("flashdist", "torch-sdpa"):
            draw_phases(panel, fastest([r for r in versus if r.get("impl") == impl], lambda r: r["seqlen_q"]),
                        "PyTorch SDPA" if impl != "flashdist" else impl, "--" if impl != "flashdist" else "-")
        log2_axis(panel, "x", size_text)
        panel.set(xlabel="sequence length N (log scale)", ylabel="GFLOP/s", ylim=(0, None))
        panel.legend(loc="lower right")
    note = (f"{machine_text(sweep or versus)}; GFLOP/s counted as flash-attn does "
            "(forward 4·B·H·N²·D, backward 2.5× that), fp32")
    return figure, note


def draw_phases(panel, rows, name, style="-"):
    for phase in ("fwd", "bwd"):
        points = sorted((r["seqlen_q"], r[f"{phase}_gflops"]) for r in rows if r.get(f"{phase}_gflops"))
        if points:
            panel.plot(*zip(*points), "o" + style, label=f"{name} {'forward' if phase == 'fwd' else 'backward'}")


def memory(rows):
    good = fastest(usable(rows, "seqlen", ("seqlen_q", "peak_rss_bytes", "tensor_bytes", "scores_bytes"), "memory.svg"),
                  lambda r: r["seqlen_q"])
    if len(good) < 2:
        return None
    good.sort(key=lambda r: r["seqlen_q"])
    n = [r["seqlen_q"] for r in good]
    first = good[0]
    figure, panel = plt.subplots(figsize=(7, 4.8))
    figure.suptitle("Memory against sequence length", fontweight="bold")
    panel.plot(n, [r["tensor_bytes"] + r["scores_bytes"] for r in good], "o--",
               label="standard attention: tensors + N×N scores (computed)")
    panel.plot(n, [r["peak_rss_bytes"] for r in good], "o-", label="flashdist peak RSS (measured)")
    for r in good:
        panel.annotate(bytes_text(r["peak_rss_bytes"]), (r["seqlen_q"], r["peak_rss_bytes"]), fontsize=7,
                       xytext=(4, -10), textcoords="offset points")
    panel.plot(n, [r["tensor_bytes"] for r in good], ":", color="#888", label="q, k, v, o and gradients alone (computed)")
    log2_axis(panel, "x", size_text)
    log2_axis(panel, "y", bytes_text)
    panel.set(xlabel="sequence length N (log scale)", ylabel="bytes (log scale)")
    panel.legend(loc="upper left")
    note = f"{machine_text(good)}; B={first['batch']} H={first['heads']} D={first['head_dim']}, forward + backward, fp32"
    return figure, note


def communication(rows):
    good = []
    for experiment in ("ranks-strong", "ranks-weak"):
        good += fastest([r for r in usable(rows, experiment, ("fwd_s", "comm_s", "ranks"), "comm.svg")
                        if r.get("partition") == "sequence" and r["ranks"] > 1],
                       lambda r: (r["ranks"], r["threads"], r["heads"], r["seqlen_q"]))
    if not good:
        return None
    good.sort(key=lambda r: (r["experiment"], r["ranks"]))
    names = [f"{r['ranks']} ranks × {r['threads']} thr, H={r['heads']} N={r['seqlen_q']} ({r['experiment'][6:]})"
             for r in good]
    compute = [max(seconds(r) - r["comm_s"], 0) for r in good]
    transfers = [r["comm_s"] for r in good]
    figure, panel = plt.subplots(figsize=(8.5, 1.6 + 0.5 * len(good)))
    figure.suptitle("Sequence partition: time in transfers", fontweight="bold")
    panel.barh(names, compute, label="compute")
    panel.barh(names, transfers, left=compute, label="transfers (all-to-all)")
    for i, (c, t) in enumerate(zip(compute, transfers)):
        panel.text(c + t, i, f"  {100 * t / (c + t):.1f}% in transfers", va="center", fontsize=8)
    panel.set(xlabel="seconds per forward + backward", xlim=(0, max(c + t for c, t in zip(compute, transfers)) * 1.35))
    panel.invert_yaxis()
    panel.legend(loc="lower right")
    return figure, f"{machine_text(good)}; slowest rank's time in all-to-alls per forward + backward"


if __name__ == "__main__":
    main()
