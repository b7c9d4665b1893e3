#!/usr/bin/env python3
"""Plots of flashdist bench records (launch/sweep.py's files), as SVG.

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
from svg import PALETTE, Figure, nice_range

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
        figure = draw(rows)
        if figure is None:
            print(f"plot: no usable rows for {name}.svg; not written", file=sys.stderr)
            continue
        path = os.path.join(a.out, f"{name}.svg")
        figure.save(path)
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
    figure = Figure(1010, 590, "Parallel scaling of forward + backward",
                    note=f"{machine_text(used)}; strong scaling at {shape_text(next((s[4] for s in series if not s[1]), used[0]))}; "
                         "weak: work per rank fixed")
    ticks = [(c, str(c)) for c in range(1, top + 1)] if top <= 16 else None
    left = figure.panel(80, 60, 370, 300, "Speed-up (strong scaling)")
    strong_series = [s for s in series if not s[1]]
    ymax = max([top] + [y for s in strong_series for _, y in s[2]])
    left.axes((0.8, top + 0.2), (0, ymax * 1.1), "cores used (ranks × threads per rank)", "speed-up over the fewest cores",
              xticks=ticks, ytick_label=lambda v: f"{v:g}")
    left.line([(1, 1), (top, top)], "ideal", "#888", dash="6,4", markers=False)
    # The values go into the legend: at a handful of core counts the lines lie on top of each other.
    for i, (label, _, speedup, _, _) in enumerate(strong_series):
        left.line(speedup, "{}: {:.2f}× on {} cores".format(label, max(speedup)[1], max(speedup)[0]), PALETTE[i])
    # Legends below the panels: at a handful of core counts the lines fill the plot area.
    left.draw_legend(at=(40, 420))
    right = figure.panel(570, 60, 370, 300, "Parallel efficiency")
    right.axes((0.8, top + 0.2), (0, 120), "cores used (ranks × threads per rank)", "efficiency (%)",
               xticks=ticks, ytick_label=lambda v: f"{v:g}%")
    right.line([(1, 100), (top, 100)], "ideal (100%)", "#888", dash="6,4", markers=False)
    for i, (label, weak, _, efficiency, _) in enumerate(series):
        right.line(efficiency, "{}: {:.0f}% on {} cores".format(label, max(efficiency)[1], max(efficiency)[0]), PALETTE[i],
                   dash="3,3" if weak else None)
    right.draw_legend(at=(530, 420))
    return figure


def throughput(rows):
    needed = ("fwd_s", "fwd_gflops", "seqlen_q", "peak_gflops")
    sweep = fastest(usable(rows, "seqlen", needed, "throughput.svg"), lambda r: r["seqlen_q"])
    versus = usable(rows, "torch", ("fwd_gflops", "seqlen_q"), "throughput.svg")
    if len(sweep) < 2 and len(versus) < 2:
        return None
    figure = Figure(1060 if versus and sweep else 560, 470, "Throughput against sequence length",
                    note=f"{machine_text(sweep or versus)}; GFLOP/s counted as flash-attn does "
                         "(forward 4·B·H·N²·D, backward 2.5× that), fp32")
    x = 80
    if sweep:
        peak = statistics.median(r["peak_gflops"] for r in sweep)
        panel = figure.panel(x, 60, 370, 330, f"flashdist, {sweep[0]['threads']} threads, H={sweep[0]['heads']} D={sweep[0]['head_dim']}")
        values = [r[f"{p}_gflops"] for r in sweep for p in ("fwd", "bwd") if r.get(f"{p}_gflops")]
        ends = nice_range([r["seqlen_q"] for r in sweep], log=2)
        panel.axes(ends, (0, max(values + [peak]) * 1.1),
                   "sequence length N (log scale)", "GFLOP/s", xlog=2, xtick_label=size_text, ytick_label=lambda v: f"{v:g}")
        panel.right_axis(100 / peak, f"% of measured FMA peak ({peak:.0f} GFLOP/s)", lambda v: f"{v:g}%")
        panel.line([(ends[0], peak), (ends[1], peak)], "FMA peak (median of runs)", "#888", dash="6,4", markers=False)
        draw_phases(panel, sweep, "flashdist", 0)
        panel.draw_legend("bottom-right")
        x = 660
    if versus:
        panel = figure.panel(x, 60, 370, 330, f"flashdist vs PyTorch SDPA, {versus[0]['threads']} threads")
        values = [r[f"{p}_gflops"] for r in versus for p in ("fwd", "bwd") if r.get(f"{p}_gflops")]
        panel.axes(nice_range([r["seqlen_q"] for r in versus], log=2), (0, max(values) * 1.15),
                   "sequence length N (log scale)", "GFLOP/s", xlog=2, xtick_label=size_text, ytick_label=lambda v: f"{v:g}")
        for i, impl in enumerate(("flashdist", "torch-sdpa")):
            draw_phases(panel, fastest([r for r in versus if r.get("impl") == impl], lambda r: r["seqlen_q"]),
                        "PyTorch SDPA" if impl != "flashdist" else impl, 2 * i, dash="6,3" if i else None)
        panel.draw_legend("bottom-right")
    return figure


def draw_phases(panel, rows, name, color, dash=None):
    for i, phase in enumerate(("fwd", "bwd")):
        points = [(r["seqlen_q"], r[f"{phase}_gflops"]) for r in rows if r.get(f"{phase}_gflops")]
        if points:
            panel.line(points, f"{name} {'forward' if phase == 'fwd' else 'backward'}", PALETTE[color + i], dash=dash)


def memory(rows):
    good = fastest(usable(rows, "seqlen", ("seqlen_q", "peak_rss_bytes", "tensor_bytes", "scores_bytes"), "memory.svg"),
                  lambda r: r["seqlen_q"])
    if len(good) < 2:
        return None
    measured = [(r["seqlen_q"], r["peak_rss_bytes"]) for r in good]
    tensors = [(r["seqlen_q"], r["tensor_bytes"]) for r in good]
    standard = [(r["seqlen_q"], r["tensor_bytes"] + r["scores_bytes"]) for r in good]
    first = good[0]
    figure = Figure(660, 480, "Memory against sequence length",
                    note=f"{machine_text(good)}; B={first['batch']} H={first['heads']} D={first['head_dim']}, forward + backward, fp32")
    panel = figure.panel(95, 60, 480, 340, "")
    values = [y for _, y in measured + tensors + standard]
    panel.axes(nice_range([n for n, _ in measured], log=2), nice_range(values, log=2),
               "sequence length N (log scale)", "bytes (log scale)", xlog=2, ylog=2,
               xtick_label=size_text, ytick_label=bytes_text)
    panel.line(standard, "standard attention: tensors + N×N scores (computed)", PALETTE[1], dash="6,3")
    panel.line(measured, "flashdist peak RSS (measured)", PALETTE[0],
               labels=[bytes_text(y) for _, y in sorted(measured)])
    panel.line(tensors, "q, k, v, o and gradients alone (computed)", "#888", dash="2,3", markers=False)
    panel.draw_legend()
    return figure


def communication(rows):
    good = []
    for experiment in ("ranks-strong", "ranks-weak"):
        good += fastest([r for r in usable(rows, experiment, ("fwd_s", "comm_s", "ranks"), "comm.svg")
                        if r.get("partition") == "sequence" and r["ranks"] > 1],
                       lambda r: (r["ranks"], r["threads"], r["heads"], r["seqlen_q"]))
    if not good:
        return None
    good.sort(key=lambda r: (r["experiment"], r["ranks"]))
    groups = [(f"{r['ranks']} ranks × {r['threads']} thr, H={r['heads']} N={r['seqlen_q']} ({r['experiment'][6:]})",
               [max(seconds(r) - r["comm_s"], 0), r["comm_s"]]) for r in good]
    figure = Figure(820, 200 + 46 * len(groups), "Sequence partition: time in transfers",
                    note=f"{machine_text(good)}; slowest rank's time in all-to-alls per forward + backward")
    panel = figure.panel(290, 60, 440, 46 * len(groups), "")
    panel.axes((0, max(sum(v) for _, v in groups) * 1.3), (0, 1), "seconds per forward + backward", "",
               ytick_label=lambda v: "")
    panel.bars(groups, ["compute", "transfers (all-to-all)"], [PALETTE[0], PALETTE[3]],
               lambda v: f"{100 * v[1] / sum(v):.1f}% in transfers")
    panel.draw_legend(at=(290, 60 + 46 * len(groups) + 50))
    return figure


def size_text(n):
    n = round(n)
    return f"{n // 1024}K" if n >= 1024 and n % 1024 == 0 else str(n)


def bytes_text(b):
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if b >= size:
            return f"{b / size:.3g} {unit}"
    return f"{b:.0f} B"


if __name__ == "__main__":
    main()
