"""Numerically stable loss primitives.

Each is written from ops that are themselves gradient-checked, in the stable form: the
logits never pass through an explicit sigmoid or softmax followed by a log.
"""
from __future__ import annotations

from typing import Any

from scratchgen import backend
from scratchgen.autograd import Function, Tensor
from scratchgen.functional.elementwise import abs, as_tensor, sigmoid
from scratchgen.functional.reduction import logsumexp, mean, sum
from scratchgen.functional.registry import register

__all__ = ["binary_cross_entropy_with_logits", "cross_entropy", "mse_loss", "l1_loss", "one_hot",
           "reduce"]


def reduce(loss: Tensor, reduction: str) -> Tensor:
    """Apply a PyTorch-style ``reduction``: ``"mean"``, ``"sum"`` or ``"none"``."""
    if reduction == "mean":
        return mean(loss)
    if reduction == "sum":
        return sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


class BCEWithLogits(Function):
    """l(x, t) = max(x, 0) - x t + log(1 + e^{-|x|})  (= -t log s(x) - (1-t) log(1-s(x)))

    dl/dx = s(x) - t and dl/dt = -x.
    """

    def forward(self, x, t):
        xp = backend.get_array_module(x)
        return xp.maximum(x, 0) - x * t + xp.log1p(xp.exp(-xp.abs(x)))

    def backward(self, g):
        x, t = self.inputs
        need_x, need_t = self.needs_input_grad
        return (g * (sigmoid(x) - t) if need_x else None,
                -(g * x) if need_t else None)


@register()
def binary_cross_entropy_with_logits(logits: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Bernoulli negative log-likelihood of ``target`` in [0, 1] given logits, stably."""
    target = as_tensor(target, logits)
    if target.shape != logits.shape:
        raise ValueError(
            f"binary_cross_entropy_with_logits: logits {logits.shape} and target {target.shape} "
            "must have the same shape"
        )
    return reduce(BCEWithLogits.apply(logits, target), reduction)


def one_hot(indices: Any, num_classes: int, dtype: Any = None) -> Tensor:
    """A (..., num_classes) tensor with 1 at each index and 0 elsewhere (no gradient)."""
    idx = indices.data if isinstance(indices, Tensor) else indices
    xp = backend.get_array_module(idx)
    idx = xp.asarray(idx)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"one_hot needs integer indices, got dtype {idx.dtype}")
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= num_classes):
        raise ValueError(
            f"one_hot: indices must lie in [0, {num_classes}), got range "
            f"[{int(idx.min())}, {int(idx.max())}]"
        )
    eye = xp.eye(num_classes, dtype=backend.as_dtype(dtype))
    return Tensor(eye[idx])


@register()
def cross_entropy(logits: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """-log softmax(logits)[target] = logsumexp(logits) - logits[target], for (N, C) logits
    (or (N, C, ...) with class axis 1, as PyTorch) and integer targets of shape (N, ...)."""
    tgt = target.data if isinstance(target, Tensor) else target
    if logits.ndim < 2:
        raise ValueError(f"cross_entropy needs logits of shape (N, C, ...), got {logits.shape}")
    expected = (logits.shape[0],) + logits.shape[2:]
    if tuple(tgt.shape) != expected:
        raise ValueError(
            f"cross_entropy: logits {logits.shape} need integer targets of shape {expected}, "
            f"got {tuple(tgt.shape)}"
        )
    c = logits.shape[1]
    onehot = one_hot(tgt, c, dtype=logits.dtype)
    if logits.ndim > 2:  # class axis last, to match the one-hot layout
        axes = (0,) + tuple(range(2, logits.ndim)) + (1,)
        logits = logits.permute(axes)
    nll = logsumexp(logits, -1) - sum(logits * onehot, -1)
    return reduce(nll, reduction)


class SquaredError(Function):
    """l = c * sum_i (x_i - t_i)^2 with c = 1/n (``"mean"``) or 1 (``"sum"``), or the elementwise
    (x - t)^2 (``"none"``), as one node: the loss every regression ends in.

    dl/dx = 2 c (x - t) g and dl/dt = -dl/dx, with g the incoming gradient (a scalar when
    reduced).
    """

    def __init__(self, reduction: str) -> None:
        self.reduction = reduction

    def forward(self, x, t):
        d = self.diff = x - t
        if self.reduction == "none":
            return d * d
        total = (d * d).sum()
        return total * d.dtype.type(1.0 / d.size) if self.reduction == "mean" else total

    def _scale(self, dtype) -> Any:
        return dtype.type(2.0 / self.diff.size if self.reduction == "mean" else 2.0)

    def backward(self, g):
        x, t = self.inputs
        need_x, need_t = self.needs_input_grad
        gx = (g * float(self._scale(x.dtype))) * (x - t)
        return (gx if need_x else None, -gx if need_t else None)

    def backward_arrays(self, g):
        need_x, need_t = self.needs_input_grad
        gx = (g * self._scale(self.diff.dtype)) * self.diff
        return (gx if need_x else None, -gx if need_t else None)


@register()
def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """(input - target)^2, reduced."""
    target = as_tensor(target, input)
    if target.shape != input.shape:
        raise ValueError(f"mse_loss: input {input.shape} and target {target.shape} differ in shape")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return SquaredError.apply(input, target, reduction=reduction)


@register()
def l1_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """|input - target|, reduced."""
    target = as_tensor(target, input)
    if target.shape != input.shape:
        raise ValueError(f"l1_loss: input {input.shape} and target {target.shape} differ in shape")
    return reduce(abs(input - target), reduction)
