"""flashdist.h compiles as C and links against the library the package ships; a C caller gets
the Python path's results bit for bit and errors as codes with messages."""
import shutil
import subprocess
from pathlib import Path

import numpy as np
import torch

import flashdist
from flashdist import _native

HEADER_FOLDER = Path(__file__).resolve().parents[2] / "Sources" / "CFlashdist" / "include"


# Swift's toolchain brings clang, so a machine that built the library has a C compiler.
COMPILER = shutil.which("cc") or shutil.which("clang")


def test_c_caller(tmp_path):
    library = _native._library_path()
    program = tmp_path / "header_check"
    source = Path(__file__).with_name("header_check.c")
    subprocess.run([COMPILER, "-std=c99", "-Wall", "-Werror", "-I", str(HEADER_FOLDER), str(source), "-o", str(program),
                    str(library), f"-Wl,-rpath,{library.parent}"], check=True)
    lines = subprocess.run([str(program)], check=True, capture_output=True, text=True).stdout.splitlines()
    i = np.arange(40)
    q = torch.tensor((i % 7 - 3) * 0.25, dtype=torch.float32).reshape(1, 5, 2, 4).requires_grad_()
    k = torch.tensor((i[:20] * 3 % 5 - 2) * 0.5, dtype=torch.float32).reshape(1, 5, 1, 4).requires_grad_()
    v = k.detach().clone().requires_grad_()
    out = flashdist.flash_attn_func(q, k, v, causal=True)
    out.backward(q.detach())
    for line, tensor in zip(lines, (out, q.grad, k.grad, v.grad)):
        assert line == " ".join(f"{x:.9g}" for x in tensor.flatten().tolist())
    assert lines[4] == "heads (2) must be a multiple of kv heads (3)"
    # With sinks: o, lse and dsinks against float64 attention whose softmax has one more logit
    # per head, the sink, that meets no value; dsinks by autograd.
    q64, k64, v64 = (t.detach().double()[0] for t in (q, k, v))
    sinks = torch.tensor([0.5, -1.25], dtype=torch.float64, requires_grad=True)
    s = torch.einsum("ihd,jd->hij", q64, k64[:, 0]) / 2
    s = s.masked_fill(torch.ones(5, 5, dtype=torch.bool).triu(1), float("-inf"))
    logits = torch.cat([s, sinks[:, None, None].expand(2, 5, 1)], dim=2)
    lse = torch.logsumexp(logits, dim=2)
    o = torch.einsum("hij,jd->ihd", torch.exp(s - lse[..., None]), v64[:, 0])
    (o * q.detach().double()[0]).sum().backward()
    assert len(lines) == 8
    for line, expected in zip(lines[5:], (o, lse, sinks.grad)):
        got = np.array([float(x) for x in line.split()])
        assert np.abs(got - expected.detach().flatten().numpy()).max() < 1e-6
