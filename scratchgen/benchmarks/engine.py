"""The engine's own cost: an MLP step through scratchgen against the same math in raw NumPy.

Forward and backward of a 784-400-20 MLP (ReLU hidden layer, squared-error loss) on a batch of
128, float32. The NumPy version is the hand-derived backward a textbook would write; the
difference between the two is what the Tensor/Function machinery costs. Both run in one process,
interleaved, and we report the ratio of medians.

    scratchgen bench engine [--batch 128] [--repeat 200]
"""
from __future__ import annotations

import argparse
import time

import numpy

__all__ = ["main", "run"]


def _numpy_step(x, t, w1, b1, w2, b2):
    h_pre = x @ w1 + b1
    h = numpy.maximum(h_pre, 0)
    y = h @ w2 + b2
    d = y - t
    loss = 0.5 * float((d * d).sum()) / x.shape[0]
    gy = d / x.shape[0]
    gw2 = h.T @ gy
    gb2 = gy.sum(axis=0)
    gh = gy @ w2.T
    gh_pre = gh * (h_pre > 0)
    gw1 = x.T @ gh_pre
    gb1 = gh_pre.sum(axis=0)
    return loss, (gw1, gb1, gw2, gb2)


def _scratchgen_step(x, t, params):
    import scratchgen.functional as F

    w1, b1, w2, b2 = params
    for p in params:
        p.grad = None
    h = F.relu(x @ w1 + b1)
    y = h @ w2 + b2
    d = y - t
    loss = (d * d).sum() * (0.5 / x.shape[0])
    loss.backward()
    return loss.item(), tuple(p.grad.data for p in params)


def run(batch: int = 128, repeat: int = 200, sizes=(784, 400, 20), seed: int = 0) -> dict:
    """Time both steps; return medians (seconds) and the ratio scratchgen / NumPy."""
    import scratchgen as sg

    rng = numpy.random.default_rng(seed)
    n_in, n_hid, n_out = sizes
    x = rng.standard_normal((batch, n_in)).astype(numpy.float32)
    t = rng.standard_normal((batch, n_out)).astype(numpy.float32)
    w1 = (rng.standard_normal((n_in, n_hid)) / numpy.sqrt(n_in)).astype(numpy.float32)
    b1 = numpy.zeros(n_hid, numpy.float32)
    w2 = (rng.standard_normal((n_hid, n_out)) / numpy.sqrt(n_hid)).astype(numpy.float32)
    b2 = numpy.zeros(n_out, numpy.float32)

    params = [sg.tensor(a, requires_grad=True) for a in (w1, b1, w2, b2)]
    xs, ts = sg.tensor(x), sg.tensor(t)

    ref_loss, ref_grads = _numpy_step(x, t, w1, b1, w2, b2)
    loss, grads = _scratchgen_step(xs, ts, params)
    for a, b in zip(ref_grads, grads):
        if not numpy.allclose(a, b, rtol=1e-4, atol=1e-5):
            raise AssertionError("scratchgen and NumPy gradients differ: the benchmark is void")

    for _ in range(10):  # warm-up: BLAS threads, allocator
        _numpy_step(x, t, w1, b1, w2, b2)
        _scratchgen_step(xs, ts, params)
    t_np, t_sg = [], []
    for _ in range(repeat):  # interleaved, so drifts in machine load hit both alike
        s = time.perf_counter()
        _numpy_step(x, t, w1, b1, w2, b2)
        t_np.append(time.perf_counter() - s)
        s = time.perf_counter()
        _scratchgen_step(xs, ts, params)
        t_sg.append(time.perf_counter() - s)
    flops = 2 * batch * (n_in * n_hid + n_hid * n_out) * 3 - 2 * batch * n_in * n_hid
    m_np, m_sg = float(numpy.median(t_np)), float(numpy.median(t_sg))
    return {"numpy_s": m_np, "scratchgen_s": m_sg, "ratio": m_sg / m_np,
            "numpy_gflops": flops / m_np / 1e9, "scratchgen_gflops": flops / m_sg / 1e9}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="scratchgen bench engine", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeat", type=int, default=200)
    args = p.parse_args(argv)
    r = run(args.batch, args.repeat)
    print(f"MLP 784-400-20, batch {args.batch}, float32, forward+backward (median of {args.repeat})")
    print(f"  NumPy by hand : {r['numpy_s'] * 1e3:8.3f} ms  {r['numpy_gflops']:7.1f} GFLOP/s")
    print(f"  scratchgen    : {r['scratchgen_s'] * 1e3:8.3f} ms  {r['scratchgen_gflops']:7.1f} GFLOP/s")
    print(f"  ratio scratchgen / NumPy: {r['ratio']:.3f}x  (target <= 1.15x)")
    return r


if __name__ == "__main__":
    main()
