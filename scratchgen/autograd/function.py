"""``Function``: one differentiable operation, and one node of the graph when it is recorded."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy

from scratchgen import backend
from scratchgen.autograd import anomaly, grad_mode

__all__ = ["Function"]

# Every recorded node gets the next number: a node's inputs were made by nodes with smaller
# numbers, so processing nodes by decreasing number is a topological order (the only one the
# engine uses).
_sequence = 0


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
        if grad_mode.enabled:
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
        if anomaly.enabled:
            anomaly.check_forward(cls.__name__, fn if record else None, out if multi else (out,))
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
            raise freed_error(type(self).__name__)
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


def freed_error(name: str) -> RuntimeError:
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


from scratchgen.autograd.tensor import Tensor  # noqa: E402  (a Tensor is made of Functions' outputs)
