"""Convolution layers: Conv2d, ConvTranspose2d and PixelCNN's MaskedConv2d."""
from __future__ import annotations

from typing import Any

import scratchgen.functional as F
from scratchgen.functional.conv import pair
from scratchgen import backend
from scratchgen.autograd import Tensor
from scratchgen.nn.layers import _empty, reset_parameters_like_pytorch
from scratchgen.nn.module import Module

__all__ = ["Conv2d", "ConvTranspose2d", "MaskedConv2d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _check_groups(groups: int) -> None:
    if groups != 1:
        raise NotImplementedError(
            f"grouped convolution (groups={groups}) is not supported; use groups=1"
        )


class Conv2d(Module):
    """2-D convolution (a cross-correlation, as every deep-learning library computes):

        y[n, o] = b[o] + sum_c w[o, c] * x[n, c]     (* the 2-D cross-correlation)

    over NCHW inputs, with weight (out_channels, in_channels, kh, kw) initialised as PyTorch's
    (kaiming_uniform(a=sqrt(5)), bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))). ``padding`` is an
    int, a pair, ``"valid"`` (0) or ``"same"`` (output size = input size, stride 1);
    ``padding_mode`` pads with zeros, a reflection, the edge values or wrapping around.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        _check_groups(groups)
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        self.dilation = pair(dilation, "dilation")
        self._same_pads: tuple[int, int, int, int] | None = None
        if padding == "valid":
            padding = 0
        if padding == "same":
            if self.stride != (1, 1):
                raise ValueError("padding='same' needs stride 1 (as PyTorch)")
            # total padding d (k - 1) per axis; the odd one out goes to the right / bottom
            (th, tw) = (d * (k - 1) for d, k in zip(self.dilation, self.kernel_size))
            self._same_pads = (tw // 2, tw - tw // 2, th // 2, th - th // 2)
            self.padding: Any = "same"
        else:
            self.padding = pair(padding, "padding")
        self.groups = groups
        self.padding_mode = padding_mode
        self.weight = _empty((out_channels, in_channels) + self.kernel_size, device, dtype)
        if bias:
            self.bias = _empty((out_channels,), device, dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_parameters_like_pytorch(self.weight, self.bias)

    def _conv(self, x: Tensor, weight: Tensor) -> Tensor:
        padding = self.padding
        if self._same_pads is not None:
            left, right, top, bottom = self._same_pads
            if left == right and top == bottom:
                padding = (top, left)
            else:
                x = F.pad2d(x, self._same_pads, mode=self.padding_mode)
                padding = (0, 0)
        return F.conv2d(x, weight, self.bias, stride=self.stride, padding=padding,
                        dilation=self.dilation, padding_mode=self.padding_mode)

    def forward(self, x: Tensor) -> Tensor:
        return self._conv(x, self.weight)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding!r}" if isinstance(self.padding, str) else \
                f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class ConvTranspose2d(Module):
    """2-D transposed convolution, the adjoint (gradient w.r.t. the input) of a convolution
    with the same hyperparameters; weight (in_channels, out_channels, kh, kw). The output side
    is (H - 1) s - 2 p + d (k - 1) + output_padding + 1 (Dumoulin & Visin, 2016)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, output_padding: Any = 0, groups: int = 1, bias: bool = True,
                 dilation: Any = 1, padding_mode: str = "zeros", device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        _check_groups(groups)
        if padding_mode != "zeros":
            raise ValueError(f"ConvTranspose2d supports padding_mode='zeros' only, got "
                             f"{padding_mode!r} (as PyTorch)")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        self.padding = pair(padding, "padding")
        self.output_padding = pair(output_padding, "output_padding")
        self.dilation = pair(dilation, "dilation")
        self.groups = groups
        self.padding_mode = padding_mode
        self.weight = _empty((in_channels, out_channels) + self.kernel_size, device, dtype)
        if bias:
            self.bias = _empty((out_channels,), device, dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_parameters_like_pytorch(self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv_transpose2d(x, self.weight, self.bias, stride=self.stride,
                                  padding=self.padding, output_padding=self.output_padding,
                                  dilation=self.dilation)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.output_padding != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.bias is None:
            s += ", bias=False"
        return s


class MaskedConv2d(Conv2d):
    """PixelCNN's masked convolution (van den Oord et al., 2016, "Pixel Recurrent Neural
    Networks", Sec. 3.4): the kernel only sees pixels that come before the centre in raster
    order (rows top to bottom, each row left to right),

        y = conv2d(x, w * M),  M[i, j] = 1 for (i, j) before the centre (kh//2, kw//2),
                               M[centre] = 1 for type 'B' and 0 for type 'A'.

    Type 'A' (the first layer) cannot see the pixel it predicts; type 'B' (later layers) can
    see its own position's features, which depend only on earlier pixels. Because the mask
    multiplies the weight inside the forward pass, masked weights get exactly zero gradient.
    The mask is spatial only (channels are not split into colour groups).
    """

    def __init__(self, mask_type: str, in_channels: int, out_channels: int, kernel_size: Any,
                 stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1,
                 bias: bool = True, padding_mode: str = "zeros", device: Any = None,
                 dtype: Any = None) -> None:
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, device, dtype)
        self.mask_type = mask_type
        kh, kw = self.kernel_size
        mask = backend.numpy.ones((1, 1, kh, kw), dtype=self.weight.dtype)
        mask[:, :, kh // 2, kw // 2 + (mask_type == "B"):] = 0
        mask[:, :, kh // 2 + 1:, :] = 0
        # derived from the constructor arguments, so not saved in the state dict
        self.register_buffer("mask", Tensor(backend.to_device(mask, self.weight.device)),
                             persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return self._conv(x, self.weight * self.mask)

    def extra_repr(self) -> str:
        return f"{self.mask_type!r}, " + super().extra_repr()
