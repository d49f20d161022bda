"""Padding of the last two axes of an array, with PyTorch's four modes.

``pads = (left, right, top, bottom)`` as in ``torch.nn.functional.pad``: the last axis (width)
gets ``left`` columns before and ``right`` after, the second-to-last (height) ``top`` rows
before and ``bottom`` after.

Every mode is a *gather*: output position ``p`` of an axis of length ``n`` padded by ``a``
before reads input position ``src(p - a)``, where for a (virtual) position ``u`` in
``[-a, n + b)``

    zeros      src(u) = u if 0 <= u < n, else the constant ``value``
    reflect    src(u) = n-1 - | n-1 - |u| |      (mirror about the edge pixels, not repeating them)
    replicate  src(u) = clip(u, 0, n-1)
    circular   src(u) = u mod n

Padding is separable (rows and columns are padded independently), so the 2-D index map is the
outer product of two 1-D maps. The backward pass is the adjoint of the gather, a scatter-add:

    gx[i, j] = sum over output (p, q) with src_h(p) = i and src_w(q) = j of gy[p, q]

so a border pixel that was copied into the padding receives the gradients of all its copies.
"""
from __future__ import annotations

import numpy as np

from . import _cuda
from . import reference

MODES = ("zeros", "reflect", "replicate", "circular")
_MODE_CODE = {"zeros": 0, "reflect": 1, "replicate": 2, "circular": 3}

Pads = int | tuple[int, int] | tuple[int, int, int, int]


def _normalize_pads(pads: Pads) -> tuple[int, int, int, int]:
    """``(left, right, top, bottom)`` from an int (all four sides), a PyTorch-style 2-tuple
    ``(left, right)`` (last axis only) or a 4-tuple."""
    if isinstance(pads, (int, np.integer)):
        p = int(pads)
        out = (p, p, p, p)
    else:
        pads = tuple(int(p) for p in pads)
        if len(pads) == 2:
            out = (pads[0], pads[1], 0, 0)
        elif len(pads) == 4:
            out = pads  # type: ignore[assignment]
        else:
            raise ValueError(
                f"pads must be an int, (left, right) or (left, right, top, bottom); got {pads}"
            )
    if min(out) < 0:
        raise ValueError(f"pads must be non-negative, got (left, right, top, bottom) = {out}")
    return out


def _check(shape: tuple[int, ...], pads: tuple[int, int, int, int], mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if len(shape) < 2:
        raise ValueError(f"pad2d needs an array of at least 2 dimensions, got shape {shape}")
    h, w = shape[-2:]
    left, right, top, bottom = pads
    if mode == "reflect":
        # Reflection mirrors about the edge pixel without repeating it, so at most n-1 new pixels
        # exist on each side.
        if max(left, right) >= w or max(top, bottom) >= h:
            raise ValueError(
                f"reflect padding must be smaller than the input size: pads (left, right, top, "
                f"bottom) = {pads} for input of shape {tuple(shape)} (H={h}, W={w})"
            )
    elif mode == "circular":
        # Wrapping around more than once would need more than n pixels from one side.
        if max(left, right) > w or max(top, bottom) > h:
            raise ValueError(
                f"circular padding may wrap around at most once: pads (left, right, top, bottom) "
                f"= {pads} for input of shape {tuple(shape)} (H={h}, W={w})"
            )
    elif mode == "replicate":
        if (h == 0 and top + bottom > 0) or (w == 0 and left + right > 0):
            raise ValueError(f"replicate padding of an empty axis: input of shape {tuple(shape)}")


def source_index(n: int, before: int, after: int, mode: str) -> np.ndarray:
    """The 1-D index map of a padded axis: ``src[p]`` is the input position that output position
    ``p`` (``0 <= p < before + n + after``) copies. For ``"zeros"`` the padding positions hold -1.
    """
    u = np.arange(-before, n + after, dtype=np.int64)
    if mode == "zeros":
        return np.where((u >= 0) & (u < n), u, -1)
    if mode == "reflect":
        return (n - 1) - np.abs((n - 1) - np.abs(u))
    if mode == "replicate":
        return np.clip(u, 0, n - 1)
    if mode == "circular":
        return np.mod(u, n)
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def pad2d(x, pads: Pads, mode: str = "zeros", value: float = 0.0):
    """Pad the last two axes of ``x`` (shape ``(..., H, W)``) by ``pads = (left, right, top,
    bottom)``, giving ``(..., top + H + bottom, left + W + right)``.

    ``y[..., p, q] = x[..., src_h(p), src_w(q)]`` with the index maps of the module docstring;
    in ``"zeros"`` mode the padding holds ``value`` instead (PyTorch's ``"constant"``).

    Raises ValueError when reflect padding is not smaller than the padded axis, or circular
    padding is larger than it.
    """
    if reference.enabled():
        return reference.pad.pad2d(x, pads, mode, value)
    pads = _normalize_pads(pads)
    _check(tuple(x.shape), pads, mode)
    if _cuda.is_cupy_array(x):
        return _pad2d_cuda(x, pads, mode, value)
    left, right, top, bottom = pads
    h, w = x.shape[-2:]
    shape = x.shape[:-2] + (top + h + bottom, left + w + right)
    if mode == "zeros":
        y = np.full(shape, value, dtype=x.dtype)
        y[..., top:top + h, left:left + w] = x
        return y
    # Copy the interior once, then fill the border rows, then the border columns (whole columns,
    # border rows included, so the corners come out right), each from the line it copies. This
    # loops over padding positions only, and costs little more than one pass over the output.
    y = np.empty(shape, dtype=x.dtype)
    y[..., top:top + h, left:left + w] = x
    rows = source_index(h, top, bottom, mode)
    for p in list(range(top)) + list(range(top + h, top + h + bottom)):
        y[..., p, left:left + w] = x[..., rows[p], :]
    cols = source_index(w, left, right, mode)
    for q in list(range(left)) + list(range(left + w, left + w + right)):
        y[..., :, q] = y[..., :, left + cols[q]]
    return y


def _fold_axis(g, n: int, before: int, after: int, mode: str, axis: int):
    """Adjoint of padding one axis: sum ``g`` (padded along ``axis``) back onto ``n`` positions.

    The interior block maps one-to-one and is copied; each of the ``before + after`` padding
    slices is then added onto its source slice. This loops over padding positions (a handful),
    never over pixels, and needs no scatter (``np.add.at``).
    """
    def at(ix):
        where = [slice(None)] * g.ndim
        where[axis] = ix
        return tuple(where)

    gx = g[at(slice(before, before + n))].copy()
    if mode != "zeros":
        src = source_index(n, before, after, mode)
        for p in list(range(before)) + list(range(before + n, before + n + after)):
            gx[at(src[p])] += g[at(p)]
    return gx


def pad2d_backward(gy, pads: Pads, mode: str = "zeros"):
    """Gradient of :func:`pad2d` with respect to ``x``: the adjoint of the padding gather.

    ``gx[..., i, j] = sum_{p, q : src_h(p) = i, src_w(q) = j} gy[..., p, q]``. For ``"zeros"``
    this is cropping (the constant carries no gradient); for the other modes the gradient of
    every padding pixel is folded back onto the border pixel it copies.
    """
    if reference.enabled():
        return reference.pad.pad2d_backward(gy, pads, mode)
    pads = _normalize_pads(pads)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    left, right, top, bottom = pads
    if gy.ndim < 2:
        raise ValueError(f"pad2d_backward needs at least 2 dimensions, got shape {gy.shape}")
    h = gy.shape[-2] - top - bottom
    w = gy.shape[-1] - left - right
    if h < 0 or w < 0:
        raise ValueError(
            f"gradient of shape {tuple(gy.shape)} is smaller than the padding {pads} "
            "(left, right, top, bottom)"
        )
    _check(tuple(gy.shape[:-2]) + (h, w), pads, mode)
    if _cuda.is_cupy_array(gy):
        return _pad2d_backward_cuda(gy, pads, mode, h, w)
    gx = gy[..., top:top + h, left:left + w].copy()          # the interior maps one-to-one
    if mode == "zeros":
        return gx
    rows = source_index(h, top, bottom, mode)
    cols = source_index(w, left, right, mode)
    # Border columns next to the interior rows fold onto their source columns ...
    for q in list(range(left)) + list(range(left + w, left + w + right)):
        gx[..., :, cols[q]] += gy[..., top:top + h, q]
    # ... and each full border row (corners included) folds onto its source row, after its own
    # columns are folded.
    for p in list(range(top)) + list(range(top + h, top + h + bottom)):
        gx[..., rows[p], :] += _fold_axis(gy[..., p, :], w, left, right, mode, axis=-1)
    return gx


# --------------------------------------------------------------------------------------------
# CUDA path (kernels/cuda/pad.cu): one thread per output pixel forward (a gather), one thread per
# input pixel backward (a gather over the at most 3 x 3 source ranges that read it: no atomics).
# --------------------------------------------------------------------------------------------


def _pad2d_cuda(x, pads, mode, value):
    import cupy

    left, right, top, bottom = pads
    x = cupy.ascontiguousarray(x)
    h, w = x.shape[-2:]
    ho, wo = top + h + bottom, left + w + right
    y = cupy.empty(x.shape[:-2] + (ho, wo), dtype=x.dtype)
    planes = int(np.prod(x.shape[:-2], dtype=np.int64))
    suffix = _cuda.dtype_suffix(x.dtype)
    kernel = _cuda.function("pad.cu", f"pad2d_forward_{suffix}")
    args = (x, y, np.int64(planes), np.int64(h), np.int64(w), np.int64(top), np.int64(left),
            np.int64(ho), np.int64(wo), np.int32(_MODE_CODE[mode]), x.dtype.type(value))
    _cuda.launch_1d(kernel, planes * ho * wo, args)
    return y


def _pad2d_backward_cuda(gy, pads, mode, h, w):
    import cupy

    left, right, top, bottom = pads
    gy = cupy.ascontiguousarray(gy)
    ho, wo = gy.shape[-2:]
    gx = cupy.empty(gy.shape[:-2] + (h, w), dtype=gy.dtype)
    planes = int(np.prod(gy.shape[:-2], dtype=np.int64))
    suffix = _cuda.dtype_suffix(gy.dtype)
    kernel = _cuda.function("pad.cu", f"pad2d_backward_{suffix}")
    args = (gy, gx, np.int64(planes), np.int64(h), np.int64(w), np.int64(top), np.int64(bottom),
            np.int64(left), np.int64(right), np.int64(ho), np.int64(wo),
            np.int32(_MODE_CODE[mode]))
    _cuda.launch_1d(kernel, planes * h * w, args)
    return gx
