"""Charts drawn with Pillow, written atomically as PNG.

- ``plot_curves``: loss curves (several series, axes with numbered ticks, legend, log scale);
  ``curves_image`` draws the same without writing a file.
- ``bar_chart``: one bar per value (how often each code of a codebook is used, say).
- ``scatter_2d``: 2-D points coloured by class (latent spaces), with a legend.
- ``density_plot``: a heatmap of a 2-D density on a grid, with a colour bar and optional points.

They need nothing but Pillow: a small axes object maps data to pixels and draws ticks at 1-2-5
steps (decades on a log scale); the text uses Pillow's default font.
"""
from __future__ import annotations

import os
import pathlib
from typing import Any, Mapping, Sequence

import numpy

from scratchgen import backend
from scratchgen.train.axes import (
    _BLACK, _TEXT, _VIRIDIS, _WHITE, PALETTE, _Axes, _data_range, _format_tick, _linear_ticks,
    _new_canvas, _points, _to_png,
)
from scratchgen.train.images import _font, _host, _text_size

__all__ = ["plot_curves", "curves_image", "bar_chart", "scatter_2d", "density_plot", "PALETTE"]


def plot_curves(series: Mapping[str, Any], path: str | os.PathLike, title: str = "",
                xlabel: str = "step", ylabel: str = "", log_y: bool = False,
                size: tuple[int, int] = (800, 480), max_points: int = 4000) -> pathlib.Path:
    """Draw curves ``{name: [(step, value), ...]}`` (e.g. ``log.read_metrics(...)``) as a PNG.

    Each series gets its colour from ``PALETTE`` and a legend entry. Non-finite values (and,
    with ``log_y``, values <= 0) are left out and break the line there; a series with a single
    point shows as a dot; an empty series is listed in the legend as "(no data)". A series
    longer than ``max_points`` is thinned to that many points for drawing.
    """
    return _to_png(curves_image(series, title, xlabel, ylabel, log_y, size, max_points), path)


def curves_image(series: Mapping[str, Any], title: str = "", xlabel: str = "step",
                 ylabel: str = "", log_y: bool = False, size: tuple[int, int] = (800, 480),
                 max_points: int = 4000, legend: bool = True) -> Any:
    """``plot_curves``'s picture as a Pillow image, not written anywhere (for a page that
    embeds it); ``legend=False`` leaves the legend out (one series named in the title)."""
    width, height = size
    names = list(series)
    data = {name: _points(series[name]) for name in names}
    xs_all, ys_all = [], []
    for name in names:
        xs, ys = data[name]
        ok = numpy.isfinite(xs) & numpy.isfinite(ys)
        if log_y:
            ok &= ys > 0
        xs_all.append(xs[ok])
        ys_all.append(numpy.log10(ys[ok]) if log_y else ys[ok])
    xcat = numpy.concatenate(xs_all) if xs_all else numpy.zeros(0)
    ycat = numpy.concatenate(ys_all) if ys_all else numpy.zeros(0)
    xr = _data_range(xcat, 0.0) if xcat.size else (0.0, 1.0)
    if log_y and ycat.size:
        lo, hi = float(ycat.min()), float(ycat.max())
        yr = (lo - 0.15, hi + 0.15) if hi - lo < 1e-9 else (lo - 0.05 * (hi - lo),
                                                          hi + 0.05 * (hi - lo))
    else:
        yr = _data_range(ycat)
    image = _new_canvas(size)
    ax = _Axes(image, (86, 44, width - 24, height - 56), xr, yr, log_y=log_y)
    ax.frame(title, xlabel, ylabel)
    entries = []
    drawn = []  # pixel positions of the curves, for the legend to avoid
    for i, name in enumerate(names):
        colour = PALETTE[i % len(PALETTE)]
        xs, ys = data[name]
        if xs.size > max_points:
            keep = numpy.unique(numpy.linspace(0, xs.size - 1, max_points).astype(int))
            xs, ys = xs[keep], ys[keep]
        ok = numpy.isfinite(xs) & numpy.isfinite(ys)
        if log_y:
            ok &= numpy.where(numpy.isfinite(ys), ys, 0) > 0
        n_ok = int(ok.sum())
        entries.append((name if n_ok else f"{name} (no data)", colour, "line"))
        if not n_ok:
            continue
        px = ax.px(xs)
        with numpy.errstate(divide="ignore", invalid="ignore"):
            py = ax.py(numpy.where(ok, ys, 1.0))
        # consecutive runs of good points become polylines; gaps (nan, inf) break them
        breaks = numpy.flatnonzero(numpy.diff(ok.astype(numpy.int8)) != 0) + 1
        for seg in numpy.split(numpy.arange(xs.size), breaks):
            if seg.size == 0 or not ok[seg[0]]:
                continue
            pts = list(zip(px[seg].tolist(), py[seg].tolist()))
            drawn.append(_densify(numpy.asarray(pts)))
            if len(pts) == 1 or n_ok <= 20:
                for x, y in pts:
                    ax.draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
            if len(pts) > 1:
                ax.draw.line(pts, fill=colour, width=2, joint="curve")
    if not xcat.size:
        w, h = _text_size(ax.draw, "no data", ax.font)
        ax.draw.text(((ax.left + ax.right - w) / 2, (ax.top + ax.bottom - h) / 2), "no data",
                     fill=(120, 120, 120), font=ax.font)
    if legend:
        ax.legend(entries, corner="best", avoid=numpy.concatenate(drawn) if drawn else None)
    return image


def _densify(pts: numpy.ndarray, spacing: float = 4.0) -> numpy.ndarray:
    """Points along a polyline every ``spacing`` pixels (so a long straight segment that crosses
    a box counts as covering it)."""
    if len(pts) < 2:
        return pts
    out = [pts[:1]]
    for a, b in zip(pts[:-1], pts[1:]):
        n = max(int(numpy.hypot(*(b - a)) / spacing), 1)
        t = numpy.linspace(0.0, 1.0, n + 1)[1:, None]
        out.append(a + t * (b - a))
    return numpy.concatenate(out)


def bar_chart(values: Any, path: str | os.PathLike, title: str = "", xlabel: str = "",
              ylabel: str = "", log_y: bool = False, size: tuple[int, int] = (800, 420),
              note: str = "") -> pathlib.Path:
    """One bar per entry of ``values`` (n,), bar i centred at x = i, from the axis to the
    value, as a PNG with axes, ticks and ``title``; ``note`` is a line of text under the
    title. With ``log_y`` the y axis is in decades and an entry <= 0, which has no height on
    it, is marked by a red triangle on the x axis instead of a bar. Non-finite entries are
    left out."""
    v = _host(values).reshape(-1)
    n = len(v)
    finite = numpy.isfinite(v)
    if log_y:
        shown = finite & (v > 0)
        lv = numpy.log10(v[shown]) if shown.any() else numpy.zeros(1)
        lo, hi = float(lv.min()), float(lv.max())
        # the bars start below the smallest value, so that every bar has some height
        yr = (min(lo, 0.0) - 0.3, hi + max(0.05 * (hi - lo), 0.1))
        base = 10 ** yr[0]
    else:
        shown = finite
        top = float(v[finite].max()) if finite.any() else 1.0
        bottom = float(v[finite].min()) if finite.any() else 0.0
        yr = (min(bottom, 0.0) * 1.05, max(top, 0.0) * 1.05 or 1.0)
        base = 0.0
    image = _new_canvas(size)
    width, height = size
    ax = _Axes(image, (86, 62 if note else 44, width - 24, height - 56),
               (-0.5, max(n, 1) - 0.5), yr, log_y=log_y)
    ax.frame("" if note else title, xlabel, ylabel)
    if note:  # the title, then the note under it, both above the axes
        tf = _font(15)
        w, h = _text_size(ax.draw, title, tf)
        ax.draw.text(((ax.left + ax.right - w) / 2, 8), title, fill=_BLACK, font=tf)
        w, _ = _text_size(ax.draw, note, ax.font)
        ax.draw.text(((ax.left + ax.right - w) / 2, 8 + h + 10), note, fill=_TEXT,
                     font=ax.font)
    half = max(0.4 * (ax.right - ax.left) / max(n, 1), 0.5)
    y0 = float(ax.py(base))
    for i in range(n):
        x = float(ax.px(i))
        if shown[i]:
            y = float(ax.py(v[i]))
            ax.draw.rectangle([x - half, min(y, y0), x + half, max(y, y0)], fill=PALETTE[0])
        elif log_y and finite[i]:
            ax.draw.polygon([(x, ax.bottom - 7), (x - 4, ax.bottom), (x + 4, ax.bottom)],
                            fill=(214, 39, 40))
    return _to_png(image, path)


def scatter_2d(points: Any, labels: Any, path: str | os.PathLike,
               class_names: Sequence[str] | Mapping[Any, str] | None = None, title: str = "",
               size: tuple[int, int] = (640, 560), point_radius: float = 2.0,
               extent: tuple[float, float, float, float] | None = None,
               xlabel: str = "z1", ylabel: str = "z2") -> pathlib.Path:
    """Scatter (N, 2) ``points`` coloured by integer/str ``labels`` (N,), with a legend
    (``labels=None``: one colour, no legend).

    For a latent space: ``scatter_2d(z_mean, digits, "latent.png")``. ``class_names`` maps each
    label (or its index in the sorted labels) to its legend text; ``extent`` (xmin, xmax, ymin,
    ymax) fixes the axes (default: the points' range). Non-finite points are left out.
    """
    p = _host(points).reshape(-1, 2)
    if labels is None:
        lab = numpy.zeros(len(p), dtype=numpy.int64)
    else:
        lab = numpy.asarray(backend.to_device(getattr(labels, "data", labels), "cpu")).reshape(-1)
    if lab.shape[0] != p.shape[0]:
        raise ValueError(f"scatter_2d: {p.shape[0]} points but {lab.shape[0]} labels")
    ok = numpy.isfinite(p).all(axis=1)
    p, lab = p[ok], lab[ok]
    if extent is not None:
        xr, yr = (float(extent[0]), float(extent[1])), (float(extent[2]), float(extent[3]))
    else:
        xr, yr = _data_range(p[:, 0]), _data_range(p[:, 1])
    classes = list(numpy.unique(lab)) if lab.size else []
    legend_w = 0
    if labels is not None and classes:
        from PIL import Image, ImageDraw

        measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        legend_w = 36 + 24 + max(_text_size(measure, _class_name(c, i, class_names), _font(12))[0]
                                 for i, c in enumerate(classes))
    width, height = size
    image = _new_canvas((width + legend_w, height))
    ax = _Axes(image, (76, 44, width - 20, height - 56), xr, yr)
    ax.frame(title, xlabel, ylabel)
    order = numpy.random.default_rng(0).permutation(len(p))  # no class drawn wholly on top
    colour_of = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(classes)}
    xs, ys = ax.px(p[order, 0]), ax.py(p[order, 1])
    r = point_radius
    for x, y, c in zip(xs.tolist(), ys.tolist(), lab[order].tolist()):
        if ax.left <= x <= ax.right and ax.top <= y <= ax.bottom:
            ax.draw.ellipse([x - r, y - r, x + r, y + r], fill=colour_of[c])
    if labels is not None and classes:
        ax.legend([(_class_name(c, i, class_names), colour_of[c], "dot")
                   for i, c in enumerate(classes)], corner="outside right")
    if not len(p):
        w, h = _text_size(ax.draw, "no data", ax.font)
        ax.draw.text(((ax.left + ax.right - w) / 2, (ax.top + ax.bottom - h) / 2), "no data",
                     fill=(120, 120, 120), font=ax.font)
    return _to_png(image, path)


def _class_name(c: Any, i: int, names: Any) -> str:
    if names is None:
        return str(c.item() if hasattr(c, "item") else c)
    if isinstance(names, Mapping):
        key = c.item() if hasattr(c, "item") else c
        return str(names.get(key, key))
    try:
        return str(names[int(c)])
    except (ValueError, TypeError, IndexError):
        return str(names[i]) if i < len(names) else str(c)


def _colormap(t: numpy.ndarray) -> numpy.ndarray:
    """Viridis: values in [0, 1] to RGB uint8 (non-finite values become grey)."""
    good = numpy.isfinite(t)
    u = numpy.clip(numpy.where(good, t, 0.0), 0.0, 1.0) * (len(_VIRIDIS) - 1)
    i = numpy.minimum(u.astype(int), len(_VIRIDIS) - 2)
    f = (u - i)[..., None]
    rgb = _VIRIDIS[i] * (1 - f) + _VIRIDIS[i + 1] * f
    rgb[~good] = (160, 160, 160)
    return (rgb + 0.5).astype(numpy.uint8)


def density_plot(grid_values: Any, extent: tuple[float, float, float, float],
                 path: str | os.PathLike, title: str = "", points: Any = None,
                 log: bool = False, size: tuple[int, int] = (600, 540),
                 colorbar_label: str = "density", smooth: bool = True) -> pathlib.Path:
    """A heatmap of ``grid_values`` (H, W) over ``extent`` = (xmin, xmax, ymin, ymax).

    ``grid_values[i, j]`` is the value at x = xmin + (j + 1/2) (xmax - xmin) / W and
    y = ymin + (i + 1/2) (ymax - ymin) / H: row 0 is the bottom of the picture (the layout of
    ``numpy.meshgrid(xs, ys)``). Colours follow viridis from the smallest to the largest finite
    value (of log10 of the values with ``log``); non-finite cells are grey. ``points`` (N, 2),
    e.g. a generator's samples, are drawn on top as small white-edged dots.
    """
    g = _host(grid_values)
    if g.ndim != 2:
        raise ValueError(f"density_plot takes an (H, W) grid, got shape {g.shape}")
    xmin, xmax, ymin, ymax = (float(v) for v in extent)
    if not (xmax > xmin and ymax > ymin):
        raise ValueError(f"density_plot: extent must be (xmin, xmax, ymin, ymax) with "
                         f"xmin < xmax and ymin < ymax, got {extent}")
    if log:
        with numpy.errstate(divide="ignore", invalid="ignore"):
            g = numpy.where(g > 0, numpy.log10(numpy.where(g > 0, g, 1.0)), numpy.nan)
    finite = g[numpy.isfinite(g)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi - lo <= 1e-12 * max(abs(hi), 1.0):
        lo, hi = lo - 0.5, hi + 0.5
    rgb = _colormap((g - lo) / (hi - lo))[::-1]  # row 0 at the bottom
    width, height = size
    image = _new_canvas((width + 90, height))
    ax = _Axes(image, (76, 44, width - 20, height - 56), (xmin, xmax), (ymin, ymax))
    from PIL import Image

    heat = Image.fromarray(rgb).resize((ax.right - ax.left, ax.bottom - ax.top),
                                       Image.BILINEAR if smooth else Image.NEAREST)
    image.paste(heat, (ax.left, ax.top))
    ax.frame(title, "x", "y", grid=False)
    if points is not None:
        pts = _host(points).reshape(-1, 2)
        pts = pts[numpy.isfinite(pts).all(axis=1)]
        for x, y in zip(ax.px(pts[:, 0]).tolist(), ax.py(pts[:, 1]).tolist()):
            if ax.left <= x <= ax.right and ax.top <= y <= ax.bottom:
                ax.draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(255, 80, 60),
                                outline=_WHITE)
    # colour bar with its own ticks
    bx0, bx1 = ax.right + 16, ax.right + 34
    ramp = _colormap(numpy.linspace(1.0, 0.0, ax.bottom - ax.top)[:, None].repeat(2, axis=1))
    image.paste(Image.fromarray(ramp).resize((bx1 - bx0, ax.bottom - ax.top)), (bx0, ax.top))
    ax.draw.rectangle([bx0, ax.top, bx1, ax.bottom], outline=_BLACK)
    ticks = _linear_ticks(lo, hi, 5)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 0.0
    for t in ticks:
        y = ax.bottom - (t - lo) / (hi - lo) * (ax.bottom - ax.top)
        ax.draw.line([(bx1, y), (bx1 + 4, y)], fill=_BLACK)
        label = _format_tick(t, step)
        _, h = _text_size(ax.draw, label, ax.font)
        ax.draw.text((bx1 + 7, y - h / 2 - 2), label, fill=_TEXT, font=ax.font)
    label = f"log10 {colorbar_label}" if log else colorbar_label
    w, h = _text_size(ax.draw, label, ax.font)
    ax.draw.text((min(bx0 - 4, image.width - w - 4), ax.top - h - 8), label, fill=_TEXT,
                 font=ax.font)
    return _to_png(image, path)
