"""PatchGAN: a discriminator that classifies each N x N patch of an image as real or fake.

P. Isola, J.-Y. Zhu, T. Zhou, A. A. Efros, "Image-to-Image Translation with Conditional
Adversarial Networks", CVPR 2017 (arXiv:1611.07004), Sec. 3.2.2 and appendix 6.1.2; reference
code: github.com/junyanz/pytorch-CycleGAN-and-pix2pix, ``models/networks.py``,
``NLayerDiscriminator``. Pix2Pix and CycleGAN share it.

Why patches. The L1 term of pix2pix already gets the low frequencies right (the blur is in the
high frequencies), so D only needs to judge local structure. A fully convolutional D with a
small receptive field r outputs a map of logits, one per r x r patch, each asking "is this
patch real?"; the loss averages over the map. Isola et al. read this as a Markov random field:
pixels further apart than a patch are treated as independent. Fewer parameters, any image size.

Layers (k = 4, padding 1 everywhere, ndf = w, n = n_layers):

    Conv(in -> w, stride 2)                                  LeakyReLU(0.2)    (no norm, bias)
    for i = 1 .. n-1:  Conv(-> w min(2^i, 8), stride 2)      norm, LeakyReLU(0.2)
    Conv(-> w min(2^n, 8), stride 1)                         norm, LeakyReLU(0.2)
    Conv(-> 1, stride 1)                                     logits map (no sigmoid)

For an H x W input with H, W divisible by 2^n the map is (H / 2^n - 2) x (W / 2^n - 2): each
stride-2 conv halves the side, each stride-1 conv with k = 4, p = 1 removes one pixel.

Receptive field. Walking back from one output logit, a k x k convolution of stride s maps a
window of r positions to (r - 1) s + k inputs. The two stride-1 convs give r = 1 -> 4 -> 7 and
each of the n stride-2 convs r -> 2 (r - 1) + 4, so r = 16, 34, 70 for n = 1, 2, 3: the
paper's "16x16", "34x34" and (default) "70x70 PatchGAN" (appendix 6.1.2 counts the same layers:
C64-C128-C256-C512 for n = 3). ``receptive_field`` computes this; the tests measure it from
gradients.

As in the reference code:

* ``norm="batch"`` (pix2pix's default), ``"instance"`` (CycleGAN's; no affine map, no running
  statistics) or ``"none"``. Convolutions followed by batch norm have no bias (its shift
  replaces it); with instance norm they keep it (the reference's ``use_bias`` is "norm is
  instance norm", whose reference version has no affine shift); the first and last conv always
  keep it. One difference: with ``norm="none"`` the reference's rule also drops these biases
  (its ``use_bias`` is False for anything but instance norm); here they keep them, since no
  norm follows to supply a shift.
* D outputs logits; the sigmoid lives in the loss (``losses.gan``): the reference pairs the map
  with ``BCEWithLogitsLoss`` (vanilla GAN) or ``MSELoss`` (LSGAN, used by CycleGAN).
* Weights ~ N(0, 0.02^2), batch-norm scales ~ N(1, 0.02^2), biases 0 (the reference's
  ``init_weights(init_type="normal", init_gain=0.02)``), which is ``nn.init.dcgan_init``.

Where the paper's appendix differs from the code: the appendix says that after the last layer
"a convolution is applied to map to a 1-dimensional output, followed by a Sigmoid"; the code (and
this module) leaves the sigmoid to the loss, which is the same function without log(sigmoid)
underflowing.
"""
from __future__ import annotations

from typing import Any

import scratchgen.nn as nn
from scratchgen.autograd import Tensor

__all__ = ["PatchGANDiscriminator", "receptive_field", "patchgan_init_", "norm_layer", "NORMS",
           "LEAK"]

#: D's normalisation choices, as the reference's ``get_norm_layer``.
NORMS = ("batch", "instance", "none")

LEAK = 0.2  # LeakyReLU slope (appendix 6.1.2)
KERNEL = 4


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def receptive_field(n_layers: int) -> int:
    """The side of the input patch one output logit of ``PatchGANDiscriminator(n_layers=n)``
    sees: r = 7 after the two stride-1 4x4 convolutions, then r -> 2 (r - 1) + 4 for each of the
    n stride-2 ones (16, 34, 70 for n = 1, 2, 3)."""
    _check_positive("n_layers", n_layers)
    r = 1
    for stride in [1, 1] + [2] * n_layers:  # from the output back to the input
        r = (r - 1) * stride + KERNEL
    return r


def patchgan_init_(module: Any) -> Any:
    """N(0, 0.02^2) convolution weights, N(1, 0.02^2) batch-norm scales, zero biases, in place
    (the reference's ``init_weights(net, "normal", 0.02)``); the same as ``nn.init.dcgan_init``.
    Instance norm without affine map has nothing to initialise."""
    return nn.init.dcgan_init(module)


def norm_layer(norm: str, channels: int) -> nn.Module:
    """The normalisation layer of the translation networks (the reference's
    ``get_norm_layer``): ``"batch"`` (running statistics, affine), ``"instance"`` (per image,
    no affine map, no running statistics, as the reference) or ``"none"``."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "instance":
        return nn.InstanceNorm2d(channels)  # affine=False, no running statistics (reference)
    return nn.Identity()


class PatchGANDiscriminator(nn.Module):
    """D(x): images (N, in_channels, H, W) -> logits map (N, 1, H', W'), one logit per
    ``receptive_field(n_layers)``-pixel patch. For a conditional D (pix2pix) ``in_channels``
    counts the input and output images' channels together: D sees their concatenation.

    ``self.model`` is the ``nn.Sequential`` of the module docstring's layers.
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3,
                 norm: str = "batch") -> None:
        super().__init__()
        for name, v in (("in_channels", in_channels), ("ndf", ndf), ("n_layers", n_layers)):
            _check_positive(name, v)
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        self.in_channels, self.ndf, self.n_layers, self.norm = in_channels, ndf, n_layers, norm
        bias = norm != "batch"  # batch norm's shift replaces the bias
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, KERNEL, 2, 1),
                                   nn.LeakyReLU(LEAK)]
        mult = 1
        for i in range(1, n_layers):
            prev, mult = mult, min(2 ** i, 8)
            layers += [nn.Conv2d(ndf * prev, ndf * mult, KERNEL, 2, 1, bias=bias),
                       norm_layer(norm, ndf * mult), nn.LeakyReLU(LEAK)]
        prev, mult = mult, min(2 ** n_layers, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, KERNEL, 1, 1, bias=bias),
                   norm_layer(norm, ndf * mult), nn.LeakyReLU(LEAK)]
        layers.append(nn.Conv2d(ndf * mult, 1, KERNEL, 1, 1))
        self.model = nn.Sequential(*layers)
        patchgan_init_(self)

    @property
    def receptive_field(self) -> int:
        """The side of the patch each output logit sees (16, 34, 70 for n_layers 1, 2, 3)."""
        return receptive_field(self.n_layers)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(H', W') of the logits map for an H x W input (ValueError if it would be empty)."""
        h, w = height, width
        for _ in range(self.n_layers):
            h, w = h // 2, w // 2  # k=4, s=2, p=1: floor((h + 2 - 4) / 2) + 1
        h, w = h - 2, w - 2
        if h < 1 or w < 1:
            raise ValueError(f"input of {height}x{width} pixels is too small for a PatchGAN "
                             f"with n_layers={self.n_layers}: the logits map would be {h}x{w}; "
                             f"use sides of at least {2 ** self.n_layers * 3} or fewer layers")
        return h, w

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"PatchGANDiscriminator(in_channels={self.in_channels}) expects "
                             f"(N, {self.in_channels}, H, W) images, got shape {tuple(x.shape)}")
        self.output_size(x.shape[2], x.shape[3])
        return self.model(x)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, ndf={self.ndf}, n_layers={self.n_layers}, "
                f"norm={self.norm!r}, receptive_field={self.receptive_field}")
