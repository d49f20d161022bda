"""Two-dimensional toy distributions for GANs and VAEs, with exact densities where they exist.

The mixtures are the standard mode-collapse benchmarks: the ring of 8 Gaussians and the 5x5 grid
of 25 Gaussians (as in Metz et al. 2017, "Unrolled GANs", and Srivastava et al. 2017, "VEEGAN").
For an equal-weight isotropic mixture with K means mu_k and spread sigma,

    log p(x) = logsumexp_k( -|x - mu_k|^2 / (2 sigma^2) ) - log K - log(2 pi sigma^2),

which ``toy_density`` evaluates exactly, for pictures and for KL estimates against samples.
The checkerboard (as in FFJORD, Grathwohl et al. 2019) is uniform on 8 of the 16 squares of
side 2 tiling [-4, 4]^2, so p = 1/32 on them and 0 elsewhere. The two spirals have no closed form.

Every sampler returns ``ToySet(points, means)``: ``points`` a float32 ``(n, 2)`` array and
``means`` the float32 ``(K, 2)`` mixture means, or ``None`` for sets that are not mixtures.
The same ``seed`` always gives the same points.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = [
    "ToySet",
    "ToyDensity",
    "ring_of_gaussians",
    "grid_of_gaussians",
    "two_spirals",
    "checkerboard",
    "toy_dataset",
    "toy_density",
    "TOY_NAMES",
]


class ToySet(NamedTuple):
    """Samples of a toy distribution and, for mixtures, the component means."""

    points: np.ndarray
    means: np.ndarray | None


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"the number of points must be a non-negative integer, got {n!r}")
    return int(n)


def _ring_means(k: int, radius: float) -> np.ndarray:
    angles = 2.0 * np.pi * np.arange(k) / k
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _grid_means(grid: int, spacing: float) -> np.ndarray:
    coords = (np.arange(grid) - (grid - 1) / 2.0) * spacing
    gx, gy = np.meshgrid(coords, coords, indexing="ij")
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def _sample_mixture(n: int, means: np.ndarray, std: float, seed: int | None) -> ToySet:
    if std <= 0:
        raise ValueError(f"std must be positive, got {std}")
    rng = np.random.default_rng(seed)
    component = rng.integers(0, means.shape[0], size=n)
    points = means[component] + std * rng.standard_normal((n, 2))
    return ToySet(points.astype(np.float32), means.astype(np.float32))


def ring_of_gaussians(
    n: int, k: int = 8, radius: float = 2.0, std: float = 0.02, seed: int | None = None
) -> ToySet:
    """``n`` points from ``k`` equally weighted Gaussians N(mu_j, std^2 I) on a circle.

    mu_j = radius * (cos(2 pi j / k), sin(2 pi j / k)), j = 0..k-1 (the "8 Gaussians" set).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return _sample_mixture(_check_n(n), _ring_means(k, radius), std, seed)


def grid_of_gaussians(
    n: int, grid: int = 5, spacing: float = 2.0, std: float = 0.05, seed: int | None = None
) -> ToySet:
    """``n`` points from ``grid x grid`` equally weighted Gaussians on a square lattice.

    The means are ``spacing * (i - (grid-1)/2, j - (grid-1)/2)``, centred on the origin; with the
    defaults, the "25 Gaussians" set on {-4, -2, 0, 2, 4}^2.
    """
    if grid < 1:
        raise ValueError(f"grid must be >= 1, got {grid}")
    return _sample_mixture(_check_n(n), _grid_means(grid, spacing), std, seed)


def two_spirals(n: int, noise: float = 0.1, seed: int | None = None) -> ToySet:
    """``n`` points on two interleaved spiral arms, plus Gaussian noise of std ``noise``.

    Arm one is (-t cos t, t sin t) / 3 for t = 3 pi sqrt(u), u ~ U[0, 1) (sqrt spreads points
    evenly along the arm); arm two is its point reflection. Points come in random order.
    """
    n = _check_n(n)
    rng = np.random.default_rng(seed)
    t = 3.0 * np.pi * np.sqrt(rng.random(n))
    arm = np.stack([-t * np.cos(t), t * np.sin(t)], axis=1) / 3.0
    sign = np.where(np.arange(n) < (n + 1) // 2, 1.0, -1.0)
    points = sign[:, None] * arm + noise * rng.standard_normal((n, 2))
    points = points[rng.permutation(n)]
    return ToySet(points.astype(np.float32), None)


def checkerboard(n: int, seed: int | None = None) -> ToySet:
    """``n`` points uniform on the 8 "black" squares of a 4x4 board of side-2 squares on [-4, 4]^2.

    A square with lower-left corner (2a, 2b), a, b in {-2, -1, 0, 1}, is black when a + b is even.
    """
    n = _check_n(n)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-4.0, 4.0, size=n)
    a = np.floor(x / 2.0)
    b = -2.0 + np.mod(a, 2.0) + 2.0 * rng.integers(0, 2, size=n)
    y = 2.0 * b + 2.0 * rng.random(n)
    return ToySet(np.stack([x, y], axis=1).astype(np.float32), None)


@dataclass(frozen=True)
class ToyDensity:
    """The exact density of a toy distribution.

    Attributes:
        name: the distribution's name.
        means: mixture means ``(K, 2)`` (``None`` for the checkerboard).
        std: mixture spread sigma (``None`` for the checkerboard).
        extent: ``(xmin, xmax, ymin, ymax)``, a box holding all but a negligible part of the mass.
    """

    name: str
    means: np.ndarray | None
    std: float | None
    extent: tuple[float, float, float, float]

    def log_prob(self, points: np.ndarray) -> np.ndarray:
        """``log p(x)`` for each row of ``points`` ``(m, 2)``, float64 (``-inf`` off the support)."""
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"log_prob expects points of shape (m, 2), got {pts.shape}")
        if self.means is None:
            return _checkerboard_log_prob(pts)
        return _mixture_log_prob(pts, self.means.astype(np.float64), float(self.std))

    def grid(
        self, n: int = 200, extent: tuple[float, float, float, float] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``log p`` on an ``n x n`` grid of cell centres: returns ``(xs, ys, logp)``.

        ``logp[i, j] = log p(xs[j], ys[i])`` (rows are y, as an image). The cells have area
        ``dx * dy`` with ``dx = xs[1] - xs[0]``, so ``exp(logp).sum() * dx * dy`` approximates
        the mass in ``extent`` (close to 1 for the default extent).
        """
        xmin, xmax, ymin, ymax = self.extent if extent is None else extent
        dx, dy = (xmax - xmin) / n, (ymax - ymin) / n
        xs = xmin + dx * (np.arange(n) + 0.5)
        ys = ymin + dy * (np.arange(n) + 0.5)
        gx, gy = np.meshgrid(xs, ys, indexing="xy")
        logp = self.log_prob(np.stack([gx.ravel(), gy.ravel()], axis=1)).reshape(n, n)
        return xs, ys, logp


def _mixture_log_prob(pts: np.ndarray, means: np.ndarray, std: float) -> np.ndarray:
    k = means.shape[0]
    out = np.empty(pts.shape[0])
    const = -math.log(k) - math.log(2.0 * math.pi * std * std)
    chunk = 1 << 16  # bounds the (chunk, K) temporary
    for start in range(0, pts.shape[0], chunk):
        p = pts[start:start + chunk]
        sq = ((p[:, None, :] - means[None, :, :]) ** 2).sum(-1) / (-2.0 * std * std)
        top = sq.max(axis=1)
        out[start:start + chunk] = top + np.log(np.exp(sq - top[:, None]).sum(axis=1)) + const
    return out


def _checkerboard_log_prob(pts: np.ndarray) -> np.ndarray:
    x, y = pts[:, 0], pts[:, 1]
    inside = (x >= -4.0) & (x < 4.0) & (y >= -4.0) & (y < 4.0)
    black = np.mod(np.floor(x / 2.0) + np.floor(y / 2.0), 2.0) == 0.0
    return np.where(inside & black, -math.log(32.0), -np.inf)


_ALIASES = {
    "ring": "ring", "8gaussians": "ring", "ring_of_gaussians": "ring",
    "grid": "grid", "25gaussians": "grid", "grid_of_gaussians": "grid",
    "spirals": "spirals", "2spirals": "spirals", "two_spirals": "spirals",
    "checkerboard": "checkerboard",
}

#: Names accepted by ``toy_dataset`` and ``toy_density`` (aliases are also accepted).
TOY_NAMES = ("ring", "grid", "spirals", "checkerboard")


def _canonical(name: str) -> str:
    key = name.lower().replace("-", "_")
    if key not in _ALIASES:
        raise ValueError(f"unknown toy distribution {name!r}: choose one of {', '.join(TOY_NAMES)}")
    return _ALIASES[key]


def toy_dataset(name: str, n: int, seed: int | None = None, **params: float) -> ToySet:
    """Sample ``n`` points of the toy distribution ``name`` (``ring``, ``grid``, ``spirals``,
    ``checkerboard``); ``params`` go to its sampler (e.g. ``std=0.05``)."""
    sampler = {
        "ring": ring_of_gaussians,
        "grid": grid_of_gaussians,
        "spirals": two_spirals,
        "checkerboard": checkerboard,
    }[_canonical(name)]
    return sampler(n, seed=seed, **params)


def toy_density(name: str, **params: float) -> ToyDensity:
    """The exact density of toy distribution ``name`` with the sampler's parameters ``params``.

    ``toy_density("ring", std=0.05)`` matches ``ring_of_gaussians(n, std=0.05)``. Defined for
    ``ring``, ``grid`` and ``checkerboard``; ``spirals`` raises ``ValueError`` (no closed form).
    """
    kind = _canonical(name)
    if kind == "ring":
        k = int(params.pop("k", 8))
        radius = float(params.pop("radius", 2.0))
        std = float(params.pop("std", 0.02))
        means = _ring_means(k, radius)
    elif kind == "grid":
        grid = int(params.pop("grid", 5))
        spacing = float(params.pop("spacing", 2.0))
        std = float(params.pop("std", 0.05))
        means = _grid_means(grid, spacing)
    elif kind == "checkerboard":
        if params:
            raise TypeError(
                f"toy_density('checkerboard') takes no parameters, got {sorted(params)}"
            )
        return ToyDensity("checkerboard", None, None, (-4.0, 4.0, -4.0, 4.0))
    else:
        raise ValueError(
            "two_spirals has no closed-form density (its noise smears a curve); estimate it from "
            "samples instead"
        )
    if params:
        raise TypeError(f"toy_density({name!r}) got unexpected parameters {sorted(params)}")
    if std <= 0:
        raise ValueError(f"std must be positive, got {std}")
    margin = 6.0 * std
    extent = (
        float(means[:, 0].min() - margin), float(means[:, 0].max() + margin),
        float(means[:, 1].min() - margin), float(means[:, 1].max() + margin),
    )
    return ToyDensity(kind, means, std, extent)
