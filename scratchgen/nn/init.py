"""Weight initialisation, in place, as ``torch.nn.init``.

Every initialiser writes new values into ``t.data`` (keeping its dtype and device) with random
numbers from the device's generator (``backend.generator``; reproducible after
``sg.manual_seed``), and returns ``t``.

Fans: for a weight of shape (out, in, *kernel), ``fan_in = in * prod(kernel)`` and
``fan_out = out * prod(kernel)`` (for a transposed convolution's (in, out, *kernel) weight
these are swapped, exactly as PyTorch computes them).
"""
from __future__ import annotations

import math
from typing import Any

import numpy

from scratchgen import backend
from scratchgen.autograd import Tensor

__all__ = [
    "calculate_gain", "uniform_", "normal_", "constant_", "zeros_", "ones_", "xavier_uniform_",
    "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "dcgan_init",
]


def _draw(t: Tensor, kind: str) -> Any:
    """Standard normal or U[0, 1) samples shaped like ``t`` on its device, in its dtype."""
    dev = t.device
    gen = backend.generator(dev)
    dt = t.dtype if t.dtype in (numpy.float32, numpy.float64) else numpy.dtype(numpy.float64)

    def draw():
        if kind == "normal":
            a = gen.standard_normal(t.shape, dtype=dt)
        else:
            a = gen.random(t.shape, dtype=dt)
        return a.astype(t.dtype, copy=False)

    if dev.type == "cpu":
        return draw()
    cupy = backend._cupy()
    with cupy.cuda.Device(dev.index or 0):
        return draw()


def _write(t: Tensor, values: Any) -> Tensor:
    t.data[...] = values
    return t


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The gain g that keeps activations' variance unchanged through a nonlinearity:
    1 (linear, conv, sigmoid), 5/3 (tanh), sqrt(2) (relu), sqrt(2 / (1 + a^2)) (leaky_relu
    with slope a, default 0.01), 3/4 (selu)."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d")
    if nonlinearity in linear or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError(f"negative_slope {slope!r} is not a number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(t: Tensor) -> tuple[int, int]:
    if t.ndim < 2:
        raise ValueError(
            f"fan in and fan out need a tensor with at least 2 dimensions, got shape {t.shape}"
        )
    receptive = 1
    for n in t.shape[2:]:
        receptive *= n
    return t.shape[1] * receptive, t.shape[0] * receptive


def _fan(t: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(t)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(t: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """t ~ U[a, b)."""
    return _write(t, _draw(t, "uniform") * (b - a) + a)


def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """t ~ N(mean, std^2)."""
    return _write(t, _draw(t, "normal") * std + mean)


def constant_(t: Tensor, val: float) -> Tensor:
    """t = val everywhere."""
    return _write(t, val)


def zeros_(t: Tensor) -> Tensor:
    return constant_(t, 0.0)


def ones_(t: Tensor) -> Tensor:
    return constant_(t, 1.0)


def xavier_uniform_(t: Tensor, gain: float = 1.0) -> Tensor:
    """t ~ U[-a, a], a = gain * sqrt(6 / (fan_in + fan_out))  (Glorot & Bengio, 2010)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(t)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -a, a)


def xavier_normal_(t: Tensor, gain: float = 1.0) -> Tensor:
    """t ~ N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))  (Glorot & Bengio, 2010)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(t)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform_(t: Tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu") -> Tensor:
    """t ~ U[-bound, bound], bound = gain * sqrt(3 / fan)  (He et al., 2015), with
    gain = calculate_gain(nonlinearity, a)."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(t, mode))
    bound = math.sqrt(3.0) * std
    return uniform_(t, -bound, bound)


def kaiming_normal_(t: Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu") -> Tensor:
    """t ~ N(0, std^2), std = gain / sqrt(fan)  (He et al., 2015)."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(t, mode))
    return normal_(t, 0.0, std)


def orthogonal_(t: Tensor, gain: float = 1.0) -> Tensor:
    """A (semi-)orthogonal matrix (Saxe et al., 2014): t viewed as (rows, cols) is Q from the
    QR decomposition of a Gaussian matrix, with the signs of R's diagonal moved into Q so that
    Q is uniformly (Haar) distributed; times ``gain``."""
    if t.ndim < 2:
        raise ValueError(f"orthogonal_ needs at least 2 dimensions, got shape {t.shape}")
    rows = t.shape[0]
    cols = t.size // rows
    gauss = numpy.asarray(backend.to_device(_draw(t, "normal"), "cpu"), numpy.float64)
    flat = gauss.reshape(rows, cols)
    if rows < cols:
        flat = flat.T
    q, r = numpy.linalg.qr(flat)
    q = q * numpy.sign(numpy.diag(r))
    if rows < cols:
        q = q.T
    values = backend.to_device((gain * q).reshape(t.shape).astype(t.dtype), t.device)
    return _write(t, values)


def dcgan_init(module: Any) -> Any:
    """DCGAN's initialisation (Radford et al., 2016, Sec. 4; the PyTorch DCGAN example):
    convolution, transposed-convolution and linear weights ~ N(0, 0.02^2), batch norm scales
    ~ N(1, 0.02^2), and every bias of these layers 0. Apply with ``model.apply(dcgan_init)``
    or call it on the whole model (it recurses)."""
    from scratchgen.nn.conv import Conv2d, ConvTranspose2d
    from scratchgen.nn.layers import Linear
    from scratchgen.nn.norm import _BatchNorm

    def init_one(m: Any) -> None:
        if isinstance(m, (Conv2d, ConvTranspose2d, Linear)):
            # a spectrally normalised layer keeps the learned weight as weight_orig
            w = m._parameters.get("weight_orig", m._parameters.get("weight"))
            if w is not None:
                normal_(w, 0.0, 0.02)
            if m._parameters.get("bias") is not None:
                zeros_(m.bias)
        elif isinstance(m, _BatchNorm) and m.affine:
            normal_(m.weight, 1.0, 0.02)
            zeros_(m.bias)

    for m in module.modules():
        init_one(m)
    return module
