#!/usr/bin/env python3
"""Scaling experiments, one command each, appending one row per configuration to a record file.

usage: python3 launch/sweep.py EXPERIMENT --record FILE [--resume] [options]

  threads  strong scaling over threads, 1 … all cores, one process, fixed shape
  ranks    strong and weak scaling over mpirun ranks (1 … cores by powers of two), both
           partitions; strong keeps the shape, weak gives every rank --heads-per-rank heads;
           --threads-per-rank fill gives each rank cores / ranks threads (experiment ranks-*-fill)
  seqlen   N = 512 … 65536 by doubling: time, GFLOP/s and peak RSS beside what a standard
           attention's N×N scores would need (computed from the shape, not run)
  torch    flashdist and PyTorch's CPU SDPA on the same shapes (needs .venv-torch, see
           launch/compare_torch.py --install-torch)

Every configuration runs as `flashdist bench --backward --record FILE --experiment EXPERIMENT`
(under mpirun for `ranks`), so each finished one is a row in FILE even if the sweep is stopped.
With --resume, configurations FILE already holds are skipped. `--dry-run` prints the commands.
"""
import argparse, json, os, subprocess, sys

import records

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORES = os.cpu_count() or 1
# What makes two rows the same configuration, for --resume.
KEY = ("experiment", "impl", "ranks", "threads", "partition", "batch", "heads", "seqlen_q", "head_dim", "causal")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("experiment", choices=["threads", "ranks", "seqlen", "torch"])
    ap.add_argument("--record", required=True, help="record file, .csv or .jsonl (appended to)")
    ap.add_argument("--resume", action="store_true", help="skip configurations FILE already holds")
    ap.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
    ap.add_argument("--flashdist", default=os.path.join(ROOT, ".build", "release", "flashdist"))
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--seqlen", type=int, default=8192, help="N for threads and ranks")
    ap.add_argument("--seqlens", help="N for seqlen (default 512,1024,…,65536) and torch (default 512,…,16384)")
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--causal", action="store_true")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs; above N = 8192 one run, no warm-up")
    ap.add_argument("--threads", default=None, help="thread counts for threads (default 1…cores); threads for seqlen/torch (default cores)")
    ap.add_argument("--ranks", default=None, help="rank counts (default 1, 2, 4 … up to cores)")
    ap.add_argument("--threads-per-rank", type=threads_per_rank, default=1, help="a number, or 'fill' for cores / ranks")
    ap.add_argument("--heads-per-rank", type=int, default=4, help="weak scaling: heads = this × ranks")
    ap.add_argument("--partitions", default="heads,sequence")
    ap.add_argument("--scaling", default="strong,weak")
    ap.add_argument("--hostfile", help="mpirun hostfile (default: this machine, --oversubscribe)")
    ap.add_argument("--mpirun-args", default="", help="more mpirun arguments, one string")
    a = ap.parse_args()

    if not a.dry_run and not os.path.exists(a.flashdist):
        sys.exit(f"sweep: {a.flashdist} is not built; run bash launch/setup.sh")
    done = set()
    if a.resume and os.path.exists(a.record):
        rows, messages = records.read(a.record)
        for message in messages:
            print(f"sweep: {message}", file=sys.stderr)
        done = {key_of(row) for row in rows}
    for config in CONFIGS[a.experiment](a):
        if key_of(config) in done:
            print(f"sweep: recorded already, skipped: {describe(config)}")
            continue
        run(a, config)


def threads_configs(a):
    counts = ints(a.threads) if a.threads else range(1, CORES + 1)
    return [shape(a, experiment="threads", threads=t, ranks=1, partition="none") for t in counts]


def ranks_configs(a):
    counts = ints(a.ranks) if a.ranks else [p for p in (1, 2, 4, 8, 16, 32, 64) if p <= CORES]
    configs = []
    for scaling in a.scaling.split(","):
        for partition in a.partitions.split(","):
            for p in counts:
                threads = max(1, CORES // p) if a.threads_per_rank == "fill" else a.threads_per_rank
                heads = a.heads_per_rank * p if scaling == "weak" else a.heads
                # Filling the cores compares splits of the same cores, not scaling: rows of their own.
                experiment = f"ranks-{scaling}" + ("-fill" if a.threads_per_rank == "fill" else "")
                configs.append(shape(a, experiment=experiment, threads=threads, ranks=p,
                                     partition=partition, heads=heads))
    return configs


def seqlen_configs(a, experiment="seqlen", longest=65536):
    threads = int(a.threads) if a.threads else CORES
    seqlens = ints(a.seqlens) if a.seqlens else [n for n in (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536) if n <= longest]
    return [shape(a, experiment=experiment, threads=threads, ranks=1, partition="none", seqlen_q=n) for n in seqlens]


def torch_configs(a):
    return [dict(c, impl=impl) for c in seqlen_configs(a, "torch", longest=16384) for impl in ("flashdist", "torch-sdpa")]


CONFIGS = dict(threads=threads_configs, ranks=ranks_configs, seqlen=seqlen_configs, torch=torch_configs)


def shape(a, **fields):
    config = dict(impl="flashdist", batch=a.batch, heads=a.heads, seqlen_q=a.seqlen, head_dim=a.head_dim,
                  causal=a.causal)
    config.update(fields)
    return config


def run(a, config):
    long = config["seqlen_q"] > 8192
    repeats = 1 if long else a.repeats
    common = ["--batch", config["batch"], "--heads", config["heads"], "--seqlen-q", config["seqlen_q"],
              "--head-dim", config["head_dim"], "--threads", config["threads"], "--repeats", repeats, "--backward"]
    common = [str(x) for x in common] + (["--causal"] if config["causal"] else [])
    if config["impl"] == "torch-sdpa":
        return run_torch(a, config, common, repeats)
    command = [a.flashdist, "bench"] + common + ["--warmup", str(0 if long else a.warmup), "--record", a.record,
                                                 "--experiment", config["experiment"]]
    if config["partition"] != "none":
        command = mpirun(a, config["ranks"]) + command + ["--partition", config["partition"]]
    print(f"sweep: {describe(config)}\n  {' '.join(command)}", flush=True)
    if not a.dry_run and subprocess.run(command).returncode != 0:
        sys.exit(f"sweep: failed: {' '.join(command)}")


def mpirun(a, ranks):
    command = ["mpirun", "-np", str(ranks), "--bind-to", "none"]
    command += ["--hostfile", a.hostfile] if a.hostfile else ["--oversubscribe"]
    if os.geteuid() == 0:
        command.append("--allow-run-as-root")
    return command + a.mpirun_args.split()


def run_torch(a, config, args, repeats):
    """torch_sdpa.py's JSON line as a record row beside flashdist's: same shape and threads, and
    the FMA peak flashdist measured for that row, so the shares of peak compare."""
    python = os.path.join(ROOT, ".venv-torch", "bin", "python")
    peer = os.path.join(ROOT, "..", "shared", "peers", "torch_sdpa.py")
    if not os.path.exists(python):
        sys.exit("sweep: no .venv-torch; create it with python3 launch/compare_torch.py --install-torch")
    print(f"sweep: {describe(config)}\n  {python} {peer} {' '.join(args)}", flush=True)
    if a.dry_run:
        return
    p = subprocess.run([python, peer] + args, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"sweep: torch_sdpa.py failed: {p.stderr.strip()[-400:]}")
    result = json.loads(p.stdout.strip().splitlines()[-1])
    ours = [r for r in records.read(a.record)[0] if key_of(r) == key_of(dict(config, impl="flashdist"))]
    mine = ours[-1] if ours else {}
    peak = mine.get("peak_gflops")
    row = {key: mine.get(key) for key in ("date", "version", "cpu", "cores", "hosts", "hostnames")}
    row.update({key: config[key] for key in ("experiment", "ranks", "threads", "partition", "batch", "heads",
                                              "seqlen_q", "head_dim", "causal")})
    row.update(impl="torch-sdpa", target_cpu=f"torch {result.get('version', '?')}", kv_heads=config["heads"],
               seqlen_k=config["seqlen_q"], window_left=-1, window_right=-1, warmup=1, repeats=repeats,
               peak_gflops=peak, scores_bytes=4 * config["batch"] * config["heads"] * config["seqlen_q"] ** 2)
    for phase in ("fwd", "bwd"):
        row[f"{phase}_s"], row[f"{phase}_gflops"] = result[f"{phase}_s"], result[f"{phase}_gflops"]
        row[f"{phase}_peak_fraction"] = result[f"{phase}_gflops"] / peak if peak else None
    records.append(a.record, row)
    print(f"  torch SDPA: fwd {result['fwd_gflops']:.1f} GFLOP/s, bwd {result['bwd_gflops']:.1f} GFLOP/s")


def key_of(row):
    return tuple(row.get(k) for k in KEY)


def describe(config):
    where = f"{config['threads']} threads" if config["partition"] == "none" else \
        f"{config['ranks']} ranks × {config['threads']} threads, {config['partition']} partition"
    return (f"{config['experiment']}: {config['impl']}, B={config['batch']} H={config['heads']} "
            f"N={config['seqlen_q']} D={config['head_dim']}{' causal' if config['causal'] else ''}, {where}")


def threads_per_rank(text):
    if text == "fill" or text.isdigit() and int(text) > 0:
        return text if text == "fill" else int(text)
    raise argparse.ArgumentTypeError(f"'{text}' is neither a positive number nor 'fill'")


def ints(text):
    return [int(x) for x in str(text).split(",")]


if __name__ == "__main__":
    main()
