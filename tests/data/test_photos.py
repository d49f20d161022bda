"""The colour images shipped for style transfer, and loading a user's image: sizes, range,
the README that credits each one, and the one-line errors for files that are missing, not
images, or not colour images."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from scratchgen.data import photos
from scratchgen.data.photos import (
    CONTENT_PHOTOS, IMAGES_DIR, PHOTO_NAMES, STYLE_IMAGES, cover_crop, image_from, load_image,
    photo, resize_image,
)


def test_every_shipped_image_is_an_rgb_png_of_at_most_256_pixels():
    files = sorted(p.stem for p in IMAGES_DIR.glob("*.png"))
    assert files == sorted(PHOTO_NAMES)
    assert set(CONTENT_PHOTOS).isdisjoint(STYLE_IMAGES)
    total = 0
    for name in PHOTO_NAMES:
        path = IMAGES_DIR / f"{name}.png"
        with Image.open(path) as im:
            assert im.format == "PNG" and im.mode == "RGB", name
            assert max(im.size) <= 256, name
        total += path.stat().st_size
    assert total < 700 * 1024


def test_the_readme_credits_every_image():
    text = (IMAGES_DIR / "README.md").read_text()
    for name in PHOTO_NAMES:
        assert f"`{name}.png`" in text, name
    for licence in ("CC0", "public domain"):
        assert licence in text


@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_photo_is_float_chw_in_unit_range(name):
    x = photo(name)
    assert x.dtype == np.float32 and x.ndim == 3 and x.shape[0] == 3
    assert max(x.shape[1:]) == 256
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.05


def test_size_resizes_the_shorter_side_or_to_exactly_height_width():
    assert photo("chelsea").shape == (3, 170, 256)
    assert photo("chelsea", size=64).shape == (3, 64, 96)
    assert photo("chelsea", size=(40, 52)).shape == (3, 40, 52)
    small = photo("mosaic", size=32)
    assert small.shape == (3, 32, 32) and 0.0 <= small.min() and small.max() <= 1.0
    assert cover_crop(photo("astronaut"), 16, 24).shape == (3, 16, 24)
    for bad in (0, (3, 0), "64", (1, 2, 3)):
        with pytest.raises(ValueError, match="size"):
            resize_image(photo("mosaic"), bad)


def test_unknown_name_lists_the_shipped_ones():
    with pytest.raises(ValueError, match="no shipped image named 'picasso'; .*chelsea"):
        photo("picasso")
    with pytest.raises(FileNotFoundError, match="picasso: neither a shipped image"):
        image_from("picasso")


def test_user_files_load_and_round_trip(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    x = load_image(tmp_path / "a.png")
    assert x.shape == (3, 12, 20)
    np.testing.assert_array_equal(np.round(x * 255).astype(np.uint8), rgb.transpose(2, 0, 1))
    np.testing.assert_array_equal(image_from(str(tmp_path / "a.png")), x)
    # an RGBA file whose pixels are all opaque, and a palette file, are colour images
    Image.fromarray(np.dstack([rgb, np.full((12, 20), 255, np.uint8)])).save(tmp_path / "o.png")
    np.testing.assert_array_equal(load_image(tmp_path / "o.png"), x)
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").shape == (3, 12, 20)


def test_not_rgb_missing_and_unreadable_files_are_one_line_errors(tmp_path):
    Image.new("L", (8, 8), 3).save(tmp_path / "gray.png")
    Image.new("RGBA", (8, 8), (1, 2, 3, 100)).save(tmp_path / "clear.png")
    Image.new("CMYK", (8, 8)).save(tmp_path / "cmyk.jpg")
    (tmp_path / "text.png").write_text("not an image")
    cases = [
        ("gray.png", ValueError, r"gray.png: a grayscale image \(Pillow mode L\); style "
                                 r"transfer needs a colour \(RGB\) image"),
        ("clear.png", ValueError, "clear.png: has transparent pixels"),
        ("cmyk.jpg", ValueError, r"cmyk.jpg: not an RGB image \(Pillow mode CMYK\)"),
        ("text.png", ValueError, "text.png: not an image file Pillow can read"),
        ("missing.png", FileNotFoundError, "missing.png: no such image file"),
    ]
    for name, kind, match in cases:
        with pytest.raises(kind, match=match) as info:
            load_image(tmp_path / name)
        assert "\n" not in str(info.value)
    with pytest.raises(FileNotFoundError, match="is a folder, not an image file"):
        load_image(tmp_path)


def test_module_lists_what_it_ships():
    assert photos.PHOTO_NAMES == photos.CONTENT_PHOTOS + photos.STYLE_IMAGES
