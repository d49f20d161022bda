"""The operators and methods of ``Tensor``, each one an op of ``scratchgen.functional``.

``a + b`` is ``F.add(a, b)``, ``a @ b`` is ``F.matmul(a, b)``, ``t.sum(1)`` is ``F.sum(t, 1)``:
the gradients are the ops' own. Comparisons give boolean tensors and carry no gradient.
"""
from __future__ import annotations

from typing import Any, Sequence

from scratchgen import backend

__all__ = ["TensorOperators"]

# Set by ``scratchgen.autograd`` once Tensor and the ops of ``scratchgen.functional`` exist (the
# ops are built on Tensor, so neither module can import the other first).
F: Any = None
Tensor: Any = None


class TensorOperators:
    """The operators and methods that ``Tensor`` inherits."""

    __slots__ = ()

    # ---- conversion (differentiable copies) ------------------------------------------------
    def to(self, *args: Any, device: Any = None, dtype: Any = None) -> "Tensor":
        """``t.to("cuda")``, ``t.to("float64")``, ``t.to(device, dtype)``: differentiable copy."""
        dev, dt = backend.parse_to_args(args, device, dtype)
        out = self
        if dt is not None and dt != self.dtype:
            out = F.cast(out, dt)
        if dev is not None and dev != self.device:
            out = F.to_device(out, dev)
        return out

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def cuda(self, index: int = 0) -> "Tensor":
        return self.to(f"cuda:{index}")

    def float(self) -> "Tensor":
        return self.to(dtype="float32")

    def double(self) -> "Tensor":
        return self.to(dtype="float64")

    def clone(self) -> "Tensor":
        return F.clone(self)

    # ---- operators (each one an op in scratchgen.functional) -------------------------------
    def __add__(self, other: Any) -> "Tensor":
        return F.add(self, other)

    def __radd__(self, other: Any) -> "Tensor":
        return F.add(other, self)

    def __sub__(self, other: Any) -> "Tensor":
        return F.sub(self, other)

    def __rsub__(self, other: Any) -> "Tensor":
        return F.sub(other, self)

    def __mul__(self, other: Any) -> "Tensor":
        return F.mul(self, other)

    def __rmul__(self, other: Any) -> "Tensor":
        return F.mul(other, self)

    def __truediv__(self, other: Any) -> "Tensor":
        return F.div(self, other)

    def __rtruediv__(self, other: Any) -> "Tensor":
        return F.div(other, self)

    def __pow__(self, other: Any) -> "Tensor":
        return F.pow(self, other)

    def __rpow__(self, other: Any) -> "Tensor":
        return F.pow(other, self)

    def __matmul__(self, other: Any) -> "Tensor":
        return F.matmul(self, other)

    def __rmatmul__(self, other: Any) -> "Tensor":
        return F.matmul(other, self)

    def __neg__(self) -> "Tensor":
        return F.neg(self)

    def __pos__(self) -> "Tensor":
        return self

    def __abs__(self) -> "Tensor":
        return F.abs(self)

    def __getitem__(self, index: Any) -> "Tensor":
        return F.getitem(self, index)

    # Comparisons give boolean tensors and never carry gradients.
    def _compare(self, other: Any, op: str) -> "Tensor":
        o = other.data if isinstance(other, Tensor) else other
        return Tensor(getattr(self.data, op)(o))

    def __lt__(self, other: Any) -> "Tensor":
        return self._compare(other, "__lt__")

    def __le__(self, other: Any) -> "Tensor":
        return self._compare(other, "__le__")

    def __gt__(self, other: Any) -> "Tensor":
        return self._compare(other, "__gt__")

    def __ge__(self, other: Any) -> "Tensor":
        return self._compare(other, "__ge__")

    def __eq__(self, other: Any) -> "Tensor":  # type: ignore[override]
        return self._compare(other, "__eq__")

    def __ne__(self, other: Any) -> "Tensor":  # type: ignore[override]
        return self._compare(other, "__ne__")

    # ---- methods --------------------------------------------------------------------------
    def sum(self, axis: Any = None, keepdims: bool = False) -> "Tensor":
        return F.sum(self, axis, keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> "Tensor":
        return F.mean(self, axis, keepdims)

    def var(self, axis: Any = None, keepdims: bool = False, ddof: int = 0) -> "Tensor":
        return F.var(self, axis, keepdims, ddof)

    def max(self, axis: Any = None, keepdims: bool = False) -> "Tensor":
        return F.max(self, axis, keepdims)

    def min(self, axis: Any = None, keepdims: bool = False) -> "Tensor":
        return F.min(self, axis, keepdims)

    def logsumexp(self, axis: Any = None, keepdims: bool = False) -> "Tensor":
        return F.logsumexp(self, axis, keepdims)

    def softmax(self, axis: int = -1) -> "Tensor":
        return F.softmax(self, axis)

    def log_softmax(self, axis: int = -1) -> "Tensor":
        return F.log_softmax(self, axis)

    def argmax(self, axis: Any = None) -> "Tensor":
        return Tensor(self.data.argmax(axis=axis))

    def argmin(self, axis: Any = None) -> "Tensor":
        return Tensor(self.data.argmin(axis=axis))

    def reshape(self, *shape: Any) -> "Tensor":
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return F.reshape(self, shape)

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "Tensor":
        return F.flatten(self, start_dim, end_dim)

    def transpose(self, *axes: Any) -> "Tensor":
        """``t.transpose(d0, d1)`` swaps two axes (as PyTorch); no argument reverses them."""
        if len(axes) == 2:
            perm = list(range(self.ndim))
            a, b = axes
            perm[a], perm[b] = perm[b], perm[a]
            return F.permute(self, tuple(perm))
        if not axes:
            return F.permute(self, tuple(range(self.ndim - 1, -1, -1)))
        raise TypeError("transpose takes two axes to swap, or none to reverse all")

    def permute(self, *axes: Any) -> "Tensor":
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return F.permute(self, axes)

    @property
    def T(self) -> "Tensor":
        return F.permute(self, tuple(range(self.ndim - 1, -1, -1)))

    def unsqueeze(self, axis: int) -> "Tensor":
        return F.unsqueeze(self, axis)

    def squeeze(self, axis: Any = None) -> "Tensor":
        return F.squeeze(self, axis)

    def broadcast_to(self, shape: Sequence[int]) -> "Tensor":
        return F.broadcast_to(self, tuple(shape))

    expand = broadcast_to

    def exp(self) -> "Tensor":
        return F.exp(self)

    def log(self) -> "Tensor":
        return F.log(self)

    def log1p(self) -> "Tensor":
        return F.log1p(self)

    def sqrt(self) -> "Tensor":
        return F.sqrt(self)

    def abs(self) -> "Tensor":
        return F.abs(self)

    def tanh(self) -> "Tensor":
        return F.tanh(self)

    def sigmoid(self) -> "Tensor":
        return F.sigmoid(self)

    def relu(self) -> "Tensor":
        return F.relu(self)

    def clip(self, min: Any = None, max: Any = None) -> "Tensor":
        return F.clip(self, min, max)

    clamp = clip

    def pow(self, exponent: Any) -> "Tensor":
        return F.pow(self, exponent)

    def matmul(self, other: "Tensor") -> "Tensor":
        return F.matmul(self, other)
