"""The alternating updates every GAN here trains with (Goodfellow et al. 2014, Algorithm 1).

Each call of a ``GANTrainStep`` takes one batch of real data and makes one discriminator
update; after every ``n_dis``-th discriminator update it makes one generator update:

    for each batch x (with labels y for a conditional GAN):
        z ~ p(z);  x~ = G(z, y)
        theta_D <- theta_D - eta_D grad L_D( D(x, y), D(ng(x~), y) ) [+ penalty]
        every n_dis-th batch:
            theta_G <- theta_G - eta_G grad L_G( D(x~, y) )        (D held fixed)

with ng(.) a stop-gradient (``detach``): L_D trains D only, and L_G reaches G's weights through
D, whose weights are frozen for that update (no gradient is computed for them at all). When the
generator update follows, it reuses the same x~ (as PyTorch's DCGAN example does), so G runs
once per iteration; with ``n_dis > 1`` the samples of the other discriminator updates are drawn
without a graph. A conditional generator draws its samples for the real batch's labels, so
that real and generated batches carry the same classes (and WGAN-GP's interpolates x^ between
them have one label). The losses are ``scratchgen.losses.gan``'s, chosen by name; a gradient
penalty (WGAN-GP) or R1 is added to L_D when its weight is positive.

Generators take ``G(z)`` or, when conditional, ``G(z, y)``; discriminators ``D(x)`` or
``D(x, y)``; a generator announces its latent size as ``G.z_dim`` and, when conditional, its
number of classes as ``G.num_classes``. A batch is a Tensor of real data, or ``(x, y)``.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterator

import scratchgen as sg
import scratchgen.nn as nn
from scratchgen.autograd import Tensor
from scratchgen.losses import gan
from scratchgen.models.steps import split_batch
from scratchgen.optim import EMA, Adam

__all__ = ["GANTrainStep", "sample_latents", "sample_labels", "restore_generator",
           "standing_statistics"]


def sample_latents(n: int, z_dim: int, like: Tensor, truncation: float | None = None) -> Tensor:
    """n latent vectors z ~ N(0, I) of size z_dim, on ``like``'s device and dtype.

    With ``truncation`` = t > 0 every coordinate outside [-t, t] is drawn again until it falls
    inside (the truncation trick of Brock et al. 2019, "Large Scale GAN Training", Sec. 3.1):
    samples of higher quality and lower variety as t shrinks.
    """
    z = sg.randn(n, z_dim, dtype=like.dtype, device=like.device)
    if truncation is None:
        return z
    if not truncation > 0:
        raise ValueError(f"truncation must be positive, got {truncation}")
    xp = z.xp
    data = z.data
    outside = xp.abs(data) > truncation
    while bool(outside.any()):
        fresh = sg.randn(*data.shape, dtype=like.dtype, device=like.device).data
        data = xp.where(outside, fresh, data)
        outside = xp.abs(data) > truncation
    return Tensor(data)


def sample_labels(n: int, num_classes: int, like: Tensor) -> Tensor:
    """n class labels uniform on {0, ..., num_classes - 1} (int64), on ``like``'s device."""
    return sg.randint(0, num_classes, (n,), device=like.device)


def _first_parameter(module: nn.Module) -> Tensor:
    return next(iter(module.parameters()))


class GANTrainStep:
    """One discriminator update per call and a generator update after every ``n_dis``-th
    (the module docstring gives the algorithm).

    Args:
        generator, discriminator: the two networks (see the module docstring for their
            signatures).
        d_loss, g_loss: a kind of ``gan.discriminator_loss`` and of ``gan.generator_loss``
            ("bce" with "non-saturating" or "minimax"; "lsgan"; "hinge"; "wasserstein").
        lr_g, lr_d, betas: Adam settings, one optimizer per network (the two time-scale
            update rule when lr_d != lr_g, as SAGAN).
        n_dis: discriminator updates per generator update.
        gp_lambda: weight of WGAN-GP's gradient penalty on L_D (0: none).
        r1_gamma: gamma of the R1 penalty on L_D (0: none).
        ema_decay: keep an exponential moving average of G's weights with this decay
            (``self.ema``, swapped in by ``sampling()``); None: none.

    ``step(batch)`` (also ``__call__``) returns floats: ``loss_d``, the mean logits on real
    and generated data (``d_real``, ``d_fake``), the penalty if any, and ``loss_g`` of the
    latest generator update (from the first generator update on).
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module, *,
                 d_loss: str = "bce", g_loss: str = "non-saturating", lr_g: float = 2e-4,
                 lr_d: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999), n_dis: int = 1,
                 gp_lambda: float = 0.0, r1_gamma: float = 0.0,
                 ema_decay: float | None = None) -> None:
        if d_loss not in gan.D_KINDS:
            raise ValueError(f"unknown discriminator loss {d_loss!r} (one of "
                             f"{', '.join(gan.D_KINDS)})")
        if g_loss not in gan.G_KINDS:
            raise ValueError(f"unknown generator loss {g_loss!r} (one of "
                             f"{', '.join(gan.G_KINDS)})")
        if isinstance(n_dis, bool) or not isinstance(n_dis, int) or n_dis < 1:
            raise ValueError(f"n_dis must be a positive integer, got {n_dis!r}")
        if gp_lambda < 0 or r1_gamma < 0:
            raise ValueError(f"penalty weights must be >= 0, got gp_lambda={gp_lambda}, "
                             f"r1_gamma={r1_gamma}")
        self.G, self.D = generator, discriminator
        self.d_loss, self.g_loss = d_loss, g_loss
        self.n_dis = n_dis
        self.gp_lambda, self.r1_gamma = float(gp_lambda), float(r1_gamma)
        self.opt_g = Adam(generator.parameters(), lr=lr_g, betas=betas)
        self.opt_d = Adam(discriminator.parameters(), lr=lr_d, betas=betas)
        self.ema = EMA(generator, ema_decay) if ema_decay is not None else None
        self.d_updates = 0
        self.last_loss_g = float("nan")

    # ---- the two networks as functions of the data ---------------------------------------------
    @property
    def num_classes(self) -> int | None:
        return getattr(self.G, "num_classes", None)

    def generate(self, n: int, labels: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """x~ = G(z, y~) for n fresh latents (and uniform labels y~ when conditional and
        ``labels`` is None); returns (x~, y~)."""
        like = _first_parameter(self.G)
        z = sample_latents(n, self.G.z_dim, like)
        if self.num_classes is None:
            return self.G(z), None
        y = labels if labels is not None else sample_labels(n, self.num_classes, like)
        return self.G(z, y), y

    def critic(self, y: Tensor | None) -> Callable[[Tensor], Tensor]:
        """D as a function of the data alone (labels fixed), for the penalties."""
        return self.D if y is None else (lambda x: self.D(x, y))

    # ---- the updates ----------------------------------------------------------------------------
    def discriminator_loss(self, x: Tensor, y: Tensor | None, fake: Tensor,
                           y_fake: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
        """L_D on real x and generated ``fake`` (detached here) plus the penalty, with parts."""
        real_logits = self.critic(y)(x)
        fake_logits = self.critic(y_fake)(fake.detach())
        loss = gan.discriminator_loss(real_logits, fake_logits, self.d_loss)
        parts = {"d_real": real_logits.mean(), "d_fake": fake_logits.mean()}
        if self.gp_lambda > 0:
            parts["gp"] = gan.gradient_penalty(self.critic(y), x, fake, self.gp_lambda)
            loss = loss + parts["gp"]
        if self.r1_gamma > 0:
            parts["r1"] = gan.r1_penalty(self.critic(y), x, self.r1_gamma)
            loss = loss + parts["r1"]
        return loss, parts

    def discriminator_update(self, x: Tensor, y: Tensor | None, fake: Tensor,
                             y_fake: Tensor | None) -> dict[str, Tensor]:
        """One Adam step of D on L_D; G gets no gradient (its samples are detached), and its
        ``.grad`` is cleared."""
        loss, parts = self.discriminator_loss(x, y, fake, y_fake)
        self.opt_d.zero_grad()
        self.G.zero_grad()
        loss.backward()
        self.opt_d.step()
        parts["loss_d"] = loss
        return parts

    def generator_update(self, fake: Tensor, y_fake: Tensor | None) -> Tensor:
        """One Adam step of G on L_G(D(x~)), ``fake`` carrying G's graph; D's weights are
        frozen meanwhile, so no gradient is computed for them, and their ``.grad`` is cleared."""
        self.D.requires_grad_(False)
        try:
            loss = gan.generator_loss(self.critic(y_fake)(fake), self.g_loss)
            self.opt_g.zero_grad()
            self.D.zero_grad()
            loss.backward()
            self.opt_g.step()
        finally:
            self.D.requires_grad_(True)
        if self.ema is not None:
            self.ema.update()
        return loss

    def step(self, batch: Any) -> dict[str, float]:
        x, y = split_batch(batch, _first_parameter(self.D))
        if (y is None) != (self.num_classes is None):
            raise ValueError("a conditional GAN needs (images, labels) batches and an "
                             "unconditional one plain image batches")
        self.G.train()
        self.D.train()
        update_g = (self.d_updates + 1) % self.n_dis == 0
        if update_g:
            fake, y_fake = self.generate(x.shape[0], y)
        else:
            with sg.no_grad():
                fake, y_fake = self.generate(x.shape[0], y)
        parts = self.discriminator_update(x, y, fake, y_fake)
        self.d_updates += 1
        if update_g:
            self.last_loss_g = self.generator_update(fake, y_fake).item()
        out = {k: v.item() for k, v in parts.items()}
        if self.d_updates >= self.n_dis:     # a generator update has been made
            out["loss_g"] = self.last_loss_g
        if not all(math.isfinite(v) for v in out.values()):
            raise FloatingPointError(f"GAN losses are not finite after discriminator update "
                                     f"{self.d_updates}: {out}")
        return out

    __call__ = step

    # ---- sampling and checkpointing ----------------------------------------------------------
    @contextlib.contextmanager
    def sampling(self) -> Iterator[nn.Module]:
        """``with step.sampling() as G:`` G in eval mode, holding the EMA weights when
        ``ema_decay`` was given (the EMA copy is the one evaluated, with its own batch-norm
        statistics: ``standing_statistics``); on leaving, G's own weights, statistics and mode
        are back."""
        was_training = self.G.training
        self.G.eval()
        try:
            if self.ema is None:
                yield self.G
            else:
                with self.ema.average_parameters(self.G):
                    standing_statistics(self.G)
                    yield self.G
        finally:
            self.G.train(was_training)

    def state_dict(self) -> dict[str, Any]:
        state = {"d_updates": self.d_updates, "last_loss_g": self.last_loss_g,
                 "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict()}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.d_updates = int(state["d_updates"])
        self.last_loss_g = float(state["last_loss_g"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])


def restore_generator(generator: nn.Module, trainer_state: dict[str, Any],
                      ema_decay: float | None = None) -> nn.Module:
    """Load a Trainer checkpoint of a ``GANTrainStep`` run into ``generator``: its weights
    (``modules["generator"]``), then, when the run kept an EMA (``ema_decay``), the averaged
    weights with their own batch-norm statistics (``standing_statistics``), which are the ones
    a finished GAN is sampled and evaluated with; eval mode."""
    generator.load_state_dict(trainer_state["modules"]["generator"])
    if ema_decay:
        ema = EMA(generator, ema_decay)
        ema.load_state_dict(trainer_state["train_step"]["ema"])
        ema.copy_to(generator)
        standing_statistics(generator)
    return generator.eval()


def standing_statistics(generator: nn.Module, batches: int = 16, batch_size: int = 64,
                        seed: int = 0) -> nn.Module:
    """Recompute the batch-norm running statistics of ``generator`` for the weights it holds
    now, in place; a generator without batch norm is left as it is.

    The running means and variances a generator carries were gathered from the activations of
    its *training* weights. An exponential moving average of those weights (``EMA``) is a
    different network whose activations have other means and variances, so in evaluation mode
    its batch norms would normalise with statistics that are not its own (washed-out or
    saturated samples). As BigGAN's "standing statistics" (Brock, Donahue & Simonyan 2019),
    they are measured afresh: reset, then ``batches`` forward passes of ``batch_size`` latents
    (and uniform labels for a conditional G) in training mode without a graph, each batch
    weighted equally (momentum None: the cumulative average). The latents come from their own
    generator (``seed``), so the caller's random stream does not move; G ends in eval mode.
    """
    norms = [m for m in generator.modules()
             if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.track_running_stats]
    if not norms:
        return generator
    like = _first_parameter(generator)
    num_classes = getattr(generator, "num_classes", None)
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    generator.train()
    try:
        with sg.no_grad(), sg.backend.fork_rng(seed):
            for _ in range(batches):
                z = sample_latents(batch_size, generator.z_dim, like)
                if num_classes is None:
                    generator(z)
                else:
                    generator(z, sample_labels(batch_size, num_classes, like))
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        generator.eval()
    return generator
