"""Differentiable wrappers of the kernels: convolution, padding, pooling, resampling.

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

from scratchgen.kernels import conv as _conv
from scratchgen.kernels import pad as _pad
from scratchgen.kernels import pool as _pool
from scratchgen.kernels import resample as _resample
from scratchgen import backend
from scratchgen.autograd import Function, Tensor
from scratchgen.functional.registry import register
from scratchgen.functional.shape import constant_pad
from scratchgen.functional.reduction import sum

__all__ = ["conv2d", "conv_transpose2d", "pad", "pad2d", "max_pool2d", "avg_pool2d",
           "interpolate"]


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


def pair(v: Any, name: str = "argument") -> tuple[int, int]:
    """``(v, v)`` for an int, else ``v`` as a pair of ints: the (height, width) form of the
    size arguments of 2-D convolution, pooling and resampling, as PyTorch accepts them."""
    if isinstance(v, int):
        return (v, v)
    t = tuple(int(a) for a in v)
    if len(t) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    return t  # type: ignore[return-value]


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
    stride, padding, dilation = (pair(stride, "stride"), pair(padding, "padding"),
                                 pair(dilation, "dilation"))
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
    stride, padding, dilation = (pair(stride, "stride"), pair(padding, "padding"),
                                 pair(dilation, "dilation"))
    op = pair(output_padding, "output_padding")
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
        return constant_pad(x, pads, value=value)
    return LinearMap.apply(
        x, apply=functools.partial(_pad.pad2d, pads=pads, mode=mode),
        adjoint=functools.partial(_pad.pad2d_backward, pads=pads, mode=mode),
        name=f"Pad2d[{mode}]")


_PAD_MODES = {"constant": "zeros", "reflect": "reflect", "replicate": "replicate",
              "circular": "circular"}


@register()
def pad(x: Tensor, pad: Sequence[int], mode: str = "constant", value: float = 0.0) -> Tensor:
    """``torch.nn.functional.pad``: ``pad`` lists (before, after) widths from the last axis
    backwards, ``(left, right)`` for the last axis, ``(left, right, top, bottom)`` for the last two.

    For a padded axis of length n and a virtual position u in [-before, n + after), the output
    reads

        constant   value where u < 0 or u >= n
        reflect    x[n-1 - |n-1 - |u||]        (mirror about the edge, not repeating it)
        replicate  x[clip(u, 0, n-1)]
        circular   x[u mod n]

    ``"constant"`` pads any number of axes; the other modes pad the last one or two axes of an
    input of at least two dimensions (PyTorch's 2-D and 3-D (batched) cases; its 3-D volume
    padding, a 6-tuple, is not supported). Reflection needs each width below the axis length,
    circular padding at most the axis length.
    """
    widths = tuple(int(p) for p in pad)
    if mode not in _PAD_MODES:
        raise ValueError(f"pad: mode must be one of {tuple(_PAD_MODES)}, got {mode!r}")
    if mode == "constant":
        return constant_pad(x, widths, value=value)
    if len(widths) not in (2, 4):
        raise ValueError(f"pad: {mode} padding takes (left, right) or (left, right, top, bottom), "
                         f"got {widths}")
    if x.ndim < 2:
        raise ValueError(f"pad: {mode} padding needs an input of at least 2 dimensions "
                         f"((C, W) or (N, C, W) for a 2-tuple), got shape {x.shape}")
    return pad2d(x, widths + (0, 0) if len(widths) == 2 else widths, mode=_PAD_MODES[mode])


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
    size = pair(size, "size")
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
