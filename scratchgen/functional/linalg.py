"""Matrix products."""
from __future__ import annotations

from scratchgen.kernels import threads as _threads

from scratchgen.autograd import Function, Tensor
from scratchgen.functional.registry import register
from scratchgen.functional.shape import permute, reshape, sum_to, sum_to_array

__all__ = ["matmul", "linear"]


def transpose_last(t: Tensor) -> Tensor:
    """The transpose of the last two axes, ``t^T`` of each matrix in a batch (``t.mT``)."""
    axes = list(range(t.ndim))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return permute(t, tuple(axes))


class MatMul(Function):
    """C = A B over the last two axes, leading axes broadcast.

    dL/dA = dL/dC B^T and dL/dB = A^T dL/dC, each summed over the axes broadcasting added.
    """

    def forward(self, a, b):
        return _threads.matmul(a, b)

    def backward(self, g):
        a, b = self.inputs
        need_a, need_b = self.needs_input_grad
        ga = sum_to(matmul(g, transpose_last(b)), a.shape) if need_a else None
        gb = sum_to(matmul(transpose_last(a), g), b.shape) if need_b else None
        return ga, gb

    def backward_arrays(self, g):
        a, b = self.inputs[0].data, self.inputs[1].data
        need_a, need_b = self.needs_input_grad
        ga = sum_to_array(_threads.matmul(g, b.swapaxes(-1, -2)), a.shape) if need_a else None
        gb = sum_to_array(_threads.matmul(a.swapaxes(-1, -2), g), b.shape) if need_b else None
        return ga, gb


@register()
def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product with NumPy's rules: 1-D operands are promoted to a row or column and the
    added axis is removed afterwards; leading (batch) axes broadcast."""
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError(f"matmul takes two tensors, got {type(a).__name__} and {type(b).__name__}")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: 0-d operands are not matrices (shapes {a.shape} and {b.shape})")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(
            f"matmul: shapes {a.shape} and {b.shape} are not aligned: "
            f"{a.shape[-1]} (last axis of the first) != "
            f"{b.shape[-2 if b.ndim > 1 else 0]} (first matrix axis of the second)"
        )
    if a.ndim == 1:
        return reshape(matmul(reshape(a, (1,) + a.shape), b), b.shape[:-2] + b.shape[-1:])
    if b.ndim == 1:
        return reshape(matmul(a, reshape(b, b.shape + (1,))), a.shape[:-1])
    return MatMul.apply(a, b)


class Linear(Function):
    """y = x W^T + b with W (out, in), as ``torch.nn.functional.linear``; x is (..., in).

    dL/dx = g W,  dL/dW = g^T x (summed over the leading axes),  dL/db = sum of g over them.
    One node instead of a matmul and an add: the layer every MLP is made of.
    """

    def forward(self, x, w, b=None):
        y = _threads.matmul(x, w.T)
        if b is not None:
            y += b  # y is a fresh array: adding in place saves one pass over it
        return y

    def backward(self, g):
        x, w = self.inputs[0], self.inputs[1]
        need = self.needs_input_grad
        gx = matmul(g, w) if need[0] else None
        gw = None
        if need[1]:
            g2 = reshape(g, (-1, g.shape[-1]))
            gw = matmul(transpose_last(g2), reshape(x, (-1, x.shape[-1])))
        if len(self.inputs) == 2:
            return gx, gw
        gb = sum_to(g, self.inputs[2].shape) if need[2] else None
        return gx, gw, gb

    def backward_arrays(self, g):
        x, w = self.inputs[0].data, self.inputs[1].data
        need = self.needs_input_grad
        gx = _threads.matmul(g, w) if need[0] else None
        gw = None
        if need[1]:
            gw = _threads.matmul(g.reshape(-1, g.shape[-1]).T, x.reshape(-1, x.shape[-1]))
        if len(self.inputs) == 2:
            return gx, gw
        gb = g.reshape(-1, g.shape[-1]).sum(axis=0) if need[2] else None
        return gx, gw, gb


@register()
def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x W^T + b for x (..., in), W (out, in), b (out,)."""
    if weight.ndim != 2 or x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input {x.shape} and weight {weight.shape} do not fit: the weight must be "
            f"(out, {x.shape[-1] if x.ndim else '?'})"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias {bias.shape} must be ({weight.shape[0]},) for weight {weight.shape}")
    if bias is None:
        return Linear.apply(x, weight)
    return Linear.apply(x, weight, bias)
