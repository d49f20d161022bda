"""Neural style transfer, two ways: train a network once per style and stylise any photo in one
forward pass (Johnson et al.), or optimise the pixels of one picture (Gatys et al.).

J. Johnson, A. Alahi, L. Fei-Fei, "Perceptual Losses for Real-Time Style Transfer and
Super-Resolution", ECCV 2016 (arXiv:1603.08155), with its supplementary material; reference
code github.com/jcjohnson/fast-neural-style (Lua) and the PyTorch example
github.com/pytorch/examples/tree/main/fast_neural_style.
L. A. Gatys, A. S. Ecker, M. Bethge, "Image Style Transfer Using Convolutional Neural
Networks", CVPR 2016.

Both minimise the same perceptual loss of a picture y^ (``scratchgen.losses.perceptual``,
the terms of Johnson Sec. 3, Gatys eq. 7):

    L(y^) = lambda_c l_feat^{relu2_2}(y^, y_c) + lambda_s sum_j l_style^j(y^, y_s)
            + lambda_TV l_TV(y^)

with y_c the content photo, y_s the style image, the feature maps phi_j of a fixed loss network
(VGG-16), l_feat the squared distance of the feature maps and l_style that of their Gram
matrices. They differ in what is optimised:

* Gatys (``optimize_image``): y^ itself, y^* = argmin_y^ L(y^), a few hundred gradient steps
  for every new photo. The paper uses L-BFGS; scratchgen has no L-BFGS, so this uses Adam on
  the pixels (as many re-implementations do; it needs more steps for the same loss).
* Johnson (``TransformerNet``): the weights W of an image transformation network f_W,
  W* = argmin_W E_{y_c}[L(f_W(y_c))] (Johnson eq. 1) over a set of content photos (the
  paper: 80k COCO images, 256x256, batch 4, 40k Adam steps at lr 1e-3); then y^ = f_W(y_c)
  costs one forward pass. ``StyleTransferTrainStep`` is that training step.

The transformation network (Johnson's supplementary, Table 1, as the reference code and the
PyTorch example build it; width w = 32):

    reflection pad 4, conv 9x9, w channels, stride 1    -> instance norm -> ReLU     H x W
    reflection pad 1, conv 3x3, 2w channels, stride 2   -> instance norm -> ReLU     H/2
    reflection pad 1, conv 3x3, 4w channels, stride 2   -> instance norm -> ReLU     H/4
    5 residual blocks of 4w channels (below)                                         H/4
    nearest upsample x2, reflection pad 1, conv 3x3, 2w -> instance norm -> ReLU     H/2
    nearest upsample x2, reflection pad 1, conv 3x3, w  -> instance norm -> ReLU     H
    reflection pad 4, conv 9x9, 3 channels              -> y^ = (tanh(a) + 1) / 2    H x W

    residual block: x + IN(conv3x3(ReLU(IN(conv3x3(x)))))     (each conv reflection-padded)

Where this differs from the paper, and why:

* Instance norm instead of the paper's batch norm: Ulyanov, Vedaldi & Lempitsky 2016 ("Instance
  Normalization: The Missing Ingredient for Fast Stylization") showed that normalising each
  image's channels on their own gives much better stylisations; the authors' released code
  uses it too (with a learned scale and shift, ``affine=True``, as here).
* Upsampling by nearest-neighbour doubling then a 3x3 convolution, where the paper uses two
  3x3 convolutions of stride 1/2 (transposed convolutions). A stride-2 transposed convolution
  whose kernel size (3) is not a multiple of its stride writes some output pixels from more
  kernel taps than their neighbours, which leaves a checkerboard pattern in the picture that
  training must learn to cancel (Odena, Dumoulin & Olah 2016, "Deconvolution and Checkerboard
  Artifacts"); resize-then-convolve gives every output pixel the same number of taps. The
  PyTorch example makes the same choice.
* Reflection padding everywhere (as the PyTorch example), where the paper pads the input by 40
  reflected pixels once and uses unpadded convolutions whose residual blocks crop their
  identity branch: the same goal (no dark zero-padded border), with the output the size of
  the input and no cropping.
* Output range: the paper ends in 150 tanh(a) on mean-centred [0, 255] pixels (a range a
  little wider than the pixels', so that black and white are reached before tanh saturates).
  Here pixels live in [0, 1] and the last layer is y^ = (tanh(a) + 1) / 2 in (0, 1): every
  output is a valid picture, which the loss network (trained on [0, 1] images) expects.

Because of the two stride-2 convolutions and the two doublings, the network keeps the input's
size exactly when H and W are multiples of 4; other sizes are refused (one line naming the
shape) rather than silently cropped or padded.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

import scratchgen as sg
import scratchgen.functional as F
import scratchgen.nn as nn
from scratchgen import optim
from scratchgen.autograd import Tensor

__all__ = ["TransformerNet", "ResidualBlock", "ConvLayer", "UpsampleConvLayer",
           "StyleTransferTrainStep", "ImageOptimizationTrainStep", "optimize_image", "DEFAULTS"]

#: Johnson et al.'s training settings (Sec. 4.1 and the supplementary): Adam at lr 1e-3,
#: batch 4, 256x256 crops, width 32, 5 residual blocks.
DEFAULTS = {"lr": 1e-3, "batch_size": 4, "image_size": 256, "width": 32, "num_residual": 5}


class ConvLayer(nn.Module):
    """Reflection padding of k // 2 pixels, then a k x k convolution (stride s): the output is
    the input's size divided by s, without a zero-padded border."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int = 1) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.pad(x))


class UpsampleConvLayer(nn.Module):
    """Nearest-neighbour doubling of H and W, then a reflection-padded k x k convolution: the
    upsampling without the checkerboard of a stride-2 transposed convolution (module
    docstring)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv = ConvLayer(in_channels, out_channels, kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.up(x))


class ResidualBlock(nn.Module):
    """x + IN(conv(ReLU(IN(conv(x))))) with 3x3 reflection-padded convolutions (He et al. 2016;
    Johnson's supplementary Fig. 1 after Gross & Wilber), no ReLU after the sum."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3)
        self.in1 = nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = ConvLayer(channels, channels, 3)
        self.in2 = nn.InstanceNorm2d(channels, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.in1(self.conv1(x)))
        return x + self.in2(self.conv2(h))


class TransformerNet(nn.Module):
    """Johnson et al.'s image transformation network f_W (the module docstring draws it):
    RGB images (N, 3, H, W) in [0, 1], H and W multiples of 4, to stylised images of the same
    shape in (0, 1).

    Args:
        width: channels of the first layer w (then 2w, 4w); the paper's is 32. Narrower
            networks (8, 16) train on a CPU in minutes, at some cost in the detail they draw.
        num_residual: residual blocks at H/4 (the paper: 5).
    """

    def __init__(self, width: int = 32, num_residual: int = 5) -> None:
        super().__init__()
        if not (isinstance(width, int) and width >= 1):
            raise ValueError(f"TransformerNet: width must be a positive integer, got {width!r}")
        if not (isinstance(num_residual, int) and num_residual >= 0):
            raise ValueError(f"TransformerNet: num_residual must be an integer >= 0, got "
                             f"{num_residual!r}")
        w = width
        self.width, self.num_residual = w, num_residual
        self.down = nn.Sequential(
            ConvLayer(3, w, 9), nn.InstanceNorm2d(w, affine=True), nn.ReLU(),
            ConvLayer(w, 2 * w, 3, stride=2), nn.InstanceNorm2d(2 * w, affine=True), nn.ReLU(),
            ConvLayer(2 * w, 4 * w, 3, stride=2), nn.InstanceNorm2d(4 * w, affine=True),
            nn.ReLU())
        self.residual = nn.Sequential(*[ResidualBlock(4 * w) for _ in range(num_residual)])
        self.up = nn.Sequential(
            UpsampleConvLayer(4 * w, 2 * w), nn.InstanceNorm2d(2 * w, affine=True), nn.ReLU(),
            UpsampleConvLayer(2 * w, w), nn.InstanceNorm2d(w, affine=True), nn.ReLU())
        self.out = ConvLayer(w, 3, 9)

    @staticmethod
    def check_input(shape: tuple[int, ...]) -> None:
        """Raise a one-line ``ValueError`` for inputs the network cannot keep the size of."""
        if len(shape) != 4 or shape[1] != 3:
            raise ValueError(f"TransformerNet takes RGB images (N, 3, H, W), got shape {shape}")
        h, w = shape[2:]
        if h % 4 or w % 4:
            raise ValueError(f"TransformerNet: input of shape {shape}: H and W must be "
                             "multiples of 4 (two stride-2 convolutions, two doublings)")
        if min(h, w) < 8:
            raise ValueError(f"TransformerNet: input of shape {shape} is too small; H and W "
                             "need at least 8 pixels (reflection padding at H/4)")

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(tuple(x.shape))
        a = self.out(self.up(self.residual(self.down(x))))
        return (F.tanh(a) + 1.0) * 0.5


class StyleTransferTrainStep:
    """One training step of Johnson et al.: on a batch of content photos y_c (N, 3, H, W) in
    [0, 1], y^ = f_W(y_c), then one Adam step on

        L = lambda_c l_feat(y^, y_c) + lambda_s l_style(y^, y_s) + lambda_TV l_TV(y^)

    (the content target is the photo itself). ``loss_fn`` is a ``PerceptualLoss`` holding the
    weights and the loss network; ``style_grams`` its ``style_targets(style image)``. Returns
    the unweighted terms and the total, as floats. Its state (Adam's) is checkpointed by the
    ``Trainer`` through ``state_dict``.
    """

    def __init__(self, net: TransformerNet, loss_fn: Any, style_grams: list[Tensor],
                 lr: float = DEFAULTS["lr"]) -> None:
        self.net, self.loss_fn, self.style_grams = net, loss_fn, style_grams
        self.optimizer = optim.Adam(net.parameters(), lr=lr)

    def __call__(self, batch: Any) -> dict[str, float]:
        content = batch[0] if isinstance(batch, (tuple, list)) else batch
        self.net.train()
        y_hat = self.net(content)
        total, parts = self.loss_fn(y_hat, content, self.style_grams)
        self.optimizer.zero_grad()
        total.backward()
        self.optimizer.step()
        return {**parts, "loss": total.item()}

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])


class ImageOptimizationTrainStep:
    """One step of Gatys et al.'s optimisation of the pixels x of a picture (``optimize_image``
    runs it): the loss and its gradient at x_t, an Adam step, and the clip back to [0, 1].
    ``image`` is the parameter being optimised; ``state_dict`` holds it and Adam's moments,
    so a ``Trainer`` can checkpoint and resume the optimisation."""

    def __init__(self, loss: Callable[[Tensor], tuple[Tensor, Mapping[str, float]]],
                 init: Any, lr: float = 0.02) -> None:
        if not lr > 0:
            raise ValueError(f"optimize_image: lr must be positive, got {lr!r}")
        data = init.detach().data if isinstance(init, Tensor) else np.asarray(init, np.float32)
        if data.ndim != 4 or data.shape[1] != 3:
            raise ValueError(f"optimize_image: init must be an image (1, 3, H, W), got shape "
                             f"{tuple(data.shape)}")
        self.loss = loss
        self.image = nn.Parameter(sg.tensor(data.copy()))
        self.optimizer = optim.Adam([self.image], lr=lr)

    def __call__(self, batch: Any = None) -> dict[str, float]:
        total, parts = self.loss(self.image)
        self.optimizer.zero_grad()
        total.backward()
        self.optimizer.step()
        with sg.no_grad():
            xp = sg.backend.get_array_module(self.image.data)
            self.image.data[...] = xp.clip(self.image.data, 0.0, 1.0)
        return {**{k: float(v) for k, v in parts.items()}, "loss": total.item()}

    def state_dict(self) -> dict[str, Any]:
        return {"image": self.image.data.copy(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.image.data[...] = state["image"]
        self.optimizer.load_state_dict(state["optimizer"])


def optimize_image(loss: Callable[[Tensor], tuple[Tensor, Mapping[str, float]]],
                   init: Any, steps: int = 300, lr: float = 0.02,
                   callback: Callable[[int, Tensor, Mapping[str, float]], None] | None = None
                   ) -> tuple[Tensor, list[dict[str, float]]]:
    """Gatys et al.'s style transfer: the picture x that minimises ``loss(x)``, by ``steps``
    Adam steps on its pixels from ``init``:

        x_0 = init,   x_{t+1} = clip(x_t - Adam(grad_x L(x_t)), 0, 1)

    ``loss(x) -> (total, parts)`` is the perceptual loss of the picture, e.g.
    ``lambda x: perceptual(x, content, grams)``; ``init`` an image (1, 3, H, W) (array or
    Tensor) in [0, 1]: the content photo (it converges in fewer steps) or noise (the paper's
    white-noise start). After each step the pixels are clipped back to [0, 1], the range of a
    picture (a projected gradient step; Gatys' L-BFGS leaves them free and clips at the end).
    ``callback(step, x, parts)`` runs after every step (for pictures along the way).

    Returns (the final picture, detached, in [0, 1]; one dict per step with the parts of the
    loss and ``"loss"``, measured at x_t before the step).
    """
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"optimize_image: steps must be a positive integer, got {steps!r}")
    step = ImageOptimizationTrainStep(loss, init, lr)
    history: list[dict[str, float]] = []
    for t in range(1, steps + 1):
        history.append(step())
        if callback is not None:
            callback(t, step.image, history[-1])
    return step.image.detach(), history
