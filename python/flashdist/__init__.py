"""flashdist: exact FlashAttention on the CPU with flash-attn's Python API.

    from flashdist import flash_attn_func          # instead of: from flash_attn import flash_attn_func
    out = flash_attn_func(q, k, v, causal=True)    # torch CPU tensors (autograd) or NumPy arrays

q, k, v are (batch, seqlen, heads, head_dim) (varlen: (total, heads, head_dim)) in float32, float16
or bfloat16, v's head_dim may differ from q's and k's (out then takes v's); the compute is float32, the output has the inputs' dtype. The backward recomputes the
attention from the saved logsumexp; nothing seqlen_q × seqlen_k is stored.
"""
from ._attention import attention as _attention, backward
from ._threads import get_num_threads, set_num_threads

__all__ = ["flash_attn_func", "flash_attn_varlen_func", "backward", "shard", "set_num_threads", "get_num_threads"]


def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0,
                    alibi_slopes=None, deterministic=True, return_attn_probs=False, *, seed=None, process_group=None,
                    partition=None, sinks=None):
    """flash_attn.flash_attn_func on the CPU. Returns out, or with return_attn_probs
    (out, softmax_lse (batch, heads, seqlen_q) float32, S_dmask), where S_dmask is the dropout keep
    factors (batch, heads, seqlen_q, seqlen_k) (0, or 1/(1 − p)) when dropout_p > 0, else None.

    deterministic is accepted and always true: results are bitwise the same for any thread count.
    seed (flashdist's own): the dropout mask's seed; None draws one from torch's (or NumPy's) generator.
    process_group (an mpi4py communicator) and partition ("heads" or "sequence"): every rank passes
    its shard of q, k, v (a range of heads, or of sequence rows, as `flashdist.shard` says) and gets
    its shard of out, and softmax_lse of its heads over the full sequence; S_dmask is None.
    sinks (flashdist's own; FA3's learnable_sink, gpt-oss's sinks): one logit per head, (heads,), in
    every row's softmax denominator with no value; softmax_lse includes it, and a torch tensor that
    requires grad gets its gradient. Not with process_group.
    """
    return _attention(q, k, v, None, None, dropout_p=dropout_p, softmax_scale=softmax_scale, causal=causal,
                      window_size=window_size, softcap=softcap, alibi_slopes=alibi_slopes,
                      return_attn_probs=return_attn_probs, seed=seed, process_group=process_group,
                      partition=partition, sinks=sinks)


def shard(q_shape, k_shape, process_group, partition):
    """This rank's parts of the whole q and k for flash_attn_func(..., process_group=process_group,
    partition=partition), as index tuples: q[q_index], k[k_index], v[k_index] are its shards. A
    collective call: every rank of process_group makes it."""
    from ._distributed import shard as rank_shard
    return rank_shard(q_shape, k_shape, process_group, partition)


def flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, dropout_p=0.0,
                           softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0, alibi_slopes=None,
                           deterministic=True, return_attn_probs=False, *, seed=None):
    """flash_attn.flash_attn_varlen_func on the CPU: q (total_q, heads, head_dim), k, v (total_k,
    kv_heads, head_dim), cu_seqlens int32 (batch + 1). max_seqlen_q/_k are accepted and unused (the
    offsets say it all). With return_attn_probs, (out, softmax_lse (heads, total_q), None)."""
    if cu_seqlens_q is None or cu_seqlens_k is None:
        raise ValueError("cu_seqlens_q and cu_seqlens_k go together: give both or neither")
    return _attention(q, k, v, cu_seqlens_q, cu_seqlens_k, dropout_p=dropout_p, softmax_scale=softmax_scale,
                      causal=causal, window_size=window_size, softcap=softcap, alibi_slopes=alibi_slopes,
                      return_attn_probs=return_attn_probs, seed=seed, process_group=None, partition=None)
