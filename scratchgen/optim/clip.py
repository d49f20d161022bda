"""Gradient clipping, as ``torch.nn.utils.clip_grad_norm_`` / ``clip_grad_value_``.

Clipping replaces ``p.grad`` with a new Tensor: a gradient array may be shared by several
tensors, so it is never scaled in place.
"""
from __future__ import annotations

import math
from typing import Iterable

from scratchgen import backend
from scratchgen.autograd import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _with_grads(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float,
                    norm_type: float = 2.0, error_if_nonfinite: bool = False) -> float:
    """Rescale all gradients together so that their joint norm is at most ``max_norm``
    (Pascanu et al., 2013):

        total = (sum_p ||g_p||_q^q)^(1/q)    (max_p max|g_p| for q = inf)
        g_p <- g_p * max_norm / (total + 1e-6)   when that factor is below 1.

    Returns the total norm before clipping, as a Python float.
    """
    params = _with_grads(parameters)
    if not params:
        return 0.0
    q = float(norm_type)
    if q == math.inf:
        total = max(float(backend.get_array_module(p.grad.data).abs(p.grad.data).max())
                    if p.grad.size else 0.0 for p in params)
    else:
        acc = 0.0
        for p in params:
            g = p.grad.data
            xp = backend.get_array_module(g)
            acc += float((xp.abs(g.astype(xp.float64)) ** q).sum())
        total = acc ** (1.0 / q)
    if not math.isfinite(total) and error_if_nonfinite:
        raise RuntimeError(f"the total norm of order {q} of the gradients is {total}, so "
                           "clip_grad_norm_ cannot clip them")
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for p in params:
            g = p.grad.data
            p.grad = Tensor(g * g.dtype.type(coef))
    return total


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clip every gradient element to [-clip_value, clip_value]."""
    c = float(clip_value)
    for p in _with_grads(parameters):
        xp = backend.get_array_module(p.grad.data)
        p.grad = Tensor(xp.clip(p.grad.data, -c, c))
