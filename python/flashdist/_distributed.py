"""flash_attn_func across the ranks of an mpi4py communicator: each rank passes its shard of q, k,
v and gets its shard of out (and lse of its heads over the full sequence); the results are bitwise
those of one process.

Every check that can fail on some ranks only is agreed on (`_agree`) before the next collective
call, so bad input raises on every rank, with the lowest failing rank's message, and no rank is left
waiting in MPI.
"""
from . import _native, _tensors
from ._layout import Layout, shape_text
from ._seeds import checked_seed, random_seed

PARTITIONS = {"heads": 0, "sequence": 1}
# The axis of q and k that each partition cuts: heads, or sequence rows.
_AXES = {"heads": 2, "sequence": 1}


class RankLayout(Layout):
    """This rank's side of a problem spread over a communicator: the whole problem's checks and
    struct, this rank's shapes, and the library's partitioned calls."""

    def __init__(self, comm, partition, q, k, v, **options):
        self._handle = _handle(comm)
        self._partition = PARTITIONS[partition]
        axis = _AXES[partition]
        shapes = comm.allgather((tuple(q), tuple(k), tuple(v)))

        def check_whole():
            whole = [_whole([s[i] for s in shapes], axis, name, partition) for i, name in enumerate(("q", "k", "v"))]
            Layout.__init__(self, *whole, None, None, **options)

        _agree(comm, check_whole)
        shard = _native.shard_mpi(self.problem, self._partition, self._handle)

        def check_shard():
            for name, local, part in (("q", q, shard.queries), ("k", k, shard.keys), ("v", v, shard.keys)):
                whole_shape = {"q": self.q_shape, "k": self.k_shape, "v": self.v_shape}[name]
                expected = _local_shape(whole_shape, part)
                if tuple(local) != expected:
                    raise ValueError(f"{name}: shape {shape_text(local)} is not this rank's {partition} shard "
                                     f"{shape_text(expected)} of {shape_text(whole_shape)}")
            if (shard.keys.start, shard.keys.end) != (shard.key_gradients.start, shard.key_gradients.end):
                raise ValueError(f"partition: heads splits GQA groups over {comm.size} ranks; "
                                 "use at most as many ranks as kv heads, or partition=\"sequence\"")

        _agree(comm, check_shard)
        self.rank_q_shape, self.rank_k_shape, self.rank_v_shape = tuple(q), tuple(k), tuple(v)
        self.lse_shape = _local_shape(self.lse_shape, shard.lse)
        self.mask_shape = None

    @property
    def out_shape(self):
        return self.rank_q_shape[:-1] + self.rank_v_shape[-1:]

    @property
    def query_gradient_shape(self):
        return self.rank_q_shape

    @property
    def key_gradient_shape(self):
        return self.rank_k_shape

    @property
    def value_gradient_shape(self):
        return self.rank_v_shape

    def forward(self, q, k, v, out, lse, threads):
        _native.forward_mpi(self.problem, self._partition, self._handle, q, k, v, out, lse, threads)

    def backward(self, q, k, v, out, lse, dout, dq, dk, dv, threads):
        _native.backward_mpi(self.problem, self._partition, self._handle, q, k, v, out, lse, dout, dq, dk, dv, threads)


def rank_layout(comm, partition, q, k, v, cu_seqlens_q, seed, **options):
    """The layout of this rank's shard, and whether the tensors are torch's; a dropout seed left to
    chance is rank 0's, so that every rank drops the same probabilities."""
    def check():
        uses_torch = _check_call(comm, partition, cu_seqlens_q, q=q, k=k, v=v)
        return uses_torch, None if seed is None else checked_seed(seed)

    uses_torch, seed = _agree(comm, check)
    if seed is None:
        seed = comm.bcast(random_seed(uses_torch) if options["dropout_p"] else 0, root=0)
    return uses_torch, RankLayout(comm, partition, q.shape, k.shape, v.shape, seed=seed, **options)


def _check_call(comm, partition, cu_seqlens_q, **tensors):
    """Whether the tensors are torch's, after the checks that need no other rank."""
    if partition not in PARTITIONS:
        raise ValueError(f"partition: {partition!r} is neither \"heads\" nor \"sequence\"")
    if cu_seqlens_q is not None:
        raise ValueError("process_group: variable-length batches run on one process only")
    _handle(comm)
    return _tensors.check_inputs(**tensors) if tensors else None


def _handle(comm):
    """Open MPI's MPI_Comm (a pointer) behind an mpi4py communicator."""
    try:
        from mpi4py import MPI
    except ImportError:
        raise TypeError("process_group: needs mpi4py") from None
    if not isinstance(comm, MPI.Comm):
        raise TypeError(f"process_group: expected an mpi4py communicator, got {type(comm).__name__}")
    return MPI._handleof(comm)


def _whole(shapes, axis, name, partition):
    """The whole tensor's shape from every rank's shard: the shards' lengths along the cut axis
    summed; every other axis must be alike on all ranks."""
    first = shapes[0]
    for rank, shape in enumerate(shapes):
        if len(shape) != len(first) or len(shape) <= axis or shape[:axis] + shape[axis + 1:] != first[:axis] + first[axis + 1:]:
            raise ValueError(f"{name}: rank {rank}'s shape {shape_text(shape)} differs from rank 0's "
                             f"{shape_text(first)} outside the {partition} axis")
    return first[:axis] + (sum(shape[axis] for shape in shapes),) + first[axis + 1:]


def _local_shape(shape, part):
    local = list(shape)
    local[part.axis] = part.end - part.start
    return tuple(local)


def _agree(comm, body):
    """body() on every rank; if it raised ValueError or TypeError on any rank, every rank raises the
    lowest failing rank's error (prefixed with that rank when it is not this one's own)."""
    try:
        result, error = body(), None
    except (ValueError, TypeError) as raised:
        result, error = None, raised
    errors = comm.allgather(None if error is None else (type(error).__name__, str(error)))
    for rank, failure in enumerate(errors):
        if failure is not None:
            if rank == comm.rank:
                raise error
            raise (TypeError if failure[0] == "TypeError" else ValueError)(f"rank {rank}: {failure[1]}")
    return result


def shard(q_shape, k_shape, comm, partition):
    """Index tuples of this rank's parts of the whole q (o, dout) and k (v): q[index] is its shard."""
    def check():
        _check_call(comm, partition, None)
        return Layout(tuple(q_shape), tuple(k_shape), tuple(k_shape), None, None, dropout_p=0.0, softmax_scale=None,
                      causal=False, window_size=(-1, -1), softcap=0.0, alibi_slopes=None, seed=0)

    layout = _agree(comm, check)
    parts = _native.shard_mpi(layout.problem, PARTITIONS[partition], _handle(comm))
    return _index(parts.queries), _index(parts.keys)


def _index(part):
    return (slice(None),) * part.axis + (slice(part.start, part.end),)
