"""Unpaired image sets: a folder of pictures per domain, and batches that draw the two apart.

``load_image_folder(path)`` reads every PNG or JPEG of a folder (sorted by name; other files
are skipped) with Pillow into float32 (N, C, H, W) in [0, 1]: grey-scale pictures (Pillow mode
``"L"``) give C = 1, colour ones (``"RGB"``) C = 3. Every picture of a folder must have one size
and one mode, and ``load_unpaired_folders(dir_a, dir_b)`` also wants the second folder's
pictures to match the first's. Anything else is a one-line ``ValueError`` that names the file,
its size or mode, and the expected one; an empty or missing folder is an error naming it.
(Convert or resize pictures beforehand, e.g. ``Image.open(f).convert("RGB").resize((256,
256))``: resampling silently here would hide a data problem.)

``UnpairedLoader(a, b, batch_size, seed)``: batches (a_batch, b_batch) whose two halves are
drawn independently, as in CycleGAN's ``UnalignedDataset``: each epoch shuffles A and B with
their own permutations, so no pairing is ever fixed. An epoch is max(|A|, |B|) // batch_size
batches (the smaller domain wraps around its permutation). Its ``state_dict`` lets a resumed
run see exactly the batches the uninterrupted one would have seen.
"""
from __future__ import annotations

import os
import pathlib
from typing import Any, Iterator

import numpy as np

__all__ = ["load_image_folder", "load_unpaired_folders", "image_files", "UnpairedLoader",
           "IMAGE_SUFFIXES", "MODES"]

#: The file endings read (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: Pillow mode -> channels.
MODES = {"L": 1, "RGB": 3}


def image_files(path: str | os.PathLike) -> list[pathlib.Path]:
    """The PNG / JPEG files of a folder, sorted by name; an error names a missing folder or
    one without such files."""
    folder = pathlib.Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{folder}: the folder holds no PNG or JPEG image")
    return files


def _read(file: pathlib.Path) -> tuple[np.ndarray, str]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as img:
            img.load()
            mode = img.mode
            if mode not in MODES:
                raise ValueError(f"{file}: mode {mode!r}; only grey-scale 'L' and colour 'RGB' "
                                 "pictures are read (convert it with Pillow first)")
            array = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{file}: not a readable image ({exc.__class__.__name__})") from None
    return array, mode


def _shape_text(channels: int, h: int, w: int) -> str:
    return f"{w}x{h} {'grey' if channels == 1 else 'RGB'}"


def load_image_folder(path: str | os.PathLike,
                      expected: tuple[int, int, int] | None = None) -> np.ndarray:
    """Every PNG / JPEG of ``path`` as float32 (N, C, H, W) in [0, 1] (pixel / 255).

    All pictures must share the first one's size and mode, or ``expected`` = (C, H, W) when
    given; the error names the first one that does not, e.g.
    ``b/x.png: 64x48 RGB, expected 64x64 RGB like a/001.png``.
    """
    files = image_files(path)
    first_file = None
    out: list[np.ndarray] = []
    for file in files:
        array, mode = _read(file)
        chw = (MODES[mode],) + array.shape[:2]
        if expected is None:
            expected, first_file = chw, file
        if chw != expected:
            like = f" like {first_file}" if first_file is not None else ""
            raise ValueError(f"{file}: {_shape_text(*chw)}, expected {_shape_text(*expected)}"
                             f"{like}")
        out.append(array.reshape(array.shape[0], array.shape[1], -1).transpose(2, 0, 1))
    return np.stack(out).astype(np.float32) / 255.0


def load_unpaired_folders(dir_a: str | os.PathLike, dir_b: str | os.PathLike
                          ) -> tuple[np.ndarray, np.ndarray]:
    """(A, B): both folders' pictures, B required to have A's size and mode."""
    a = load_image_folder(dir_a)
    try:
        b = load_image_folder(dir_b, expected=a.shape[1:])
    except ValueError as exc:
        message = str(exc)
        if "expected" in message and " like " not in message:
            message += f" like the pictures of {dir_a}"
        raise ValueError(message) from None
    return a, b


class UnpairedLoader:
    """Batches (a, b) of ``batch_size`` images from each domain, drawn independently.

    Each epoch draws a permutation of A and one of B from the loader's own generator (seeded
    with ``seed``); batch t takes positions t*n .. t*n + n - 1 of each, modulo the domain's size.
    ``device`` gives Tensors on that device (``None``: NumPy arrays).
    """

    def __init__(self, a: np.ndarray, b: np.ndarray, batch_size: int = 1, seed: int = 0,
                 device: str | None = None) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        for name, x in (("A", a), ("B", b)):
            if len(x) < batch_size:
                raise ValueError(f"batch_size {batch_size} is larger than the {len(x)} images "
                                 f"of domain {name}")
        self.a, self.b = np.asarray(a, np.float32), np.asarray(b, np.float32)
        self.batch_size, self.seed, self.device = batch_size, seed, device
        self.generator = np.random.default_rng(seed)
        self._epoch_rng: dict[str, Any] | None = None
        self._done = 0          # batches handed out in the epoch in progress
        self._in_epoch = False
        self._skip = 0

    def __len__(self) -> int:
        return max(len(self.a), len(self.b)) // self.batch_size

    def __iter__(self) -> Iterator[Any]:
        skip, self._skip = self._skip, 0
        self._epoch_rng = self.generator.bit_generator.state
        order_a = self.generator.permutation(len(self.a))
        order_b = self.generator.permutation(len(self.b))
        self._done, self._in_epoch = skip, True
        return self._iterate(order_a, order_b, skip)

    def _iterate(self, order_a: np.ndarray, order_b: np.ndarray, skip: int) -> Iterator[Any]:
        n = self.batch_size
        for t in range(skip, len(self)):
            pos = np.arange(t * n, (t + 1) * n)
            batch = (self.a[order_a[pos % len(order_a)]], self.b[order_b[pos % len(order_b)]])
            self._done = t + 1
            self._in_epoch = self._done < len(self)
            if self.device is not None:
                from scratchgen.autograd import tensor

                batch = tuple(tensor(x, device=self.device) for x in batch)
            yield batch
        self._in_epoch = False

    def state_dict(self) -> dict[str, Any]:
        """The generator's state at the start of the epoch in progress and the batches of it
        handed out (between epochs: the generator's state now and 0)."""
        if self._in_epoch and self._epoch_rng is not None:
            return {"rng": self._epoch_rng, "batch": self._done}
        return {"rng": self.generator.bit_generator.state, "batch": 0}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.bit_generator.state = state["rng"]
        self._skip = int(state["batch"])
        self._in_epoch = False
