"""Rebuild the colour images shipped in scratchgen/data/embedded/images/ (read them with
``scratchgen.data.photos``).

    pip download --no-deps scikit-image==0.26.0 -d /tmp/skw      # one wheel, any platform's
    unzip -q /tmp/skw/scikit_image-0.26.0-*.whl 'skimage/data/*' -d /tmp/skd
    python scripts/make_embedded_images.py --skimage-data /tmp/skd/skimage/data

The photographs come from scikit-image's sample data (``skimage/data``; the licence of each is
in the docstring of its loader in ``skimage/data/_fetchers.py``, copied into the README written
beside the images). Each is cropped (style images only: a square of texture), resized with
Pillow's Lanczos filter so that its longer side is ``SIDE`` (256) pixels, and saved as an 8-bit
RGB PNG. ``mosaic.png`` is drawn here, from a fixed seed: no painting with a clear licence ships
with scikit-image, and a stained-glass pattern (bright flat cells, dark lead lines) gives the
style losses strong colours and strokes to copy, as the paintings of the papers do.

Running the script again gives byte-identical files (same wheel, same Pillow major version).
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np
from PIL import Image

OUT = pathlib.Path(__file__).resolve().parents[1] / "scratchgen" / "data" / "embedded" / "images"
SIDE = 256

#: name -> (source file in skimage/data, crop box (left, top, right, bottom) or None)
PHOTOS = {
    "chelsea": ("chelsea.png", None),
    "coffee": ("coffee.png", None),
    "astronaut": ("astronaut.png", None),
    "rocket": ("rocket.jpg", None),
    # the galaxy-rich upper left of the Hubble eXtreme Deep Field (1000x872)
    "hubble": ("hubble_deep_field.jpg", (60, 0, 500, 440)),
    # the optic disc and the blood vessels leaving it, inside the black border
    "retina": ("retina.jpg", (180, 420, 780, 1020)),
}


def resized(image: Image.Image, side: int = SIDE) -> Image.Image:
    """``image`` with its longer side ``side`` pixels (never enlarged), aspect ratio kept."""
    w, h = image.size
    scale = side / max(w, h)
    if scale >= 1:
        return image
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))),
                        Image.Resampling.LANCZOS)


def mosaic(side: int = SIDE, cells: int = 90, seed: int = 0) -> np.ndarray:
    """A stained-glass picture, uint8 (side, side, 3): the Voronoi cells of ``cells`` random
    points, each a saturated colour shaded a little from its centre, separated by dark lines
    where the nearest and second-nearest points are almost equally near."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(0, side, size=(cells, 2))
    hue = rng.uniform(0, 1, cells)
    sat = rng.uniform(0.65, 1.0, cells)
    val = rng.uniform(0.7, 1.0, cells)
    # HSV -> RGB, vectorised over the cells
    i = np.floor(hue * 6).astype(int) % 6
    f = hue * 6 - np.floor(hue * 6)
    p, q, t = val * (1 - sat), val * (1 - f * sat), val * (1 - (1 - f) * sat)
    table = np.stack([np.stack(c, axis=1) for c in
                      ((val, t, p), (q, val, p), (p, val, t), (p, q, val), (t, p, val),
                       (val, p, q))])            # (6, cells, 3)
    colours = table[i, np.arange(cells)]         # (cells, 3)

    yy, xx = np.mgrid[0:side, 0:side].astype(np.float64) + 0.5
    d = np.sqrt((yy[..., None] - points[:, 1]) ** 2 + (xx[..., None] - points[:, 0]) ** 2)
    order = np.argsort(d, axis=-1)
    nearest, second = order[..., 0], order[..., 1]
    d1 = np.take_along_axis(d, nearest[..., None], -1)[..., 0]
    d2 = np.take_along_axis(d, second[..., None], -1)[..., 0]
    shade = 1.0 - 0.35 * np.clip(d1 / (side / np.sqrt(cells)), 0, 1)   # darker towards edges
    rgb = colours[nearest] * shade[..., None]
    lead = np.clip((d2 - d1 - 1.0) / 1.5, 0, 1)[..., None]            # 0 on the lines
    rgb = rgb * lead + 0.08 * (1 - lead)
    return np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--skimage-data", required=True, type=pathlib.Path,
                   help="the skimage/data folder of an unpacked scikit-image wheel")
    p.add_argument("--out", type=pathlib.Path, default=OUT)
    args = p.parse_args(argv)
    if not args.skimage_data.is_dir():
        print(f"--skimage-data {args.skimage_data}: no such folder", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    total = 0
    for name, (source, box) in PHOTOS.items():
        path = args.skimage_data / source
        if not path.is_file():
            print(f"{path}: missing from the wheel", file=sys.stderr)
            return 2
        with Image.open(path) as im:
            image = im.convert("RGB")
        if box is not None:
            image = image.crop(box)
        target = args.out / f"{name}.png"
        resized(image).save(target, optimize=True)
        total += target.stat().st_size
        print(f"{target.name}: {Image.open(target).size} from {source}, "
              f"{target.stat().st_size / 1024:.0f} KB")
    target = args.out / "mosaic.png"
    Image.fromarray(mosaic()).save(target, optimize=True)
    total += target.stat().st_size
    print(f"{target.name}: drawn, {target.stat().st_size / 1024:.0f} KB")
    print(f"{total / 1024:.0f} KB in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
