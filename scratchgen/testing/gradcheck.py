"""Gradient checking: compare backward's vector-Jacobian products with finite differences.

For a function f of tensors, the numerical derivative along a direction u is the central
difference

    (f(x + h u) - f(x - h u)) / 2h  =  J u + O(h^2),

and backward gives v^T J for any v. We compare the two either entry by entry (the full
Jacobian, for small inputs) or through random projections v^T J u (for large inputs: one
backward and two forward passes per direction instead of one per input element).

Finite differences need float64: in float32 a step small enough to be accurate loses most
significant digits to cancellation, and the check becomes noise.

At a kink (ReLU at 0, a tie in a max) the derivative does not exist and the two one-sided
differences (f(x+h)-f(x))/h and (f(x)-f(x-h))/h disagree. The checker notices that instead of
reporting a wrong gradient at random.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy

from scratchgen import backend
from scratchgen.autograd import Tensor, enable_grad, grad, no_grad

__all__ = ["gradcheck", "gradgradcheck", "GradcheckError", "NondifferentiablePointError"]


class GradcheckError(AssertionError):
    """The analytical gradient disagrees with finite differences."""


class NondifferentiablePointError(GradcheckError):
    """An input sits at (or within the step of) a point where the function has a kink."""


def _outputs(out: Any) -> tuple[Tensor, ...]:
    if isinstance(out, Tensor):
        return (out,)
    if isinstance(out, (tuple, list)) and all(isinstance(o, Tensor) for o in out):
        return tuple(out)
    raise TypeError(f"the checked function must return a Tensor or a tuple of Tensors, got {type(out)}")


def _flat(outs: Sequence[Tensor]) -> numpy.ndarray:
    return numpy.concatenate([numpy.asarray(backend.to_device(o.data, "cpu"), numpy.float64).ravel()
                              for o in outs]) if outs else numpy.zeros(0)


def _check_inputs(inputs: Sequence[Any]) -> list[Tensor]:
    diff = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    if not diff:
        raise ValueError("gradcheck needs at least one input tensor with requires_grad=True")
    for t in diff:
        if t.dtype != numpy.float64:
            raise TypeError(
                f"gradcheck needs float64 inputs, got {t.dtype} for a tensor of shape {t.shape}: "
                "in float32 the finite-difference step cancels most significant digits and the "
                "check compares noise; use .double()"
            )
    return diff


def _index(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in numpy.unravel_index(flat, shape))


def _evaluate(fn: Callable, inputs: Sequence[Any]) -> numpy.ndarray:
    with no_grad():
        return _flat(_outputs(fn(*inputs)))


def gradcheck(fn: Callable[..., Any], inputs: Sequence[Any], eps: float = 1e-6,
              atol: float = 1e-6, rtol: float = 1e-5, mode: str = "auto",
              n_projections: int = 4, on_kink: str = "raise", seed: int = 0,
              full_limit: int = 512) -> bool:
    """Check the backward of ``fn(*inputs)`` against central finite differences.

    Args:
        fn: maps the inputs to a Tensor or a tuple of Tensors.
        inputs: Tensors (and any other arguments); those with ``requires_grad`` are checked and
            must be float64.
        eps: the finite-difference step h.
        atol, rtol: an entry passes when |analytical - numerical| <= atol + rtol |numerical|.
        mode: ``"full"`` compares every Jacobian entry, ``"projection"`` compares v^T J u for
            ``n_projections`` random unit directions, ``"auto"`` picks full when the Jacobian
            has at most ``full_limit`` rows and columns.
        on_kink: ``"raise"`` raises ``NondifferentiablePointError`` when an input is at a kink;
            ``"skip"`` leaves those Jacobian entries out of the comparison (full mode only).
    Returns:
        True; raises ``GradcheckError`` describing the worst mismatch otherwise.
    """
    diff = _check_inputs(inputs)
    saved = [t.data for t in diff]
    for t in diff:  # perturb private copies, never the caller's arrays
        t.data = t.data.copy()
    try:
        outs = _outputs(fn(*inputs))
        n_out = sum(o.size for o in outs)
        n_in = sum(t.size for t in diff)
        if n_out == 0:
            return True
        if mode == "auto":
            mode = "full" if (n_in <= full_limit and n_out <= full_limit) else "projection"
        if mode == "full":
            _check_full(fn, inputs, diff, outs, eps, atol, rtol, on_kink)
        elif mode == "projection":
            _check_projections(fn, inputs, diff, outs, eps, atol, rtol, n_projections, seed)
        else:
            raise ValueError(f"mode must be 'auto', 'full' or 'projection', got {mode!r}")
    finally:
        for t, d in zip(diff, saved):
            t.data = d
    return True


def _vjp(outs: Sequence[Tensor], diff: Sequence[Tensor], v: numpy.ndarray) -> list[numpy.ndarray]:
    """v^T J for each differentiable input, as float64 host arrays (zeros where unused)."""
    grads_out, start = [], 0
    for o in outs:
        piece = v[start:start + o.size].reshape(o.shape)
        start += o.size
        grads_out.append(Tensor(backend.to_device(piece.astype(o.dtype), o.device)))
    used = [(o, g) for o, g in zip(outs, grads_out) if o.requires_grad]
    if not used:
        return [numpy.zeros(t.shape) for t in diff]
    gs = grad([o for o, _ in used], list(diff), [g for _, g in used], retain_graph=True,
              allow_unused=True)
    return [numpy.zeros(t.shape) if g is None else numpy.asarray(g.numpy(), numpy.float64)
            for t, g in zip(diff, gs)]


def _check_full(fn, inputs, diff, outs, eps, atol, rtol, on_kink) -> None:
    n_out = sum(o.size for o in outs)
    # analytical Jacobian, one row per output element
    rows = []
    for i in range(n_out):
        v = numpy.zeros(n_out)
        v[i] = 1.0
        rows.append(numpy.concatenate([g.ravel() for g in _vjp(outs, diff, v)]))
    analytical = numpy.stack(rows) if rows else numpy.zeros((0, 0))
    f0 = _evaluate(fn, inputs)
    col = 0
    for k, t in enumerate(diff):
        flat = t.data.reshape(-1)
        for j in range(t.size):
            orig = flat[j].item()
            flat[j] = orig + eps
            fp = _evaluate(fn, inputs)
            flat[j] = orig - eps
            fm = _evaluate(fn, inputs)
            flat[j] = orig
            numerical = (fp - fm) / (2 * eps)
            right, left = (fp - f0) / eps, (f0 - fm) / eps
            kink = numpy.abs(right - left) > 1e-3 * (1.0 + numpy.abs(numerical)) + 100 * eps
            a = analytical[:, col]
            bad = numpy.abs(a - numerical) > atol + rtol * numpy.abs(numerical)
            if numpy.any(bad & kink):
                if on_kink == "raise":
                    r = int(numpy.argmax(bad & kink))
                    raise NondifferentiablePointError(
                        f"input {k} element {_index(j, t.shape)} (value {orig:.6g}) "
                        f"is at a non-differentiable point of output element {r}: one-sided "
                        f"derivatives {left[r]:.6g} (left) and {right[r]:.6g} (right); move the "
                        "inputs away from kinks (see scratchgen.testing.strategies.arrays)"
                    )
                bad &= ~kink
            if numpy.any(bad):
                r = int(numpy.argmax(numpy.abs(a - numerical) * bad))
                raise GradcheckError(
                    f"gradient mismatch for input {k} (shape {t.shape}) element "
                    f"{_index(j, t.shape)}, output element {r}: backward gives "
                    f"{a[r]:.8g}, finite differences give {numerical[r]:.8g} "
                    f"(atol={atol}, rtol={rtol})"
                )
            col += 1


def _check_projections(fn, inputs, diff, outs, eps, atol, rtol, n_projections, seed) -> None:
    rng = numpy.random.default_rng(seed)
    n_out = sum(o.size for o in outs)
    for p in range(n_projections):
        v = rng.standard_normal(n_out)
        us = [rng.standard_normal(t.shape) for t in diff]
        norm = numpy.sqrt(sum(float((u * u).sum()) for u in us))
        us = [u / norm for u in us]
        vjps = _vjp(outs, diff, v)
        analytical = sum(float((g * u).sum()) for g, u in zip(vjps, us))
        base = [t.data.copy() for t in diff]
        xp = [backend.get_array_module(b) for b in base]
        for t, b, u, m in zip(diff, base, us, xp):
            t.data[...] = b + m.asarray(eps * u, dtype=b.dtype)
        fp = _evaluate(fn, inputs)
        for t, b, u, m in zip(diff, base, us, xp):
            t.data[...] = b - m.asarray(eps * u, dtype=b.dtype)
        fm = _evaluate(fn, inputs)
        for t, b in zip(diff, base):
            t.data[...] = b
        numerical = float(v @ (fp - fm)) / (2 * eps)
        scale = float(numpy.abs(v) @ numpy.abs(fp - fm)) / (2 * eps)
        if abs(analytical - numerical) > atol * numpy.sqrt(n_out) + rtol * max(abs(numerical),
                                                                              1e-3 * scale):
            raise GradcheckError(
                f"gradient mismatch along random projection {p}: v^T J u from backward is "
                f"{analytical:.8g}, from finite differences {numerical:.8g} "
                f"(atol={atol}, rtol={rtol})"
            )


def gradgradcheck(fn: Callable[..., Any], inputs: Sequence[Any], grad_outputs: Any = None,
                  eps: float = 1e-6, atol: float = 1e-6, rtol: float = 1e-5, mode: str = "auto",
                  on_kink: str = "raise", seed: int = 0) -> bool:
    """Check second derivatives: gradcheck of (inputs, v) -> v^T J(inputs), built with
    ``create_graph=True``. ``v`` (random when not given) is checked as an input too, which
    covers the backward's linearity in the incoming gradient."""
    _check_inputs(inputs)  # float64, at least one input requiring grad
    outs = _outputs(fn(*inputs))
    if grad_outputs is None:
        rng = numpy.random.default_rng(seed + 1)
        grad_outputs = [Tensor(backend.to_device(rng.standard_normal(o.shape), o.device),
                               requires_grad=True) for o in outs]
    elif isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    n_in = len(inputs)
    positions = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]

    def first_derivative(*args: Any):
        xs, vs = args[:n_in], args[n_in:]
        with enable_grad():  # the finite differences call this under no_grad
            outs = _outputs(fn(*xs))
            pairs = [(o, v) for o, v in zip(outs, vs) if o.requires_grad]
            gs = grad([o for o, _ in pairs], [xs[i] for i in positions], [v for _, v in pairs],
                      create_graph=True, allow_unused=True)
        # an input the outputs do not depend on has a zero (constant) gradient
        return tuple(g if g is not None else Tensor(xs[i].xp.zeros(xs[i].shape, xs[i].dtype))
                     for g, i in zip(gs, positions))

    # The graph-building backward (create_graph=True) and the array-level fast path (used
    # without it) must give the same first derivatives before the former is differentiated.
    with_graph = first_derivative(*inputs, *grad_outputs)
    outs = _outputs(fn(*inputs))
    pairs = [(o, v) for o, v in zip(outs, grad_outputs) if o.requires_grad]
    plain = grad([o for o, _ in pairs], [inputs[i] for i in positions],
                 [Tensor(v.data) for _, v in pairs], allow_unused=True)
    for k, (a, b) in enumerate(zip(with_graph, plain)):
        b_arr = numpy.zeros(a.shape) if b is None else b.numpy()
        if not numpy.allclose(a.numpy(), b_arr, rtol=1e-10, atol=1e-12):
            raise GradcheckError(
                f"backward with create_graph=True and without it disagree for input {k}: "
                f"max difference {numpy.abs(a.numpy() - b_arr).max():.3g}"
            )
    return gradcheck(first_derivative, list(inputs) + list(grad_outputs), eps=eps, atol=atol,
                     rtol=rtol, mode=mode, on_kink=on_kink, seed=seed)
