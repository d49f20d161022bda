"""A plain (deterministic) autoencoder, to set the VAE against.

    z = f_phi(x)                  the encoder: one code per image, no distribution
    x_hat = g_theta(z)            the decoder
    loss = -log p(x | z) = BCE(g_theta(f_phi(x)), x) summed over pixels   (Bernoulli decoder)
                         = 1/2 ||x - g_theta(f_phi(x))||^2 + const        (Gaussian, sigma = 1)

Same networks as ``vae.VAE`` (fc: 784-400-z-400-784; conv: k4 s2 p1), same reconstruction
term; what is missing is the KL term and the noise of z ~ q(z|x). Nothing then asks the codes
to fill a known region (the AE's latent clusters can sit anywhere, at any scale, with gaps
between them), so decoding a random point -- ``decode(randn(...))`` -- is not sampling from a
model of the data: the AE is not a generative model. In short: an AE is built for its
encoder, a VAE for its decoder.
"""
from __future__ import annotations

from typing import Any, Sequence

import scratchgen.functional as F
from scratchgen import nn
from scratchgen.autograd import Tensor
from scratchgen.losses.elbo import reconstruction_log_likelihood
from scratchgen.models import vae_tools
from scratchgen.models.vae import LIKELIHOODS, build_networks

__all__ = ["Autoencoder", "ConvAutoencoder"]


class Autoencoder(nn.Module):
    """Deterministic autoencoder with the VAE's networks (``arch`` ``"fc"`` or ``"conv"``).

    ``loss(x)`` gives ``{"loss", "recon"}``: the reconstruction loss -log p(x|z) in nats per
    image (binary cross-entropy summed over pixels for ``likelihood="bernoulli"``; half the
    summed squared error plus a constant for ``"gaussian"``).
    """

    def __init__(self, image_shape: Sequence[int] = (1, 28, 28), z_dim: int = 20,
                 arch: str = "fc", hidden: int | None = None, channels: Sequence[int] = (32, 64),
                 likelihood: str = "bernoulli") -> None:
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        self.image_shape = tuple(image_shape)
        self.z_dim = int(z_dim)
        self.arch = arch
        self.likelihood = likelihood
        self.encoder, self.decoder = build_networks(arch, self.image_shape, self.z_dim, hidden,
                                                    channels, gaussian=False)

    def encode(self, x: Tensor) -> Tensor:
        """z = f(x), (N, z_dim): one point per image."""
        return self.encoder(x)

    def decoder_output(self, z: Tensor) -> Tensor:
        """Logits (Bernoulli) or mean (Gaussian), image-shaped."""
        return self.decoder(z)

    def decode(self, z: Tensor) -> Tensor:
        """The reconstruction's mean image."""
        out = self.decoder_output(z)
        return F.sigmoid(out) if self.likelihood == "bernoulli" else out

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder_output(self.encode(x))

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """Reconstruction loss per image (batch mean); the same term as the VAE's ``recon``."""
        z = self.encode(x)                                                    # no noise, no KL
        log_px = reconstruction_log_likelihood(x, self.decoder_output(z), self.likelihood)
        recon = -log_px.mean()
        return {"loss": recon, "recon": recon}

    def reconstruct(self, x: Any) -> Tensor:
        return vae_tools.reconstruct(self, x)

    def extra_repr(self) -> str:
        return f"image_shape={self.image_shape}, z_dim={self.z_dim}, likelihood={self.likelihood}"


class ConvAutoencoder(Autoencoder):
    """``Autoencoder(arch="conv")``."""

    def __init__(self, image_shape: Sequence[int] = (1, 28, 28), z_dim: int = 20,
                 hidden: int | None = None, channels: Sequence[int] = (32, 64),
                 likelihood: str = "bernoulli") -> None:
        super().__init__(image_shape, z_dim, "conv", hidden, channels, likelihood)
