"""DataLoader: coverage, drop_last, seeding, exact resume, fast path, dtypes, devices."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchgen.data import (
    ArrayDataset,
    Compose,
    DataLoader,
    Dataset,
    PadAndRandomCrop,
    RandomHorizontalFlip,
    Subset,
    ToFloat,
)


class ItemDataset(Dataset):
    """Item-by-item dataset (no get_batch): exercises the stacking path."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return np.full((1, 2, 2), i, dtype=np.float64), i


def _ids(batches) -> list[list[int]]:
    return [b[1].tolist() for b in batches]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 40), bs=st.integers(1, 12), shuffle=st.booleans(), drop=st.booleans(),
       fast=st.booleans())
def test_each_epoch_covers_dataset_once(n, bs, shuffle, drop, fast):
    ds = ArrayDataset(np.zeros((n, 3), np.float32), np.arange(n)) if fast else ItemDataset(n)
    loader = DataLoader(ds, batch_size=bs, shuffle=shuffle, drop_last=drop, seed=1)
    for _ in range(2):
        batches = list(loader)
        assert len(batches) == len(loader)
        sizes = [len(b[1]) for b in batches]
        seen = np.concatenate([b[1] for b in batches]) if batches else np.array([], int)
        if drop:
            assert len(loader) == n // bs and all(s == bs for s in sizes)
            assert len(set(seen.tolist())) == len(seen) == (n // bs) * bs
        else:
            assert len(loader) == -(-n // bs)
            assert sorted(seen.tolist()) == list(range(n))
            assert all(s == bs for s in sizes[:-1])


def test_no_shuffle_is_in_order_and_shuffle_changes_per_epoch():
    ds = ArrayDataset(np.arange(10))
    assert np.concatenate([b[0] for b in DataLoader(ds, 4)]).tolist() == list(range(10))
    loader = DataLoader(ds, 10, shuffle=True, seed=0)
    first, second = next(iter(loader))[0], next(iter(loader))[0]
    assert not np.array_equal(first, second)
    assert loader.epoch == 2


def test_same_seed_same_batches_different_seed_different():
    ds = ArrayDataset(np.arange(50))
    runs = [_epochs(DataLoader(ds, 7, shuffle=True, seed=s), 3) for s in (5, 5, 6)]
    assert runs[0] == runs[1] and runs[0] != runs[2]


def _epochs(loader, n_epochs):
    return [[b[0].tolist() for b in loader] for _ in range(n_epochs)]


@pytest.mark.parametrize("stop_after", [0, 1, 3, 4])  # 4 = exactly at the end of an epoch
def test_state_dict_resume_mid_epoch(stop_after):
    ds = ArrayDataset(np.arange(30))
    reference = DataLoader(ds, 8, shuffle=True, seed=11)
    expected = [b[0].tolist() for _ in range(3) for b in reference]  # 3 epochs of 4 batches

    loader = DataLoader(ds, 8, shuffle=True, seed=11)
    seen = [b[0].tolist() for b in loader]  # one whole epoch
    it = iter(loader)
    for _ in range(stop_after):
        seen.append(next(it)[0].tolist())
    state = loader.state_dict()

    resumed = DataLoader(ds, 8, shuffle=True, seed=999)  # the seed is overridden by the state
    resumed.load_state_dict(state)
    rest = [b[0].tolist() for b in resumed]
    rest += [b[0].tolist() for b in resumed]
    total = seen + rest
    assert total[: len(expected)] == expected


def test_state_dict_between_epochs_and_epoch_count():
    ds = ArrayDataset(np.arange(9))
    loader = DataLoader(ds, 4, shuffle=True, seed=2)
    _epochs(loader, 2)
    state = loader.state_dict()
    assert state["epoch"] == 2 and state["batch"] == 0
    future = _epochs(loader, 2)
    clone = DataLoader(ds, 4, shuffle=True)
    clone.load_state_dict(state)
    assert _epochs(clone, 2) == future and clone.epoch == 4


def test_resume_restores_random_transform_state():
    x = np.random.default_rng(0).integers(0, 256, (20, 1, 6, 6)).astype(np.uint8)

    def make():
        augment = Compose([ToFloat(), RandomHorizontalFlip(seed=1), PadAndRandomCrop(2, seed=2)])
        return DataLoader(ArrayDataset(x, np.arange(20)), 5, shuffle=True, seed=3,
                          transform=augment)

    ref_loader = make()
    reference = [b[0] for _ in range(2) for b in ref_loader]
    loader = make()
    it = iter(loader)
    got = [next(it)[0] for _ in range(2)]
    state = loader.state_dict()
    assert "transform" in state
    resumed = make()
    resumed.load_state_dict(state)
    got += [b[0] for b in resumed] + [b[0] for b in resumed]
    for a, b in zip(got, reference):
        np.testing.assert_array_equal(a, b)


def test_dtypes_fast_and_slow_paths():
    ds = ArrayDataset(np.zeros((6, 2), np.float64), np.arange(6, dtype=np.int32),
                      np.zeros((6, 1, 2, 2), np.uint8))
    xb, yb, zb = next(iter(DataLoader(ds, 4)))
    assert xb.dtype == np.float32 and yb.dtype == np.int32 and zb.dtype == np.uint8
    images, labels = next(iter(DataLoader(ItemDataset(5), 3)))
    assert images.shape == (3, 1, 2, 2) and images.dtype == np.float32
    assert labels.dtype.kind == "i" and labels.tolist() == [0, 1, 2]
    kept = next(iter(DataLoader(ds, 2, float_dtype=None)))[0]
    assert kept.dtype == np.float64


def test_fast_path_used_for_array_datasets_and_their_subsets(monkeypatch):
    ds = ArrayDataset(np.arange(10) * 2, np.arange(10))
    sub = Subset(ds, [9, 8, 7, 1])

    def no_items(self, i):
        raise AssertionError("item-by-item path used")

    monkeypatch.setattr(ArrayDataset, "__getitem__", no_items)
    batches = list(DataLoader(sub, 3))
    assert batches[0][0].tolist() == [18, 16, 14] and batches[1][1].tolist() == [1]


def test_single_array_items_and_transform_per_array():
    class Plain(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return np.array([i, i], np.float32)

    batch = next(iter(DataLoader(Plain(), 4)))
    assert isinstance(batch, np.ndarray) and batch.shape == (4, 2)
    ds = ArrayDataset(np.ones((4, 2), np.float32), np.arange(4))
    xb, yb = next(iter(DataLoader(ds, 4, transform=lambda a: a * 3)))
    assert xb.tolist() == [[3.0, 3.0]] * 4 and yb.tolist() == [0, 1, 2, 3]
    xb, yb = next(iter(DataLoader(ds, 4, transform=[None, lambda a: a + 1])))
    assert xb.tolist() == [[1.0, 1.0]] * 4 and yb.tolist() == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="2 array"):
        next(iter(DataLoader(ds, 4, transform=[None])))


def test_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(ArrayDataset(np.arange(3)), 0)


def test_device_converts_each_array_with_autograd_tensor(monkeypatch):
    calls = []
    fake = types.ModuleType("scratchgen.autograd")
    fake.tensor = lambda a, device=None: calls.append((a.dtype, device)) or ("T", a, device)
    monkeypatch.setitem(sys.modules, "scratchgen.autograd", fake)
    ds = ArrayDataset(np.zeros((4, 3), np.float32), np.arange(4))
    xb, yb = next(iter(DataLoader(ds, 2, device="cpu")))
    assert xb[0] == "T" and xb[2] == "cpu" and yb[1].dtype == np.int64
    assert calls == [(np.float32, "cpu"), (np.int64, "cpu")]


def test_device_with_real_engine():
    autograd = pytest.importorskip("scratchgen.autograd")
    if not hasattr(autograd, "tensor"):
        pytest.skip("scratchgen.autograd has no tensor() yet")
    ds = ArrayDataset(np.arange(8, dtype=np.float32).reshape(4, 2), np.arange(4))
    xb, yb = next(iter(DataLoader(ds, 4, device="cpu")))
    np.testing.assert_array_equal(np.asarray(xb.numpy()), ds.arrays[0])
    np.testing.assert_array_equal(np.asarray(yb.numpy()), np.arange(4))
