"""Gaussian and Bernoulli building blocks of every VAE loss: KL divergences in closed form,
log-densities, and the reparameterization trick.

Conventions (the same in ``elbo.py``, ``mmd.py`` and the models):

* A diagonal Gaussian is given by its mean ``mu`` and its log-variance ``logvar``
  (log sigma^2): the encoder outputs an unconstrained number and the variance
  ``exp(logvar)`` is positive by construction.
* Functions that score one thing per example (a KL, a log-density) sum over every axis but
  the first (the batch axis) and return shape ``(N,)``; ``reduction="mean"`` / ``"sum"`` then
  averages / sums over the batch. A VAE's loss is "per image": summed over pixels and latent
  units, averaged over images.

References: D. P. Kingma, M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014
(appendix B: the Gaussian KL; section 2.4: the reparameterization trick).
"""
from __future__ import annotations

import math
from typing import Any

import scratchgen as sg
import scratchgen.functional as F
from scratchgen.autograd import Tensor

__all__ = [
    "kl_normal_standard_normal", "kl_normal_normal", "gaussian_log_prob",
    "standard_normal_log_prob", "bernoulli_log_prob_with_logits", "reparameterize",
    "sum_per_example",
]

_LOG_2PI = math.log(2.0 * math.pi)


def sum_per_example(t: Tensor) -> Tensor:
    """Sum over every axis but the first: (N, ...) -> (N,). A 1-D tensor is returned as is."""
    if t.ndim <= 1:
        return t
    return t.sum(axis=tuple(range(1, t.ndim)))


def _reduce(per_example: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return per_example
    if reduction == "mean":
        return per_example.mean()
    if reduction == "sum":
        return per_example.sum()
    raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")


def kl_normal_standard_normal(mu: Tensor, logvar: Tensor, reduction: str = "none") -> Tensor:
    """KL( N(mu, diag sigma^2) || N(0, I) ) in closed form, one value per example.

        KL = -1/2 sum_j ( 1 + log sigma_j^2 - mu_j^2 - sigma_j^2 )

    (Kingma & Welling 2014, appendix B; the sum runs over the latent units j, every axis but
    the batch axis.) Zero exactly when mu = 0 and logvar = 0.
    """
    if mu.shape != logvar.shape:
        raise ValueError(f"kl_normal_standard_normal: mu {mu.shape} and logvar {logvar.shape} "
                         "must have the same shape")
    per_unit = (1.0 + logvar - mu * mu - logvar.exp()) * -0.5
    return _reduce(sum_per_example(per_unit), reduction)


def kl_normal_normal(mu_q: Tensor, logvar_q: Tensor, mu_p: Tensor, logvar_p: Tensor,
                     reduction: str = "none") -> Tensor:
    """KL( N(mu_q, diag sigma_q^2) || N(mu_p, diag sigma_p^2) ), one value per example.

        KL = 1/2 sum_j ( log sigma_p^2 - log sigma_q^2
                         + (sigma_q^2 + (mu_q - mu_p)^2) / sigma_p^2 - 1 )

    The prior may itself be produced by a network (the top-down path of a hierarchical VAE);
    gradients flow into both distributions. With mu_p = 0, logvar_p = 0 this is
    ``kl_normal_standard_normal``.
    """
    var_ratio = (logvar_q - logvar_p).exp()                       # sigma_q^2 / sigma_p^2
    diff = mu_q - mu_p
    per_unit = (logvar_p - logvar_q + var_ratio + diff * diff * (-logvar_p).exp() - 1.0) * 0.5
    return _reduce(sum_per_example(per_unit), reduction)


def gaussian_log_prob(x: Tensor, mu: Tensor, logvar: Any = 0.0, reduction: str = "none") -> Tensor:
    """log N(x; mu, diag sigma^2), summed over every axis but the batch axis.

        log N(x; mu, sigma^2) = -1/2 sum_j ( log 2 pi + log sigma_j^2 + (x_j - mu_j)^2 / sigma_j^2 )

    ``logvar`` is a tensor broadcastable to ``x`` (a learned or predicted variance) or a number
    (a fixed variance; 0 means sigma = 1).
    """
    diff = x - mu
    if isinstance(logvar, Tensor):
        # a shared log-variance (a scalar, or one per pixel) broadcasts against diff, so it
        # is counted once per unit as the formula says
        per_unit = (logvar + diff * diff * (-logvar).exp() + _LOG_2PI) * -0.5
    else:
        lv = float(logvar)
        per_unit = (diff * diff * math.exp(-lv) + (lv + _LOG_2PI)) * -0.5
    return _reduce(sum_per_example(per_unit), reduction)


def standard_normal_log_prob(z: Tensor, reduction: str = "none") -> Tensor:
    """log N(z; 0, I) = -1/2 sum_j ( log 2 pi + z_j^2 ), the log-density of the VAE's prior."""
    return _reduce(sum_per_example((z * z + _LOG_2PI) * -0.5), reduction)


def bernoulli_log_prob_with_logits(x: Tensor, logits: Tensor, reduction: str = "none") -> Tensor:
    """log Bernoulli(x; sigmoid(logits)), summed over every axis but the batch axis.

        log p(x | l) = sum_j x_j log s(l_j) + (1 - x_j) log(1 - s(l_j))  = -BCE(l, x)

    (Kingma & Welling 2014, appendix C.1.) Computed from the logits, never through an explicit
    sigmoid followed by a log, so it stays finite for saturated outputs. ``x`` may be any value
    in [0, 1] (MNIST intensities, as the classic PyTorch example uses them), in which case
    this is the negative cross-entropy rather than a normalized log-probability.
    """
    per_unit = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return _reduce(-sum_per_example(per_unit), reduction)


def reparameterize(mu: Tensor, logvar: Tensor, eps: Tensor | None = None) -> Tensor:
    """A sample of N(mu, diag sigma^2) that gradients can flow through:

        z = mu + sigma * eps,   sigma = exp(logvar / 2),   eps ~ N(0, I)

    (Kingma & Welling 2014, section 2.4.) sigma is exp(0.5 * logvar) -- the square root of the
    variance -- not exp(logvar). ``eps`` defaults to fresh noise from the device's generator
    (``sg.manual_seed`` makes it repeatable); pass it to reuse the same noise.
    """
    if eps is None:
        eps = sg.randn(mu.shape, dtype=mu.dtype, device=mu.device)
    std = (logvar * 0.5).exp()
    return mu + std * eps
