"""Sample-quality metrics of generative models, computed on features (N, d) of real and fake data.

Each compares two sets of feature vectors, as NumPy float64 arrays (CuPy arrays and Tensors are
brought to the host first); ``scratchgen.metrics.features`` computes them with a classifier.

- Frechet distance (Heusel, Ramsauer, Unterthiner, Nessler, Hochreiter, "GANs Trained by a Two
  Time-Scale Update Rule Converge to a Local Nash Equilibrium", NeurIPS 2017): the 2-Wasserstein
  distance between Gaussians fitted to the two sets. With Inception features it is the "FID".
- Kernel distance (Binkowski, Sutherland, Arbel, Gretton, "Demystifying MMD GANs", ICLR 2018):
  an unbiased MMD^2 with a cubic polynomial kernel, averaged over random subsets ("KID").
- Classifier score (Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016):
  the Inception Score exp E_x KL(p(y|x) || p(y)), here with our own classifier's p(y|x).
- Precision and recall (Kynkaanniemi, Karras, Laine, Lehtinen, Aila, "Improved Precision and
  Recall Metric for Assessing Generative Models", NeurIPS 2019): the fraction of each set that
  falls inside the other's k-nearest-neighbour balls.

All of them are biased by sample size (FD strongly, IS and precision/recall somewhat; KID is
unbiased but its variance shrinks with n): compare numbers only at equal sample counts.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "Estimate", "sqrtm_psd", "frechet_distance", "frechet_distance_from_features",
    "mmd2_unbiased", "kid", "classifier_score", "precision_recall",
]


class Estimate(NamedTuple):
    """A metric averaged over subsets or splits: their mean and standard deviation."""

    mean: float
    std: float


def _host(x: Any) -> Any:
    data = getattr(x, "data", x)  # a scratchgen Tensor or an array
    return data.get() if hasattr(data, "get") else data  # CuPy -> NumPy


def _features(f: Any, name: str, min_rows: int = 1) -> np.ndarray:
    a = np.asarray(_host(f), dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < min_rows or a.shape[1] < 1:
        raise ValueError(f"{name} must be features of shape (N >= {min_rows}, d), got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds non-finite values (nan or inf)")
    return a


def _same_dim(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{names} have different feature sizes: {a.shape} and {b.shape}")


def _symmetric_eigh(a: Any, name: str, tol: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of a symmetric PSD matrix, its eigenvalues clipped at 0."""
    a = np.asarray(_host(a), dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {a.shape}")
    scale = max(float(np.abs(a).max(initial=0.0)), 1e-300)
    if float(np.abs(a - a.T).max(initial=0.0)) > tol * scale:
        raise ValueError(f"{name} is not symmetric (max |A - A^T| = "
                         f"{float(np.abs(a - a.T).max()):.3g})")
    w, v = np.linalg.eigh((a + a.T) * 0.5)
    if w.size and w[0] < -tol * max(float(w[-1]), scale):
        raise ValueError(f"{name} is not positive semi-definite (eigenvalue {w[0]:.3g})")
    # rounding leaves eigenvalues of size ~eps * ||A|| of either sign where the true ones are 0
    return np.clip(w, 0.0, None), v


def sqrtm_psd(a: Any) -> np.ndarray:
    """The symmetric PSD square root of a symmetric PSD matrix A: S with S S = A, S = S^T >= 0.

        A = V diag(w) V^T  (eigh)   =>   A^{1/2} = V diag(sqrt(max(w, 0))) V^T.

    Negative eigenvalues of rounding size are clipped to 0; a clearly indefinite or asymmetric
    matrix raises ``ValueError``.
    """
    w, v = _symmetric_eigh(a, "sqrtm_psd's matrix")
    return (v * np.sqrt(w)) @ v.T


def frechet_distance(mu1: Any, cov1: Any, mu2: Any, cov2: Any) -> float:
    """Frechet (2-Wasserstein) distance between N(mu1, C1) and N(mu2, C2) (Heusel et al. 2017):

        d^2 = ||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1^{1/2} C2 C1^{1/2})^{1/2}).

    The usual formula writes Tr((C1 C2)^{1/2}). The two traces agree: with S = C1^{1/2}, the
    products C1 C2 = S (S C2) and S C2 S = (S C2) S are AB and BA for A = S, B = S C2, and AB and
    BA have the same non-zero eigenvalues. Those of S C2 S are >= 0 (it is symmetric PSD), so
    the square root of C1 C2 with non-negative eigenvalues has trace sum_i sqrt(lambda_i), the
    trace of (S C2 S)^{1/2}. Using the symmetric form needs only symmetric PSD roots (an
    eigendecomposition), never the root of the non-symmetric C1 C2. The result is clipped at 0,
    which rounding can undercut by ~1e-12 for equal inputs.
    """
    m1 = np.asarray(_host(mu1), dtype=np.float64)
    m2 = np.asarray(_host(mu2), dtype=np.float64)
    if m1.ndim != 1 or m1.shape != m2.shape:
        raise ValueError(f"frechet_distance: means must be vectors of one shape, got {m1.shape} "
                         f"and {m2.shape}")
    d = m1.shape[0]
    c1 = np.asarray(_host(cov1), dtype=np.float64)
    c2 = np.asarray(_host(cov2), dtype=np.float64)
    if c1.shape != (d, d) or c2.shape != (d, d):
        raise ValueError(f"frechet_distance: covariances must be ({d}, {d}) like the means, got "
                         f"{c1.shape} and {c2.shape}")
    w1, v1 = _symmetric_eigh(c1, "frechet_distance: cov1")
    _symmetric_eigh(c2, "frechet_distance: cov2")  # C2 must be PSD too, else d means nothing
    s1 = (v1 * np.sqrt(w1)) @ v1.T
    middle = s1 @ c2 @ s1
    # symmetric PSD in exact arithmetic; symmetrised so that rounding cannot make it otherwise
    w = np.clip(np.linalg.eigvalsh((middle + middle.T) * 0.5), 0.0, None)
    diff = m1 - m2
    value = float(diff @ diff + np.trace(c1) + np.trace(c2) - 2.0 * np.sqrt(w).sum())
    return max(value, 0.0)


def frechet_distance_from_features(f1: Any, f2: Any) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N1, d) and (N2, d):
    their means and unbiased covariances (1/(N-1)), as in the FID of Heusel et al. 2017."""
    a = _features(f1, "frechet_distance_from_features: f1", 2)
    b = _features(f2, "frechet_distance_from_features: f2", 2)
    _same_dim(a, b, "frechet_distance_from_features: f1 and f2")
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False).reshape(a.shape[1], -1),
                            b.mean(0), np.cov(b, rowvar=False).reshape(b.shape[1], -1))


def _poly_kernel(x: np.ndarray, y: np.ndarray, degree: int, gamma: float,
                 coef0: float) -> np.ndarray:
    return (gamma * (x @ y.T) + coef0) ** degree


def mmd2_unbiased(x: Any, y: Any, degree: int = 3, gamma: float | None = None,
                  coef0: float = 1.0) -> float:
    """Unbiased estimate of the squared MMD between the distributions of x (m, d) and y (n, d),
    with the polynomial kernel k(a, b) = (gamma a.b + coef0)^degree, gamma = 1/d by default:

        MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m-1)) + sum_{i != j} k(y_i, y_j) / (n (n-1))
                  - 2 sum_{i, j} k(x_i, y_j) / (m n)

    (Gretton et al., "A Kernel Two-Sample Test", JMLR 2012). Its expectation is the MMD^2
    itself, so it is negative about half the time when the distributions are equal.
    """
    a = _features(x, "mmd2_unbiased: x", 2)
    b = _features(y, "mmd2_unbiased: y", 2)
    _same_dim(a, b, "mmd2_unbiased: x and y")
    if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)) or degree < 1:
        raise ValueError(f"mmd2_unbiased: degree must be a positive integer, got {degree!r}")
    g = 1.0 / a.shape[1] if gamma is None else float(gamma)
    m, n = a.shape[0], b.shape[0]
    kxx = _poly_kernel(a, a, degree, g, coef0)
    kyy = _poly_kernel(b, b, degree, g, coef0)
    kxy = _poly_kernel(a, b, degree, g, coef0)
    xx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    yy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(xx + yy - 2.0 * kxy.mean())


def kid(f1: Any, f2: Any, subsets: int = 100, subset_size: int = 1000, degree: int = 3,
        gamma: float | None = None, coef0: float = 1.0, seed: int | None = 0) -> Estimate:
    """Kernel distance (Binkowski et al. 2018, "KID"): ``mmd2_unbiased`` with the kernel
    k(x, y) = (x.y / d + 1)^3 on ``subsets`` random subsets (drawn without replacement) of
    min(subset_size, N1, N2) rows of each set; returns the mean and the standard deviation of the
    subset estimates (their spread, not the standard error of the mean).

    Unlike the Frechet distance its estimate is unbiased, so small sets give the right value on
    average; it can be slightly negative when the two distributions are the same.
    """
    a = _features(f1, "kid: f1", 2)
    b = _features(f2, "kid: f2", 2)
    _same_dim(a, b, "kid: f1 and f2")
    if isinstance(subsets, bool) or not isinstance(subsets, (int, np.integer)) or subsets < 1:
        raise ValueError(f"kid: subsets must be a positive integer, got {subsets!r}")
    if isinstance(subset_size, bool) or not isinstance(subset_size, (int, np.integer)) or (
            subset_size < 2):
        raise ValueError(f"kid: subset_size must be >= 2, got {subset_size!r}")
    m = int(min(subset_size, a.shape[0], b.shape[0]))
    rng = np.random.default_rng(seed)
    values = np.empty(int(subsets))
    for s in range(int(subsets)):
        ia = rng.choice(a.shape[0], m, replace=False)
        ib = rng.choice(b.shape[0], m, replace=False)
        values[s] = mmd2_unbiased(a[ia], b[ib], degree, gamma, coef0)
    return Estimate(float(values.mean()), float(values.std()))


def _probabilities(probs: Any) -> np.ndarray:
    p = np.asarray(_host(probs), dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 1:
        raise ValueError(f"classifier_score: probs must have shape (N, classes), got {p.shape}")
    if not np.isfinite(p).all() or p.min() < 0.0:
        raise ValueError("classifier_score: probs must be finite and non-negative")
    worst = float(np.abs(p.sum(axis=1) - 1.0).max())
    if worst > 1e-4:
        raise ValueError(f"classifier_score: each row of probs must sum to 1 (off by {worst:.3g});"
                         " pass softmax(logits), not logits")
    return p


def _kl_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p_i || q) per row, with 0 log 0 = 0."""
    ratio = np.where(p > 0, p, 1.0) / np.where(q > 0, q, 1.0)
    return (p * np.log(ratio)).sum(axis=-1)


def classifier_score(probs: Any, splits: int = 1) -> Estimate:
    """Inception Score with our classifier (Salimans et al. 2016, Sec. 4):

        IS = exp( E_x KL(p(y|x) || p(y)) ),    p(y) = E_x p(y|x),

    over class probabilities ``probs`` (N, K) of generated samples. 1 <= IS <= K: it is K when
    every sample is classified with certainty and all classes are equally frequent, 1 when all
    samples get the same distribution. With ``splits`` > 1 the samples are cut into that many
    equal consecutive parts (as the original code does, 10 parts), each part with its own p(y),
    and the mean and standard deviation over parts are returned.
    """
    p = _probabilities(probs)
    if isinstance(splits, bool) or not isinstance(splits, (int, np.integer)) or not (
            1 <= splits <= p.shape[0]):
        raise ValueError(f"classifier_score: splits must be an integer in [1, N={p.shape[0]}], "
                         f"got {splits!r}")
    scores = []
    for part in np.array_split(p, int(splits)):
        marginal = part.mean(axis=0)
        scores.append(math.exp(float(_kl_rows(part, marginal).mean())))
    return Estimate(float(np.mean(scores)), float(np.std(scores)))


def _pairwise_sq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """||a_i - b_j||^2 expanded as |a|^2 + |b|^2 - 2 a.b (one matrix product), clipped at 0."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def _rows_per_block(n_cols: int, max_elements: int) -> int:
    return max(1, max_elements // max(n_cols, 1))


def _knn_radii_sq(x: np.ndarray, k: int, max_elements: int) -> np.ndarray:
    """Squared distance from each row of x to its k-th nearest other row."""
    out = np.empty(x.shape[0])
    step = _rows_per_block(x.shape[0], max_elements)
    for i in range(0, x.shape[0], step):
        d = _pairwise_sq(x[i:i + step], x)
        d[np.arange(d.shape[0]), np.arange(i, i + d.shape[0])] = -1.0  # self sorts first
        out[i:i + step] = np.partition(d, k, axis=1)[:, k]
    return out


def _inside_fraction(points: np.ndarray, centres: np.ndarray, radii_sq: np.ndarray,
                     max_elements: int) -> float:
    """Fraction of points within distance radius_j of at least one centre_j."""
    inside = 0
    step = _rows_per_block(centres.shape[0], max_elements)
    for i in range(0, points.shape[0], step):
        d = _pairwise_sq(points[i:i + step], centres)
        inside += int((d <= radii_sq[None, :]).any(axis=1).sum())
    return inside / points.shape[0]


def precision_recall(real_features: Any, fake_features: Any, k: int = 3,
                     max_elements: int = 1 << 22) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019, Sec. 2).

    Each set approximates its manifold by balls around its points, of radius the distance to
    the point's k-th nearest neighbour within the set (k = 3 as in the paper):

        f(x, S) = 1 if ||x - s|| <= ||s - NN_k(s, S)|| for some s in S, else 0,
        precision = mean_{fake x} f(x, Real),    recall = mean_{real x} f(x, Fake).

    Precision is the fraction of fakes that look real (quality), recall the fraction of reals
    the fakes cover (diversity). Distances are computed in blocks of at most ``max_elements``
    entries (default 4M, 32 MB of float64), so memory stays bounded for large sets.
    """
    real = _features(real_features, "precision_recall: real_features", 2)
    fake = _features(fake_features, "precision_recall: fake_features", 2)
    _same_dim(real, fake, "precision_recall: real and fake features")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not (
            1 <= k < min(real.shape[0], fake.shape[0])):
        raise ValueError(f"precision_recall: k must be an integer in [1, min(N_real, N_fake)) = "
                         f"[1, {min(real.shape[0], fake.shape[0])}), got {k!r}")
    precision = _inside_fraction(fake, real, _knn_radii_sq(real, k, max_elements), max_elements)
    recall = _inside_fraction(real, fake, _knn_radii_sq(fake, k, max_elements), max_elements)
    return precision, recall
