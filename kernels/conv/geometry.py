"""The shapes of a convolution: output sizes, argument checks, and ``_Geometry``, the one
record of a convolution's sizes that every path (CPU, CUDA, pointwise) reads.

Along one axis, a kernel of k taps with dilation d spans ``d (k - 1) + 1`` pixels; it fits
into the padded input ``h + 2 pad`` at ``floor((h + 2 pad - d (k - 1) - 1) / s) + 1``
positions when it steps by the stride s. A transposed convolution is described by the
geometry of the convolution it is the adjoint of (``_transpose_geometry``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .. import _cuda

IntOr2 = int | tuple[int, int]
Array = Any  # a numpy.ndarray, or a cupy.ndarray on the GPU


def conv_output_size(h: int, k: int, stride: int, padding: int, dilation: int) -> int:
    """Output length of a convolution along one axis.

    ``floor((h + 2 padding - dilation (k - 1) - 1) / stride) + 1``: the number of positions at
    which a kernel spanning ``dilation (k - 1) + 1`` pixels fits in the padded input, stepping
    by ``stride``. Zero or negative when the kernel does not fit at all.
    """
    return (h + 2 * padding - dilation * (k - 1) - 1) // stride + 1


def conv_transpose_output_size(
    h: int, k: int, stride: int, padding: int, output_padding: int, dilation: int
) -> int:
    """Output length of a transposed convolution along one axis (as PyTorch).

    ``(h - 1) stride - 2 padding + dilation (k - 1) + output_padding + 1``: the smallest input
    length of the forward convolution that gives ``h`` outputs, plus ``output_padding`` extra
    rows (several input lengths map to the same output length when stride > 1;
    ``output_padding`` picks one).
    """
    return (h - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1


def _pair(value: IntOr2, name: str, op: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    ):
        return int(value[0]), int(value[1])
    raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")


def _check_hyper(op: str, stride: IntOr2, padding: IntOr2, dilation: IntOr2):
    s = _pair(stride, "stride", op)
    p = _pair(padding, "padding", op)
    d = _pair(dilation, "dilation", op)
    if min(s) <= 0:
        raise ValueError(f"{op}: stride must be positive, got {s}")
    if min(p) < 0:
        raise ValueError(f"{op}: padding must be non-negative, got {p}")
    if min(d) <= 0:
        raise ValueError(f"{op}: dilation must be positive, got {d}")
    return s, p, d


def _check_ndim(op: str, name: str, a, ndim: int, layout: str) -> None:
    if getattr(a, "ndim", None) != ndim:
        shape = getattr(a, "shape", None)
        raise ValueError(f"{op}: {name} must be {ndim}-D {layout}, got shape {shape}")


def _check_shape_tuple(op: str, name: str, shape, ndim: int = 4) -> tuple[int, ...]:
    try:
        t = tuple(int(v) for v in shape)
    except TypeError:
        raise ValueError(f"{op}: {name} must be a tuple of {ndim} ints, got {shape!r}") from None
    if len(t) != ndim or min(t) < 0:
        raise ValueError(f"{op}: {name} must be {ndim} non-negative ints, got {t}")
    return t


def _check_arrays(op: str, **arrays) -> None:
    """Same array module (NumPy or CuPy) and the same floating dtype for all given arrays."""
    items = [(k, a) for k, a in arrays.items() if a is not None]
    kinds = {k: ("cupy (cuda)" if _cuda.is_cupy_array(a) else type(a).__module__.split(".")[0])
             for k, a in items}
    if len(set(kinds.values())) > 1:
        desc = ", ".join(f"{k} is a {v} array" for k, v in kinds.items())
        raise TypeError(f"{op}: arrays live on different devices: {desc}")
    for k, a in items:
        if kinds[k] not in ("numpy", "cupy (cuda)"):
            raise TypeError(f"{op}: {k} must be a numpy or cupy array, got {type(a).__name__}")
    dtypes = {k: str(a.dtype) for k, a in items}
    for k, dt in dtypes.items():
        if dt not in ("float32", "float64"):
            raise TypeError(f"{op}: {k} must be float32 or float64, got {dt}")
    if len(set(dtypes.values())) > 1:
        desc = ", ".join(f"{k} {v}" for k, v in dtypes.items())
        raise TypeError(f"{op}: arrays must share one dtype, got {desc}")


@dataclass(frozen=True)
class _Geometry:
    """Everything about one convolution's shapes: an input (n, c, h, w) and a weight
    (o, c, kh, kw) give an output (n, o, ho, wo), with stride (sh, sw), padding (ph, pw)
    and dilation (dh, dw)."""

    n: int
    c: int
    h: int
    w: int
    o: int
    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    dh: int
    dw: int
    ho: int
    wo: int

    def batch(self, n: int) -> "_Geometry":
        """The same convolution on ``n`` images (a slice of the batch)."""
        return replace(self, n=n)

    @property
    def hp(self) -> int:
        """Rows of the zero-padded input."""
        return self.h + 2 * self.ph

    @property
    def wp(self) -> int:
        """Columns of the zero-padded input."""
        return self.w + 2 * self.pw

    @property
    def field_size(self) -> int:
        """Length of one im2col row: the kh*kw*C numbers of a receptive field."""
        return self.kh * self.kw * self.c


def _geometry(
    op: str,
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    stride: IntOr2,
    padding: IntOr2,
    dilation: IntOr2,
    out_hw: tuple[int, int] | None = None,
) -> _Geometry:
    """Check a convolution's arguments and work out its output size.

    ``out_hw`` asks for only the first (ho, wo) output positions (used by the transposed
    convolution, where ``output_padding`` adds input rows that no window needs to reach).
    """
    (sh, sw), (ph, pw), (dh, dw) = _check_hyper(op, stride, padding, dilation)
    n, c, h, w = x_shape
    o, cw, kh, kw = w_shape
    if c != cw:
        raise ValueError(
            f"{op}: input of shape {tuple(x_shape)} has {c} channels but weight of shape "
            f"{tuple(w_shape)} expects {cw} input channels (weight is (out, in, kh, kw))"
        )
    if kh < 1 or kw < 1:
        raise ValueError(f"{op}: weight of shape {tuple(w_shape)} has an empty kernel")
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    if span_h > h + 2 * ph or span_w > w + 2 * pw:
        raise ValueError(
            f"{op}: kernel of size ({kh}, {kw}) with dilation ({dh}, {dw}) spans "
            f"({span_h}, {span_w}) pixels, larger than the padded input "
            f"({h + 2 * ph}, {w + 2 * pw}) (input shape {tuple(x_shape)}, padding ({ph}, {pw}), "
            f"weight shape {tuple(w_shape)})"
        )
    full_ho = conv_output_size(h, kh, sh, ph, dh)
    full_wo = conv_output_size(w, kw, sw, pw, dw)
    ho, wo = (full_ho, full_wo) if out_hw is None else out_hw
    if not (0 <= ho <= full_ho and 0 <= wo <= full_wo):  # pragma: no cover - internal misuse
        raise ValueError(f"{op}: {ho}x{wo} outputs do not fit in {full_ho}x{full_wo}")
    return _Geometry(n, c, h, w, o, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo)


def _check_grad_shape(op: str, gy, geo: _Geometry, what: str) -> None:
    expected = (geo.n, geo.o, geo.ho, geo.wo)
    if tuple(gy.shape) != expected:
        raise ValueError(
            f"{op}: {what} has shape {tuple(gy.shape)}, but the convolution of an input of "
            f"shape {(geo.n, geo.c, geo.h, geo.w)} with a weight of shape "
            f"{(geo.o, geo.c, geo.kh, geo.kw)} (stride {(geo.sh, geo.sw)}, padding "
            f"{(geo.ph, geo.pw)}, dilation {(geo.dh, geo.dw)}) "
            f"has output shape {expected}"
        )


def _check_bias(op: str, b, n_out: int, w_shape) -> None:
    if b is not None and tuple(b.shape) != (n_out,):
        raise ValueError(
            f"{op}: bias of shape {tuple(b.shape)} does not match the {n_out} output channels "
            f"of the weight of shape {tuple(w_shape)}; expected shape ({n_out},)"
        )


def _check_output_padding(op: str, output_padding: IntOr2, s, d) -> tuple[int, int]:
    opad = _pair(output_padding, "output_padding", op)
    for a in range(2):
        if opad[a] < 0 or (opad[a] >= s[a] and opad[a] >= d[a]):
            raise ValueError(
                f"{op}: output_padding {opad} must be non-negative and smaller than either "
                f"stride {tuple(s)} or dilation {tuple(d)}"
            )
    return opad



def _transpose_geometry(op, x_shape, w_shape, stride, padding, output_padding, dilation,
                        out_hw=None):
    """Geometry of the convolution that the transposed convolution x -> y is the adjoint of.

    That convolution maps y (N, C_out, Hy, Wy) to x (N, C_in, H, W) with the weight
    (C_in, C_out, kh, kw) read as (O, C, kh, kw).
    """
    s, p, d = _check_hyper(op, stride, padding, dilation)
    opad = _check_output_padding(op, output_padding, s, d)
    n, cin, h, w = x_shape
    wcin, cout, kh, kw = w_shape
    if cin != wcin:
        raise ValueError(
            f"{op}: input of shape {tuple(x_shape)} has {cin} channels but weight of shape "
            f"{tuple(w_shape)} expects {wcin} input channels "
            f"(a transposed convolution's weight is (in, out, kh, kw))"
        )
    if out_hw is None:
        out_hw = (
            conv_transpose_output_size(h, kh, s[0], p[0], opad[0], d[0]),
            conv_transpose_output_size(w, kw, s[1], p[1], opad[1], d[1]),
        )
    if min(out_hw) < 1 or h < 1 or w < 1:
        raise ValueError(
            f"{op}: input of shape {tuple(x_shape)} with weight of shape {tuple(w_shape)}, "
            f"stride {s}, padding {p}, output_padding {opad}, dilation {d} gives an empty "
            f"output of size {tuple(out_hw)}"
        )
    # The adjoint convolution reads y (padded) and produces h x w outputs: the first h x w
    # of its windows (output_padding >= stride, allowed when dilation > output_padding, adds
    # rows to y that reach one more window, which belongs to no input pixel).
    y_shape = (n, cout, out_hw[0], out_hw[1])
    geo = _geometry(op, y_shape, (cin, cout, kh, kw), s, p, d, out_hw=None)
    if geo.ho < h or geo.wo < w:
        raise ValueError(
            f"{op}: output of shape {y_shape} is too small for an input of shape "
            f"{tuple(x_shape)} (weight {tuple(w_shape)}, stride {s}, padding {p}, dilation {d})"
        )
    return _geometry(op, y_shape, (cin, cout, kh, kw), s, p, d, out_hw=(h, w))

