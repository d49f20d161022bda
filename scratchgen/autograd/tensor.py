"""``Tensor``: an array, an optional gradient, and a link to the op that made it."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy

from scratchgen import backend
from scratchgen.autograd import hooks
from scratchgen.autograd.tensor_ops import TensorOperators

if TYPE_CHECKING:
    from scratchgen.autograd.function import Function

__all__ = ["Tensor", "tensor"]


class Tensor(TensorOperators):
    """An array with an optional gradient and a link to the op that produced it.

    ``data`` is the NumPy or CuPy array; ``grad`` is a Tensor (or None) filled by ``backward``.
    A tensor made by a recorded op points back to its node (``_ctx``, the ``Function``) and
    says which of the node's outputs it is (``_idx``); a leaf has ``_ctx`` None. The operators
    and methods (``+``, ``@``, ``.sum()``, ``.reshape()``...) are in ``tensor_ops``.
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_idx", "name", "_hooks",
                 "_retain", "__weakref__")
    # Make ``numpy_array * tensor`` call Tensor.__rmul__ rather than NumPy's elementwise loop.
    __array_priority__ = 1000

    def __init__(self, data: Any, requires_grad: bool = False, name: str | None = None) -> None:
        self.data = data
        self.grad: Tensor | None = None
        self.requires_grad = requires_grad
        self._ctx: Function | None = None
        self._idx = 0
        self.name = name
        self._hooks: list | None = None
        self._retain = False
        if requires_grad and data.dtype.kind != "f":
            raise TypeError(f"only floating tensors can require gradients, got dtype {data.dtype}")

    @classmethod
    def _from_op(cls, data: Any, fn: Function, idx: int) -> "Tensor":
        t = cls.__new__(cls)
        t.data = data
        t.grad = None
        t.requires_grad = True
        t._ctx = fn
        t._idx = idx
        t.name = None
        t._hooks = None
        t._retain = False
        return t

    # ---- basic properties -----------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> numpy.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def device(self) -> backend.Device:
        return backend.device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self) -> Function | None:
        return self._ctx

    @property
    def xp(self):
        """The array module of this tensor's data (numpy or cupy)."""
        return backend.get_array_module(self.data)

    def __len__(self) -> int:
        if not self.data.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __repr__(self) -> str:
        extra = ""
        if self.device.type != "cpu":
            extra += f", device='{self.device}'"
        if self._ctx is not None:
            extra += f", grad_fn={self._ctx.name}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        body = numpy.array2string(
            backend.to_device(self.data, "cpu"), precision=4, separator=", ", prefix="tensor("
        )
        return f"tensor({body}, dtype={self.dtype}{extra})"

    # ---- conversion to Python and NumPy ---------------------------------------------------
    def numpy(self) -> numpy.ndarray:
        """The data as a NumPy array (a copy from the GPU; the same memory on the CPU)."""
        return backend.to_device(self.data, "cpu")

    def item(self) -> float | int | bool:
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        return bool(self.item())

    def __array__(self, dtype: Any = None, copy: Any = None) -> numpy.ndarray:
        a = self.numpy()
        return a if dtype is None else a.astype(dtype)

    # ---- the graph and gradients ----------------------------------------------------------
    def detach(self) -> "Tensor":
        """The same data, cut from the graph (gradients stop here)."""
        return Tensor(self.data)

    def requires_grad_(self, flag: bool = True) -> "Tensor":
        if self._ctx is not None and not flag:
            raise RuntimeError("requires_grad can only be turned off on a leaf tensor; use detach()")
        if flag and self.data.dtype.kind != "f":
            raise TypeError(f"only floating tensors can require gradients, got dtype {self.dtype}")
        self.requires_grad = flag
        return self

    def backward(self, gradient: "Tensor | None" = None, retain_graph: bool = False,
                 create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        ``gradient`` is dL/d(self); it may be left out only when self holds a single element.
        """
        from scratchgen.autograd.engine import backward
        backward([self], None if gradient is None else [gradient], retain_graph, create_graph)

    def register_hook(self, hook: Callable[["Tensor"], "Tensor | None"]) -> Callable[[], None]:
        """Call ``hook(grad)`` when this tensor's gradient is computed; a Tensor it returns
        replaces the gradient. Returns a function that removes the hook."""
        return hooks.register_hook(self, hook)

    def retain_grad(self) -> None:
        """Keep this non-leaf tensor's gradient in ``.grad`` after backward."""
        hooks.retain_grad(self)

    __hash__ = object.__hash__  # ``==`` compares elementwise, so hash by identity


def tensor(data: Any, requires_grad: bool = False, device: Any = None, dtype: Any = None,
           name: str | None = None) -> Tensor:
    """Make a leaf Tensor from an array, a nested list or a number.

    Python floats become the default dtype (float32); arrays keep their dtype unless ``dtype``
    is given. ``device`` is ``"cpu"`` (default), ``"cuda"`` or ``"cuda:N"``.
    """
    if isinstance(data, Tensor):
        data = data.data
    dev = backend.device(device)
    if dtype is not None:
        dt = backend.as_dtype(dtype)
    elif isinstance(data, (float, list, tuple)) and numpy.asarray(data).dtype.kind == "f":
        dt = backend.get_default_dtype()
    else:
        dt = None
    if backend._is_cupy(data):
        arr = data if dt is None else data.astype(dt, copy=False)
        arr = backend.to_device(arr, dev) if dev != backend.device_of(arr) else arr
    else:
        arr = numpy.array(data, dtype=dt)
        if dev.type != "cpu":
            arr = backend.to_device(arr, dev)
    return Tensor(arr, requires_grad=requires_grad, name=name)
