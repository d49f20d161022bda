"""Pooling, resampling and padding layers (thin wrappers over the functional ops)."""
from __future__ import annotations

from typing import Any

import scratchgen.functional as F
from scratchgen.autograd import Tensor
from scratchgen.nn.module import Module

__all__ = ["MaxPool2d", "AvgPool2d", "Upsample", "ReflectionPad2d", "ReplicationPad2d",
           "ZeroPad2d"]


class MaxPool2d(Module):
    """y[n, c, i, j] = max of x over the kernel_size window at (i s, j s) (after padding with
    -inf); ``stride`` defaults to ``kernel_size``."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding, self.dilation, self.ceil_mode = padding, dilation, ceil_mode

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                            self.ceil_mode)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """y[n, c, i, j] = mean of x over the kernel_size window at (i s, j s); ``stride``
    defaults to ``kernel_size``; padded zeros count in the mean unless
    ``count_include_pad=False``."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad = count_include_pad

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class Upsample(Module):
    """Resize (N, C, H, W) inputs to ``size`` or by ``scale_factor``, with nearest-neighbour
    or bilinear interpolation (``align_corners`` as PyTorch)."""

    def __init__(self, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                 align_corners: bool | None = None) -> None:
        super().__init__()
        if (size is None) == (scale_factor is None):
            raise ValueError("Upsample needs exactly one of size and scale_factor")
        if mode not in ("nearest", "bilinear"):
            raise ValueError(f"Upsample mode must be 'nearest' or 'bilinear', got {mode!r}")
        if mode == "nearest" and align_corners is not None:
            raise ValueError("align_corners applies to mode='bilinear' only")
        self.size, self.scale_factor = size, scale_factor
        self.mode, self.align_corners = mode, align_corners

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, size=self.size, scale_factor=self.scale_factor, mode=self.mode,
                             align_corners=self.align_corners)

    def extra_repr(self) -> str:
        what = f"size={self.size}" if self.size is not None else \
            f"scale_factor={self.scale_factor}"
        s = f"{what}, mode='{self.mode}'"
        if self.align_corners is not None:
            s += f", align_corners={self.align_corners}"
        return s


def _pads(padding: Any) -> tuple[int, int, int, int]:
    if isinstance(padding, int):
        return (padding,) * 4  # type: ignore[return-value]
    p = tuple(int(v) for v in padding)
    if len(p) != 4:
        raise ValueError(f"padding must be an int or (left, right, top, bottom), got {padding!r}")
    return p  # type: ignore[return-value]


class _Pad2d(Module):
    _mode = "zeros"

    def __init__(self, padding: Any) -> None:
        super().__init__()
        self.padding = _pads(padding)

    def forward(self, x: Tensor) -> Tensor:
        return F.pad2d(x, self.padding, mode=self._mode)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ReflectionPad2d(_Pad2d):
    """Pad by mirroring at the border without repeating the edge (x[-1] = x[1]); padding is
    an int or (left, right, top, bottom). Used by CycleGAN's and pix2pix's generators."""

    _mode = "reflect"


class ReplicationPad2d(_Pad2d):
    """Pad by repeating the edge values; padding is an int or (left, right, top, bottom)."""

    _mode = "replicate"


class ZeroPad2d(_Pad2d):
    """Pad with zeros; padding is an int or (left, right, top, bottom)."""

    _mode = "zeros"
