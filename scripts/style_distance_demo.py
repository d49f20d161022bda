"""Do the Gram matrices of a random-weight VGG-16 tell textures apart? A check of the default
loss network of ``scratchgen.models.vgg.random_vgg16``, in the spirit of Ustyuzhaninov et al.
2016 ("patches from the same texture are consistently classified as being more similar than
patches from different textures"):

    python scripts/style_distance_demo.py IMAGE [IMAGE ...] [--crop 96] [--size 256] [--grid 2]

Each image is resized so that its short side is ``--size`` pixels and cut into a ``--grid`` x
``--grid`` grid;
the centre ``--crop`` x ``--crop`` patch of each cell is one crop. Between every two crops
the style distance of Johnson et al. (``style_loss``: sum over relu1_2, relu2_2, relu3_3,
relu4_3 of ||G(a) - G(b)||_F^2) is computed, and the script reports, for each feature space:

* ``same`` / ``different``: the median distance between crops of the same image / of
  different images, and their ratio (> 1 when the space separates the images);
* ``1-NN``: the fraction of crops whose nearest other crop comes from the same image;
* ``layer shares``: how much of the distance each style layer contributes, on average.

With ``--equalize`` every crop's channels are first given the same mean and standard
deviation, so that only the spatial structure (the texture proper) is left to tell them apart.

The feature spaces: the random VGG-16 with He-scaled weights (``random_vgg16``), the same
architecture with PyTorch's default initialisation (``VGG16Features()``), and a baseline
without a network: the 3 x 3 Gram matrix of the ImageNet-normalised RGB pixels (colour
statistics only).
"""
from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

import scratchgen as sg
from scratchgen.losses.perceptual import gram_matrix
from scratchgen.models.vgg import (
    IMAGENET_MEAN, IMAGENET_STD, JOHNSON_STYLE_LAYERS, VGG16Features, random_vgg16,
)


def load_image(path: str | pathlib.Path, size: int) -> np.ndarray:
    """RGB (H, W, 3) in [0, 1], resized so that the short side is ``size``."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        s = size / min(w, h)
        im = im.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BILINEAR)
        return np.asarray(im, np.float32) / 255.0


def grid_crops(img: np.ndarray, crop: int, grid: int = 2) -> list[np.ndarray]:
    """The centre crop x crop patch of each cell of a grid x grid partition of the image, as
    (3, crop, crop) arrays (non-overlapping)."""
    h, w = img.shape[:2]
    if h < grid * crop or w < grid * crop:
        raise ValueError(f"an image of {h}x{w} pixels has no room for {grid} x {grid} crops "
                         f"of {crop}")
    out = []
    for i in range(grid):
        for j in range(grid):
            top = i * (h // grid) + (h // grid - crop) // 2
            left = j * (w // grid) + (w // grid - crop) // 2
            out.append(np.ascontiguousarray(img[top:top + crop, left:left + crop]
                                            .transpose(2, 0, 1)))
    return out


def equalize(crop: np.ndarray) -> np.ndarray:
    """The crop with each channel shifted and scaled to mean 0.45 and standard deviation 0.2:
    a distance on what is left cannot come from brightness, contrast or colour balance."""
    mean = crop.mean(axis=(1, 2), keepdims=True)
    std = crop.std(axis=(1, 2), keepdims=True) + 1e-6
    return ((crop - mean) / std * 0.2 + 0.45).astype(np.float32)


def network_grams(net: VGG16Features, layers: Sequence[str]) -> Callable[[np.ndarray], list]:
    def grams(crop: np.ndarray) -> list[np.ndarray]:
        with sg.no_grad():
            feats = net(sg.tensor(crop[None]), layers)
            return [gram_matrix(feats[n]).numpy()[0].astype(np.float64) for n in layers]
    return grams


def pixel_grams(crop: np.ndarray) -> list[np.ndarray]:
    x = (crop - np.array(IMAGENET_MEAN, np.float32)[:, None, None]) \
        / np.array(IMAGENET_STD, np.float32)[:, None, None]
    return [gram_matrix(sg.tensor(x[None])).numpy()[0].astype(np.float64)]


def distances(grams: list[list[np.ndarray]]) -> np.ndarray:
    """(n, n, layers) array of ||G_j(a) - G_j(b)||_F^2; summed over the last axis, the style
    loss between crops a and b."""
    n, layers = len(grams), len(grams[0])
    d = np.zeros((n, n, layers))
    for a in range(n):
        for b in range(a + 1, n):
            d[a, b] = d[b, a] = [float(((ga - gb) ** 2).sum())
                                 for ga, gb in zip(grams[a], grams[b])]
    return d


def summarise(per_layer: np.ndarray, owner: np.ndarray) -> dict[str, Any]:
    n = len(owner)
    d = per_layer.sum(axis=2)
    same = owner[:, None] == owner[None, :]
    off = ~np.eye(n, dtype=bool)
    nearest = np.where(off, d, np.inf).argmin(axis=1)
    out = {"same": float(np.median(d[same & off])), "different": float(np.median(d[~same]))}
    out["ratio"] = out["different"] / out["same"]
    out["1-NN"] = float(np.mean(owner[nearest] == owner))
    # each layer's share of the distance, averaged over the pairs of crops
    pairs = per_layer[np.triu_indices(n, 1)]
    out["layer shares"] = (pairs / pairs.sum(axis=1, keepdims=True)).mean(axis=0).tolist()
    return out


def run(paths: Sequence[str], crop: int = 96, size: int = 256, grid: int = 2, seed: int = 0,
        equal: bool = False,
        report: Callable[[str], Any] = print) -> dict[str, dict[str, float]]:
    crops, owner = [], []
    for k, p in enumerate(paths):
        cs = grid_crops(load_image(p, size), crop, grid)
        if equal:
            cs = [equalize(c) for c in cs]
        crops += cs
        owner += [k] * len(cs)
    owner_arr = np.array(owner)
    spaces = {
        "random VGG-16, He init (random_vgg16)": network_grams(random_vgg16(seed),
                                                              JOHNSON_STYLE_LAYERS),
        "random VGG-16, PyTorch default init": network_grams(
            (sg.manual_seed(seed), VGG16Features())[1], JOHNSON_STYLE_LAYERS),
        "pixels only (3x3 colour Gram)": pixel_grams,
    }
    results = {}
    report(f"{len(paths)} images x {grid * grid} crops of {crop}x{crop}"
           + (" (each channel equalised)" if equal else "") + ": "
           + ", ".join(pathlib.Path(p).stem for p in paths))
    for name, fn in spaces.items():
        r = summarise(distances([fn(c) for c in crops]), owner_arr)
        results[name] = r
        shares = " ".join(f"{v:.0%}" for v in r["layer shares"])
        report(f"{name:40s} same {r['same']:.3g}  different {r['different']:.3g}  "
               f"ratio {r['ratio']:.1f}  1-NN {r['1-NN']:.0%}  layer shares {shares}")
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", nargs="+", help="image files (any format Pillow reads)")
    ap.add_argument("--crop", type=int, default=96, help="crop side in pixels (default 96)")
    ap.add_argument("--size", type=int, default=256, help="short side after resizing (256)")
    ap.add_argument("--grid", type=int, default=2, help="grid x grid crops per image (2)")
    ap.add_argument("--equalize", action="store_true", help="give every crop's channels the "
                    "same mean and standard deviation (leaves only spatial structure)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random networks (0)")
    args = ap.parse_args(argv)
    missing = [p for p in args.images if not pathlib.Path(p).is_file()]
    if missing:
        raise SystemExit(f"style_distance_demo: no such file(s): {', '.join(missing)}")
    if len(args.images) < 2:
        raise SystemExit("style_distance_demo: give at least two images")
    run(args.images, args.crop, args.size, args.grid, args.seed, args.equalize)
    return 0


if __name__ == "__main__":
    sys.exit(main())
