"""Soft-IntroVAE: IntroVAE with the hinge replaced by a smooth exponential of the ELBO.

T. Daniel, A. Tamar, "Soft-IntroVAE: Analyzing and Improving the Introspective Variational
Autoencoder", CVPR 2021 (arXiv:2012.13253). Official code: github.com/taldatech/
soft-intro-vae-pytorch (``soft_intro_vae/train_soft_intro_vae.py`` for images,
``soft_intro_vae_2d/train_soft_intro_vae_2d.py`` for 2-D data); this file follows that code line
by line, including which tensors are detached.

With ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z)), the paper's objectives for a real x and a
fake D(z), z ~ p(z), are (both maximized; alpha > 0 and gamma >= 0 are hyperparameters):

    encoder:   L_E(x, z) = ELBO(x) - (1/alpha) exp(alpha ELBO(D(z)))
    decoder:   L_D(x, z) = ELBO(x) + gamma ELBO(D(z))

The encoder raises the ELBO of real data and lowers that of fakes, softly: exp(alpha ELBO) of
a fake is already tiny once its ELBO is very negative, so, unlike IntroVAE's hinge, there is no
margin to tune. The decoder raises the ELBO of both (it wants its fakes to look real to E).

In practice (the code, with a Gaussian decoder whose log-likelihood is a squared error) every
ELBO is written with weights and divided by the data dimension. For a batch, with

    rec(x, y)  = sum_pixels (x - y)^2  (per example),   KL(x) = KL(q(z|x) || N(0, I)),
    s          = scale = 1 / (C H W)   (the code's ``scale``; 1/2 for 2-D points),
    fakes      x_f = D(z_f), z_f ~ N(0, I), and reconstructions x_r = D(z), z ~ q(z|x)
               (the code treats reconstructions as fakes too),

the encoder minimizes

    L_E = s (beta_rec rec(x, x_r) + beta_kl KL(x))                        averaged over the batch
        + 1/2 sum_{f in {x_r, x_f}} 1/2 mean_batch exp(-2 s (beta_rec rec(f, D(E(f))) + beta_neg KL(f)))

(the 1/alpha exp(alpha ELBO) with alpha = 2, the two fake kinds averaged: 0.25 in the code), and
the decoder minimizes

    L_D = s (beta_rec rec(x, x_r) + beta_kl 1/2 (KL(x_r) + KL(x_f))
             + gamma_r beta_rec 1/2 (rec(x_r, D(E(x_r))) + rec(x_f, D(E(x_f))))).

beta_neg weighs the fakes' KL in the exponential (large for images: 256 for MNIST/CIFAR-10),
gamma_r the decoder's reconstruction of fakes (1e-8 in the code: almost off). Gradients, as the
code (``SoftIntroVAETrainStep`` does the same, and the tests check it):

* encoder step (decoder frozen): the fakes enter the encoder detached, E(ng(x_f)), E(ng(x_r));
  their re-reconstructions D(z') carry gradient to E through z'; the *target* x_r of
  rec(x_r, D(E(x_r))) is not detached in the code, so that term also reaches E through x_r.
* decoder step (encoder frozen): x_r = D(ng(z)) from the encoder step's z; the fakes' KLs reach
  D through the frozen encoder; the fakes' reconstructions decode ng(z') and compare with
  ng(x_r), ng(x_f), so only the second decoding pass of those terms trains D.

Encoder and decoder have separate Adam optimizers (lr 2e-4), and an optional warm-up of plain
VAE steps (``vae_warmup_steps``, the code's ``num_vae``: 2000 iterations on 2-D data) trains both
on beta_rec rec + beta_kl KL first.

2-D toy data (the code's ``soft_intro_vae_2d``): MLP encoder/decoder with ``n_layers=3`` hidden
layers of 256 after the input layer (ReLU), z_dim = 2, batch 512, 30,000 iterations with the
learning rate divided by 10 at 10,000 and 15,000, and per data set (the code's
``chosen_hyperparams``, also its README)::

    8Gaussians    beta_kl 0.3  beta_rec 0.2  beta_neg 0.9
    2spirals      beta_kl 0.5  beta_rec 0.2  beta_neg 1.0
    checkerboard  beta_kl 0.1  beta_rec 0.2  beta_neg 0.2
    rings         beta_kl 0.2  beta_rec 0.2  beta_neg 1.0

(``TOY_HYPERPARAMETERS`` below). Images (the code's ``__main__``): beta_kl 1, beta_rec 1,
beta_neg 256, z_dim 32 for MNIST, batch 128.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import scratchgen as sg
import scratchgen.nn as nn
from scratchgen.autograd import Tensor
from scratchgen.losses.kl import kl_normal_standard_normal, reparameterize
from scratchgen.models.intro_vae import IntroVAE, stop_gradient
from scratchgen.models.steps import split_batch, step_optimizers, step_with_frozen
from scratchgen.optim import Adam
from scratchgen.optim.lr_scheduler import LambdaLR

__all__ = ["MLPEncoder", "MLPDecoder", "SoftIntroVAE", "SoftIntroVAETrainStep",
           "reconstruction_error", "TOY_HYPERPARAMETERS", "elbo_density"]

#: The official 2-D settings (soft_intro_vae_2d/train_soft_intro_vae_2d.py, README table).
TOY_HYPERPARAMETERS: dict[str, dict[str, float]] = {
    "ring": {"beta_kl": 0.3, "beta_rec": 0.2, "beta_neg": 0.9},
    "spirals": {"beta_kl": 0.5, "beta_rec": 0.2, "beta_neg": 1.0},
    "checkerboard": {"beta_kl": 0.1, "beta_rec": 0.2, "beta_neg": 0.2},
    "rings": {"beta_kl": 0.2, "beta_rec": 0.2, "beta_neg": 1.0},
}


def reconstruction_error(x: Tensor, y: Tensor) -> Tensor:
    """rec(x, y) = sum over every axis but the batch axis of (x - y)^2: shape (N,). (The code's
    ``calc_reconstruction_loss(..., 'mse', reduction='none')`` summed per example.)"""
    d = (y - x).reshape(x.shape[0], -1)
    return (d * d).sum(axis=1)


# ---- networks for 2-D data ---------------------------------------------------------------------

def _mlp(n_in: int, n_out: int, n_layers: int, hidden: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(n_in, hidden), nn.ReLU()]
    for _ in range(n_layers):
        layers += [nn.Linear(hidden, hidden), nn.ReLU()]
    layers.append(nn.Linear(hidden, n_out))
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """x (N, x_dim) -> (mu, logvar) (N, z_dim): Linear-ReLU, ``n_layers`` x (Linear-ReLU), Linear."""

    def __init__(self, x_dim: int = 2, z_dim: int = 2, n_layers: int = 3, hidden: int = 256) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.main = _mlp(x_dim, 2 * z_dim, n_layers, hidden)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = self.main(x.reshape(x.shape[0], -1))
        return out[:, :self.z_dim], out[:, self.z_dim:]


class MLPDecoder(nn.Module):
    """z (N, z_dim) -> x (N, x_dim), the mirror of ``MLPEncoder`` (linear output)."""

    def __init__(self, x_dim: int = 2, z_dim: int = 2, n_layers: int = 3, hidden: int = 256) -> None:
        super().__init__()
        self.main = _mlp(z_dim, x_dim, n_layers, hidden)

    def forward(self, z: Tensor) -> Tensor:
        return self.main(z)


class SoftIntroVAE(IntroVAE):
    """Encoder and decoder of a Soft-IntroVAE (losses and updates: ``SoftIntroVAETrainStep``).

    ``SoftIntroVAE.toy(z_dim=2)`` builds the 2-D MLPs; otherwise the IntroVAE convolutional
    networks with the Soft-IntroVAE residual block (BN before the skip sum). The methods are
    ``IntroVAE``'s: ``encode``, ``decode``, ``forward(x) -> (mu, logvar, z, rec)``,
    ``sample(n)``, ``reconstruct(x)``.
    """

    def __init__(self, in_channels: int = 1, z_dim: int = 32, channels: Sequence[int] = (32, 64),
                 image_size: int = 16, encoder: nn.Module | None = None,
                 decoder: nn.Module | None = None) -> None:
        super().__init__(in_channels, z_dim, channels, image_size, encoder, decoder,
                         norm_after_add=False)

    @classmethod
    def toy(cls, x_dim: int = 2, z_dim: int = 2, n_layers: int = 3, hidden: int = 256
            ) -> "SoftIntroVAE":
        """The official 2-D model: MLPs with ``n_layers`` hidden layers of ``hidden`` units."""
        return cls(z_dim=z_dim, encoder=MLPEncoder(x_dim, z_dim, n_layers, hidden),
                   decoder=MLPDecoder(x_dim, z_dim, n_layers, hidden))


def elbo_density(model: SoftIntroVAE, x: Tensor, beta_kl: float = 1.0,
                 beta_rec: float = 1.0) -> Tensor:
    """The unnormalized density the official 2-D code plots:
    exp(-(beta_kl KL(q(z|x) || p(z)) + beta_rec rec(x, D(mu(x))))), i.e. exp(ELBO) with the
    reconstruction at the posterior mean, up to a constant. Shape (N,)."""
    mu, logvar = model.encode(x)
    rec = model.decode(mu)
    kl = kl_normal_standard_normal(mu, logvar)
    return (-(kl * beta_kl + reconstruction_error(x, rec) * beta_rec)).exp()


class SoftIntroVAETrainStep:
    """One Soft-IntroVAE iteration per call: an encoder Adam step on L_E, then a decoder Adam
    step on L_D (see the module docstring for both losses and the stop-gradients).

    Args:
        model: a ``SoftIntroVAE``.
        beta_rec, beta_kl, beta_neg, gamma_r: the code's weights.
        scale: s, the ELBO normalization; ``None`` means 1 / (number of values per example),
            computed from the first batch (1/(C H W) for images, 1/2 for 2-D points).
        lr_e, lr_d: Adam learning rates (2e-4 in the code); ``milestones``: iterations at which
            both are divided by 10 (the 2-D code uses (10000, 15000)).
        vae_warmup_steps: plain-VAE iterations first (beta_rec rec + beta_kl KL on both nets).
    """

    def __init__(self, model: SoftIntroVAE, beta_rec: float = 1.0, beta_kl: float = 1.0,
                 beta_neg: float = 256.0, gamma_r: float = 1e-8, scale: float | None = None,
                 lr_e: float = 2e-4, lr_d: float = 2e-4, milestones: Sequence[int] = (),
                 vae_warmup_steps: int = 0) -> None:
        self.model = model
        self.beta_rec, self.beta_kl = float(beta_rec), float(beta_kl)
        self.beta_neg, self.gamma_r = float(beta_neg), float(gamma_r)
        self.scale = scale
        self.opt_e = Adam(model.encoder.parameters(), lr=lr_e)
        self.opt_d = Adam(model.decoder.parameters(), lr=lr_d)
        ms = sorted(int(m) for m in milestones)
        decay = (lambda it: 0.1 ** sum(it >= m for m in ms))
        self.sched_e = LambdaLR(self.opt_e, decay)
        self.sched_d = LambdaLR(self.opt_d, decay)
        self.vae_warmup_steps = int(vae_warmup_steps)
        self.steps_done = 0

    def _scale(self, x: Tensor) -> float:
        if self.scale is None:
            self.scale = 1.0 / (x.size // x.shape[0])
        return float(self.scale)

    # ---- the losses -----------------------------------------------------------------------------
    def encoder_loss(self, x: Tensor, eps: Tensor | None = None, noise: Tensor | None = None,
                     eps_rec: Tensor | None = None, eps_fake: Tensor | None = None,
                     ng: dict[str, Tensor] | None = None) -> tuple[Tensor, dict[str, Any]]:
        """L_E for a batch (lossE in the code). ``eps`` (x's reparameterization noise),
        ``noise`` (z_f ~ N(0, I)) and ``eps_rec`` / ``eps_fake`` (the fakes' reparameterization
        noise) are drawn fresh when None. Returns (L_E, parts); parts["z"] and parts["noise"]
        are reused by the decoder step, parts["ng"] holds the stop-gradient values.

        ``ng`` gives values for the stop-gradient tensors (keys ``"fake"``, ``"rec"``), as in
        ``IntroVAETrainStep.encoder_loss``: for gradient checks at a fixed base point."""
        m, s = self.model, self._scale(x)
        n = x.shape[0]
        if noise is None:
            noise = sg.randn(n, m.z_dim, dtype=x.dtype, device=x.device)
        fake = m.decode(noise)                                         # x_f = D(z_f)
        mu, logvar = m.encode(x)
        z = reparameterize(mu, logvar, eps)
        rec = m.decode(z)                                              # x_r = D(z), z ~ q(z|x)
        loss_rec = reconstruction_error(x, rec).mean()
        kl_real = kl_normal_standard_normal(mu, logvar, reduction="mean")
        # the fakes enter the encoder detached; their re-reconstructions carry gradient to E
        fake_ng = stop_gradient(fake, "fake", ng)
        rec_ng = stop_gradient(rec, "rec", ng)
        fmu, flv, _, rec_fake = m(fake_ng, eps=eps_fake)
        rmu, rlv, _, rec_rec = m(rec_ng, eps=eps_rec)
        kl_fake = kl_normal_standard_normal(fmu, flv)                  # (N,)
        kl_rec = kl_normal_standard_normal(rmu, rlv)
        # as the code: the targets ``fake`` and ``rec`` are not detached here
        rec_err_fake = reconstruction_error(fake, rec_fake)
        rec_err_rec = reconstruction_error(rec, rec_rec)
        # (1/alpha) exp(alpha ELBO(fake)), alpha = 2, ELBO written as -s(beta_rec rec + beta_neg KL)
        exp_elbo_fake = (-2.0 * s * (self.beta_rec * rec_err_fake + self.beta_neg * kl_fake)).exp().mean()
        exp_elbo_rec = (-2.0 * s * (self.beta_rec * rec_err_rec + self.beta_neg * kl_rec)).exp().mean()
        loss_real = s * (self.beta_rec * loss_rec + self.beta_kl * kl_real)    # -s ELBO(x)
        loss = loss_real + 0.25 * (exp_elbo_fake + exp_elbo_rec)
        return loss, {"rec": loss_rec, "kl_real": kl_real, "exp_elbo_fake": exp_elbo_fake,
                      "exp_elbo_rec": exp_elbo_rec, "z": z, "noise": noise,
                      "ng": {"fake": fake_ng, "rec": rec_ng}}

    def decoder_loss(self, x: Tensor, z: Tensor, noise: Tensor, eps_rec: Tensor | None = None,
                     eps_fake: Tensor | None = None, ng: dict[str, Tensor] | None = None
                     ) -> tuple[Tensor, dict[str, Any]]:
        """L_D for a batch (lossD in the code), given the encoder step's z and noise (both
        constants here). ``ng``: values for the stop-gradient tensors (keys ``"rec"``,
        ``"fake"``, ``"z_rec"``, ``"z_fake"``), for gradient checks; parts["ng"] returns them."""
        m, s = self.model, self._scale(x)
        fake = m.decode(noise.detach())                                # x_f = D(z_f)
        rec = m.decode(z.detach())                                     # x_r = D(ng(z))
        loss_rec = reconstruction_error(x, rec).mean()
        rmu, rlv = m.encode(rec)                                       # through the frozen E
        fmu, flv = m.encode(fake)
        z_rec = reparameterize(rmu, rlv, eps_rec)
        z_fake = reparameterize(fmu, flv, eps_fake)
        frozen = {"rec": stop_gradient(rec, "rec", ng), "fake": stop_gradient(fake, "fake", ng),
                  "z_rec": stop_gradient(z_rec, "z_rec", ng),
                  "z_fake": stop_gradient(z_fake, "z_fake", ng)}
        rec_rec = m.decode(frozen["z_rec"])
        rec_fake = m.decode(frozen["z_fake"])
        loss_rec_rec = reconstruction_error(frozen["rec"], rec_rec).mean()
        loss_rec_fake = reconstruction_error(frozen["fake"], rec_fake).mean()
        kl_rec = kl_normal_standard_normal(rmu, rlv, reduction="mean")
        kl_fake = kl_normal_standard_normal(fmu, flv, reduction="mean")
        loss = s * (self.beta_rec * loss_rec + 0.5 * self.beta_kl * (kl_rec + kl_fake)
                    + self.gamma_r * 0.5 * self.beta_rec * (loss_rec_rec + loss_rec_fake))
        return loss, {"rec": loss_rec, "kl_rec": kl_rec, "kl_fake": kl_fake, "ng": frozen}

    def vae_loss(self, x: Tensor, eps: Tensor | None = None) -> Tensor:
        """The warm-up objective of the code: beta_rec rec + beta_kl KL (no scale)."""
        mu, logvar, _, rec = self.model(x, eps=eps)
        return (self.beta_rec * reconstruction_error(x, rec).mean()
                + self.beta_kl * kl_normal_standard_normal(mu, logvar, reduction="mean"))

    # ---- the updates ----------------------------------------------------------------------------
    def encoder_update(self, x: Tensor) -> dict[str, Any]:
        """The code's "Update E": Adam step of E on L_E with D frozen (D's ``.grad`` stays None)."""
        loss, parts = step_with_frozen(lambda: self.encoder_loss(x), self.opt_e,
                                        self.model.encoder, self.model.decoder)
        parts["loss_e"] = loss
        return parts

    def decoder_update(self, x: Tensor, z: Tensor, noise: Tensor) -> dict[str, Any]:
        """The code's "Update D": Adam step of D on L_D with E frozen (E's ``.grad`` is cleared
        and stays None)."""
        loss, parts = step_with_frozen(lambda: self.decoder_loss(x, z, noise), self.opt_d,
                                        self.model.decoder, self.model.encoder)
        parts["loss_d"] = loss
        return parts

    def step(self, batch: Any) -> dict[str, float]:
        x, _ = split_batch(batch, next(iter(self.model.parameters())))
        self.model.train()
        if self.steps_done < self.vae_warmup_steps:
            loss = self.vae_loss(x)
            step_optimizers(loss, self.opt_e, self.opt_d)
            out = {"loss_vae": loss.item()}
        else:
            pe = self.encoder_update(x)
            pd = self.decoder_update(x, pe["z"], pe["noise"])
            out = {"loss_e": pe["loss_e"].item(), "loss_d": pd["loss_d"].item(),
                   "rec": pe["rec"].item(), "kl_real": pe["kl_real"].item(),
                   "kl_fake": pd["kl_fake"].item(), "kl_rec": pd["kl_rec"].item(),
                   "exp_elbo_fake": pe["exp_elbo_fake"].item(),
                   "exp_elbo_rec": pe["exp_elbo_rec"].item()}
        self.steps_done += 1
        self.sched_e.step()
        self.sched_d.step()
        if not all(math.isfinite(v) for v in out.values()):
            raise FloatingPointError(f"Soft-IntroVAE losses are not finite: {out}")
        return out

    __call__ = step

    def state_dict(self) -> dict[str, Any]:
        return {"steps_done": self.steps_done, "scale": self.scale,
                "opt_e": self.opt_e.state_dict(), "opt_d": self.opt_d.state_dict(),
                "sched_e": self.sched_e.state_dict(), "sched_d": self.sched_d.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps_done = int(state["steps_done"])
        self.scale = state["scale"]
        self.opt_e.load_state_dict(state["opt_e"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.sched_e.load_state_dict(state["sched_e"])
        self.sched_d.load_state_dict(state["sched_d"])
