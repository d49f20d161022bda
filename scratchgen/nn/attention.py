"""SAGAN's self-attention block for feature maps."""
from __future__ import annotations

from typing import Any

import scratchgen.functional as F
from scratchgen import backend
from scratchgen.autograd import Tensor
from scratchgen.nn.conv import Conv2d
from scratchgen.nn.module import Module
from scratchgen.nn.parameter import Parameter

__all__ = ["SelfAttention2d"]


class SelfAttention2d(Module):
    """Self-attention over the H*W positions of a feature map (Zhang et al., 2019,
    "Self-Attention Generative Adversarial Networks", Sec. 3, the form of eqs. (1)-(3)
    without the final 1x1 convolution v):

        f(x) = W_f x,  g(x) = W_g x    (1x1 convolutions to C/8 channels, at least 1)
        h(x) = W_h x                   (1x1 convolution to C channels)
        beta_{j,i} = softmax_i( f(x_i)^T g(x_j) )        (no 1/sqrt(d) scaling)
        o_j = sum_i beta_{j,i} h(x_i)
        y_j = gamma * o_j + x_j,   gamma a learnable scalar initialised to 0,

    so the block starts as the identity and learns how much non-local evidence to add. (The
    paper's final version adds o_j = v(sum_i beta_{j,i} h(x_i)) with h to C/8 channels, and
    the authors' code uses h to C/2 channels plus v; this layer keeps the C-channel h and no
    v.) The attention itself is ``F.scaled_dot_product_attention`` with queries g(x),
    keys f(x), values h(x) and scale 1.
    """

    def __init__(self, in_channels: int, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.in_channels = in_channels
        inner = max(in_channels // 8, 1)
        self.f = Conv2d(in_channels, inner, 1, device=device, dtype=dtype)
        self.g = Conv2d(in_channels, inner, 1, device=device, dtype=dtype)
        self.h = Conv2d(in_channels, in_channels, 1, device=device, dtype=dtype)
        zero = backend.numpy.zeros((1,), dtype=backend.as_dtype(dtype))
        dev = backend.device(device)
        self.gamma = Parameter(backend.to_device(zero, dev) if dev.type != "cpu" else zero)

    def forward(self, x: Tensor) -> Tensor:
        n, c, hh, ww = x.shape
        # (N, C', H, W) -> (N, H*W, C'): one row per position
        def rows(t: Tensor) -> Tensor:
            return F.permute(F.reshape(t, (n, t.shape[1], hh * ww)), (0, 2, 1))

        q, k, v = rows(self.g(x)), rows(self.f(x)), rows(self.h(x))
        o = F.scaled_dot_product_attention(q, k, v, scale=1.0)
        o = F.reshape(F.permute(o, (0, 2, 1)), (n, c, hh, ww))
        return self.gamma * o + x

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}"
