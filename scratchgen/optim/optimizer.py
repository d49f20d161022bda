"""``Optimizer``: the base class holding parameter groups and per-parameter state.

Updates run on raw arrays: a parameter's array is changed in place (``p.data -= ...``), which
keeps the Parameter objects (and anything holding them) valid. Gradient arrays are only read:
one gradient array may be shared by several tensors, so it is never written.
"""
from __future__ import annotations

import copy
from typing import Any, Iterable

from scratchgen import backend
from scratchgen.autograd import Tensor

__all__ = ["Optimizer"]


class _Required:
    def __repr__(self) -> str:
        return "<required parameter>"


required = _Required()


class Optimizer:
    """Base of all optimizers.

    ``params`` is an iterable of Tensors, or of dicts ``{"params": [...], "lr": ...}`` giving
    each group its own hyperparameters (the missing ones come from ``defaults``).
    ``self.state[p]`` is a dict of per-parameter buffers, created on p's first step.
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of Tensors or of dicts, got a Tensor; "
                            "pass [tensor] or model.parameters()")
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyperparameters (e.g. a new layer)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"a param group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("optimizer can only optimize leaf tensors (parameters), got a "
                                 "tensor computed by an op")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("a param group contains the same parameter twice")
        group["params"] = params
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"parameter group didn't specify a value of required "
                                 f"optimization parameter {name}")
            group.setdefault(name, default)
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in existing for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients of all optimized parameters (``p.grad = None``)."""
        for g in self.param_groups:
            for p in g["params"]:
                p.grad = None

    def step(self) -> None:
        raise NotImplementedError

    # ---- helpers for subclasses ---------------------------------------------------------------
    @staticmethod
    def _match(p: Tensor, a: Any) -> Any:
        """A state array on p's device and in p's dtype (after ``model.to(...)`` moved p)."""
        if a.dtype != p.dtype and a.dtype.kind == "f":
            a = a.astype(p.dtype)
        if backend.device_of(a) != p.device:
            a = backend.to_device(a, p.device)
        return a

    def _state_arrays(self, p: Tensor, names: Iterable[str]) -> dict[str, Any]:
        state = self.state.setdefault(p, {})
        for n in names:
            if n in state and hasattr(state[n], "dtype"):
                state[n] = self._match(p, state[n])
        return state

    # ---- state dict ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {name: array or number}}, "param_groups": [{hyper..., "params":
        [indices]}]}``, parameters numbered in group order as PyTorch; arrays are copies."""
        index: dict[int, int] = {}
        groups = []
        for g in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            packed["params"] = ids
            groups.append(packed)
        state = {}
        for g in self.param_groups:
            for p in g["params"]:
                if p in self.state:
                    state[index[id(p)]] = {
                        k: (v.copy() if hasattr(v, "dtype") and hasattr(v, "copy") else v)
                        for k, v in self.state[p].items()
                    }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters and per-parameter state saved by ``state_dict``; state
        arrays are copied onto each parameter's device and dtype."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has {len(saved_groups)} parameter groups, but the "
                f"optimizer has {len(self.param_groups)}"
            )
        for i, (g, s) in enumerate(zip(self.param_groups, saved_groups)):
            if len(g["params"]) != len(s["params"]):
                raise ValueError(
                    f"loaded state dict's parameter group {i} has {len(s['params'])} "
                    f"parameters, but the optimizer's group has {len(g['params'])}"
                )
        by_index = {}
        for g, s in zip(self.param_groups, saved_groups):
            for p, i in zip(g["params"], s["params"]):
                by_index[int(i)] = p
        new_state: dict[Tensor, dict[str, Any]] = {}
        for i, st in state_dict["state"].items():
            p = by_index.get(int(i))
            if p is None:
                raise ValueError(f"loaded state dict has state for parameter {i}, which is in "
                                 "no parameter group")
            entry = {}
            for k, v in st.items():
                if isinstance(v, Tensor):
                    v = v.data
                if hasattr(v, "dtype") and hasattr(v, "shape") and v.shape != ():
                    if tuple(v.shape) != tuple(p.shape):
                        raise ValueError(
                            f"loaded optimizer state {k!r} of parameter {i} has shape "
                            f"{tuple(v.shape)}, but the parameter has shape {tuple(p.shape)}"
                        )
                    v = self._match(p, v).copy()
                elif hasattr(v, "item") and hasattr(v, "dtype"):
                    v = v.item()
                entry[k] = v
            new_state[p] = entry
        for g, s in zip(self.param_groups, saved_groups):
            for k, v in s.items():
                if k != "params":
                    g[k] = tuple(v) if isinstance(v, list) and isinstance(g.get(k), tuple) \
                        else copy.deepcopy(v)
        self.state = new_state

    def __repr__(self) -> str:
        lines = [type(self).__name__ + " ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        lines.append(")")
        return "\n".join(lines)
