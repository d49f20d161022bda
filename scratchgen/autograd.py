"""Reverse-mode automatic differentiation.

A ``Tensor`` wraps an array (NumPy or CuPy) and remembers the ``Function`` that made it. Calling
a Function records one node of a graph: the node keeps its input Tensors, and each output keeps
a pointer back to the node (``_ctx``) and which of the node's outputs it is (``_idx``).

``backward`` walks that graph from the outputs to the leaves in reverse topological order,
applying the chain rule at every node:

    dL/dinput_j = sum_i  (d output_i / d input_j)^T  dL/doutput_i       (a vector-Jacobian product)

Each Function's ``backward`` is written with differentiable ops on Tensors. So when we ask for
``create_graph=True`` the backward pass itself is recorded as a new graph, and differentiating
it again gives second derivatives (needed by WGAN-GP's gradient penalty and R1).

Gradients are accumulated per (node, output index), not per Tensor object: a node can hand out
fresh Tensor views of its outputs to its own backward (``Function.output``) without keeping a
reference cycle between the node and its outputs.
"""
from __future__ import annotations

import contextlib
import heapq
import os
import traceback
import weakref
from typing import Any, Callable, Iterable, Sequence

import numpy

from scratchgen import backend

__all__ = [
    "Tensor", "Function", "tensor", "grad", "backward", "no_grad", "enable_grad",
    "is_grad_enabled", "set_grad_enabled", "detect_anomaly", "is_anomaly_enabled",
]

_grad_enabled = True
_anomaly_enabled = False
# Every recorded node gets the next number: a node's inputs were made by nodes with smaller
# numbers, so processing nodes by decreasing number is a topological order.
_sequence = 0
# In anomaly mode: the node whose backward is running, so errors can name it.
_backward_of: "Function | None" = None


def is_grad_enabled() -> bool:
    """Whether ops are being recorded for backward right now."""
    return _grad_enabled


class set_grad_enabled(contextlib.ContextDecorator):
    """Turn graph recording on or off inside a ``with`` block (or a decorated function)."""

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)

    def __enter__(self) -> None:
        global _grad_enabled
        self.prev = _grad_enabled
        _grad_enabled = self.mode

    def __exit__(self, *exc: Any) -> None:
        global _grad_enabled
        _grad_enabled = self.prev


class no_grad(set_grad_enabled):
    """Do not record ops: for evaluation, sampling and optimizer updates."""

    def __init__(self) -> None:
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Record ops again inside a ``no_grad`` block."""

    def __init__(self) -> None:
        super().__init__(True)


class detect_anomaly(contextlib.ContextDecorator):
    """Inside this block the first op whose output (forward) or input gradient (backward) holds a
    NaN or an infinity raises ``FloatingPointError`` naming the op and the line of user code that
    called it. Slow (it checks every array and records a stack per op): for debugging only."""

    def __enter__(self) -> None:
        global _anomaly_enabled
        self.prev = _anomaly_enabled
        _anomaly_enabled = True

    def __exit__(self, *exc: Any) -> None:
        global _anomaly_enabled
        _anomaly_enabled = self.prev


def is_anomaly_enabled() -> bool:
    return _anomaly_enabled


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _user_frame() -> str:
    """``file:line in function`` of the innermost stack frame outside the scratchgen package."""
    for frame in reversed(traceback.extract_stack()):
        if not os.path.abspath(frame.filename).startswith(_PACKAGE_DIR):
            return f"{frame.filename}:{frame.lineno} in {frame.name}: {frame.line}"
    return "<unknown>"


def _all_finite(xp, arrays: Iterable[Any]) -> bool:
    for a in arrays:
        if a is not None and a.dtype.kind in "fc" and not bool(xp.isfinite(a).all()):
            return False
    return True


# =============================================================================================
# Function: one node of the graph


class Function:
    """One differentiable operation.

    Subclasses implement

    * ``forward(self, *arrays) -> array or tuple of arrays`` on raw xp arrays; parameters of the
      op (an axis, a stride) are given to ``__init__`` by ``apply``'s keyword arguments;
    * ``backward(self, *grad_outputs) -> grad or tuple of grads`` on Tensors, one per input
      (``None`` where an input needs no gradient: see ``self.needs_input_grad``). Written with
      differentiable ops, so it can itself be differentiated.

    Inside ``backward`` the inputs are ``self.inputs`` (Tensors) and the forward outputs are
    ``self.output(i)``; anything else ``forward`` computed can be kept on ``self``.
    ``self.needs_input_grad`` is already set when ``forward`` runs (empty when no graph is
    recorded), so ``forward`` can keep only what the needed gradients use.

    Hot ops may also define ``backward_arrays(self, *grad_arrays) -> array(s)``: the same
    derivative on raw arrays, used when no graph of the backward pass is being built
    (``create_graph=False``), where it skips the cost of recording ops. The gradient checks
    test both: ``gradcheck`` the array version, ``gradgradcheck`` the Tensor version and that
    the two agree.
    """

    #: Optional array-level backward (see the class docstring); None means use ``backward``.
    backward_arrays: Callable[..., Any] | None = None

    #: Set to a reason string on ops whose backward is not itself differentiable.
    not_twice_differentiable: str | None = None

    inputs: tuple["Tensor", ...] | None = None
    needs_input_grad: tuple[bool, ...] = ()
    _outputs: tuple[Any, ...] | None = None
    _hooks: dict[int, list] | None = None
    _pending: list | None = None
    _seq = 0

    def forward(self, *arrays: Any) -> Any:
        raise NotImplementedError

    def backward(self, *grad_outputs: "Tensor") -> Any:
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs: "Tensor", **params: Any):
        """Run the op on Tensors, recording it in the graph when a gradient may be needed."""
        global _sequence
        fn = cls(**params) if params else cls()
        n = len(inputs)
        record = False
        if _grad_enabled:
            for t in inputs:
                if t.requires_grad:
                    record = True
                    break
        if record:  # known before forward, which may keep what only the backward needs
            fn.needs_input_grad = (True,) if n == 1 else tuple([t.requires_grad for t in inputs])
        try:
            if n == 1:
                out = fn.forward(inputs[0].data)
            elif n == 2:
                out = fn.forward(inputs[0].data, inputs[1].data)
            else:
                out = fn.forward(*[t.data for t in inputs])
        except (ValueError, TypeError, IndexError) as exc:
            _check_devices(cls, inputs)
            _check_dtypes(cls, inputs)
            shapes = ", ".join(str(tuple(t.shape)) for t in inputs)
            raise type(exc)(f"{cls.__name__}: {exc} (input shapes {shapes})") from exc
        if n > 1:
            d0 = inputs[0].data
            for t in inputs:
                # fast path: same array type and dtype needs no closer look (a CuPy pair
                # still needs its device ids compared)
                if type(t.data) is not type(d0) or t.data.dtype is not d0.dtype or \
                        type(d0) is not numpy.ndarray:
                    _check_devices(cls, inputs)
                    _check_dtypes(cls, inputs)
                    break
        multi = type(out) is tuple
        if multi:
            out = tuple(numpy.asarray(o) if isinstance(o, numpy.generic) else o for o in out)
        elif type(out) is not numpy.ndarray and isinstance(out, numpy.generic):
            out = numpy.asarray(out)  # NumPy reduces to scalars; keep 0-d arrays
        if record:
            fn.inputs = inputs
            fn._outputs = out if multi else (out,)
            _sequence += 1
            fn._seq = _sequence
        if _anomaly_enabled:
            if record:
                fn._where = _user_frame()
            outs = out if multi else (out,)
            if not _all_finite(backend.get_array_module(outs[0]), outs):
                if _backward_of is not None:
                    raise FloatingPointError(
                        f"{_backward_of.name}.backward produced NaN or Inf (in a {cls.__name__} "
                        f"op); the {_backward_of.name} op was called at "
                        f"{getattr(_backward_of, '_where', '<unknown>')}"
                    )
                raise FloatingPointError(
                    f"{cls.__name__} produced NaN or Inf in its forward output; "
                    f"called at {_user_frame()}"
                )
        if multi:
            if record:
                return tuple(Tensor._from_op(o, fn, i) for i, o in enumerate(out))
            return tuple(Tensor(o) for o in out)
        if record:
            return Tensor._from_op(out, fn, 0)
        return Tensor(out)

    def output(self, i: int = 0) -> "Tensor":
        """The i-th forward output as a Tensor attached to this node (for use in backward)."""
        if self._outputs is None:
            raise _freed_error(type(self).__name__)
        return Tensor._from_op(self._outputs[i], self, i)

    def _zeros_like_output(self, i: int) -> "Tensor":
        out = self._outputs[i]
        return Tensor(backend.get_array_module(out).zeros_like(out))

    def _free(self) -> None:
        """Drop everything saved for backward: inputs, outputs, masks... (``inputs`` falls back
        to the class default None, which marks the node as freed)."""
        self.__dict__.clear()

    @property
    def name(self) -> str:
        return type(self).__name__


def _freed_error(name: str) -> RuntimeError:
    return RuntimeError(
        f"trying to backward through {name} a second time, but its saved values were freed by "
        "the first backward; call backward(retain_graph=True) the first time if you need to "
        "backpropagate through the same graph twice"
    )


def _check_devices(cls: type, inputs: Sequence["Tensor"]) -> None:
    first = inputs[0].data
    on_gpu = backend._is_cupy(first)
    for t in inputs[1:]:
        if backend._is_cupy(t.data) != on_gpu or (on_gpu and t.data.device.id != first.device.id):
            devs = ", ".join(str(t.device) for t in inputs)
            raise RuntimeError(
                f"{cls.__name__}: all inputs must be on one device, got tensors on {devs}; "
                "move them with .to(device)"
            )


def _check_dtypes(cls: type, inputs: Sequence["Tensor"]) -> None:
    floats = {t.data.dtype for t in inputs if t.data.dtype.kind == "f"}
    if len(floats) > 1:
        names = ", ".join(str(t.data.dtype) for t in inputs)
        raise TypeError(
            f"{cls.__name__}: inputs have different floating dtypes ({names}); "
            "convert one with .to(dtype) (scratchgen does not promote silently)"
        )


# =============================================================================================
# Tensor


class Tensor:
    """An array with an optional gradient and a link to the op that produced it.

    ``data`` is the NumPy or CuPy array; ``grad`` is a Tensor (or None) filled by ``backward``.
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

    # ---- conversion -----------------------------------------------------------------------
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

    def to(self, *args: Any, device: Any = None, dtype: Any = None) -> "Tensor":
        """``t.to("cuda")``, ``t.to("float64")``, ``t.to(device, dtype)``: differentiable copy."""
        dev, dt = backend.parse_to_args(args, device, dtype)
        out = self
        if dt is not None and dt != self.dtype:
            out = F.cast(out, dt)
        if dev is not None and dev != self.device:
            out = F.to_device(out, dev)
        return out

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def cuda(self, index: int = 0) -> "Tensor":
        return self.to(f"cuda:{index}")

    def float(self) -> "Tensor":
        return self.to(dtype="float32")

    def double(self) -> "Tensor":
        return self.to(dtype="float64")

    def detach(self) -> "Tensor":
        """The same data, cut from the graph (gradients stop here)."""
        return Tensor(self.data)

    def clone(self) -> "Tensor":
        return F.clone(self)

    def requires_grad_(self, flag: bool = True) -> "Tensor":
        if self._ctx is not None and not flag:
            raise RuntimeError("requires_grad can only be turned off on a leaf tensor; use detach()")
        if flag and self.data.dtype.kind != "f":
            raise TypeError(f"only floating tensors can require gradients, got dtype {self.dtype}")
        self.requires_grad = flag
        return self

    # ---- gradient bookkeeping -------------------------------------------------------------
    def register_hook(self, hook: Callable[["Tensor"], "Tensor | None"]) -> Callable[[], None]:
        """Call ``hook(grad)`` when this tensor's gradient is computed; a Tensor it returns
        replaces the gradient. Returns a function that removes the hook."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that does not require grad")
        if self._ctx is None:
            if self._hooks is None:
                self._hooks = []
            hooks = self._hooks
        else:
            ctx = self._ctx
            if ctx._hooks is None:
                ctx._hooks = {}
            hooks = ctx._hooks.setdefault(self._idx, [])
        hooks.append(hook)
        return lambda: hooks.remove(hook) if hook in hooks else None

    def retain_grad(self) -> None:
        """Keep this non-leaf tensor's gradient in ``.grad`` after backward."""
        if self._ctx is None or self._retain:
            return
        self._retain = True
        ref = weakref.ref(self)

        def store(g: Tensor) -> None:
            t = ref()
            if t is not None:
                t.grad = g if t.grad is None else t.grad + g

        self.register_hook(store)

    def backward(self, gradient: "Tensor | None" = None, retain_graph: bool = False,
                 create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        ``gradient`` is dL/d(self); it may be left out only when self holds a single element.
        """
        backward([self], None if gradient is None else [gradient], retain_graph, create_graph)

    # ---- operators (each one an op in scratchgen.functional) -------------------------------
    def __add__(self, other: Any) -> "Tensor":
        return F.add(self, other)

    def __radd__(self, other: Any) -> "Tensor":
        return F.add(other, self)

    def __sub__(self, other: Any) -> "Tensor":
        return F.sub(self, other)

    def __rsub__(self, other: Any) -> "Tensor":
        return F.sub(other, self)

    def __mul__(self, other: Any) -> "Tensor":
        return F.mul(self, other)

    def __rmul__(self, other: Any) -> "Tensor":
        return F.mul(other, self)

    def __truediv__(self, other: Any) -> "Tensor":
        return F.div(self, other)

    def __rtruediv__(self, other: Any) -> "Tensor":
        return F.div(other, self)

    def __pow__(self, other: Any) -> "Tensor":
        return F.pow(self, other)

    def __rpow__(self, other: Any) -> "Tensor":
        return F.pow(other, self)

    def __matmul__(self, other: Any) -> "Tensor":
        return F.matmul(self, other)

    def __rmatmul__(self, other: Any) -> "Tensor":
        return F.matmul(other, self)

    def __neg__(self) -> "Tensor":
        return F.neg(self)

    def __pos__(self) -> "Tensor":
        return self

    def __abs__(self) -> "Tensor":
        return F.abs(self)

    def __getitem__(self, index: Any) -> "Tensor":
        return F.getitem(self, index)

    # Comparisons give boolean tensors and never carry gradients.
    def _compare(self, other: Any, op: str) -> "Tensor":
        o = other.data if isinstance(other, Tensor) else other
        return Tensor(getattr(self.data, op)(o))

    def __lt__(self, other: Any) -> "Tensor":
        return self._compare(other, "__lt__")

    def __le__(self, other: Any) -> "Tensor":
        return self._compare(other, "__le__")

    def __gt__(self, other: Any) -> "Tensor":
        return self._compare(other, "__gt__")

    def __ge__(self, other: Any) -> "Tensor":
        return self._compare(other, "__ge__")

    def __eq__(self, other: Any) -> "Tensor":  # type: ignore[override]
        return self._compare(other, "__eq__")

    def __ne__(self, other: Any) -> "Tensor":  # type: ignore[override]
        return self._compare(other, "__ne__")

    __hash__ = object.__hash__

    # ---- methods --------------------------------------------------------------------------
    def sum(self, axis: Any = None, keepdims: bool = False) -> "Tensor":
        return F.sum(self, axis, keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> "Tensor":
        return F.mean(self, axis, keepdims)

    def var(self, axis: Any = None, keepdims: bool = False, ddof: int = 0) -> "Tensor":
        return F.var(self, axis, keepdims, ddof)

    def max(self, axis: Any = None, keepdims: bool = False) -> "Tensor":
        return F.max(self, axis, keepdims)

    def min(self, axis: Any = None, keepdims: bool = False) -> "Tensor":
        return F.min(self, axis, keepdims)

    def logsumexp(self, axis: Any = None, keepdims: bool = False) -> "Tensor":
        return F.logsumexp(self, axis, keepdims)

    def softmax(self, axis: int = -1) -> "Tensor":
        return F.softmax(self, axis)

    def log_softmax(self, axis: int = -1) -> "Tensor":
        return F.log_softmax(self, axis)

    def argmax(self, axis: Any = None) -> "Tensor":
        return Tensor(self.data.argmax(axis=axis))

    def argmin(self, axis: Any = None) -> "Tensor":
        return Tensor(self.data.argmin(axis=axis))

    def reshape(self, *shape: Any) -> "Tensor":
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return F.reshape(self, shape)

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "Tensor":
        return F.flatten(self, start_dim, end_dim)

    def transpose(self, *axes: Any) -> "Tensor":
        """``t.transpose(d0, d1)`` swaps two axes (as PyTorch); no argument reverses them."""
        if len(axes) == 2:
            perm = list(range(self.ndim))
            a, b = axes
            perm[a], perm[b] = perm[b], perm[a]
            return F.permute(self, tuple(perm))
        if not axes:
            return F.permute(self, tuple(range(self.ndim - 1, -1, -1)))
        raise TypeError("transpose takes two axes to swap, or none to reverse all")

    def permute(self, *axes: Any) -> "Tensor":
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return F.permute(self, axes)

    @property
    def T(self) -> "Tensor":
        return F.permute(self, tuple(range(self.ndim - 1, -1, -1)))

    def unsqueeze(self, axis: int) -> "Tensor":
        return F.unsqueeze(self, axis)

    def squeeze(self, axis: Any = None) -> "Tensor":
        return F.squeeze(self, axis)

    def broadcast_to(self, shape: Sequence[int]) -> "Tensor":
        return F.broadcast_to(self, tuple(shape))

    expand = broadcast_to

    def exp(self) -> "Tensor":
        return F.exp(self)

    def log(self) -> "Tensor":
        return F.log(self)

    def log1p(self) -> "Tensor":
        return F.log1p(self)

    def sqrt(self) -> "Tensor":
        return F.sqrt(self)

    def abs(self) -> "Tensor":
        return F.abs(self)

    def tanh(self) -> "Tensor":
        return F.tanh(self)

    def sigmoid(self) -> "Tensor":
        return F.sigmoid(self)

    def relu(self) -> "Tensor":
        return F.relu(self)

    def clip(self, min: Any = None, max: Any = None) -> "Tensor":
        return F.clip(self, min, max)

    clamp = clip

    def pow(self, exponent: Any) -> "Tensor":
        return F.pow(self, exponent)

    def matmul(self, other: "Tensor") -> "Tensor":
        return F.matmul(self, other)


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


# =============================================================================================
# the backward pass


def _topological_order(roots: Iterable[Function]) -> list[Function]:
    """Nodes reachable from ``roots``, every node after all nodes that consume its outputs.

    Iterative depth-first search (a recursive one overflows Python's stack on long chains):
    a node is appended once all its inputs' producers are, and the reversed post-order is a
    topological order of the graph.
    """
    post: list[Function] = []
    visited: set[int] = set()
    stack: list[tuple[Function, bool]] = [(r, False) for r in roots]
    while stack:
        fn, children_done = stack.pop()
        if children_done:
            post.append(fn)
            continue
        if id(fn) in visited:
            continue
        visited.add(id(fn))
        stack.append((fn, True))
        if fn.inputs is None:
            continue
        for t in fn.inputs:
            c = t._ctx
            if c is not None and id(c) not in visited:
                stack.append((c, False))
    post.reverse()
    return post


def _run_hooks(hooks: list | None, g: Tensor) -> Tensor:
    if hooks:
        for h in list(hooks):
            r = h(g)
            if r is not None:
                g = r
    return g


def _as_grad_tensor(g: Any, like: Tensor) -> Tensor:
    if not isinstance(g, Tensor):
        g = tensor(g, dtype=like.dtype, device=like.device)
    if g.shape != like.shape:
        raise ValueError(
            f"the gradient given for a tensor of shape {like.shape} has shape {g.shape}"
        )
    if g.dtype != like.dtype:
        raise TypeError(f"the gradient has dtype {g.dtype} but the tensor has dtype {like.dtype}")
    return g


def _needed_nodes(start: Sequence[Function], targets: Sequence[Tensor]) -> set[int]:
    """Ids of the nodes from which some target can be reached (the only ones worth running
    when only the targets' gradients are wanted)."""
    target_leaves = {id(t) for t in targets if t._ctx is None}
    target_nodes = {(id(t._ctx), t._idx) for t in targets if t._ctx is not None}
    needed: set[int] = set()
    for fn in reversed(_topological_order(start)):  # producers before consumers
        for t in fn.inputs or ():
            c = t._ctx
            if (c is None and id(t) in target_leaves) or (
                c is not None and (id(c) in needed or (id(c), t._idx) in target_nodes)
            ):
                needed.add(id(fn))
                break
    return needed


def _backprop(roots: Sequence[Tensor], root_grads: Sequence[Any] | None,
              retain_graph: bool, create_graph: bool,
              targets: Sequence[Tensor] | None = None) -> list[Tensor | None] | None:
    """The engine behind ``backward`` and ``grad``.

    Each node collects the gradients of its outputs in ``node._pending`` and waits in a
    priority queue ordered by creation number, newest first: a node runs only after every node
    created later -- hence every consumer of its outputs -- has run, so by then its output
    gradients are complete.

    Without ``create_graph`` the gradients in flight are raw arrays (nothing is recorded, so
    there is no need to wrap them); with it they are Tensors whose sums and products build the
    graph of the backward pass.

    With ``targets`` None, leaf gradients are accumulated into ``leaf.grad``. Otherwise the
    gradients of ``targets`` are returned (in order, None where unreached), no ``.grad`` is
    touched, and only the part of the graph that leads to a target is walked.
    """
    global _grad_enabled, _backward_of
    if root_grads is None:
        root_grads = [None] * len(roots)
    if len(root_grads) != len(roots):
        raise ValueError(f"got {len(root_grads)} gradients for {len(roots)} outputs")
    raw = not create_graph
    queue: list[tuple[int, Function]] = []
    leaf_grads: dict[int, Any] = {}  # id(target leaf) -> dL/d(leaf), for grad() only

    heappush, heappop = heapq.heappush, heapq.heappop

    def send(fn: Function, idx: int, g: Any) -> None:
        """Add g to the gradient of fn's output idx; queue fn on its first gradient."""
        pending = fn._pending
        if pending is None:
            if fn._outputs is None:
                raise _freed_error(fn.name)
            pending = fn._pending = [None] * len(fn._outputs)
            heappush(queue, (-fn._seq, fn))  # creation numbers are unique: fn never compared
        prev = pending[idx]
        pending[idx] = g if prev is None else prev + g

    def to_leaf(leaf: Tensor, g: Any) -> None:
        if leaf._hooks:
            g = _run_hooks(leaf._hooks, Tensor(g) if raw else g)
            g = g.data if raw else g
        if raw:
            leaf.grad = Tensor(g) if leaf.grad is None else Tensor(leaf.grad.data + g)
        else:
            leaf.grad = g if leaf.grad is None else leaf.grad + g

    target_leaves: set[int] = set()
    target_nodes: set[tuple[int, int]] = set()
    captured: dict[tuple[int, int], Any] = {}
    needed: set[int] = set()
    prev_mode = _grad_enabled
    _grad_enabled = create_graph
    try:
        for t, g in zip(roots, root_grads):
            if not t.requires_grad:
                raise RuntimeError(
                    f"backward on a tensor of shape {t.shape} that does not require grad: it "
                    "does not depend on any tensor with requires_grad=True"
                )
            if g is None:
                if t.data.size != 1:
                    raise RuntimeError(
                        f"backward() on a tensor of shape {t.shape} needs a gradient argument: "
                        "a gradient can be created implicitly only for outputs with one element"
                    )
                g = Tensor(t.xp.ones(t.data.shape, t.data.dtype))
            else:
                g = _as_grad_tensor(g, t)
            g = g.data if raw else g
            if t._ctx is not None:
                send(t._ctx, t._idx, g)
            elif targets is None:
                to_leaf(t, g)
            else:
                prev = leaf_grads.get(id(t))
                leaf_grads[id(t)] = g if prev is None else prev + g

        if targets is not None:
            for t in targets:
                if not t.requires_grad:
                    raise RuntimeError(
                        f"an input of shape {t.shape} does not require grad, so it has no gradient"
                    )
                if t._ctx is None:
                    target_leaves.add(id(t))
                else:
                    target_nodes.add((id(t._ctx), t._idx))
            needed = _needed_nodes([fn for _, fn in queue], targets)

        while queue:
            fn = heappop(queue)[1]
            gouts = fn._pending
            fn._pending = None
            if fn._hooks:
                wrap = Tensor if raw else (lambda g: g)
                gouts = [g if g is None else _run_hooks(fn._hooks.get(i), wrap(g))
                         for i, g in enumerate(gouts)]
                if raw:
                    gouts = [g if g is None else g.data for g in gouts]
            if targets is not None:
                fid = id(fn)
                for i, g in enumerate(gouts):
                    if g is not None and (fid, i) in target_nodes:
                        captured[(fid, i)] = g
                if fid not in needed:
                    continue
            inputs = fn.inputs
            if inputs is None:
                raise _freed_error(fn.name)
            if len(gouts) > 1:
                gouts = [(fn._outputs[i] * 0 if raw else fn._zeros_like_output(i))
                         if g is None else g for i, g in enumerate(gouts)]
            if _anomaly_enabled:
                _backward_of = fn
            array_backward = fn.backward_arrays if raw else None
            if array_backward is not None:
                gins = array_backward(*gouts)
            elif raw:
                gins = fn.backward(*[Tensor(g) for g in gouts])
                gins = tuple([None if g is None else g.data
                              for g in (gins if type(gins) is tuple else (gins,))])
            else:
                gins = fn.backward(*gouts)
            if type(gins) is not tuple:
                gins = (gins,)
            if len(gins) != len(inputs):
                raise RuntimeError(
                    f"{fn.name}.backward returned {len(gins)} gradients for {len(inputs)} inputs"
                )
            if _anomaly_enabled:
                arrays = [g if raw else g.data for g in gins if g is not None]
                if arrays and not _all_finite(backend.get_array_module(arrays[0]), arrays):
                    raise FloatingPointError(
                        f"{fn.name}.backward produced NaN or Inf in an input gradient; the "
                        f"op was called at {getattr(fn, '_where', '<unknown>')}"
                    )
            for inp, g, need in zip(inputs, gins, fn.needs_input_grad):
                if g is None or not need:
                    continue
                if g.shape != inp.data.shape:
                    raise RuntimeError(
                        f"{fn.name}.backward returned a gradient of shape {g.shape} for an "
                        f"input of shape {inp.shape}"
                    )
                if inp._ctx is not None:
                    send(inp._ctx, inp._idx, g)
                elif targets is None:
                    to_leaf(inp, g)
                elif id(inp) in target_leaves:
                    prev = leaf_grads.get(id(inp))
                    leaf_grads[id(inp)] = g if prev is None else prev + g
            if not retain_graph:
                fn._free()
    finally:
        _grad_enabled = prev_mode
        _backward_of = None
        for _, fn in queue:  # after an error: leave no half-summed gradients behind
            fn._pending = None

    if targets is None:
        return None
    found = [captured.get((id(t._ctx), t._idx)) if t._ctx is not None else leaf_grads.get(id(t))
             for t in targets]
    return [g if g is None or not raw else Tensor(g) for g in found]


def backward(tensors: Sequence[Tensor], grad_tensors: Sequence[Any] | None = None,
             retain_graph: bool = False, create_graph: bool = False) -> None:
    """Accumulate the gradients of ``tensors`` (weighted by ``grad_tensors``) into the leaves."""
    _backprop(list(tensors), None if grad_tensors is None else list(grad_tensors),
              retain_graph or create_graph, create_graph)


def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
         grad_outputs: Any = None, retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool = False) -> tuple[Tensor | None, ...]:
    """d(outputs)/d(inputs) as a tuple, without touching any ``.grad``.

    With ``create_graph=True`` the returned gradients are themselves differentiable, so a
    penalty on them (WGAN-GP's ``(||grad D(x)|| - 1)^2``) can be backpropagated.
    """
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is not None and isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    if retain_graph is None:
        retain_graph = create_graph
    found = _backprop(outs, grad_outputs, retain_graph, create_graph, targets=ins)
    assert found is not None
    result: list[Tensor | None] = []
    for i, (t, g) in enumerate(zip(ins, found)):
        if g is None and not allow_unused:
            raise RuntimeError(
                f"input {i} (shape {t.shape}) was not used to compute the outputs; "
                "pass allow_unused=True to get None for it"
            )
        result.append(g)
    return tuple(result)


from scratchgen import functional as F  # noqa: E402  (ops need Tensor and Function defined)
