"""The registry of differentiable ops.

Every public op in ``scratchgen.functional`` is registered here with whether it is twice
differentiable. The test suite keeps a second registry -- one gradient check per op -- and a
meta-test fails when the two differ, so no op can be added without a gradient check.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, TypeVar

__all__ = ["OpInfo", "OPS", "register"]


@dataclass(frozen=True)
class OpInfo:
    name: str
    fn: Callable
    #: None when the op is twice differentiable; otherwise the reason it is not.
    not_twice_differentiable: str | None = None


OPS: dict[str, OpInfo] = {}

_F = TypeVar("_F", bound=Callable)


def register(name: str | None = None, *, not_twice_differentiable: str | None = None):
    """Decorator: add a public op to ``OPS`` under ``name`` (default: the function's name)."""

    def deco(fn: _F) -> _F:
        key = name or fn.__name__
        if key in OPS:
            raise ValueError(f"op {key!r} is registered twice")
        OPS[key] = OpInfo(key, fn, not_twice_differentiable)
        return fn

    return deco
