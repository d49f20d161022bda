"""Class-conditional GANs: the label y enters both networks, three ways.

The conditional game (M. Mirza, S. Osindero, "Conditional Generative Adversarial Nets",
arXiv:1411.1784, 2014, eq. 2) conditions both players on y:

    min_G max_D  E_{x,y}[log D(x | y)] + E_{z,y}[log(1 - D(G(z | y) | y))]

so that G(z, y) learns p(x | y) and one asks it for a chosen class. D must check that x is a
real image *of class y*: a sharp 3 labelled 7 is fake. How y reaches the networks:

1. ``"concat"`` -- Mirza & Osindero: the one-hot label is appended to the inputs.
   G reads [z, onehot(y)] (its first layer sees both); D reads the image with K extra
   constant channels, channel y all ones and the others zero (the one-hot vector broadcast over
   the pixels, as the conditional DCGANs of that time did), so every convolution of D's
   input layer sees the label at every position.
2. ``"cbn"`` -- conditional batch norm in G (V. Dumoulin, J. Shlens, M. Kudlur, "A Learned
   Representation for Artistic Style", ICLR 2017; H. de Vries et al., "Modulating early visual
   processing by language", NeurIPS 2017; used for cGANs by Miyato & Koyama 2018): every batch
   norm of G gets a per-class scale and shift,

       CBN(h | y) = gamma_y * (h - mu_B) / sqrt(sigma_B^2 + eps) + beta_y,

   gamma_y initialised to 1 and beta_y to 0, so that training starts from the plain batch
   norm (``nn.ConditionalBatchNorm2d``). G's first layer also reads the label: its input is
   [z, onehot(y)], as in 1, so the label enters the first layer and every batch norm. This is
   the conditioning of BigGAN-deep (A. Brock, J. Donahue, K. Simonyan, "Large Scale GAN
   Training for High Fidelity Natural Image Synthesis", ICLR 2019, Appendix B and Fig. 16;
   BigGANdeep.py of github.com/ajbrock/BigGAN-PyTorch), whose first linear layer reads z
   concatenated with the class embedding, the same vector that sets every conditional batch
   norm's gain and bias; a one-hot vector through a linear layer is a learned class embedding.
   D is the concatenation discriminator of 1.
   Why the first layer too: Miyato & Koyama's generators read z alone and put the label into
   the batch norms only, but they are ResNets with a conditional batch norm in every one of
   their blocks, trained for 10^5 iterations. This DCGAN generator has two batch norms: there
   the label could only scale and shift 128 + 64 channels, the same at every pixel, starting
   from the identity, and Adam moves each gamma_y, beta_y by about its learning rate (2e-4)
   per step. Measured with z alone (``label_input=False``), the MNIST generators drew the
   asked-for class 14% / 12% of the time after 2 epochs and 70% / 63% after 6 (cbn /
   projection; concat: 82% and 98%). Larger per-class steps helped, not enough (digits, 30
   epochs: 26% as it was; 76% with the updates of gamma_y and beta_y scaled by 10; 81% with
   gains and biases that are linear maps of a learned 128-d class embedding, as BigGAN's);
   the label at the first layer makes it 99% there (``recipes.cgan``: the MNIST figures).
3. ``"projection"`` -- T. Miyato, M. Koyama, "cGANs with Projection Discriminator", ICLR 2018,
   eq. 3: with phi(x) D's feature vector, psi a linear readout and V an embedding of the
   classes,

       f(x, y) = psi(phi(x)) + <V_y, phi(x)>      (D(x|y) = sigmoid(f)),

   which is the form the optimal discriminator takes when p(y|x) is log-linear in phi(x): the
   log-ratio log q(x|y)/p(x|y) splits into a class-independent part (psi) and an inner product
   with a class vector. The label is used once, at the end, instead of being mixed into the
   input. G is the generator of 2 (the paper pairs the projection discriminator with a
   conditional-batch-norm generator; ours also reads the label at its first layer, see 2).

The networks are the DCGAN ones (``models.dcgan``: 4x4 stride-2 (transposed) convolutions,
batch norm, ReLU / LeakyReLU(0.2), tanh output, N(0, 0.02) init); losses and updates as DCGAN's
(``GANTrainStep`` draws the fake batch with the real batch's labels). Differences from the
papers: Mirza & Osindero's MNIST model was a fully connected network with maxout units and
dropout, trained with SGD and momentum; we keep their conditioning by concatenation on the
convolutional DCGAN nets. Miyato & Koyama's networks were ResNets with spectral normalisation
and the hinge loss, phi(x) globally sum-pooled after a ReLU; here phi(x) is the DCGAN
discriminator's flattened last map, psi its linear readout, and V is initialised N(0, 0.02^2)
like DCGAN's other weights (their code: Glorot uniform). ``ProjectionDiscriminator`` works
with any such trunk.

Labels are integers in [0, num_classes); any other raises ``ValueError`` naming the label and
the number of classes.
"""
from __future__ import annotations

from typing import Any

import numpy

import scratchgen.functional as F
import scratchgen.nn as nn
from scratchgen import backend
from scratchgen.autograd import Tensor
from scratchgen.models.dcgan import DCGANDiscriminator, DCGANGenerator

__all__ = ["CONDITIONINGS", "check_labels", "one_hot_maps", "ConditionalGenerator",
           "ConcatDiscriminator", "ProjectionDiscriminator", "build_conditional_gan"]

#: ``--cond`` choices: (generator conditioning, discriminator conditioning) for each.
CONDITIONINGS = {"concat": ("concat", "concat"), "cbn": ("cbn", "concat"),
                 "projection": ("cbn", "projection")}


def check_labels(y: Any, num_classes: int, like: Tensor | None = None) -> Tensor:
    """y as an int64 tensor of class indices (on ``like``'s device); ValueError for a label
    outside [0, num_classes) or a non-integer one."""
    data = y.data if isinstance(y, Tensor) else y
    host = numpy.asarray(backend.to_device(data, "cpu") if hasattr(data, "dtype")
                         else numpy.asarray(data))
    if host.ndim == 0:
        host = host.reshape(1)
    if host.dtype.kind not in "iu":
        if host.size and host.dtype.kind == "f" and numpy.all(host == numpy.round(host)):
            host = host.astype(numpy.int64)
        else:
            raise ValueError(f"class labels must be integers, got dtype {host.dtype}")
    bad = host[(host < 0) | (host >= num_classes)]
    if bad.size:
        raise ValueError(f"label {int(bad[0])} is out of range for {num_classes} classes "
                         f"(0..{num_classes - 1})")
    dev = like.device if like is not None else "cpu"
    if isinstance(y, Tensor) and y.dtype == numpy.int64 and y.ndim == 1 and y.device == dev:
        return y
    return Tensor(backend.to_device(host.astype(numpy.int64), dev))


def one_hot_maps(y: Tensor, num_classes: int, side: int, like: Tensor) -> Tensor:
    """(N, K, side, side): channel y_i of example i all ones, the others zeros."""
    oh = F.one_hot(y, num_classes, dtype=like.dtype)
    n = oh.shape[0]
    return F.broadcast_to(oh.reshape(n, num_classes, 1, 1), (n, num_classes, side, side))


class ConditionalGenerator(DCGANGenerator):
    """x = G(z, y): the DCGAN generator told which class to draw.

    ``conditioning="concat"``: G's input is [z, onehot(y)] (Mirza & Osindero).
    ``conditioning="cbn"``: every batch norm is a ``ConditionalBatchNorm2d`` (per-class gamma
    starting at 1, beta at 0) and G's input is [z, onehot(y)] too (BigGAN-deep's first layer);
    with ``label_input=False`` G's input is z alone (Miyato & Koyama's generator), where the
    label acts through the batch norms only (on this shallow generator: slowly; module
    docstring).
    """

    def __init__(self, z_dim: int = 100, image_size: int = 28, channels: int = 1,
                 width: int = 64, num_classes: int = 10, conditioning: str = "cbn", *,
                 label_input: bool = True) -> None:
        if conditioning not in ("concat", "cbn"):
            raise ValueError(f"generator conditioning must be 'concat' or 'cbn', got "
                             f"{conditioning!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        if conditioning == "concat" and not label_input:
            raise ValueError("the concat generator reads the label at its input: "
                             "label_input=False needs conditioning='cbn'")
        in_dim = z_dim + num_classes if label_input else z_dim
        if conditioning == "concat":
            super().__init__(z_dim, image_size, channels, width, input_dim=in_dim)
        else:
            super().__init__(z_dim, image_size, channels, width, input_dim=in_dim,
                             norm_layer=lambda c: nn.ConditionalBatchNorm2d(c, num_classes))
        self.num_classes = num_classes
        self.conditioning = conditioning
        self.label_input = label_input

    def normalize(self, i: int, h: Tensor, y: Any = None) -> Tensor:
        if self.conditioning == "cbn":
            return self.norms[i](h, y)     # gamma_y * BN(h) + beta_y
        return self.norms[i](h)

    def forward(self, z: Tensor, y: Any) -> Tensor:  # type: ignore[override]
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"the generator takes latents of shape (N, {self.z_dim}), got "
                             f"{tuple(z.shape)}")
        y = check_labels(y, self.num_classes, z)
        if y.shape[0] != z.shape[0]:
            raise ValueError(f"{z.shape[0]} latents but {y.shape[0]} labels")
        g_in = z
        if self.label_input:                 # [z, onehot(y)] into the first layer
            g_in = F.concat([z, F.one_hot(y, self.num_classes, dtype=z.dtype)], axis=1)
        if self.conditioning == "concat":
            return self.synthesize(g_in)
        return self.synthesize(g_in, y)      # and gamma_y, beta_y in every batch norm


class ConcatDiscriminator(DCGANDiscriminator):
    """l = D(x, y) on [x, one-hot label maps]: the DCGAN discriminator with K more input
    channels (Mirza & Osindero's conditioning, on a convolutional D)."""

    def __init__(self, image_size: int = 28, channels: int = 1, width: int = 64,
                 num_classes: int = 10, norm: str = "batch") -> None:
        super().__init__(image_size, channels, width, norm, extra_channels=num_classes)
        self.num_classes = num_classes

    def forward(self, x: Tensor, y: Any) -> Tensor:  # type: ignore[override]
        self.check_input(x)
        y = check_labels(y, self.num_classes, x)
        maps = one_hot_maps(y, self.num_classes, self.image_size, x)
        return self.readout(self.features(F.concat([x, maps], axis=1))).reshape(x.shape[0])


class ProjectionDiscriminator(DCGANDiscriminator):
    """f(x, y) = psi(phi(x)) + <V_y, phi(x)> (Miyato & Koyama 2018, eq. 3) on the DCGAN trunk:
    phi = ``features`` (the flattened last map), psi = ``readout``, V = ``embed``."""

    def __init__(self, image_size: int = 28, channels: int = 1, width: int = 64,
                 num_classes: int = 10, norm: str = "batch") -> None:
        super().__init__(image_size, channels, width, norm)
        self.num_classes = num_classes
        self.embed = nn.Embedding(num_classes, self.feature_dim)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, x: Tensor, y: Any) -> Tensor:  # type: ignore[override]
        self.check_input(x)
        y = check_labels(y, self.num_classes, x)
        h = self.features(x)                                    # phi(x), (N, F)
        projection = (self.embed(y) * h).sum(axis=1)            # <V_y, phi(x)>
        return self.readout(h).reshape(x.shape[0]) + projection


def build_conditional_gan(cond: str, z_dim: int = 100, image_size: int = 28, channels: int = 1,
                          width: int = 64, num_classes: int = 10
                          ) -> tuple[ConditionalGenerator, DCGANDiscriminator]:
    """(G, D) for ``cond`` in ``CONDITIONINGS``: "concat" (concat G, concat D), "cbn"
    (conditional-BN G, concat D), "projection" (conditional-BN G, projection D)."""
    if cond not in CONDITIONINGS:
        raise ValueError(f"conditioning {cond!r}: choose one of {', '.join(CONDITIONINGS)}")
    g_cond, d_cond = CONDITIONINGS[cond]
    G = ConditionalGenerator(z_dim, image_size, channels, width, num_classes, g_cond)
    D_cls = ConcatDiscriminator if d_cond == "concat" else ProjectionDiscriminator
    return G, D_cls(image_size, channels, width, num_classes)
