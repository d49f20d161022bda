"""Pictures drawn with Pillow, written atomically as PNG.

- ``to_grid`` / ``save_image_grid``: a batch of images tiled into one picture.
- ``save_interpolation_strip``: rows of images, each row a walk between two images.
- ``label_grid``: headers over the columns, labels left of the rows and a caption under a
  grid, so that a picture says what it shows; ``save_image_grid`` and
  ``save_interpolation_strip`` take the same ``caption``, ``row_labels`` and ``col_labels``.
  The caption is also stored in the PNG as its ``Description`` text (``png_description``).
- ``plot_curves``: loss curves (several series, axes with numbered ticks, legend, log scale);
  ``curves_image`` draws the same without writing a file.
- ``bar_chart``: one bar per value (how often each code of a codebook is used, say).
- ``scatter_2d``: 2-D points coloured by class (latent spaces), with a legend.
- ``density_plot``: a heatmap of a 2-D density on a grid, with a colour bar and optional points.

The plots need nothing but Pillow: a small axes object maps data to pixels and draws
ticks at 1-2-5 steps (decades on a log scale); the text uses Pillow's default font.
"""
from __future__ import annotations

import os
import pathlib
import math
from typing import Any, Mapping, Sequence

import numpy

from scratchgen import backend
from scratchgen.serialization import atomic_write

__all__ = ["to_grid", "save_image_grid", "save_png", "save_interpolation_strip", "label_grid",
           "png_description", "plot_curves", "curves_image", "bar_chart", "scatter_2d",
           "density_plot", "PALETTE"]


def _host(images: Any) -> numpy.ndarray:
    data = getattr(images, "data", images)
    return numpy.asarray(backend.to_device(data, "cpu"), dtype=numpy.float64)


def to_grid(images: Any, nrow: int = 8, padding: int = 2, value_range: tuple[float, float] | None = None,
            pad_value: float = 1.0, scale: int = 1) -> numpy.ndarray:
    """Tile a batch (N, C, H, W) or (N, H, W), C in {1, 3}, into one uint8 image (H', W', C).

    ``value_range`` (lo, hi) maps lo to black and hi to white (default: the batch's min and max);
    ``nrow`` images per row, as ``torchvision.utils.make_grid``; ``scale`` enlarges each pixel.
    """
    x = _host(images)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"to_grid takes (N, C, H, W) with C 1 or 3, or (N, H, W); got {x.shape}")
    lo, hi = value_range if value_range is not None else (float(x.min()), float(x.max()))
    x = numpy.clip((x - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    n, c, h, w = x.shape
    ncol = min(nrow, n)
    nrows = (n + ncol - 1) // ncol
    grid = numpy.full((c, nrows * (h + padding) + padding, ncol * (w + padding) + padding),
                      pad_value)
    for i in range(n):
        r, q = divmod(i, ncol)
        top, left = padding + r * (h + padding), padding + q * (w + padding)
        grid[:, top:top + h, left:left + w] = x[i]
    img = (grid.transpose(1, 2, 0) * 255.0 + 0.5).astype(numpy.uint8)
    if scale > 1:
        img = img.repeat(scale, axis=0).repeat(scale, axis=1)
    return img


def save_png(image: numpy.ndarray, path: str | os.PathLike,
             description: str | None = None) -> pathlib.Path:
    """Write an (H, W) or (H, W, C) uint8 array as PNG, atomically (temp file, then rename),
    with the permissions the umask gives new files; ``description`` is stored as the PNG's
    ``Description`` text (what the picture shows, for readers such as ``report.html``)."""
    from PIL import Image, PngImagePlugin

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    info = None
    if description:
        info = PngImagePlugin.PngInfo()
        info.add_itxt("Description", description)  # iTXt: UTF-8, so any caption fits
    atomic_write(path, lambda f: Image.fromarray(image).save(f, format="PNG", pnginfo=info))
    return path


def png_description(path: str | os.PathLike) -> str | None:
    """The ``Description`` text of a PNG written by ``save_png`` (None when it has none or the
    file is not a readable PNG)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            text = getattr(im, "text", {}).get("Description")
    except (OSError, ValueError, SyntaxError):  # Pillow raises SyntaxError on broken chunks
        return None
    return str(text) if text else None


def _wrap(draw: Any, text: str, font: Any, width: int) -> list[str]:
    """``text`` broken into lines no wider than ``width`` pixels where the words allow (a
    longer word gets a line of its own); explicit newlines are kept."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            trial = f"{line} {word}" if line else word
            if line and _text_size(draw, trial, font)[0] > width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return lines


def label_grid(grid: numpy.ndarray, rows: int, cols: int, cell: tuple[int, int],
               padding: int = 0, caption: str | None = None,
               row_labels: Sequence[str] | None = None,
               col_labels: Sequence[str] | None = None,
               min_width: int = 360) -> numpy.ndarray:
    """``grid`` (H, W, C) uint8 -- ``rows`` x ``cols`` cells of ``cell`` = (height, width)
    pixels, ``padding`` pixels before each cell and after the last (``to_grid``'s layout) --
    with ``col_labels[j]`` centred above column j, ``row_labels[i]`` right-aligned left of row
    i, and ``caption`` wrapped into a white band underneath (explicit newlines kept). With a
    caption the picture is at least ``min_width`` pixels wide (the grid centred), so that the
    text does not wrap into a narrow column. Fewer labels than rows or columns label the first
    ones. Returns a new uint8 array: (H', W') for a grey grid, else (H', W', 3)."""
    from PIL import Image, ImageDraw

    if not caption and not row_labels and not col_labels:
        return grid
    grey = grid.ndim == 2 or grid.shape[2] == 1
    mode, ink = ("L", 30) if grey else ("RGB", _TEXT)
    base = Image.fromarray(grid.reshape(grid.shape[:2]) if grey else grid[:, :, :3])
    font = _font(12)
    measure = ImageDraw.Draw(Image.new(mode, (1, 1)))
    line_h = _text_size(measure, "Ag(|", font)[1] + 4
    left = 0
    if row_labels:
        left = max(_text_size(measure, str(t), font)[0] for t in row_labels) + 10
    top = line_h + 6 if col_labels else 0
    width = left + base.width
    if caption:
        width = max(width, min_width)
    lines = _wrap(measure, caption, font, width - 16) if caption else []
    band = len(lines) * line_h + 12 if lines else 0
    x0 = left + (width - left - base.width) // 2
    canvas = Image.new(mode, (width, top + base.height + band), 255 if grey else _WHITE)
    canvas.paste(base, (x0, top))
    draw = ImageDraw.Draw(canvas)
    ch, cw = cell
    for j, text in enumerate(list(col_labels or [])[:cols]):
        xc = x0 + padding + j * (cw + padding) + cw / 2
        w, _ = _text_size(draw, str(text), font)
        draw.text((xc - w / 2, 3), str(text), fill=ink, font=font)
    for i, text in enumerate(list(row_labels or [])[:rows]):
        yc = top + padding + i * (ch + padding) + ch / 2
        w, _ = _text_size(draw, str(text), font)
        draw.text((x0 - 6 - w, yc - line_h / 2 + 1), str(text), fill=ink, font=font)
    y = top + base.height + 6
    for line in lines:
        draw.text((8, y), line, fill=ink, font=font)
        y += line_h
    return numpy.asarray(canvas)


def _grid_layout(n: int, h: int, w: int, nrow: int, padding: int, scale: int
                 ) -> tuple[int, int, tuple[int, int], int]:
    """(rows, columns, cell (height, width), padding) of ``to_grid``'s picture of n images of
    h x w, in the picture's pixels."""
    cols = max(1, min(nrow, n))
    return (n + cols - 1) // cols, cols, (h * scale, w * scale), padding * scale


def save_image_grid(images: Any, path: str | os.PathLike, nrow: int = 8, padding: int = 2,
                    value_range: tuple[float, float] | None = None, scale: int = 1,
                    caption: str | None = None, row_labels: Sequence[str] | None = None,
                    col_labels: Sequence[str] | None = None) -> pathlib.Path:
    """``to_grid`` then ``save_png``; ``caption``, ``row_labels`` and ``col_labels`` (see
    ``label_grid``) say what the rows and columns show, e.g. ``caption="odd columns: test
    images; even columns: their reconstructions"``. The caption is also the PNG's
    ``Description``."""
    grid = to_grid(images, nrow, padding, value_range, scale=scale)
    if caption or row_labels or col_labels:
        shape = _host(images).shape
        rows, cols, cell, pad = _grid_layout(shape[0], shape[-2], shape[-1], nrow, padding,
                                             scale)
        grid = label_grid(grid, rows, cols, cell, pad, caption, row_labels, col_labels)
    return save_png(grid, path, description=caption)


def save_interpolation_strip(rows_of_images: Any, path: str | os.PathLike, padding: int = 2,
                             value_range: tuple[float, float] | None = None,
                             scale: int = 1, caption: str | None = None,
                             row_labels: Sequence[str] | None = None,
                             col_labels: Sequence[str] | None = None) -> pathlib.Path:
    """One row per interpolation: row r shows the K images from one end point to the other.

    ``rows_of_images`` is an array or Tensor (R, K, C, H, W) or (R, K, H, W), or a list of R
    rows, each (K, C, H, W) or (K, H, W) with the same K. All rows share one ``value_range``
    (default: the min and max over all of them), so brightness is comparable across rows.
    ``caption``, ``row_labels`` (one per row) and ``col_labels`` (one per step) as in
    ``save_image_grid``.
    """
    if isinstance(rows_of_images, (list, tuple)):
        rows = [_host(r) for r in rows_of_images]
        if not rows:
            raise ValueError("save_interpolation_strip needs at least one row")
        lengths = {r.shape[0] for r in rows}
        if len(lengths) != 1:
            raise ValueError(f"every row needs the same number of images, got {sorted(lengths)}")
        x = numpy.stack(rows)
    else:
        x = _host(rows_of_images)
    if x.ndim == 4:
        x = x[:, :, None]
    if x.ndim != 5:
        raise ValueError("save_interpolation_strip takes (R, K, C, H, W) or (R, K, H, W), got "
                         f"shape {x.shape}")
    r, k = x.shape[:2]
    return save_image_grid(x.reshape((r * k,) + x.shape[2:]), path, nrow=k, padding=padding,
                           value_range=value_range, scale=scale, caption=caption,
                           row_labels=row_labels, col_labels=col_labels)


# ---------------------------------------------------------------------------------------------
# plots

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


def _font(size: int = 13):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: only the fixed bitmap font
        return ImageFont.load_default()


def _text_size(draw: Any, text: str, font: Any) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top


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
