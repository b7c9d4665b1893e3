#!/usr/bin/env python3
"""Time PyTorch's CPU scaled_dot_product_attention with v of its own head dim, for the rows of
launch/compare_torch.py that ../shared/peers/torch_sdpa.py (v shaped like k) cannot time.

usage: torch_sdpa_value_dim.py --heads H --seqlen-q N --head-dim D --head-dim-v DV [--causal]
                               [--threads T] [--repeats R] [--backward]
Prints one JSON line with the peer's keys. FLOPs: 2·B·H·N·N·(D + DV) forward (halved when
causal), 2.5× that backward, as flashdist counts them. torch's CPU flash kernel needs equal head
dims (torch 2.15), so SDPA runs its math backend here: S and P are materialised.
"""
import argparse, json, statistics, time

import torch
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--batch", type=int, default=1)
ap.add_argument("--heads", type=int, default=8)
ap.add_argument("--seqlen-q", type=int, default=2048)
ap.add_argument("--head-dim", type=int, default=192)
ap.add_argument("--head-dim-v", type=int, default=128)
ap.add_argument("--causal", action="store_true")
ap.add_argument("--threads", type=int, default=0)
ap.add_argument("--repeats", type=int, default=5)
ap.add_argument("--backward", action="store_true")
a = ap.parse_args()
if a.threads:
    torch.set_num_threads(a.threads)
B, H, N, D, DV = a.batch, a.heads, a.seqlen_q, a.head_dim, a.head_dim_v
q, k = (torch.randn(B, H, N, D, requires_grad=a.backward) for _ in range(2))
v = torch.randn(B, H, N, DV, requires_grad=a.backward)
do = torch.randn(B, H, N, DV)
fwd, bwd = [], []
for i in range(a.repeats + 1):
    t0 = time.perf_counter()
    o = F.scaled_dot_product_attention(q, k, v, is_causal=a.causal)
    t1 = time.perf_counter()
    if a.backward:
        o.backward(do)
        q.grad = k.grad = v.grad = None
    t2 = time.perf_counter()
    if i > 0:  # the first run is a warm-up
        fwd.append(t1 - t0)
        bwd.append(t2 - t1)
flops = 2.0 * B * H * N * N * (D + DV) * (0.5 if a.causal else 1.0)
res = dict(impl="torch-sdpa", version=torch.__version__, threads=torch.get_num_threads(), batch=B, heads=H,
           seqlen_q=N, seqlen_k=N, head_dim=D, head_dim_v=DV, causal=a.causal,
           fwd_s=statistics.median(fwd), fwd_gflops=flops / statistics.median(fwd) / 1e9)
if a.backward:
    res.update(bwd_s=statistics.median(bwd), bwd_gflops=2.5 * flops / statistics.median(bwd) / 1e9)
print(json.dumps(res))
