"""Perceptual losses: distances between images measured in the feature space of a fixed "loss
network" phi (Johnson, Alahi & Fei-Fei 2016, "Perceptual Losses for Real-Time Style Transfer
and Super-Resolution", Sec. 3; the style term from Gatys, Ecker & Bethge 2016, "Image Style
Transfer Using Convolutional Neural Networks").

Write phi_j(x) for the activations of layer j of phi on the image x, a C_j x H_j x W_j
feature map, and read it as a C_j x (H_j W_j) matrix F.

* Feature reconstruction (content) loss, Johnson eq. 2:

      l_feat^j(y^, y) = 1 / (C_j H_j W_j) ||phi_j(y^) - phi_j(y)||_2^2

  (``feature_reconstruction_loss``: over a batch, the mean of the squared differences).
* Gram matrix, Johnson eq. 3: G_j(x)[c, c'] = 1 / (C_j H_j W_j) sum_{h,w} phi_j(x)[c, h, w]
  phi_j(x)[c', h, w], i.e. G = F F^T / (C H W) (``gram_matrix``). Gatys et al. (eq. 3 and 4) use
  the unnormalised F F^T and put 1 / (4 N_l^2 M_l^2) into the loss instead; the normalisation
  only rescales each layer's weight.
* Style reconstruction loss, Johnson eq. 4, summed over the style layers (Sec. 3.2):

      l_style(y^, y) = sum_j ||G_j(y^) - G_j(y)||_F^2

  (``style_loss``: over a batch, the mean over images of this sum).
* Total variation, Johnson Sec. 3.3 after Mahendran & Vedaldi 2015 (``total_variation_loss``).

``PerceptualLoss`` puts them together as Johnson's style transfer objective (eq. 6 without
the image's own pixel terms):

    L(y^) = lambda_c l_feat(y^, y_c) + lambda_s l_style(y^, y_s) + lambda_TV l_TV(y^)

The loss network is any ``FeatureNetwork`` (``scratchgen.models.vgg``): a module whose
``net(x, layers)`` returns ``{layer name: activation}``.
"""
from __future__ import annotations

from typing import Any, Sequence

import scratchgen as sg
import scratchgen.functional as F
from scratchgen import nn
from scratchgen.autograd import Tensor

__all__ = ["gram_matrix", "feature_reconstruction_loss", "style_loss", "total_variation_loss",
           "PerceptualLoss"]


def _check_4d(x: Tensor, what: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{what}: expected a Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{what}: expected a feature map (N, C, H, W), got shape {x.shape}")


def gram_matrix(features: Tensor) -> Tensor:
    """G[n] = F[n] F[n]^T / (C H W) for features (N, C, H, W) read as F[n] of shape (C, H W):
    the (N, C, C) channel correlations, with Johnson's normalisation (eq. 3). A Gram matrix
    forgets where in the image a feature fired: permuting the pixels leaves it unchanged."""
    _check_4d(features, "gram_matrix")
    n, c, h, w = features.shape
    f = F.reshape(features, (n, c, h * w))
    return F.matmul(f, F.permute(f, (0, 2, 1))) * (1.0 / (c * h * w))


def feature_reconstruction_loss(features: Tensor, target_features: Tensor) -> Tensor:
    """Johnson eq. 2, averaged over the batch: mean_n ||phi(y^_n) - phi(y_n)||_2^2 / (C H W),
    which is the mean squared difference over all N C H W entries (for (N, C) feature vectors,
    of a fully connected layer, the same with C in place of C H W). ``target_features`` may
    have batch size 1 (one content image for the whole batch) and should be computed without
    a graph (it is a constant target)."""
    for t in (features, target_features):
        if not isinstance(t, Tensor) or t.ndim < 2:
            raise ValueError("feature_reconstruction_loss: expected feature maps (N, C, H, W) "
                             f"or vectors (N, C), got {getattr(t, 'shape', type(t).__name__)}")
    if (target_features.shape[1:] != features.shape[1:]
            or target_features.shape[0] not in (1, features.shape[0])):
        raise ValueError(f"feature_reconstruction_loss: features {features.shape} and target "
                         f"{target_features.shape} differ in shape")
    return ((features - target_features) ** 2).mean()


def style_loss(features: Sequence[Tensor], target_grams: Sequence[Tensor],
               reduction: str = "sum") -> Tensor:
    """Johnson eq. 4 summed over layers, averaged over the batch:

        l_style = mean_n sum_j ||G(phi_j(y^_n)) - G_j^target||_F^2        (reduction="sum")

    Where the official code differs: ``fast_neural_style/StyleLoss.lua`` compares the Gram
    matrices with ``nn.MSECriterion``, the mean over the C_j x C_j entries instead of their
    sum, i.e. layer j's term divided by C_j^2 (``reduction="mean"``). That changes the
    balance of the layers, not just the overall scale: with VGG-16's widths the paper's form
    weighs relu4_3 (512 channels) 64 times more, relative to relu1_2 (64 channels), than the
    code does; the code's ``style_weight`` values (e.g. 5.0) are for the mean.

    ``features[j]`` is layer j's (N, C_j, H_j, W_j) activation of the generated images,
    ``target_grams[j]`` the (N or 1, C_j, C_j) Gram matrix of the style image at the same layer
    (``gram_matrix`` of its features; batch 1 broadcasts over the batch). The generated and the
    style images may differ in size: Gram matrices are C x C whatever H and W are."""
    if reduction not in ("sum", "mean"):
        raise ValueError(f"style_loss: reduction must be 'sum' (the paper) or 'mean' (the "
                         f"official code), got {reduction!r}")
    features, target_grams = list(features), list(target_grams)
    if len(features) != len(target_grams) or not features:
        raise ValueError(f"style_loss: needs one target Gram matrix per layer, got "
                         f"{len(features)} feature maps and {len(target_grams)} Gram matrices")
    total = None
    for j, (f, g_target) in enumerate(zip(features, target_grams)):
        _check_4d(f, f"style_loss (layer {j})")
        n, c = f.shape[:2]
        if (g_target.ndim != 3 or g_target.shape[1:] != (c, c)
                or g_target.shape[0] not in (1, n)):
            raise ValueError(f"style_loss: layer {j}'s features {f.shape} need a target Gram "
                             f"matrix ({n} or 1, {c}, {c}), got shape {g_target.shape}")
        d = gram_matrix(f) - g_target
        term = (d * d).sum() * (1.0 / (n if reduction == "sum" else n * c * c))
        total = term if total is None else total + term
    return total


def total_variation_loss(x: Tensor) -> Tensor:
    """The squared total variation of images (N, C, H, W), averaged over the batch:

        l_TV(x) = mean_n sum_{c,i,j} (x[n,c,i,j+1] - x[n,c,i,j])^2 + (x[n,c,i+1,j] - x[n,c,i,j])^2

    summed over every horizontally and every vertically neighbouring pair of pixels.

    Squared, because Johnson et al. use the squared form: their paper cites Mahendran &
    Vedaldi 2015's regulariser R_V^beta = sum_{ij} ((x_{i,j+1} - x_ij)^2 + (x_{i+1,j} - x_ij)^2)
    ^(beta/2), and their code (``fast_neural_style/TotalVariation.lua``) implements beta = 2.
    It is smooth (the absolute form, beta = 1, has kinks wherever two neighbours are equal) and
    penalises large jumps more than many small ones, which is what removes the checkerboard and
    high-frequency artefacts of a transformation network. A sum, not a mean, because the
    paper's weights are for a sum (lambda_TV from 1e-6 to 1e-4, Sec. 4.1, on pixels in
    [0, 255]; on pixels in [0, 1] the same image has a TV 255^2 times smaller).

    Where the official code differs: its ``updateGradInput`` is the gradient of
    ``strength / 2`` times this sum taken over the top-left (H-1) x (W-1) pixels only (the last
    row's horizontal and the last column's vertical differences are left out), summed rather
    than averaged over the batch. So its strength s corresponds to our weight s / 2 times N,
    up to those border terms.
    """
    _check_4d(x, "total_variation_loss")
    n = x.shape[0]
    dx = x[:, :, :, 1:] - x[:, :, :, :-1]
    dy = x[:, :, 1:, :] - x[:, :, :-1, :]
    return ((dx * dx).sum() + (dy * dy).sum()) * (1.0 / n)


class PerceptualLoss(nn.Module):
    """Johnson et al.'s style transfer loss on a fixed loss network:

        L(y^) = content_weight l_feat(y^, y_c) + style_weight l_style(y^, y_s)
                + tv_weight l_TV(y^)

    with l_feat summed over ``content_layers`` (Johnson: relu2_2), l_style over ``style_layers``
    (relu1_2, relu2_2, relu3_3, relu4_3). Use::

        loss_fn = PerceptualLoss(random_vgg16(), content_weight=1.0, style_weight=5.0)
        grams = loss_fn.style_targets(style_image)           # once, (1, 3, H, W)
        total, parts = loss_fn(y_hat, content_images, grams)  # parts: content, style, tv

    ``parts`` holds the unweighted terms as floats, for logging. The network is frozen; the
    gradient reaches ``y_hat`` only. ``content`` may be None (a pure texture loss).
    ``style_reduction="mean"`` averages each layer's squared Gram differences over the entries
    as the official code does (see ``style_loss``); the default is the paper's sum.
    """

    def __init__(self, network: nn.Module, content_layers: Sequence[str] = ("relu2_2",),
                 style_layers: Sequence[str] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3"),
                 content_weight: float = 1.0, style_weight: float = 1.0,
                 tv_weight: float = 0.0, style_reduction: str = "sum") -> None:
        super().__init__()
        self.network = network
        self.network.requires_grad_(False)
        self.network.eval()
        self.content_layers = tuple(content_layers)
        self.style_layers = tuple(style_layers)
        if not self.content_layers and not self.style_layers:
            raise ValueError("PerceptualLoss: content_layers and style_layers are both empty")
        for name, w in (("content_weight", content_weight), ("style_weight", style_weight),
                        ("tv_weight", tv_weight)):
            if not w >= 0:
                raise ValueError(f"PerceptualLoss: {name} must be >= 0, got {w}")
        check = getattr(network, "check_layers", None)
        if check is not None:
            check(self.content_layers + self.style_layers)
        self.content_weight = float(content_weight)
        self.style_weight = float(style_weight)
        self.tv_weight = float(tv_weight)
        if style_reduction not in ("sum", "mean"):
            raise ValueError(f"PerceptualLoss: style_reduction must be 'sum' or 'mean', got "
                             f"{style_reduction!r}")
        self.style_reduction = style_reduction

    def _features(self, x: Tensor, layers: Sequence[str]) -> dict[str, Tensor]:
        return self.network(x, layers=tuple(dict.fromkeys(layers)))

    def style_targets(self, style_image: Tensor) -> list[Tensor]:
        """The Gram matrices (1 or N, C_j, C_j) of ``style_image`` at each style layer, the
        constant targets of ``style_loss`` (computed without a graph)."""
        if not self.style_layers:
            return []
        with sg.no_grad():
            feats = self._features(style_image, self.style_layers)
            return [gram_matrix(feats[name]).detach() for name in self.style_layers]

    def forward(self, y_hat: Tensor, content: Tensor | None,
                style_grams: Sequence[Tensor] = ()) -> tuple[Tensor, dict[str, float]]:
        """(L(y^), {"content": ..., "style": ..., "tv": ...}) for generated images ``y_hat``,
        content images ``content`` (the same batch size, or 1, or None) and the style Gram
        matrices ``style_grams`` from ``style_targets``. Terms with a zero weight are skipped."""
        style_grams = list(style_grams)
        if self.style_layers and self.style_weight > 0 and \
                len(style_grams) != len(self.style_layers):
            raise ValueError(f"PerceptualLoss: needs {len(self.style_layers)} style Gram "
                             f"matrices (from style_targets), got {len(style_grams)}")
        use_content = content is not None and bool(self.content_layers) and \
            self.content_weight > 0
        use_style = bool(self.style_layers) and self.style_weight > 0
        wanted = (self.content_layers if use_content else ()) + \
            (self.style_layers if use_style else ())
        feats = self._features(y_hat, wanted) if wanted else {}
        parts: dict[str, Any] = {}
        total = None

        def add(term: Tensor, weight: float) -> None:
            nonlocal total
            total = term * weight if total is None else total + term * weight

        if use_content:
            with sg.no_grad():
                targets = self._features(content, self.content_layers)
            c = None
            for name in self.content_layers:
                t = feature_reconstruction_loss(feats[name], targets[name].detach())
                c = t if c is None else c + t
            add(c, self.content_weight)
            parts["content"] = c.item()
        if use_style:
            s = style_loss([feats[name] for name in self.style_layers], style_grams,
                           self.style_reduction)
            add(s, self.style_weight)
            parts["style"] = s.item()
        if self.tv_weight > 0:
            tv = total_variation_loss(y_hat)
            add(tv, self.tv_weight)
            parts["tv"] = tv.item()
        if total is None:
            raise ValueError("PerceptualLoss: every term is off (no content image, zero "
                             "weights); nothing to compute")
        return total, parts

    def extra_repr(self) -> str:
        return (f"content_layers={self.content_layers}, style_layers={self.style_layers}, "
                f"content_weight={self.content_weight}, style_weight={self.style_weight}, "
                f"tv_weight={self.tv_weight}, style_reduction={self.style_reduction!r}")
