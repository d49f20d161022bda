"""Mode coverage of 2-D samples from a mixture of K isotropic Gaussians (the mode-collapse test).

The protocol of PacGAN (Lin, Khetan, Fanti, Oh, "PacGAN: The power of two samples in generative
adversarial networks", NeurIPS 2018, Sec. 5.1 and Table 1), which follows VEEGAN (Srivastava et
al. 2017) and Unrolled GANs (Metz et al. 2017). Each generated sample x goes to its nearest mode
k(x) = argmin_k ||x - mu_k||, and is "high quality" when it lies within 3 standard deviations
of it, ||x - mu_k(x)|| < 3 sigma. Then, with c_k the number of high-quality samples at mode k,

    modes captured       = #{k : c_k > 0}
    high-quality fraction = sum_k c_k / N
    reverse KL           = KL(q || p) = sum_k q_k log(q_k / p_k),   q_k = c_k / sum_j c_j,
                           p_k = 1/K (the real mixture's equal weights),  0 log 0 = 0.

The KL is "reverse" in that the generated distribution q comes first (so a missed mode costs
nothing by itself, but the mass it should have had piles up elsewhere): collapsing onto m of
the K modes evenly gives log(K/m). Only high-quality samples enter q, as in PacGAN's released
code, whose histogram of modes counts a sample only when it lies within the threshold; the
high-quality fraction reports the rest. Note that a perfect sampler scores a high-quality
fraction of 1 - exp(-9/2) = 98.9%, not 100%: that much of a 2-D Gaussian lies within 3 sigma.

``MODE_SETTINGS`` holds the two standard settings: ``"ring"``, 8 Gaussians of std 0.01 on the
unit circle, and ``"grid"``, 25 Gaussians of std 0.05 at {-4, -2, 0, 2, 4}^2.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from scratchgen.data.toy import toy_dataset, toy_density

__all__ = ["MODE_SETTINGS", "mode_setting", "sample_mode_setting", "mode_coverage",
           "setting_coverage"]

#: The standard settings, as keyword arguments of ``scratchgen.data`` ``ring_of_gaussians`` and
#: ``grid_of_gaussians`` (and of ``toy_dataset`` / ``toy_density`` under the same name).
MODE_SETTINGS: dict[str, dict[str, float]] = {
    "ring": {"k": 8, "radius": 1.0, "std": 0.01},
    "grid": {"grid": 5, "spacing": 2.0, "std": 0.05},
}


def _setting(name: str) -> dict[str, float]:
    if name not in MODE_SETTINGS:
        raise ValueError(f"unknown mode setting {name!r}: choose one of "
                         f"{', '.join(map(repr, MODE_SETTINGS))}")
    return MODE_SETTINGS[name]


def mode_setting(name: str) -> tuple[np.ndarray, float]:
    """The means ``(K, 2)`` (float64) and the standard deviation of setting ``name``."""
    params = dict(_setting(name))
    return toy_density(name, **params).means.astype(np.float64), float(params["std"])


def sample_mode_setting(name: str, n: int, seed: int | None = None) -> np.ndarray:
    """``n`` real samples ``(n, 2)`` float32 of setting ``name`` (equal mode weights)."""
    return toy_dataset(name, n, seed=seed, **_setting(name)).points


def _points(x: Any, name: str) -> np.ndarray:
    data = getattr(x, "data", x)  # a scratchgen Tensor or an array
    data = data.get() if hasattr(data, "get") else data
    a = np.asarray(data, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 2 or a.shape[0] < 1:
        raise ValueError(f"mode_coverage: {name} must have shape (N >= 1, 2), got {a.shape}")
    return a


def mode_coverage(samples: Any, means: Any, std: float, threshold: float = 3.0,
                  chunk: int = 65536) -> dict[str, Any]:
    """Modes captured, high-quality fraction and reverse KL of ``samples`` (N, 2) against the
    mixture with ``means`` (K, 2) and isotropic ``std`` (PacGAN's protocol, see the module).

    Returns a JSON-ready dict: ``modes_captured``, ``num_modes`` (K), ``high_quality_fraction``,
    ``per_mode_counts`` (c_k, high-quality samples only), ``reverse_kl`` (``inf`` when no sample
    is of high quality, so that such a generator ranks last), ``n_samples``.
    """
    x = _points(samples, "samples")
    mu = _points(means, "means")
    if not (std > 0 and math.isfinite(std)):
        raise ValueError(f"mode_coverage: std must be positive, got {std!r}")
    if not (threshold > 0):
        raise ValueError(f"mode_coverage: threshold must be positive, got {threshold!r}")
    k = mu.shape[0]
    counts = np.zeros(k, dtype=np.int64)
    for i in range(0, x.shape[0], chunk):
        d2 = ((x[i:i + chunk, None, :] - mu[None, :, :]) ** 2).sum(-1)
        nearest = d2.argmin(axis=1)
        good = d2[np.arange(d2.shape[0]), nearest] < (threshold * std) ** 2
        counts += np.bincount(nearest[good], minlength=k)
    total = int(counts.sum())
    if total == 0:
        reverse_kl = math.inf
    else:
        q = counts[counts > 0] / total
        reverse_kl = float((q * np.log(q * k)).sum())
    return {
        "modes_captured": int((counts > 0).sum()),
        "num_modes": k,
        "high_quality_fraction": total / x.shape[0],
        "per_mode_counts": [int(c) for c in counts],
        "reverse_kl": reverse_kl,
        "n_samples": int(x.shape[0]),
    }


def setting_coverage(name: str, samples: Any) -> dict[str, Any]:
    """``mode_coverage`` of ``samples`` in the standard setting ``name`` (``"ring"``, ``"grid"``)."""
    means, std = mode_setting(name)
    return mode_coverage(samples, means, std)
