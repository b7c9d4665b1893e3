"""torch tensors and NumPy arrays as the library takes them: float32, C order, on the CPU, as
(pointer, element count) pairs. Inputs already float32 and contiguous are passed without a copy."""
import ctypes

import numpy as np

try:
    import torch
except ImportError:  # NumPy alone: the forward and flashdist.backward, no autograd.
    torch = None

_FLOAT_TYPES = "float32, float16 or bfloat16"
# Empty tensors may have no storage; the library only needs a pointer it never reads.
_EMPTY = (ctypes.c_float * 1)()


def is_torch(x):
    return torch is not None and isinstance(x, torch.Tensor)


def check_inputs(**tensors):
    """All torch tensors on the CPU, or all NumPy arrays, of one float type; returns whether torch."""
    names = list(tensors)
    first = tensors[names[0]]
    uses_torch = is_torch(first)
    for name, x in tensors.items():
        if uses_torch and not is_torch(x) or not uses_torch and not isinstance(x, np.ndarray):
            expected = "a torch.Tensor, as q is" if uses_torch else (
                "a numpy.ndarray, as q is" if name != names[0] else "a torch.Tensor or a numpy.ndarray")
            raise TypeError(f"{name}: expected {expected}, got {type(x).__name__}")
        if uses_torch and x.device.type != "cpu":
            raise ValueError(f"{name}: tensor on device {x.device}; flashdist runs on the CPU")
        if dtype_name(x) not in ("float32", "float16", "bfloat16"):
            raise TypeError(f"{name}: dtype {dtype_name(x)} is not {_FLOAT_TYPES}")
        if dtype_name(x) != dtype_name(first):
            raise TypeError(f"{name}: dtype {dtype_name(x)} differs from {names[0]}'s {dtype_name(first)}")
    return uses_torch


def dtype_name(x):
    return str(x.dtype).removeprefix("torch.")


def as_float32(x):
    """x itself when already float32 and C-contiguous, else a float32 C-order copy."""
    if is_torch(x):
        return x.detach().to(torch.float32).contiguous()
    return np.ascontiguousarray(x, dtype=np.float32)


def empty_like_float32(x, shape):
    if is_torch(x):
        return torch.empty(shape, dtype=torch.float32)
    return np.empty(shape, dtype=np.float32)


def buffer(x):
    """(pointer, element count) of a float32 C-order tensor or array."""
    if is_torch(x):
        assert x.dtype == torch.float32 and x.is_contiguous()
        pointer, count = x.data_ptr(), x.numel()
    else:
        assert x.dtype == np.float32 and x.flags.c_contiguous
        pointer, count = x.ctypes.data, x.size
    return (pointer if count else ctypes.addressof(_EMPTY)), count


def cast_like(x, like):
    """x (float32) in the dtype of `like`."""
    if is_torch(x):
        return x if x.dtype == like.dtype else x.to(like.dtype)
    return x if x.dtype == like.dtype else x.astype(like.dtype)


def as_numpy(x, name):
    """cu_seqlens or ALiBi slopes as a NumPy array (torch tensors on the CPU only)."""
    if x is None:
        return None
    if is_torch(x):
        if x.device.type != "cpu":
            raise ValueError(f"{name}: tensor on device {x.device}; flashdist runs on the CPU")
        return x.detach().cpu().numpy()
    return np.asarray(x)
