"""Differentiable wrappers of the kernels: convolution, padding, pooling, resampling, attention.

Convolution is linear in its input and in its weight, and its three derivatives are each other's
adjoints. Writing A_w for the map x -> conv2d(x, w):

    y  = conv2d(x, w)              = A_w x
    gx = conv_transpose2d(gy, w)   = A_w^T gy        (the "transposed convolution")
    gw = conv2d_weight(x, gy)      = the bilinear form <gy, A_w x> differentiated in w

so ``Conv2d``, ``ConvTranspose2d`` and ``Conv2dWeight`` are written once each, and the backward
of every one of them is built from the other two: convolutions are differentiable to any order,
which WGAN-GP and R1 need (they backpropagate through a critic's input gradient).

Padding, average pooling, nearest/bilinear resampling and max-pool's gradient scatter are fixed
linear maps: one ``LinearMap`` Function (forward A, backward A^T) serves them all.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

from scratchgen.kernels import attention as _attn
from scratchgen.kernels import conv as _conv
from scratchgen.kernels import pad as _pad
from scratchgen.kernels import pool as _pool
from scratchgen.kernels import resample as _resample
from scratchgen import backend
from scratchgen.autograd import Function, Tensor
from scratchgen.functional.elementwise import where
from scratchgen.functional.linalg import matmul
from scratchgen.functional.reduction import softmax, sum
from scratchgen.functional.registry import register
from scratchgen.functional.shape import pad as _constant_pad
from scratchgen.functional.shape import permute, sum_to

__all__ = ["conv2d", "conv_transpose2d", "pad2d", "max_pool2d", "avg_pool2d", "interpolate",
           "scaled_dot_product_attention"]


# ---- the convolution triple ------------------------------------------------------------------

class _ConvBase(Function):
    """Shared geometry: the convolution maps a big map ``x_shape`` to a small one with weight
    (O, C, kh, kw), stride, padding and dilation."""

    def __init__(self, stride, padding, dilation, x_shape=None, w_shape=None) -> None:
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.x_shape, self.w_shape = x_shape, w_shape

    @property
    def geometry(self) -> dict[str, Any]:
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation}


class Conv2d(_ConvBase):
    """y = conv(x, w) + b. Inputs (x, w) or (x, w, b). When the weight gradient will be
    needed, the forward keeps its im2col matrix for it (``kernels.conv.Columns``)."""

    columns = None

    def forward(self, x, w, b=None):
        if self.needs_input_grad[1:2] == (True,):
            y, self.columns = _conv.conv2d_forward_with_columns(x, w, b, **self.geometry)
            return y
        return _conv.conv2d_forward(x, w, b, **self.geometry)

    def backward(self, g):
        x, w = self.inputs[0], self.inputs[1]
        need = self.needs_input_grad
        gx = ConvTranspose2d.apply(g, w, x_shape=x.shape, **self.geometry) if need[0] else None
        gw = Conv2dWeight.apply(x, g, w_shape=w.shape, **self.geometry) if need[1] else None
        if len(self.inputs) == 2:
            return gx, gw
        return gx, gw, (sum(g, (0, 2, 3)) if need[2] else None)

    def backward_arrays(self, g):
        x, w = self.inputs[0].data, self.inputs[1].data
        need = self.needs_input_grad
        gx = _conv.conv2d_backward_input(g, w, x.shape, **self.geometry) if need[0] else None
        gw = _conv.conv2d_backward_weight(g, x, w.shape, **self.geometry,
                                          columns=self.columns) if need[1] else None
        if len(self.inputs) == 2:
            return gx, gw
        return gx, gw, (_conv.conv2d_backward_bias(g) if need[2] else None)


class ConvTranspose2d(_ConvBase):
    """y = A_w^T x (+ b): the adjoint of the convolution that maps ``x_shape`` maps to x's
    shape. Inputs (x, w) or (x, w, b); w is (C_in, C_out, kh, kw) as PyTorch's."""

    def forward(self, x, w, b=None):
        y = _conv.conv2d_backward_input(x, w, self.x_shape, **self.geometry)
        if b is not None:
            y = y + b.reshape(1, -1, 1, 1)
        return y

    def backward(self, g):
        x, w = self.inputs[0], self.inputs[1]
        need = self.needs_input_grad
        # <A^T x, G> = <x, A G>: the input gradient is a plain convolution of G
        gx = Conv2d.apply(g, w, **self.geometry) if need[0] else None
        gw = Conv2dWeight.apply(g, x, w_shape=w.shape, **self.geometry) if need[1] else None
        if len(self.inputs) == 2:
            return gx, gw
        return gx, gw, (sum(g, (0, 2, 3)) if need[2] else None)

    def backward_arrays(self, g):
        x, w = self.inputs[0].data, self.inputs[1].data
        need = self.needs_input_grad
        gx = columns = None
        if need[0] and need[1]:  # a convolution of g, whose im2col the weight gradient reuses
            gx, columns = _conv.conv2d_forward_with_columns(g, w, None, **self.geometry)
            if gx.shape != x.shape:  # output_padding >= stride: one spare row or column
                columns = None
        elif need[0]:
            gx = _conv.conv2d_forward(g, w, None, **self.geometry)
        gw = _conv.conv2d_backward_weight(x, g, w.shape, **self.geometry,
                                          columns=columns) if need[1] else None
        if len(self.inputs) == 2:
            return gx, gw
        return gx, gw, (_conv.conv2d_backward_bias(g) if need[2] else None)


class Conv2dWeight(_ConvBase):
    """gw = d<gy, conv(x, w)>/dw as a function of (x, gy): bilinear, so its derivatives are
    <V, gw> = <gy, conv(x, V)> = <x, conv_transpose(gy, V)>."""

    def forward(self, x, gy):
        return _conv.conv2d_backward_weight(gy, x, self.w_shape, **self.geometry)

    def backward(self, v):
        x, gy = self.inputs
        need = self.needs_input_grad
        gx = ConvTranspose2d.apply(gy, v, x_shape=x.shape, **self.geometry) if need[0] else None
        ggy = Conv2d.apply(x, v, **self.geometry) if need[1] else None
        return gx, ggy

    def backward_arrays(self, v):
        x, gy = self.inputs[0].data, self.inputs[1].data
        need = self.needs_input_grad
        gx = _conv.conv2d_backward_input(gy, v, x.shape, **self.geometry) if need[0] else None
        ggy = _conv.conv2d_forward(x, v, None, **self.geometry) if need[1] else None
        return gx, ggy


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(a) for a in v)
    if len(v) != 2:
        raise ValueError(f"expected an int or a pair of ints, got {v}")
    return v  # type: ignore[return-value]


def _check_conv_args(name: str, x: Tensor, w: Tensor, b: Tensor | None, w_in_axis: int) -> None:
    if x.ndim != 4:
        raise ValueError(f"{name}: input must be (N, C, H, W), got shape {x.shape}")
    if w.ndim != 4:
        raise ValueError(f"{name}: weight must be 4-D, got shape {w.shape}")
    if x.shape[1] != w.shape[w_in_axis]:
        raise ValueError(
            f"{name}: input {x.shape} has {x.shape[1]} channels but weight {w.shape} expects "
            f"{w.shape[w_in_axis]}"
        )
    out_axis = 1 - w_in_axis
    if b is not None and b.shape != (w.shape[out_axis],):
        raise ValueError(f"{name}: bias {b.shape} must be ({w.shape[out_axis]},) for weight {w.shape}")


@register()
def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
           padding: Any = 0, dilation: Any = 1, padding_mode: str = "zeros") -> Tensor:
    """2-D cross-correlation, as ``torch.nn.functional.conv2d`` (groups=1):

        y[n, o, i, j] = b[o] + sum_{c, a, e} w[o, c, a, e] x_pad[n, c, i s + a d, j s + e d]

    ``padding_mode`` zeros, reflect, replicate or circular (reflect/replicate/circular pad the
    input first, as ``torch.nn.Conv2d`` does)."""
    _check_conv_args("conv2d", x, weight, bias, 1)
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    if padding_mode != "zeros" and padding != (0, 0):
        ph, pw = padding
        x = pad2d(x, (pw, pw, ph, ph), mode=padding_mode)
        padding = (0, 0)
    args = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d.apply(*args, stride=stride, padding=padding, dilation=dilation)


@register()
def conv_transpose2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, dilation: Any = 1) -> Tensor:
    """Transposed convolution, as ``torch.nn.functional.conv_transpose2d`` (groups=1): the
    adjoint of conv2d, with weight (C_in, C_out, kh, kw). Output size per axis:
    (H - 1) s - 2 p + d (k - 1) + output_padding + 1."""
    _check_conv_args("conv_transpose2d", x, weight, bias, 0)
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    op = _pair(output_padding)
    n, _, h, w = x.shape
    out_hw = tuple(_conv.conv_transpose_output_size(size, k, s, p, o, d) for size, k, s, p, o, d
                   in zip((h, w), weight.shape[2:], stride, padding, op, dilation))
    if any(a >= s for a, s in zip(op, stride)):
        # PyTorch also allows output_padding < dilation; those extra rows lie beyond every
        # window of the convolution this op is the adjoint of, so we do not support them.
        raise ValueError(f"conv_transpose2d: output_padding {op} must be smaller than the "
                         f"stride {stride}")
    if min(out_hw) <= 0:
        raise ValueError(f"conv_transpose2d: input {x.shape} with weight {weight.shape}, "
                         f"stride {stride}, padding {padding} gives an empty output {out_hw}")
    x_shape = (n, weight.shape[1]) + out_hw
    args = (x, weight) if bias is None else (x, weight, bias)
    return ConvTranspose2d.apply(*args, x_shape=x_shape, stride=stride, padding=padding,
                                 dilation=dilation)


# ---- fixed linear maps -----------------------------------------------------------------------

class LinearMap(Function):
    """y = A x for a fixed linear map A, given as array functions ``apply`` (A) and ``adjoint``
    (A^T). Its backward is A^T g, itself a LinearMap whose backward is A again: every fixed
    linear map is differentiable to any order."""

    def __init__(self, apply: Callable, adjoint: Callable, name: str) -> None:
        self.apply_fn, self.adjoint_fn, self.op_name = apply, adjoint, name

    @property
    def name(self) -> str:  # shown by viz.graph and anomaly errors
        return self.op_name

    def forward(self, x):
        return self.apply_fn(x)

    def backward(self, g):
        return LinearMap.apply(g, apply=self.adjoint_fn, adjoint=self.apply_fn,
                               name=self.op_name + "Backward")

    def backward_arrays(self, g):
        return self.adjoint_fn(g)


@register()
def pad2d(x: Tensor, pads: Sequence[int], mode: str = "zeros", value: float = 0.0) -> Tensor:
    """Pad the last two axes by pads = (left, right, top, bottom) with zeros (or ``value``),
    reflection (CycleGAN's generators), replication or circular wrap-around."""
    pads = tuple(int(p) for p in pads)
    if mode == "zeros" and value != 0.0:  # affine, not linear: the general constant pad
        return _constant_pad(x, pads, value=value)
    return LinearMap.apply(
        x, apply=functools.partial(_pad.pad2d, pads=pads, mode=mode),
        adjoint=functools.partial(_pad.pad2d_backward, pads=pads, mode=mode),
        name=f"Pad2d[{mode}]")


@register()
def avg_pool2d(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False, count_include_pad: bool = True) -> Tensor:
    """Mean over each window, as ``torch.nn.functional.avg_pool2d``."""
    kw = dict(kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
              count_include_pad=count_include_pad)
    return LinearMap.apply(
        x, apply=functools.partial(_pool.avg_pool2d_forward, **kw),
        adjoint=functools.partial(_pool.avg_pool2d_backward, x_shape=x.shape, **kw),
        name="AvgPool2d")


def _gather_planes(h, argmax):
    """h[n, c, argmax[n, c, i, j]] over the flattened (H*W) planes: the adjoint of the scatter
    that sends each pooled gradient to the position of its window's maximum."""
    xp = backend.get_array_module(h)
    n, c = argmax.shape[:2]
    flat = h.reshape(n, c, -1)
    return xp.take_along_axis(flat, argmax.reshape(n, c, -1), axis=2).reshape(argmax.shape)


class MaxPool2d(Function):
    """y = max over each window. The gradient goes to the (first) maximum of each window: a
    scatter S with the argmax fixed, so backward is the LinearMap S (and its own backward the
    gather S^T); the second derivative in x is zero, as for any piecewise-linear function."""

    def __init__(self, **params: Any) -> None:
        self.params = params

    def forward(self, x):
        y, self.argmax = _pool.max_pool2d_forward(x, **self.params)
        return y

    def _scatter(self) -> Callable:
        return functools.partial(_pool.max_pool2d_backward, argmax=self.argmax,
                                 x_shape=self.inputs[0].shape)

    def backward(self, g):
        return LinearMap.apply(g, apply=self._scatter(),
                               adjoint=functools.partial(_gather_planes, argmax=self.argmax),
                               name="MaxPool2dBackward")

    def backward_arrays(self, g):
        return self._scatter()(g)


@register()
def max_pool2d(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False) -> Tensor:
    """Max over each window, as ``torch.nn.functional.max_pool2d``; at ties the first maximum
    in window order gets the gradient."""
    return MaxPool2d.apply(x, kernel_size=kernel_size, stride=stride, padding=padding,
                           dilation=dilation, ceil_mode=ceil_mode)


@register()
def interpolate(x: Tensor, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                align_corners: bool | None = None) -> Tensor:
    """Resize (N, C, H, W) maps, as ``torch.nn.functional.interpolate`` with mode ``nearest``
    or ``bilinear`` (``align_corners`` only for bilinear; default False)."""
    if x.ndim != 4:
        raise ValueError(f"interpolate: input must be (N, C, H, W), got shape {x.shape}")
    in_hw = x.shape[2:]
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: give exactly one of size and scale_factor")
    if size is None:
        sf = (scale_factor, scale_factor) if not isinstance(scale_factor, (tuple, list)) \
            else tuple(scale_factor)
        size = (int(in_hw[0] * sf[0]), int(in_hw[1] * sf[1]))
    size = _pair(size)
    if mode == "nearest":
        if align_corners is not None:
            raise ValueError("interpolate: align_corners applies to bilinear mode only")
        return LinearMap.apply(
            x, apply=functools.partial(_resample.upsample_nearest2d, size=size),
            adjoint=functools.partial(_resample.upsample_nearest2d_backward, in_size=in_hw),
            name="UpsampleNearest2d")
    if mode == "bilinear":
        ac = bool(align_corners)
        return LinearMap.apply(
            x, apply=functools.partial(_resample.upsample_bilinear2d, size=size, align_corners=ac),
            adjoint=functools.partial(_resample.upsample_bilinear2d_backward, in_size=in_hw,
                                      align_corners=ac),
            name="UpsampleBilinear2d")
    raise ValueError(f"interpolate: mode must be 'nearest' or 'bilinear', got {mode!r}")


# ---- attention ---------------------------------------------------------------------------------

class Attention(Function):
    """O = softmax(scale Q K^T + mask) V over the last two axes.

    The array backward rebuilds P from the saved row log-sum-exp (kernels.attention); the
    Tensor backward writes the same equations with ops so it can be differentiated again:

        P = softmax(S),  dV = P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(dO * O)),
        dQ = scale dS K,  dK = scale dS^T Q.
    """

    def __init__(self, mask: Any, causal: bool, scale: float | None) -> None:
        self.mask, self.causal, self.scale = mask, causal, scale

    def forward(self, q, k, v):
        out, self.lse = _attn.attention_forward(q, k, v, self.mask, self.causal, self.scale)
        return out

    def backward_arrays(self, g):
        q, k, v = (t.data for t in self.inputs)
        return _attn.attention_backward(g, q, k, v, self._outputs[0], self.lse, self.mask,
                                        self.causal, self.scale)

    def _allowed(self, lq: int, lk: int, xp):
        """Boolean (.., Lq, Lk) array of the pairs that may attend, or None for all."""
        allowed = None if self.mask is None else xp.asarray(self.mask, dtype=bool)
        if self.causal:
            tri = xp.tril(xp.ones((lq, lk), dtype=bool))
            allowed = tri if allowed is None else allowed & tri
        return allowed

    def backward(self, g):
        q, k, v = self.inputs
        out = self.output()
        d = q.shape[-1]
        scale = self.scale if self.scale is not None else 1.0 / d ** 0.5
        s = matmul(q, _t(k)) * scale
        allowed = self._allowed(q.shape[-2], k.shape[-2], q.xp)
        if allowed is not None:
            xp = q.xp
            full = xp.broadcast_to(allowed, s.shape)
            s = where(full, s, -1e30)  # finite, so fully masked rows give no NaN
            any_row = full.any(axis=-1, keepdims=True).astype(q.dtype)
        p = softmax(s, -1)
        if allowed is not None:
            p = p * Tensor(full.astype(q.dtype) * any_row)
        need_q, need_k, need_v = self.needs_input_grad
        dv = sum_to(matmul(_t(p), g), v.shape) if need_v else None
        if not (need_q or need_k):
            return None, None, dv
        dp = matmul(g, _t(v))
        ds = p * (dp - sum(g * out, -1, keepdims=True))
        dq = sum_to(matmul(ds, k) * scale, q.shape) if need_q else None
        dk = sum_to(matmul(_t(ds), q) * scale, k.shape) if need_k else None
        return dq, dk, dv


def _t(x: Tensor) -> Tensor:
    axes = list(range(x.ndim))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return permute(x, tuple(axes))


@register()
def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask: Any = None,
                                 causal: bool = False, scale: float | None = None) -> Tensor:
    """softmax(Q K^T / sqrt(d)) V for (..., L, d) tensors. ``mask`` is boolean (True = may
    attend), broadcastable to (..., Lq, Lk); ``causal`` lets query i see keys j <= i only. A
    query that may attend to nothing gets output 0 (PyTorch gives NaN)."""
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ValueError(f"attention needs (..., L, d) tensors, got {q.shape}, {k.shape}, {v.shape}")
    m = mask.data if isinstance(mask, Tensor) else mask
    return Attention.apply(q, k, v, mask=m, causal=causal, scale=scale)

