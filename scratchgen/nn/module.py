"""``Module``: the base class of every layer and network.

A Module owns three kinds of state, registered by assigning attributes:

* parameters (``Parameter``): learned by an optimizer, listed by ``parameters()``;
* buffers (plain Tensors given to ``register_buffer``): state that is not learned but belongs
  to the model, such as batch norm's running mean; persistent ones go into ``state_dict()``;
* submodules (``Module``): visited recursively by all of the above.

Names, argument orders and behaviour follow ``torch.nn.Module``.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Iterator, NamedTuple

from scratchgen import backend
from scratchgen.autograd import Tensor
from scratchgen.nn.parameter import Parameter

__all__ = ["Module", "IncompatibleKeys", "RemovableHandle"]


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` could not match."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class RemovableHandle:
    """Returned by ``register_forward_pre_hook`` / ``register_forward_hook``: ``remove()``
    takes the hook out again."""

    _next_id = 0

    def __init__(self, hooks: dict[int, Callable]) -> None:
        self._hooks = hooks
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self) -> None:
        self._hooks.pop(self.id, None)


def _addindent(text: str, spaces: int) -> str:
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return lines[0] + "\n" + "\n".join(" " * spaces + line for line in lines[1:])


def _as_array(value: Any) -> Any:
    """The array behind a state_dict value (a Tensor or an array)."""
    return value.data if isinstance(value, Tensor) else value


class Module:
    """Base class of layers: subclasses set parameters and submodules in ``__init__`` and
    compute their output in ``forward``. Calling the module runs its hooks and ``forward``."""

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())

    # ---- forward ------------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        for hook in list(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, out)
            if result is not None:
                out = result
        return out

    def register_forward_pre_hook(self, hook: Callable[["Module", tuple], Any]) -> RemovableHandle:
        """Call ``hook(module, args)`` before every forward; a value it returns replaces args."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    def register_forward_hook(self, hook: Callable[["Module", tuple, Any], Any]) -> RemovableHandle:
        """Call ``hook(module, args, output)`` after every forward; a value it returns replaces
        the output."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    # ---- registration -------------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() is called: call "
                "super().__init__() first in your module's __init__"
            )
        params, buffers, modules = self._parameters, self._buffers, self._modules
        if isinstance(value, Parameter):
            self._remove_from(name, keep="_parameters")
            params[name] = value
        elif isinstance(value, Module):
            self._remove_from(name, keep="_modules")
            modules[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign a {type(value).__name__} to parameter {name!r} of "
                    f"{type(self).__name__}: assign a Parameter (or None)"
                )
            params[name] = None
        elif name in modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign a {type(value).__name__} to submodule {name!r}: assign a "
                    "Module (or None)"
                )
            modules[name] = None
        elif name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(
                    f"cannot assign a {type(value).__name__} to buffer {name!r}: assign a "
                    "Tensor (or None)"
                )
            buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _remove_from(self, name: str, keep: str) -> None:
        for store in ("_parameters", "_buffers", "_modules"):
            if store != keep:
                self.__dict__[store].pop(name, None)
        if keep != "_buffers":
            self._non_persistent.discard(name)
        self.__dict__.pop(name, None)

    def __getattr__(self, name: str) -> Any:
        # only called when normal lookup fails, i.e. for registered state
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for store in ("_parameters", "_buffers", "_modules"):
            if name in self.__dict__[store]:
                del self.__dict__[store][name]
                self._non_persistent.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers)
                      | set(self._modules))

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (or a None placeholder, as a layer built with ``bias=False``)."""
        if "." in name or not name:
            raise KeyError(f"parameter name must be a non-empty string without '.', got {name!r}")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot register a {type(param).__name__} as parameter {name!r}: "
                            "wrap it in nn.Parameter")
        self._remove_from(name, keep="_parameters")
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Add a buffer: module state that is not learned (it moves with ``to()``; persistent
        buffers are saved in ``state_dict()``)."""
        if "." in name or not name:
            raise KeyError(f"buffer name must be a non-empty string without '.', got {name!r}")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"buffer {name!r} must be a Tensor or None, got "
                            f"{type(tensor).__name__}")
        if name in self._parameters or name in self._modules:
            raise KeyError(f"attribute {name!r} already exists as a parameter or submodule")
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: "Module | None") -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module")
        if "." in name or not name:
            raise KeyError(f"module name must be a non-empty string without '.', got {name!r}")
        self._remove_from(name, keep="_modules")
        self._modules[name] = module

    register_module = add_module

    # ---- traversal ----------------------------------------------------------------------------
    def named_modules(self, memo: set[int] | None = None,
                      prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        """(name, module) for this module and every descendant, each module once."""
        if memo is None:
            memo = set()
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(memo, prefix + ("." if prefix else "") + name)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        seen: set[int] = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, store: str, recurse: bool) -> Iterator[tuple[str, Tensor]]:
        seen: set[int] = set()
        mods = self.named_modules() if recurse else iter([("", self)])
        for mod_name, m in mods:
            for name, t in m.__dict__[store].items():
                if t is None or id(t) in seen:
                    continue
                seen.add(id(t))
                yield (mod_name + "." if mod_name else "") + name, t

    def named_parameters(self, prefix: str = "",
                         recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs; a parameter shared by two modules appears once."""
        for name, p in self._named_members("_parameters", recurse):
            yield (prefix + "." if prefix else "") + name, p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        for name, b in self._named_members("_buffers", recurse):
            yield (prefix + "." if prefix else "") + name, b

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def num_parameters(self, only_trainable: bool = False) -> int:
        """The number of scalars in the parameters (those with requires_grad if asked)."""
        return sum(int(p.size) for p in self.parameters()
                   if p.requires_grad or not only_trainable)

    def apply(self, fn: Callable[["Module"], Any]) -> "Module":
        """Call ``fn`` on every submodule (children first) and then on this module."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ---- modes --------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Training mode (dropout active, batch norm uses batch statistics) or not."""
        if not isinstance(mode, bool):
            raise TypeError(f"train(mode) takes a bool, got {type(mode).__name__}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Turn gradients of all parameters on or off (freeze a discriminator, say)."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget accumulated gradients (``p.grad = None``)."""
        for p in self.parameters():
            p.grad = None

    # ---- device and dtype ---------------------------------------------------------------------
    def to(self, *args: Any, device: Any = None, dtype: Any = None) -> "Module":
        """Move parameters and buffers to a device and/or convert floating ones to a dtype,
        in place: the same Parameter objects get new arrays, so an optimizer built earlier
        keeps updating them. ``m.to("cuda")``, ``m.to("float64")``, ``m.to("cpu", "float64")``.
        Gradients move with their parameters."""
        dev, dt = backend.parse_to_args(args, device, dtype)
        if dt is not None and dt.kind != "f":
            raise TypeError(f"Module.to converts to floating dtypes only, got {dt}")

        def convert(a: Any) -> Any:
            if dt is not None and a.dtype.kind == "f" and a.dtype != dt:
                a = a.astype(dt)
            if dev is not None and backend.device_of(a) != dev:
                a = backend.to_device(a, dev)
            return a

        for m in self.modules():
            for t in list(m._parameters.values()) + list(m._buffers.values()):
                if t is None:
                    continue
                t.data = convert(t.data)
                if t.grad is not None:
                    t.grad = Tensor(convert(t.grad.data))
        return self

    def cpu(self) -> "Module":
        return self.to("cpu")

    def cuda(self, index: int = 0) -> "Module":
        return self.to(f"cuda:{index}")

    def double(self) -> "Module":
        return self.to(dtype="float64")

    def float(self) -> "Module":
        return self.to(dtype="float32")

    # ---- state dict ---------------------------------------------------------------------------
    def state_dict(self, prefix: str = "") -> "OrderedDict[str, Any]":
        """A snapshot name -> array of the parameters and persistent buffers (copies on the
        module's device: later training does not change a saved state dict)."""
        out: OrderedDict[str, Any] = OrderedDict()
        for mod_name, m in self.named_modules(prefix=prefix.rstrip(".")):
            head = mod_name + "." if mod_name else ""
            for name, p in m._parameters.items():
                if p is not None:
                    out[head + name] = p.data.copy()
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    out[head + name] = b.data.copy()
        return out

    def _state_entries(self) -> "OrderedDict[str, Tensor]":
        entries: OrderedDict[str, Tensor] = OrderedDict()
        for mod_name, m in self.named_modules():
            head = mod_name + "." if mod_name else ""
            for name, p in m._parameters.items():
                if p is not None:
                    entries[head + name] = p
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    entries[head + name] = b
        return entries

    def load_state_dict(self, state_dict: Any, strict: bool = True) -> IncompatibleKeys:
        """Load arrays (or Tensors) from ``state_dict`` into the parameters and buffers,
        converted to each one's device and dtype. The Parameter objects stay the same (an
        optimizer holding them keeps working); each gets a fresh copy of its array.

        Shape mismatches always raise; with ``strict`` missing and unexpected keys raise too
        (one ``RuntimeError`` listing every problem). Returns (missing_keys, unexpected_keys).
        Nothing is changed when an error is raised.
        """
        entries = self._state_entries()
        missing = [k for k in entries if k not in state_dict]
        unexpected = [k for k in state_dict if k not in entries]
        mismatched = []
        for k, t in entries.items():
            if k in state_dict:
                shape = tuple(_as_array(state_dict[k]).shape)
                if shape != tuple(t.shape):
                    mismatched.append((k, tuple(t.shape), shape))
        errors = []
        if strict and missing:
            errors.append("Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing))
        if strict and unexpected:
            errors.append("Unexpected key(s) in state_dict: "
                          + ", ".join(f'"{k}"' for k in unexpected))
        for k, expected, got in mismatched:
            errors.append(f"size mismatch for {k}: expected shape {expected} (the current "
                          f"model), got shape {got} (the state dict)")
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                               + "\n\t".join(errors))
        for k, t in entries.items():
            if k in state_dict:
                a = _as_array(state_dict[k])
                if not hasattr(a, "dtype"):
                    a = backend.numpy.asarray(a)
                a = backend.to_device(a, t.device)
                # a copy: the state dict stays independent of the training that follows
                t.data = a.astype(t.dtype, copy=True)
        return IncompatibleKeys(missing, unexpected)

    # ---- printing -----------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The layer's own settings, shown inside the parentheses of its repr."""
        return ""

    def _get_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        for name, m in self._modules.items():
            lines.append(f"({name}): " + _addindent(repr(m), 2))
        if not lines:
            return self._get_name() + "()"
        if len(lines) == 1 and not self._modules:
            return f"{self._get_name()}({lines[0]})"
        return self._get_name() + "(\n  " + "\n  ".join(lines) + "\n)"
