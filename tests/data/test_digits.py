"""The embedded UCI digits."""
from __future__ import annotations

import numpy as np
import pytest

from scratchgen.data import DIGITS_TEST_SIZE, DataLoader, Digits, load_digits_arrays


def test_raw_arrays():
    images, labels = load_digits_arrays()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert labels.shape == (1797,) and images.min() == 0 and images.max() == 16
    assert np.array_equal(np.bincount(labels), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    assert labels[:10].tolist() == list(range(10))
    # first image of the source file, a zero
    assert images[0, 1].tolist() == [0, 0, 13, 15, 10, 15, 5, 0]
    images[0] = 99
    assert load_digits_arrays()[0][0, 0, 0] == 0  # callers get copies


def test_splits_and_values():
    train, test, every = Digits(), Digits(train=False), Digits(train=None)
    assert DIGITS_TEST_SIZE == 297
    assert (len(train), len(test), len(every)) == (1500, 297, 1797)
    image, label = train[0]
    assert image.shape == (1, 8, 8) and image.dtype == np.float32
    assert np.asarray(label).dtype == np.int64 and label == 0
    assert train.images.min() == 0.0 and train.images.max() == 1.0
    values = np.unique(every.images * 16)
    np.testing.assert_allclose(values, np.arange(17))
    np.testing.assert_array_equal(np.concatenate([train.labels, test.labels]), every.labels)
    assert np.bincount(test.labels).min() >= 27


@pytest.mark.parametrize("size", [16, 28])
def test_upsampled(size):
    ds = Digits(train=False, size=size)
    assert ds.images.shape == (297, 1, size, size) and ds.images.dtype == np.float32
    assert ds.images.min() >= 0.0 and ds.images.max() <= 1.0
    small = Digits(train=False).images
    # bilinear resampling keeps the mean brightness close
    np.testing.assert_allclose(
        ds.images.mean(axis=(1, 2, 3)), small.mean(axis=(1, 2, 3)), atol=0.03
    )


def test_bad_size_and_loader():
    with pytest.raises(ValueError, match="size"):
        Digits(size=0)
    images, labels = next(iter(DataLoader(Digits(), batch_size=32, shuffle=True, seed=0)))
    assert images.shape == (32, 1, 8, 8) and labels.dtype == np.int64
