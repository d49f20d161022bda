"""Split the memory-bound loops around the matrix products over the CPU cores.

BLAS runs its products on every core by itself, but the copies around them -- im2col, col2im's
adds, the NCHW <-> NHWC transposes -- are single NumPy calls, each on one core. NumPy releases
the GIL inside its copy and ufunc loops, so giving each thread its own slice of the batch runs
them in parallel. ``SCRATCHGEN_THREADS`` caps the number of threads (default: the cores this
process may use).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

__all__ = ["threads", "over_batch"]

#: Below this many bytes of work a split costs more (thread hand-off, ~20 us) than it saves.
MIN_BYTES = 1 << 20

_pool: ThreadPoolExecutor | None = None


def threads() -> int:
    """How many threads the loops are split over."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    cap = os.environ.get("SCRATCHGEN_THREADS")
    return max(1, min(n, int(cap))) if cap else n


def over_batch(fn: Callable[[int, int], None], n: int, nbytes: int) -> None:
    """Call ``fn(lo, hi)`` on consecutive slices [lo, hi) covering [0, n), one per thread, and
    wait for all of them. ``fn`` must write only what belongs to its slice; ``nbytes``, the
    size of the work, decides whether splitting pays."""
    global _pool
    k = min(threads(), n) if nbytes >= MIN_BYTES else 1
    if k <= 1:
        fn(0, n)
        return
    if _pool is None or _pool._max_workers < k - 1:
        _pool = ThreadPoolExecutor(max_workers=k - 1, thread_name_prefix="scratchgen-kernels")
    edges = [n * i // k for i in range(k + 1)]
    futures = [_pool.submit(fn, edges[i], edges[i + 1]) for i in range(1, k)]
    fn(edges[0], edges[1])
    for f in futures:
        f.result()
