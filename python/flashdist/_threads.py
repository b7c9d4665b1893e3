"""Worker threads of every call: set_num_threads(n), else FLASHDIST_THREADS, else all cores (shared
out among the ranks mpirun starts on this machine, as the CLI's --threads)."""
import os

from . import _native

_threads = None


def set_num_threads(n):
    """Threads of later calls; results are bitwise the same for any count."""
    global _threads
    _threads = _checked(n, "threads")


def get_num_threads():
    if _threads is not None:
        return _threads
    variable = os.environ.get("FLASHDIST_THREADS")
    if variable:
        try:
            count = int(variable)
        except ValueError:
            raise ValueError(f"FLASHDIST_THREADS: must be a whole number, got {variable!r}") from None
        return _checked(count, "FLASHDIST_THREADS")
    return _native.default_threads()


def _checked(n, name):
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{name}: expected an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"{name} must be at least 1, got {n}")
    return n
