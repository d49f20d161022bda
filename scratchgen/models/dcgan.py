"""DCGAN: a GAN whose two networks are all-convolutional, with batch norm.

A. Radford, L. Metz, S. Chintala, "Unsupervised Representation Learning with Deep Convolutional
Generative Adversarial Networks", ICLR 2016 (arXiv:1511.06434). Reference code: the PyTorch
example github.com/pytorch/examples/tree/main/dcgan.

The game is the GAN's (Goodfellow et al. 2014, eq. 1), D(x) = sigmoid(l(x)) on D's logit l:

    min_G max_D  E_x[log D(x)] + E_z[log(1 - D(G(z)))],        z ~ N(0, I)

with G trained on the non-saturating loss -E_z[log D(G(z))] (``scratchgen.losses.gan``; the
alternating updates are ``models.gan_training.GANTrainStep``). What DCGAN adds are the networks
and the settings that make this game train (the paper's Sec. 3 guidelines and Sec. 4 details):

* no pooling: D downsamples with stride-2 convolutions, G upsamples with stride-2 transposed
  ("fractionally strided") convolutions, here all 4x4 with padding 1, so each halves or doubles
  the side exactly;
* batch norm in both networks, except at G's output and D's input;
* ReLU in G, tanh at its output (data scaled to [-1, 1]); LeakyReLU with slope 0.2 in D;
* no fully connected hidden layers (the first layer of G projects z, the last of D reads out
  one logit);
* weights ~ N(0, 0.02^2), batch-norm scales ~ N(1, 0.02^2) (``nn.init.dcgan_init``);
* Adam, lr 2e-4, beta1 = 0.5 (0.9 oscillated), batch 128 (the PyTorch example: batch 64).

Shapes. For a power-of-two side S = 4 * 2^k (k >= 1: 8, 16, 32, 64, ...), as the paper's LSUN
generator and the PyTorch example (width w = ngf = ndf = 64, S = 64):

    G: z (N, z_dim) -> 4x4 map of w 2^(k-1) channels -> k transposed convs, each halving the
       channels and doubling the side -> (N, C, S, S)     e.g. S=64: 512x4 -> 256x8 -> 128x16
                                                                     -> 64x32 -> Cx64
    D: (N, C, S, S) -> k stride-2 convs, w, 2w, ... channels -> 4x4 map -> one logit

For MNIST's 28 x 28 the chain starts at 7 x 7 (28 = 7 * 2^2), as in the usual MNIST DCGANs:

    G: z -> Linear -> 2w x 7 x 7 -> BN, ReLU -> ConvT 2w->w -> 14x14 -> BN, ReLU
       -> ConvT w->C -> 28x28 -> tanh                        (w = 64: 128 -> 64 -> 1 channels)
    D: x -> Conv C->w -> 14x14 -> LReLU -> Conv w->2w -> 7x7 -> BN, LReLU -> Linear -> logit

Where this code differs from the PyTorch example, on purpose:

* G's first layer is a transposed convolution of z seen as a 1x1 map (power-of-two sides, as
  the example) or a linear layer to a 7x7 map (28x28); both are the same linear map of z.
* D's last layer is a linear layer on the flattened 4x4 (or 7x7) map; the example's 4x4 valid
  convolution to one channel is exactly that linear map. Reading D as ``features(x)`` then
  ``readout`` lets a projection discriminator (``models.cgan``) reuse the same trunk.
* Layers followed by batch norm have no bias (the norm's shift replaces it), as the example;
  the layers not followed by one (D's input convolution and readout, G's output convolution)
  keep theirs, where the example drops every bias.
* D returns logits (N,) and the sigmoid lives in the loss (``losses.gan``: a softplus of the
  logit), where the example ends D in a Sigmoid and uses BCELoss: the same loss, without
  log(sigmoid) underflowing.

``DCGANDiscriminator(norm="none")`` or ``"layer"`` removes batch norm from D: WGAN-GP's critic
(Gulrajani et al. 2017, Sec. 4: batch norm couples the examples of a batch, which breaks the
per-example gradient penalty; they suggest layer normalisation instead). LSGAN (Mao et al. 2017)
trains these same networks with the least-squares loss.
"""
from __future__ import annotations

import math
from typing import Any

import scratchgen.functional as F
import scratchgen.nn as nn
from scratchgen.autograd import Tensor

__all__ = ["DCGANGenerator", "DCGANDiscriminator", "check_image_size", "generator_plan",
           "discriminator_plan", "DEFAULTS", "NORMS"]

#: The training settings of the paper (Sec. 4) and the PyTorch example (batch 64).
DEFAULTS = {"d_loss": "bce", "g_loss": "non-saturating", "lr_g": 2e-4, "lr_d": 2e-4,
            "betas": (0.5, 0.999), "n_dis": 1, "z_dim": 100, "width": 64, "batch_size": 128}

#: D's normalisation choices: batch norm (DCGAN), layer norm or none (WGAN-GP's critic).
NORMS = ("batch", "layer", "none")

LEAK = 0.2  # LeakyReLU slope in D (Sec. 4)


def check_image_size(image_size: int) -> int:
    """The side the DCGAN nets take: 28, or a power of two >= 8 (ValueError otherwise)."""
    ok = isinstance(image_size, int) and not isinstance(image_size, bool) and (
        image_size == 28 or (image_size >= 8 and image_size & (image_size - 1) == 0))
    if not ok:
        raise ValueError(f"image size {image_size!r}: the DCGAN networks take 28x28 images or a "
                         "power-of-two side >= 8 (8, 16, 32, 64, ...)")
    return image_size


def _doublings(image_size: int) -> tuple[int, int]:
    """(start side, number of stride-2 layers): 28 = 7 * 2^2, S = 4 * 2^k."""
    check_image_size(image_size)
    if image_size == 28:
        return 7, 2
    return 4, int(round(math.log2(image_size // 4)))


def generator_plan(image_size: int, width: int) -> tuple[int, list[int]]:
    """(start side s0, channels [c0, c1, ..., C-less]): G starts at a c0 x s0 x s0 map and each
    transposed convolution halves the channels: c_i = w 2^(k-1-i), ending at w before the output
    layer to C channels."""
    s0, k = _doublings(image_size)
    return s0, [width * 2 ** (k - 1 - i) for i in range(k)]


def discriminator_plan(image_size: int, width: int) -> tuple[int, list[int]]:
    """(end side, channels [w, 2w, ..., w 2^(k-1)]) of D's k stride-2 convolutions."""
    s0, k = _doublings(image_size)
    return s0, [width * 2 ** i for i in range(k)]


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


class DCGANGenerator(nn.Module):
    """x = G(z): z (N, z_dim) ~ N(0, I) -> images (N, channels, S, S) in [-1, 1] (tanh).

    ``norm_layer(c)`` builds each batch norm (a conditional generator swaps in conditional
    batch norm); ``input_dim`` is the size of G's input (z_dim, or z_dim plus a one-hot label).
    Initialised as DCGAN (``nn.init.dcgan_init``).
    """

    num_classes: int | None = None

    def __init__(self, z_dim: int = 100, image_size: int = 64, channels: int = 1,
                 width: int = 64, *, input_dim: int | None = None, norm_layer: Any = None) -> None:
        super().__init__()
        for name, v in (("z_dim", z_dim), ("channels", channels), ("width", width)):
            _check_positive(name, v)
        self.z_dim, self.image_size, self.channels, self.width = z_dim, image_size, channels, width
        self.image_shape = (channels, image_size, image_size)
        s0, widths = generator_plan(image_size, width)
        self.start = (widths[0], s0)
        in_dim = z_dim if input_dim is None else input_dim
        norm_layer = norm_layer if norm_layer is not None else nn.BatchNorm2d
        # z -> c0 x s0 x s0 (no bias: batch norm follows)
        if s0 == 7:
            self.project = nn.Linear(in_dim, widths[0] * s0 * s0, bias=False)
        else:
            self.project = nn.ConvTranspose2d(in_dim, widths[0], 4, 1, 0, bias=False)
        self.norms = nn.ModuleList([norm_layer(c) for c in widths])
        ups = [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False) for c in widths[:-1]]
        ups.append(nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1))  # output layer: no BN
        self.ups = nn.ModuleList(ups)
        nn.init.dcgan_init(self)

    def project_input(self, g_in: Tensor) -> Tensor:
        """The first layer: G's input (N, input_dim) -> (N, c0, s0, s0), before its norm."""
        c0, s0 = self.start
        n = g_in.shape[0]
        if isinstance(self.project, nn.Linear):
            return self.project(g_in).reshape(n, c0, s0, s0)
        return self.project(g_in.reshape(n, g_in.shape[1], 1, 1))

    def normalize(self, i: int, h: Tensor, y: Any = None) -> Tensor:
        """The i-th batch norm (a conditional generator passes the labels on)."""
        return self.norms[i](h)

    def synthesize(self, g_in: Tensor, y: Any = None) -> Tensor:
        """h_0 = project(input); h_{i+1} = up_i(relu(BN_i(h_i))); x = tanh(h_k)."""
        h = self.project_input(g_in)
        for i, up in enumerate(self.ups):
            h = up(F.relu(self.normalize(i, h, y)))
        return F.tanh(h)

    def forward(self, z: Tensor) -> Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"the generator takes latents of shape (N, {self.z_dim}), got "
                             f"{tuple(z.shape)}")
        return self.synthesize(z)


class DCGANDiscriminator(nn.Module):
    """l = D(x): images (N, channels, S, S) -> logits (N,) (D(x) = sigmoid(l) for the BCE loss).

    ``features(x)`` is the flattened last map (N, feature_dim); ``readout`` the linear layer to
    the logit. ``norm`` is ``"batch"`` (DCGAN), ``"layer"`` (layer normalisation over each
    example's whole map, per-channel scale and shift: ``GroupNorm`` with one group, the form of
    the WGAN-GP code's layer norm) or ``"none"``; never on the input layer. ``extra_channels``
    widens the input layer (a conditional D that appends label maps to the image).
    """

    def __init__(self, image_size: int = 64, channels: int = 1, width: int = 64,
                 norm: str = "batch", *, extra_channels: int = 0) -> None:
        super().__init__()
        for name, v in (("channels", channels), ("width", width)):
            _check_positive(name, v)
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
        self.image_size, self.channels, self.width, self.norm = image_size, channels, width, norm
        self.image_shape = (channels, image_size, image_size)
        side, widths = discriminator_plan(image_size, width)
        ins = [channels + extra_channels] + widths[:-1]
        # only the input layer keeps a bias; the others are followed by a norm (or, with
        # norm="none", get one back)
        self.convs = nn.ModuleList([
            nn.Conv2d(ci, co, 4, 2, 1, bias=(i == 0 or norm == "none"))
            for i, (ci, co) in enumerate(zip(ins, widths))])
        self.norms = nn.ModuleList([self._norm(c) for c in widths[1:]])
        self.feature_dim = widths[-1] * side * side
        self.readout = nn.Linear(self.feature_dim, 1)
        nn.init.dcgan_init(self)

    def _norm(self, c: int) -> nn.Module:
        if self.norm == "batch":
            return nn.BatchNorm2d(c)
        if self.norm == "layer":
            return nn.GroupNorm(1, c)
        return nn.Identity()

    def check_input(self, x: Tensor) -> None:
        if x.ndim != 4 or tuple(x.shape[2:]) != (self.image_size, self.image_size):
            raise ValueError(f"the discriminator takes images (N, C, {self.image_size}, "
                             f"{self.image_size}), got {tuple(x.shape)}")

    def features(self, x: Tensor) -> Tensor:
        """phi(x): h_1 = lrelu(conv_1(x)); h_{i+1} = lrelu(norm_i(conv_{i+1}(h_i))); flattened."""
        h = F.leaky_relu(self.convs[0](x), LEAK)
        for conv, norm in zip(self.convs[1:], self.norms):
            h = F.leaky_relu(norm(conv(h)), LEAK)
        return h.reshape(h.shape[0], -1)

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return self.readout(self.features(x)).reshape(x.shape[0])
