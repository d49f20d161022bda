"""The terms of the evidence lower bound (ELBO) and its weighted variants.

For one data point x, an encoder q(z|x) and a decoder p(x|z) with prior p(z),

    log p(x) >= ELBO(x) = E_{q(z|x)}[ log p(x|z) ] - KL( q(z|x) || p(z) )

(Kingma & Welling 2014, eq. 3). With the Gaussian encoder the KL has a closed form
(``kl.kl_normal_standard_normal``) and the expectation is estimated with reparameterized
samples z = mu + sigma * eps (their eq. 10). Everything here is per example -- summed over
pixels and latent units, shape (N,) -- so that a loss reads "nats per image".

Variants:

* beta-VAE (Higgins et al. 2017, eq. 4):  E_q[log p(x|z)] - beta KL, beta > 1 presses the
  posterior towards the factorized prior (disentangling), beta < 1 favours reconstruction.
* Capacity annealing (Burgess et al. 2018, "Understanding disentangling in beta-VAE", their
  section "Improving disentangling in beta-VAE with controlled capacity increase"):
  E_q[log p(x|z)] - gamma |KL - C|, with the target capacity C (nats) raised linearly from 0
  to C_max over training, so the latent channel is opened a little at a time.
"""
from __future__ import annotations

from typing import Any

from scratchgen.autograd import Tensor
from scratchgen.losses.kl import bernoulli_log_prob_with_logits, gaussian_log_prob

__all__ = [
    "bernoulli_reconstruction", "gaussian_reconstruction", "reconstruction_log_likelihood",
    "elbo", "negative_elbo", "linear_capacity", "CapacitySchedule", "capacity_objective",
]


def bernoulli_reconstruction(x: Tensor, logits: Tensor) -> Tensor:
    """log p(x|z) per image for a Bernoulli decoder that outputs logits: minus the binary
    cross-entropy summed over pixels, shape (N,). (Kingma & Welling 2014, appendix C.1.)"""
    return bernoulli_log_prob_with_logits(x, logits)


def gaussian_reconstruction(x: Tensor, mean: Tensor, logvar: Any = 0.0) -> Tensor:
    """log p(x|z) per image for a Gaussian decoder N(x; mean, sigma^2 I), shape (N,):

        -1/2 sum_pixels ( log 2 pi + log sigma^2 + (x - mean)^2 / sigma^2 )

    ``logvar`` is a number for a fixed variance (0: sigma = 1, so the loss is half the summed
    squared error plus a constant), or a Tensor for a learned one -- a scalar shared by all
    pixels, one per pixel, or one per pixel and image. (Kingma & Welling 2014, appendix C.2.)
    """
    return gaussian_log_prob(x, mean, logvar)


def reconstruction_log_likelihood(x: Tensor, params: Tensor, likelihood: str = "bernoulli",
                                  logvar: Any = 0.0) -> Tensor:
    """log p(x|z) per image, for ``likelihood`` ``"bernoulli"`` (``params`` are logits) or
    ``"gaussian"`` (``params`` is the mean, ``logvar`` the log-variance)."""
    if likelihood == "bernoulli":
        return bernoulli_reconstruction(x, params)
    if likelihood == "gaussian":
        return gaussian_reconstruction(x, params, logvar)
    raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}")


def elbo(log_px_given_z: Tensor, kl: Tensor, beta: float = 1.0) -> Tensor:
    """ELBO per example: log p(x|z) - beta * KL(q(z|x) || p(z)).

    beta = 1 is the evidence lower bound itself (Kingma & Welling 2014, eq. 3 and 10); other
    values give the beta-VAE objective (Higgins et al. 2017, eq. 4), which is a bound on
    log p(x) only for beta >= 1.
    """
    if log_px_given_z.shape != kl.shape:
        raise ValueError(f"elbo: log p(x|z) {log_px_given_z.shape} and KL {kl.shape} must both "
                         "be per example, shape (N,)")
    return log_px_given_z - kl * float(beta)


def negative_elbo(log_px_given_z: Tensor, kl: Tensor, beta: float = 1.0) -> Tensor:
    """The loss to minimize: the batch mean of -ELBO, i.e. nats per example (a scalar)."""
    return -elbo(log_px_given_z, kl, beta).mean()


def linear_capacity(step: int, c_max: float, num_steps: int, c_start: float = 0.0) -> float:
    """The capacity C at ``step``: raised linearly from ``c_start`` to ``c_max`` nats over
    ``num_steps`` steps, then held at ``c_max`` (Burgess et al. 2018, the controlled capacity
    increase)."""
    if num_steps <= 0:
        return float(c_max)
    frac = min(max(step, 0) / num_steps, 1.0)
    return float(c_start + (c_max - c_start) * frac)


class CapacitySchedule:
    """C(step) = c_start + (c_max - c_start) * min(step / num_steps, 1); call it with a step."""

    def __init__(self, c_max: float, num_steps: int, c_start: float = 0.0) -> None:
        if num_steps < 0:
            raise ValueError(f"num_steps must be >= 0, got {num_steps}")
        self.c_max, self.num_steps, self.c_start = float(c_max), int(num_steps), float(c_start)

    def __call__(self, step: int) -> float:
        return linear_capacity(step, self.c_max, self.num_steps, self.c_start)

    def __repr__(self) -> str:
        return (f"CapacitySchedule(c_max={self.c_max}, num_steps={self.num_steps}, "
                f"c_start={self.c_start})")


def capacity_objective(log_px_given_z: Tensor, kl: Tensor, gamma: float, capacity: float) -> Tensor:
    """Burgess et al.'s loss (the negative of their controlled-capacity objective), a scalar:

        -E[ log p(x|z) ] + gamma * | E[ KL(q(z|x) || p(z)) ] - C |

    The expectations are batch means. The KL is averaged over the batch *before* the absolute
    value: C is a capacity of the latent channel, an information quantity averaged over the
    data, so individual images may carry more or less than C nats (this is also what the
    common open implementations do).
    """
    if log_px_given_z.shape != kl.shape:
        raise ValueError(f"capacity_objective: log p(x|z) {log_px_given_z.shape} and KL "
                         f"{kl.shape} must both be per example, shape (N,)")
    return -log_px_given_z.mean() + (kl.mean() - float(capacity)).abs() * float(gamma)
