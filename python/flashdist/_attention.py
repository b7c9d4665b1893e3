"""flash-attn's functions on flashdist: the forward, the backward from the saved lse, and the
torch autograd Function that joins them."""
from . import _native, _tensors, _threads
from ._layout import Layout
from ._seeds import checked_seed, random_seed
from ._tensors import torch


def forward(layout, q, k, v):
    """out (float32, shaped like q with v's head dim) and lse of float32 C-order inputs."""
    out = _tensors.empty_like_float32(q, layout.out_shape)
    lse = _tensors.empty_like_float32(q, layout.lse_shape)
    layout.forward(*map(_tensors.buffer, (q, k, v, out, lse)), _threads.get_num_threads())
    return out, lse


def backward_float32(layout, q, k, v, out, lse, dout):
    """dq, dk, dv (float32) of float32 C-order tensors."""
    dq = _tensors.empty_like_float32(q, layout.query_gradient_shape)
    dk = _tensors.empty_like_float32(q, layout.key_gradient_shape)
    dv = _tensors.empty_like_float32(q, layout.value_gradient_shape)
    layout.backward(*map(_tensors.buffer, (q, k, v, out, lse, dout, dq, dk, dv)), _threads.get_num_threads())
    return dq, dk, dv


def sink_gradient(layout, out, lse, dout):
    """dsinks (float32, heads) from float32 C-order out, lse and dout."""
    dsinks = _tensors.empty_like_float32(out, (layout.problem.heads,))
    layout.sink_gradient(*map(_tensors.buffer, (out, lse, dout, dsinks)))
    return dsinks


def dropout_mask(layout, like):
    """The keep factors the forward applied, (batch, heads, seqlen_q, seqlen_k): 0, or 1/(1 − p)."""
    mask = _tensors.empty_like_float32(like, layout.mask_shape)
    _native.dropout_mask(layout.problem, _tensors.buffer(mask))
    return mask


if torch is not None:
    class FlashAttentionFunction(torch.autograd.Function):
        """out = attention(q, k, v) (with the sinks the layout holds; `sinks` is their tensor, for
        its gradient); the backward recomputes the probabilities from the saved lse. Saves q, k, v
        as given (no float32 copies held between forward and backward), and out and lse in float32."""

        @staticmethod
        def forward(ctx, q, k, v, sinks, layout):
            q32, k32, v32 = map(_tensors.as_float32, (q, k, v))
            out, lse = forward(layout, q32, k32, v32)
            ctx.layout, ctx.sinks_like = layout, sinks
            ctx.save_for_backward(q, k, v, out, lse)
            ctx.mark_non_differentiable(lse)
            return _tensors.cast_like(out, q), lse

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, dout, _dlse):
            q, k, v, out, lse = ctx.saved_tensors
            q32, k32, v32, dout32 = map(_tensors.as_float32, (q, k, v, dout))
            dq, dk, dv = backward_float32(ctx.layout, q32, k32, v32, out, lse, dout32)
            dsinks = None
            if ctx.sinks_like is not None:
                dsinks = _tensors.cast_like(sink_gradient(ctx.layout, out, lse, dout32), ctx.sinks_like)
            return _tensors.cast_like(dq, q), _tensors.cast_like(dk, k), _tensors.cast_like(dv, v), dsinks, None


def attention(q, k, v, cu_seqlens_q, cu_seqlens_k, *, dropout_p, softmax_scale, causal, window_size, softcap,
              alibi_slopes, return_attn_probs, seed, process_group, partition, sinks=None):
    """The body of flash_attn_func and flash_attn_varlen_func."""
    options = dict(dropout_p=dropout_p, softmax_scale=softmax_scale, causal=causal, window_size=window_size,
                   softcap=softcap, alibi_slopes=_tensors.as_numpy(alibi_slopes, "alibi_slopes"))
    if sinks is not None:
        if process_group is not None:
            raise ValueError("sinks: not with process_group (run `flashdist attention --sinks` under mpirun for dsinks across ranks)")
        options["sinks"] = _tensors.as_numpy(sinks, "sinks")
    if process_group is not None:
        from . import _distributed
        uses_torch, layout = _distributed.rank_layout(process_group, partition, q, k, v, cu_seqlens_q,
                                                      seed, **options)
    elif partition is not None:
        raise ValueError(f"partition: {partition!r} needs a process_group")
    else:
        uses_torch = _tensors.check_inputs(q=q, k=k, v=v)
        if seed is None:
            seed = random_seed(uses_torch) if dropout_p else 0
        layout = Layout(q.shape, k.shape, v.shape, _tensors.as_numpy(cu_seqlens_q, "cu_seqlens_q"),
                        _tensors.as_numpy(cu_seqlens_k, "cu_seqlens_k"), seed=checked_seed(seed), **options)
    if uses_torch:
        out, lse = FlashAttentionFunction.apply(q, k, v, sinks if _tensors.is_torch(sinks) else None, layout)
    else:
        out, lse = forward(layout, *map(_tensors.as_float32, (q, k, v)))
        out = _tensors.cast_like(out, q)
    if not return_attn_probs:
        return out
    mask = dropout_mask(layout, q) if dropout_p and layout.mask_shape else None
    return out, lse, mask


def backward(dout, q, k, v, out, softmax_lse, cu_seqlens_q=None, cu_seqlens_k=None, *, dropout_p=0.0,
             softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0, alibi_slopes=None, seed=0):
    """dq, dk, dv (in q's dtype) from a forward's out and softmax_lse, recomputing the attention:
    what `flashdist backward` does with files. With dropout, pass the forward's seed."""
    _tensors.check_inputs(q=q, k=k, v=v, out=out, dout=dout)
    layout = Layout(q.shape, k.shape, v.shape, _tensors.as_numpy(cu_seqlens_q, "cu_seqlens_q"),
                    _tensors.as_numpy(cu_seqlens_k, "cu_seqlens_k"), dropout_p=dropout_p,
                    softmax_scale=softmax_scale, causal=causal, window_size=window_size, softcap=softcap,
                    alibi_slopes=_tensors.as_numpy(alibi_slopes, "alibi_slopes"), seed=checked_seed(seed))
    layout.check_saved(out.shape, softmax_lse.shape, dout.shape)
    grads = backward_float32(layout, *map(_tensors.as_float32, (q, k, v, out, softmax_lse, dout)))
    return tuple(_tensors.cast_like(g, like) for g, like in zip(grads, (q, k, v)))
