"""Anomaly mode: find the op that first made a NaN or an infinity.

Inside ``with detect_anomaly():`` every op records the line of user code that called it, and
its forward outputs are checked; in backward, every input gradient is checked. The first
non-finite value raises ``FloatingPointError`` naming the op and that line. Slow (a stack trace
per op, a scan of every array): for debugging only.
"""
from __future__ import annotations

import contextlib
import os
import traceback
from typing import Any, Iterable

from scratchgen import backend

__all__ = ["detect_anomaly", "is_anomaly_enabled"]

#: Whether anomaly mode is on (read by ``Function.apply`` and the backward loop).
enabled = False
#: The node whose backward is running, so an op called inside it can be blamed on it.
running: Any = None

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class detect_anomaly(contextlib.ContextDecorator):
    """Inside this block the first op whose output (forward) or input gradient (backward) holds a
    NaN or an infinity raises ``FloatingPointError`` naming the op and the line of user code that
    called it. Slow (it checks every array and records a stack per op): for debugging only."""

    def __enter__(self) -> None:
        global enabled
        self.prev = enabled
        enabled = True

    def __exit__(self, *exc: Any) -> None:
        global enabled
        enabled = self.prev


def is_anomaly_enabled() -> bool:
    return enabled


def user_frame() -> str:
    """``file:line in function`` of the innermost stack frame outside the scratchgen package."""
    for frame in reversed(traceback.extract_stack()):
        if not os.path.abspath(frame.filename).startswith(_PACKAGE_DIR):
            return f"{frame.filename}:{frame.lineno} in {frame.name}: {frame.line}"
    return "<unknown>"


def _all_finite(arrays: Iterable[Any]) -> bool:
    arrays = [a for a in arrays if a is not None and a.dtype.kind in "fc"]
    if not arrays:
        return True
    xp = backend.get_array_module(arrays[0])
    return all(bool(xp.isfinite(a).all()) for a in arrays)


def check_forward(op_name: str, node: Any, outputs: tuple[Any, ...]) -> None:
    """After an op's forward: remember where it was called (``node`` is None when the op was not
    recorded) and raise if an output is not finite."""
    if node is not None:
        node._where = user_frame()
    if _all_finite(outputs):
        return
    if running is not None:
        raise FloatingPointError(
            f"{running.name}.backward produced NaN or Inf (in a {op_name} op); the "
            f"{running.name} op was called at {getattr(running, '_where', '<unknown>')}"
        )
    raise FloatingPointError(
        f"{op_name} produced NaN or Inf in its forward output; called at {user_frame()}"
    )


def check_backward(node: Any, input_grads: Iterable[Any]) -> None:
    """After a node's backward: raise if an input gradient (a raw array) is not finite."""
    if not _all_finite(input_grads):
        raise FloatingPointError(
            f"{node.name}.backward produced NaN or Inf in an input gradient; the op was "
            f"called at {getattr(node, '_where', '<unknown>')}"
        )
