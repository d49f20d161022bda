"""Transforms on single images and batches; random ones are seeded and restorable."""
from __future__ import annotations

import numpy as np
import pytest

from scratchgen.data import (
    Compose,
    Normalize,
    PadAndRandomCrop,
    RandomHorizontalFlip,
    ScaleToMinusOneOne,
    ToFloat,
)


def test_to_float_and_scale():
    x = np.array([[[0, 51, 255]]], np.uint8)
    f = ToFloat()(x)
    assert f.dtype == np.float32 and f.min() == 0.0 and f.max() == 1.0
    np.testing.assert_allclose(f.ravel(), [0, 0.2, 1.0], rtol=1e-6)
    s = Compose([ToFloat(), ScaleToMinusOneOne()])(x)
    assert s.dtype == np.float32
    np.testing.assert_allclose(s.ravel(), [-1.0, -0.6, 1.0], rtol=1e-6)
    np.testing.assert_allclose(ToFloat(16)(np.array([16, 8])), [1.0, 0.5])
    with pytest.raises(TypeError, match="ToFloat"):
        ScaleToMinusOneOne()(x)


def test_normalize_per_channel_and_inverse():
    rng = np.random.default_rng(0)
    x = rng.random((4, 3, 5, 5)).astype(np.float32)
    norm = Normalize([0.1, 0.2, 0.3], [0.5, 1.0, 2.0])
    y = norm(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y[:, 2], (x[:, 2] - 0.3) / 2.0, rtol=1e-6)
    np.testing.assert_allclose(norm.inverse(y), x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(Normalize(0.5, 0.5)(x[0]), (x[0] - 0.5) / 0.5, rtol=1e-6)
    with pytest.raises(ValueError, match="channel"):
        norm(np.zeros((2, 5, 5), np.float32))
    with pytest.raises(ValueError, match="positive"):
        Normalize(0.0, 0.0)


def test_flip_probability_and_per_image_decisions():
    x = np.arange(2 * 1 * 2 * 3, dtype=np.float32).reshape(2, 1, 2, 3)
    np.testing.assert_array_equal(RandomHorizontalFlip(p=1.0)(x), x[..., ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.0)(x), x)
    batch = np.tile(x[:1], (400, 1, 1, 1))
    out = RandomHorizontalFlip(p=0.5, seed=0)(batch)
    flipped = np.all(out == x[0, ..., ::-1], axis=(1, 2, 3))
    unchanged = np.all(out == x[0], axis=(1, 2, 3))
    assert np.all(flipped ^ unchanged) and 150 < flipped.sum() < 250
    single = RandomHorizontalFlip(p=1.0)(x[0])
    assert single.shape == (1, 2, 3)
    np.testing.assert_array_equal(single, x[0, ..., ::-1])
    np.testing.assert_array_equal(x.ravel(), np.arange(6 * 2))  # input untouched


@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_pad_and_crop_windows_come_from_the_padded_image(mode):
    rng = np.random.default_rng(1)
    x = rng.random((16, 2, 5, 6)).astype(np.float32)
    crop = PadAndRandomCrop(2, seed=3, mode=mode)
    out = crop(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)), mode=mode)
    offsets = set()
    for i in range(16):
        matches = [(t, l) for t in range(5) for l in range(5)
                   if np.array_equal(padded[i, :, t:t + 5, l:l + 6], out[i])]
        assert matches
        offsets.add(matches[0])
    assert len(offsets) > 3  # per-image offsets


def test_crop_size_and_single_images():
    x = np.ones((1, 8, 8), np.float32)
    assert PadAndRandomCrop(0, size=4, seed=0)(x).shape == (1, 4, 4)
    assert PadAndRandomCrop(1, size=(3, 5), seed=0)(x[0]).shape == (3, 5)
    zero_pad = PadAndRandomCrop(4, seed=0)(np.ones((50, 1, 4, 4), np.float32))
    assert zero_pad.min() == 0.0  # some windows reach into the zero padding
    with pytest.raises(ValueError, match="larger"):
        PadAndRandomCrop(0, size=9)(x)
    with pytest.raises(ValueError, match="mode"):
        PadAndRandomCrop(1, mode="wrap")


def test_random_transforms_are_seeded_and_restorable():
    x = np.random.default_rng(0).random((32, 1, 6, 6)).astype(np.float32)

    def make():
        return Compose([RandomHorizontalFlip(seed=4), PadAndRandomCrop(2, seed=5)])

    a, b = make(), make()
    np.testing.assert_array_equal(a(x), b(x))
    state = a.state_dict()
    assert set(state) == {"0", "1"}
    first = a(x)
    c = make()
    c.load_state_dict(state)
    np.testing.assert_array_equal(c(x), first)
    assert not np.array_equal(a(x), first)
