"""Run by test_mpi.py under `mpirun python3 -m mpi4py` (which aborts every rank when one raises): each rank passes its shard to flash_attn_func with
process_group, and its out, lse and gradients must be the bytes of one process's run, sliced.
Then bad input on one rank must raise on every rank. Prints "rank R: N checks passed"."""
import re
import sys

import torch
from mpi4py import MPI

import flashdist

comm = MPI.COMM_WORLD
flashdist.set_num_threads(1)
checks = 0


def check(name, ours, expected):
    global checks
    if not torch.equal(ours, expected):
        raise AssertionError(f"rank {comm.rank}: {name} differs by {(ours - expected).abs().max().item()}")
    checks += 1


def case(partition, seqlen_q, seqlen_k, heads, kv_heads, head_dim_v=16, **options):
    generator = torch.Generator().manual_seed(seqlen_q)
    q, dout = (torch.randn(2, seqlen_q, heads, d, generator=generator) for d in (16, head_dim_v))
    k, v = (torch.randn(2, seqlen_k, kv_heads, d, generator=generator) for d in (16, head_dim_v))
    # One process: the whole problem.
    leaves = [x.clone().requires_grad_() for x in (q, k, v)]
    out, lse, _ = flashdist.flash_attn_func(*leaves, return_attn_probs=True, seed=5, **options)
    out.backward(dout)
    # This rank: its shards.
    q_index, k_index = flashdist.shard(q.shape, k.shape, comm, partition)
    shards = [x[index].clone().requires_grad_() for x, index in ((q, q_index), (k, k_index), (v, k_index))]
    rank_out, rank_lse, mask = flashdist.flash_attn_func(*shards, return_attn_probs=True, seed=5, process_group=comm,
                                                         partition=partition, **options)
    rank_out.backward(dout[q_index])
    name = f"{partition} {seqlen_q}x{seqlen_k} {heads}/{kv_heads} {options}"
    assert mask is None
    check(f"{name}: out", rank_out, out[q_index])
    heads_here = slice(*_heads_of(rank_lse, lse))
    check(f"{name}: lse", rank_lse, lse[:, heads_here])
    for label, shard, leaf, index in (("dq", shards[0], leaves[0], q_index), ("dk", shards[1], leaves[1], k_index),
                                      ("dv", shards[2], leaves[2], k_index)):
        check(f"{name}: {label}", shard.grad, leaf.grad[index])


def _heads_of(rank_lse, lse):
    """The range of heads whose rows this rank's lse holds: the one matching the whole lse."""
    count = rank_lse.shape[1]
    for start in range(lse.shape[1] - count + 1):
        if torch.equal(lse[:, start:start + count], rank_lse):
            return start, start + count
    raise AssertionError(f"rank {comm.rank}: lse matches no range of heads")


everything = dict(causal=True, softcap=4.0, alibi_slopes=torch.linspace(0.1, 0.6, 6), dropout_p=0.2)
for partition in ("sequence", "heads"):
    for seqlen_q, seqlen_k in ((100, 77), (77, 100)):
        case(partition, seqlen_q, seqlen_k, 6, 3 if partition == "heads" else 2, **everything)
case("sequence", 64, 64, 6, 2, window_size=(9, 2))
# v with a head dim of its own: out, dout and dv follow it.
case("sequence", 77, 100, 6, 2, head_dim_v=24, causal=True)
case("heads", 100, 77, 6, 3, head_dim_v=8, dropout_p=0.2)



def expect_error(partition, q, message, k=None):
    """Every rank raises ValueError: the failing rank its own message, the others it prefixed."""
    global checks
    k = q if k is None else k
    try:
        flashdist.flash_attn_func(q, k, k, process_group=comm, partition=partition)
    except ValueError as error:
        if not re.match(r"(rank \d+: )?" + re.escape(message), str(error)):
            raise
        checks += 1
    else:
        raise AssertionError(f"rank {comm.rank}: bad shards were accepted")


last = comm.rank == comm.size - 1
# The last rank with fewer heads: the same message on every rank, from the gathered shapes.
expect_error("sequence", torch.randn(1, 8, 5 if last else 6, 16),
             f"q: rank {comm.size - 1}'s shape (1, 8, 5, 16) differs from rank 0's (1, 8, 6, 16) outside the sequence axis")
# Rows split 6, 4 (…) rather than as the library splits them: rank 0 fails, every rank raises.
rows = 4 * comm.size + 2
expect_error("sequence", torch.randn(1, rows if comm.rank == 0 else 4, 2, 16),
             f"q: shape (1, {rows}, 2, 16) is not this rank's sequence shard")
# GQA groups split over ranks (ranks share a kv head): the shards flashdist.shard names overlap
# in k, which no rank's shard can say; refused, never computed wrongly.
q_index, k_index = flashdist.shard((1, 4, 2 * comm.size, 16), (1, 4, comm.size - 1, 16), comm, "heads")
expect_error("heads", torch.randn(1, 4, 2 * comm.size, 16)[q_index], "k: ",
             k=torch.randn(1, 4, comm.size - 1, 16)[k_index])
expect_error("diagonal", torch.randn(1, 4, 2, 16), "partition: 'diagonal' is neither \"heads\" nor \"sequence\"")
print(f"rank {comm.rank}: {checks} checks passed")
sys.stdout.flush()
