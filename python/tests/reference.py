"""Attention in float64 with plain torch operations: the reference the tests hold flashdist to.
Masks are flash-attn's, aligned bottom-right: query i sits on key diagonal i + seqlen_k - seqlen_q."""
import torch


def attention(q, k, v, *, causal=False, window=(-1, -1), softcap=0.0, alibi=None, scale=None, keep=None, sinks=None):
    """q (batch, seqlen_q, heads, d), k, v (batch, seqlen_k, kv_heads, d), float64; alibi (heads,) or
    (batch, heads); keep: dropout factors (batch, heads, seqlen_q, seqlen_k); sinks (heads,): one
    more logit per row of each head, meeting no value. Returns out and lse."""
    batch, seqlen_q, heads, head_dim = q.shape
    seqlen_k, kv_heads = k.shape[1], k.shape[2]
    k = k.repeat_interleave(heads // kv_heads, dim=2)
    v = v.repeat_interleave(heads // kv_heads, dim=2)
    scale = head_dim ** -0.5 if scale is None else scale
    s = torch.einsum("bqhd,bkhd->bhqk", q, k) * scale
    if softcap:
        s = softcap * torch.tanh(s / softcap)
    diagonal = torch.arange(seqlen_q)[:, None] + seqlen_k - seqlen_q
    key = torch.arange(seqlen_k)[None, :]
    if alibi is not None:
        slopes = alibi.to(torch.float64).expand(batch, heads)
        s = s - slopes[:, :, None, None] * (diagonal - key).abs()
    allowed = torch.ones(seqlen_q, seqlen_k, dtype=torch.bool)
    if causal:
        allowed &= key <= diagonal
    if window[0] >= 0:
        allowed &= key >= diagonal - window[0]
    if window[1] >= 0:
        allowed &= key <= diagonal + window[1]
    # A row that sees no key gets p = 0, o = 0, lse = -inf; its scores are zeroed (not -inf) before
    # the logsumexp so that no gradient is NaN.
    empty = ~allowed.any(dim=-1)
    if sinks is not None:
        # The sink keeps every row's logsumexp finite: a row that sees no key has lse = its sink.
        s = s.masked_fill(~allowed, float("-inf"))
        sink = sinks.to(torch.float64)[None, :, None, None].expand(batch, heads, seqlen_q, 1)
        lse = torch.logsumexp(torch.cat([s, sink], dim=-1), dim=-1)
        p = torch.exp(s - lse[..., None])
    else:
        s = s.masked_fill(~allowed, float("-inf")).masked_fill(empty[:, None], 0.0)
        lse = torch.logsumexp(s, dim=-1)
        p = torch.exp(s - lse[..., None]).masked_fill(~allowed, 0.0)
        lse = lse.masked_fill(empty, float("-inf"))
    if keep is not None:
        p = p * keep
    return torch.einsum("bhqk,bkhd->bqhd", p, v), lse


def varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_k, **options):
    """Packed (total, heads, d) tensors: each sequence alone; lse (heads, total_q)."""
    outs, lses = [], []
    for b in range(len(cu_seqlens_q) - 1):
        rows_q = slice(int(cu_seqlens_q[b]), int(cu_seqlens_q[b + 1]))
        rows_k = slice(int(cu_seqlens_k[b]), int(cu_seqlens_k[b + 1]))
        alibi = options.get("alibi")
        one = dict(options, alibi=None if alibi is None else (alibi if alibi.dim() == 1 else alibi[b]))
        out, lse = attention(q[None, rows_q], k[None, rows_k], v[None, rows_k], **one)
        outs.append(out[0])
        lses.append(lse[0])
    return torch.cat(outs), torch.cat(lses, dim=1)
