"""Numerically stable loss primitives.

Each is written from ops that are themselves gradient-checked, in the stable form: the
logits never pass through an explicit sigmoid or softmax followed by a log.
"""
from __future__ import annotations

import contextlib
from typing import Any

from scratchgen import backend
from scratchgen.autograd import Function, Tensor
from scratchgen.functional.elementwise import as_tensor, log, log1p, sigmoid
from scratchgen.functional.piecewise import abs, clip, maximum
from scratchgen.functional.reduction import logsumexp, mean, sum
from scratchgen.functional.registry import register

__all__ = ["binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "mse_loss",
           "l1_loss", "one_hot", "reduce"]


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


# PyTorch clamps each log of binary_cross_entropy at -100, so that a probability of exactly 0
# or 1 gives a finite loss (100 per element) rather than inf.
_LOG_FLOOR = -100.0
# ... and divides its gradient by max(p (1 - p), 1e-12), finite at p = 0 and p = 1.
_BCE_GRAD_EPS = 1e-12


class BCE(Function):
    """l(p, t) = -(t max(log p, -100) + (1 - t) max(log(1 - p), -100)), on probabilities p.

    dl/dp = (p - t) / (p (1 - p)) (PyTorch divides by max(p (1 - p), 1e-12)) and
    dl/dt = max(log(1 - p), -100) - max(log p, -100).
    """

    def forward(self, p, t):
        xp = backend.get_array_module(p)
        with _ignore_log_of_zero(xp):
            log_p = xp.maximum(xp.log(p), _LOG_FLOOR)
            log_q = xp.maximum(xp.log1p(-p), _LOG_FLOOR)
        return -(t * log_p + (1 - t) * log_q)

    def backward(self, g):
        p, t = self.inputs
        need_p, need_t = self.needs_input_grad
        gp = g * (p - t) / maximum(p * (1.0 - p), _BCE_GRAD_EPS) if need_p else None
        gt = None
        if need_t:
            with _ignore_log_of_zero(p.xp):
                gt = g * (clip(log1p(-p), _LOG_FLOOR) - clip(log(p), _LOG_FLOOR))
        return gp, gt


def _ignore_log_of_zero(xp):
    """NumPy warns on log(0) = -inf, which the clamp at -100 then makes finite on purpose."""
    errstate = getattr(xp, "errstate", None)
    return errstate(divide="ignore") if errstate is not None else contextlib.nullcontext()


@register()
def binary_cross_entropy(input: Tensor, target: Any, weight: Any = None,
                         reduction: str = "mean") -> Tensor:
    """``torch.nn.functional.binary_cross_entropy``: the Bernoulli negative log-likelihood of
    ``target`` in [0, 1] given probabilities ``input`` in [0, 1],

        l_i = -w_i (t_i log p_i + (1 - t_i) log(1 - p_i)),

    each log clamped at -100 as PyTorch does; ``weight`` broadcasts to the input's shape.
    On logits, ``binary_cross_entropy_with_logits`` is the stable form.
    """
    target = as_tensor(target, input)
    if target.shape != input.shape:
        raise ValueError(f"binary_cross_entropy: input {input.shape} and target {target.shape} "
                         "must have the same shape")
    if input.size and (float(input.data.min()) < 0.0 or float(input.data.max()) > 1.0):
        raise ValueError("binary_cross_entropy: input must hold probabilities in [0, 1] "
                         "(for logits use binary_cross_entropy_with_logits)")
    loss = BCE.apply(input, target)
    if weight is not None:
        loss = loss * as_tensor(weight, input)
    return reduce(loss, reduction)


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
