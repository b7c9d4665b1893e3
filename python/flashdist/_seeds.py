"""Dropout seeds: given, or drawn from torch's generator (torch.manual_seed) or NumPy's (np.random.seed)."""
import numpy as np

from ._tensors import torch


def random_seed(uses_torch):
    if uses_torch:
        return int(torch.randint(0, 2**63 - 1, (), dtype=torch.int64))
    return int(np.random.randint(0, 2**63 - 1, dtype=np.int64))


def checked_seed(seed):
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not 0 <= seed < 2**64:
        raise ValueError(f"seed: must be an integer in [0, 2^64), got {seed!r}")
    return int(seed)
