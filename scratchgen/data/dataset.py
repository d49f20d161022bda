"""Map-style datasets: anything with ``__len__`` and ``__getitem__(i)``.

A dataset that can also answer ``get_batch(indices)`` with a tuple of whole-batch arrays
(``ArrayDataset`` and everything built on it, and a ``Subset`` of one) lets ``DataLoader``
gather a batch with one fancy-indexing operation per array instead of stacking items one at
a time.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["Dataset", "ArrayDataset", "Subset", "random_split"]


class Dataset:
    """Base class of map-style datasets: ``len(ds)`` items, ``ds[i]`` for ``0 <= i < len(ds)``."""

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")


class ArrayDataset(Dataset):
    """Samples are rows of NumPy arrays that share their first dimension (like TensorDataset).

    ``ArrayDataset(images, labels)[i] == (images[i], labels[i])``.

    Args:
        *arrays: one or more arrays; ``arrays[k].shape[0]`` is the number of samples for all k.
    """

    def __init__(self, *arrays: Any) -> None:
        if not arrays:
            raise ValueError("ArrayDataset needs at least one array")
        converted = tuple(np.asarray(a) for a in arrays)
        for k, a in enumerate(converted):
            if a.ndim == 0:
                raise ValueError(
                    f"ArrayDataset: array {k} is a scalar (shape ()); every array needs a first "
                    f"dimension that counts the samples"
                )
        lengths = {a.shape[0] for a in converted}
        if len(lengths) != 1:
            shapes = ", ".join(f"array {k}: {a.shape}" for k, a in enumerate(converted))
            raise ValueError(
                f"ArrayDataset: all arrays must have the same first dimension (the number of "
                f"samples), got {shapes}"
            )
        self.arrays: tuple[np.ndarray, ...] = converted

    def __len__(self) -> int:
        return int(self.arrays[0].shape[0])

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        return tuple(a[index] for a in self.arrays)

    def get_batch(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        """The samples at ``indices`` (an integer array), one array per field."""
        return tuple(a[indices] for a in self.arrays)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{a.shape} {a.dtype}" for a in self.arrays)
        return f"{type(self).__name__}({len(self)} samples: {shapes})"


class Subset(Dataset):
    """The items of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset: Any, indices: Sequence[int] | np.ndarray) -> None:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(dataset)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            bad = idx[(idx < -n) | (idx >= n)][0]
            raise IndexError(f"Subset: index {bad} is out of range for a dataset of {n} items")
        self.dataset = dataset
        self.indices = np.where(idx < 0, idx + n, idx)

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __getitem__(self, index: int) -> Any:
        return self.dataset[int(self.indices[index])]

    def __repr__(self) -> str:
        return f"Subset({len(self)} of {self.dataset!r})"


def random_split(
    dataset: Any, lengths: Sequence[int | float], seed: int | None = None
) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random subsets of the given lengths.

    ``lengths`` are either integers summing to ``len(dataset)`` or fractions summing to 1
    (then each part gets ``floor(frac * n)`` items and the remainder is dealt out one item at
    a time from the first part on, as PyTorch does). The permutation comes from
    ``numpy.random.default_rng(seed)``, so a given seed always gives the same split.
    """
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(isinstance(x, float) for x in lengths) and math.isclose(sum(lengths), 1.0):
        if any(x < 0 for x in lengths):
            raise ValueError(f"random_split: fractions must be non-negative, got {lengths}")
        counts = [int(math.floor(frac * n)) for frac in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
    else:
        if any(int(x) != x or x < 0 for x in lengths):
            raise ValueError(
                f"random_split: lengths must be non-negative integers summing to {n} or "
                f"fractions summing to 1, got {lengths}"
            )
        counts = [int(x) for x in lengths]
    if sum(counts) != n:
        raise ValueError(
            f"random_split: lengths {lengths} sum to {sum(counts)}, but the dataset has {n} items"
        )
    perm = np.random.default_rng(seed).permutation(n)
    parts: list[Subset] = []
    start = 0
    for count in counts:
        parts.append(Subset(dataset, perm[start:start + count]))
        start += count
    return parts
