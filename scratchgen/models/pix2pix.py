"""Pix2Pix: paired image-to-image translation with a conditional GAN and an L1 term.

P. Isola, J.-Y. Zhu, T. Zhou, A. A. Efros, "Image-to-Image Translation with Conditional
Adversarial Networks", CVPR 2017 (arXiv:1611.07004). Reference code:
github.com/junyanz/pytorch-CycleGAN-and-pix2pix (``models/pix2pix_model.py``,
``models/networks.py``: ``UnetGenerator``, ``UnetSkipConnectionBlock``).

The task: pairs (x, y) of a source image x (an edge map, a label map, a grey photo) and its
target y; learn G with G(x) ~ y. Regression alone, min_G E||y - G(x)||, blurs: where several
y fit one x, the L2 minimiser is their mean and the L1 minimiser their per-pixel median, both
smeared. A conditional discriminator D(x, y) that tells real pairs from generated ones rejects
blur, since no real y is blurred. The objective (eq. 1, 3, 4):

    L_cGAN(G, D) = E_{x,y}[log D(x, y)] + E_x[log(1 - D(x, G(x)))]
    L_L1(G)      = E_{x,y}[ ||y - G(x)||_1 ]
    G*           = arg min_G max_D  L_cGAN(G, D) + lambda L_L1(G),          lambda = 100

trained as the paper's Sec. 3.3 says: alternating steps, D's objective divided by 2 ("slows
down the rate at which D learns relative to G"), G trained with the non-saturating loss
(maximise log D(x, G(x)) instead of minimising log(1 - D(x, G(x)))), Adam lr 2e-4, betas
(0.5, 0.999), weights ~ N(0, 0.02^2). With D's logits l and ``losses.gan``:

    L_D = 1/2 ( E[softplus(-l(x, y))] + E[softplus(l(x, G(x)))] )
    L_G = E[softplus(-l(x, G(x)))] + lambda E|y - G(x)|

D is a PatchGAN (``models.patchgan``) on the channel-wise concatenation [x, y] (or [x, G(x)]),
and every expectation is a mean over the batch and, for D, over its map of patch logits.
``Pix2PixTrainStep(loss="l1" | "l2")`` trains the same U-Net by regression alone (no D), the
paper's "L1" row of Table 1 and the baselines that show the blur.

The generator: a U-Net (Ronneberger et al. 2015), an encoder-decoder whose i-th decoder layer
also reads the i-th encoder layer's output (skip connections by concatenation), so the fine
detail of x that y shares (edges, in a sketch) need not pass through the bottleneck. For
``num_downs`` = n and ``ngf`` = w, with e_i the i-th encoder output (e_{-1} = x):

    encoder  e_0 = Conv(x)                                   w channels, side S / 2
             e_i = Norm(Conv(LeakyReLU_0.2(e_{i-1})))        w min(2^i, 8),  side S / 2^(i+1)
             e_{n-1} = Conv(LeakyReLU_0.2(e_{n-2}))          w min(2^(n-1), 8), side S / 2^n
    decoder  h = Norm(ConvT(ReLU(e_{n-1})))                  innermost
             h = Norm(ConvT(ReLU([e_i, h])))  [+ Dropout]    i = n-2, ..., 1 (channels of e_{i-1})
             G(x) = tanh(ConvT(ReLU([e_0, h])))              out_channels, side S

every Conv and ConvT 4x4 with stride 2 and padding 1 (each halves or doubles the side), so S
must be divisible by 2^n; the reference's ``unet_256`` is n = 8 (256 -> 1 pixel). This is the
reference code's layer order: each encoder block starts with the previous block's LeakyReLU,
so a skip carries the normalised features before their activation; the outermost and the
innermost encoder layers have no norm (the innermost map is 1 x 1 at full depth).

Where this code differs from the reference code (and where the code differs from the paper):

* Dropout. The paper (appendix 6.1.1) puts dropout 0.5 in the first three decoder layers
  ("CD512-CD1024-CD1024"); the reference code puts it in the decoder of the middle blocks of
  ngf * 8 channels, which are the n - 5 blocks just outside the innermost one (3 for
  ``unet_256``; the innermost block itself has none). ``n_dropout=None`` follows the code;
  ``n_dropout=k`` puts it in the k blocks just outside the innermost (at most n - 2). For 32 x
  32 images (n = 5) the code's rule gives no dropout at all, so ``recipes/pix2pix.py`` passes
  ``n_dropout=2``.
* Biases. The reference drops the bias of every conv when the norm is batch norm, also the
  outermost and innermost encoder convs that no norm follows; here only layers followed by
  batch norm lose it (the norm's shift replaces it).
* Test time. The paper runs G at test time "in exactly the same manner as during the
  training phase" (Sec. 3.3): dropout stays on (dropout is G's only noise z, Sec. 3.1) and
  batch norm uses "the statistics of the test batch, rather than aggregated statistics of the
  training batch", which at batch size 1 is instance normalisation. The reference's
  ``test.py`` does the same: it leaves G in training mode unless ``--eval`` is given. Here
  ``G.eval()`` means what it means in PyTorch: no dropout, and batch norm on the running
  statistics. ``translate(G, x, dropout=True, batch_stats=True, batch_size=1)`` (or the
  context manager ``inference_mode``) reproduces the reference's default test behaviour,
  without touching the running statistics.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator

import scratchgen as sg
import scratchgen.functional as F
import scratchgen.nn as nn
from scratchgen.autograd import Tensor
from scratchgen.losses import gan
from scratchgen.models.patchgan import LEAK, NORMS, PatchGANDiscriminator, norm_layer
from scratchgen.models.vae_tools import as_input
from scratchgen.optim import Adam

__all__ = ["UNetGenerator", "Pix2PixTrainStep", "discriminator_loss", "generator_loss",
           "translate", "inference_mode", "build_pix2pix", "LOSSES", "NORMS", "DEFAULTS"]

#: The generator's objectives: the paper's cGAN + lambda L1, or a regression alone.
LOSSES = ("gan+l1", "l1", "l2")
#: The paper's settings (Sec. 3.3, 4 and appendix 6.1, 6.2).
DEFAULTS = {"loss": "gan+l1", "lambda_l1": 100.0, "lr": 2e-4, "betas": (0.5, 0.999),
            "ngf": 64, "ndf": 64, "n_layers": 3, "batch_size": 1, "dropout": 0.5}


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")




class UNetGenerator(nn.Module):
    """G(x): images (N, in_channels, S, S') -> (N, out_channels, S, S') in [-1, 1] (tanh), S and
    S' divisible by 2^num_downs; the layers are the module docstring's.

    ``down[i]`` computes e_i from e_{i-1}; ``up[i]`` is the decoder layer that outputs the
    channels of e_{i-1} (``up[0]`` the image), so the decoder runs ``up[n-1]``, ..., ``up[0]``.
    ``n_dropout``: how many decoder blocks just outside the innermost get Dropout(0.5) when
    ``use_dropout`` (None: the reference's num_downs - 5).
    """

    def __init__(self, in_channels: int, out_channels: int, num_downs: int, ngf: int = 64,
                 norm: str = "batch", use_dropout: bool = True,
                 n_dropout: int | None = None) -> None:
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("ngf", ngf)):
            _check_positive(name, v)
        if isinstance(num_downs, bool) or not isinstance(num_downs, int) or num_downs < 2:
            raise ValueError(f"num_downs must be an integer >= 2, got {num_downs!r}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        n = num_downs
        if n_dropout is None:
            n_dropout = max(n - 5, 0)
        if isinstance(n_dropout, bool) or not isinstance(n_dropout, int) or \
                not 0 <= n_dropout <= n - 2:
            raise ValueError(f"n_dropout must be an integer in [0, num_downs - 2 = {n - 2}], "
                             f"got {n_dropout!r}")
        self.in_channels, self.out_channels, self.num_downs = in_channels, out_channels, n
        self.ngf, self.norm = ngf, norm
        self.n_dropout = n_dropout if use_dropout else 0
        bias = norm != "batch"
        ch = [ngf * min(2 ** i, 8) for i in range(n)]            # channels of e_0 .. e_{n-1}
        down: list[nn.Module] = [nn.Conv2d(in_channels, ch[0], 4, 2, 1)]
        for i in range(1, n - 1):
            down.append(nn.Sequential(nn.LeakyReLU(LEAK), nn.Conv2d(ch[i - 1], ch[i], 4, 2, 1,
                                                                    bias=bias),
                                      norm_layer(norm, ch[i])))
        down.append(nn.Sequential(nn.LeakyReLU(LEAK), nn.Conv2d(ch[n - 2], ch[n - 1], 4, 2, 1)))
        up: list[nn.Module] = [nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(2 * ch[0], out_channels,
                                                                           4, 2, 1), nn.Tanh())]
        dropout_from = n - 1 - self.n_dropout                   # blocks dropout_from .. n-2
        for i in range(1, n):
            in_ch = ch[i] if i == n - 1 else 2 * ch[i]          # the innermost has no skip
            layers = [nn.ReLU(), nn.ConvTranspose2d(in_ch, ch[i - 1], 4, 2, 1, bias=bias),
                      norm_layer(norm, ch[i - 1])]
            if dropout_from <= i <= n - 2:
                layers.append(nn.Dropout(0.5))
            up.append(nn.Sequential(*layers))
        self.down, self.up = nn.ModuleList(down), nn.ModuleList(up)
        nn.init.dcgan_init(self)

    def check_input(self, x: Tensor) -> None:
        """ValueError naming the shape when x is not (N, in_channels, S, S') with S, S'
        divisible by 2^num_downs."""
        k = 2 ** self.num_downs
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"UNetGenerator(in_channels={self.in_channels}) expects "
                             f"(N, {self.in_channels}, H, W) images, got shape {tuple(x.shape)}")
        if x.shape[2] % k or x.shape[3] % k:
            raise ValueError(f"UNetGenerator(num_downs={self.num_downs}) needs H and W divisible "
                             f"by 2^{self.num_downs} = {k}, got shape {tuple(x.shape)} (pad the "
                             f"images, e.g. 28 -> 32 with 2 pixels a side, or use fewer downs)")

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        skips = []
        h = x
        for layer in self.down:
            h = layer(h)
            skips.append(h)                                     # e_0, ..., e_{n-1}
        h = self.up[-1](skips[-1])                              # innermost: no skip
        for i in range(self.num_downs - 2, -1, -1):
            h = self.up[i](F.concat([skips[i], h], axis=1))     # [e_i, h]
        return h

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
                f"num_downs={self.num_downs}, ngf={self.ngf}, norm={self.norm!r}, "
                f"n_dropout={self.n_dropout}")


def build_pix2pix(in_channels: int, out_channels: int, image_size: int, *, ngf: int = 64,
                  ndf: int = 64, n_layers: int = 3, norm: str = "batch",
                  n_dropout: int | None = None, num_downs: int | None = None
                  ) -> tuple[UNetGenerator, PatchGANDiscriminator]:
    """(G, D): the U-Net with num_downs = log2(image_size) (down to a 1 x 1 bottleneck, as
    ``unet_256``) unless given, and the PatchGAN on the in + out channels of a pair."""
    if num_downs is None:
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 4 \
                or image_size & (image_size - 1):
            raise ValueError(f"image size {image_size!r}: give num_downs, or a power-of-two "
                             "side >= 4 (pad 28 -> 32)")
        num_downs = int(round(math.log2(image_size)))
    G = UNetGenerator(in_channels, out_channels, num_downs, ngf, norm, True, n_dropout)
    D = PatchGANDiscriminator(in_channels + out_channels, ndf, n_layers, norm)
    return G, D


# ---- the losses -------------------------------------------------------------------------------

def _pair(source: Tensor, image: Tensor) -> Tensor:
    """D's input: [x, y] concatenated on the channel axis (the paper's D(x, y))."""
    return F.concat([source, image], axis=1)


def discriminator_loss(D: Any, source: Tensor, target: Tensor, fake: Tensor
                       ) -> tuple[Tensor, dict[str, Tensor]]:
    """L_D = 1/2 ( E[softplus(-l(x, y))] + E[softplus(l(x, G(x)))] ), the paper's -L_cGAN
    halved, and D's mean logits ``d_real``, ``d_fake``; ``fake`` = G(x) is detached here, so
    this trains D only."""
    real_logits = D(_pair(source, target))
    fake_logits = D(_pair(source, fake.detach()))
    loss = gan.discriminator_loss(real_logits, fake_logits, "bce") * 0.5
    return loss, {"d_real": real_logits.mean(), "d_fake": fake_logits.mean()}


def generator_loss(D: Any, source: Tensor, target: Tensor, fake: Tensor,
                   loss: str = "gan+l1", lambda_l1: float = 100.0
                   ) -> tuple[Tensor, dict[str, Tensor]]:
    """G's loss and its parts: ``"gan+l1"``: E[softplus(-l(x, G(x)))] + lambda E|y - G(x)|
    (the non-saturating cGAN loss; the gradient reaches G through D); ``"l1"``: E|y - G(x)|;
    ``"l2"``: E(y - G(x))^2 (no D; pass D=None). The parts are unweighted: ``l1`` (always),
    ``l2`` and ``gan``."""
    if loss not in LOSSES:
        raise ValueError(f"unknown pix2pix loss {loss!r} (one of {', '.join(LOSSES)})")
    parts = {"l1": F.l1_loss(fake, target)}
    if loss == "l1":
        return parts["l1"], parts
    if loss == "l2":
        parts["l2"] = F.mse_loss(fake, target)
        return parts["l2"], parts
    if D is None:
        raise ValueError("the 'gan+l1' loss needs a discriminator")
    parts["gan"] = gan.generator_loss(D(_pair(source, fake)), "non-saturating")
    return parts["gan"] + parts["l1"] * lambda_l1, parts


# ---- test-time behaviour ----------------------------------------------------------------------

@contextlib.contextmanager
def inference_mode(G: nn.Module, dropout: bool = False, batch_stats: bool = False
                   ) -> Iterator[nn.Module]:
    """``with inference_mode(G, dropout, batch_stats):`` G in eval mode except that dropout
    stays active (``dropout``) and batch norm normalises with the statistics of the batch it
    sees (``batch_stats``), without changing its running statistics; no graph. ``dropout=True,
    batch_stats=True`` is the reference code's default test mode; both False is ``G.eval()``.
    Every module's mode and the running statistics are restored on exit."""
    modes = [(m, m.training) for m in G.modules()]
    saved = []
    G.eval()
    for m in G.modules():
        if dropout and isinstance(m, nn.Dropout):
            object.__setattr__(m, "training", True)
        if batch_stats and isinstance(m, nn.BatchNorm2d):
            object.__setattr__(m, "training", True)
            saved += [(b, b.data.copy()) for b in (m.running_mean, m.running_var,
                                                     m.num_batches_tracked) if b is not None]
    try:
        with sg.no_grad():
            yield G
    finally:
        for buf, data in saved:
            buf.data = data
        for m, mode in modes:
            object.__setattr__(m, "training", mode)


def translate(G: nn.Module, source: Any, dropout: bool = False, batch_stats: bool = False,
              batch_size: int = 256) -> Tensor:
    """G(x) without a graph for sources x (N, C, H, W) in [-1, 1], in batches; eval mode
    unless ``dropout`` / ``batch_stats`` ask for the reference's test-time behaviour
    (``inference_mode``; with ``batch_stats`` the statistics are those of each batch)."""
    x = as_input(G, source)
    outs = []
    with inference_mode(G, dropout, batch_stats):
        for i in range(0, x.shape[0], batch_size):
            outs.append(G(x[i:i + batch_size]))
    return outs[0] if len(outs) == 1 else F.concat(outs, axis=0)


# ---- training ---------------------------------------------------------------------------------

class Pix2PixTrainStep:
    """One update of D (for ``"gan+l1"``) then one of G per batch of pairs (x, y), as the
    reference's ``Pix2PixModel.optimize_parameters``:

        y~ = G(x)
        theta_D <- Adam step on L_D(x, y, ng(y~))                       (only for "gan+l1")
        theta_G <- Adam step on L_G(x, y, y~)  with D's weights frozen

    G runs once per step: D's update reads y~ detached, G's update the same y~ with its graph.
    ``step((x, y))`` (also ``__call__``) returns floats: ``loss_g``, ``l1`` (always: the
    unweighted E|y - G(x)|), ``l2`` for "l2", and for "gan+l1" ``gan`` (G's cGAN term),
    ``loss_d`` and D's mean logits on real and generated pairs ``d_real``, ``d_fake``.
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module | None = None, *,
                 loss: str = "gan+l1", lambda_l1: float = 100.0, lr: float = 2e-4,
                 betas: tuple[float, float] = (0.5, 0.999)) -> None:
        if loss not in LOSSES:
            raise ValueError(f"unknown pix2pix loss {loss!r} (one of {', '.join(LOSSES)})")
        if not (isinstance(lambda_l1, (int, float)) and math.isfinite(lambda_l1)
                and lambda_l1 >= 0):
            raise ValueError(f"lambda_l1 must be a finite number >= 0, got {lambda_l1!r}")
        if loss == "gan+l1" and discriminator is None:
            raise ValueError("the 'gan+l1' loss needs a discriminator")
        self.G, self.loss, self.lambda_l1 = generator, loss, float(lambda_l1)
        self.D = discriminator if loss == "gan+l1" else None
        self.opt_g = Adam(generator.parameters(), lr=lr, betas=betas)
        self.opt_d = Adam(self.D.parameters(), lr=lr, betas=betas) if self.D is not None else None
        self.steps = 0

    def _batch(self, batch: Any) -> tuple[Tensor, Tensor]:
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise ValueError("a pix2pix batch is a pair (sources, targets)")
        x, y = (as_input(self.G, b).detach() for b in batch)
        if x.shape[0] != y.shape[0] or x.shape[2:] != y.shape[2:]:
            raise ValueError(f"sources {tuple(x.shape)} and targets {tuple(y.shape)} must pair "
                             "up: same number of images, same height and width")
        return x, y

    def step(self, batch: Any) -> dict[str, float]:
        x, y = self._batch(batch)
        self.G.train()
        fake = self.G(x)
        out: dict[str, Tensor] = {}
        if self.D is not None:
            self.D.train()
            loss_d, logits = discriminator_loss(self.D, x, y, fake)
            self.opt_d.zero_grad()
            loss_d.backward()
            self.opt_d.step()
            out.update(logits, loss_d=loss_d)
            self.D.requires_grad_(False)
        try:
            loss_g, parts = generator_loss(self.D, x, y, fake, self.loss, self.lambda_l1)
            self.opt_g.zero_grad()
            loss_g.backward()
            self.opt_g.step()
        finally:
            if self.D is not None:
                self.D.requires_grad_(True)
        self.steps += 1
        out.update(parts, loss_g=loss_g)
        result = {k: v.item() for k, v in out.items()}
        if self.D is not None:
            self.D.zero_grad()
        if not all(math.isfinite(v) for v in result.values()):
            raise FloatingPointError(f"pix2pix losses are not finite at step {self.steps}: "
                                     f"{result}")
        return result

    __call__ = step

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"steps": self.steps, "opt_g": self.opt_g.state_dict()}
        if self.opt_d is not None:
            state["opt_d"] = self.opt_d.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        self.opt_g.load_state_dict(state["opt_g"])
        if self.opt_d is not None:
            self.opt_d.load_state_dict(state["opt_d"])
