"""Whether ops are recorded for backward: ``no_grad``, ``enable_grad``, ``set_grad_enabled``.

Recording is on by default. Evaluation, sampling and optimizer updates turn it off, so no graph
is kept; a gradient penalty turns it back on inside ``no_grad`` code (``enable_grad``).
"""
from __future__ import annotations

import contextlib
from typing import Any

__all__ = ["is_grad_enabled", "set_grad_enabled", "no_grad", "enable_grad"]

#: Read by ``Function.apply`` on every op; written only by ``set_grad_enabled`` and the
#: backward pass (which records the graph of the backward itself only for ``create_graph``).
enabled = True


def is_grad_enabled() -> bool:
    """Whether ops are being recorded for backward right now."""
    return enabled


class set_grad_enabled(contextlib.ContextDecorator):
    """Turn graph recording on or off inside a ``with`` block (or a decorated function)."""

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)

    def __enter__(self) -> None:
        global enabled
        self.prev = enabled
        enabled = self.mode

    def __exit__(self, *exc: Any) -> None:
        global enabled
        enabled = self.prev


class no_grad(set_grad_enabled):
    """Do not record ops: for evaluation, sampling and optimizer updates."""

    def __init__(self) -> None:
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Record ops again inside a ``no_grad`` block."""

    def __init__(self) -> None:
        super().__init__(True)
