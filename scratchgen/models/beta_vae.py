"""beta-VAE and its capacity-annealed variant.

* I. Higgins, L. Matthey, A. Pal, C. Burgess, X. Glorot, M. Botvinick, S. Mohamed,
  A. Lerchner, "beta-VAE: Learning Basic Visual Concepts with a Constrained Variational
  Framework", ICLR 2017. The VAE's objective with the KL term weighted by beta (their eq. 4,
  which names it L: a lower bound on the Lagrangian F of the KL-constrained problem, F >= L
  for beta, epsilon >= 0):

      L(theta, phi; x, beta) = E_{q_phi(z|x)}[ log p_theta(x|z) ] - beta KL( q_phi(z|x) || p(z) )

  beta > 1 squeezes the information the code may carry about x and presses q(z|x) towards
  the isotropic prior, whose axes are independent: the units tend to align with independent
  factors of variation (disentangling), at the price of blurrier reconstructions. beta = 1 is
  the VAE.

* C. P. Burgess, I. Higgins, A. Pal, L. Matthey, N. Watters, G. Desjardins, A. Lerchner,
  "Understanding disentangling in beta-VAE", 2018 (arXiv:1804.03599). Instead of a fixed
  pressure, a target for the KL -- the capacity C of the latent channel, in nats -- raised
  linearly from 0 to C_max during training (the objective of their section "Improving
  disentangling in beta-VAE with controlled capacity increase"):

      L(theta, phi; x, C) = E_{q_phi(z|x)}[ log p_theta(x|z) ]
                            - gamma | KL( q_phi(z|x) || p(z) ) - C |

  gamma is large (1000 in the paper), so the KL tracks C closely; factors are encoded one at
  a time as the capacity grows, most important (for reconstruction) first.

Both reuse the VAE's networks and capabilities (``vae.VAE``); only the loss differs.
"""
from __future__ import annotations

from typing import Sequence

import scratchgen as sg
from scratchgen import nn
from scratchgen.autograd import Tensor
from scratchgen.losses.elbo import capacity_objective, linear_capacity
from scratchgen.models.vae import VAE

__all__ = ["BetaVAE", "CapacityVAE"]


class BetaVAE(VAE):
    """beta-VAE (Higgins et al. 2017): the VAE with ``beta * KL``. Same arguments as ``VAE``
    (``arch="conv"`` for the convolutional networks) plus ``beta``."""

    def __init__(self, image_shape: Sequence[int] = (1, 28, 28), z_dim: int = 10,
                 beta: float = 4.0, arch: str = "fc", hidden: int | None = None,
                 channels: Sequence[int] = (32, 64), likelihood: str = "bernoulli",
                 decoder_logvar: float | str = 0.0, encoder: nn.Module | None = None,
                 decoder: nn.Module | None = None) -> None:
        super().__init__(image_shape, z_dim, arch, hidden, channels, likelihood, decoder_logvar,
                         encoder, decoder)
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.beta = float(beta)

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """-L (eq. 4) per image as ``"loss"``; ``"neg_elbo"`` is the unweighted -ELBO (beta = 1),
        the number to compare with other models' bounds."""
        t = self.elbo_terms(x)
        objective = t["log_px"] - t["kl"] * self.beta            # eq. 4
        return {"loss": -objective.mean(), "recon": -t["log_px"].mean(), "kl": t["kl"].mean(),
                "neg_elbo": (t["kl"] - t["log_px"]).mean()}

    def extra_repr(self) -> str:
        return super().extra_repr() + f", beta={self.beta}"


class CapacityVAE(VAE):
    """beta-VAE with controlled capacity (Burgess et al. 2018): ``gamma * |KL - C|`` with C
    raised linearly from ``c_start`` to ``c_max`` nats over ``capacity_steps`` train steps.

    The step count is a buffer (``num_steps``), saved in ``state_dict()``, so a resumed run
    continues the schedule where it stopped. ``train_step`` advances it; ``loss(x)`` uses the
    capacity of the current step (``capacity()``), or ``loss(x, capacity=C)``.
    """

    def __init__(self, image_shape: Sequence[int] = (1, 28, 28), z_dim: int = 10,
                 gamma: float = 1000.0, c_max: float = 25.0, capacity_steps: int = 100_000,
                 c_start: float = 0.0, arch: str = "fc", hidden: int | None = None,
                 channels: Sequence[int] = (32, 64), likelihood: str = "bernoulli",
                 decoder_logvar: float | str = 0.0, encoder: nn.Module | None = None,
                 decoder: nn.Module | None = None) -> None:
        super().__init__(image_shape, z_dim, arch, hidden, channels, likelihood, decoder_logvar,
                         encoder, decoder)
        self.gamma, self.c_max, self.c_start = float(gamma), float(c_max), float(c_start)
        self.capacity_steps = int(capacity_steps)
        self.register_buffer("num_steps", sg.tensor(0))

    def capacity(self, step: int | None = None) -> float:
        """C at ``step`` (default: the steps taken so far), in nats."""
        step = int(self.num_steps.item()) if step is None else step
        return linear_capacity(step, self.c_max, self.capacity_steps, self.c_start)

    def loss(self, x: Tensor, capacity: float | None = None) -> dict[str, Tensor]:
        """-log p(x|z) + gamma |KL - C| (the negative of the capacity objective above, with the
        KL averaged over the batch before the absolute value) as ``"loss"``."""
        c = self.capacity() if capacity is None else float(capacity)
        t = self.elbo_terms(x)
        loss = capacity_objective(t["log_px"], t["kl"], self.gamma, c)  # Burgess et al.
        return {"loss": loss, "recon": -t["log_px"].mean(), "kl": t["kl"].mean(),
                "neg_elbo": (t["kl"] - t["log_px"]).mean(),
                "capacity": sg.tensor(c, dtype=loss.dtype, device=loss.device)}

    def after_step(self) -> None:
        """One more optimizer step taken (``TrainStep`` calls this): C moves along its
        schedule. The count is a buffer, so the schedule resumes with the weights."""
        self.num_steps.data = self.num_steps.data + 1

    def extra_repr(self) -> str:
        return (super().extra_repr() + f", gamma={self.gamma}, c_max={self.c_max}, "
                f"capacity_steps={self.capacity_steps}")

