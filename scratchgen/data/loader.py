"""DataLoader: batches from a dataset, reproducible shuffling, exact resume from a checkpoint."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .dataset import ArrayDataset, Subset

__all__ = ["DataLoader"]

Transform = Callable[[np.ndarray], np.ndarray]


def _batch_getter(dataset: Any) -> Callable[[np.ndarray], tuple[np.ndarray, ...]] | None:
    """A function mapping an index array to whole-batch arrays, when the dataset allows one."""
    if isinstance(dataset, ArrayDataset):
        return dataset.get_batch
    if isinstance(dataset, Subset):
        inner = _batch_getter(dataset.dataset)
        if inner is not None:
            return lambda indices: inner(dataset.indices[indices])
        return None
    getter = getattr(dataset, "get_batch", None)
    return getter if callable(getter) else None


def _collate(items: list[Any]) -> Any:
    """Stack a list of items field by field: tuples of arrays become a tuple of stacked arrays."""
    first = items[0]
    if isinstance(first, (tuple, list)):
        return tuple(np.stack([np.asarray(item[k]) for item in items]) for k in range(len(first)))
    return np.stack([np.asarray(item) for item in items])


class DataLoader:
    """Iterate over a dataset in batches of stacked NumPy arrays (or Tensors with ``device=``).

    A dataset whose items are tuples ``(image, label)`` gives batches ``(images, labels)`` with a
    new leading batch axis. Datasets backed by arrays (``ArrayDataset``, ``MNIST``, ``Digits``,
    and ``Subset`` of those) are gathered with one fancy-indexing operation per array.

    Shuffling draws one permutation per epoch (per call to ``iter``) from the loader's own
    ``numpy.random.Generator``, seeded with ``seed``. ``state_dict()`` records that generator at
    the start of the current epoch, the epoch count and how many batches of the epoch were
    already handed out; after ``load_state_dict`` the next ``iter`` replays that epoch's
    permutation and skips the batches already seen, so a resumed run sees exactly the batches
    the uninterrupted run would have seen.

    Args:
        dataset: any object with ``__len__`` and ``__getitem__``.
        batch_size: samples per batch.
        shuffle: draw a new random order each epoch (otherwise 0, 1, 2, ...).
        drop_last: drop the last batch when it is smaller than ``batch_size``.
        seed: seed of the shuffling generator (``None``: fresh OS entropy, not reproducible).
        transform: applied to the first array of each batch (the inputs); or a sequence with one
            callable (or ``None``) per array of the batch.
        device: ``None`` yields NumPy arrays; ``"cpu"``, ``"cuda"``, ... yields
            ``scratchgen.autograd.tensor(array, device=device)`` for each array.
        float_dtype: floating arrays are cast to this dtype (``None`` keeps theirs). Integer
            arrays (labels) always keep their integer dtype.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
        transform: Transform | Sequence[Transform | None] | None = None,
        device: str | None = None,
        float_dtype: str | np.dtype | None = "float32",
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or (
            batch_size < 1
        ):
            raise ValueError(
                f"DataLoader: batch_size must be a positive integer, got {batch_size!r}"
            )
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = seed
        self.transform = transform
        self.device = device
        self.float_dtype = None if float_dtype is None else np.dtype(float_dtype)
        self.generator = np.random.default_rng(seed)
        self.epoch = 0  # number of epochs started
        self._epoch_rng_state: dict[str, Any] | None = None  # generator state before this epoch
        self._batches_done = 0  # batches handed out in the epoch in progress
        self._in_epoch = False
        self._resume_skip = 0
        self._fast = _batch_getter(dataset)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self) -> np.ndarray:
        n = len(self.dataset)
        return self.generator.permutation(n) if self.shuffle else np.arange(n)

    def __iter__(self) -> Iterator[Any]:
        skip = self._resume_skip
        self._resume_skip = 0
        self._epoch_rng_state = self.generator.bit_generator.state
        order = self._order()
        self.epoch += 1
        self._batches_done = skip
        self._in_epoch = True
        return self._iterate(order, skip)

    def _iterate(self, order: np.ndarray, skip: int) -> Iterator[Any]:
        n_batches = len(self)
        for b in range(skip, n_batches):
            indices = order[b * self.batch_size:(b + 1) * self.batch_size]
            batch = self._fetch(indices)
            self._batches_done = b + 1
            if b + 1 == n_batches:
                self._in_epoch = False
            yield batch
        self._in_epoch = False

    def _fetch(self, indices: np.ndarray) -> Any:
        if self._fast is not None:
            batch: Any = tuple(self._fast(indices))
        else:
            batch = _collate([self.dataset[int(i)] for i in indices])
        single = not isinstance(batch, tuple)
        arrays = [batch] if single else list(batch)
        arrays = [self._cast(a) for a in arrays]
        arrays = self._apply_transform(arrays)
        if self.device is not None:
            from scratchgen.autograd import tensor

            arrays = [tensor(a, device=self.device) for a in arrays]
        return arrays[0] if single else tuple(arrays)

    def _cast(self, a: np.ndarray) -> np.ndarray:
        a = np.asarray(a)
        if self.float_dtype is not None and np.issubdtype(a.dtype, np.floating):
            return a.astype(self.float_dtype, copy=False)
        return a

    def _apply_transform(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        t = self.transform
        if t is None:
            return arrays
        if callable(t):
            return [self._cast(t(arrays[0]))] + arrays[1:]
        transforms = list(t)
        if len(transforms) != len(arrays):
            raise ValueError(
                f"DataLoader: {len(transforms)} transforms given for batches of "
                f"{len(arrays)} array(s)"
            )
        return [a if f is None else self._cast(f(a)) for f, a in zip(transforms, arrays)]

    def _transforms_with_state(self) -> list[tuple[str, Any]]:
        t = self.transform
        if t is None:
            return []
        members = [t] if callable(t) else list(t)
        return [(str(i), f) for i, f in enumerate(members) if hasattr(f, "state_dict")]

    def state_dict(self) -> dict[str, Any]:
        """Where the loader stands: enough for ``load_state_dict`` to continue identically.

        Keys: ``"rng"`` (the shuffling generator's ``bit_generator.state`` at the start of the
        epoch in progress, or its current state between epochs), ``"epoch"`` (epochs completed),
        ``"batch"`` (batches of the epoch in progress already handed out), and ``"transform"``
        (states of random transforms, if any).
        """
        if self._in_epoch and self._epoch_rng_state is not None:
            state = {
                "rng": self._epoch_rng_state, "epoch": self.epoch - 1, "batch": self._batches_done
            }
        else:
            state = {"rng": self.generator.bit_generator.state, "epoch": self.epoch, "batch": 0}
        transforms = {key: f.state_dict() for key, f in self._transforms_with_state()}
        if transforms:
            state["transform"] = transforms
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict()``; the next ``iter`` continues from that point."""
        self.generator.bit_generator.state = state["rng"]
        self.epoch = int(state["epoch"])
        self._resume_skip = int(state.get("batch", 0))
        self._in_epoch = False
        self._epoch_rng_state = None
        members = dict(self._transforms_with_state())
        for key, sub in state.get("transform", {}).items():
            members[key].load_state_dict(sub)

    def __repr__(self) -> str:
        return (
            f"DataLoader({type(self.dataset).__name__}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last}, {len(self)} batches)"
        )
