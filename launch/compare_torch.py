#!/usr/bin/env python3
"""flashdist against PyTorch's CPU scaled_dot_product_attention, side by side in one run.

usage: python3 launch/compare_torch.py [--install-torch] [--threads T] [--rounds R] [--repeats N]
                                       [--shapes N:D[/DV][:causal],...] [--flashdist BIN] [--peers DIR]
                                       [--isa avx2|avx512] [--markdown]

For each shape (batch 1, 8 heads, fp32) it alternates the two programs `--rounds` times, each
timing forward and backward `--repeats` times after a warm-up, and reports the median over rounds
of each program's median: GFLOP/s by flash-attn's convention, the ratio flashdist / torch, and
flashdist's share of the FMA peak it measures itself (the highest of its runs: a busy machine
only slows the peak loop down). Alternating keeps a noisy, shared machine from favouring either
side.

--isa avx2 holds both programs to AVX2 + FMA, as on a CPU without AVX-512 (AMD Zen 3, Intel
client cores): flashdist through FLASHDIST_ISA, torch through ATEN_CPU_CAPABILITY (its own
kernels), MKL_ENABLE_INSTRUCTIONS and ONEDNN_MAX_CPU_ISA (the libraries it calls).

N:D/DV gives v a head dim of its own (`--shapes mla`: D = 192, DV = 128, DeepSeek's MLA); torch
is then timed by launch/torch_sdpa_value_dim.py, on SDPA's math backend (its CPU flash kernel
needs equal head dims).

torch lives in .venv-torch (about 3 GB); --install-torch creates it. Without torch the script
says so and stops.
"""
import argparse, json, os, statistics, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_PYTHON = os.path.join(ROOT, ".venv-torch", "bin", "python")
DEFAULT_SHAPES = ("1024:64,1024:64:causal,4096:64,4096:64:causal,2048:128,"
                  "16384:64,16384:64:causal,16384:128,16384:128:causal")
# What holds each program to an instruction set (see the docstring).
ISA_ENVIRONMENT = {
    "avx2": dict(FLASHDIST_ISA="avx2", ATEN_CPU_CAPABILITY="avx2", MKL_ENABLE_INSTRUCTIONS="AVX2", ONEDNN_MAX_CPU_ISA="AVX2"),
    "avx512": dict(FLASHDIST_ISA="avx512", ATEN_CPU_CAPABILITY="avx512", MKL_ENABLE_INSTRUCTIONS="AVX512",
                   ONEDNN_MAX_CPU_ISA="AVX512_CORE"),
}
# Named sets of shapes for --shapes, none of them in the default table.
NAMED_SHAPES = {"mla": "4096:192/128,4096:192/128:causal"}


def parse_shapes(text):
    shapes = []
    for item in NAMED_SHAPES.get(text, text).split(","):
        parts = item.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "causal"):
            sys.exit(f"compare_torch: bad shape '{item}' (expected N:D[/DV] or N:D[/DV]:causal)")
        d, _, dv = parts[1].partition("/")
        shapes.append((int(parts[0]), int(d), int(dv or d), len(parts) == 3))
    return shapes


def run_json(cmd, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"compare_torch: {' '.join(cmd[:3])} … failed: {(p.stderr or p.stdout).strip()[-400:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def shape_args(n, d, dv, causal, threads, repeats):
    args = ["--batch", "1", "--heads", "8", "--seqlen-q", str(n), "--head-dim", str(d),
            "--threads", str(threads), "--repeats", str(repeats), "--backward"]
    return args + (["--head-dim-v", str(dv)] if dv != d else []) + (["--causal"] if causal else [])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--install-torch", action="store_true", help="create .venv-torch with torch (about 3 GB)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shapes", default=DEFAULT_SHAPES, help=f"N:D[/DV][:causal],... or one of {', '.join(NAMED_SHAPES)}")
    ap.add_argument("--flashdist", default=os.path.join(ROOT, ".build", "release", "flashdist"))
    ap.add_argument("--peers", default=os.path.join(ROOT, "..", "shared", "peers"))
    ap.add_argument("--isa", choices=sorted(ISA_ENVIRONMENT), help="hold both programs to this instruction set")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    a = ap.parse_args()
    env = dict(os.environ, **ISA_ENVIRONMENT[a.isa]) if a.isa else None

    if a.install_torch and not os.path.exists(VENV_PYTHON):
        subprocess.run([sys.executable, "-m", "venv", os.path.join(ROOT, ".venv-torch")], check=True)
        subprocess.run([VENV_PYTHON, "-m", "pip", "install", "-q", "torch", "numpy"], check=True)
    if not os.path.exists(VENV_PYTHON):
        sys.exit("compare_torch: no .venv-torch; run with --install-torch (downloads about 3 GB)")
    if not os.path.exists(a.flashdist):
        sys.exit(f"compare_torch: {a.flashdist} not built; run bash launch/setup.sh")
    peer = os.path.join(a.peers, "torch_sdpa.py")
    value_dim_peer = os.path.join(ROOT, "launch", "torch_sdpa_value_dim.py")

    rows, peak = [], 0.0
    for n, d, dv, causal in parse_shapes(a.shapes):
        ours, theirs = [], []
        for _ in range(a.rounds):
            args = shape_args(n, d, dv, causal, a.threads, a.repeats)
            ours.append(run_json([a.flashdist, "bench", "--json"] + args, env))
            theirs.append(run_json([VENV_PYTHON, peer if dv == d else value_dim_peer] + args, env))
        med = lambda runs, key: statistics.median(r[key] for r in runs)
        peak = max([peak] + [r["peak_gflops"] for r in ours])
        row = dict(n=n, d=d if dv == d else f"{d}/{dv}", causal=causal, target_cpu=ours[-1].get("target_cpu", "?"))
        for phase in ("fwd", "bwd"):
            row[phase] = med(ours, f"{phase}_gflops")
            row[f"torch_{phase}"] = med(theirs, f"{phase}_gflops")
        rows.append(row)
        print(f"compare_torch: N={n} D={row['d']}{' causal' if causal else ''} done", file=sys.stderr, flush=True)
    for index, row in enumerate(rows):
        print_row(row, peak, a.markdown, first=index == 0)
    torch_version = theirs[-1].get("version", "?") if rows else "?"
    print(f"\n{a.threads} threads, batch 1, 8 heads, fp32; medians of {a.rounds} alternating rounds of "
          f"{a.repeats} timed runs; torch {torch_version}; flashdist's kernels for {rows[-1]['target_cpu'] if rows else '?'}"
          f"{', torch held to ' + a.isa if a.isa else ''}; FMA peak measured by flashdist ({peak:.0f} GFLOP/s, "
          f"the highest of its runs)")


def print_row(r, peak, markdown, first):
    cells = [str(r["n"]), str(r["d"]), "yes" if r["causal"] else "no"]
    for phase in ("fwd", "bwd"):
        cells += [f"{r[phase]:.1f}", f"{r['torch_' + phase]:.1f}", f"{r[phase] / r['torch_' + phase]:.2f}x",
                  f"{100 * r[phase] / peak:.0f}%"]
    header = ["N", "D", "causal", "fwd GFLOP/s", "torch fwd", "ratio", "% peak",
              "bwd GFLOP/s", "torch bwd", "ratio", "% peak"]
    if markdown:
        if first:
            print("| " + " | ".join(header) + " |")
            print("|" + "---|" * len(header))
        print("| " + " | ".join(cells) + " |")
    else:
        if first:
            print("  ".join(f"{h:>11}" for h in header))
        print("  ".join(f"{c:>11}" for c in cells))


if __name__ == "__main__":
    main()
