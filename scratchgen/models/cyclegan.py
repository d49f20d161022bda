"""CycleGAN: unpaired image-to-image translation with cycle consistency.

J.-Y. Zhu, T. Park, P. Isola, A. A. Efros, "Unpaired Image-to-Image Translation using
Cycle-Consistent Adversarial Networks", ICCV 2017 (arXiv:1703.10593). Reference code:
github.com/junyanz/pytorch-CycleGAN-and-pix2pix (``models/cycle_gan_model.py``,
``models/networks.py``, ``util/image_pool.py``).

Two domains A and B with no pairs between them; two generators G: A -> B and F: B -> A; two
discriminators, D_B (real b against G(a)) and D_A (real a against F(b)). The full objective
(paper eq. 3, plus the identity term of Sec. 5.2 and the least-squares GAN of Sec. 4):

    L(G, F, D_A, D_B) = L_GAN(G, D_B) + L_GAN(F, D_A)
                      + lambda L_cyc(G, F)
                      + lambda_id lambda L_idt(G, F)

    L_GAN(G, D_B) = E_b[(D_B(b) - 1)^2] + E_a[D_B(G(a))^2]              (LSGAN, Sec. 4)
    L_cyc(G, F)   = E_a[||F(G(a)) - a||_1] + E_b[||G(F(b)) - b||_1]      (eq. 2)
    L_idt(G, F)   = E_b[||G(b) - b||_1] + E_a[||F(a) - a||_1]            (Sec. 5.2)

with lambda = 10 and lambda_id = 0.5 (the identity term weighs 5). The paper writes the game
as G*, F* = arg min_{G,F} max_{D_A,D_B} L (eq. 4); with least squares (Sec. 4) it is played as
two losses, each minimised by its own players:

    generators:      E_a[(D_B(G(a)) - 1)^2] + E_b[(D_A(F(b)) - 1)^2]
                     + lambda (L1(F(G(a)), a) + L1(G(F(b)), b))
                     + lambda_id lambda (L1(G(b), b) + L1(F(a), a))
    discriminators:  1/2 (E_b[(D_B(b) - 1)^2] + E[D_B(pool_B(G(a)))^2])
                     + 1/2 (E_a[(D_A(a) - 1)^2] + E[D_A(pool_A(F(b)))^2])

where ||.||_1 is the mean absolute difference per pixel (the code's ``L1Loss``), the squares
are averaged over the PatchGAN logits map, and D's loss is halved "to slow down the rate at
which D learns relative to G" (Sec. 7.1). ``losses.gan``'s ``"lsgan"`` losses carry the 1/2 of
Mao et al. on both sides: its D loss 1/2 E[(D(b) - 1)^2] + 1/2 E[D(fake)^2] is exactly the
halved D loss above (the reference's ``(loss_D_real + loss_D_fake) * 0.5``), but its G loss
1/2 E[(D(G(a)) - 1)^2] is half the reference's ``MSELoss(D(G(a)), 1)``, so it is doubled here
to keep the paper's balance against lambda = 10.

Training (Sec. 4 and 7.1), as ``CycleGANTrainStep`` does it:

* each step updates G and F together (one Adam over both), with the discriminators frozen,
  then D_A and D_B together (one Adam over both) on ``detach``-ed fakes;
* the fakes the discriminators see come from an ``ImagePool`` of 50 earlier ones (Shrivastava
  et al. 2017), which damps oscillation;
* Adam lr 2e-4, betas (0.5, 0.999); the rate constant for 100 epochs, then linearly to 0 over
  100 more (``optim.LinearDecayLR``, stepped per epoch); batch size 1;
* weights ~ N(0, 0.02^2), biases 0 (``nn.init.dcgan_init``);
* instance norm (no affine map, no running statistics) in G and D.

Where the paper and the reference code differ: the paper adds the identity term for some tasks
only (painting <-> photo, Sec. 5.2 and 7.1), where the code's default ``lambda_identity`` = 0.5
applies it to every task; this module follows the code (``lambda_identity=0`` removes it).

Where this code and the reference differ: naming. The reference's ``netG_A`` is our G (A -> B)
and its ``netD_A`` judges domain B's images (G_A's outputs); here each discriminator is named
after the domain it judges, as the paper's D_X and D_Y: D_A judges A, D_B judges B.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

import scratchgen as sg
import scratchgen.nn as nn
from scratchgen.autograd import Tensor
from scratchgen.functional import l1_loss
from scratchgen.losses import gan
from scratchgen.models.vae_tools import as_input
from scratchgen.models.patchgan import NORMS, PatchGANDiscriminator, norm_layer
from scratchgen.optim import Adam

__all__ = ["ResnetGenerator", "ResnetBlock", "ImagePool", "CycleGANTrainStep",
           "build_cyclegan", "cycle_loss", "identity_loss", "NORMS", "DEFAULTS"]

#: The paper's settings (Sec. 4, 7.1): lambda, lambda_id, pool size, Adam, widths, epochs.
DEFAULTS = {"lambda_cycle": 10.0, "lambda_identity": 0.5, "pool_size": 50, "lr": 2e-4,
            "betas": (0.5, 0.999), "ngf": 64, "ndf": 64, "batch_size": 1, "epochs": 100,
            "epochs_decay": 100}


def _check_positive(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


class ResnetBlock(nn.Module):
    """x + F(x), F = reflect-pad 1, conv 3x3, norm, ReLU, reflect-pad 1, conv 3x3, norm
    (He et al. 2016 as used by Johnson et al. 2016; the reference's ``ResnetBlock``)."""

    def __init__(self, channels: int, norm: str = "instance") -> None:
        super().__init__()
        bias = norm != "batch"
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias),
            norm_layer(norm, channels), nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias),
            norm_layer(norm, channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """CycleGAN's generator (Johnson et al. 2016's network; paper appendix 7.2), images
    (N, in_channels, H, W) -> (N, out_channels, H, W) in [-1, 1]:

        c7s1-ngf:   reflect-pad 3, conv 7x7, norm, ReLU
        d_k:        n_downsampling x (conv 3x3 stride 2, norm, ReLU), doubling the channels
        R_k:        n_blocks residual blocks at ngf 2^n_downsampling channels
        u_k:        n_downsampling x (transposed conv 3x3 stride 2, output padding 1, norm,
                    ReLU), halving the channels and doubling the side
        c7s1-out:   reflect-pad 3, conv 7x7, tanh

    The paper uses 6 blocks for 128x128 images and 9 for 256x256. H and W must be divisible
    by 2^n_downsampling for the output to keep the input's size. ``norm`` is ``"instance"``
    (CycleGAN), ``"batch"`` or ``"none"``; convolutions followed by batch norm have no bias
    (its shift replaces it). With ``"none"`` the reference drops those biases too; here they
    stay, since no norm follows to supply a shift. Sizes for small images: a 28x28 digit is a
    7x7 map after the two downsamplings, which 2 to 3 blocks already cover (each adds 2 cells
    of receptive field per 3x3 convolution), so ``recipes/cyclegan.py`` uses 3.
    """

    def __init__(self, in_channels: int, out_channels: int, ngf: int = 64, n_blocks: int = 9,
                 n_downsampling: int = 2, norm: str = "instance") -> None:
        super().__init__()
        for name, v, lo in (("in_channels", in_channels, 1), ("out_channels", out_channels, 1),
                            ("ngf", ngf, 1), ("n_blocks", n_blocks, 0),
                            ("n_downsampling", n_downsampling, 0)):
            _check_positive(name, v, lo)
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.ngf, self.n_blocks, self.n_downsampling = ngf, n_blocks, n_downsampling
        self.norm = norm
        bias = norm != "batch"
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias),
                                   norm_layer(norm, ngf), nn.ReLU()]
        for i in range(n_downsampling):
            c = ngf * 2 ** i
            layers += [nn.Conv2d(c, 2 * c, 3, 2, 1, bias=bias), norm_layer(norm, 2 * c), nn.ReLU()]
        width = ngf * 2 ** n_downsampling
        layers += [ResnetBlock(width, norm) for _ in range(n_blocks)]
        for i in range(n_downsampling):
            c = ngf * 2 ** (n_downsampling - i)
            layers += [nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1, bias=bias),
                       norm_layer(norm, c // 2), nn.ReLU()]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        nn.init.dcgan_init(self)

    def forward(self, x: Tensor) -> Tensor:
        step = 2 ** self.n_downsampling
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[2] % step or x.shape[3] % step:
            raise ValueError(f"ResnetGenerator takes images (N, {self.in_channels}, H, W) with H "
                             f"and W divisible by {step}, got shape {tuple(x.shape)}")
        return self.model(x)


class ImagePool:
    """The history of generated images the discriminator is trained on (Shrivastava et al.
    2017; the reference's ``ImagePool``). For each image of a batch:

    * while fewer than ``size`` images are stored: store it and return it;
    * then, with probability 1/2, return a stored image picked uniformly and store the new one
      in its place; otherwise return the new image (the pool unchanged).

    ``size`` 0 returns the batch unchanged. The pool draws from its own generator (``seed``),
    and ``state_dict`` holds the stored images and that generator, so that a resumed run
    continues exactly. Images are stored detached.
    """

    def __init__(self, size: int = 50, seed: int = 0) -> None:
        _check_positive("pool size", size, 0)
        self.size = size
        self.images: list[Any] = []      # xp arrays (C, H, W)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.images)

    def query(self, images: Tensor) -> Tensor:
        """The batch the discriminator sees in place of ``images`` (N, C, H, W), detached."""
        data = images.detach().data
        if self.size == 0:
            return Tensor(data)
        out = []
        for image in data:
            if len(self.images) < self.size:
                self.images.append(image.copy())
                out.append(image)
            elif self.rng.uniform() > 0.5:
                k = int(self.rng.integers(self.size))
                out.append(self.images[k])
                self.images[k] = image.copy()
            else:
                out.append(image)
        xp = sg.backend.get_array_module(data)
        return Tensor(xp.stack([xp.asarray(o) for o in out]))

    __call__ = query

    def state_dict(self) -> dict[str, Any]:
        stored = [np.asarray(sg.backend.to_device(im, "cpu")) for im in self.images]
        return {"size": self.size, "images": np.stack(stored) if stored else np.zeros((0,)),
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["size"]) != self.size:
            raise ValueError(f"ImagePool: the state holds a pool of size {state['size']}, this "
                             f"pool has size {self.size}")
        images = np.asarray(state["images"])
        self.images = [im.copy() for im in images] if images.ndim > 1 else []
        self.rng.bit_generator.state = state["rng"]


def cycle_loss(G: Any, F: Any, a: Tensor, b: Tensor) -> Tensor:
    """L_cyc = ||F(G(a)) - a||_1 + ||G(F(b)) - b||_1 (eq. 2), each a mean over pixels."""
    return l1_loss(F(G(a)), a) + l1_loss(G(F(b)), b)


def identity_loss(G: Any, F: Any, a: Tensor, b: Tensor) -> Tensor:
    """L_idt = ||G(b) - b||_1 + ||F(a) - a||_1 (Sec. 5.2): each generator, given an image of
    its target domain, should leave it alone (it keeps the colours of paintings <-> photos)."""
    return l1_loss(G(b), b) + l1_loss(F(a), a)


class CycleGANTrainStep:
    """One CycleGAN iteration on a batch (a, b) of unpaired images in [-1, 1]: the generators'
    update on the full objective, then the discriminators' on pooled fakes (module docstring).

    ``step((a, b))`` returns the losses as floats: ``loss_g`` (the generators' total),
    ``gan_g``, ``gan_f``, ``cycle_a`` (||F(G(a)) - a||_1), ``cycle_b``, ``idt_a`` (||F(a) - a||_1),
    ``idt_b``, ``loss_d_a``, ``loss_d_b`` (each halved). ``opt_g`` (over G and F) and ``opt_d``
    (over D_A and D_B) are the two Adams; ``state_dict`` holds them and both pools.
    """

    def __init__(self, G: nn.Module, F: nn.Module, D_A: nn.Module, D_B: nn.Module, *,
                 lambda_cycle: float = 10.0, lambda_identity: float = 0.5, pool_size: int = 50,
                 lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999), seed: int = 0
                 ) -> None:
        for name, v in (("lambda_cycle", lambda_cycle), ("lambda_identity", lambda_identity)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        self.G, self.F, self.D_A, self.D_B = G, F, D_A, D_B
        self.lambda_cycle, self.lambda_identity = float(lambda_cycle), float(lambda_identity)
        self.pool_a, self.pool_b = ImagePool(pool_size, seed), ImagePool(pool_size, seed + 1)
        self.opt_g = Adam(list(G.parameters()) + list(F.parameters()), lr=lr, betas=betas)
        self.opt_d = Adam(list(D_A.parameters()) + list(D_B.parameters()), lr=lr, betas=betas)
        self.steps = 0

    @property
    def generators(self) -> tuple[nn.Module, nn.Module]:
        return self.G, self.F

    @property
    def discriminators(self) -> tuple[nn.Module, nn.Module]:
        return self.D_A, self.D_B

    def generator_loss(self, a: Tensor, b: Tensor) -> tuple[Tensor, dict[str, Tensor],
                                                            tuple[Tensor, Tensor]]:
        """(the generators' loss, its terms, (G(a), F(b))) for the batch; D's graphs are built
        but it is the caller's choice to freeze D's weights."""
        fake_b, fake_a = self.G(a), self.F(b)
        parts = {
            # twice losses.gan's 1/2 E[(D(x) - 1)^2]: the reference's MSE against 1
            "gan_g": gan.generator_loss(self.D_B(fake_b), "lsgan") * 2.0,
            "gan_f": gan.generator_loss(self.D_A(fake_a), "lsgan") * 2.0,
            "cycle_a": l1_loss(self.F(fake_b), a),
            "cycle_b": l1_loss(self.G(fake_a), b),
        }
        loss = parts["gan_g"] + parts["gan_f"] + (parts["cycle_a"] + parts["cycle_b"]) * \
            self.lambda_cycle
        if self.lambda_identity > 0:
            parts["idt_a"] = l1_loss(self.F(a), a)
            parts["idt_b"] = l1_loss(self.G(b), b)
            loss = loss + (parts["idt_a"] + parts["idt_b"]) * (self.lambda_identity *
                                                               self.lambda_cycle)
        return loss, parts, (fake_b, fake_a)

    def discriminator_loss(self, a: Tensor, b: Tensor, fake_a: Tensor, fake_b: Tensor
                           ) -> tuple[Tensor, dict[str, Tensor]]:
        """(D_A's + D_B's loss, both terms) on real images and the given (pooled) fakes,
        detached here; ``losses.gan``'s lsgan D loss is already the halved one."""
        d_a = gan.discriminator_loss(self.D_A(a), self.D_A(fake_a.detach()), "lsgan")
        d_b = gan.discriminator_loss(self.D_B(b), self.D_B(fake_b.detach()), "lsgan")
        return d_a + d_b, {"loss_d_a": d_a, "loss_d_b": d_b}

    def step(self, batch: Any) -> dict[str, float]:
        a, b = (as_input(self.G, x).detach() for x in batch)
        for m in (self.G, self.F, self.D_A, self.D_B):
            m.train()
        for D in self.discriminators:     # frozen: no gradient for D in G's update
            D.requires_grad_(False)
        try:
            loss_g, parts, (fake_b, fake_a) = self.generator_loss(a, b)
            self.opt_g.zero_grad()
            loss_g.backward()
            self.opt_g.step()
        finally:
            for D in self.discriminators:
                D.requires_grad_(True)
        loss_d, d_parts = self.discriminator_loss(a, b, self.pool_a(fake_a), self.pool_b(fake_b))
        self.opt_d.zero_grad()
        for G in self.generators:         # fakes are detached; clear G's stale gradients
            G.zero_grad()
        loss_d.backward()
        self.opt_d.step()
        self.steps += 1
        out = {"loss_g": loss_g.item(), **{k: v.item() for k, v in parts.items()},
               **{k: v.item() for k, v in d_parts.items()}}
        if not all(math.isfinite(v) for v in out.values()):
            raise FloatingPointError(f"CycleGAN losses are not finite at step {self.steps}: {out}")
        return out

    __call__ = step

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(), "pool_a": self.pool_a.state_dict(),
                "pool_b": self.pool_b.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.pool_a.load_state_dict(state["pool_a"])
        self.pool_b.load_state_dict(state["pool_b"])


def build_cyclegan(channels_a: int, channels_b: int | None = None, *, ngf: int = 64,
                   ndf: int = 64, n_blocks: int = 9, d_layers: int = 3, norm: str = "instance"
                   ) -> tuple[ResnetGenerator, ResnetGenerator, PatchGANDiscriminator,
                              PatchGANDiscriminator]:
    """(G: A -> B, F: B -> A, D_A, D_B): two ``ResnetGenerator`` and two PatchGANs
    (``models.patchgan``, ``d_layers`` stride-2 layers; 3 is the paper's 70x70 PatchGAN)."""
    cb = channels_a if channels_b is None else channels_b
    G = ResnetGenerator(channels_a, cb, ngf, n_blocks, norm=norm)
    F = ResnetGenerator(cb, channels_a, ngf, n_blocks, norm=norm)
    D_A = PatchGANDiscriminator(channels_a, ndf, d_layers, norm=norm)
    D_B = PatchGANDiscriminator(cb, ndf, d_layers, norm=norm)
    return G, F, D_A, D_B
