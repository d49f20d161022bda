"""Axes for the charts of ``scratchgen.train.plots``, drawn with Pillow: the colours, ticks at
1-2-5 steps (decades on a log scale) with their labels, and ``_Axes``, which maps data to pixels
and draws the frame, grid, ticks, title and legend."""
from __future__ import annotations

import os
import pathlib
import math
from typing import Any, Mapping, Sequence

import numpy

from scratchgen.train.images import _font, _text_size, save_png

__all__ = ["PALETTE"]

#: Series and class colours (matplotlib's "tab10", then ten darker/lighter companions).
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    (0, 60, 120), (160, 70, 0), (0, 100, 0), (130, 0, 20), (80, 40, 130),
    (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
)

# matplotlib's viridis at nine evenly spaced points; colours in between are interpolated
_VIRIDIS = numpy.array([
    (68, 1, 84), (71, 44, 122), (59, 81, 139), (44, 113, 142), (33, 144, 141),
    (39, 173, 129), (92, 200, 99), (170, 220, 50), (253, 231, 37)], dtype=numpy.float64)

_BLACK, _WHITE, _GRID, _TEXT = (0, 0, 0), (255, 255, 255), (228, 228, 228), (30, 30, 30)


def _nice_step(span: float, target: int) -> float:
    """A step of 1, 2 or 5 times a power of ten that cuts ``span`` into about ``target`` parts."""
    raw = span / max(target, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    return min((m * power for m in (1.0, 2.0, 5.0, 10.0)),
               key=lambda step: abs(span / step - target))


def _linear_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    step = _nice_step(hi - lo, target)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    k = 0
    while first + k * step <= hi + 1e-9 * step:
        v = first + k * step
        ticks.append(0.0 if abs(v) < step * 1e-9 else v)
        k += 1
    return ticks


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Tick positions in log10 units for the range [lo, hi] (also log10 units)."""
    return [t for t, _ in _log_ticks_labelled(lo, hi)]


def _log_ticks_labelled(lo: float, hi: float) -> list[tuple[float, str]]:
    """(position in log10 units, label) of the ticks of a log axis over [lo, hi]: decades
    when the range spans two or more, else 1-2-5 marks, else a linear grid of values."""
    decades = list(range(math.ceil(lo - 1e-9), math.floor(hi + 1e-9) + 1))
    if len(decades) >= 2:
        stride = max(1, math.ceil(len(decades) / 8))
        return [(float(d), _format_log_tick(d)) for d in decades[::stride]]
    ticks = []
    for d in range(math.floor(lo) - 1, math.ceil(hi) + 1):
        for m in (1, 2, 5):
            t = d + math.log10(m)
            if lo - 1e-9 <= t <= hi + 1e-9:
                ticks.append((t, _format_log_tick(t)))
    if len(ticks) >= 2:
        return ticks
    values = [v for v in _linear_ticks(10 ** lo, 10 ** hi, 4) if v > 0]
    step = values[1] - values[0] if len(values) > 1 else 0.0
    return [(math.log10(v), _format_tick(v, step)) for v in values]


def _format_tick(v: float, step: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e5 or a < 1e-3:
        return f"{v:.3g}" if step == 0 else f"{v:.2e}".replace("e+0", "e").replace("e-0", "e-")
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 3
    return f"{v:.{min(decimals, 6)}f}"


def _format_log_tick(t: float) -> str:
    """The label of the log-axis position ``t`` = log10(value): ``1e-7``, ``0.01``, ``200``."""
    if abs(t - round(t)) < 1e-9 and abs(t) >= 4:
        return f"1e{int(round(t))}"
    v = 10 ** t
    if abs(t) >= 4:
        mant, exp = f"{v:.0e}".split("e")
        return f"{mant}e{int(exp)}"
    return _format_tick(v, 10 ** math.floor(t + 1e-9))


def _data_range(values: numpy.ndarray, pad_fraction: float = 0.05) -> tuple[float, float]:
    """[min, max] of finite values, widened a little; a single value gets a range around it."""
    v = values[numpy.isfinite(values)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    if hi - lo <= 1e-12 * max(abs(lo), abs(hi), 1.0):
        half = 0.5 * abs(lo) if lo != 0 else 0.5
        return lo - half, hi + half
    pad = (hi - lo) * pad_fraction
    return lo - pad, hi + pad


class _Axes:
    """A rectangle of the picture with data coordinates: ``px(x)``, ``py(y)`` map data to pixels
    (y up); ``log_y`` draws the y axis in decades (the stored y range is then in log10 units)."""

    def __init__(self, image: Any, box: tuple[int, int, int, int],
                 xrange: tuple[float, float], yrange: tuple[float, float],
                 log_y: bool = False) -> None:
        from PIL import ImageDraw

        self.image = image
        self.draw = ImageDraw.Draw(image)
        self.left, self.top, self.right, self.bottom = box
        self.x0, self.x1 = xrange
        self.y0, self.y1 = yrange
        self.log_y = log_y
        self.font = _font(12)

    def px(self, x: Any) -> Any:
        return self.left + (numpy.asarray(x, dtype=numpy.float64) - self.x0) / (self.x1 - self.x0) \
            * (self.right - self.left)

    def py(self, y: Any) -> Any:
        y = numpy.asarray(y, dtype=numpy.float64)
        if self.log_y:
            with numpy.errstate(divide="ignore", invalid="ignore"):
                y = numpy.log10(y)
        return self.bottom - (y - self.y0) / (self.y1 - self.y0) * (self.bottom - self.top)

    def frame(self, title: str = "", xlabel: str = "", ylabel: str = "",
              grid: bool = True) -> None:
        d, f = self.draw, self.font
        xticks = _linear_ticks(self.x0, self.x1)
        xstep = xticks[1] - xticks[0] if len(xticks) > 1 else 0.0
        if self.log_y:
            labelled = _log_ticks_labelled(self.y0, self.y1)
            yticks = [t for t, _ in labelled]
            ylabels = [label for _, label in labelled]
            ypix = [float(self.bottom - (t - self.y0) / (self.y1 - self.y0)
                          * (self.bottom - self.top)) for t in yticks]
        else:
            yticks = _linear_ticks(self.y0, self.y1)
            ystep = yticks[1] - yticks[0] if len(yticks) > 1 else 0.0
            ylabels = [_format_tick(t, ystep) for t in yticks]
            ypix = [float(self.py(t)) for t in yticks]
        for t in xticks:
            x = float(self.px(t))
            if grid:
                d.line([(x, self.top), (x, self.bottom)], fill=_GRID)
            d.line([(x, self.bottom), (x, self.bottom + 5)], fill=_BLACK)
            label = _format_tick(t, xstep)
            w, _ = _text_size(d, label, f)
            d.text((x - w / 2, self.bottom + 8), label, fill=_TEXT, font=f)
        if self.log_y and grid and len(yticks) >= 2 and yticks[1] - yticks[0] == 1.0:
            for dec in range(math.floor(self.y0), math.ceil(self.y1) + 1):
                for m in range(2, 10):
                    t = dec + math.log10(m)
                    if self.y0 < t < self.y1:
                        y = float(self.py(10 ** t))
                        d.line([(self.left, y), (self.right, y)], fill=(243, 243, 243))
        for y, label in zip(ypix, ylabels):
            if grid:
                d.line([(self.left, y), (self.right, y)], fill=_GRID)
            d.line([(self.left - 5, y), (self.left, y)], fill=_BLACK)
            w, h = _text_size(d, label, f)
            d.text((self.left - 9 - w, y - h / 2 - 2), label, fill=_TEXT, font=f)
        d.rectangle([self.left, self.top, self.right, self.bottom], outline=_BLACK)
        if title:
            tf = _font(15)
            w, h = _text_size(d, title, tf)
            d.text(((self.left + self.right - w) / 2, max(self.top - h - 12, 2)), title,
                   fill=_BLACK, font=tf)
        if xlabel:
            w, h = _text_size(d, xlabel, f)
            d.text(((self.left + self.right - w) / 2, self.bottom + 28), xlabel, fill=_TEXT,
                   font=f)
        if ylabel:
            self._vertical_text(ylabel, 8, (self.top + self.bottom) / 2)

    def _vertical_text(self, text: str, x: float, yc: float) -> None:
        from PIL import Image, ImageDraw

        w, h = _text_size(self.draw, text, self.font)
        tile = Image.new("RGB", (w + 4, h + 6), _WHITE)
        ImageDraw.Draw(tile).text((2, 0), text, fill=_TEXT, font=self.font)
        tile = tile.rotate(90, expand=True)
        self.image.paste(tile, (int(x), int(yc - tile.height / 2)))

    def clip_box(self) -> tuple[int, int, int, int]:
        return self.left, self.top, self.right, self.bottom

    def legend(self, entries: Sequence[tuple[str, tuple[int, int, int], str]],
               corner: str = "upper right", avoid: Any = None) -> None:
        """``entries``: (label, colour, "line" or "dot"), drawn in a framed box.

        ``corner`` is "upper right", "upper left" or "outside right", or "best": the inside
        corner covering fewest of the pixel positions ``avoid`` ((n, 2) array).
        """
        if not entries:
            return
        d, f = self.draw, self.font
        sizes = [_text_size(d, label, f) for label, _, _ in entries]
        # one text height for every row (from tall and descending letters), so rows line up
        text_h = _text_size(d, "Ag(|", f)[1]
        row = text_h + 6
        width = max(w for w, _ in sizes) + 36
        height = row * len(entries) + 8
        if corner == "best":
            spots = {"upper right": (self.right - width - 8, self.top + 8),
                     "upper left": (self.left + 8, self.top + 8),
                     "lower right": (self.right - width - 8, self.bottom - height - 8),
                     "lower left": (self.left + 8, self.bottom - height - 8),
                     "center right": (self.right - width - 8,
                                      (self.top + self.bottom - height) / 2),
                     "center left": (self.left + 8, (self.top + self.bottom - height) / 2)}
            pts = numpy.zeros((0, 2)) if avoid is None else numpy.asarray(avoid).reshape(-1, 2)

            def covered(xy: tuple[float, float]) -> int:
                x, y = xy
                return int(((pts[:, 0] >= x - 4) & (pts[:, 0] <= x + width + 4)
                            & (pts[:, 1] >= y - 4) & (pts[:, 1] <= y + height + 4)).sum())

            x0, y0 = min(spots.values(), key=covered)  # ties: the first, upper right
        elif corner == "upper right":
            x0, y0 = self.right - width - 8, self.top + 8
        elif corner == "outside right":
            x0, y0 = self.right + 12, self.top
        else:
            x0, y0 = self.left + 8, self.top + 8
        d.rectangle([x0, y0, x0 + width, y0 + height], fill=_WHITE, outline=(160, 160, 160))
        for i, (label, colour, kind) in enumerate(entries):
            yc = y0 + 4 + row * i + row / 2
            if kind == "line":
                d.line([(x0 + 6, yc), (x0 + 26, yc)], fill=colour, width=3)
            else:
                d.ellipse([x0 + 12, yc - 4, x0 + 20, yc + 4], fill=colour)
            d.text((x0 + 32, yc), label, fill=_TEXT, font=f, anchor="lm")


def _points(series: Any) -> tuple[numpy.ndarray, numpy.ndarray]:
    """(steps, values) float arrays from a list of (step, value) pairs or an (n, 2) array."""
    if isinstance(series, Mapping):
        pairs = list(series.items())
    else:
        pairs = series
    a = numpy.asarray([(float(s), float(getattr(v, "item", lambda: v)()))
                       for s, v in pairs] if len(pairs) else numpy.zeros((0, 2)),
                      dtype=numpy.float64).reshape(-1, 2)
    return a[:, 0], a[:, 1]


def _new_canvas(size: tuple[int, int]) -> Any:
    from PIL import Image

    return Image.new("RGB", size, _WHITE)


def _to_png(image: Any, path: str | os.PathLike) -> pathlib.Path:
    return save_png(numpy.asarray(image), path)
