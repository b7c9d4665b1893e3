"""The C ABI of libflashdist_c.so (Sources/CFlashdist/include/flashdist.h) through ctypes.

Every call passes raw float32 pointers and element counts; the library checks the counts against
the problem and reports errors as a status and a message, which become ValueError here.
"""
import ctypes
import os
from pathlib import Path

ABI_VERSION = 2
_MESSAGE_BYTES = 512


class Problem(ctypes.Structure):
    """struct flashdist_problem: field for field, in the header's order."""
    _fields_ = [
        ("batch", ctypes.c_int64),
        ("seqlen_q", ctypes.c_int64),
        ("seqlen_k", ctypes.c_int64),
        ("heads", ctypes.c_int64),
        ("kv_heads", ctypes.c_int64),
        ("head_dim", ctypes.c_int64),
        ("cu_seqlens_q", ctypes.c_void_p),
        ("cu_seqlens_k", ctypes.c_void_p),
        ("alibi_slopes", ctypes.c_void_p),
        ("alibi_count", ctypes.c_int64),
        ("window_left", ctypes.c_int64),
        ("window_right", ctypes.c_int64),
        ("dropout_seed", ctypes.c_uint64),
        ("softmax_scale", ctypes.c_float),
        ("use_softmax_scale", ctypes.c_int32),
        ("causal", ctypes.c_int32),
        ("softcap", ctypes.c_float),
        ("dropout_p", ctypes.c_float),
        ("head_dim_v", ctypes.c_int64),
        ("sinks", ctypes.c_void_p),
        ("sinks_count", ctypes.c_int64),
    ]


class Slice(ctypes.Structure):
    """struct flashdist_slice: [start, end) along axis of a whole tensor."""
    _fields_ = [("axis", ctypes.c_int64), ("start", ctypes.c_int64), ("end", ctypes.c_int64)]


class Shard(ctypes.Structure):
    """struct flashdist_shard: this rank's parts of q (o, dout, dq), k (v), dk (dv) and lse."""
    _fields_ = [("queries", Slice), ("keys", Slice), ("key_gradients", Slice), ("lse", Slice)]


def _library_path():
    """The library shipped in the package, or FLASHDIST_LIBRARY (a freshly built one, say)."""
    override = os.environ.get("FLASHDIST_LIBRARY")
    return Path(override) if override else Path(__file__).with_name("libflashdist_c.so")


def _load():
    path = _library_path()
    if not path.exists():
        raise ImportError(f"flashdist: {path}: the native library is missing; install with `pip install ./python` "
                          "from the repository, which builds it with `swift build -c release`")
    library = ctypes.CDLL(str(path))  # CDLL releases the GIL during calls: the kernels run threaded.
    buffer = [ctypes.c_void_p, ctypes.c_int64]
    tail = [ctypes.c_char_p, ctypes.c_size_t]
    problem = [ctypes.POINTER(Problem)]
    library.flashdist_forward.argtypes = problem + buffer * 5 + [ctypes.c_int32] + tail
    library.flashdist_backward.argtypes = problem + buffer * 9 + [ctypes.c_int32] + tail
    library.flashdist_dropout_mask.argtypes = problem + buffer + tail
    library.flashdist_sink_gradient.argtypes = problem + buffer * 4 + tail
    ranks = problem + [ctypes.c_int32, ctypes.c_void_p]
    library.flashdist_shard_mpi.argtypes = ranks + [ctypes.POINTER(Shard)] + tail
    library.flashdist_forward_mpi.argtypes = ranks + buffer * 5 + [ctypes.c_int32] + tail
    library.flashdist_backward_mpi.argtypes = ranks + buffer * 9 + [ctypes.c_int32] + tail
    for name in ("flashdist_forward", "flashdist_backward", "flashdist_sink_gradient", "flashdist_dropout_mask", "flashdist_shard_mpi",
                 "flashdist_forward_mpi", "flashdist_backward_mpi", "flashdist_default_threads",
                 "flashdist_abi_version"):
        getattr(library, name).restype = ctypes.c_int32
    library.flashdist_default_threads.argtypes = []
    library.flashdist_abi_version.argtypes = []
    if library.flashdist_abi_version() != ABI_VERSION:
        raise ImportError(f"flashdist: {path}: ABI version {library.flashdist_abi_version()}, expected {ABI_VERSION}; "
                          "reinstall the package")
    return library


_library = _load()


MPI_ERROR = 3


def _call(function, problem, *arguments):
    """Calls `function(&problem, *arguments, message, size)`; a non-zero status raises ValueError
    (RuntimeError for a failed MPI call)."""
    message = ctypes.create_string_buffer(_MESSAGE_BYTES)
    status = function(ctypes.byref(problem), *arguments, message, _MESSAGE_BYTES)
    if status != 0:
        raise (RuntimeError if status == MPI_ERROR else ValueError)(message.value.decode("utf-8", "replace"))


def forward(problem, q, k, v, o, lse, threads):
    """Each tensor argument is a (pointer, element count) pair."""
    _call(_library.flashdist_forward, problem, *q, *k, *v, *o, *lse, threads)


def backward(problem, q, k, v, o, lse, dout, dq, dk, dv, threads):
    _call(_library.flashdist_backward, problem, *q, *k, *v, *o, *lse, *dout, *dq, *dk, *dv, threads)


def sink_gradient(problem, o, lse, dout, dsinks):
    _call(_library.flashdist_sink_gradient, problem, *o, *lse, *dout, *dsinks)


def dropout_mask(problem, mask):
    _call(_library.flashdist_dropout_mask, problem, *mask)


def shard_mpi(problem, partition, comm):
    """This rank's Shard of the problem; collective over comm (an MPI_Comm handle)."""
    shard = Shard()
    _call(_library.flashdist_shard_mpi, problem, partition, comm, ctypes.byref(shard))
    return shard


def forward_mpi(problem, partition, comm, q, k, v, o, lse, threads):
    _call(_library.flashdist_forward_mpi, problem, partition, comm, *q, *k, *v, *o, *lse, threads)


def backward_mpi(problem, partition, comm, q, k, v, o, lse, dout, dq, dk, dv, threads):
    _call(_library.flashdist_backward_mpi, problem, partition, comm, *q, *k, *v, *o, *lse, *dout, *dq, *dk, *dv, threads)


def default_threads():
    return _library.flashdist_default_threads()
