"""``Parameter``: a Tensor that a ``Module`` registers as one of its learnable weights."""
from __future__ import annotations

from typing import Any

from scratchgen import backend
from scratchgen.autograd import Tensor

__all__ = ["Parameter"]


class Parameter(Tensor):
    """A leaf Tensor that requires a gradient by default and that ``Module.__setattr__``
    registers: it shows up in ``parameters()``, ``state_dict()`` and ``to()``.

    ``Parameter(data)`` takes an array or a Tensor (its data is used, not copied), as
    ``torch.nn.Parameter``.
    """

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            data = backend.numpy.zeros((0,), dtype=backend.get_default_dtype())
        elif isinstance(data, Tensor):
            data = data.data
        elif not hasattr(data, "dtype"):
            data = backend.numpy.asarray(data, dtype=backend.get_default_dtype())
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __reduce_ex__(self, protocol: Any) -> Any:
        # copy.deepcopy(module) keeps parameters as Parameters with their own data
        return (_rebuild_parameter, (self.data, self.requires_grad, self.grad))


def _rebuild_parameter(data: Any, requires_grad: bool, grad: Any) -> Parameter:
    p = Parameter(data, requires_grad)
    p.grad = grad
    return p
