#!/usr/bin/env python3
"""Writes seeded random float32 q, k, v, do (flash-attn layout) into DIR.

usage: make_inputs.py DIR BATCH SEQLEN_Q SEQLEN_K HEADS KV_HEADS HEAD_DIM
"""
import os, sys
import numpy as np

out, (b, nq, nk, h, hkv, d) = sys.argv[1], map(int, sys.argv[2:8])
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(2026)
for name, shape in (("q", (b, nq, h, d)), ("k", (b, nk, hkv, d)), ("v", (b, nk, hkv, d)), ("do", (b, nq, h, d))):
    np.save(os.path.join(out, name + ".npy"), rng.standard_normal(shape, dtype=np.float32))
