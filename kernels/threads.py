"""Splitting a kernel's batch across the CPU's cores.

A convolution on the CPU is matrix products plus memory traffic: the im2col copy, col2im's
adds, the NCHW <-> NHWC layout changes. BLAS runs the products on every core, but a NumPy copy
or add runs on one; on a 2-core machine the copies are a third of a convolution's time, with
the second core idle. Threading the copies alone does not pay: after each product BLAS's
worker threads keep spinning on their cores for a while, waiting for the next one, and a copy
thread started then has to share a core with them.

What pays is *batch parallelism*, as in PyTorch's CPU kernels: the images of a batch are
independent, so each of T threads runs the whole pipeline -- im2col, product, layout change --
on its own slice of the batch, with BLAS held to one thread for that time. NumPy releases the
GIL inside its copy, arithmetic and BLAS loops, so plain Python threads run them in parallel.
``parallel_for(n, fn, nbytes)`` cuts ``range(n)`` into contiguous slices, calls ``fn(lo, hi)``
for each (the calling thread takes the first) and returns their results in order. Each slice
writes only its own part of the output, so no locks are needed; a reduction (a weight
gradient summed over the batch) sums the returned partial results (``parallel_sum``).

Holding BLAS to one thread needs its thread-count functions (OpenBLAS, as in NumPy's wheels,
or MKL), found among the process's loaded libraries. OpenBLAS's count is global, so while a
kernel runs, BLAS calls from *other* threads of the program run on one thread too (never
wrongly, only slower); the count is restored when the last running kernel returns. Where
neither library is found the kernels run on the calling thread alone, with BLAS's own threads.
A layer's plain matrix product (``matmul``) runs on BLAS's threads, except while the kernels'
threads are in use (see there why).

Measured on 2 cores (batch 64, ``scratchgen bench kernels``): a 64 -> 128 channel convolution
at 16x16, forward + backward, 18.6 -> 15.5 ms; SAGAN's attention 29.5 -> 15.4 ms.

The number of threads defaults to BLAS's own thread count (so ``OPENBLAS_NUM_THREADS=1``
turns this off too); the environment variable ``SCRATCHGEN_NUM_THREADS`` or
:func:`set_num_threads` changes it. Work smaller than ``_MIN_BYTES`` per thread stays on the
calling thread: waking a thread costs tens of microseconds.
"""
from __future__ import annotations

import ctypes
import glob
import os
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

import numpy as np

from . import _cuda, reference

__all__ = ["get_num_threads", "set_num_threads", "parallel_for", "parallel_sum",
           "parallel_passes", "matmul", "blas_library"]

R = TypeVar("R")

# Below this much memory traffic per thread a slice is not worth a thread's wake-up.
_MIN_BYTES = 256 << 10

# How long after a parallel kernel the products of ``matmul`` keep to the kernels' threads:
# about as long as OpenBLAS's workers spin after a product (2**28 cycles at 2.6 GHz).
_SPIN_SECONDS = 0.1

# (setter, getter) pairs of the BLAS libraries whose thread count can be set at run time:
# OpenBLAS under its own name and under the names of NumPy's and SciPy's wheels, and MKL.
_BLAS_THREAD_FUNCTIONS = [
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
    ("openblas_set_num_threads", "openblas_get_num_threads"),
    ("MKL_Set_Num_Threads", "MKL_Get_Max_Threads"),
]


class _Blas:
    """The thread-count setter and getter of the BLAS that NumPy uses."""

    def __init__(self, path: str, setter, getter) -> None:
        self.path, self._set, self._get = path, setter, getter

    def get(self) -> int:
        return int(self._get())

    def set(self, n: int) -> None:
        self._set(int(n))


def _loaded_libraries() -> list[str]:
    """Paths of the shared libraries that may hold NumPy's BLAS: those mapped into this
    process (Linux) and those shipped beside NumPy (its wheels put OpenBLAS there)."""
    paths: list[str] = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split()
                if len(fields) >= 6 and ("blas" in fields[5] or "mkl" in fields[5]):
                    paths.append(fields[5])
    except OSError:
        pass
    root = os.path.dirname(os.path.dirname(np.__file__))
    for folder in ("numpy.libs", os.path.join("numpy", ".dylibs")):
        paths += glob.glob(os.path.join(root, folder, "*blas*"))
    return list(dict.fromkeys(paths))


def _find_blas() -> _Blas | None:
    for path in _loaded_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in _BLAS_THREAD_FUNCTIONS:
            setter, getter = getattr(lib, set_name, None), getattr(lib, get_name, None)
            if setter is not None and getter is not None:
                setter.argtypes, setter.restype = [ctypes.c_int], None
                getter.argtypes, getter.restype = [], ctypes.c_int
                return _Blas(path, setter, getter)
    return None


_blas = _find_blas()


def blas_library() -> str | None:
    """Path of the BLAS library whose thread count the kernels control, or None."""
    return None if _blas is None else _blas.path


def _default_threads() -> int:
    env = os.environ.get("SCRATCHGEN_NUM_THREADS")
    if env:
        try:
            value = int(env)
        except ValueError:
            value = 0
        if value < 1:
            raise ValueError(f"SCRATCHGEN_NUM_THREADS must be a positive integer, got {env!r}")
        return value
    return 1 if _blas is None else max(1, _blas.get())


_num_threads = _default_threads()
_workers: list["_Worker"] = []
_workers_pid = -1  # the process that started them: a forked child starts its own
_pool_lock = threading.Lock()  # held by the parallel_for that is using the workers
_hold_lock = threading.Lock()  # guards the two below
_holders = 0  # kernels now running with BLAS held to one thread (any Python thread)
_saved_blas_threads = 1  # BLAS's own count, restored when the last holder returns
_inside = threading.local()  # set while a thread runs a slice: nested calls run serially
_last_parallel = -float("inf")  # time.monotonic() when a kernel last ran on several threads


def get_num_threads() -> int:
    """How many threads a kernel's batch is split across."""
    return _num_threads


def set_num_threads(n: int) -> None:
    """Split the kernels' batches across ``n`` threads (1: run on the calling thread)."""
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive int, got {n!r}")
    _num_threads = n


class _Worker:
    """A kernel thread, handed one slice at a time through two locks: it blocks on ``go``
    until a slice is set, runs it and releases ``done``. A hand-over costs about 5 us here,
    where a ``concurrent.futures`` pool's submit and result cost about 80 us (its queue and
    its futures' conditions), as much as a small kernel's whole pass."""

    def __init__(self, index: int) -> None:
        self._go, self._done = threading.Lock(), threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._task: tuple | None = None
        self._result: tuple = (None, None)
        threading.Thread(target=self._loop, name=f"scratchgen-kernels-{index}",
                         daemon=True).start()

    def _loop(self) -> None:
        while True:
            self._go.acquire()
            fn, lo, hi = self._task  # type: ignore[misc]
            try:
                self._result = (_run_slice(fn, lo, hi), None)
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                self._result = (None, e)
            self._task = None
            self._done.release()

    def start(self, fn: Callable, lo: int, hi: int) -> None:
        self._task = (fn, lo, hi)
        self._go.release()

    def wait(self) -> tuple:
        """(result, exception) of the slice handed over by ``start``."""
        self._done.acquire()
        return self._result


def _pool(workers: int) -> list[_Worker]:
    """At least ``workers`` kernel threads of this process (call with ``_pool_lock`` held)."""
    global _workers, _workers_pid
    if _workers_pid != os.getpid():
        _workers, _workers_pid = [], os.getpid()
    while len(_workers) < workers:
        _workers.append(_Worker(len(_workers) + 1))
    return _workers


@contextmanager
def _blas_on_one_thread() -> Iterator[None]:
    """Hold BLAS to one thread while any kernel runs; the first holder saves BLAS's count and
    the last one restores it (so kernels called from several Python threads at once do not
    restore each other's setting too early)."""
    global _holders, _saved_blas_threads
    if _blas is None:
        yield
        return
    with _hold_lock:
        if _holders == 0:
            _saved_blas_threads = _blas.get()
            _blas.set(1)
        _holders += 1
    try:
        yield
    finally:
        with _hold_lock:
            _holders -= 1
            if _holders == 0:
                _blas.set(_saved_blas_threads)


def _run_slice(fn: Callable[[int, int], R], lo: int, hi: int) -> R:
    _inside.active = True
    try:
        return fn(lo, hi)
    finally:
        _inside.active = False


def parallel_for(n: int, fn: Callable[[int, int], R], nbytes: int) -> list[R]:
    """``[fn(lo, hi) for each slice]`` over contiguous slices that cover ``range(n)``, run in
    parallel threads with BLAS on one thread.

    ``nbytes`` is the memory the whole loop moves; it decides how many threads are worth
    waking (at least ``_MIN_BYTES`` each); work too small to split runs on the calling thread,
    still with BLAS on one thread (a BLAS call on several threads would leave BLAS's workers
    spinning on the cores the next kernel's threads need). With one thread configured
    (``set_num_threads(1)``), ``fn(0, n)`` simply runs, BLAS untouched. Called from inside a
    slice, it runs serially. ``fn`` must write only to what its slice owns. The first
    exception raised by a slice is re-raised once every slice has finished. A run on several
    threads marks the kernels' threads as in use (see :func:`matmul`).
    """
    return _split(n, fn, nbytes, kernel=True)


def parallel_passes(n: int, fn: Callable[[int, int], R], nbytes: int) -> list[R]:
    """:func:`parallel_for` for elementwise passes (activations, normalisation, optimizer
    updates), which do not mark the kernels' threads as in use: a model of plain matrix
    products (an MLP) keeps its products on BLAS's own threads, which run them faster than
    a split (FC VAE step: 5.7 ms with them, 6.8 ms when its Adam update moved the products
    onto the kernels' threads)."""
    return _split(n, fn, nbytes, kernel=False)


def parallel_sum(n: int, fn: Callable[[int, int], R], nbytes: int) -> R:
    """``sum(fn(lo, hi) for each slice)`` (``n > 0``): a reduction over the batch, such as a
    weight gradient, from :func:`parallel_for`'s partial results, added in slice order."""
    parts = parallel_for(n, fn, nbytes)
    total = parts[0]
    for part in parts[1:]:
        total += part
    return total


def _split(n: int, fn: Callable[[int, int], R], nbytes: int, kernel: bool) -> list[R]:
    """:func:`parallel_for`; ``kernel``: whether a run on several threads marks the kernels'
    threads as in use for :func:`matmul` (its own splits do not)."""
    global _last_parallel
    if _num_threads <= 1 or getattr(_inside, "active", False):
        return [fn(0, n)] if n > 0 else []
    parts = min(n, _num_threads, max(1, nbytes // _MIN_BYTES))
    with _blas_on_one_thread():
        # another Python thread using the workers: run this kernel on the calling thread
        if parts <= 1 or not _pool_lock.acquire(blocking=False):
            return [_run_slice(fn, 0, n)] if n > 0 else []
        waited = False
        try:
            bounds = [n * i // parts for i in range(parts + 1)]
            workers = _pool(parts - 1)
            for i in range(1, parts):
                workers[i - 1].start(fn, bounds[i], bounds[i + 1])
            results: list = [None] * parts
            error: BaseException | None = None
            try:
                results[0] = _run_slice(fn, bounds[0], bounds[1])
            except BaseException as e:  # noqa: BLE001 - re-raised once the others are done
                error = e
            for i in range(1, parts):
                results[i], e = workers[i - 1].wait()
                error = error or e
            waited = True
        finally:
            if not waited:  # interrupted (Ctrl-C) while workers may still run their slices:
                _workers.clear()  # leave them to finish alone; the next call starts new ones
            _pool_lock.release()
        if kernel:
            _last_parallel = time.monotonic()
    if error is not None:
        raise error
    return results


def matmul(a, b):
    """``numpy.matmul(a, b)`` for a layer's product (CuPy arrays go to ``cupy.matmul``).

    On its own, a product runs fastest on BLAS's threads (they share the packed operands).
    But BLAS's workers then spin for a while (OpenBLAS: about 2**28 cycles), and a parallel
    kernel started meanwhile shares its cores with them: a convolutional VAE's epoch took
    40.6 s that way instead of 29.5 s. So while the kernels' own threads are in use (a
    parallel kernel ran in the last ``_SPIN_SECONDS``), the product is split across them too,
    with BLAS on one thread: over the first batch axis of the result when it has more than
    one entry, else over the rows of ``a`` or the columns of ``b``, whichever are more (a
    64-row batch times a 100 x 6272 weight: 0.66 ms split by rows, 0.35 ms by columns). (Such a split does not itself count as the
    kernels' threads being in use: a model without convolutions returns to BLAS's threads.)
    """
    if reference.enabled() or _cuda.is_cupy_array(a) or _cuda.is_cupy_array(b):
        return a @ b
    if a.ndim >= 2 and b.ndim >= 2 and a.shape[-1] == 1:
        # an outer product: BLAS's gemm takes 12x longer over k = 1 than the broadcast
        # multiply, which gives the same numbers (no sum to round)
        return np.multiply(a, b)
    if _num_threads <= 1 or time.monotonic() - _last_parallel > _SPIN_SECONDS:
        return np.matmul(a, b)
    if a.ndim < 2 or b.ndim < 2:  # a vector: too small to split, still on one BLAS thread
        return _split(1, lambda lo, hi: np.matmul(a, b), 0, kernel=False)[0]
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    out = np.empty(batch + (a.shape[-2], b.shape[-1]), dtype=np.result_type(a, b))
    a_b = np.broadcast_to(a, batch + a.shape[-2:])
    b_b = np.broadcast_to(b, batch + b.shape[-2:])
    if batch and batch[0] > 1:  # split the first batch axis
        n = batch[0]

        def rows(lo: int, hi: int) -> None:
            np.matmul(a_b[lo:hi], b_b[lo:hi], out=out[lo:hi])
    elif a.shape[-2] >= b.shape[-1]:  # split the rows of a
        n = a.shape[-2]

        def rows(lo: int, hi: int) -> None:
            np.matmul(a_b[..., lo:hi, :], b_b, out=out[..., lo:hi, :])
    else:  # a few rows times a wide b (a layer's batch times its weight): split b's columns
        n = b.shape[-1]

        def rows(lo: int, hi: int) -> None:
            np.matmul(a_b, b_b[..., lo:hi], out=out[..., lo:hi])

    # parallel_for sizes work in bytes moved; a product takes 2 M N K flops, and one core does
    # about 16 of them in the time it moves a byte.
    _split(n, rows, 2 * out.size * a.shape[-1] // 16, kernel=False)
    return out
