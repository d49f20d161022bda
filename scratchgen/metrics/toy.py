"""How close two 2-D point clouds are: KL and Jensen-Shannon divergences between histograms.

For 2-D toy data (8 Gaussians, spirals, checkerboard) we compare a model's samples with real
samples by binning both on the same ``bins x bins`` grid over a box and treating the bin
frequencies as two discrete distributions P (real) and Q (generated) over the cells:

    P_i = (number of real points in cell i) / n_real,     Q_i likewise for generated points.

Points outside the box are not dropped silently: they are counted in one extra "outside" cell,
so a model that throws mass far away pays for it. Then

    KL(P || Q)  = sum_i P_i log(P_i / Q_i)                                     (nats)
    JSD(P, Q)   = 1/2 KL(P || M) + 1/2 KL(Q || M),   M = (P + Q) / 2,    0 <= JSD <= log 2.

Smoothing. KL(P || Q) is infinite as soon as one cell holds real points and no generated one,
which with finitely many samples happens by chance. ``kl_divergence`` therefore smooths both
histograms the same way before comparing them:

    P~_i = (P_i + eps) / (1 + K eps),   Q~_i = (Q_i + eps) / (1 + K eps)       (K cells),

so an empty cell costs at most log(P_i / eps) instead of infinity; with the default
``eps = 1e-10`` such a cell is a heavy penalty (about 23 nats times its real mass) and the
estimate is meaningful only with enough samples that real-occupied cells are rarely empty by
chance (the examples use 100,000 points on a 100 x 100 grid). Identical histograms give exactly 0
whatever eps. The JSD needs no smoothing (M > 0 wherever P or Q is) and uses 0 log 0 = 0.

The Soft-IntroVAE code (Daniel & Tamar 2021, ``soft_intro_vae_2d/train_soft_intro_vae_2d.py``,
``calculate_sample_kl``) reports numbers in another convention -- densities instead of
frequencies, ``F.kl_div(..., reduction='batchmean')`` dividing by the number of bins per axis, and
a "JSD" that averages KL(M || P) and KL(M || Q) (reversed arguments, so it is not bounded by
log 2). ``soft_intro_vae_code_divergences`` reproduces that convention exactly, only so that
numbers can be set next to the paper's table; use ``kl_divergence`` / ``js_divergence`` for
anything else.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = [
    "histogram_2d", "kl_divergence", "js_divergence", "sample_divergences",
    "soft_intro_vae_code_divergences",
]

Range2D = Sequence[Sequence[float]]


def _points(points: object) -> np.ndarray:
    data = getattr(points, "data", points)  # a scratchgen Tensor or an array
    if hasattr(data, "get"):  # CuPy array
        data = data.get()
    pts = np.asarray(data, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"expected points of shape (n, 2), got {pts.shape}")
    if pts.shape[0] == 0:
        raise ValueError("expected at least one point")
    return pts


def _range(range_: float | Range2D) -> tuple[tuple[float, float], tuple[float, float]]:
    if isinstance(range_, (int, float)):
        r = float(range_)
        return ((-r, r), (-r, r))
    (x0, x1), (y0, y1) = range_
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"range must be ((xmin, xmax), (ymin, ymax)) with min < max, got {range_}")
    return ((float(x0), float(x1)), (float(y0), float(y1)))


def histogram_2d(points: object, bins: int = 100, range: float | Range2D = 2.0,
                 outside: bool = True) -> np.ndarray:
    """Bin frequencies of ``points`` (n, 2) on a ``bins x bins`` grid over ``range``.

    ``range`` is ``((xmin, xmax), (ymin, ymax))`` or a number r for ``[-r, r]^2``. Returns float64
    frequencies that sum to 1: an array of ``bins * bins + 1`` cells (the grid, row-major with x
    the first axis as ``numpy.histogram2d``, then the "outside the box" cell) when ``outside`` is
    True, else the ``(bins, bins)`` grid alone divided by the number of points *inside* the box.
    """
    pts = _points(points)
    rng = _range(range)
    counts, _, _ = np.histogram2d(pts[:, 0], pts[:, 1], bins=bins, range=rng)
    inside = counts.sum()
    if not outside:
        if inside == 0:
            raise ValueError("no point falls inside the histogram range")
        return counts / inside
    return np.concatenate([counts.ravel(), [pts.shape[0] - inside]]) / pts.shape[0]


def _as_pmf(p: object, name: str) -> np.ndarray:
    a = np.asarray(p, dtype=np.float64).ravel()
    if a.size == 0 or np.any(a < 0) or not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be a non-empty array of finite non-negative numbers")
    total = a.sum()
    if total <= 0:
        raise ValueError(f"{name} has no mass")
    return a / total


def kl_divergence(p: object, q: object, eps: float = 1e-10) -> float:
    """KL(P || Q) = sum_i P~_i log(P~_i / Q~_i) in nats between two histograms of the same shape.

    Each histogram is first normalized to sum 1, then smoothed as ``(h + eps) / (1 + K eps)``
    (K cells; see the module docstring). ``eps = 0`` gives the exact KL, which is ``inf`` when
    Q has an empty cell where P has mass.
    """
    P, Q = _as_pmf(p, "p"), _as_pmf(q, "q")
    if P.shape != Q.shape:
        raise ValueError(f"histograms differ in size: {P.size} and {Q.size} cells")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    k = P.size
    P = (P + eps) / (1.0 + k * eps)
    Q = (Q + eps) / (1.0 + k * eps)
    mask = P > 0
    with np.errstate(divide="ignore"):
        return float(np.sum(P[mask] * (np.log(P[mask]) - np.log(Q[mask]))))


def js_divergence(p: object, q: object) -> float:
    """JSD(P, Q) = 1/2 KL(P || M) + 1/2 KL(Q || M), M = (P + Q)/2, in nats; in [0, log 2].

    Symmetric, always finite, no smoothing (0 log 0 = 0).
    """
    P, Q = _as_pmf(p, "p"), _as_pmf(q, "q")
    if P.shape != Q.shape:
        raise ValueError(f"histograms differ in size: {P.size} and {Q.size} cells")
    M = 0.5 * (P + Q)

    def kl_to_m(A: np.ndarray) -> float:
        m = A > 0
        return float(np.sum(A[m] * (np.log(A[m]) - np.log(M[m]))))

    jsd = 0.5 * kl_to_m(P) + 0.5 * kl_to_m(Q)
    return min(max(jsd, 0.0), math.log(2.0))  # clamp round-off outside the exact bounds


def sample_divergences(real: object, fake: object, bins: int = 100,
                       range: float | Range2D = 2.0, eps: float = 1e-10) -> dict[str, float]:
    """``{"kl": KL(P_real || Q_fake), "jsd": JSD(P_real, Q_fake), "outside_real": ...,
    "outside_fake": ...}`` from two point clouds, histogrammed with ``histogram_2d`` (with the
    outside cell). KL is in the direction the Soft-IntroVAE paper reports (real data first:
    large when the model misses modes of the data)."""
    p = histogram_2d(real, bins, range, outside=True)
    q = histogram_2d(fake, bins, range, outside=True)
    return {"kl": kl_divergence(p, q, eps), "jsd": js_divergence(p, q),
            "outside_real": float(p[-1]), "outside_fake": float(q[-1])}


def soft_intro_vae_code_divergences(real: object, fake: object, bins: int = 100,
                                    xy_range: tuple[float, float] = (-2.0, 2.0)) -> dict[str, float]:
    """The "KL" and "JSD" exactly as the official Soft-IntroVAE 2-D code computes them (for
    comparison with the paper's table only; see the module docstring for why they differ).

    With p, q the ``density=True`` histograms (values per unit area, points outside the box
    dropped) and d = 1e-14:

        kl_code  = sum_i p_i (log p_i - log(q_i + d)) / bins
        jsd_code = 1/2 [ sum_i m_i (log m_i - log(p_i + d)) + sum_i m_i (log m_i - log(q_i + d)) ] / bins

    with m = (p + q)/2, terms with a zero target (p_i or m_i) counted as 0, as ``torch.nn.
    functional.kl_div`` does.
    """
    rng = (tuple(xy_range), tuple(xy_range))
    pts_r, pts_f = _points(real), _points(fake)
    p, _, _ = np.histogram2d(pts_r[:, 0], pts_r[:, 1], bins=bins, range=rng, density=True)
    q, _, _ = np.histogram2d(pts_f[:, 0], pts_f[:, 1], bins=bins, range=rng, density=True)
    d = 1e-14

    def kl_div(log_input: np.ndarray, target: np.ndarray) -> float:
        m = target > 0
        return float(np.sum(target[m] * (np.log(target[m]) - log_input[m]))) / bins

    m = 0.5 * (p + q)
    return {"kl": kl_div(np.log(q + d), p),
            "jsd": 0.5 * (kl_div(np.log(p + d), m) + kl_div(np.log(q + d), m))}
