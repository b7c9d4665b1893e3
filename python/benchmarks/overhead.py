"""The cost of calling flashdist from Python: flash_attn_func (torch float32 tensors, forward) and
its autograd backward, against `flashdist bench` on the same problem and thread count.

    python3 python/benchmarks/overhead.py --flashdist .build/release/flashdist   # N = 2048, B = 1, H = 8, D = 64

Rounds alternate the two so that a busy machine slows both alike; each reports the median of its
repeats, and the result is the median over rounds. Prints the times and the overhead in percent.
On a shared machine that ratio carries the load's noise; the fixed cost of a call (the same path on
a problem of one query and one key, where the kernel does next to nothing) does not, and is
printed beside it.
"""
import argparse
import json
import statistics
import subprocess
import time

import torch

import flashdist


def python_times(q, k, v, dout, repeats):
    """Median seconds of the forward and of the backward, after one untimed call of each."""
    forward, backward = [], []
    for i in range(repeats + 1):
        leaves = [x.clone().requires_grad_() for x in (q, k, v)]
        start = time.perf_counter()
        out = flashdist.flash_attn_func(*leaves)
        middle = time.perf_counter()
        out.backward(dout)
        end = time.perf_counter()
        if i:
            forward.append(middle - start)
            backward.append(end - middle)
    return statistics.median(forward), statistics.median(backward)


def fixed_cost(repeats=2000):
    """Median seconds of a forward and of a backward (forward + backward, less the forward) on a
    (1, 1, 1, 8) problem."""
    q = torch.randn(1, 1, 1, 8)
    forward, both = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        flashdist.flash_attn_func(q, q, q)
        forward.append(time.perf_counter() - start)
        leaf = q.clone().requires_grad_()
        start = time.perf_counter()
        flashdist.flash_attn_func(leaf, q, q).backward(q)
        both.append(time.perf_counter() - start)
    return statistics.median(forward), statistics.median(both) - statistics.median(forward)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flashdist", default=".build/release/flashdist")
    parser.add_argument("--seqlen", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--threads", type=int, default=flashdist.get_num_threads())
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    flashdist.set_num_threads(args.threads)
    shape = (args.batch, args.seqlen, args.heads, args.head_dim)
    q, k, v, dout = (torch.randn(shape) for _ in range(4))
    command = [args.flashdist, "bench", "--json", "--backward", "--batch", str(args.batch), "--heads", str(args.heads),
               "--seqlen-q", str(args.seqlen), "--head-dim", str(args.head_dim), "--threads", str(args.threads),
               "--repeats", str(args.repeats)]
    cli, python = [], []
    for _ in range(args.rounds):
        report = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        cli.append((report["fwd_s"], report["bwd_s"]))
        python.append(python_times(q, k, v, dout, args.repeats))
    print(f"N = {args.seqlen}, B = {args.batch}, H = {args.heads}, D = {args.head_dim}, threads = {args.threads}, "
          f"{args.rounds} rounds of {args.repeats} repeats (cpu: {report['cpu']}, target: {report['target_cpu']})")
    fixed = fixed_cost()
    print(f"fixed cost of a call: forward {fixed[0] * 1e6:.0f} µs, backward {fixed[1] * 1e6:.0f} µs")
    for index, name in enumerate(("forward", "backward")):
        ours = statistics.median(times[index] for times in python)
        theirs = statistics.median(times[index] for times in cli)
        print(f"{name:8}  flashdist bench {theirs * 1e3:8.1f} ms  python {ours * 1e3:8.1f} ms  "
              f"overhead {100 * (ours / theirs - 1):+.1f}%  (fixed cost {100 * fixed[index] / theirs:.2f}%)")


if __name__ == "__main__":
    main()
