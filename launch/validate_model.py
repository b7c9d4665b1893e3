"""`launch/model.py validate`: the model against runs on emulated nodes (launch/cluster.sh).

For each configuration: the per-core throughput is measured first, as the model takes it
(`flashdist bench` on one rank's share of the heads, one copy per node at once, so that every
core is busy as during the run); then the nodes come up
with the link bandwidth, `flashdist bench --partition …` runs across them over TCP, and the row
holds the measured time (the slowest rank's, fastest of two alternating rounds of calibration and
run), the predicted one, the bytes the
ranks sent against the model's, and the load average. Rows go to FILE.jsonl (resumable); at the
end a Markdown table (also FILE with .md) and model-validation.svg.

Two nodes of one thread each on this 2-core machine: each node has a core of its own.
"""
import json, os, subprocess, sys, tempfile, time

import model
import records

HERE = os.path.dirname(os.path.abspath(__file__))
NODES, CORES = 2, 1
# (partition, seqlen, heads, kv_heads, head_dim, causal), each at both bandwidths.
CONFIGS = [("sequence", 4096, 4, 4, 64, False), ("sequence", 8192, 4, 4, 64, True),
           ("heads", 4096, 4, 1, 64, False), ("heads", 8192, 4, 4, 64, True),
           ("ring", 4096, 4, 4, 64, False), ("ring", 8192, 4, 2, 64, False)]
BANDWIDTHS = (("100mbit", 100e6), ("1gbit", 1e9))
ROUNDS = 2
LATENCY = 100e-6  # veth, TCP and OpenMPI's progress between namespaces, per message (measured order)
# tc tbf limits the bytes of whole Ethernet frames; of a full 1514-byte frame TCP carries 1448 bytes of
# payload (20 IP + 32 TCP header with timestamps + 14 Ethernet), which is what the model's bytes count.
PAYLOAD_SHARE = 1448 / 1514


def run(a):
    done = set()
    if os.path.exists(a.record) and not a.fresh:
        done = {key(json.loads(line)) for line in open(a.record) if line.strip()}
    os.makedirs(os.path.dirname(os.path.abspath(a.record)), exist_ok=True)
    for rate_name, rate in BANDWIDTHS:
        todo = [c for c in CONFIGS if key(dict(zip(FIELDS, c), bandwidth=rate_name)) not in done]
        if not todo:
            print(f"validate: {rate_name}: recorded already, skipped")
            continue
        for config in todo:
            problem = dict(zip(FIELDS, config))
            # Other work on a shared machine only slows a run down: calibration and run alternate
            # ROUNDS times and the fastest of each phase is kept.
            shape = dict(batch=1, seqlen=problem["seqlen"], heads=problem["heads"], kv_heads=problem["kv_heads"],
                         head_dim=problem["head_dim"], causal=problem["causal"])
            # One rank's share (the busiest rank's heads and the kv heads they read) on CORES
            # threads, NODES copies at once so that every core is busy, as during the run.
            heads = model.Heads(shape["heads"], shape["kv_heads"], NODES)
            share = dict(problem, heads=len(heads.of(0)), kv_heads=len(heads.read(0)))
            calibration, measured = {}, {}
            for _ in range(ROUNDS):
                copies = bench_all(a, share, ["--threads", str(CORES)], NODES)
                fastest(calibration, dict(copies[0], fwd_s=max(c["fwd_s"] for c in copies),
                                          bwd_s=max(c["bwd_s"] for c in copies)))
                fastest(measured, bench(a, problem, ["bash", os.path.join(HERE, "cluster.sh"), "run", str(NODES),
                                                     "--bandwidth", rate_name, "--", "mpirun", "-np", str(NODES),
                                                     "--bind-to", "none"],
                                        ["--threads", "1", "--partition", problem["partition"]]))
            flops_f, flops_b = (f / 1e9 for f in model.flops(dict(shape, heads=share["heads"])))
            cluster = dict(nodes=NODES, cores=CORES, core_gflops_fwd=flops_f / calibration["fwd_s"] / CORES,
                           core_gflops_bwd=flops_b / calibration["bwd_s"] / CORES, bandwidth=rate * PAYLOAD_SHARE,
                           latency=LATENCY)
            predicted = model.predict(problem["partition"], shape, cluster)
            print(f"validate: {rate_name}, {describe(problem)}: predicted {predicted['fwd_s']:.3f} + {predicted['bwd_s']:.3f} s",
                  flush=True)
            row = dict(problem, bandwidth=rate_name, nodes=NODES, cores=CORES, load=model_load(),
                       core_gflops_fwd=cluster["core_gflops_fwd"], core_gflops_bwd=cluster["core_gflops_bwd"],
                       measured_fwd_s=measured["fwd_s"], measured_bwd_s=measured["bwd_s"],
                       measured_comm_s=measured["comm_s"], measured_bytes=measured["comm_bytes"],
                       predicted_fwd_s=predicted["fwd_s"], predicted_bwd_s=predicted["bwd_s"],
                       predicted_transfer_share=predicted["transfer_share"],
                       predicted_bytes=predicted_total_bytes(problem, shape), cpu=measured.get("cpu"),
                       target_cpu=measured.get("target_cpu"), date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            row["error"] = (row["predicted_fwd_s"] + row["predicted_bwd_s"]) / (row["measured_fwd_s"] + row["measured_bwd_s"]) - 1
            print(f"  measured {row['measured_fwd_s']:.3f} + {row['measured_bwd_s']:.3f} s: "
                  f"{100 * row['error']:+.1f}%; bytes {row['measured_bytes']} measured, {row['predicted_bytes']} model", flush=True)
            with open(a.record, "a") as f:
                f.write(json.dumps(row) + "\n")
    rows = [json.loads(line) for line in open(a.record) if line.strip()]
    table = markdown(rows)
    print(table)
    with open(os.path.splitext(a.record)[0] + ".md", "w") as f:
        f.write(table + "\n")
    plot(rows, a.out)


FIELDS = ("partition", "seqlen", "heads", "kv_heads", "head_dim", "causal")


def key(row):
    return tuple(row.get(k) for k in FIELDS + ("bandwidth",))


def fastest(best, row):
    """Keeps in `best` the fastest forward and backward seen (with the row's other columns)."""
    if not best:
        best.update(row)
    for phase in ("fwd", "bwd"):
        if row[f"{phase}_s"] < best[f"{phase}_s"]:
            best[f"{phase}_s"] = row[f"{phase}_s"]
    best["comm_s"] = min(best["comm_s"], row["comm_s"])


def describe(p):
    return (f"{p['partition']}, B=1 N={p['seqlen']} H={p['heads']} kv={p['kv_heads']} D={p['head_dim']}"
            + (" causal" if p["causal"] else ""))


def model_load():
    return float(open("/proc/loadavg").read().split()[0])


def predicted_total_bytes(problem, shape):
    """All ranks' bytes per forward + backward, as bench's comm_bytes sums them."""
    if problem["partition"] == "sequence":
        forward, backward = model.sequence_bytes(NODES, 1, shape["seqlen"], shape["heads"], shape["kv_heads"],
                                                 shape["head_dim"], NODES)
        return sum(forward) + sum(backward)
    if problem["partition"] == "ring":
        forward, backward = model.ring_bytes(NODES, 1, shape["seqlen"], shape["heads"], shape["kv_heads"], shape["head_dim"])
        return sum(forward) + sum(backward)
    a = model.Heads(shape["heads"], shape["kv_heads"], NODES)
    return sum(a.split_group_bytes(r, 1, shape["seqlen"], shape["head_dim"]) for r in range(NODES))


def bench_all(a, problem, extra, copies):
    """`copies` bench runs of `problem` at once (each one rank's share on its own cores)."""
    with tempfile.TemporaryDirectory() as work:
        paths = [os.path.join(work, f"{i}.jsonl") for i in range(copies)]
        running = [subprocess.Popen(command(a, problem, [], extra + ["--record", path]), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL) for path in paths]
        if any(p.wait() != 0 for p in running):
            sys.exit("validate: a calibration run failed")
        return [records.read(path)[0][-1] for path in paths]


def command(a, problem, prefix, extra):
    return prefix + [a.flashdist, "bench", "--backward", "--seqlen-q", str(problem["seqlen"]),
                     "--heads", str(problem["heads"]), "--kv-heads", str(problem["kv_heads"]),
                     "--head-dim", str(problem["head_dim"]), "--warmup", "1", "--repeats", str(a.repeats)] \
        + (["--causal"] if problem["causal"] else []) + extra


def bench(a, problem, prefix, extra):
    """One `flashdist bench --backward` row (5 timed runs, the median), under `prefix`."""
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "row.jsonl")
        run = command(a, problem, prefix, extra + ["--record", path])
        for attempt in (1, 2):
            p = subprocess.run(run, capture_output=True, text=True)
            if p.returncode == 0:
                break
            why = [line for line in p.stderr.splitlines() if "flashdist" in line or "error" in line.lower()][:5]
            print(f"validate: failed (attempt {attempt}): {' '.join(run)}\n  " + "\n  ".join(why), flush=True)
        else:
            sys.exit("validate: failed twice; stopped")
        rows, _ = records.read(path)
        return rows[-1]


def markdown(rows):
    lines = ["| partition | link | shape (B=1, D=64) | measured fwd + bwd | predicted | error | bytes sent (measured = model) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        same = "yes" if r["measured_bytes"] == r["predicted_bytes"] else f"no: {r['predicted_bytes']:,}"
        lines.append(f"| {r['partition']} | {r['bandwidth']} | N={r['seqlen']} H={r['heads']} kv={r['kv_heads']}"
                     f"{' causal' if r['causal'] else ''} | {r['measured_fwd_s']:.3f} + {r['measured_bwd_s']:.3f} s | "
                     f"{r['predicted_fwd_s']:.3f} + {r['predicted_bwd_s']:.3f} s | {100 * r['error']:+.1f}% | "
                     f"{r['measured_bytes']:,} ({same}) |")
    return "\n".join(lines)


def plot(rows, out):
    from plotting import plt, save
    os.makedirs(out, exist_ok=True)
    figure, panel = plt.subplots(figsize=(6.5, 5))
    figure.suptitle("Scaling model against emulated nodes", fontweight="bold")
    for i, (rate, _) in enumerate(BANDWIDTHS):
        for marker, partition in (("o", "sequence"), ("s", "heads"), ("^", "ring")):
            mine = [r for r in rows if r["bandwidth"] == rate and r["partition"] == partition]
            if mine:
                panel.scatter([r["measured_fwd_s"] + r["measured_bwd_s"] for r in mine],
                              [r["predicted_fwd_s"] + r["predicted_bwd_s"] for r in mine], marker=marker, color=f"C{i}",
                              label=f"{partition}, {rate}")
    top = max(max(r["measured_fwd_s"] + r["measured_bwd_s"], r["predicted_fwd_s"] + r["predicted_bwd_s"]) for r in rows) * 1.1
    panel.plot([0, top], [0, top], "--", color="#888", label="predicted = measured")
    panel.fill_between([0, top], [0, 0.85 * top], [0, 1.15 * top], color="#888", alpha=0.12, label="±15%")
    panel.set(xlabel="measured forward + backward (s)", ylabel="predicted forward + backward (s)", xlim=(0, top), ylim=(0, top))
    panel.legend()
    r = rows[0]
    save(figure, os.path.join(out, "model-validation.svg"),
         note=f"{r.get('cpu')}, {r.get('target_cpu')} build; {NODES} network namespaces × 1 thread, TCP, tc tbf (no added delay)")
    print(f"validate: wrote {os.path.join(out, 'model-validation.svg')}")
