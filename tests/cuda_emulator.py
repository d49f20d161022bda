"""A stand-in for CuPy that runs the CUDA C kernels of ``kernels/cuda/`` on the CPU.

The CUDA tests compare every kernel, op and layer on the device with the NumPy path. Without
a GPU they would only skip, and CUDA code that never ran is CUDA code that does not work. So
where there is no GPU but there is a C++ compiler, ``setup_for_tests`` (called by
``tests/conftest.py``) puts this module in ``sys.modules`` as ``cupy`` (and ``cupyx``):

* its ``ndarray`` is a NumPy array that says it is a CuPy one (so ``kernels`` and
  ``scratchgen.backend`` take their CUDA paths), and, as CuPy does, refuses to meet a NumPy
  array in an arithmetic operation or a ``cupy.*`` function, and gives 0-d arrays, not
  scalars, for reductions and single elements;
* the array functions (``cupy.empty``, ``cupy.matmul``, ``cupy.random``, ...) are NumPy's,
  returning such arrays;
* ``RawModule`` compiles the ``.cu`` source with the host compiler and ``cuda_emulator.h``
  (CUDA's built-ins: ``blockIdx``, ``threadIdx``, ``__syncthreads``, ``__shared__``,
  ``atomicAdd``, ...) and runs every launch over its whole grid on the CPU;
* a launch packs its arguments by CuPy's rules (a Python ``int`` is a ``long long``, a
  ``float`` a ``double``, a NumPy scalar keeps its type, an array is a pointer to its data) and
  checks each against the kernel's C signature: an argument CuPy would pass with the wrong type
  (a ``double`` for a ``float`` parameter, a float64 array for a ``float*``, a non-contiguous
  array) is an error here, where on a GPU it silently gives wrong numbers.

What it cannot see: races between threads that touch the same memory without atomics,
out-of-bounds reads that stay inside the process, and differences between NVRTC and the host
compiler. The kernels' index arithmetic, masks, reductions and launch arguments it checks in
full, in float32 and float64.
"""
from __future__ import annotations

import atexit
import ctypes
import functools
import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import types
from typing import Any

import numpy as np

HEADER = pathlib.Path(__file__).with_name("cuda_emulator.h")
__all__ = ["compiler", "install", "make_module", "ndarray"]


def compiler() -> str | None:
    """The host C++ compiler the emulator uses ($CXX, else c++ / g++ / clang++), or None."""
    names = [os.environ["CXX"]] if os.environ.get("CXX") else ["c++", "g++", "clang++"]
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


# ---------------------------------------------------------------------------------------------
# arrays


def _is_host_array(a: Any) -> bool:
    return isinstance(a, np.ndarray) and not isinstance(a, ndarray) and a.ndim > 0


def _host_arrays_in(args: Any) -> bool:
    for a in args:
        if isinstance(a, (list, tuple)):
            if _host_arrays_in(a):
                return True
        elif _is_host_array(a):
            return True
    return False


class ndarray(np.ndarray):
    """A "device" array: a NumPy array whose type lives in the ``cupy`` module."""

    __module__ = "cupy"

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if _host_arrays_in(inputs) or _host_arrays_in(kwargs.get("out", ())):
            raise TypeError(f"Unsupported type {np.ndarray}: {ufunc.__name__} mixes a NumPy "
                            f"array with a CuPy array")
        inputs = tuple(a.view(np.ndarray) if isinstance(a, ndarray) else a for a in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(o.view(np.ndarray) if isinstance(o, ndarray) else o
                                  for o in kwargs["out"])
        return _device(getattr(ufunc, method)(*inputs, **kwargs))

    def __getitem__(self, index: Any) -> Any:
        return _device(super().__getitem__(index))

    def get(self) -> np.ndarray:
        return np.array(self.view(np.ndarray))

    @property
    def device(self) -> "_Device":
        return _Device(0)


def _device(result: Any) -> Any:
    """Results as device arrays; as in CuPy, a scalar result is a 0-d device array."""
    if isinstance(result, np.generic):
        return np.asarray(result).view(ndarray)
    if isinstance(result, np.ndarray) and not isinstance(result, ndarray):
        return result.view(ndarray)
    if isinstance(result, tuple):
        return tuple(_device(r) for r in result)
    return result


def asarray(a: Any, dtype: Any = None) -> ndarray:
    """A device array: ``a`` itself if it is one already (of ``dtype``), else a copy."""
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == dtype else a.astype(dtype)
    return np.array(a, dtype=dtype).view(ndarray)


def asnumpy(a: Any) -> np.ndarray:
    return a.get() if isinstance(a, ndarray) else np.asarray(a)


def _numpy_function(name: str, namespace: Any = np):
    fn = getattr(namespace, name)

    @functools.wraps(fn)
    def device_function(*args, **kwargs):
        if _host_arrays_in(args) or _host_arrays_in(tuple(kwargs.values())):
            raise TypeError(f"Unsupported type {np.ndarray}: cupy.{name} takes CuPy arrays")
        return _device(fn(*args, **kwargs))

    return device_function


# ---------------------------------------------------------------------------------------------
# kernels

_C_SCALARS = {
    "bool": np.dtype(np.bool_), "char": np.dtype(np.int8), "signed char": np.dtype(np.int8),
    "unsigned char": np.dtype(np.uint8), "short": np.dtype(np.int16),
    "int": np.dtype(np.int32), "unsigned": np.dtype(np.uint32),
    "unsigned int": np.dtype(np.uint32), "long long": np.dtype(np.int64),
    "long long int": np.dtype(np.int64), "unsigned long long": np.dtype(np.uint64),
    "size_t": np.dtype(np.uint64), "float": np.dtype(np.float32),
    "double": np.dtype(np.float64),
}
_MARK = "EMULATED_GLOBAL_FUNCTION"


class _Param:
    """One parameter of a kernel's C signature: its C type and what it takes from Python."""

    def __init__(self, decl: str) -> None:
        decl = " ".join(decl.replace("__restrict__", " ").replace("__restrict", " ").split())
        m = re.fullmatch(r"(.*?[\s*&])(\w+)", decl)
        if m is None:
            raise ValueError(f"cannot read the kernel parameter {decl!r}")
        self.c_type, self.name = m.group(1).strip(), m.group(2)
        self.pointer = self.c_type.endswith("*")
        base = " ".join(w for w in self.c_type.rstrip("*").split() if w not in ("const",
                                                                               "volatile"))
        if base not in _C_SCALARS:
            raise ValueError(f"the emulator does not know the C type {base!r} of {self.name}")
        self.dtype = _C_SCALARS[base]


def _signatures(source: str, cxx: str, include_dir: pathlib.Path) -> dict[str, list[_Param]]:
    """name -> parameters of every ``extern "C" __global__`` function, read from the
    preprocessed source (kernels are often stamped out by macros)."""
    out = subprocess.run([cxx, "-E", "-P", "-x", "c++", f"-D__global__={_MARK}", "-"],
                         input=source, capture_output=True, text=True, cwd=include_dir)
    if out.returncode:
        raise RuntimeError(f"preprocessing failed:\n{out.stderr}")
    sigs = {}
    for m in re.finditer(rf'extern\s+"C"\s+{_MARK}\s+void\s+(\w+)\s*\(([^)]*)\)', out.stdout):
        params = [p for p in m.group(2).split(",") if p.strip()]
        sigs[m.group(1)] = [_Param(p) for p in params]
    return sigs


def _launcher(name: str, params: list[_Param], synchronizing: bool) -> str:
    unpack = ", ".join(f"*({p.c_type}*)a[{i}]" for i, p in enumerate(params))
    return (f'extern "C" void emulate_{name}(void** a, unsigned gx, unsigned gy, unsigned gz, '
            f"unsigned bx, unsigned by, unsigned bz) {{\n"
            f"    emu::launch(dim3{{gx, gy, gz}}, dim3{{bx, by, bz}}, "
            f"{'true' if synchronizing else 'false'}, [&] {{ {name}({unpack}); }});\n}}\n")


class RawKernel:
    """One ``__global__`` function of an emulated module: ``kernel(grid, block, args)``."""

    def __init__(self, lib: ctypes.CDLL, name: str, params: list[_Param]) -> None:
        self.name, self.params = name, params
        self._fn = getattr(lib, f"emulate_{name}")
        self._fn.restype = None
        self._fn.argtypes = [ctypes.POINTER(ctypes.c_void_p)] + [ctypes.c_uint] * 6

    def _pack(self, i: int, param: _Param, arg: Any) -> Any:
        where = f"{self.name}: argument {i} ({param.c_type} {param.name})"
        if isinstance(arg, np.ndarray) and not isinstance(arg, ndarray):
            raise TypeError(f"{where}: a NumPy array cannot be passed to a CUDA kernel")
        if isinstance(arg, ndarray):
            if not param.pointer:
                raise TypeError(f"{where}: got an array for a scalar parameter")
            if arg.dtype != param.dtype:
                raise TypeError(f"{where}: got a {arg.dtype} array")
            if not arg.flags.c_contiguous:
                raise TypeError(f"{where}: the array is not C-contiguous; a kernel reads its "
                                f"memory as if it were")
            return ctypes.c_void_p(arg.ctypes.data)
        if param.pointer:
            raise TypeError(f"{where}: got {type(arg).__name__}, not an array")
        # CuPy's rules for scalars: NumPy scalars keep their type; Python bool, int and float
        # become bool, long long and double
        if isinstance(arg, np.generic):
            dtype = arg.dtype
        elif isinstance(arg, bool):
            dtype = np.dtype(np.bool_)
        elif isinstance(arg, int):
            dtype = np.dtype(np.int64)
        elif isinstance(arg, float):
            dtype = np.dtype(np.float64)
        else:
            raise TypeError(f"{where}: unsupported argument type {type(arg).__name__}")
        if dtype != param.dtype:
            raise TypeError(f"{where}: CuPy would pass this {type(arg).__name__} as "
                            f"{dtype}, which the kernel reads as {param.dtype}")
        return np.array(arg, dtype=dtype)

    def __call__(self, grid: tuple, block: tuple, args: tuple, **_: Any) -> None:
        grid = tuple(grid) + (1,) * (3 - len(grid))
        block = tuple(block) + (1,) * (3 - len(block))
        if not (0 < np.prod(block) <= 1024 and all(g > 0 for g in grid)
                and grid[0] < 2**31 and max(grid[1:]) < 65536):
            raise ValueError(f"{self.name}: invalid launch configuration grid {grid}, "
                             f"block {block}")
        if len(args) != len(self.params):
            raise TypeError(f"{self.name} takes {len(self.params)} arguments, got {len(args)}")
        values = [self._pack(i, p, a) for i, (p, a) in enumerate(zip(self.params, args))]
        pointers = (ctypes.c_void_p * len(values))(*[
            ctypes.addressof(v) if isinstance(v, ctypes.c_void_p) else v.ctypes.data
            for v in values])
        self._fn(pointers, *grid, *block)


@functools.lru_cache(maxsize=None)
def _build_dir() -> pathlib.Path:
    path = pathlib.Path(tempfile.mkdtemp(prefix="cuda-emulator-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


class RawModule:
    """``cupy.RawModule(code=...)``, compiled for the CPU (cached by the source's hash in a
    folder that lives as long as the process)."""

    def __init__(self, code: str, options: tuple = (), **_: Any) -> None:
        cxx = compiler()
        if cxx is None:
            raise RuntimeError("the CUDA emulator needs a C++ compiler (set CXX)")
        std = next((o.split("=", 1)[1] for o in options if o.startswith("--std=")), "c++14")
        sigs = _signatures(code, cxx, HEADER.parent)
        synchronizing = "__syncthreads" in code
        source = (f'#include "{HEADER.name}"\n{code}\n'
                  + "".join(_launcher(n, p, synchronizing) for n, p in sigs.items()))
        key = hashlib.sha256((source + HEADER.read_text() + std).encode()).hexdigest()[:16]
        lib_path = _build_dir() / f"{key}.so"
        if not lib_path.exists():
            src_path = _build_dir() / f"{key}.cpp"
            src_path.write_text(source)
            out = subprocess.run([cxx, f"-std={std}", "-O1", "-shared", "-fPIC",
                                  f"-I{HEADER.parent}", "-o", str(lib_path), str(src_path)],
                                 capture_output=True, text=True)
            if out.returncode:
                raise RuntimeError(f"the CUDA source does not compile:\n{out.stderr}")
        lib = ctypes.CDLL(str(lib_path))
        self._kernels = {n: RawKernel(lib, n, p) for n, p in sigs.items()}

    def get_function(self, name: str) -> RawKernel:
        try:
            return self._kernels[name]
        except KeyError:
            raise AttributeError(f"no kernel {name!r} in the module "
                                 f"(has {sorted(self._kernels)})") from None


# ---------------------------------------------------------------------------------------------
# the module


def make_module() -> types.ModuleType:
    """A fresh ``cupy`` stand-in (to put in ``sys.modules['cupy']`` for a test's duration)."""
    mod = types.ModuleType("cupy", __doc__)
    mod.ndarray, mod.RawModule, mod.RawKernel = ndarray, RawModule, RawKernel
    mod.asarray, mod.asnumpy = asarray, asnumpy
    mod.random = types.SimpleNamespace(default_rng=_Generator, Generator=_Generator)
    mod.linalg = types.SimpleNamespace(**{n: _numpy_function(n, np.linalg)
                                          for n in ("norm", "solve", "inv", "det", "svd",
                                                    "cholesky", "eigh", "slogdet", "qr")})

    def __getattr__(name: str) -> Any:   # the rest of NumPy's namespace, on device arrays
        value = getattr(np, name)
        if callable(value) and not isinstance(value, (type, np.ufunc)):
            return _numpy_function(name)
        return value    # dtypes, constants, and ufuncs (which call __array_ufunc__)

    mod.__getattr__ = __getattr__
    runtime = types.SimpleNamespace(getDeviceCount=lambda: 1)
    mod.cuda = types.SimpleNamespace(runtime=runtime, Device=_Device,
                                     get_current_stream=lambda: _Stream())
    mod.is_emulator = True
    return mod


def _scatter_add(a: ndarray, index: Any, values: Any) -> None:
    """``cupyx.scatter_add``: a[index] += values, adding repeated indices up."""
    def host(i: Any) -> Any:
        if isinstance(i, tuple):
            return tuple(host(j) for j in i)
        return i.view(np.ndarray) if isinstance(i, ndarray) else i

    np.add.at(host(a), host(index), host(values))


@functools.lru_cache(maxsize=None)
def setup_for_tests() -> tuple[str | None, bool]:
    """How the CUDA tests run: ``(None, False)`` on a GPU; ``(None, True)`` on this emulator,
    installed here, where there is no GPU but a C++ compiler (``SCRATCHGEN_CUDA_EMULATOR=0``
    turns it off); else ``(why they skip, False)``."""
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return None, False
        why = "CuPy is installed but no NVIDIA GPU is visible"
    except ImportError:
        why = "CuPy is not installed (pip install 'scratchgen[cuda]')"
    except Exception as err:  # CUDA driver missing or broken
        why = f"CuPy is installed but no NVIDIA GPU is usable ({err})"
    if os.environ.get("SCRATCHGEN_CUDA_EMULATOR", "1") == "0":
        return f"{why}; the CUDA emulator is off (SCRATCHGEN_CUDA_EMULATOR=0)", False
    if compiler() is None:
        return f"{why}, and there is no C++ compiler for the CUDA emulator", False
    try:
        RawModule(code='extern "C" __global__ void probe(float* x) { __syncthreads(); }')
    except RuntimeError as err:
        return f"{why}, and the CUDA emulator does not build here ({err})", False
    install()
    return None, True


def install() -> None:
    """Put the stand-ins for ``cupy`` and ``cupyx`` into ``sys.modules`` (for a test session)."""
    sys.modules["cupy"] = make_module()
    sys.modules["cupyx"] = types.ModuleType("cupyx")
    sys.modules["cupyx"].scatter_add = _scatter_add


class _Generator:
    """``cupy.random.default_rng``: NumPy's generator, drawing device arrays."""

    def __init__(self, seed: Any = None) -> None:
        self._gen = np.random.default_rng(seed)

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self._gen, name)
        return lambda *args, **kwargs: _device(fn(*args, **kwargs))


class _Device:
    def __init__(self, index: int = 0) -> None:
        self.id = index

    def __enter__(self) -> "_Device":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def synchronize(self) -> None:
        return None


class _Stream:
    def synchronize(self) -> None:
        return None


if __name__ == "__main__":  # compile every source, as a quick check of the sources
    root = pathlib.Path(__file__).resolve().parents[1] / "kernels" / "cuda"
    for cu in sorted(root.glob("*.cu")):
        m = RawModule(code=cu.read_text())
        print(f"{cu.name}: {', '.join(sorted(m._kernels))}")
    sys.exit(0)
