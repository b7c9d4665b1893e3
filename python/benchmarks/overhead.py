"""The cost of calling flashdist from Python: flash_attn_func (torch float32 tensors, forward) and
its autograd backward, against `flashdist bench` on the same problem and thread count.

    python3 python/benchmarks/overhead.py --flashdist .build/release/flashdist   # N = 2048, B = 1, H = 8, D = 64

Rounds alternate the two so that a busy machine slows both alike; each reports the median of its
repeats, and the result is the median over rounds. Prints the times and the overhead in percent.
On a shared machine that ratio carries the load's noise, so two more figures are printed beside it:
flash_attn_func against the library's own call on preallocated buffers, interleaved call by call in
this process; and the fixed cost of a call (the same path on a problem of one query and one key,
where the kernel does next to nothing) as a share of the bench time.
"""
import argparse
import json
import statistics
import subprocess
import time

import torch

import flashdist
from flashdist import _tensors
from flashdist._layout import Layout


def python_times(q, k, v, dout, repeats):
    """Median seconds of flash_attn_func's forward and autograd backward, and of the library's own
    calls on preallocated buffers (the C ABI through ctypes, nothing else) interleaved with them, after
    one untimed call of each."""
    layout = Layout(q.shape, k.shape, v.shape, None, None, dropout_p=0.0, softmax_scale=None, causal=False,
                    window_size=(-1, -1), softcap=0.0, alibi_slopes=None, seed=0)
    out, dq, dk, dv = (torch.empty_like(x) for x in (q, q, k, v))
    lse = torch.empty(layout.lse_shape)
    buffers = [_tensors.buffer(x) for x in (q, k, v, out, lse, dout, dq, dk, dv)]
    threads = flashdist.get_num_threads()
    times = {name: [] for name in ("forward", "backward", "library forward", "library backward")}
    for i in range(repeats + 1):
        leaves = [x.clone().requires_grad_() for x in (q, k, v)]
        start = time.perf_counter()
        result = flashdist.flash_attn_func(*leaves)
        middle = time.perf_counter()
        result.backward(dout)
        end = time.perf_counter()
        layout.forward(*buffers[:5], threads)
        library_middle = time.perf_counter()
        layout.backward(*buffers, threads)
        library_end = time.perf_counter()
        if i:
            for name, seconds in zip(times, (middle - start, end - middle, library_middle - end, library_end - library_middle)):
                times[name].append(seconds)
    return {name: statistics.median(values) for name, values in times.items()}


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
        cli.append({"forward": report["fwd_s"], "backward": report["bwd_s"]})
        python.append(python_times(q, k, v, dout, args.repeats))
    print(f"N = {args.seqlen}, B = {args.batch}, H = {args.heads}, D = {args.head_dim}, threads = {args.threads}, "
          f"{args.rounds} rounds of {args.repeats} repeats (cpu: {report['cpu']}, target: {report['target_cpu']})")
    fixed = fixed_cost()
    print(f"fixed cost of a call: forward {fixed[0] * 1e6:.0f} µs, backward {fixed[1] * 1e6:.0f} µs")
    for index, name in enumerate(("forward", "backward")):
        ours = statistics.median(times[name] for times in python)
        library = statistics.median(times["library " + name] for times in python)
        theirs = statistics.median(times[name] for times in cli)
        print(f"{name:8}  flashdist bench {theirs * 1e3:7.1f} ms  python {ours * 1e3:7.1f} ms "
              f"({100 * (ours / theirs - 1):+.1f}%)  library call in-process {library * 1e3:7.1f} ms "
              f"(python {100 * (ours / library - 1):+.1f}%)  fixed cost {100 * fixed[index] / theirs:.2f}%")


if __name__ == "__main__":
    main()
