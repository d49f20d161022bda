"""Tensor factories: zeros, ones, full, arange, linspace, eye, randn, rand, randint, *_like."""
from __future__ import annotations

from typing import Any, Sequence

import numpy

from scratchgen import backend
from scratchgen.autograd import Tensor

__all__ = ["zeros", "ones", "full", "arange", "linspace", "eye", "randn", "rand", "randint",
           "zeros_like", "ones_like", "randn_like", "rand_like", "normal", "uniform"]


def _shape(shape: Sequence[Any]) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(n) for n in shape)


def _on_device(fn):
    """Run an array-creating call on the right GPU when the device is 'cuda:N'."""
    def run(device: Any, *args: Any, **kwargs: Any):
        dev = backend.device(device)
        if dev.type == "cpu":
            return fn(numpy, *args, **kwargs)
        cupy = backend._cupy()
        with cupy.cuda.Device(dev.index or 0):
            return fn(cupy, *args, **kwargs)
    return run


def zeros(*shape: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros."""
    arr = _on_device(lambda xp: xp.zeros(_shape(shape), dtype=backend.as_dtype(dtype)))(device)
    return Tensor(arr, requires_grad=requires_grad)


def ones(*shape: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones."""
    arr = _on_device(lambda xp: xp.ones(_shape(shape), dtype=backend.as_dtype(dtype)))(device)
    return Tensor(arr, requires_grad=requires_grad)


def full(shape: Sequence[int], value: float, dtype: Any = None, device: Any = None,
         requires_grad: bool = False) -> Tensor:
    """A tensor filled with ``value``."""
    arr = _on_device(lambda xp: xp.full(tuple(shape), value, dtype=backend.as_dtype(dtype)))(device)
    return Tensor(arr, requires_grad=requires_grad)


def arange(start: float, stop: float | None = None, step: float = 1, dtype: Any = None,
           device: Any = None) -> Tensor:
    """Evenly spaced values in [start, stop); integers unless a float is involved."""
    if stop is None:
        start, stop = 0, start
    if dtype is None and all(float(v).is_integer() for v in (start, stop, step)):
        dt = numpy.dtype(numpy.int64)
    else:
        dt = backend.as_dtype(dtype)
    return Tensor(_on_device(lambda xp: xp.arange(start, stop, step, dtype=dt))(device))


def linspace(start: float, stop: float, num: int, dtype: Any = None, device: Any = None) -> Tensor:
    """``num`` evenly spaced values from start to stop inclusive."""
    dt = backend.as_dtype(dtype)
    return Tensor(_on_device(lambda xp: xp.linspace(start, stop, num, dtype=dt))(device))


def eye(n: int, m: int | None = None, dtype: Any = None, device: Any = None) -> Tensor:
    """The identity matrix."""
    dt = backend.as_dtype(dtype)
    return Tensor(_on_device(lambda xp: xp.eye(n, m, dtype=dt))(device))


def _random(method: str, shape: tuple[int, ...], dtype: Any, device: Any, *args: Any) -> Any:
    dt = backend.as_dtype(dtype)
    gen = backend.generator(device)
    dev = backend.device(device)
    def draw():
        if method == "standard_normal" and dt in (numpy.float32, numpy.float64):
            return gen.standard_normal(shape, dtype=dt)
        if method == "random" and dt in (numpy.float32, numpy.float64):
            return gen.random(shape, dtype=dt)
        return getattr(gen, method)(*args, size=shape).astype(dt)
    if dev.type == "cpu":
        return draw()
    cupy = backend._cupy()
    with cupy.cuda.Device(dev.index or 0):
        return draw()


def randn(*shape: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples from the device's generator (see ``manual_seed``)."""
    return Tensor(_random("standard_normal", _shape(shape), dtype, device), requires_grad)


def rand(*shape: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1)."""
    return Tensor(_random("random", _shape(shape), dtype, device), requires_grad)


def normal(mean: float, std: float, shape: Sequence[int], dtype: Any = None,
           device: Any = None) -> Tensor:
    """Samples of N(mean, std^2)."""
    z = _random("standard_normal", tuple(shape), dtype, device)
    return Tensor(z * backend.as_dtype(dtype).type(std) + backend.as_dtype(dtype).type(mean))


def uniform(low: float, high: float, shape: Sequence[int], dtype: Any = None,
            device: Any = None) -> Tensor:
    """Samples of U[low, high)."""
    u = _random("random", tuple(shape), dtype, device)
    dt = backend.as_dtype(dtype).type
    return Tensor(u * dt(high - low) + dt(low))


def randint(low: int, high: int, shape: Sequence[int], device: Any = None) -> Tensor:
    """Integers uniform in [low, high), int64."""
    gen = backend.generator(device)
    dev = backend.device(device)
    if dev.type == "cpu":
        return Tensor(gen.integers(low, high, size=tuple(shape), dtype=numpy.int64))
    cupy = backend._cupy()
    with cupy.cuda.Device(dev.index or 0):
        return Tensor(gen.integers(low, high, size=tuple(shape)).astype(numpy.int64))


def zeros_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return zeros(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def ones_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return ones(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def randn_like(t: Tensor, dtype: Any = None) -> Tensor:
    return randn(t.shape, dtype=dtype or t.dtype, device=t.device)


def rand_like(t: Tensor, dtype: Any = None) -> Tensor:
    return rand(t.shape, dtype=dtype or t.dtype, device=t.device)
