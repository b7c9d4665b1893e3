#!/usr/bin/env python3
"""Writes seeded random float32 q, k, v, do (flash-attn layout) into DIR as .npy files and as one
inputs.safetensors, ALiBi slopes (heads,) and attention sinks (heads,).

usage: make_inputs.py DIR BATCH SEQLEN_Q SEQLEN_K HEADS KV_HEADS HEAD_DIM [HEAD_DIM_V]
       make_inputs.py DIR varlen CU_SEQLENS_Q CU_SEQLENS_K HEADS KV_HEADS HEAD_DIM [HEAD_DIM_V]
The second form packs a variable-length batch: offsets as comma lists (e.g. 0,17,17,90), written
as int32 cu_seqlens_q.npy / cu_seqlens_k.npy, with q (total_q, H, D), k (total_k, Hkv, D).
v and do have the last axis HEAD_DIM_V (default HEAD_DIM).
"""
import json, os, sys
import numpy as np

out = sys.argv[1]
h, hkv, d = map(int, sys.argv[5:8])
dv = int(sys.argv[8]) if len(sys.argv) > 8 else d
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(2026)
if sys.argv[2] == "varlen":
    cu_q, cu_k = (np.array([int(x) for x in a.split(",")], dtype=np.int32) for a in sys.argv[3:5])
    np.save(os.path.join(out, "cu_seqlens_q.npy"), cu_q)
    np.save(os.path.join(out, "cu_seqlens_k.npy"), cu_k)
    rows_q, rows_k = (int(cu_q[-1]),), (int(cu_k[-1]),)
else:
    b, nq, nk = map(int, sys.argv[2:5])
    rows_q, rows_k = (b, nq), (b, nk)
tensors = {name: rng.standard_normal(shape, dtype=np.float32)
           for name, shape in (("q", rows_q + (h, d)), ("k", rows_k + (hkv, d)), ("v", rows_k + (hkv, dv)),
                               ("do", rows_q + (h, dv)))}
header, blobs, offset = {}, [], 0
for name, array in tensors.items():
    np.save(os.path.join(out, name + ".npy"), array)
    blobs.append(array.tobytes())
    header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(blobs[-1])]}
    offset += len(blobs[-1])
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
with open(os.path.join(out, "inputs.safetensors"), "wb") as f:
    f.write(len(text).to_bytes(8, "little") + text + b"".join(blobs))
np.save(os.path.join(out, "alibi_slopes.npy"), 2.0 ** (-8.0 * np.arange(1, h + 1, dtype=np.float32) / h))
# Sinks from their own generator, so the tensors above stay those of earlier runs; spread so that
# some heads' sinks dominate their rows and others barely count.
np.save(os.path.join(out, "sinks.npy"), (4 * np.random.default_rng(12).standard_normal(h)).astype(np.float32))
