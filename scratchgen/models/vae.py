"""Variational autoencoder: D. P. Kingma, M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014.

The generative model and the approximate posterior (the paper's section 3):

    p(z)          = N(0, I)                                  the prior
    p_theta(x|z)  = Bernoulli(sigmoid(f_theta(z)))          the decoder (appendix C.1), or
                    N(f_theta(z), sigma^2 I)                 a Gaussian decoder (appendix C.2)
    q_phi(z|x)    = N(mu_phi(x), diag exp(logvar_phi(x)))   the encoder

Both networks are trained together by maximizing the evidence lower bound (eq. 3)

    log p(x) >= L(theta, phi; x) = -KL( q_phi(z|x) || p(z) ) + E_{q_phi(z|x)}[ log p_theta(x|z) ]

estimated for each image with one reparameterized sample (eq. 10 with L = 1):

    z = mu + sigma * eps,  sigma = exp(logvar / 2),  eps ~ N(0, I)          (section 2.4)
    L ~= 1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)  +  log p_theta(x | z)
         '---------- -KL, closed form (appendix B) -------'    '-- reconstruction --'

The loss is -L summed over pixels and latent units and averaged over the images of a batch:
"nats per image". For a Bernoulli decoder on MNIST that is the binary cross-entropy summed
over the 784 pixels plus the KL, the number the classic PyTorch example prints (it sums over
the batch as well and divides by the dataset size when it reports).

Networks (``arch``):

* ``"fc"``: the PyTorch MNIST example's, 784-400-z: fc1 784->400 ReLU, fc21 / fc22 400->z
  (mu, logvar); fc3 z->400 ReLU, fc4 400->784 (logits).
* ``"conv"``: convolutions with kernel 4, stride 2, padding 1 halve the image at each layer
  (28 -> 14 -> 7), a fully connected layer to ``hidden`` units, then mu and logvar; the decoder
  mirrors it with transposed convolutions (7 -> 14 -> 28).

Other encoders and decoders can be passed in: ``encoder(x) -> (mu, logvar)`` and
``decoder(z) -> logits or mean`` with the image's shape.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import scratchgen as sg
import scratchgen.functional as F
from scratchgen import nn
from scratchgen.autograd import Tensor
from scratchgen.losses.elbo import reconstruction_log_likelihood
from scratchgen.losses.kl import kl_normal_standard_normal, reparameterize
from scratchgen.models import vae_tools

__all__ = ["MLPEncoder", "MLPDecoder", "ConvEncoder", "ConvDecoder", "build_networks", "VAE",
           "ConvVAE", "LIKELIHOODS"]

LIKELIHOODS = ("bernoulli", "gaussian")


# =============================================================================================
# the networks


class MLPEncoder(nn.Module):
    """x -> (mu, logvar) with one hidden layer: fc1 + ReLU, then fc21 -> mu, fc22 -> logvar.

    With ``gaussian=False`` (a plain autoencoder) a single head fc2 gives the code z.
    """

    def __init__(self, in_features: int = 784, hidden: int = 400, z_dim: int = 20,
                 gaussian: bool = True) -> None:
        super().__init__()
        self.gaussian = gaussian
        self.fc1 = nn.Linear(in_features, hidden)
        if gaussian:
            self.fc21 = nn.Linear(hidden, z_dim)   # mu
            self.fc22 = nn.Linear(hidden, z_dim)   # log sigma^2
        else:
            self.fc2 = nn.Linear(hidden, z_dim)

    def forward(self, x: Tensor) -> Any:
        h = F.relu(self.fc1(x.flatten(1)))
        if self.gaussian:
            return self.fc21(h), self.fc22(h)
        return self.fc2(h)


class MLPDecoder(nn.Module):
    """z -> the decoder's output with the image's shape: fc3 + ReLU, fc4 (logits or mean)."""

    def __init__(self, z_dim: int = 20, hidden: int = 400,
                 image_shape: Sequence[int] = (1, 28, 28)) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.fc3 = nn.Linear(z_dim, hidden)
        self.fc4 = nn.Linear(hidden, math.prod(self.image_shape))

    def forward(self, z: Tensor) -> Tensor:
        h = F.relu(self.fc3(z))
        return self.fc4(h).reshape((z.shape[0],) + self.image_shape)


def _feature_shape(image_shape: Sequence[int], channels: Sequence[int]) -> tuple[int, int, int]:
    c, h, w = image_shape
    f = 2 ** len(channels)
    if h % f or w % f:
        raise ValueError(f"a conv encoder with {len(channels)} stride-2 layers needs image sides "
                         f"divisible by {f}, got {h}x{w}")
    return channels[-1], h // f, w // f


class ConvEncoder(nn.Module):
    """x (N, C, H, W) -> (mu, logvar): ``len(channels)`` convolutions (kernel 4, stride 2,
    padding 1, ReLU), each halving the image, a fully connected layer to ``hidden`` units
    (ReLU), then fc_mu and fc_logvar (or one head fc_z for a plain autoencoder)."""

    def __init__(self, image_shape: Sequence[int] = (1, 28, 28), z_dim: int = 20,
                 channels: Sequence[int] = (32, 64), hidden: int = 256,
                 gaussian: bool = True) -> None:
        super().__init__()
        self.gaussian = gaussian
        layers: list[nn.Module] = []
        c_in = image_shape[0]
        for c_out in channels:
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.ReLU()]
            c_in = c_out
        self.convs = nn.Sequential(*layers)
        self.feature_shape = _feature_shape(image_shape, channels)
        self.fc = nn.Linear(math.prod(self.feature_shape), hidden)
        if gaussian:
            self.fc_mu = nn.Linear(hidden, z_dim)
            self.fc_logvar = nn.Linear(hidden, z_dim)
        else:
            self.fc_z = nn.Linear(hidden, z_dim)

    def forward(self, x: Tensor) -> Any:
        h = F.relu(self.fc(self.convs(x).flatten(1)))
        if self.gaussian:
            return self.fc_mu(h), self.fc_logvar(h)
        return self.fc_z(h)


class ConvDecoder(nn.Module):
    """z -> (N, C, H, W): fully connected layers to ``hidden`` units and to the smallest feature
    map (ReLU), then transposed convolutions (kernel 4, stride 2, padding 1) doubling it back
    to the image; the last layer has no nonlinearity (logits, or the Gaussian mean)."""

    def __init__(self, z_dim: int = 20, image_shape: Sequence[int] = (1, 28, 28),
                 channels: Sequence[int] = (32, 64), hidden: int = 256) -> None:
        super().__init__()
        self.feature_shape = _feature_shape(image_shape, channels)
        self.fc3 = nn.Linear(z_dim, hidden)
        self.fc4 = nn.Linear(hidden, math.prod(self.feature_shape))
        widths = list(reversed(channels)) + [image_shape[0]]     # 64 -> 32 -> 1
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1))
            if i < len(widths) - 2:
                layers.append(nn.ReLU())
        self.deconvs = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        h = F.relu(self.fc4(F.relu(self.fc3(z))))
        return self.deconvs(h.reshape((z.shape[0],) + self.feature_shape))


def build_networks(arch: str, image_shape: Sequence[int], z_dim: int, hidden: int | None = None,
                   channels: Sequence[int] = (32, 64), gaussian: bool = True
                   ) -> tuple[nn.Module, nn.Module]:
    """(encoder, decoder) for ``arch`` ``"fc"`` (hidden default 400) or ``"conv"`` (hidden
    default 256). ``gaussian=False`` gives the deterministic encoder of a plain autoencoder."""
    if arch == "fc":
        hidden = 400 if hidden is None else hidden
        return (MLPEncoder(math.prod(image_shape), hidden, z_dim, gaussian),
                MLPDecoder(z_dim, hidden, image_shape))
    if arch == "conv":
        hidden = 256 if hidden is None else hidden
        return (ConvEncoder(image_shape, z_dim, channels, hidden, gaussian),
                ConvDecoder(z_dim, image_shape, channels, hidden))
    raise ValueError(f"arch must be 'fc' or 'conv', got {arch!r}")


# =============================================================================================
# the model


class VAE(nn.Module):
    """A VAE with a diagonal Gaussian encoder, a N(0, I) prior and a Bernoulli or Gaussian
    decoder (see the module docstring for the equations).

    Args:
        image_shape: (C, H, W) of the data (any shape for ``arch="fc"``).
        z_dim: number of latent units.
        arch: ``"fc"`` (the PyTorch example's 784-400-z MLP) or ``"conv"``.
        hidden: width of the hidden layer (default 400 for fc, 256 for conv).
        channels: conv widths, one stride-2 layer each (conv only).
        likelihood: ``"bernoulli"`` (the decoder outputs logits; data in [0, 1]) or
            ``"gaussian"`` (the decoder outputs the mean).
        decoder_logvar: Gaussian decoder only: a fixed log sigma^2 (0: sigma = 1), or
            ``"learned"`` for one learned log sigma^2 shared by all pixels (a per-pixel or
            per-image variance lets the likelihood grow without bound on constant pixels,
            such as MNIST's black border).
        encoder, decoder: networks to use instead of building them from ``arch``.

    ``loss(x)`` gives ``{"loss", "recon", "kl"}``: -ELBO, -log p(x|z) and KL, each in nats per
    image (batch means); ``models.steps.TrainStep(vae, optimizer)`` takes one step on it.
    """

    def __init__(self, image_shape: Sequence[int] = (1, 28, 28), z_dim: int = 20,
                 arch: str = "fc", hidden: int | None = None, channels: Sequence[int] = (32, 64),
                 likelihood: str = "bernoulli", decoder_logvar: float | str = 0.0,
                 encoder: nn.Module | None = None, decoder: nn.Module | None = None) -> None:
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        self.image_shape = tuple(image_shape)
        self.z_dim = int(z_dim)
        self.arch = arch if encoder is None else "custom"
        self.likelihood = likelihood
        if encoder is None or decoder is None:
            built = build_networks(arch, self.image_shape, self.z_dim, hidden, channels)
            encoder = encoder if encoder is not None else built[0]
            decoder = decoder if decoder is not None else built[1]
        self.encoder = encoder
        self.decoder = decoder
        if decoder_logvar == "learned":
            if likelihood != "gaussian":
                raise ValueError("decoder_logvar='learned' needs likelihood='gaussian'")
            self.decoder_logvar = nn.Parameter(sg.zeros(()).data)
        else:
            self.decoder_logvar = float(decoder_logvar)

    # ---- q(z|x) and p(x|z) ----------------------------------------------------------------
    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """q(z|x): (mu, logvar), each (N, z_dim)."""
        return self.encoder(x)

    def decoder_output(self, z: Tensor) -> Tensor:
        """f_theta(z): the decoder's logits (Bernoulli) or mean (Gaussian), image-shaped."""
        return self.decoder(z)

    def decode(self, z: Tensor) -> Tensor:
        """E[x | z], the mean image: sigmoid(logits) for a Bernoulli decoder, else the mean."""
        out = self.decoder_output(z)
        return F.sigmoid(out) if self.likelihood == "bernoulli" else out

    def log_px_given_z(self, x: Tensor, z: Tensor) -> Tensor:
        """log p_theta(x | z) per image, (N,)."""
        return reconstruction_log_likelihood(x, self.decoder_output(z), self.likelihood,
                                             self.decoder_logvar)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(decoder output at a sample z ~ q(z|x), mu, logvar), as the PyTorch example."""
        mu, logvar = self.encode(x)
        return self.decoder_output(reparameterize(mu, logvar)), mu, logvar

    # ---- the objective --------------------------------------------------------------------
    def elbo_terms(self, x: Tensor) -> dict[str, Tensor]:
        """The two terms of the ELBO per image, with what produced them."""
        mu, logvar = self.encode(x)                      # q_phi(z|x) = N(mu, diag sigma^2)
        z = reparameterize(mu, logvar)                   # z = mu + sigma * eps     (sec. 2.4)
        log_px = self.log_px_given_z(x, z)               # log p_theta(x|z), L = 1  (eq. 10)
        kl = kl_normal_standard_normal(mu, logvar)       # KL(q(z|x) || p(z))       (appendix B)
        return {"log_px": log_px, "kl": kl, "z": z, "mu": mu, "logvar": logvar}

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """-ELBO in nats per image (``"loss"``, the quantity minimized), with its two terms
        ``"recon"`` = -log p(x|z) and ``"kl"``; each a batch mean."""
        t = self.elbo_terms(x)
        elbo = t["log_px"] - t["kl"]                     # eq. 10, one value per image
        return {"loss": -elbo.mean(), "recon": -t["log_px"].mean(), "kl": t["kl"].mean()}

    # ---- what a trained VAE can do (see vae_tools for more) -------------------------------
    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """n new images: z ~ N(0, I), then E[x | z]."""
        return vae_tools.sample_prior(self, n, temperature)

    def reconstruct(self, x: Any) -> Tensor:
        """E[x | z = mu(x)]: the mean image at the posterior mean."""
        return vae_tools.reconstruct(self, x)

    def extra_repr(self) -> str:
        s = f"image_shape={self.image_shape}, z_dim={self.z_dim}, likelihood={self.likelihood}"
        if self.likelihood == "gaussian":
            lv = "learned" if isinstance(self.decoder_logvar, Tensor) else self.decoder_logvar
            s += f", decoder_logvar={lv}"
        return s


class ConvVAE(VAE):
    """``VAE(arch="conv")``: the convolutional encoder and decoder (k4 s2 p1)."""

    def __init__(self, image_shape: Sequence[int] = (1, 28, 28), z_dim: int = 20,
                 hidden: int | None = None, channels: Sequence[int] = (32, 64),
                 likelihood: str = "bernoulli", decoder_logvar: float | str = 0.0) -> None:
        super().__init__(image_shape, z_dim, "conv", hidden, channels, likelihood,
                         decoder_logvar)
