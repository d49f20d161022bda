"""SAGAN: self-attention in both networks of a spectrally normalised, class-conditional GAN.

H. Zhang, I. Goodfellow, D. Metaxas, A. Odena, "Self-Attention Generative Adversarial
Networks", ICML 2019 (arXiv:1805.08318). Official code (TensorFlow):
github.com/brain-research/self-attention-gan; a widely used PyTorch port:
github.com/heykeetae/Self-Attention-GAN.

Convolutions see a k x k neighbourhood, so far-apart parts of an image (the legs of one dog)
interact only after many layers. The self-attention block (Sec. 3) lets every position j of
a C-channel feature map x (flattened to N = H W positions x_1..x_N) read from all positions i:

    f(x) = W_f x,  g(x) = W_g x,  h(x) = W_h x       (1x1 convolutions to C/8 channels)
    s_ij = f(x_i)^T g(x_j)
    beta_{j,i} = exp(s_ij) / sum_i exp(s_ij)          (eq. 1: how much j attends to i)
    o_j = v( sum_i beta_{j,i} h(x_i) ),  v(x) = W_v x (a 1x1 convolution back to C channels)
                                                      (eq. 2)
    y_j = gamma o_j + x_j                             (eq. 3; gamma learned, 0 at first)

so that each block starts as the identity and the network first relies on local cues, then
learns how much non-local evidence to add. ``SelfAttention`` is this block with every 1x1
convolution spectrally normalised and bias-free (the equations have no biases; nor has the
official code). It differs from ``scratchgen.nn.SelfAttention2d``, which keeps a C-channel
h and no v: the paper's bottleneck (h to C/8, then v) is its final form, and it is also what
makes the block cheap, the N x N attention mixing C/8 channels instead of C.
The official TensorFlow block differs from the paper in two ways that save memory at 128 x
128: h has C/2 channels (so v maps C/2 -> C), and the keys f(x) and values h(x) are
2x2 max-pooled, so each query attends to N/4 positions. We keep the paper's form.

Training (Sec. 4 and 5; ``DEFAULTS``): spectral normalisation in *both* networks (the
generator too, which the paper finds steadies its training), the two time-scale update rule
(Heusel et al. 2017) with Adam learning rates 1e-4 for G and 4e-4 for D and betas (0, 0.9),
one discriminator update per generator update, and the hinge loss

    L_D = E[relu(1 - D(x, y))] + E[relu(1 + D(G(z, y), y))],   L_G = -E[D(G(z, y), y)].

Class conditioning as the paper: conditional batch norm in G, projection in D (Miyato &
Koyama 2018; see ``scratchgen.models.sngan``). (The official code's flags set both learning
rates to 4e-4 and use TensorFlow's default beta2 = 0.999; we follow the paper. The PyTorch port
defaults to the WGAN-GP loss; the paper uses the hinge loss.)

Networks. The paper's are for 128 x 128 ImageNet: five up-sampling residual blocks in G with
16ch, 8ch, 4ch, 2ch, ch channels and six blocks in D with ch .. 16ch, ch = 64; its
experiments place attention at features from 8 x 8 to 64 x 64 and find the larger ones best
(the official generator puts it after the 32 x 32 block). For 28-64 pixel images we take the
SNGAN ResNets, built of the same blocks, at the CIFAR scale (``sngan.GBlock``,
``sngan.DBlock``, ``sngan.OptimizedDBlock``; constant ``width``), spectrally normalise G as
well, and insert one ``SelfAttention`` where the features have ``attention_resolution``
pixels a side, right after the (first) block that produces that resolution, where the
official code places it:

    G: z -> SN-dense -> M x M -> GBlock x n (2M, 4M, ..., image_size) -> BN, ReLU,
       SN-conv3x3 -> tanh          (M and n as ``sngan.feature_sizes``: 32 -> 4, 3; 28 -> 7, 2)
    D: x -> OptimizedDBlock (S/2) -> DBlock down (S/4) -> DBlock -> DBlock -> ReLU,
       sum over pixels -> SN-linear [+ projection]

so G offers attention at ``generator_resolutions(image_size)`` (8, 16, 32 for 32 x 32 images;
14, 28 for 28 x 28) and D at ``discriminator_resolutions(image_size)`` (16, 8; 14, 7). The
default 16 suits 32 and 64 pixel images; for 28 x 28 (MNIST) pass 14.
"""
from __future__ import annotations

from typing import Any

import scratchgen.functional as F
import scratchgen.nn as nn
from scratchgen import backend
from scratchgen.autograd import Tensor
from scratchgen.models.sngan import (
    DBlock, GBlock, OptimizedDBlock, check_images, check_labels, check_latents, conv,
    feature_sizes, glorot, positive_int, projection_logit,
)

__all__ = ["DEFAULTS", "SAGenerator", "SADiscriminator", "SelfAttention",
           "generator_resolutions", "discriminator_resolutions"]

#: ``GANTrainStep`` settings of the paper (Sec. 5): hinge loss, TTUR lr_G = 1e-4 and
#: lr_D = 4e-4, Adam betas (0, 0.9), one D update per G update:
#: ``GANTrainStep(G, D, **DEFAULTS)``.
DEFAULTS: dict[str, Any] = {"d_loss": "hinge", "g_loss": "hinge", "lr_g": 1e-4, "lr_d": 4e-4,
                            "betas": (0.0, 0.9), "n_dis": 1}


class SelfAttention(nn.Module):
    """The paper's self-attention block (eqs. 1-3, see the module docstring), with spectrally
    normalised bias-free 1x1 convolutions f, g, h (C -> C/8, at least 1) and v (C/8 -> C),
    and gamma initialised to 0."""

    def __init__(self, in_channels: int, sn: bool = True) -> None:
        super().__init__()
        self.in_channels = positive_int("in_channels", in_channels)
        self.inner = max(in_channels // 8, 1)
        self.f = conv(in_channels, self.inner, 1, sn=sn, bias=False)
        self.g = conv(in_channels, self.inner, 1, sn=sn, bias=False)
        self.h = conv(in_channels, self.inner, 1, sn=sn, bias=False)
        self.v = conv(self.inner, in_channels, 1, sn=sn, bias=False)
        self.gamma = nn.Parameter(backend.numpy.zeros((1,), dtype=backend.as_dtype(None)))

    def forward(self, x: Tensor) -> Tensor:
        n, c, hh, ww = x.shape

        def rows(t: Tensor) -> Tensor:       # (N, C', H, W) -> (N, H*W, C'): row i is x_i
            return F.permute(F.reshape(t, (n, t.shape[1], hh * ww)), (0, 2, 1))

        # query g(x_j), key f(x_i): softmax_i(f(x_i)^T g(x_j)) = beta_{j,i}, unscaled (eq. 1);
        # then sum_i beta_{j,i} h(x_i)
        attended = F.scaled_dot_product_attention(rows(self.g(x)), rows(self.f(x)),
                                                  rows(self.h(x)), scale=1.0)
        attended = F.reshape(F.permute(attended, (0, 2, 1)), (n, self.inner, hh, ww))
        o = self.v(attended)                                     # eq. 2
        return self.gamma * o + x                                # eq. 3

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, inner={self.inner}"


def generator_resolutions(image_size: int) -> list[int]:
    """The sides of the generator's block outputs, where attention may go."""
    bottom, n_up = feature_sizes(image_size)
    return [bottom * 2 ** (k + 1) for k in range(n_up)]


def discriminator_resolutions(image_size: int) -> list[int]:
    """The sides of the discriminator's block outputs, where attention may go."""
    feature_sizes(image_size)
    return [image_size // 2, image_size // 4]


def _attention_index(resolution: Any, valid: list[int], which: str, image_size: int) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, int) \
            or resolution not in valid:
        raise ValueError(f"attention_resolution={resolution!r} is not a feature resolution of "
                         f"the {which} for image_size={image_size}; choose one of "
                         f"{', '.join(map(str, valid))}")
    return valid.index(resolution)


class SAGenerator(nn.Module):
    """x = G(z) or G(z, y): the SNGAN ResNet generator with spectral normalisation on every
    convolution and linear layer, conditional batch norm when ``num_classes`` is given, and a
    ``SelfAttention`` block after the residual block whose output has
    ``attention_resolution`` pixels a side. Images tanh(.) in [-1, 1], shape (N, channels,
    image_size, image_size)."""

    def __init__(self, z_dim: int = 128, image_size: int = 32, channels: int = 1,
                 width: int = 64, num_classes: int | None = None,
                 attention_resolution: int = 16) -> None:
        super().__init__()
        self.z_dim = positive_int("z_dim", z_dim)
        self.image_size = image_size
        self.bottom, n_up = feature_sizes(image_size)
        self.channels = positive_int("channels", channels)
        self.width = positive_int("width", width)
        self.num_classes = None if num_classes is None else \
            positive_int("num_classes", num_classes)
        self.resolutions = generator_resolutions(image_size)
        self.attention_index = _attention_index(attention_resolution, self.resolutions,
                                                "generator", image_size)
        self.attention_resolution = attention_resolution
        m = self.bottom
        self.dense = nn.spectral_norm(glorot(nn.Linear(z_dim, m * m * width)))
        self.blocks = nn.ModuleList(
            [GBlock(width, width, self.num_classes, sn=True) for _ in range(n_up)])
        self.attention = SelfAttention(width)
        self.bn = nn.BatchNorm2d(width)
        self.out = conv(width, channels, 3, sn=True)

    def forward(self, z: Tensor, y: Any = None) -> Tensor:
        check_latents(z, self.z_dim)
        check_labels(y, z.shape[0], self.num_classes)
        m = self.bottom
        h = F.reshape(self.dense(z), (z.shape[0], self.width, m, m))
        for k, block in enumerate(self.blocks):
            h = block(h, y)
            if k == self.attention_index:
                h = self.attention(h)
        return F.tanh(self.out(F.relu(self.bn(h))))

    def extra_repr(self) -> str:
        return (f"z_dim={self.z_dim}, image_size={self.image_size}, channels={self.channels}, "
                f"width={self.width}, num_classes={self.num_classes}, "
                f"attention_resolution={self.attention_resolution}")


class SADiscriminator(nn.Module):
    """logit = D(x) or D(x, y), shape (N,): the SNGAN ResNet discriminator (spectrally
    normalised throughout) with a ``SelfAttention`` block after the first residual block whose
    output has ``attention_resolution`` pixels a side, and the projection
    logit = psi(phi(x)) + <embed(y), phi(x)> when ``num_classes`` is given."""

    def __init__(self, image_size: int = 32, channels: int = 1, width: int = 64,
                 num_classes: int | None = None, attention_resolution: int = 16) -> None:
        super().__init__()
        self.image_size = image_size
        feature_sizes(image_size)
        self.channels = positive_int("channels", channels)
        self.width = positive_int("width", width)
        self.num_classes = None if num_classes is None else \
            positive_int("num_classes", num_classes)
        self.resolutions = discriminator_resolutions(image_size)
        self.attention_index = _attention_index(attention_resolution, self.resolutions,
                                                "discriminator", image_size)
        self.attention_resolution = attention_resolution
        self.blocks = nn.ModuleList([
            OptimizedDBlock(channels, width),                 # S/2
            DBlock(width, width, downsample=True),            # S/4
            DBlock(width, width, downsample=False),
            DBlock(width, width, downsample=False),
        ])
        self.attention = SelfAttention(width)
        self.feature_dim = width
        self.linear = nn.spectral_norm(glorot(nn.Linear(width, 1, bias=False)))
        if self.num_classes is not None:
            self.embed = nn.spectral_norm(glorot(nn.Embedding(self.num_classes, width)))

    def features(self, x: Tensor) -> Tensor:
        """phi(x) = sum over pixels of ReLU(last block's output), shape (N, width)."""
        check_images(x, self.channels, self.image_size)
        return self._features(x)

    def _features(self, x: Tensor) -> Tensor:
        h = x
        for k, block in enumerate(self.blocks):
            h = block(h)
            if k == self.attention_index:
                h = self.attention(h)
        return F.sum(F.relu(h), axis=(2, 3))

    def forward(self, x: Tensor, y: Any = None) -> Tensor:
        check_images(x, self.channels, self.image_size)
        check_labels(y, x.shape[0], self.num_classes)
        embed = self.embed if self.num_classes is not None else None
        return projection_logit(self._features(x), self.linear, embed, y)

    def extra_repr(self) -> str:
        return (f"image_size={self.image_size}, channels={self.channels}, width={self.width}, "
                f"num_classes={self.num_classes}, "
                f"attention_resolution={self.attention_resolution}")
