"""Keeping freed memory in the process, so that big temporary arrays do not cost page faults.

A training step allocates and frees the same large temporaries (im2col matrices, padded
copies, product outputs: megabytes each) every step. glibc's ``malloc`` serves an allocation
above its *mmap threshold* (128 KiB, raised on the fly up to 32 MiB) with fresh pages from the
kernel and returns them on ``free``, and it gives the top of its heap back to the kernel once
more than its *trim threshold* is free. Fresh pages are zeroed by the kernel on first touch, a
page fault each, paid again at every step (measured in ``conv/PERFORMANCE.md``).

``keep_freed_memory()`` raises both (``mallopt``), so that freed blocks stay in the heap and
are reused; the process then holds on to its peak heap size, as PyTorch's and CuPy's caching
allocators do for the same reason. Importing the kernels changes nothing: the programs that
want it -- the training loop when it starts, the benchmark commands -- call
``configure_malloc()``, which does so unless the environment variable
``SCRATCHGEN_DEFAULT_MALLOC`` is set (to anything) to leave malloc alone. Elsewhere than glibc
it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["keep_freed_memory", "configure_malloc"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(mmap_threshold: int = 256 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Serve allocations below ``mmap_threshold`` bytes from the heap, and keep up to
    ``trim_threshold`` free bytes at its top instead of returning them. Returns whether the C
    library took both settings (False where it is not glibc)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and \
        bool(mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))



def configure_malloc() -> bool:
    """``keep_freed_memory()`` unless ``SCRATCHGEN_DEFAULT_MALLOC`` is set, which leaves the C
    library's defaults alone. Returns whether the thresholds were raised."""
    if os.environ.get("SCRATCHGEN_DEFAULT_MALLOC"):
        return False
    return keep_freed_memory()
