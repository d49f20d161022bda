"""Transforms: callables on NumPy images, applied before a batch goes to a device.

Every transform takes either one image, ``(C, H, W)`` or ``(H, W)``, or a batch ``(N, C, H, W)``
and returns the same layout. Random transforms draw one decision per image of a batch from
their own ``numpy.random.Generator``, and save and restore it with ``state_dict()`` /
``load_state_dict()`` so that a resumed run applies exactly the same augmentations.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "Compose",
    "ToFloat",
    "ScaleToMinusOneOne",
    "Normalize",
    "RandomTransform",
    "RandomHorizontalFlip",
    "PadAndRandomCrop",
]


def _check_image(x: np.ndarray, who: str) -> None:
    if x.ndim not in (2, 3, 4):
        raise ValueError(
            f"{who} expects an image (H, W) or (C, H, W) or a batch (N, C, H, W), "
            f"got an array of shape {x.shape}"
        )


class Compose:
    """Apply transforms one after the other: ``Compose([f, g])(x) == g(f(x))``."""

    def __init__(self, transforms: Sequence[Callable[[np.ndarray], np.ndarray]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for t in self.transforms:
            x = t(x)
        return x

    def state_dict(self) -> dict[str, Any]:
        """The states of the members that have one, keyed by position."""
        return {
            str(i): t.state_dict()
            for i, t in enumerate(self.transforms)
            if hasattr(t, "state_dict")
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, sub in state.items():
            self.transforms[int(key)].load_state_dict(sub)

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


class ToFloat:
    """Integer pixels to float32 in [0, 1]: ``x / max_value`` (255 for uint8 images)."""

    def __init__(self, max_value: float = 255.0) -> None:
        self.max_value = float(max_value)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        return x.astype(np.float32) * np.float32(1.0 / self.max_value)

    def __repr__(self) -> str:
        return f"ToFloat(max_value={self.max_value:g})"


class ScaleToMinusOneOne:
    """Map [0, 1] to [-1, 1]: ``2 x - 1`` (the range of a tanh generator's output)."""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(
                f"ScaleToMinusOneOne expects floats in [0, 1], got dtype {x.dtype}; "
                f"put ToFloat() before it"
            )
        return x * x.dtype.type(2) - x.dtype.type(1)

    def __repr__(self) -> str:
        return "ScaleToMinusOneOne()"


class Normalize:
    """Per-channel standardisation: ``(x - mean[c]) / std[c]``.

    ``mean`` and ``std`` are scalars or one value per channel (axis -3 of an image or batch).
    """

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        if self.mean.ndim > 1 or self.std.ndim > 1:
            raise ValueError("Normalize: mean and std are scalars or one value per channel")
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize: std must be positive, got {self.std.tolist()}")

    def _per_channel(self, v: np.ndarray, x: np.ndarray, dtype: np.dtype) -> np.ndarray:
        if v.ndim == 0:
            return v.astype(dtype)
        channels = x.shape[-3] if x.ndim >= 3 else 1
        if v.shape[0] not in (1, channels):
            raise ValueError(
                f"Normalize: {v.shape[0]} per-channel values for an input with {channels} "
                f"channel(s) (shape {x.shape})"
            )
        return v.astype(dtype).reshape(-1, 1, 1) if x.ndim >= 3 else v.astype(dtype).reshape(-1, 1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        _check_image(x, "Normalize")
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float32)
        return (x.astype(dtype, copy=False) - self._per_channel(self.mean, x, dtype)) / (
            self._per_channel(self.std, x, dtype)
        )

    def inverse(self, x: np.ndarray) -> np.ndarray:
        """Undo the normalisation: ``x * std[c] + mean[c]`` (for showing samples)."""
        x = np.asarray(x)
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float32)
        return x.astype(dtype, copy=False) * self._per_channel(self.std, x, dtype) + (
            self._per_channel(self.mean, x, dtype)
        )

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class RandomTransform:
    """Base of random transforms: owns ``self.rng``, a ``numpy.random.Generator`` from ``seed``."""

    def __init__(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def state_dict(self) -> dict[str, Any]:
        """``{"rng": bit_generator.state}``: enough to replay the same random decisions."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


class RandomHorizontalFlip(RandomTransform):
    """Mirror left-right with probability ``p``, independently for each image of a batch."""

    def __init__(self, p: float = 0.5, seed: int | None = None) -> None:
        super().__init__(seed)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        _check_image(x, "RandomHorizontalFlip")
        if x.ndim < 4:
            return x[..., ::-1].copy() if self.rng.random() < self.p else x
        flip = self.rng.random(x.shape[0]) < self.p
        out = x.copy()
        out[flip] = x[flip][..., ::-1]
        return out

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class PadAndRandomCrop(RandomTransform):
    """Pad the borders, then cut a ``size`` window at a uniformly random place.

    With the default ``size`` (the input's own size) this is the usual "random translation by up
    to ``padding`` pixels" augmentation. Each image of a batch gets its own offset.

    Args:
        padding: pixels added on each side of H and W.
        size: output ``(h, w)`` or one int for both; ``None`` keeps the input size.
        seed: seed of this transform's generator.
        mode: ``"constant"`` (zeros) or ``"reflect"`` (mirror without repeating the edge).
    """

    def __init__(
        self,
        padding: int,
        size: int | tuple[int, int] | None = None,
        seed: int | None = None,
        mode: str = "constant",
    ) -> None:
        super().__init__(seed)
        if padding < 0:
            raise ValueError(f"PadAndRandomCrop: padding must be >= 0, got {padding}")
        if mode not in ("constant", "reflect"):
            raise ValueError(f"PadAndRandomCrop: mode is 'constant' or 'reflect', got {mode!r}")
        self.padding = int(padding)
        if isinstance(size, int):
            size = (size, size)
        self.size: tuple[int, int] | None = None if size is None else tuple(size)
        self.mode = mode

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        _check_image(x, "PadAndRandomCrop")
        single = x.ndim < 4
        batch = x.reshape((1,) * (4 - x.ndim) + x.shape)  # -> (N, C, H, W)
        n, _, height, width = batch.shape
        p = self.padding
        h, w = self.size if self.size is not None else (height, width)
        if h > height + 2 * p or w > width + 2 * p:
            raise ValueError(
                f"PadAndRandomCrop: crop {h}x{w} is larger than the padded image "
                f"{height + 2 * p}x{width + 2 * p}"
            )
        padded = np.pad(batch, ((0, 0), (0, 0), (p, p), (p, p)), mode=self.mode)
        top = self.rng.integers(0, height + 2 * p - h + 1, size=n)
        left = self.rng.integers(0, width + 2 * p - w + 1, size=n)
        windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(2, 3))
        # windows: (N, C, H', W', h, w); picking (top[i], left[i]) per image gives (N, C, h, w).
        out = windows[np.arange(n), :, top, left]
        out = np.ascontiguousarray(out)
        return out.reshape(x.shape[:-2] + (h, w)) if single else out

    def __repr__(self) -> str:
        return f"PadAndRandomCrop(padding={self.padding}, size={self.size}, mode={self.mode!r})"
