"""The shapes of q, k, v (and dout, out, lse) checked against each other and against cu_seqlens and
the ALiBi slopes and sinks, in the words of the CLI (Sources/flashdist/AttentionLayout.swift), and the
problem they make. The options themselves (window, softcap, dropout, scale, heads, head size) are
checked by the library when it receives the problem.
"""
import numpy as np

from . import _native


def shape_text(shape):
    """(2, 3) and (2,), as the CLI prints shapes."""
    return "(" + ", ".join(str(n) for n in shape) + (",)" if len(shape) == 1 else ")")


class Layout:
    """A checked problem: the ctypes struct for the library, the arrays its pointers point into
    (kept alive here), and the shapes of the outputs."""

    def __init__(self, q, k, v, cu_seqlens_q, cu_seqlens_k, *, dropout_p, softmax_scale, causal, window_size,
                 softcap, alibi_slopes, seed, sinks=None):
        """q, k, v are shapes; cu_seqlens_q/_k, alibi_slopes and sinks NumPy arrays or None."""
        if (cu_seqlens_q is None) != (cu_seqlens_k is None):
            raise ValueError("cu_seqlens_q and cu_seqlens_k go together: give both or neither")
        varlen = cu_seqlens_q is not None
        # A packed tensor is a fixed-length one without its batch axis.
        rank = 3 if varlen else 4
        layout_name = "packed (total, heads, head_dim)" if varlen else "(batch, seqlen, heads, head_dim)"
        for name, shape in (("q", q), ("k", k)):
            if len(shape) != rank:
                raise ValueError(f"{name}: shape {shape_text(shape)} is not {layout_name}")
        heads, head_dim = q[rank - 2], q[rank - 1]
        if not varlen and k[0] != q[0]:
            raise ValueError(f"k: shape {shape_text(k)} does not match q's batch {q[0]}")
        if k[rank - 1] != head_dim:
            raise ValueError(f"k: shape {shape_text(k)} does not match q's head dim {head_dim}")
        if len(v) != rank or tuple(v[:-1]) != tuple(k[:-1]):
            raise ValueError(f"v: shape {shape_text(v)} differs from k's {shape_text(k)} in more than the head dim")
        head_dim_v = v[rank - 1]
        kv_heads = k[rank - 2]
        if kv_heads < 1 or heads % kv_heads != 0:
            raise ValueError(f"k: {kv_heads} kv heads do not divide q's {heads} heads")
        if not 1 <= head_dim <= 256:
            raise ValueError(f"q: head dim {head_dim} is outside 1...256")
        if not 1 <= head_dim_v <= 256:
            raise ValueError(f"v: head dim {head_dim_v} is outside 1...256")
        if varlen:
            cu_seqlens_q = _offsets(cu_seqlens_q, rows=q[0], name="cu_seqlens_q", tensor="q")
            cu_seqlens_k = _offsets(cu_seqlens_k, rows=k[0], name="cu_seqlens_k", tensor="k")
            if len(cu_seqlens_q) != len(cu_seqlens_k):
                raise ValueError(f"cu_seqlens_k: {len(cu_seqlens_k) - 1} sequences, "
                                 f"but cu_seqlens_q has {len(cu_seqlens_q) - 1}")
        batch = len(cu_seqlens_q) - 1 if varlen else q[0]
        if alibi_slopes is not None:
            if alibi_slopes.shape not in ((heads,), (batch, heads)):
                raise ValueError(f"alibi_slopes: shape {shape_text(alibi_slopes.shape)} is neither (heads,) = "
                                 f"{shape_text((heads,))} nor (batch, heads) = {shape_text((batch, heads))}")
            alibi_slopes = np.ascontiguousarray(alibi_slopes, dtype=np.float32)
        if sinks is not None:
            if sinks.shape != (heads,):
                raise ValueError(f"sinks: shape {shape_text(sinks.shape)} is not (heads,) = {shape_text((heads,))}")
            sinks = np.ascontiguousarray(sinks, dtype=np.float32)
        left, right = _window(window_size)

        self.q_shape, self.k_shape, self.v_shape = tuple(q), tuple(k), tuple(v)
        self.is_varlen = varlen
        self.lse_shape = (heads, q[0]) if varlen else (batch, heads, q[1])
        self.mask_shape = None if varlen else (batch, heads, q[1], k[1])
        self._arrays = (cu_seqlens_q, cu_seqlens_k, alibi_slopes, sinks)
        self.has_sinks = sinks is not None
        self.problem = _native.Problem(
            batch=batch, seqlen_q=0 if varlen else q[1], seqlen_k=0 if varlen else k[1],
            heads=heads, kv_heads=kv_heads, head_dim=head_dim, head_dim_v=head_dim_v,
            cu_seqlens_q=cu_seqlens_q.ctypes.data if varlen else None,
            cu_seqlens_k=cu_seqlens_k.ctypes.data if varlen else None,
            alibi_slopes=None if alibi_slopes is None else alibi_slopes.ctypes.data,
            alibi_count=0 if alibi_slopes is None else alibi_slopes.size,
            window_left=left, window_right=right, dropout_seed=seed,
            softmax_scale=0.0 if softmax_scale is None else float(softmax_scale),
            use_softmax_scale=softmax_scale is not None, causal=bool(causal),
            softcap=float(softcap), dropout_p=float(dropout_p),
            sinks=None if sinks is None else sinks.ctypes.data, sinks_count=0 if sinks is None else sinks.size)

    # The outputs' shapes and the library calls; a rank's side of a distributed problem has its own.
    # out (and dout) is q's shape with v's head dim; dq, dk, dv are shaped like q, k, v.
    @property
    def out_shape(self):
        return self.q_shape[:-1] + self.v_shape[-1:]

    @property
    def query_gradient_shape(self):
        return self.q_shape

    @property
    def key_gradient_shape(self):
        return self.k_shape

    @property
    def value_gradient_shape(self):
        return self.v_shape

    def forward(self, q, k, v, out, lse, threads):
        """Each tensor a (pointer, element count) pair."""
        _native.forward(self.problem, q, k, v, out, lse, threads)

    def backward(self, q, k, v, out, lse, dout, dq, dk, dv, threads):
        _native.backward(self.problem, q, k, v, out, lse, dout, dq, dk, dv, threads)

    def sink_gradient(self, out, lse, dout, dsinks):
        _native.sink_gradient(self.problem, out, lse, dout, dsinks)

    def check_saved(self, out, lse, dout):
        """The shapes of a backward's extra tensors, as `flashdist backward` checks its files."""
        for name, shape in (("dout", dout), ("out", out)):
            if tuple(shape) != self.out_shape:
                raise ValueError(f"{name}: shape {shape_text(shape)} is not out's {shape_text(self.out_shape)} "
                                 "(q's with v's head dim)")
        if tuple(lse) != self.lse_shape:
            expected = "(heads, total_q)" if self.is_varlen else "(batch, heads, seqlen_q)"
            raise ValueError(f"softmax_lse: shape {shape_text(lse)} is not {expected} = {shape_text(self.lse_shape)}")


def _offsets(offsets, rows, name, tensor):
    """cu_seqlens as int32 (batch + 1,): start at 0, never decrease, end at the tensor's row count."""
    offsets = np.asarray(offsets)
    if offsets.dtype.kind not in "iu":
        raise TypeError(f"{name}: dtype {offsets.dtype} is not an integer type (int32)")
    if offsets.ndim != 1 or offsets.size < 2:
        raise ValueError(f"{name}: shape {shape_text(offsets.shape)} is not (batch + 1,) offsets")
    if offsets[0] != 0:
        raise ValueError(f"{name}: offsets must start at 0, got {offsets[0]}")
    drops = np.nonzero(offsets[1:] < offsets[:-1])[0]
    if drops.size:
        i = drops[0] + 1
        raise ValueError(f"{name}: offsets decrease at index {i} ({offsets[i - 1]} then {offsets[i]})")
    if offsets[-1] != rows:
        raise ValueError(f"{name}: offsets end at {offsets[-1]}, but {tensor} has {rows} rows")
    return np.ascontiguousarray(offsets, dtype=np.int32)


def _window(window_size):
    try:
        left, right = window_size
        return int(left), int(right)
    except (TypeError, ValueError):
        raise TypeError(f"window_size: expected (left, right), got {window_size!r}") from None
