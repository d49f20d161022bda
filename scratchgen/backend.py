"""Array back ends: NumPy on the CPU, CuPy on NVIDIA GPUs.

A device is named as in PyTorch: ``"cpu"``, ``"cuda"`` (the current GPU) or ``"cuda:N"``.
CuPy is imported only when a CUDA device is asked for, so importing scratchgen never needs it.
The same math code runs on both: it takes its array module from the data
(``get_array_module(x)``), never from ``import numpy`` directly.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy

from scratchgen.kernels import _cuda, threads

__all__ = [
    "Device", "device", "get_array_module", "to_device", "device_of", "cuda_is_available",
    "get_default_dtype", "set_default_dtype", "as_dtype", "manual_seed", "generator",
    "parse_to_args", "fork_rng", "get_rng_state", "set_rng_state", "matmul",
]


@dataclass(frozen=True)
class Device:
    """A place where arrays live: ``Device("cpu")`` or ``Device("cuda", 0)``."""

    type: str
    index: int | None = None

    def __str__(self) -> str:
        return self.type if self.type == "cpu" else f"cuda:{self.index or 0}"

    def __repr__(self) -> str:
        return f"device('{self}')"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            other = device(other)
        if not isinstance(other, Device):
            return NotImplemented
        return str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


CPU = Device("cpu")


def device(spec: str | Device | None) -> Device:
    """Parse ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (or pass a Device through)."""
    if spec is None:
        return CPU
    if isinstance(spec, Device):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"a device is given as 'cpu', 'cuda' or 'cuda:N', got {spec!r}")
    if spec == "cpu":
        return CPU
    if spec == "cuda":
        return Device("cuda", 0)
    if spec.startswith("cuda:") and spec[5:].isdigit():
        return Device("cuda", int(spec[5:]))
    raise ValueError(f"unknown device {spec!r}: expected 'cpu', 'cuda' or 'cuda:N'")


_parse_device = device  # parse_to_args takes a parameter named ``device``

_cupy_module: Any = None


def _cupy():
    """Import CuPy, or say exactly what is missing and how to get it."""
    global _cupy_module
    if _cupy_module is None:
        try:
            import cupy
        except ImportError as exc:
            raise RuntimeError(
                "a CUDA device was asked for, but CuPy is not installed: "
                "install it with `pip install 'scratchgen[cuda]'` (CuPy for CUDA 12) "
                "or the cupy-cudaXXx wheel that matches your CUDA driver"
            ) from exc
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CUDA driver missing or broken
            raise RuntimeError(
                f"CuPy is installed but no usable NVIDIA GPU was found ({exc}); "
                "use device='cpu'"
            ) from exc
        if count == 0:
            raise RuntimeError("CuPy is installed but no NVIDIA GPU was found; use device='cpu'")
        _cupy_module = cupy
    return _cupy_module


def cuda_is_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    try:
        _cupy()
    except RuntimeError:
        return False
    return True


_is_cupy = _cuda.is_cupy_array  # True for a CuPy array, without importing CuPy


def matmul(a: Any, b: Any) -> Any:
    """``a @ b`` on raw arrays (NumPy or CuPy), for the products computed outside the ops (a
    codebook's distances, a power iteration): the kernels' product, which shares the kernel
    threads with the convolutions instead of fighting BLAS's own (see ``kernels.threads``)."""
    return threads.matmul(a, b)


def get_array_module(x: Any):
    """``numpy`` or ``cupy``: the module that does math on the array ``x``."""
    if type(x) is not numpy.ndarray and _is_cupy(x):
        return _cupy()
    return numpy


def broadcast_view(x: Any, shape: tuple[int, ...]) -> Any:
    """A read-only view of ``x`` broadcast to ``shape`` (as ``xp.broadcast_to``).

    For a contiguous NumPy array the view is made directly from its strides, a fraction of the
    cost of ``numpy.broadcast_to`` (which builds an iterator), and it is on every backward pass
    of a sum or a mean.
    """
    if type(x) is not numpy.ndarray or not x.flags.c_contiguous or len(shape) < x.ndim \
            or x.size == 0:
        return get_array_module(x).broadcast_to(x, shape)
    lead = len(shape) - x.ndim
    strides = [0] * lead
    for n, m, s in zip(x.shape, shape[lead:], x.strides):
        if n != m:
            if n != 1:
                raise ValueError(f"cannot broadcast an array of shape {x.shape} to {shape}")
            s = 0
        strides.append(s)
    view = numpy.ndarray(shape, x.dtype, x, 0, tuple(strides))
    view.flags.writeable = False
    return view


def device_of(x: Any) -> Device:
    """The device an array lives on."""
    if _is_cupy(x):
        return Device("cuda", x.device.id)
    return CPU


def to_device(x: Any, dev: str | Device):
    """Move an array to ``dev`` (a copy only when it has to change place)."""
    dev = device(dev)
    if dev.type == "cpu":
        return x.get() if _is_cupy(x) else x
    cupy = _cupy()
    if dev.index is not None and dev.index >= cupy.cuda.runtime.getDeviceCount():
        raise RuntimeError(
            f"device {dev} does not exist: this machine has "
            f"{cupy.cuda.runtime.getDeviceCount()} GPU(s)"
        )
    with cupy.cuda.Device(dev.index or 0):
        return cupy.asarray(x)


def parse_to_args(args: tuple, device: Any = None, dtype: Any = None
                  ) -> tuple[Device | None, numpy.dtype | None]:
    """Sort the positional arguments of ``.to(...)`` into a device and a dtype, as PyTorch's
    ``t.to("cuda")``, ``t.to("float64")`` and ``t.to("cpu", "float64")`` do. A string that
    is neither (``"tpu"``) raises a ``ValueError`` that says so."""
    for a in args:
        if isinstance(a, Device) or (isinstance(a, str) and (a == "cpu" or a.startswith("cuda"))):
            device = a
        else:
            if isinstance(a, str):
                try:
                    numpy.dtype(a)
                except TypeError:
                    raise ValueError(f"{a!r} is neither a device ('cpu', 'cuda' or 'cuda:N') "
                                     "nor a dtype ('float32', 'float64', ...)") from None
            dtype = a
    return (None if device is None else _parse_device(device),
            None if dtype is None else as_dtype(dtype))


# ---------------------------------------------------------------------------------------------
# dtypes

_FLOAT_DTYPES = {"float32": numpy.float32, "float64": numpy.float64, "float16": numpy.float16}
_default_dtype = numpy.dtype(numpy.float32)


def as_dtype(dtype: Any) -> numpy.dtype:
    """Normalise ``"float32"``, ``numpy.float32`` or a ``numpy.dtype`` to a ``numpy.dtype``."""
    if dtype is None:
        return _default_dtype
    try:
        return numpy.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"not a dtype: {dtype!r}") from exc


def get_default_dtype() -> numpy.dtype:
    """The floating dtype new tensors get from Python floats and factories (float32 at start)."""
    return _default_dtype


def set_default_dtype(dtype: Any) -> None:
    """Set the default floating dtype (``"float32"`` or ``"float64"``)."""
    global _default_dtype
    d = numpy.dtype(dtype)
    if d.kind != "f":
        raise TypeError(f"the default dtype must be a floating dtype, got {d}")
    _default_dtype = d


# ---------------------------------------------------------------------------------------------
# random numbers: one generator per device, all reseeded by manual_seed

_seed: int | None = None
_generators: dict[str, Any] = {}


def manual_seed(seed: int) -> None:
    """Seed every device's generator: the same seed gives the same numbers on the same device."""
    global _seed
    _seed = int(seed)
    _generators.clear()


def generator(dev: str | Device = "cpu"):
    """The random generator of a device (``numpy.random.Generator`` or ``cupy.random.Generator``).

    Created on first use from the ``manual_seed`` seed (or from fresh entropy if none was set).
    """
    dev = device(dev)
    key = str(dev)
    gen = _generators.get(key)
    if gen is None:
        seed = _seed if _seed is not None else numpy.random.SeedSequence().entropy
        if dev.type == "cpu":
            gen = numpy.random.default_rng(seed)
        else:
            cupy = _cupy()
            with cupy.cuda.Device(dev.index or 0):
                gen = cupy.random.default_rng(seed)
        _generators[key] = gen
    return gen


@contextlib.contextmanager
def fork_rng(seed: int):
    """Inside the block every device's generator is a fresh one seeded with ``seed``; on exit
    the generators in use before are back, untouched (for sampling hooks during training)."""
    global _seed
    saved, saved_seed = dict(_generators), _seed
    _generators.clear()
    _seed = int(seed)
    try:
        yield
    finally:
        _generators.clear()
        _generators.update(saved)
        _seed = saved_seed


def get_rng_state() -> dict[str, Any]:
    """The state of every generator created so far (for checkpoints), as plain data."""
    state: dict[str, Any] = {"seed": _seed}
    for key, gen in _generators.items():
        if key == "cpu":
            state[key] = gen.bit_generator.state
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``get_rng_state`` returned."""
    global _seed
    _seed = state.get("seed")
    _generators.clear()
    if "cpu" in state:
        gen = numpy.random.default_rng()
        gen.bit_generator.state = state["cpu"]
        _generators["cpu"] = gen
