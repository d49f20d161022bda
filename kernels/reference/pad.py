r"""Padding of the last two axes, the textbook way: one gather, and its adjoint scatter-add.

``pads = (left, right, top, bottom)``. An axis of length n padded by ``before`` and ``after``
has output position u + before read the input position src(u), for u in [-before, n + after):

    zeros      src(u) = u where 0 <= u < n, else the constant ``value``
    reflect    src(u) = n-1 - |n-1 - |u||      (mirrored about the edge pixel)
    replicate  src(u) = clip(u, 0, n-1)
    circular   src(u) = u mod n

so y[..., r, c] = x[..., src_h(r), src_w(c)], and the gradient is the adjoint scatter-add
gx[..., i, j] = sum of gy[..., r, c] over the (r, c) with src_h(r) = i and src_w(c) = j.
"""
from __future__ import annotations

from .. import _cuda


def _pads(pads) -> tuple[int, int, int, int]:
    if not isinstance(pads, (tuple, list)):
        return (int(pads),) * 4
    return tuple(int(p) for p in pads) + (0, 0) if len(pads) == 2 else tuple(int(p) for p in pads)


def _source(xp, n: int, before: int, after: int, mode: str):
    """src(u) for u = -before .. n + after - 1 (-1 in the zero padding)."""
    u = xp.arange(-before, n + after)
    if mode == "zeros":
        return xp.where((u >= 0) & (u < n), u, -1)
    if mode == "reflect":
        return (n - 1) - xp.abs((n - 1) - xp.abs(u))
    if mode == "replicate":
        return xp.clip(u, 0, n - 1)
    if mode == "circular":
        return u % n
    raise ValueError(f"mode must be zeros, reflect, replicate or circular, got {mode!r}")


def pad2d(x, pads, mode="zeros", value=0.0):
    """y[..., r, c] = x[..., src_h(r), src_w(c)] (``value`` in zero padding)."""
    xp = _cuda.get_array_module(x)
    left, right, top, bottom = _pads(pads)
    rows = _source(xp, x.shape[-2], top, bottom, mode)
    cols = _source(xp, x.shape[-1], left, right, mode)
    y = x[..., rows[:, None], cols[None, :]]             # a gather (-1 reads the last pixel)
    if mode == "zeros":
        inside = (rows[:, None] >= 0) & (cols[None, :] >= 0)
        y = xp.where(inside, y, x.dtype.type(value))
    return y


def pad2d_backward(gy, pads, mode="zeros"):
    """gx[..., i, j] = sum of gy[..., r, c] over src_h(r) = i, src_w(c) = j."""
    xp = _cuda.get_array_module(gy)
    left, right, top, bottom = _pads(pads)
    h = gy.shape[-2] - top - bottom
    w = gy.shape[-1] - left - right
    rows = _source(xp, h, top, bottom, mode)
    cols = _source(xp, w, left, right, mode)
    keep = (rows[:, None] >= 0) & (cols[None, :] >= 0)   # zero padding carries no gradient
    target = (rows[:, None] * w + cols[None, :])[keep]
    planes = gy.reshape(-1, gy.shape[-2], gy.shape[-1])
    gx = xp.zeros((planes.shape[0], h * w), dtype=gy.dtype)
    for plane in range(planes.shape[0]):
        xp.add.at(gx[plane], target, planes[plane][keep])
    return gx.reshape(gy.shape[:-2] + (h, w))
