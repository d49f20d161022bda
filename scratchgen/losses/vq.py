"""Vector-quantisation terms of VQ-VAE (van den Oord, Vinyals & Kavukcuoglu, 2017, "Neural
Discrete Representation Learning") and statistics of codebook use.

An encoder output z_e(x) in R^D is replaced by its nearest codebook vector e_k, k in 1..K:

    k = argmin_j ||z_e(x) - e_j||^2     (paper eq. 1: q(z = k | x) = 1 for this k, else 0)
    z_q(x) = e_k                                                       (paper eq. 2)

The argmin has no useful derivative, so the decoder's gradient is copied to the encoder
unchanged (the straight-through estimator, Bengio et al. 2013; paper Sec. 3.2):

    z_q_st = z_e + sg[z_q - z_e]     (forward: z_q; backward: dL/dz_e = dL/dz_q_st)

and the loss adds two terms that move codes and encoder outputs towards each other
(sg = stop-gradient, written ``.detach()``):

    L = -log p(x | z_q(x)) + ||sg[z_e(x)] - e||^2 + beta ||z_e(x) - sg[e]||^2        (paper eq. 3)
                             `--- codebook ---'      `------ commitment ------'

with beta = 0.25 (the paper prints the first term as log p(x | z_q(x)); as a loss it is the
negative log-likelihood). As in the authors' Sonnet code (and the Keras example) the squared
norms are *averaged* over all latent positions and channels rather than summed; the summed form
only rescales the learning rate of those terms.

Everything here works on (M, D) rows of latent vectors: a model flattens its (N, D, H, W) map
to (N*H*W, D) first (``flatten_latents``) and folds the result back (``unflatten_latents``).
"""
from __future__ import annotations

import math
from typing import Any

import numpy

from scratchgen import backend
from scratchgen.autograd import Tensor
from scratchgen.functional import getitem, mean

__all__ = [
    "flatten_latents", "unflatten_latents", "squared_distances", "nearest_code", "quantize",
    "straight_through", "codebook_loss", "commitment_loss", "vq_loss", "code_counts",
    "codebook_perplexity", "dead_codes",
]


# ---- layout -------------------------------------------------------------------------------------

def flatten_latents(z: Tensor) -> Tensor:
    """(N, D, H, W) -> (N*H*W, D): one row per latent position (row order n, h, w)."""
    n, d, h, w = z.shape
    return z.permute(0, 2, 3, 1).reshape(n * h * w, d)


def unflatten_latents(rows: Tensor, shape: tuple[int, int, int, int]) -> Tensor:
    """(N*H*W, D) -> (N, D, H, W), the inverse of ``flatten_latents`` for ``shape`` (N, D, H, W)."""
    n, d, h, w = shape
    return rows.reshape(n, h, w, d).permute(0, 3, 1, 2)


# ---- the lookup (eqs. 1-2) -----------------------------------------------------------------------

def squared_distances(z: Any, codebook: Any) -> Any:
    """||z_i - e_j||^2 = ||z_i||^2 - 2 z_i . e_j + ||e_j||^2 for rows z (M, D) and codes (K, D):
    an (M, K) array (no gradient; it only picks the code). One matrix product instead of an
    (M, K, D) difference tensor."""
    z = z.data if isinstance(z, Tensor) else z
    e = codebook.data if isinstance(codebook, Tensor) else codebook
    z2 = (z * z).sum(axis=1, keepdims=True)          # (M, 1)
    e2 = (e * e).sum(axis=1)[None, :]                # (1, K)
    return z2 - 2.0 * backend.matmul(z, e.T) + e2


def nearest_code(z: Any, codebook: Any) -> Any:
    """k_i = argmin_j ||z_i - e_j||^2 (paper eq. 1): int64 indices (M,), on z's device. Ties go
    to the smallest index."""
    d = squared_distances(z, codebook)
    return d.argmin(axis=1).astype(numpy.int64)


def quantize(z: Tensor, codebook: Tensor) -> tuple[Tensor, Any]:
    """z_q = e_k for k = nearest_code(z) (paper eq. 2). Returns (z_q (M, D), k (M,)).

    z_q is a differentiable row lookup in the codebook: its gradient flows into the codes that
    were chosen (and, with repeated indices, accumulates), never into z.
    """
    k = nearest_code(z.detach(), codebook)
    return getitem(codebook, k), k


def straight_through(z_e: Tensor, z_q: Tensor) -> Tensor:
    """z_e + sg[z_q - z_e]: the value of z_q with the gradient of z_e (the straight-through
    estimator, paper Sec. 3.2): whatever gradient reaches the decoder input is passed to the
    encoder output unchanged, and none reaches the codebook through this path."""
    return z_e + (z_q - z_e).detach()


# ---- the two auxiliary terms of eq. 3 ------------------------------------------------------------

def codebook_loss(z_e: Tensor, z_q: Tensor) -> Tensor:
    """mean ||sg[z_e] - e||^2: moves the chosen codes towards the encoder outputs (the VQ
    objective of eq. 3; it trains only the codebook). Not used with EMA codebook updates."""
    d = z_e.detach() - z_q
    return mean(d * d)


def commitment_loss(z_e: Tensor, z_q: Tensor) -> Tensor:
    """mean ||z_e - sg[e]||^2: keeps the encoder outputs close to their codes so that they do
    not grow without bound (the commitment term of eq. 3; it trains only the encoder)."""
    d = z_e - z_q.detach()
    return mean(d * d)


def vq_loss(z_e: Tensor, z_q: Tensor, beta: float = 0.25, codebook: bool = True) -> Tensor:
    """||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2 (the last two terms of eq. 3). With
    ``codebook=False`` (EMA updates move the codes instead) only beta * commitment."""
    loss = beta * commitment_loss(z_e, z_q)
    return codebook_loss(z_e, z_q) + loss if codebook else loss


# ---- codebook statistics -------------------------------------------------------------------------

def code_counts(indices: Any, num_codes: int) -> numpy.ndarray:
    """How many times each of the K codes was chosen: an int64 NumPy array (K,)."""
    idx = indices.data if isinstance(indices, Tensor) else indices
    idx = numpy.asarray(backend.to_device(idx, "cpu")).ravel()
    return numpy.bincount(idx, minlength=num_codes).astype(numpy.int64)


def codebook_perplexity(counts: Any) -> float:
    """exp(H(p)) = exp(-sum_k p_k log p_k) with p_k = counts_k / sum(counts) (0 log 0 = 0):
    the effective number of codes in use, between 1 (one code) and K (uniform use)."""
    c = numpy.asarray(backend.to_device(getattr(counts, "data", counts), "cpu"), numpy.float64)
    total = c.sum()
    if total <= 0:
        return float("nan")
    p = c[c > 0] / total
    return float(math.exp(-(p * numpy.log(p)).sum()))


def dead_codes(counts: Any) -> int:
    """The number of codes that were never chosen (count 0)."""
    c = numpy.asarray(backend.to_device(getattr(counts, "data", counts), "cpu"))
    return int((c == 0).sum())
