"""Pictures: grids, interpolation strips and the Pillow plots, including awkward inputs."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
from PIL import Image

import scratchgen as sg
from scratchgen.train import (
    density_plot, plot_curves, save_image_grid, save_interpolation_strip, scatter_2d, to_grid,
)
from scratchgen.train.axes import _linear_ticks, _log_ticks


def _open(path):
    with Image.open(path) as im:
        im.load()
        assert im.format == "PNG"
        return im


def test_pngs_are_readable_by_others(tmp_path):
    # they were written 0600 by tempfile.mkstemp, whatever the umask
    old = os.umask(0o022)
    try:
        path = save_image_grid(np.zeros((4, 1, 8, 8)), tmp_path / "g.png")
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.png"]


def test_grid_size_and_value_range(tmp_path):
    x = np.linspace(0, 1, 10 * 28 * 28).reshape(10, 1, 28, 28)
    g = to_grid(x, nrow=4, padding=2)
    assert g.shape == (3 * 30 + 2, 4 * 30 + 2, 1) and g.dtype == np.uint8
    im = _open(save_image_grid(sg.tensor(x), tmp_path / "g.png", nrow=5, scale=2,
                               value_range=(0, 1)))
    assert im.size == ((5 * 30 + 2) * 2, (2 * 30 + 2) * 2) and im.mode == "L"
    rgb = _open(save_image_grid(np.random.rand(3, 3, 8, 8), tmp_path / "c.png"))
    assert rgb.mode == "RGB" and rgb.size == (3 * 10 + 2, 12)


def test_interpolation_strip(tmp_path):
    a, b = np.zeros((1, 8, 8)), np.ones((1, 8, 8))
    t = np.linspace(0, 1, 7)[:, None, None, None]
    row = (1 - t) * a + t * b  # (7, 1, 8, 8)
    im = _open(save_interpolation_strip(np.stack([row, row[::-1], row]), tmp_path / "s.png"))
    assert im.size == (7 * 10 + 2, 3 * 10 + 2)
    px = np.asarray(im)
    assert px[2, 2] == 0 and px[2, 2 + 6 * 10] == 255  # first row runs from black to white
    im2 = _open(save_interpolation_strip([row[:, 0], row[:, 0]], tmp_path / "l.png"))
    assert im2.size == (7 * 10 + 2, 2 * 10 + 2)
    with pytest.raises(ValueError, match="same number"):
        save_interpolation_strip([row, row[:3]], tmp_path / "bad.png")


def test_tick_choice():
    assert _linear_ticks(0, 1) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert _linear_ticks(-6.3, 6.1) == pytest.approx([-6, -4, -2, 0, 2, 4, 6])
    assert _log_ticks(-1.2, 2.3) == [-1.0, 0.0, 1.0, 2.0]
    def values(lo, hi):
        return [round(10 ** t, 6) for t in _log_ticks(math.log10(lo), math.log10(hi))]

    assert values(0.15, 0.9) == [0.2, 0.5]  # within a decade: 1-2-5 marks
    assert values(0.3, 0.9) == [0.4, 0.6, 0.8]  # too few of those: a linear grid


@pytest.mark.parametrize("series", [
    {"loss": [(i, 1 / (i + 1)) for i in range(200)],
     "other": [(i, 0.5) for i in range(0, 200, 10)]},
    {"one point": [(5, 0.3)]},
    {"empty": []},
    {},
    {"nan": [(0, float("nan")), (1, 1.0), (2, float("nan")), (3, 2.0), (4, float("inf"))]},
    {"all nan": [(0, float("nan")), (1, float("nan"))], "ok": [(0, 1.0), (1, 2.0)]},
    {"constant": [(i, 7.0) for i in range(10)]},
    {"huge": [(i, 1e9 * (i + 1)) for i in range(5)], "tiny": [(i, 1e-7 * i) for i in range(5)]},
])
@pytest.mark.parametrize("log_y", [False, True])
def test_plot_curves_edge_cases(tmp_path, series, log_y):
    im = _open(plot_curves(series, tmp_path / "c.png", title="t", log_y=log_y, size=(400, 300)))
    assert im.size == (400, 300) and im.mode == "RGB"


def test_plot_curves_draws_each_series_in_its_colour(tmp_path):
    from scratchgen.train.plots import PALETTE

    im = _open(plot_curves({"a": [(0, 0), (10, 1)], "b": [(0, 1), (10, 0)],
                            "neg": [(0, -1.0), (10, 5.0)]}, tmp_path / "c.png", log_y=False))
    px = np.asarray(im).reshape(-1, 3)
    for colour in PALETTE[:3]:
        assert (px == colour).all(axis=1).sum() > 50


def test_scatter_2d(tmp_path):
    rng = np.random.default_rng(0)
    pts = rng.standard_normal((300, 2))
    pts[0] = np.nan
    labels = rng.integers(0, 10, 300)
    im = _open(scatter_2d(sg.tensor(pts), labels, tmp_path / "s.png", title="z",
                          class_names=[f"digit {i}" for i in range(10)]))
    assert im.size[1] == 560 and im.size[0] > 640  # the legend sits beside the plot
    _open(scatter_2d(pts[1:2], None, tmp_path / "one.png"))
    _open(scatter_2d(np.zeros((0, 2)), np.zeros(0, dtype=int), tmp_path / "none.png"))
    _open(scatter_2d(pts, np.array(["a", "b", "c"] * 100), tmp_path / "str.png"))
    with pytest.raises(ValueError, match="labels"):
        scatter_2d(pts, labels[:5], tmp_path / "bad.png")


def test_density_plot(tmp_path):
    xs, ys = np.linspace(-2, 2, 40), np.linspace(-1, 3, 30)
    X, Y = np.meshgrid(xs, ys)
    d = np.exp(-(X ** 2 + (Y - 2) ** 2))  # a bump near the top of the picture
    im = _open(density_plot(d, (-2, 2, -1, 3), tmp_path / "d.png", points=np.zeros((5, 2))))
    assert im.size == (690, 540)
    arr = np.asarray(im).astype(int)
    col = arr[44:484, 76 + 220]  # a column through the plot's middle
    brightest = int(np.argmax(col.sum(axis=1)))
    assert brightest < 0.4 * len(col)  # y grows upwards: the bump is drawn near the top
    d2 = d.copy()
    d2[0, 0] = np.nan
    _open(density_plot(d2, (-2, 2, -1, 3), tmp_path / "log.png", log=True))
    _open(density_plot(np.zeros((4, 4)), (0, 1, 0, 1), tmp_path / "flat.png"))
    with pytest.raises(ValueError, match="extent"):
        density_plot(d, (2, -2, 0, 1), tmp_path / "bad.png")


def test_captions_and_headers_say_what_a_grid_shows(tmp_path):
    from scratchgen.train import png_description

    x = np.zeros((6, 1, 8, 8))
    plain = _open(save_image_grid(x, tmp_path / "plain.png", nrow=3, scale=2))
    assert png_description(tmp_path / "plain.png") is None
    path = save_image_grid(x, tmp_path / "g.png", nrow=3, scale=2,
                           caption="odd columns: test images; even: reconstructions",
                           row_labels=["unit 3", "unit 7"], col_labels=["-3", "0", "3"])
    im = _open(path)
    assert png_description(path) == "odd columns: test images; even: reconstructions"
    # headers above, labels on the left, a caption band below; at least 360 wide with a caption
    assert im.size[0] >= 360 and im.size[1] > plain.size[1] + 20 and im.mode == "L"
    px = np.asarray(im)
    assert (px < 128).any(axis=1)[-20:].any()           # text in the caption band
    # an interpolation strip takes the same labels; a long caption wraps, it is not cut off
    long = "rows: " + "a latent unit swept from -3 to 3 " * 8
    strip = _open(save_interpolation_strip(np.zeros((2, 5, 1, 8, 8)), tmp_path / "s.png",
                                           scale=4, caption=long, row_labels=["z0", "z1"]))
    assert strip.size[0] == 360 and png_description(tmp_path / "s.png") == long
    # RGB grids keep their colours
    rgb = _open(save_image_grid(np.random.rand(3, 3, 8, 8), tmp_path / "c.png", caption="c"))
    assert rgb.mode == "RGB"


def test_bar_chart(tmp_path):
    from scratchgen.train.plots import bar_chart

    counts = np.array([5000, 0, 3, 40, 0, 1])
    im = _open(bar_chart(counts, tmp_path / "b.png", title="code use", xlabel="code index k",
                         ylabel="uses (count, log scale)", log_y=True, note="2 codes never used"))
    assert im.size == (800, 420)
    px = np.asarray(im.convert("RGB")).astype(int)
    red = (px[..., 0] > 180) & (px[..., 1] < 80) & (px[..., 2] < 80)
    assert red.any()                                     # the never-used codes are marked
    im2 = _open(bar_chart([1.0, -2.0, float("nan")], tmp_path / "l.png"))
    assert im2.size == (800, 420)
