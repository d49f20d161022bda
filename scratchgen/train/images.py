"""Pictures drawn with Pillow, written atomically as PNG.

- ``to_grid`` / ``save_image_grid``: a batch of images tiled into one picture.
- ``save_interpolation_strip``: rows of images, each row a walk between two images.
- ``label_grid``: headers over the columns, labels left of the rows and a caption under a
  grid, so that a picture says what it shows; ``save_image_grid`` and
  ``save_interpolation_strip`` take the same ``caption``, ``row_labels`` and ``col_labels``.
  The caption is also stored in the PNG as its ``Description`` text (``png_description``).

The charts (loss curves, bars, scatter plots, densities) are in ``scratchgen.train.plots``.
"""
from __future__ import annotations

import os
import pathlib
from typing import Any, Sequence

import numpy

from scratchgen import backend
from scratchgen.serialization import atomic_write

__all__ = ["to_grid", "save_image_grid", "save_png", "save_interpolation_strip", "label_grid",
           "png_description"]

_WHITE, _TEXT = (255, 255, 255), (30, 30, 30)


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


def _font(size: int = 13):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: only the fixed bitmap font
        return ImageFont.load_default()


def _text_size(draw: Any, text: str, font: Any) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top
