"""IntroVAE: a VAE whose encoder also plays the discriminator.

H. Huang, Z. Li, R. He, Z. Sun, T. Tan, "IntroVAE: Introspective Variational Autoencoders for
Photographic Image Synthesis", NeurIPS 2018 (arXiv:1807.06358). Official code:
github.com/hhb072/IntroVAE.

The model is an ordinary VAE -- an encoder (inference network) E giving q(z|x) = N(mu, sigma^2)
and a generator (decoder) G -- with two losses built from the VAE's own terms:

    L_AE(x, x_r)  = 1/2 sum_pixels ||x_r - x||^2               (reconstruction, x_r = G(z), z ~ q(z|x))
    L_REG(z)      = KL(q(z|x) || N(0, I)) = 1/2 sum_j (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1)

The encoder acts as a discriminator whose "energy" is L_REG: it pushes the KL of real images
down and, up to a margin m, pushes the KL of generated images up; the generator tries to make
its images look real to the encoder, i.e. give them a small KL. With x_r = G(E(x)) the
reconstructions, x_p = G(z_p), z_p ~ N(0, I) the samples from the prior, and ng(.) a stop-gradient
(``detach``), the paper's encoder and generator losses are

    L_E = L_REG(Enc(x)) + alpha * sum_{s in {r, p}} [m - L_REG(Enc(ng(x_s)))]^+ + beta * L_AE
    L_G =                 alpha * sum_{s in {r, p}}      L_REG(Enc(x_s))       + beta * L_AE

and training alternates them as the paper's Algorithm 1 (lines 4-10 update E, lines 11-13 G;
the official code does the same, see below):

    Z <- Enc(X);  Z_p ~ N(0, I);  X_r <- Dec(Z),  X_p <- Dec(Z_p);  L_AE <- L_AE(X_r, X)
    Z_r <- Enc(ng(X_r)),  Z_pp <- Enc(ng(X_p))
    phi_E   <- phi_E   - eta grad_{phi_E}   (L_REG(Z) + alpha {[m - L_REG(Z_r)]^+ + [m - L_REG(Z_pp)]^+} + beta L_AE)
    Z_r <- Enc(X_r),  Z_pp <- Enc(X_p)          (no stop-gradient now: G learns through E)
    theta_G <- theta_G - eta grad_{theta_G} (alpha {L_REG(Z_r) + L_REG(Z_pp)} + beta L_AE)

Which gradients go where (``IntroVAETrainStep`` enforces it, and the tests check it):

* encoder step: G's parameters are frozen (``requires_grad_(False)``), so L_E updates only E;
  the stop-gradient ng(X_s) means the hinge terms reach E only through Enc(.), never through
  the generated images; beta L_AE still reaches E through X_r = G(z), z = mu + sigma eps.
* generator step: E's parameters are frozen; the KL of Enc(X_s) reaches G through E (E acts
  as a fixed discriminator). X_r is recomputed as G(ng(Z)) from the same Z (and X_p from the
  same Z_p), so the gradient of beta L_AE for G is the algorithm's and no gradient can leak into
  E's freshly updated weights.

Details that follow the official code: L_REG is summed over latent units and averaged over the
batch *before* the hinge ([m - mean_batch KL]^+); E and G have their own Adam optimizers; an
optional warm-up of plain VAE steps (``vae_warmup_steps``, the code's ``num_vae``) trains both
on beta L_AE + L_REG first. The code writes alpha as ``0.5 * weight_neg * weight_kl`` for the
encoder and ``0.5 * weight_kl`` for the generator and L_AE without the 1/2; we keep the paper's
single alpha and its 1/2 (for the paper's CelebA-HQ 256 setting the script run_256.sh uses
m = 120, weight_rec = 0.05, weight_kl = 1, weight_neg = 0.5, Adam lr 2e-4). The code gets the
generator's beta L_AE gradient by not zeroing G's gradients between the encoder's backward and
the generator's; recomputing X_r = G(ng(Z)) as we do gives the same gradient for G.

The networks are the IntroVAE ones, scaled down: a 5x5 convolution, then residual blocks with
average pooling, a linear layer to (mu, log sigma^2); the generator mirrors it with nearest
upsampling and ends in a 5x5 convolution with no output nonlinearity (as the official code).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import scratchgen as sg
import scratchgen.functional as F
import scratchgen.nn as nn
from scratchgen.autograd import Tensor
from scratchgen.losses.kl import kl_normal_standard_normal, reparameterize
from scratchgen.models.steps import split_batch, step_optimizers, step_with_frozen
from scratchgen.optim import Adam

__all__ = ["ResidualBlock", "IntroEncoder", "IntroDecoder", "IntroVAE", "IntroVAETrainStep",
           "l_reg", "l_ae", "stop_gradient"]


# ---- the two terms everything is built from ---------------------------------------------------

def l_reg(mu: Tensor, logvar: Tensor) -> Tensor:
    """L_REG = KL(N(mu, sigma^2) || N(0, I)), summed over latent units, averaged over the batch."""
    return kl_normal_standard_normal(mu, logvar, reduction="mean")


def l_ae(x: Tensor, x_rec: Tensor) -> Tensor:
    """L_AE = 1/2 sum_pixels (x_r - x)^2, averaged over the batch (the paper's Gaussian
    log-likelihood up to a constant)."""
    d = (x_rec - x).reshape(x.shape[0], -1)
    return (d * d).sum(axis=1).mean() * 0.5


# ---- networks -----------------------------------------------------------------------------------

class ResidualBlock(nn.Module):
    """The IntroVAE residual block: y = act(BN(conv3x3(act(BN(conv3x3(x))))) + skip(x)).

    ``skip`` is a 1x1 convolution when the channel count changes. ``norm_after_add=True`` is the
    IntroVAE code (BN applied to the sum); ``False`` is the Soft-IntroVAE code's variant (BN on
    the residual branch only, then the sum).
    """

    def __init__(self, in_channels: int, out_channels: int, norm_after_add: bool = True) -> None:
        super().__init__()
        self.expand = (nn.Conv2d(in_channels, out_channels, 1, 1, 0, bias=False)
                       if in_channels != out_channels else None)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.norm_after_add = norm_after_add

    def forward(self, x: Tensor) -> Tensor:
        skip = self.expand(x) if self.expand is not None else x
        h = F.leaky_relu(self.bn1(self.conv1(x)), 0.2)
        h = self.conv2(h)
        if self.norm_after_add:
            return F.leaky_relu(self.bn2(h + skip), 0.2)
        return F.leaky_relu(self.bn2(h) + skip, 0.2)


class IntroEncoder(nn.Module):
    """x (N, C, S, S) -> (mu, logvar), each (N, z_dim).

    conv5x5 -> BN -> LeakyReLU -> AvgPool, then for each further entry of ``channels`` a residual
    block and an AvgPool, a last residual block, and a linear layer on the flattened map (of side
    S / 2^len(channels)).
    """

    def __init__(self, in_channels: int = 1, z_dim: int = 32, channels: Sequence[int] = (32, 64),
                 image_size: int = 16, norm_after_add: bool = True) -> None:
        super().__init__()
        self.z_dim = z_dim
        side = image_size // 2 ** len(channels)
        if side < 1 or image_size % 2 ** len(channels):
            raise ValueError(f"image_size {image_size} must be divisible by 2^{len(channels)}")
        cc = channels[0]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, cc, 5, 1, 2, bias=False),
                                   nn.BatchNorm2d(cc), nn.LeakyReLU(0.2), nn.AvgPool2d(2)]
        for ch in channels[1:]:
            layers += [ResidualBlock(cc, ch, norm_after_add), nn.AvgPool2d(2)]
            cc = ch
        layers.append(ResidualBlock(cc, cc, norm_after_add))
        self.main = nn.Sequential(*layers)
        self.fc = nn.Linear(cc * side * side, 2 * z_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.main(x)
        out = self.fc(h.reshape(x.shape[0], -1))
        return out[:, :self.z_dim], out[:, self.z_dim:]


class IntroDecoder(nn.Module):
    """z (N, z_dim) -> image (N, C, S, S): linear + ReLU to a (channels[-1], S/2^k, S/2^k) map,
    then a residual block and a x2 nearest upsampling per entry of ``channels`` (last first), a
    residual block and a 5x5 convolution to C channels (no output nonlinearity)."""

    def __init__(self, out_channels: int = 1, z_dim: int = 32, channels: Sequence[int] = (32, 64),
                 image_size: int = 16, norm_after_add: bool = True) -> None:
        super().__init__()
        self.side = image_size // 2 ** len(channels)
        if self.side < 1 or image_size % 2 ** len(channels):
            raise ValueError(f"image_size {image_size} must be divisible by 2^{len(channels)}")
        cc = channels[-1]
        self.c0 = cc
        self.fc = nn.Linear(z_dim, cc * self.side * self.side)
        layers: list[nn.Module] = []
        for ch in list(channels)[::-1]:
            layers += [ResidualBlock(cc, ch, norm_after_add), nn.Upsample(scale_factor=2)]
            cc = ch
        layers += [ResidualBlock(cc, cc, norm_after_add), nn.Conv2d(cc, out_channels, 5, 1, 2)]
        self.main = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        h = F.relu(self.fc(z)).reshape(z.shape[0], self.c0, self.side, self.side)
        return self.main(h)


class IntroVAE(nn.Module):
    """Encoder E and generator G of IntroVAE (the losses and updates are ``IntroVAETrainStep``).

    ``encode(x) -> (mu, logvar)``, ``decode(z) -> x``, ``forward(x) -> (mu, logvar, z, x_r)``,
    ``sample(n)`` draws x = G(z), z ~ N(0, I); ``reconstruct(x)`` decodes the posterior mean.
    ``encoder`` / ``decoder`` may be any modules with those signatures (the Soft-IntroVAE toy
    MLPs, say).
    """

    def __init__(self, in_channels: int = 1, z_dim: int = 32, channels: Sequence[int] = (32, 64),
                 image_size: int = 16, encoder: nn.Module | None = None,
                 decoder: nn.Module | None = None, norm_after_add: bool = True) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.encoder = encoder if encoder is not None else IntroEncoder(
            in_channels, z_dim, channels, image_size, norm_after_add)
        self.decoder = decoder if decoder is not None else IntroDecoder(
            in_channels, z_dim, channels, image_size, norm_after_add)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    def forward(self, x: Tensor, deterministic: bool = False,
                eps: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        mu, logvar = self.encode(x)
        z = mu if deterministic else reparameterize(mu, logvar, eps)
        return mu, logvar, z, self.decode(z)

    def sample(self, n: int, device: Any = None, dtype: Any = None) -> Tensor:
        """n images G(z), z ~ N(0, I) (call under ``sg.no_grad()`` and ``eval()`` to sample)."""
        p = next(iter(self.parameters()))
        z = sg.randn(n, self.z_dim, dtype=dtype or p.dtype, device=device or p.device)
        return self.decode(z)

    def reconstruct(self, x: Tensor) -> Tensor:
        """G(mu(x)): the reconstruction from the posterior mean."""
        return self.forward(x, deterministic=True)[3]


def stop_gradient(t: Tensor, name: str, ng: dict[str, Tensor] | None) -> Tensor:
    """ng(t): ``t.detach()``, or the value given for it in ``ng`` (see ``encoder_loss``)."""
    if ng is not None and name in ng:
        return ng[name].detach()
    return t.detach()


class IntroVAETrainStep:
    """One step of IntroVAE's Algorithm 1 per call: an encoder update on L_E, then a
    generator update on L_G, each with its own Adam.

    Args:
        model: an ``IntroVAE`` (anything with ``encoder``, ``decoder``, ``z_dim``).
        alpha, beta, margin: the paper's alpha (weight of the adversarial KL terms), beta (weight
            of L_AE) and m (the hinge margin, in nats).
        lr_e, lr_g, betas: Adam settings of E and G (the official code: 2e-4, PyTorch's
            default betas (0.9, 0.999)).
        vae_warmup_steps: this many plain-VAE steps first (beta L_AE + L_REG, both networks).

    ``step(batch)`` (also ``__call__``) returns a dict of floats: the losses, L_AE, the three
    KLs (real, reconstructions, samples). ``encoder_loss`` and ``generator_loss`` are the pure
    loss functions (given the noise), for gradient checks and for reading.
    """

    def __init__(self, model: IntroVAE, alpha: float = 0.25, beta: float = 1.0,
                 margin: float = 30.0, lr_e: float = 2e-4, lr_g: float = 2e-4,
                 betas: tuple[float, float] = (0.9, 0.999), vae_warmup_steps: int = 0) -> None:
        self.model = model
        self.alpha, self.beta, self.margin = float(alpha), float(beta), float(margin)
        self.opt_e = Adam(model.encoder.parameters(), lr=lr_e, betas=betas)
        self.opt_g = Adam(model.decoder.parameters(), lr=lr_g, betas=betas)
        self.vae_warmup_steps = int(vae_warmup_steps)
        self.steps_done = 0

    # ---- the losses, as the paper writes them ------------------------------------------------
    def encoder_loss(self, x: Tensor, eps: Tensor | None = None, z_p: Tensor | None = None,
                     ng: dict[str, Tensor] | None = None) -> tuple[Tensor, dict[str, Any]]:
        """The encoder loss L_E for a batch x, with reparameterization noise ``eps`` and prior
        samples ``z_p`` (fresh when None). Returns (L_E, parts); ``parts["z"]`` and
        ``parts["z_p"]`` are the latent codes used, which the generator step reuses, and
        ``parts["ng"]`` the values of the stop-gradient tensors ng(X_r), ng(X_p).

        ``ng`` replaces those values (keys ``"x_r"``, ``"x_p"``): a stop-gradient means "a
        constant equal to the current value", so a finite-difference gradient check passes the
        values at its base point and the function it differentiates is then exactly the one
        backward differentiates."""
        m = self.model
        mu, logvar = m.encode(x)
        z = reparameterize(mu, logvar, eps)
        if z_p is None:
            z_p = sg.randn(*z.shape, dtype=z.dtype, device=z.device)
        x_r = m.decode(z)                                   # X_r = Dec(Z)
        x_p = m.decode(z_p)                                 # X_p = Dec(Z_p)
        loss_ae = l_ae(x, x_r)                              # L_AE(X_r, X)
        kl_real = l_reg(mu, logvar)                         # L_REG(Z)
        x_r_ng = stop_gradient(x_r, "x_r", ng)             # ng(X_r)
        x_p_ng = stop_gradient(x_p, "x_p", ng)             # ng(X_p)
        kl_rec = l_reg(*m.encode(x_r_ng))                   # L_REG(Enc(ng(X_r)))
        kl_fake = l_reg(*m.encode(x_p_ng))                  # L_REG(Enc(ng(X_p)))
        hinge = F.relu(self.margin - kl_rec) + F.relu(self.margin - kl_fake)   # [m - .]^+
        loss = kl_real + self.alpha * hinge + self.beta * loss_ae              # L_E
        return loss, {"l_ae": loss_ae, "kl_real": kl_real, "kl_rec": kl_rec, "kl_fake": kl_fake,
                      "z": z, "z_p": z_p, "ng": {"x_r": x_r_ng, "x_p": x_p_ng}}

    def generator_loss(self, x: Tensor, z: Tensor, z_p: Tensor) -> tuple[Tensor, dict[str, Any]]:
        """The generator loss L_G given the posterior sample Z of x and the prior sample Z_p
        (both treated as constants: only G's images carry gradient)."""
        m = self.model
        x_r = m.decode(z.detach())                          # X_r = Dec(Z), Z fixed
        x_p = m.decode(z_p.detach())                        # X_p = Dec(Z_p)
        loss_ae = l_ae(x, x_r)
        kl_rec = l_reg(*m.encode(x_r))                      # L_REG(Enc(X_r)), through E
        kl_fake = l_reg(*m.encode(x_p))                     # L_REG(Enc(X_p))
        loss = self.alpha * (kl_rec + kl_fake) + self.beta * loss_ae           # L_G
        return loss, {"l_ae": loss_ae, "kl_rec": kl_rec, "kl_fake": kl_fake}

    def vae_loss(self, x: Tensor, eps: Tensor | None = None) -> Tensor:
        """The warm-up objective: beta L_AE + L_REG (a VAE's negative ELBO with weight beta)."""
        mu, logvar, _, x_r = self.model(x, eps=eps)
        return self.beta * l_ae(x, x_r) + l_reg(mu, logvar)

    # ---- the updates ---------------------------------------------------------------------------
    def encoder_update(self, x: Tensor) -> dict[str, Any]:
        """Algorithm 1, lines 4-10: E's Adam step on L_E with G frozen. Leaves G's ``.grad``
        None and returns the parts (including the Z, Z_p the G update must reuse)."""
        loss, parts = step_with_frozen(lambda: self.encoder_loss(x), self.opt_e,
                                        self.model.encoder, self.model.decoder)
        parts["loss_e"] = loss
        return parts

    def generator_update(self, x: Tensor, z: Tensor, z_p: Tensor) -> dict[str, Any]:
        """Algorithm 1, lines 11-13: G's Adam step on L_G with E frozen (E's ``.grad`` is
        cleared and stays None)."""
        loss, parts = step_with_frozen(lambda: self.generator_loss(x, z, z_p), self.opt_g,
                                        self.model.decoder, self.model.encoder)
        parts["loss_g"] = loss
        return parts

    def step(self, batch: Any) -> dict[str, float]:
        x, _ = split_batch(batch, next(iter(self.model.parameters())))
        self.model.train()
        if self.steps_done < self.vae_warmup_steps:
            loss = self.vae_loss(x)
            step_optimizers(loss, self.opt_e, self.opt_g)
            self.steps_done += 1
            return {"loss_vae": loss.item()}
        pe = self.encoder_update(x)
        pg = self.generator_update(x, pe["z"], pe["z_p"])
        self.steps_done += 1
        out = {"loss_e": pe["loss_e"].item(), "loss_g": pg["loss_g"].item(),
               "l_ae": pe["l_ae"].item(), "kl_real": pe["kl_real"].item(),
               "kl_rec": pe["kl_rec"].item(), "kl_fake": pe["kl_fake"].item()}
        if not all(math.isfinite(v) for v in out.values()):
            raise FloatingPointError(f"IntroVAE losses are not finite: {out}")
        return out

    __call__ = step

    # ---- checkpointing (the Trainer saves the step's state with the run) -----------------------
    def state_dict(self) -> dict[str, Any]:
        return {"steps_done": self.steps_done, "opt_e": self.opt_e.state_dict(),
                "opt_g": self.opt_g.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps_done = int(state["steps_done"])
        self.opt_e.load_state_dict(state["opt_e"])
        self.opt_g.load_state_dict(state["opt_g"])
