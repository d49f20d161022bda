"""Batch parallelism: parallel_for's contract, and every threaded kernel against its serial run."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from scratchgen.kernels import attention as A
from scratchgen.kernels import conv as K
from scratchgen.kernels import pool
from scratchgen.kernels import threads
from scratchgen.kernels.conv import cpu_input_grad, dispatch, geometry


@pytest.fixture
def three_threads(monkeypatch):
    """Three threads, no size too small to split (so tiny shapes take the threaded path), and
    the kernels' threads in use (so products are split too)."""
    monkeypatch.setattr(threads, "_MIN_BYTES", 1)
    monkeypatch.setattr(threads, "_num_threads", 3)
    monkeypatch.setattr(threads, "_last_parallel", float("inf"))


@pytest.fixture
def serial(monkeypatch):
    def run_serially():
        monkeypatch.setattr(threads, "_num_threads", 1)
    return run_serially


def test_slices_cover_the_range_once_in_order(three_threads):
    seen, names = [], set()
    together = threading.Barrier(3, timeout=10)  # the three slices run at the same time

    def fn(lo, hi):
        seen.append((lo, hi))
        names.add(threading.current_thread().name)
        together.wait()
        return list(range(lo, hi))

    results = threads.parallel_for(10, fn, nbytes=10)
    assert [i for r in results for i in r] == list(range(10))
    assert sorted(seen) == [(0, 3), (3, 6), (6, 10)]
    assert len(names) == 3 and threading.current_thread().name in names
    assert threads.parallel_for(0, list, nbytes=10) == []
    pair = threads.parallel_for(2, lambda lo, hi: list(range(lo, hi)), nbytes=10)
    assert pair == [[0], [1]]  # never more slices than items


def test_small_work_stays_on_the_calling_thread(monkeypatch):
    monkeypatch.setattr(threads, "_num_threads", 4)
    calls = []
    threads.parallel_for(100, lambda lo, hi: calls.append((lo, hi)), nbytes=threads._MIN_BYTES)
    assert calls == [(0, 100)]
    calls.clear()
    threads.parallel_for(100, lambda lo, hi: calls.append((lo, hi)), nbytes=3 * threads._MIN_BYTES)
    assert sorted(calls) == [(0, 33), (33, 66), (66, 100)]


def test_parallel_sum_adds_the_slices(three_threads):
    total = threads.parallel_sum(10, lambda lo, hi: np.arange(lo, hi).sum(keepdims=True),
                                 nbytes=100)
    assert total.tolist() == [45]
    assert threads.parallel_sum(1, lambda lo, hi: np.ones(2) * hi, nbytes=100).tolist() == [1, 1]


def test_a_nested_call_runs_serially(three_threads):
    inner = []

    def outer(lo, hi):
        threads.parallel_for(hi - lo, lambda a, b: inner.append((lo, a, b)), nbytes=100)

    threads.parallel_for(9, outer, nbytes=100)
    assert sorted(inner) == [(0, 0, 3), (3, 0, 3), (6, 0, 3)]


def test_an_error_in_a_slice_is_raised_after_all_slices_finish(three_threads):
    done = []

    def fn(lo, hi):
        if lo == 3:
            raise KeyError("slice 3:6")
        done.append(lo)

    with pytest.raises(KeyError, match="slice 3:6"):
        threads.parallel_for(9, fn, nbytes=100)
    assert sorted(done) == [0, 6]
    assert threads.parallel_for(3, lambda lo, hi: hi - lo, nbytes=100) == [1, 1, 1]  # still works


@pytest.mark.skipif(threads._blas is None, reason="no BLAS whose thread count can be set found")
def test_blas_runs_on_one_thread_inside_and_is_restored(three_threads):
    before = threads._blas.get()
    assert threads.blas_library() == threads._blas.path
    inside = threads.parallel_for(3, lambda lo, hi: threads._blas.get(), nbytes=100)
    assert inside == [1, 1, 1]
    assert threads._blas.get() == before
    with pytest.raises(ZeroDivisionError):
        threads.parallel_for(3, lambda lo, hi: 1 // 0, nbytes=100)
    assert threads._blas.get() == before


def test_the_default_follows_blas_and_the_environment(monkeypatch):
    monkeypatch.setenv("SCRATCHGEN_NUM_THREADS", "5")
    assert threads._default_threads() == 5
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("SCRATCHGEN_NUM_THREADS", bad)
        with pytest.raises(ValueError, match=f"SCRATCHGEN_NUM_THREADS.*{bad!r}"):
            threads._default_threads()
    monkeypatch.delenv("SCRATCHGEN_NUM_THREADS")
    expected = 1 if threads._blas is None else threads._blas.get()
    assert threads._default_threads() == expected


def test_set_num_threads(monkeypatch):
    monkeypatch.setattr(threads, "_num_threads", threads._num_threads)
    threads.set_num_threads(2)
    assert threads.get_num_threads() == 2
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="positive int"):
            threads.set_num_threads(bad)


def test_calls_from_two_python_threads_both_complete(three_threads):
    """While one Python thread's kernel holds the workers, another's runs on its own thread,
    and each gets its own results."""
    started, release = threading.Event(), threading.Event()
    results = {}

    def slow(lo, hi):
        started.set()
        release.wait(10)
        return (lo, hi)

    other = threading.Thread(target=lambda: results.update(a=threads.parallel_for(9, slow, 100)))
    other.start()
    started.wait(10)
    results["b"] = threads.parallel_for(9, lambda lo, hi: (lo, hi), 100)  # workers busy
    release.set()
    other.join(10)
    assert results["b"] == [(0, 9)]
    assert results["a"] == [(0, 3), (3, 6), (6, 9)]


def test_an_interrupt_while_waiting_leaves_working_threads(three_threads, monkeypatch):
    """Ctrl-C while the caller waits on a worker: the next kernel gets fresh workers and the
    right results (the interrupted workers may still be finishing their slices)."""
    threads.parallel_for(3, lambda lo, hi: None, nbytes=100)

    def interrupted(self):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(threads._Worker, "wait", interrupted)
        with pytest.raises(KeyboardInterrupt):
            threads.parallel_for(3, lambda lo, hi: (lo, hi), nbytes=100)
    assert threads.parallel_for(3, lambda lo, hi: (lo, hi), nbytes=100) == [(0, 1), (1, 2),
                                                                            (2, 3)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_its_own_threads(three_threads):
    threads.parallel_for(3, lambda lo, hi: None, nbytes=100)  # the parent's pool exists
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            together = threading.Barrier(3, timeout=10)

            def fn(lo, hi):
                together.wait()
                return threading.current_thread().name

            os._exit(0 if len(set(threads.parallel_for(3, fn, nbytes=100))) == 3 else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


# ---------------------------------------------------------------------------------------------
# the threaded kernels give the serial results
# ---------------------------------------------------------------------------------------------


# (x shape, w shape, stride, padding), each with a batch that does not split evenly, one per
# path of the input gradient: stride 1 (the flipped kernel), k=4 s=2 (phases), k=3 s=2 with
# 3 and 8 input channels (planes, col2im), and a 1x1 convolution (a product per image)
_CONV_CASES = {"stride1": ((7, 3, 9, 9), (5, 3, 3, 3), 1, 1),
               "phases": ((7, 64, 32, 32), (6, 64, 4, 4), 2, 1),
               "planes": ((7, 3, 9, 8), (5, 3, 3, 3), 2, 1),
               "col2im": ((7, 8, 9, 8), (5, 8, 3, 3), 2, 1),
               "pointwise": ((7, 5, 6, 6), (4, 5, 1, 1), 1, 0)}


@pytest.mark.parametrize("path", list(_CONV_CASES))
def test_threaded_convolution_equals_serial(three_threads, serial, path):
    x_shape, w_shape, s, p = _CONV_CASES[path]
    geo = geometry._geometry("test", x_shape, w_shape, s, p, 1)
    assert (path == "pointwise") == dispatch._pointwise(geo)
    assert path == "pointwise" or cpu_input_grad._input_gradient_path(geo) == path
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b, bt = rng.standard_normal(w_shape[0]), rng.standard_normal(w_shape[1])
    gy = rng.standard_normal(K.conv2d_forward(x, w, b, s, p).shape)

    def run():
        y, cols = K.conv2d_forward_with_columns(x, w, b, s, p)
        return [K.conv2d_forward(x, w, b, s, p), y, cols.matrix if cols else 0,
                K.conv2d_backward_input(gy, w, x.shape, s, p),
                K.conv2d_backward_weight(gy, x, w.shape, s, p),
                K.conv2d_backward_weight(gy, x, w.shape, s, p, columns=cols),
                K.conv_transpose2d_forward(gy, w, bt, s, p)]

    results = run()
    serial()
    expected = run()
    for got, want in zip(results, expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("args", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                  dict(kernel_size=2, dilation=2, ceil_mode=True)])
def test_threaded_max_pool_equals_serial(three_threads, serial, args):
    rng = np.random.default_rng(3)
    x = rng.integers(-3, 3, (5, 2, 9, 8)).astype(np.float64)  # ties
    x[0, 1, 2, 3] = np.nan
    y, argmax = pool.max_pool2d_forward(x, **args)
    serial()
    y1, argmax1 = pool.max_pool2d_forward(x, **args)
    np.testing.assert_array_equal(y, y1)
    np.testing.assert_array_equal(argmax, argmax1)


def test_threaded_attention_equals_serial(three_threads, serial):
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((5, 2, 11, 4)), rng.standard_normal((1, 2, 7, 4)),
               rng.standard_normal((5, 2, 7, 3)))
    mask = rng.random((5, 1, 11, 7)) < 0.7
    dout = rng.standard_normal((5, 2, 11, 3))
    out, lse = A.attention_forward(q, k, v, mask, causal=True)
    grads = A.attention_backward(dout, q, k, v, out, lse, mask, causal=True)
    serial()
    out1, lse1 = A.attention_forward(q, k, v, mask, causal=True)
    grads1 = A.attention_backward(dout, q, k, v, out1, lse1, mask, causal=True)
    for got, want in zip((out, lse) + grads, (out1, lse1) + grads1):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shapes", [((7, 5), (5, 3)), ((4, 1, 6, 5), (3, 5, 2)), ((5,), (5, 4)),
                                    ((6, 5), (5,)), ((0, 5), (5, 3)), ((2, 0, 4), (4, 3)),
                                    ((1, 3, 7, 5), (5, 2)), ((3, 5), (1, 2, 5, 4))])
@pytest.mark.parametrize("recent", [True, False], ids=["kernel-threads", "blas-threads"])
def test_matmul_equals_numpy(three_threads, monkeypatch, shapes, recent):
    """On the kernels' threads (a parallel kernel ran just now) and on BLAS's: numpy.matmul,
    broadcasting and 1-D operands included."""
    monkeypatch.setattr(threads, "_last_parallel",
                        threads.time.monotonic() + (0 if recent else -10 * threads._SPIN_SECONDS))
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    got, want = threads.matmul(a, b), np.matmul(a, b)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_matmul_splits_only_while_kernel_threads_are_in_use(three_threads, monkeypatch):
    calls = []
    real = threads._split
    monkeypatch.setattr(threads, "_split", lambda n, fn, nbytes, kernel: calls.append(
        (n, kernel)) or real(n, fn, nbytes, kernel))
    a, b = np.ones((9, 4)), np.ones((4, 2))
    monkeypatch.setattr(threads, "_last_parallel", -float("inf"))
    threads.matmul(a, b)
    assert calls == []
    threads.parallel_for(3, lambda lo, hi: None, nbytes=100)  # a parallel kernel runs
    kernel_time = threads._last_parallel
    threads.matmul(a, b)
    threads.matmul(np.ones((1, 6, 4)), b)  # one batch entry: its rows are split
    threads.matmul(np.ones((5, 6, 4)), b)  # else the batch
    assert calls == [(3, True), (9, False), (6, False), (5, False)]
    # the products' own splits do not keep the kernels' threads "in use": once the kernels
    # stop, products go back to BLAS's threads
    assert threads._last_parallel == kernel_time
    monkeypatch.setattr(threads, "_last_parallel", kernel_time - 2 * threads._SPIN_SECONDS)
    threads.matmul(a, b)
    assert len(calls) == 4
