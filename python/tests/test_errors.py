"""Bad input raises ValueError or TypeError with the CLI's wording; nothing crashes the interpreter."""
import numpy as np
import pytest
import torch

import flashdist
from flashdist import _native

q, k, v = torch.randn(2, 8, 4, 16), torch.randn(2, 8, 2, 16), torch.randn(2, 8, 2, 16)


@pytest.mark.parametrize("call, error, message", [
    (lambda: flashdist.flash_attn_func(q.double(), k.double(), v.double()), TypeError,
     "q: dtype float64 is not float32, float16 or bfloat16"),
    (lambda: flashdist.flash_attn_func(q, k.half(), v), TypeError, "k: dtype float16 differs from q's float32"),
    (lambda: flashdist.flash_attn_func(q.int(), k, v), TypeError, "q: dtype int32 is not"),
    (lambda: flashdist.flash_attn_func(q, k.numpy(), v), TypeError, "k: expected a torch.Tensor, as q is, got ndarray"),
    (lambda: flashdist.flash_attn_func([1.0], k, v), TypeError, "q: expected a torch.Tensor or a numpy.ndarray, got list"),
    # The meta device stands in for CUDA, which this machine lacks: any device but the CPU is refused.
    (lambda: flashdist.flash_attn_func(q.to("meta"), k, v), ValueError,
     "q: tensor on device meta; flashdist runs on the CPU"),
    (lambda: flashdist.flash_attn_func(q[0], k, v), ValueError, "q: shape (8, 4, 16) is not (batch, seqlen, heads, head_dim)"),
    (lambda: flashdist.flash_attn_func(q, k[:1], v[:1]), ValueError, "k: shape (1, 8, 2, 16) does not match q's batch 2"),
    (lambda: flashdist.flash_attn_func(q, k[..., :8], v[..., :8]), ValueError,
     "k: shape (2, 8, 2, 8) does not match q's head dim 16"),
    (lambda: flashdist.flash_attn_func(q, k, v[:, :4]), ValueError, "v: shape (2, 4, 2, 16) differs from k's (2, 8, 2, 16)"),
    (lambda: flashdist.flash_attn_func(q, k[:, :, :1].expand(2, 8, 3, 16), v[:, :, :1].expand(2, 8, 3, 16)), ValueError,
     "k: 3 kv heads do not divide q's 4 heads"),
    (lambda: flashdist.flash_attn_func(*(torch.zeros(1, 2, 1, 300) for _ in range(3))), ValueError,
     "q: head dim 300 is outside 1...256"),
    (lambda: flashdist.flash_attn_func(q, k, v, window_size=(-2, 0)), ValueError,
     "window sizes must be -1 (unbounded) or non-negative, got (-2, 0)"),
    (lambda: flashdist.flash_attn_func(q, k, v, window_size=3), TypeError, "window_size: expected (left, right), got 3"),
    (lambda: flashdist.flash_attn_func(q, k, v, softcap=-1.0), ValueError, "softcap must be 0 (off) or positive, got -1.0"),
    (lambda: flashdist.flash_attn_func(q, k, v, dropout_p=1.0), ValueError, "dropout probability must be in [0, 1), got 1.0"),
    (lambda: flashdist.flash_attn_func(q, k, v, softmax_scale=float("inf")), ValueError, "softmax scale must be finite, got inf"),
    (lambda: flashdist.flash_attn_func(q, k, v, alibi_slopes=torch.ones(3)), ValueError,
     "alibi_slopes: shape (3,) is neither (heads,) = (4,) nor (batch, heads) = (2, 4)"),
    (lambda: flashdist.flash_attn_func(q, k, v, alibi_slopes=torch.tensor([1.0, float("nan"), 1.0, 1.0])), ValueError,
     "ALiBi slopes must be finite"),
    (lambda: flashdist.flash_attn_func(q, k, v, sinks=torch.ones(2)), ValueError, "sinks: shape (2,) is not (heads,) = (4,)"),
    (lambda: flashdist.flash_attn_func(q, k, v, sinks=torch.tensor([0.0, float("inf"), 0.0, 0.0])), ValueError,
     "sinks must be finite"),
    (lambda: flashdist.flash_attn_func(q, k, v, dropout_p=0.1, seed=-1), ValueError, "seed: must be an integer in [0, 2^64), got -1"),
    (lambda: flashdist.flash_attn_varlen_func(q[0], k[0], v[0], torch.tensor([0, 3, 8]), None, 8, 8), ValueError,
     "cu_seqlens_q and cu_seqlens_k go together"),
    (lambda: flashdist.flash_attn_varlen_func(q[0], k[0], v[0], torch.tensor([1, 8]), torch.tensor([0, 8]), 8, 8),
     ValueError, "cu_seqlens_q: offsets must start at 0, got 1"),
    (lambda: flashdist.flash_attn_varlen_func(q[0], k[0], v[0], torch.tensor([0, 5, 3, 8]), torch.tensor([0, 2, 4, 8]), 8, 8),
     ValueError, "cu_seqlens_q: offsets decrease at index 2 (5 then 3)"),
    (lambda: flashdist.flash_attn_varlen_func(q[0], k[0], v[0], torch.tensor([0, 8]), torch.tensor([0, 7]), 8, 8),
     ValueError, "cu_seqlens_k: offsets end at 7, but k has 8 rows"),
    (lambda: flashdist.flash_attn_varlen_func(q[0], k[0], v[0], torch.tensor([0, 8]), torch.tensor([0, 4, 8]), 8, 8),
     ValueError, "cu_seqlens_k: 2 sequences, but cu_seqlens_q has 1"),
    (lambda: flashdist.flash_attn_varlen_func(q[0], k[0], v[0], torch.tensor([0.0, 8.0]), torch.tensor([0, 8]), 8, 8),
     TypeError, "cu_seqlens_q: dtype float32 is not an integer type (int32)"),
    (lambda: flashdist.backward(q, q, k, v, q, torch.zeros(2, 4, 7)), ValueError,
     "softmax_lse: shape (2, 4, 7) is not (batch, heads, seqlen_q) = (2, 4, 8)"),
    (lambda: flashdist.backward(q[:, :4], q, k, v, q, torch.zeros(2, 4, 8)), ValueError,
     "dout: shape (2, 4, 4, 16) is not out's (2, 8, 4, 16) (q's with v's head dim)"),
    (lambda: flashdist.backward(q, q, k, v[..., :8], q[..., :8], torch.zeros(2, 4, 8)), ValueError,
     "dout: shape (2, 8, 4, 16) is not out's (2, 8, 4, 8) (q's with v's head dim)"),
    (lambda: flashdist.flash_attn_func(q, k, torch.zeros(2, 8, 2, 300)), ValueError, "v: head dim 300 is outside 1...256"),
    (lambda: flashdist.flash_attn_func(q, k, v, partition="heads"), ValueError, "partition: 'heads' needs a process_group"),
    (lambda: flashdist.set_num_threads(0), ValueError, "threads must be at least 1, got 0"),
    (lambda: flashdist.set_num_threads(2.0), TypeError, "threads: expected an int, got float"),
])
def test_bad_input(call, error, message):
    with pytest.raises(error) as raised:
        call()
    assert str(raised.value).startswith(message)


def test_threads_from_environment(monkeypatch):
    monkeypatch.setenv("FLASHDIST_THREADS", "3")
    assert flashdist.get_num_threads() == 3
    flashdist.set_num_threads(1)
    assert flashdist.get_num_threads() == 1
    flashdist._threads._threads = None
    monkeypatch.setenv("FLASHDIST_THREADS", "0")
    with pytest.raises(ValueError, match="FLASHDIST_THREADS must be at least 1, got 0"):
        flashdist.flash_attn_func(q, k, v)
    monkeypatch.setenv("FLASHDIST_THREADS", "many")
    with pytest.raises(ValueError, match="FLASHDIST_THREADS: must be a whole number, got 'many'"):
        flashdist.get_num_threads()


def problem(**fields):
    return _native.Problem(**dict(dict(batch=1, seqlen_q=4, seqlen_k=4, heads=1, kv_heads=1, head_dim=8), **fields))


def test_library_checks_buffers():
    """The C ABI refuses wrong element counts, NULL buffers and bad thread counts with a message:
    it never reads past a caller's buffer nor traps."""
    a = np.zeros(32, dtype=np.float32)
    lse = np.zeros(4, dtype=np.float32)
    buffer = (a.ctypes.data, a.size)
    with pytest.raises(ValueError, match="^k: 31 elements, but the problem needs 32$"):
        _native.forward(problem(), buffer, (a.ctypes.data, 31), buffer, buffer, (lse.ctypes.data, 4), 1)
    with pytest.raises(ValueError, match=r"^o: no buffer \(NULL\)$"):
        _native.forward(problem(), buffer, buffer, buffer, (None, 32), (lse.ctypes.data, 4), 1)
    with pytest.raises(ValueError, match="^threads must be at least 1, got 0$"):
        _native.forward(problem(), buffer, buffer, buffer, buffer, (lse.ctypes.data, 4), 0)
    with pytest.raises(ValueError, match="^heads and kv heads must be at least 1, got 0 and 1$"):
        _native.forward(problem(heads=0), buffer, buffer, buffer, buffer, (lse.ctypes.data, 4), 1)
    with pytest.raises(ValueError, match="^batch must be at least 1, got 0$"):
        _native.forward(problem(batch=0), buffer, buffer, buffer, buffer, (lse.ctypes.data, 4), 1)
    with pytest.raises(ValueError, match="only for fixed-length batches with dropout above 0"):
        _native.dropout_mask(problem(), buffer)
    status = _native._library.flashdist_forward(None, *buffer, *buffer, *buffer, *buffer, lse.ctypes.data, 4, 1, None, 0)
    assert status == 2  # FLASHDIST_INVALID_BUFFER, and no message buffer to write to
