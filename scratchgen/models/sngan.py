"""SNGAN: a GAN whose discriminator has every weight spectrally normalised, and its
class-conditional form with the projection discriminator.

T. Miyato, T. Kataoka, M. Koyama, Y. Yoshida, "Spectral Normalization for Generative
Adversarial Networks", ICLR 2018 (arXiv:1802.05957); T. Miyato, M. Koyama, "cGANs with
Projection Discriminator", ICLR 2018 (arXiv:1802.05637). Official code (Chainer):
github.com/pfnet-research/sngan_projection.

Spectral normalisation. A discriminator f(x) = W^{L+1} a_L(W^L ... a_1(W^1 x)) with 1-Lipschitz
activations a_l has ||f||_Lip <= prod_l sigma(W^l), sigma the largest singular value (the
paper's eq. 7). Dividing every weight by its own sigma,

    W_SN(W) = W / sigma(W)                                              (eq. 8)

bounds the whole network by 1. sigma is estimated by one power iteration per training step
with u, v carried over between steps (Algorithm 1; ``scratchgen.nn.spectral_norm``), and a
convolution's kernel is treated as the matrix (out_channels, in_channels * kh * kw), as the
paper and its code do. Only the discriminator is normalised; the generator keeps batch norm.

Projection discriminator (Miyato & Koyama, eq. 3). With phi(x) the discriminator's features
and psi a linear map to one number,

    f(x, y) = y^T V phi(x) + psi(phi(x)),      logit(x, y) = <v_y, phi(x)> + w^T phi(x)

(v_y = row y of an embedding V): the log-density ratio of a class-conditional model whose
class posteriors are log-linear in phi(x). The embedding V is spectrally normalised as well
(as in the official code). The conditional generator uses conditional batch norm, a per-class
gain and bias after each normalisation (``nn.ConditionalBatchNorm2d``).

Losses and training (``DEFAULTS``, the official CIFAR-10 configuration
``sn_cifar10_unconditional.yml``): the hinge loss

    L_D = E[relu(1 - D(x))] + E[relu(1 + D(G(z)))],    L_G = -E[D(G(z))]

(``scratchgen.losses.gan``), Adam with lr 2e-4 and betas (0, 0.9) for both networks, and
n_dis = 5 discriminator updates per generator update. The paper's main experiments use the
standard GAN loss with the non-saturating generator update and report the hinge loss as a
variant; for the standard CNN the paper sweeps six Adam / n_dis settings (Table 1). The
official runs also use batch size 64 for the real data, 128 samples for each generator
update, 50,000 generator updates, and both learning rates decayed linearly to 0 over the run;
these belong to a training recipe, not to ``GANTrainStep``, and are left out of ``DEFAULTS``.

Architectures (``arch``):

* ``"cnn"``, the paper's standard CNN (Table 3). G: z (128) -> dense -> M x M x 8w, BN, ReLU;
  three 4x4 stride-2 deconvolutions halving the channels (8w -> 4w -> 2w -> w), each with BN
  and ReLU; a 3x3 convolution to the image channels and tanh. D: pairs of a 3x3 stride-1 and
  a 4x4 stride-2 convolution with w, 2w, 4w channels, a last 3x3 convolution to 8w, leaky
  ReLU (slope 0.1) after each, and a dense layer to one logit. w = 64 in the paper.
  Differences: the paper's table does not say whether the dense layer of G has BN and ReLU;
  the authors' Chainer code of that network (chainer-gan-lib's DCGAN generator) has them, over
  all M*M*8w units, where we normalise per channel (BatchNorm2d) so that the conditional form
  can swap in conditional batch norm. That code's discriminator also doubles the channels at
  the stride-2 convolutions (w, 2w | 2w, 4w | 4w, 8w | 8w) and uses slope 0.2; we follow the
  paper's table (w, w | 2w, 2w | 4w, 4w | 8w, slope 0.1). Weights ~ N(0, 0.02^2), biases 0,
  as that code. For the projection, phi(x) is the flattened last feature map.
* ``"resnet"``, the official CIFAR-10 ResNets (``gen_models/resnet_32.py``,
  ``dis_models/snresnet_32.py``; the ResNets of the paper's Appendix B). G: dense -> M x M x w,
  three up-sampling residual blocks (``GBlock``), BN, ReLU, a 3x3 convolution and tanh. D: the
  "optimized" first block (``OptimizedDBlock``), a down-sampling block, two blocks at that
  resolution (``DBlock``), ReLU, a sum over the pixels (global sum pooling), then the linear
  psi without bias. Glorot-uniform weights (gain sqrt(2) for the 3x3 convolutions inside the
  blocks, 1 elsewhere) and zero biases, as that code. The official widths are 256 for G and
  128 for D; here both are ``width``, 64 by default so that a CPU can train them.

Image sizes. The generator starts at M x M with M = image_size / 8 when image_size is a
multiple of 8 (three up-samplings: 32 -> M = 4 as the paper's CIFAR networks, 64 -> 8) and
M = image_size / 4 otherwise (two up-samplings: 28 -> M = 7 for MNIST); ``feature_sizes``
gives (M, number of up-samplings). The CNN discriminator mirrors it with as many stride-2
convolutions; the ResNet discriminator always down-samples twice (32 -> 16 -> 8, 28 -> 14 -> 7)
as the official CIFAR network. image_size must be a positive multiple of 4.
"""
from __future__ import annotations

import math
from typing import Any

import scratchgen.functional as F
import scratchgen.nn as nn
from scratchgen import backend
from scratchgen.autograd import Tensor
from scratchgen.nn import init

__all__ = ["DEFAULTS", "SNGenerator", "SNDiscriminator", "GBlock", "DBlock",
           "OptimizedDBlock", "feature_sizes", "projection_logit"]

#: ``GANTrainStep`` settings of the official CIFAR-10 runs (hinge loss, Adam 2e-4, betas
#: (0, 0.9), five discriminator updates per generator update): ``GANTrainStep(G, D,
#: **DEFAULTS)``.
DEFAULTS: dict[str, Any] = {"d_loss": "hinge", "g_loss": "hinge", "lr_g": 2e-4, "lr_d": 2e-4,
                            "betas": (0.0, 0.9), "n_dis": 5}

ARCHS = ("cnn", "resnet")
_LEAK = 0.1     # slope of the CNN discriminator's leaky ReLUs (Table 3)


# ---- argument checks ----------------------------------------------------------------------------

def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _num_classes(value: Any) -> int | None:
    return None if value is None else positive_int("num_classes", value)


def _arch(value: Any) -> str:
    if value not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(map(repr, ARCHS))}, got {value!r}")
    return value


def feature_sizes(image_size: Any) -> tuple[int, int]:
    """(M, n): the generator's first feature map is M x M and n up-samplings by 2 reach
    image_size = M 2^n; n = 3 for multiples of 8 and 2 for the other multiples of 4."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 4 \
            or image_size % 4:
        raise ValueError(f"image_size must be a positive multiple of 4 (e.g. 28, 32, 64), "
                         f"got {image_size!r}")
    n = 3 if image_size % 8 == 0 else 2
    return image_size // 2 ** n, n


def check_latents(z: Any, z_dim: int) -> None:
    """z must be a (N, z_dim) tensor."""
    if not isinstance(z, Tensor):
        raise ValueError(f"the generator takes a Tensor of latents, got {type(z).__name__}")
    if z.ndim != 2 or z.shape[1] != z_dim:
        raise ValueError(f"the generator takes latents of shape (N, {z_dim}), got {z.shape}")


def check_images(x: Any, channels: int, image_size: int) -> None:
    """x must be a (N, channels, image_size, image_size) tensor."""
    if not isinstance(x, Tensor):
        raise ValueError(f"the discriminator takes a Tensor of images, got {type(x).__name__}")
    if x.ndim != 4 or tuple(x.shape[1:]) != (channels, image_size, image_size):
        raise ValueError(f"the discriminator takes images of shape (N, {channels}, "
                         f"{image_size}, {image_size}), got {x.shape}")


def check_labels(y: Any, n: int, num_classes: int | None) -> None:
    """y must be None for an unconditional network and N integer labels in [0, num_classes)
    for a conditional one."""
    if num_classes is None:
        if y is not None:
            raise ValueError("this network is unconditional (num_classes=None) but got labels")
        return
    if y is None:
        raise ValueError(f"this network is conditional (num_classes={num_classes}) and needs "
                         "labels y")
    a = y.data if isinstance(y, Tensor) else y
    if not hasattr(a, "dtype"):
        a = backend.numpy.asarray(a)
    if tuple(a.shape) != (n,):
        raise ValueError(f"labels must have shape ({n},), got {tuple(a.shape)}")
    if a.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got dtype {a.dtype}")
    lo, hi = int(a.min()), int(a.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}), got range [{lo}, {hi}]")


# ---- layers with the official initialisations ---------------------------------------------------

def glorot(layer: nn.Module, gain: float = 1.0) -> nn.Module:
    init.xavier_uniform_(layer.weight, gain)
    if getattr(layer, "bias", None) is not None:
        init.zeros_(layer.bias)
    return layer


def _normal(layer: nn.Module, std: float = 0.02) -> nn.Module:
    init.normal_(layer.weight, 0.0, std)
    if getattr(layer, "bias", None) is not None:
        init.zeros_(layer.bias)
    return layer


def _sn(layer: nn.Module, on: bool) -> nn.Module:
    """W -> W / sigma(W) (eq. 8) when ``on``; after the initialisation, which then sets the
    learned W_orig."""
    return nn.spectral_norm(layer) if on else layer


def conv(in_channels: int, out_channels: int, kernel_size: int, *, sn: bool,
         gain: float = 1.0, bias: bool = True) -> nn.Conv2d:
    """A stride-1 'same' convolution, Glorot-uniform initialised, optionally spectrally
    normalised."""
    layer = nn.Conv2d(in_channels, out_channels, kernel_size, 1, kernel_size // 2, bias=bias)
    return _sn(glorot(layer, gain), sn)


def _norm(channels: int, num_classes: int | None) -> nn.Module:
    return nn.BatchNorm2d(channels) if num_classes is None else \
        nn.ConditionalBatchNorm2d(channels, num_classes)


def _apply_norm(norm: nn.Module, h: Tensor, y: Any) -> Tensor:
    return norm(h, y) if isinstance(norm, nn.ConditionalBatchNorm2d) else norm(h)


# ---- residual blocks (official resblocks.py; also used by SAGAN) -------------------------------

class GBlock(nn.Module):
    """The generator's up-sampling residual block (pre-activation):

        residual(x) = conv3x3(ReLU(BN(conv3x3(up(ReLU(BN(x)))))))
        shortcut(x) = conv1x1(up(x))
        GBlock(x)   = residual(x) + shortcut(x)

    with up the 2x nearest-neighbour up-sampling and BN conditional batch norm when
    ``num_classes`` is given (forward(x, y)). ``sn`` spectrally normalises the convolutions
    (SAGAN; SNGAN's generator has none).
    """

    def __init__(self, in_channels: int, out_channels: int, num_classes: int | None = None,
                 sn: bool = False) -> None:
        super().__init__()
        self.bn1 = _norm(in_channels, num_classes)
        self.conv1 = conv(in_channels, out_channels, 3, sn=sn, gain=math.sqrt(2))
        self.bn2 = _norm(out_channels, num_classes)
        self.conv2 = conv(out_channels, out_channels, 3, sn=sn, gain=math.sqrt(2))
        # the shape changes (up-sampling), so the shortcut is a learned 1x1 convolution
        self.shortcut = conv(in_channels, out_channels, 1, sn=sn)

    def forward(self, x: Tensor, y: Any = None) -> Tensor:
        h = F.relu(_apply_norm(self.bn1, x, y))
        h = self.conv1(F.interpolate(h, scale_factor=2, mode="nearest"))
        h = self.conv2(F.relu(_apply_norm(self.bn2, h, y)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class DBlock(nn.Module):
    """The discriminator's residual block (pre-activation, spectrally normalised):

        residual(x) = pool(conv3x3(ReLU(conv3x3(ReLU(x)))))
        shortcut(x) = pool(conv1x1(x))     when the shape changes, else x

    pool being 2x2 average pooling when ``downsample``, else the identity. The hidden width
    is in_channels, as the official code's default.
    """

    def __init__(self, in_channels: int, out_channels: int, downsample: bool,
                 sn: bool = True) -> None:
        super().__init__()
        self.downsample = downsample
        self.conv1 = conv(in_channels, in_channels, 3, sn=sn, gain=math.sqrt(2))
        self.conv2 = conv(in_channels, out_channels, 3, sn=sn, gain=math.sqrt(2))
        learnable = downsample or in_channels != out_channels
        self.shortcut = conv(in_channels, out_channels, 1, sn=sn) if learnable else None

    def _pool(self, h: Tensor) -> Tensor:
        return F.avg_pool2d(h, 2) if self.downsample else h

    def forward(self, x: Tensor) -> Tensor:
        h = self._pool(self.conv2(F.relu(self.conv1(F.relu(x)))))
        return h + (self._pool(self.shortcut(x)) if self.shortcut is not None else x)


class OptimizedDBlock(nn.Module):
    """The discriminator's first block, in the official code's "optimized" order: no
    activation before the first convolution (its input is the image) and the shortcut pools
    before its 1x1 convolution (the same map, four times cheaper):

        OptimizedDBlock(x) = pool(conv3x3(ReLU(conv3x3(x)))) + conv1x1(pool(x))
    """

    def __init__(self, in_channels: int, out_channels: int, sn: bool = True) -> None:
        super().__init__()
        self.conv1 = conv(in_channels, out_channels, 3, sn=sn, gain=math.sqrt(2))
        self.conv2 = conv(out_channels, out_channels, 3, sn=sn, gain=math.sqrt(2))
        self.shortcut = conv(in_channels, out_channels, 1, sn=sn)

    def forward(self, x: Tensor) -> Tensor:
        h = F.avg_pool2d(self.conv2(F.relu(self.conv1(x))), 2)
        return h + self.shortcut(F.avg_pool2d(x, 2))


# ---- the generator -------------------------------------------------------------------------------

class SNGenerator(nn.Module):
    """x = G(z) or G(z, y): latents z of shape (N, z_dim) (and labels y of shape (N,) when
    ``num_classes`` is given) to images tanh(.) in [-1, 1] of shape (N, channels,
    image_size, image_size). ``arch`` is ``"cnn"`` (Table 3) or ``"resnet"`` (the official
    CIFAR ResNet); the module docstring gives both and the sizes."""

    def __init__(self, z_dim: int = 128, image_size: int = 32, channels: int = 1,
                 width: int = 64, num_classes: int | None = None, arch: str = "cnn") -> None:
        super().__init__()
        self.z_dim = positive_int("z_dim", z_dim)
        self.image_size = image_size
        self.bottom, n_up = feature_sizes(image_size)
        self.channels = positive_int("channels", channels)
        self.width = positive_int("width", width)
        self.num_classes = _num_classes(num_classes)
        self.arch = _arch(arch)
        m = self.bottom
        if arch == "cnn":
            # dense -> M x M x (w 2^n), then n deconvolutions halving the channels down to w
            self.bottom_channels = width * 2 ** n_up
            self.dense = _normal(nn.Linear(z_dim, m * m * self.bottom_channels))
            self.bn0 = _norm(self.bottom_channels, self.num_classes)
            self.deconvs = nn.ModuleList()
            self.bns = nn.ModuleList()
            for i in range(n_up):
                c_in = self.bottom_channels // 2 ** i
                self.deconvs.append(_normal(nn.ConvTranspose2d(c_in, c_in // 2, 4, 2, 1)))
                self.bns.append(_norm(c_in // 2, self.num_classes))
            self.out = _normal(nn.Conv2d(width, channels, 3, 1, 1))
        else:
            self.bottom_channels = width
            self.dense = glorot(nn.Linear(z_dim, m * m * width))
            self.blocks = nn.ModuleList(
                [GBlock(width, width, self.num_classes) for _ in range(n_up)])
            self.bn = nn.BatchNorm2d(width)      # unconditional, as the official code
            self.out = glorot(nn.Conv2d(width, channels, 3, 1, 1))

    def forward(self, z: Tensor, y: Any = None) -> Tensor:
        check_latents(z, self.z_dim)
        check_labels(y, z.shape[0], self.num_classes)
        n, m = z.shape[0], self.bottom
        h = F.reshape(self.dense(z), (n, self.bottom_channels, m, m))
        if self.arch == "cnn":
            h = F.relu(_apply_norm(self.bn0, h, y))
            for deconv, bn in zip(self.deconvs, self.bns):
                h = F.relu(_apply_norm(bn, deconv(h), y))
        else:
            for block in self.blocks:
                h = block(h, y)
            h = F.relu(self.bn(h))
        return F.tanh(self.out(h))

    def extra_repr(self) -> str:
        return (f"z_dim={self.z_dim}, image_size={self.image_size}, channels={self.channels}, "
                f"width={self.width}, num_classes={self.num_classes}, arch={self.arch!r}")


# ---- the discriminator ---------------------------------------------------------------------------

def projection_logit(phi: Tensor, linear: nn.Module, embed: nn.Module | None, y: Any) -> Tensor:
    """The projection discriminator's logit (Miyato & Koyama 2018, eq. 3) on features phi (N, d):
    psi(phi) + <V_y, phi>, or psi(phi) alone when ``embed`` is None (unconditional)."""
    logit = F.reshape(linear(phi), (phi.shape[0],))                # psi(phi(x))
    if embed is not None:
        logit = logit + F.sum(embed(y) * phi, axis=1)              # + y^T V phi(x)
    return logit


class SNDiscriminator(nn.Module):
    """logit = D(x) or D(x, y), shape (N,), every weight spectrally normalised (eq. 8).

    Unconditional: logit = psi(phi(x)). With ``num_classes`` the projection discriminator
    (Miyato & Koyama, eq. 3): logit = psi(phi(x)) + <embed(y), phi(x)>. ``features(x)``
    returns phi(x), shape (N, feature_dim)."""

    def __init__(self, image_size: int = 32, channels: int = 1, width: int = 64,
                 num_classes: int | None = None, arch: str = "cnn") -> None:
        super().__init__()
        self.image_size = image_size
        bottom, n_down = feature_sizes(image_size)
        self.channels = positive_int("channels", channels)
        self.width = positive_int("width", width)
        self.num_classes = _num_classes(num_classes)
        self.arch = _arch(arch)
        if arch == "cnn":
            # (3x3 stride 1, 4x4 stride 2) with w, 2w, 4w, ... channels, then 3x3 to w 2^n
            self.convs = nn.ModuleList()
            c_in = channels
            for i in range(n_down):
                c = width * 2 ** i
                self.convs.append(nn.spectral_norm(_normal(nn.Conv2d(c_in, c, 3, 1, 1))))
                self.convs.append(nn.spectral_norm(_normal(nn.Conv2d(c, c, 4, 2, 1))))
                c_in = c
            top = width * 2 ** n_down
            self.convs.append(nn.spectral_norm(_normal(nn.Conv2d(c_in, top, 3, 1, 1))))
            self.feature_dim = bottom * bottom * top
            self.linear = nn.spectral_norm(_normal(nn.Linear(self.feature_dim, 1)))
        else:
            self.blocks = nn.ModuleList([
                OptimizedDBlock(channels, width),
                DBlock(width, width, downsample=True),
                DBlock(width, width, downsample=False),
                DBlock(width, width, downsample=False),
            ])
            self.feature_dim = width
            self.linear = nn.spectral_norm(glorot(nn.Linear(width, 1, bias=False)))
        if self.num_classes is not None:
            self.embed = nn.spectral_norm(
                glorot(nn.Embedding(self.num_classes, self.feature_dim)))

    def features(self, x: Tensor) -> Tensor:
        """phi(x): the flattened last feature map (cnn) or the pixel sum of ReLU of the last
        block's output (resnet)."""
        check_images(x, self.channels, self.image_size)
        return self._features(x)

    def _features(self, x: Tensor) -> Tensor:
        if self.arch == "cnn":
            h = x
            for layer in self.convs:
                h = F.leaky_relu(layer(h), _LEAK)
            return F.reshape(h, (x.shape[0], -1))
        h = x
        for block in self.blocks:
            h = block(h)
        return F.sum(F.relu(h), axis=(2, 3))

    def forward(self, x: Tensor, y: Any = None) -> Tensor:
        check_images(x, self.channels, self.image_size)
        check_labels(y, x.shape[0], self.num_classes)
        embed = self.embed if self.num_classes is not None else None
        return projection_logit(self._features(x), self.linear, embed, y)

    def extra_repr(self) -> str:
        return (f"image_size={self.image_size}, channels={self.channels}, width={self.width}, "
                f"num_classes={self.num_classes}, arch={self.arch!r}")
