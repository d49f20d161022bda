"""Gradient hooks: functions called with a tensor's gradient as backward computes it.

A leaf keeps its hooks on itself; a tensor made by an op keeps them on its node, keyed by which
output it is (the node outlives the Tensor objects that view its outputs). ``retain_grad`` is a
hook that stores the gradient of a non-leaf tensor in its ``.grad``.
"""
from __future__ import annotations

import weakref
from typing import Any, Callable

__all__ = ["register_hook", "retain_grad", "run_hooks"]


def register_hook(t: Any, hook: Callable[[Any], Any]) -> Callable[[], None]:
    """Call ``hook(grad)`` when ``t``'s gradient is computed; a Tensor it returns replaces the
    gradient. Returns a function that removes the hook."""
    if not t.requires_grad:
        raise RuntimeError("cannot register a hook on a tensor that does not require grad")
    if t._ctx is None:
        if t._hooks is None:
            t._hooks = []
        hooks = t._hooks
    else:
        ctx = t._ctx
        if ctx._hooks is None:
            ctx._hooks = {}
        hooks = ctx._hooks.setdefault(t._idx, [])
    hooks.append(hook)
    return lambda: hooks.remove(hook) if hook in hooks else None


def retain_grad(t: Any) -> None:
    """Keep the non-leaf tensor ``t``'s gradient in ``t.grad`` after backward."""
    if t._ctx is None or t._retain:
        return
    t._retain = True
    ref = weakref.ref(t)

    def store(g: Any) -> None:
        kept = ref()
        if kept is not None:
            kept.grad = g if kept.grad is None else kept.grad + g

    register_hook(t, store)


def run_hooks(hooks: list | None, g: Any) -> Any:
    """``g`` passed through each hook in turn (a hook returning None leaves it as it is)."""
    if hooks:
        for h in list(hooks):
            r = h(g)
            if r is not None:
                g = r
    return g
