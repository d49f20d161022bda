"""The engine's own cost: an MLP step through scratchgen against the same math in raw NumPy.

Forward and backward of a 784-400-20 MLP (ReLU hidden layer, mean squared error) on a batch of
128, float32, written twice:

* ``ops``: with the elementary ops ``x @ W + b`` (W stored (in, out)) and ``(d * d).mean()``;
* ``linear``: the way the library's layers write it, ``F.linear(x, W, b) = x W^T + b`` (W stored
  (out, in), as ``nn.Linear``) and ``F.mse_loss``.

Each is timed against NumPy code that does exactly the same array operations with a
hand-derived backward, so the ratio is what the Tensor/Function machinery costs and nothing
else. Both run in one process, interleaved; we report the ratio of medians.

    scratchgen bench engine [--batch 128] [--repeat 300]
"""
from __future__ import annotations

import argparse
import time

import numpy

from scratchgen.kernels import memory

__all__ = ["main", "run"]


def _numpy_step(x, t, w1, b1, w2, b2, out_in: bool):
    """Forward and hand-written backward. ``out_in``: weights stored (out, in)."""
    h_pre = (x @ w1.T if out_in else x @ w1) + b1
    h = numpy.maximum(h_pre, 0)
    y = (h @ w2.T if out_in else h @ w2) + b2
    d = y - t
    loss = float((d * d).mean())
    gy = d * (2.0 / d.size)
    gw2 = gy.T @ h if out_in else h.T @ gy
    gb2 = gy.sum(axis=0)
    gh = gy @ w2 if out_in else gy @ w2.T
    gh_pre = gh * (h_pre > 0)
    gw1 = gh_pre.T @ x if out_in else x.T @ gh_pre
    gb1 = gh_pre.sum(axis=0)
    return loss, (gw1, gb1, gw2, gb2)


def _scratchgen_step(x, t, params, out_in: bool):
    import scratchgen.functional as F

    w1, b1, w2, b2 = params
    for p in params:
        p.grad = None
    if out_in:
        h = F.relu(F.linear(x, w1, b1))
        loss = F.mse_loss(F.linear(h, w2, b2), t)
    else:
        h = F.relu(x @ w1 + b1)
        d = h @ w2 + b2 - t
        loss = (d * d).mean()
    loss.backward()
    return loss.item(), tuple(p.grad.data for p in params)


def run(batch: int = 128, repeat: int = 300, sizes=(784, 400, 20), seed: int = 0,
        variant: str = "ops") -> dict:
    """Time both steps; return medians (seconds), GFLOP/s and the ratio scratchgen / NumPy."""
    import scratchgen as sg

    out_in = variant == "linear"
    rng = numpy.random.default_rng(seed)
    n_in, n_hid, n_out = sizes
    x = rng.standard_normal((batch, n_in)).astype(numpy.float32)
    t = rng.standard_normal((batch, n_out)).astype(numpy.float32)
    w1 = (rng.standard_normal((n_in, n_hid)) / numpy.sqrt(n_in)).astype(numpy.float32)
    w2 = (rng.standard_normal((n_hid, n_out)) / numpy.sqrt(n_hid)).astype(numpy.float32)
    if out_in:
        w1, w2 = w1.T.copy(), w2.T.copy()
    b1 = numpy.zeros(n_hid, numpy.float32)
    b2 = numpy.zeros(n_out, numpy.float32)
    arrays = (w1, b1, w2, b2)
    params = [sg.tensor(a, requires_grad=True) for a in arrays]
    xs, ts = sg.tensor(x), sg.tensor(t)

    _, ref_grads = _numpy_step(x, t, *arrays, out_in)
    _, grads = _scratchgen_step(xs, ts, params, out_in)
    for a, b in zip(ref_grads, grads):
        if not numpy.allclose(a, b, rtol=1e-4, atol=1e-5):
            raise AssertionError("scratchgen and NumPy gradients differ: the benchmark is void")

    for _ in range(10):  # warm-up: BLAS threads, allocator
        _numpy_step(x, t, *arrays, out_in)
        _scratchgen_step(xs, ts, params, out_in)
    t_np, t_sg = [], []
    for _ in range(repeat):  # interleaved, so drifts in machine load hit both alike
        s = time.perf_counter()
        _numpy_step(x, t, *arrays, out_in)
        t_np.append(time.perf_counter() - s)
        s = time.perf_counter()
        _scratchgen_step(xs, ts, params, out_in)
        t_sg.append(time.perf_counter() - s)
    # forward 2 matmuls; backward: weight gradients of both layers, input gradient of layer 2
    flops = 2 * batch * (2 * n_in * n_hid + 3 * n_hid * n_out)
    m_np, m_sg = float(numpy.median(t_np)), float(numpy.median(t_sg))
    return {"numpy_s": m_np, "scratchgen_s": m_sg, "ratio": m_sg / m_np,
            "numpy_gflops": flops / m_np / 1e9, "scratchgen_gflops": flops / m_sg / 1e9}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="scratchgen bench engine", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeat", type=int, default=300)
    args = p.parse_args(argv)
    memory.configure_malloc()  # reuse freed temporaries, as training does
    print(f"MLP 784-400-20, batch {args.batch}, float32, forward+backward "
          f"(median of {args.repeat}, interleaved)")
    results = {}
    for variant, label in (("ops", "x @ W + b, W (in, out)"),
                           ("linear", "F.linear, W (out, in)")):
        r = run(args.batch, args.repeat, variant=variant)
        results[variant] = r
        print(f"  {label:24s} NumPy {r['numpy_s'] * 1e3:6.3f} ms ({r['numpy_gflops']:5.1f} GFLOP/s)"
              f"  scratchgen {r['scratchgen_s'] * 1e3:6.3f} ms ({r['scratchgen_gflops']:5.1f} "
              f"GFLOP/s)  ratio {r['ratio']:.3f}x")
    print("  target: ratio <= 1.15x")
    return results


if __name__ == "__main__":
    main()
