"""ArrayDataset, Subset, random_split."""
from __future__ import annotations

import numpy as np
import pytest

from scratchgen.data import ArrayDataset, Dataset, Subset, random_split


def test_array_dataset_items_and_len():
    x = np.arange(20).reshape(10, 2)
    y = np.arange(10) * 10
    ds = ArrayDataset(x, y)
    assert len(ds) == 10
    xi, yi = ds[3]
    np.testing.assert_array_equal(xi, [6, 7])
    assert yi == 30
    bx, by = ds.get_batch(np.array([1, 4]))
    np.testing.assert_array_equal(by, [10, 40])


def test_array_dataset_rejects_mismatched_first_dims():
    with pytest.raises(ValueError) as info:
        ArrayDataset(np.zeros((5, 2)), np.zeros(4))
    message = str(info.value)
    assert "same first dimension" in message and "(5, 2)" in message and "(4,)" in message
    with pytest.raises(ValueError, match="at least one"):
        ArrayDataset()
    with pytest.raises(ValueError, match="scalar"):
        ArrayDataset(np.float32(3))


def test_base_dataset_is_abstract():
    with pytest.raises(NotImplementedError):
        len(Dataset())


def test_subset_order_and_negative_indices():
    ds = ArrayDataset(np.arange(10))
    sub = Subset(ds, [7, -1, 2])
    assert len(sub) == 3
    assert [int(sub[i][0]) for i in range(3)] == [7, 9, 2]
    with pytest.raises(IndexError, match="out of range"):
        Subset(ds, [10])


@pytest.mark.parametrize("lengths", [[6, 3, 1], [0.6, 0.3, 0.1], [0.5, 0.5]])
def test_random_split_partitions(lengths):
    ds = ArrayDataset(np.arange(10))
    parts = random_split(ds, lengths, seed=3)
    items = np.concatenate([[int(p[i][0]) for i in range(len(p))] for p in parts])
    assert sorted(items.tolist()) == list(range(10))
    if isinstance(lengths[0], int):
        assert [len(p) for p in parts] == lengths
    again = random_split(ds, lengths, seed=3)
    assert all(np.array_equal(a.indices, b.indices) for a, b in zip(parts, again))


def test_random_split_fraction_remainder_and_errors():
    ds = ArrayDataset(np.arange(11))
    assert [len(p) for p in random_split(ds, [0.5, 0.5], seed=0)] == [6, 5]
    with pytest.raises(ValueError, match="sum to 9"):
        random_split(ds, [5, 4])
