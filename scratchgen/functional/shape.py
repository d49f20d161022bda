"""Ops that move values around without arithmetic: reshape, permute, broadcast, index, concat.

Their backward passes are their adjoints: broadcasting sums back, indexing scatters back,
concatenation splits back. Every adjoint is itself an op here, so all of them are twice
(indeed infinitely) differentiable.
"""
from __future__ import annotations

import builtins
from typing import Any, Sequence

from scratchgen.kernels.reduce import sum_axes

from scratchgen import backend
from scratchgen.autograd import Function, Tensor
from scratchgen.functional.registry import register

__all__ = [
    "sum_to", "broadcast_to", "reshape", "permute", "getitem", "index_add", "concat", "stack",
    "split", "flatten", "unsqueeze", "squeeze",
]


def _reduced_axes(shape: tuple[int, ...], target: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    """Axes of ``shape`` to sum so that the result broadcasts back from ``target``."""
    lead = len(shape) - len(target)
    if lead < 0:
        raise ValueError(f"cannot sum shape {shape} to the larger rank of {target}")
    axes = list(range(lead))
    for i, n in enumerate(target):
        if n == 1 and shape[lead + i] != 1:
            axes.append(lead + i)
        elif n != shape[lead + i] and n != 1:
            raise ValueError(f"shape {shape} does not broadcast from {target}")
    return tuple(axes), lead


def sum_to_array(x: Any, shape: tuple[int, ...]) -> Any:
    """Array version of ``sum_to``: sum the axes that broadcasting ``shape`` to x.shape added."""
    if x.shape == shape:
        return x
    lead = x.ndim - len(shape)
    if lead > 0 and x.shape[lead:] == shape:  # only leading axes were added (a bias, say)
        return x.sum(axis=0 if lead == 1 else tuple(range(lead)))
    axes, lead = _reduced_axes(x.shape, shape)
    y = sum_axes(x, axes, keepdims=True) if axes else x
    return y.reshape(shape)


class SumTo(Function):
    """Undo broadcasting: sum over the axes that broadcasting added or stretched."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, x):
        return sum_to_array(x, self.shape)

    def backward(self, g):
        return broadcast_to(g, self.inputs[0].shape)

    def backward_arrays(self, g):
        return backend.broadcast_view(g, self.inputs[0].shape)


class BroadcastTo(Function):
    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, x):
        return backend.broadcast_view(x, self.shape)

    def backward(self, g):
        return sum_to(g, self.inputs[0].shape)

    def backward_arrays(self, g):
        return sum_to_array(g, self.inputs[0].shape)


@register()
def sum_to(x: Tensor, shape: Sequence[int]) -> Tensor:
    """Sum ``x`` down to ``shape`` (the adjoint of broadcasting ``shape`` up to ``x.shape``)."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    return SumTo.apply(x, shape=shape)


@register()
def broadcast_to(x: Tensor, shape: Sequence[int]) -> Tensor:
    """A read-only view of ``x`` repeated along new or size-1 axes."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    return BroadcastTo.apply(x, shape=shape)


class Reshape(Function):
    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, x):
        return x.reshape(self.shape)

    def backward(self, g):
        return reshape(g, self.inputs[0].shape)

    def backward_arrays(self, g):
        return g.reshape(self.inputs[0].shape)


@register()
def reshape(x: Tensor, shape: Sequence[int]) -> Tensor:
    """The same values in a new shape (one entry may be -1)."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    return Reshape.apply(x, shape=shape)


class Permute(Function):
    def __init__(self, axes: tuple[int, ...]) -> None:
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def _inverse(self) -> tuple[int, ...]:
        inverse = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inverse[a] = i
        return tuple(inverse)

    def backward(self, g):
        return permute(g, self._inverse())

    def backward_arrays(self, g):
        return g.transpose(self._inverse())


@register()
def permute(x: Tensor, axes: Sequence[int]) -> Tensor:
    """Reorder the axes: output axis i is input axis ``axes[i]``."""
    axes = tuple(a % x.ndim if x.ndim else a for a in axes)
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"permute: {axes} is not a permutation of the {x.ndim} axes of {x.shape}")
    return Permute.apply(x, axes=axes)


def _is_basic(index: Any) -> bool:
    """True for indices made of ints, slices, None and Ellipsis (no element can repeat)."""
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, slice, type(None), type(Ellipsis))) for i in items)


def _unwrap_index(index: Any) -> Any:
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        return backend.numpy.asarray(index)
    return index


class GetItem(Function):
    def __init__(self, index: Any) -> None:
        self.index = index

    def forward(self, x):
        return x[self.index]

    def backward(self, g):
        return index_add(g, self.index, self.inputs[0].shape)


class IndexAdd(Function):
    """The adjoint of ``x[index]``: a zero array of ``shape`` with ``g`` added at ``index``.

    Integer-array indices may repeat an element, so their values must be accumulated
    (``numpy.add.at``); slices and boolean masks never repeat, so plain assignment is enough.
    """

    def __init__(self, index: Any, shape: tuple[int, ...]) -> None:
        self.index, self.shape = index, shape

    def forward(self, g):
        xp = backend.get_array_module(g)
        out = xp.zeros(self.shape, dtype=g.dtype)
        idx = self.index
        items = idx if isinstance(idx, tuple) else (idx,)
        repeats_possible = any(
            hasattr(i, "dtype") and i.dtype.kind in "iu" for i in items
        )
        if not repeats_possible:
            out[idx] = g
        elif xp is backend.numpy:
            xp.add.at(out, idx, g)
        else:
            import cupyx

            cupyx.scatter_add(out, idx, g)
        return out

    def backward(self, gg):
        return getitem(gg, self.index)


@register()
def getitem(x: Tensor, index: Any) -> Tensor:
    """``x[index]`` with NumPy semantics: slices, ints, None, Ellipsis, integer and boolean arrays."""
    index = _unwrap_index(index)
    if isinstance(index, tuple):
        index = tuple(backend.numpy.asarray(i) if isinstance(i, list) else i for i in index)
    return GetItem.apply(x, index=index)


@register()
def index_add(g: Tensor, index: Any, shape: Sequence[int]) -> Tensor:
    """Zeros of ``shape`` with ``g`` added at ``index`` (repeated indices accumulate)."""
    return IndexAdd.apply(g, index=_unwrap_index(index), shape=tuple(shape))


class Concat(Function):
    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, *xs):
        return backend.get_array_module(xs[0]).concatenate(xs, axis=self.axis)

    def backward(self, g):
        grads = []
        start = 0
        lead = (slice(None),) * self.axis
        for t, need in zip(self.inputs, self.needs_input_grad):
            n = t.shape[self.axis]
            grads.append(getitem(g, lead + (slice(start, start + n),)) if need else None)
            start += n
        return tuple(grads)


@register()
def concat(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("concat needs at least one tensor")
    nd = tensors[0].ndim
    axis = axis % nd
    for t in tensors[1:]:
        if t.ndim != nd or any(a != b for i, (a, b) in enumerate(zip(t.shape, tensors[0].shape))
                               if i != axis):
            shapes = ", ".join(str(u.shape) for u in tensors)
            raise ValueError(f"concat along axis {axis}: shapes {shapes} differ off that axis")
    return Concat.apply(*tensors, axis=axis)


@register()
def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join same-shaped tensors along a new axis."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack needs at least one tensor")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack needs equal shapes, got {sorted(shapes)}")
    axis = axis % (tensors[0].ndim + 1)
    return concat([unsqueeze(t, axis) for t in tensors], axis)


@register()
def split(x: Tensor, sections: int | Sequence[int], axis: int = 0) -> tuple[Tensor, ...]:
    """Cut ``x`` along ``axis`` into pieces of the given sizes (an int: pieces of that size,
    the last one smaller if it does not divide, as ``torch.split``)."""
    axis = axis % x.ndim
    n = x.shape[axis]
    if isinstance(sections, int):
        if sections <= 0:
            raise ValueError(f"split size must be positive, got {sections}")
        sizes = [sections] * (n // sections) + ([n % sections] if n % sections else [])
    else:
        sizes = list(sections)
        if builtins.sum(sizes) != n:
            raise ValueError(f"split sizes {sizes} do not add up to {n} (axis {axis} of {x.shape})")
    lead = (slice(None),) * axis
    out, start = [], 0
    for s in sizes:
        out.append(getitem(x, lead + (slice(start, start + s),)))
        start += s
    return tuple(out)


class Pad(Function):
    def __init__(self, widths: tuple[tuple[int, int], ...], value: float) -> None:
        self.widths, self.value = widths, value

    def forward(self, x):
        xp = backend.get_array_module(x)
        return xp.pad(x, self.widths, mode="constant", constant_values=self.value)

    def backward(self, g):
        index = tuple(slice(lo, g.shape[i] - hi) for i, (lo, hi) in enumerate(self.widths))
        return getitem(g, index)


def constant_pad(x: Tensor, widths: Sequence[int], value: float = 0.0) -> Tensor:
    """Constant padding of any number of trailing axes, ``widths`` in ``torch.nn.functional.pad``
    order: ``(left, right)`` pads the last axis, ``(left, right, top, bottom)`` the last two, and
    so on. ``F.pad(x, widths, value=value)`` is the public name; this is its constant mode.
    """
    widths = tuple(int(w) for w in widths)
    if len(widths) % 2 or len(widths) // 2 > x.ndim:
        raise ValueError(f"pad widths {widths} must be pairs, at most two per axis of {x.shape}")
    if builtins.any(w < 0 for w in widths):
        raise ValueError(f"negative padding {widths} is not supported (use indexing to crop)")
    per_axis = [(0, 0)] * x.ndim
    for i in range(len(widths) // 2):
        per_axis[x.ndim - 1 - i] = (widths[2 * i], widths[2 * i + 1])
    return Pad.apply(x, widths=tuple(per_axis), value=value)


@register()
def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge axes ``start_dim..end_dim`` (inclusive) into one."""
    nd = x.ndim
    s, e = start_dim % nd, end_dim % nd
    size = 1
    for n in x.shape[s:e + 1]:
        size *= n
    return reshape(x, x.shape[:s] + (size,) + x.shape[e + 1:])


@register()
def unsqueeze(x: Tensor, axis: int) -> Tensor:
    """Insert an axis of size 1 at ``axis``."""
    axis = axis % (x.ndim + 1)
    return reshape(x, x.shape[:axis] + (1,) + x.shape[axis:])


@register()
def squeeze(x: Tensor, axis: int | None = None) -> Tensor:
    """Remove size-1 axes (all of them, or the one given)."""
    if axis is None:
        return reshape(x, tuple(n for n in x.shape if n != 1))
    axis = axis % x.ndim
    if x.shape[axis] != 1:
        return x
    return reshape(x, x.shape[:axis] + x.shape[axis + 1:])
