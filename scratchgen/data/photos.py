"""Colour photographs shipped with the package, and a user's own image files, as float arrays.

    photo("chelsea")                 # float32 (3, 170, 256) in [0, 1], the shipped cat
    photo("mosaic", size=128)        # shorter side resized to 128, aspect ratio kept
    load_image("my_painting.jpg")    # a user's file, checked to be a colour image
    image_from("chelsea" or "path/to/file.png")

The shipped images (``scratchgen/data/embedded/images``, longer side 256 px; their sources,
authors and licences are in the README there; ``scripts/make_embedded_images.py`` rebuilds them
from the scikit-image wheel):

    content photos: chelsea (a cat), coffee (a cup), astronaut (Eileen Collins), rocket (a
                    launch at dusk)
    style images:   mosaic (stained glass drawn from a seed), hubble (the Hubble eXtreme Deep
                    Field), retina (a fundus photograph: orange with red vessels)

Every image is RGB. A file that is not is refused with one line naming the file and what it is,
rather than converted: a grayscale picture turned into three equal channels has no colour for
a style loss to copy, and a transparent pixel has no colour at all. So ``load_image`` accepts
RGB files; palette files (their colours are RGB already) and RGBA files whose pixels are all
opaque (the alpha says nothing) are converted; grayscale (``L``, ``LA``, ``1``, ``I``, ``F``),
CMYK and partly transparent files raise ``ValueError``; a missing file ``FileNotFoundError``.

``size``, as in PyTorch's ``Resize``: an int resizes the shorter side to it (the longer one in
proportion), a pair ``(height, width)`` resizes to exactly that; Pillow's Lanczos filter, then
float32 in [0, 1], channels first.
"""
from __future__ import annotations

import os
import pathlib
from typing import Sequence, Union

import numpy as np

__all__ = ["CONTENT_PHOTOS", "STYLE_IMAGES", "PHOTO_NAMES", "IMAGES_DIR", "photo", "load_image",
           "image_from", "resize_image", "cover_crop", "photo_path"]

IMAGES_DIR = pathlib.Path(__file__).resolve().parent / "embedded" / "images"

#: The shipped content photos, in the order the examples show them.
CONTENT_PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
#: The shipped style images (colourful textures; see the module docstring).
STYLE_IMAGES = ("mosaic", "hubble", "retina")
PHOTO_NAMES = CONTENT_PHOTOS + STYLE_IMAGES

Size = Union[int, Sequence[int], None]


def photo_path(name: str) -> pathlib.Path:
    """The file of the shipped image ``name``; an unknown name is a ``ValueError`` that lists
    the known ones."""
    if name not in PHOTO_NAMES:
        raise ValueError(f"no shipped image named {name!r}; the shipped images are "
                         f"{', '.join(PHOTO_NAMES)}")
    return IMAGES_DIR / f"{name}.png"


def photo(name: str, size: Size = None) -> np.ndarray:
    """The shipped image ``name`` as float32 (3, H, W) in [0, 1], resized by ``size`` (see the
    module docstring; ``None`` keeps its stored size, longer side 256)."""
    return load_image(photo_path(name), size)


def _target_size(h: int, w: int, size: Size, where: str) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        if size < 1:
            raise ValueError(f"size {size}: must be a positive number of pixels")
        short = min(h, w)
        return (int(size), max(1, round(w * size / short))) if h == short else \
            (max(1, round(h * size / short)), int(size))
    if (isinstance(size, Sequence) and len(size) == 2
            and all(isinstance(s, (int, np.integer)) and s >= 1 for s in size)):
        return int(size[0]), int(size[1])
    raise ValueError(f"size {size!r} for {where}: give an int (the shorter side) or "
                     "(height, width), positive")


def resize_image(image: np.ndarray, size: Size) -> np.ndarray:
    """A float (C, H, W) image in [0, 1] resized by ``size`` (int: the shorter side; or
    (height, width)) with Lanczos filtering, float32, values kept in [0, 1]."""
    from PIL import Image

    if size is None:
        return np.asarray(image, dtype=np.float32)
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"resize_image expects a (C, H, W) image, got shape {image.shape}")
    h, w = image.shape[1:]
    th, tw = _target_size(h, w, size, f"an image of shape {image.shape}")
    if (th, tw) == (h, w):
        return image.astype(np.float32)
    # each channel as a 32-bit float image, so nothing is rounded to 8 bits on the way
    planes = [np.asarray(Image.fromarray(c.astype(np.float32))
                         .resize((tw, th), Image.Resampling.LANCZOS)) for c in image]
    return np.clip(np.stack(planes), 0.0, 1.0).astype(np.float32)


def cover_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """A float (C, H, W) image scaled (aspect ratio kept) until it covers height x width, then
    cropped to exactly that around its centre: every picture of a set the same size, none
    stretched."""
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"cover_crop expects a (C, H, W) image, got shape {image.shape}")
    h, w = image.shape[1:]
    scale = max(height / h, width / w)
    th, tw = max(height, round(h * scale)), max(width, round(w * scale))
    image = resize_image(image, (th, tw))
    top, left = (th - height) // 2, (tw - width) // 2
    return np.ascontiguousarray(image[:, top:top + height, left:left + width])


def load_image(path: str | os.PathLike, size: Size = None) -> np.ndarray:
    """The colour image file ``path`` (PNG, JPEG, ... anything Pillow reads) as float32
    (3, H, W) in [0, 1], resized by ``size``. Errors (one line, naming the file): missing file
    (``FileNotFoundError``), not an image, or not a colour image (``ValueError``; see the module
    docstring for what is converted and what is refused)."""
    from PIL import Image, UnidentifiedImageError

    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image file" if not path.exists()
                                else f"{path}: is a folder, not an image file")
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            if im.mode == "RGBA":
                alpha = np.asarray(im.getchannel("A"))
                if alpha.min() < 255:
                    raise ValueError(f"{path}: has transparent pixels ({mode} with an alpha "
                                     "channel); save it without transparency (flattened onto "
                                     "a background) as RGB")
                im = im.convert("RGB")
            if im.mode != "RGB":
                what = ("a grayscale image" if mode in ("L", "LA", "1", "I", "I;16", "F")
                        else "not an RGB image")
                raise ValueError(f"{path}: {what} (Pillow mode {mode}); style transfer needs "
                                 "a colour (RGB) image")
            array = np.asarray(im, dtype=np.uint8)
    except UnidentifiedImageError:
        raise ValueError(f"{path}: not an image file Pillow can read") from None
    except OSError as exc:
        raise ValueError(f"{path}: unreadable image ({exc})") from None
    image = array.transpose(2, 0, 1).astype(np.float32) / 255.0
    return resize_image(image, size) if size is not None else image


def image_from(name_or_path: str | os.PathLike, size: Size = None) -> np.ndarray:
    """A shipped image by name, or else an image file by path: float32 (3, H, W) in [0, 1].
    A string that is neither is a ``FileNotFoundError`` naming it and the shipped names."""
    text = str(name_or_path)
    if text in PHOTO_NAMES:
        return photo(text, size)
    if not pathlib.Path(text).exists():
        raise FileNotFoundError(f"{text}: neither a shipped image ({', '.join(PHOTO_NAMES)}) "
                                "nor an image file")
    return load_image(text, size)
