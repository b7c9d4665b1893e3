#!/usr/bin/env python3
"""The memory-traffic experiment: why tiling, which loads blocks many times over, moves fewer bytes.

usage: python3 launch/traffic.py memory --record FILE.csv [--out DIR] [options]
       python3 launch/traffic.py cache --record FILE.jsonl [--out DIR] [options]
       python3 launch/traffic.py plot --memory FILE.csv --cache FILE.jsonl --out DIR

memory  time and peak RSS of `flashdist bench --backward`, flash against --algorithm standard
        (which stores every head's N×N probabilities), N = 512 … 32768 by doubling; standard
        stops where bench refuses it (it would not fit in the memory available). Rows go to
        FILE.csv as bench records (experiment "traffic"); plot: traffic-memory.svg.
cache   bytes moved from memory by the forward, simulated by valgrind's cachegrind (these VMs
        have no hardware cache counters): one thread, a last-level cache of --cache-kib KiB,
        the kernels' LL misses × 64 B (line fills; write-backs are not counted by cachegrind).
        The flash forward over tile rows --block-qs (keys --block-k), and standard beside it,
        at --seqlen; then both over --seqlens at the default tile. Each row is one JSON line
        with the IO model's prediction; plot: traffic-cache.svg.

Both skip configurations FILE holds already (resumable; --fresh starts over), print each one as
it starts, and write the plot at the end. Timing runs take the fastest of --repeats runs; the
load average (`uptime`) at each run is recorded beside it, as other work slows a shared machine.

The IO model (FlashAttention, Dao et al. 2022, Theorem 2), counted in bytes of float32:
  flash forward, row tiles of Br:  4·(N·d [Q] + N·d [O] + (N/Br)·2·N·d [K, V once per row tile])
                                   = Θ(N²·d²/M) when Br = Θ(M/d), as long as a tile fits in M
  standard forward:                4·(4·N² [write S; read S, write P; read P for P·V] + 4·N·d)
                                   = Θ(N·d + N²)
"""
import argparse, json, os, re, subprocess, sys, tempfile, time

import records

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLASHDIST = os.path.join(ROOT, ".build", "release", "flashdist")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("experiment", choices=["memory", "cache", "plot"])
    ap.add_argument("--record", help="record file (memory: .csv or .jsonl bench records; cache: .jsonl)")
    ap.add_argument("--memory", help="plot: the memory experiment's records")
    ap.add_argument("--cache", help="plot: the cache experiment's records")
    ap.add_argument("--out", default=os.path.join(ROOT, "launch", "figures"), help="directory for the SVG plots")
    ap.add_argument("--fresh", action="store_true", help="run every configuration even if FILE holds it")
    ap.add_argument("--flashdist", default=FLASHDIST)
    ap.add_argument("--heads", type=int, default=None, help="memory: 4; cache: 1")
    ap.add_argument("--head-dim", type=int, default=None, help="memory: 64; cache: 32")
    ap.add_argument("--seqlens", default=None, help="memory: 512,…,32768; cache: 512,1024,2048")
    ap.add_argument("--seqlen", type=int, default=2048, help="cache: N of the tile sweep")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="memory: threads per run")
    ap.add_argument("--repeats", type=int, default=3, help="memory: timed runs (one above N = 8192)")
    ap.add_argument("--block-qs", default="16,32,64,128,256,512", help="cache: tile rows swept")
    ap.add_argument("--block-k", type=int, default=64, help="cache: tile keys")
    ap.add_argument("--cache-kib", type=int, default=128, help="cache: simulated last-level cache (KiB)")
    a = ap.parse_args()
    if a.experiment == "plot":
        return plot(a.memory, a.cache, a.out)
    if not a.record:
        sys.exit(f"traffic: error: {a.experiment} needs --record FILE")
    if not os.path.exists(a.flashdist):
        sys.exit(f"traffic: error: {a.flashdist} is not built; run bash launch/setup.sh")
    os.makedirs(os.path.dirname(os.path.abspath(a.record)), exist_ok=True)
    if a.experiment == "memory":
        memory(a)
        plot(a.record, None, a.out)
    else:
        cache(a)
        plot(None, a.record, a.out)


def load():
    """The 1-minute load average, recorded beside each figure."""
    return float(open("/proc/loadavg").read().split()[0])


def memory(a):
    heads, dim = a.heads or 4, a.head_dim or 64
    seqlens = ints(a.seqlens) if a.seqlens else [512 << i for i in range(7)]
    done = set()
    if os.path.exists(a.record) and not a.fresh:
        rows, _ = records.read(a.record)
        done = {(r["impl"], r["seqlen_q"]) for r in rows if r.get("experiment") == "traffic"}
    standard_fits = True
    for n in seqlens:
        for algorithm, impl in (("flash", "flashdist"), ("standard", "flashdist-standard")):
            if algorithm == "standard" and not standard_fits:
                continue
            if (impl, n) in done:
                print(f"traffic: recorded already, skipped: {algorithm} N={n}")
                continue
            repeats = 1 if n > 8192 else a.repeats
            command = [a.flashdist, "bench", "--algorithm", algorithm, "--backward", "--heads", str(heads),
                       "--head-dim", str(dim), "--seqlen-q", str(n), "--threads", str(a.threads),
                       "--warmup", "0" if n > 8192 else "1", "--repeats", str(repeats),
                       "--record", a.record, "--experiment", "traffic"]
            print(f"traffic: {algorithm} B=1 H={heads} N={n} D={dim}, {a.threads} threads, load {load():.2f}\n  "
                  + " ".join(command), flush=True)
            p = subprocess.run(command, stderr=subprocess.PIPE, text=True)
            if p.returncode != 0:
                message = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"
                if algorithm == "standard" and "GiB available" in message:
                    print(f"traffic: standard stops here: {message}")
                    standard_fits = False
                    continue
                sys.exit(f"traffic: failed: {message}")


def cache(a):
    heads, dim = a.heads or 1, a.head_dim or 32
    done = set()
    if os.path.exists(a.record) and not a.fresh:
        done = {key(r) for r in read_jsonl(a.record)}
    configs = [dict(algorithm="flash", seqlen=a.seqlen, block_q=b, block_k=a.block_k) for b in ints(a.block_qs)]
    configs.append(dict(algorithm="standard", seqlen=a.seqlen, block_q=None, block_k=None))
    for n in ints(a.seqlens) if a.seqlens else [512, 1024, 2048]:
        configs += [dict(algorithm="flash", seqlen=n, block_q=64, block_k=a.block_k),
                    dict(algorithm="standard", seqlen=n, block_q=None, block_k=None)]
    for config in configs:
        config.update(heads=heads, head_dim=dim, cache_bytes=a.cache_kib * 1024)
        if key(config) in done:
            print(f"traffic: recorded already, skipped: {describe(config)}")
            continue
        done.add(key(config))
        start = time.time()
        print(f"traffic: cachegrind, {describe(config)} …", end="", flush=True)
        row = dict(config, **simulate(a.flashdist, config), **model(config))
        row.update(date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), cpu=cpu_name(), load=load(),
                   seconds=round(time.time() - start, 1))
        print(f" {row['kernel_bytes'] / 2**20:.2f} MiB from memory (model {row['model_bytes'] / 2**20:.2f} MiB), "
              f"{row['seconds']:.0f} s", flush=True)
        with open(a.record, "a") as f:
            f.write(json.dumps(row) + "\n")


def simulate(flashdist, config):
    """The forward of `config` under cachegrind: the LL misses of the kernels' functions (those of
    the FlashAttention module, whose mangled names start $s14FlashAttention) and of the whole run."""
    command = [flashdist, "bench", "--algorithm", config["algorithm"], "--heads", str(config["heads"]),
               "--head-dim", str(config["head_dim"]), "--seqlen-q", str(config["seqlen"]), "--threads", "1",
               "--warmup", "0", "--repeats", "1", "--peak-gflops", "1"]
    if config["block_q"]:
        command += ["--block-q", str(config["block_q"]), "--block-k", str(config["block_k"])]
    with tempfile.TemporaryDirectory() as work:
        out = os.path.join(work, "cachegrind.out")
        # L1 as this CPU's (32 KiB, 8-way); the last level is the "fast memory" M of the model.
        p = subprocess.run(["valgrind", "--tool=cachegrind", "--D1=32768,8,64", f"--LL={config['cache_bytes']},16,64",
                            f"--cachegrind-out-file={out}"] + command, capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"traffic: cachegrind failed: {p.stderr.strip()[-400:]}")
        kernel, total = parse_cachegrind(out)
    return dict(kernel_ll_misses=kernel, total_ll_misses=total, kernel_bytes=64 * kernel)


def parse_cachegrind(path):
    """(kernel, total) data LL misses, read + write, from a cachegrind.out file."""
    events, kernel, total, function = None, 0, 0, ""
    for line in open(path):
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith("fn="):
            function = line[3:].strip()
        elif line[:1].isdigit() and events:
            counts = line.split()[1:]
            misses = sum(int(counts[events.index(e)]) for e in ("DLmr", "DLmw") if events.index(e) < len(counts))
            total += misses
            if function.startswith("$s14FlashAttention"):
                kernel += misses
    return kernel, total


def model(config):
    """The IO model's bytes for the forward of `config` (see the docstring)."""
    n, d, h = config["seqlen"], config["head_dim"], config["heads"]
    if config["algorithm"] == "standard":
        floats = 4 * n * n + 4 * n * d
    else:
        floats = 2 * n * d + -(-n // config["block_q"]) * 2 * n * d
    return dict(model_bytes=4 * h * floats)


def tile_bytes(block_q, block_k, d):
    """What one forward tile keeps in cache: Qᵀ, Sᵀ, the V block and the output accumulator
    (Br·d + Br·Bc + Bc·d + Br·d floats); the IO model holds while this fits in M."""
    return 4 * (2 * block_q * d + block_q * block_k + block_k * d)


def key(row):
    return tuple(row.get(k) for k in ("algorithm", "seqlen", "block_q", "block_k", "heads", "head_dim", "cache_bytes"))


def describe(c):
    tile = f", tile {c['block_q']}×{c['block_k']}" if c["block_q"] else ""
    return f"{c['algorithm']} forward, H={c['heads']} N={c['seqlen']} D={c['head_dim']}{tile}, LL {c['cache_bytes'] // 1024} KiB"


def read_jsonl(path):
    rows = []
    for line in open(path):
        try:
            rows.append(json.loads(line))
        except ValueError:
            print(f"traffic: {path}: a line that is not JSON (an interrupted run?) skipped", file=sys.stderr)
    return rows


def cpu_name():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def ints(text):
    return [int(x) for x in text.split(",")]


def plot(memory_file, cache_file, out):
    from plotting import bytes_text, log2_axis, plt, save, size_text
    os.makedirs(out, exist_ok=True)
    if memory_file:
        rows, messages = records.read(memory_file)
        for message in messages:
            print(f"traffic: {message}", file=sys.stderr)
        rows = [r for r in rows if r.get("experiment") == "traffic" and r.get("bwd_s")]
        best = {}
        for r in rows:
            k = (r["impl"], r["seqlen_q"])
            if k not in best or r["fwd_s"] + r["bwd_s"] < best[k]["fwd_s"] + best[k]["bwd_s"]:
                best[k] = r
        figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6))
        figure.suptitle("Flash against standard attention: time and memory", fontweight="bold")
        largest = {}
        for impl, name, marker, color in (("flashdist", "flash (tiled)", "o", "C0"),
                                          ("flashdist-standard", "standard (stores N×N P)", "s", "C1")):
            mine = sorted((r for (i, _), r in best.items() if i == impl), key=lambda r: r["seqlen_q"])
            if not mine:
                continue
            n = [r["seqlen_q"] for r in mine]
            largest[impl] = mine[-1]
            left.plot(n, [r["fwd_s"] + r["bwd_s"] for r in mine], marker + "-", color=color, label=f"{name}, forward + backward")
            left.plot(n, [r["fwd_s"] for r in mine], marker + ":", color=color, alpha=0.6, label=f"{name}, forward")
            right.plot(n, [r["peak_rss_bytes"] for r in mine], marker + "-", color=color, label=f"{name}: peak RSS (measured)")
        if len(largest) == 2 and largest["flashdist"]["seqlen_q"] > largest["flashdist-standard"]["seqlen_q"]:
            r = largest["flashdist"]
            right.annotate(f"standard does not fit\nat N = {size_text(r['seqlen_q'])}", (r["seqlen_q"], r["peak_rss_bytes"]),
                           xytext=(-40, 40), textcoords="offset points", fontsize=8, color="C1",
                           arrowprops=dict(arrowstyle="->", color="C1"))
        for panel in (left, right):
            log2_axis(panel, "x", size_text)
            panel.set_xlabel("sequence length N (log scale)")
        log2_axis(left, "y", lambda s: f"{s:.3g} s")
        left.set(ylabel="seconds (fastest run, log scale)", title="time")
        log2_axis(right, "y", bytes_text)
        right.set(ylabel="bytes (log scale)", title="peak RSS")
        left.legend()
        right.legend()
        first = next(iter(best.values()), {})
        save(figure, os.path.join(out, "traffic-memory.svg"),
             note=f"{first.get('cpu', '?')}, {first.get('threads', '?')} threads, {first.get('target_cpu', '?')} build; "
                  f"B=1 H={first.get('heads')} D={first.get('head_dim')}, fp32")
        print(f"traffic: wrote {os.path.join(out, 'traffic-memory.svg')}")
    if cache_file:
        rows = read_jsonl(cache_file)
        if not rows:
            sys.exit("traffic: error: no cache records to plot")
        figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6))
        figure.suptitle("Bytes moved from memory by the forward (cachegrind)", fontweight="bold")
        # The tile sweep's N: the one with the most flash tile sizes.
        tiles = {}
        for r in rows:
            if r["algorithm"] == "flash":
                tiles.setdefault(r["seqlen"], set()).add(r["block_q"])
        n0 = max(tiles, key=lambda n: len(tiles[n]))
        sweep = sorted((r for r in rows if r["algorithm"] == "flash" and r["seqlen"] == n0), key=lambda r: r["block_q"])
        standard = [r for r in rows if r["algorithm"] == "standard" and r["seqlen"] == n0]
        if sweep:
            left.plot([r["block_q"] for r in sweep], [r["kernel_bytes"] for r in sweep], "o-", label="flash, simulated")
            left.plot([r["block_q"] for r in sweep], [r["model_bytes"] for r in sweep], ":", color="#888",
                      label="flash, IO model 4·(2Nd + (N/Br)·2Nd)")
            fits = [r["block_q"] for r in sweep if tile_bytes(r["block_q"], r["block_k"], r["head_dim"]) <= r["cache_bytes"]]
            if fits and max(fits) < sweep[-1]["block_q"]:
                left.axvline(max(fits) * 1.41, color="#888", ls="-.", lw=1, label="tile outgrows M (no longer fits)")
        for r in standard:
            left.axhline(r["kernel_bytes"], color="C1", ls="--", label="standard, simulated")
            left.axhline(r["model_bytes"], color="C1", ls=":", label="standard, IO model 4·(4N² + 4Nd)")
        log2_axis(left, "x", size_text)
        log2_axis(left, "y", bytes_text)
        left.set(xlabel="tile rows Br (--block-q, log scale)", ylabel="bytes from memory (log scale)",
                 title=f"against tile size, N={n0}")
        left.legend()
        for algorithm, style in (("flash", "o-"), ("standard", "s--")):
            mine = sorted((r for r in rows if r["algorithm"] == algorithm and (r["block_q"] in (None, 64))),
                          key=lambda r: r["seqlen"])
            if mine:
                right.plot([r["seqlen"] for r in mine], [r["kernel_bytes"] for r in mine], style, label=f"{algorithm}, simulated")
                right.plot([r["seqlen"] for r in mine], [r["model_bytes"] for r in mine], ":",
                           color="C0" if algorithm == "flash" else "C1", label=f"{algorithm}, IO model")
        log2_axis(right, "x", size_text)
        log2_axis(right, "y", bytes_text)
        right.set(xlabel="sequence length N (log scale)", ylabel="bytes from memory (log scale)",
                  title="against N (flash tile 64×64)")
        right.legend()
        r = rows[0]
        save(figure, os.path.join(out, "traffic-cache.svg"),
             note=f"cachegrind: D1 32 KiB, last level M = {r['cache_bytes'] // 1024} KiB, 64-B lines, 1 thread; "
                  f"H={r['heads']} D={r['head_dim']}, forward only, fp32; kernels' LL misses × 64 B")
        print(f"traffic: wrote {os.path.join(out, 'traffic-cache.svg')}")


if __name__ == "__main__":
    main()
