"""A hierarchical VAE in the style of VDVAE: a bottom-up encoder, a top-down generator, and one
diagonal-Gaussian latent per top-down block.

R. Child, "Very Deep VAEs Generalize Autoregressive Models and Can Outperform Them on Images",
ICLR 2021 (arXiv:2011.10650); the top-down inference scheme is the ladder VAE's (Sonderby et al.
2016) and IAF-VAE's (Kingma et al. 2016). Small enough for a laptop: the same structure with a
few blocks, not VDVAE's sizes.

The generative model over L latent layers, top (coarse) to bottom (fine):

    p(x, z_1..z_L) = p(z_L) prod_{l<L} p(z_l | z_>l) p(x | z_1..z_L)                        (H1)

and the approximate posterior factorizes in the *same* top-down order:

    q(z_1..z_L | x) = q(z_L | x) prod_{l<L} q(z_l | x, z_>l)                                (H2)

Both conditionals are diagonal Gaussians computed from one shared top-down state s (the
generator's hidden map, which summarizes z_>l): p(z_l | z_>l) from s alone, q(z_l | x, z_>l)
from s and the bottom-up activation a_l of x at the same resolution. The ELBO is

    ELBO(x) = E_q[ log p(x | z) ] - sum_l E_q[ KL( q(z_l | x, z_>l) || p(z_l | z_>l) ) ]    (H3)

where each KL is between two diagonal Gaussians, computed in closed form
(``losses.kl.kl_normal_normal``) at the sampled z_>l; ``loss`` reports it per layer. (H1)-(H3)
are labels used only in this module for the factorizations and the bound that VDVAE (like the
ladder VAE) writes; they are not equation numbers of the paper.

Architecture (VDVAE's, Fig. 3, scaled down):

* bottom-up: a 3x3 convolution, then at each resolution (e.g. 8, 4, 1 for 8x8 images) some
  residual bottleneck blocks; the activation at each resolution is kept for the top-down pass;
  average pooling goes to the next resolution.
* top-down: start from a learned constant map at the lowest resolution; each "decoder block"
  with a latent does

      (mu_p, logvar_p, f) = prior(s);     (mu_q, logvar_q) = posterior(concat(s, a_l))
      z_l = mu_q + sigma_q eps  (training)  or  mu_p + sigma_p eps  (sampling)
      s   = resblock(s + f + proj(z_l))

  then nearest upsampling to the next resolution; a 1x1 convolution of the final map gives the
  Bernoulli logits of the pixels.
* as VDVAE, the prior's last convolution is zero-initialized, so at initialization every
  p(z_l | z_>l) is N(0, I) and f = 0 (and each KL_l equals KL(q || N(0, I))); the last
  convolution of each residual branch and the z projection are scaled by 1/sqrt(#blocks).

With ``layers`` putting one latent at the lowest resolution only and ``top_prior="standard"``
(p(z_L) = N(0, I)), the model is a plain single-stochastic-layer convolutional VAE with the same
networks -- the baseline the example compares against.

Likelihood: binarized pixels under Bernoulli(sigmoid(logits)). The importance-weighted bound
(Burda et al. 2016) uses weights over all layers' samples,

    log w = log p(x | z_1..L) + sum_l [ log p(z_l | z_>l) - log q(z_l | x, z_>l) ],
    IWAE_k(x) = E[ log (1/k) sum_{i=1..k} w_i ]  <=  log p(x),

with each z^i drawn top-down from q (Burda et al.'s k-sample bound L_k, their eq. 8, with the
hierarchy's joint densities in the weights); ``iwae_bound`` evaluates one draw of the quantity
inside the expectation, a stochastic lower bound.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy

import scratchgen as sg
import scratchgen.functional as F
import scratchgen.nn as nn
from scratchgen.autograd import Tensor
from scratchgen.losses.kl import (
    bernoulli_log_prob_with_logits, gaussian_log_prob, kl_normal_normal, reparameterize,
)
from scratchgen.nn import init
from scratchgen.optim import Adam, clip_grad_norm_

__all__ = ["Block", "TopDownBlock", "BottomUp", "TopDown", "HierarchicalVAE",
           "HierarchicalVAETrainStep"]


class Block(nn.Module):
    """VDVAE's bottleneck block: c4(act(c3(act(c2(act(c1(act(x)))))))), plus x if ``residual``.

    c1 and c4 are 1x1 convolutions (in -> mid -> out), c2 and c3 are 3x3 (1x1 at resolutions
    <= 2, where a 3x3 window would see mostly padding). ELU stands in for VDVAE's GELU.
    ``last_scale`` multiplies c4's initial weights (0 zero-initializes it).
    """

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, res: int, residual: bool = True,
                 last_scale: float = 1.0) -> None:
        super().__init__()
        k, p = (3, 1) if res > 2 else (1, 0)
        self.c1 = nn.Conv2d(in_ch, mid_ch, 1)
        self.c2 = nn.Conv2d(mid_ch, mid_ch, k, 1, p)
        self.c3 = nn.Conv2d(mid_ch, mid_ch, k, 1, p)
        self.c4 = nn.Conv2d(mid_ch, out_ch, 1)
        self.residual = residual
        if residual and in_ch != out_ch:
            raise ValueError(f"a residual block needs in_ch == out_ch, got {in_ch} and {out_ch}")
        with sg.no_grad():
            self.c4.weight.data *= last_scale
            if last_scale == 0.0:
                init.zeros_(self.c4.bias)

    def forward(self, x: Tensor) -> Tensor:
        h = self.c1(F.elu(x))
        h = self.c2(F.elu(h))
        h = self.c3(F.elu(h))
        h = self.c4(F.elu(h))
        return x + h if self.residual else h


class BottomUp(nn.Module):
    """x -> {resolution: activation}: in-conv, then ``n_blocks`` blocks per resolution with
    average pooling between resolutions (``resolutions`` from the image size down)."""

    def __init__(self, in_channels: int, width: int, mid: int, resolutions: Sequence[int],
                 n_blocks: int) -> None:
        super().__init__()
        self.resolutions = list(resolutions)
        self.in_conv = nn.Conv2d(in_channels, width, 3, 1, 1)
        scale = 1.0 / math.sqrt(max(1, n_blocks * len(self.resolutions)))
        self.stages = nn.ModuleList([
            nn.Sequential(*[Block(width, mid, width, r, last_scale=scale) for _ in range(n_blocks)])
            for r in self.resolutions])

    def forward(self, x: Tensor) -> dict[int, Tensor]:
        h = self.in_conv(x)
        acts: dict[int, Tensor] = {}
        for i, (r, stage) in enumerate(zip(self.resolutions, self.stages)):
            if h.shape[-1] != r:
                f = h.shape[-1] // r
                h = F.avg_pool2d(h, f)
            h = stage(h)
            acts[r] = h
        return acts


class TopDownBlock(nn.Module):
    """One latent layer of the top-down path: prior p(z_l | z_>l) from the state s, posterior
    q(z_l | x, z_>l) from (s, a_l), and the update s <- resblock(s + f + proj(z_l))."""

    def __init__(self, width: int, mid: int, z_channels: int, res: int, n_blocks_total: int,
                 standard_prior: bool = False) -> None:
        super().__init__()
        self.zc = z_channels
        self.standard_prior = standard_prior
        scale = 1.0 / math.sqrt(max(1, n_blocks_total))
        self.posterior = Block(2 * width, mid, 2 * z_channels, res, residual=False)
        self.prior = Block(width, mid, 2 * z_channels + width, res, residual=False,
                           last_scale=0.0)
        self.z_proj = nn.Conv2d(z_channels, width, 1)
        with sg.no_grad():
            self.z_proj.weight.data *= scale
        self.resnet = Block(width, mid, width, res, last_scale=scale)

    def _prior(self, s: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out = self.prior(s)
        zc = self.zc
        mu_p, logvar_p, feat = out[:, :zc], out[:, zc:2 * zc], out[:, 2 * zc:]
        if self.standard_prior:  # p(z) = N(0, I): a plain VAE's prior
            mu_p, logvar_p = mu_p * 0.0, logvar_p * 0.0
        return mu_p, logvar_p, feat

    def forward(self, s: Tensor, a: Tensor | None, eps: Tensor | None = None,
                temperature: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        """With ``a`` (the bottom-up activation): sample z from the posterior and return the KL
        per example; with ``a=None``: sample z from the prior (generation)."""
        mu_p, logvar_p, feat = self._prior(s)
        stats: dict[str, Tensor] = {"mu_p": mu_p, "logvar_p": logvar_p}
        if a is not None:
            q = self.posterior(F.concat([s, a], axis=1))
            mu_q, logvar_q = q[:, :self.zc], q[:, self.zc:]
            z = reparameterize(mu_q, logvar_q, eps)
            stats.update(mu_q=mu_q, logvar_q=logvar_q,
                         kl=kl_normal_normal(mu_q, logvar_q, mu_p, logvar_p))
        else:
            lv = logvar_p + 2.0 * math.log(temperature) if temperature != 1.0 else logvar_p
            z = reparameterize(mu_p, lv, eps)
        stats["z"] = z
        s = self.resnet(s + feat + self.z_proj(z))
        return s, stats


class TopDown(nn.Module):
    """The generator: a learned constant at the lowest resolution, then per resolution (low to
    high) ``layers[r]`` latent blocks and ``n_blocks`` plain residual blocks, nearest upsampling
    in between, and a 1x1 convolution to the output logits."""

    def __init__(self, out_channels: int, width: int, mid: int, z_channels: int,
                 resolutions: Sequence[int], layers: dict[int, int], n_blocks: int,
                 top_prior: str = "learned") -> None:
        super().__init__()
        self.resolutions = sorted(resolutions)  # low to high
        n_total = sum(layers.get(r, 0) + n_blocks for r in self.resolutions)
        scale = 1.0 / math.sqrt(max(1, n_total))
        r0 = self.resolutions[0]
        self.h_top = nn.Parameter(numpy.zeros((1, width, r0, r0), dtype=sg.get_default_dtype()))
        self.latent_blocks = nn.ModuleList()
        self.plain_blocks = nn.ModuleList()
        self.plan: list[tuple[int, int, int]] = []  # (resolution, #latent blocks, #plain blocks)
        first = True
        for r in self.resolutions:
            for _ in range(layers.get(r, 0)):
                self.latent_blocks.append(TopDownBlock(
                    width, mid, z_channels, r, n_total,
                    standard_prior=(first and top_prior == "standard")))
                first = False
            for _ in range(n_blocks):
                self.plain_blocks.append(Block(width, mid, width, r, last_scale=scale))
            self.plan.append((r, layers.get(r, 0), n_blocks))
        if first:
            raise ValueError("the model needs at least one latent layer")
        self.out_conv = nn.Conv2d(width, out_channels, 1)

    def forward(self, acts: dict[int, Tensor] | None, n: int, eps: Sequence[Tensor | None] | None = None,
                temperature: float = 1.0) -> tuple[Tensor, list[dict[str, Tensor]]]:
        s = self.h_top.broadcast_to((n,) + tuple(self.h_top.shape[1:]))
        stats: list[dict[str, Tensor]] = []
        li = pi = 0
        for r, n_lat, n_plain in self.plan:
            if s.shape[-1] != r:
                s = F.interpolate(s, size=(r, r), mode="nearest")
            for _ in range(n_lat):
                e = eps[li] if eps is not None else None
                s, st = self.latent_blocks[li](s, acts[r] if acts is not None else None, e,
                                               temperature)
                st["resolution"] = r
                stats.append(st)
                li += 1
            for _ in range(n_plain):
                s = self.plain_blocks[pi](s)
                pi += 1
        return self.out_conv(F.elu(s)), stats


def _parse_layers(layers: Any) -> dict[int, int]:
    """``{res: count}`` from a dict or a VDVAE-like string ``"1x1,4x2"`` (res x count)."""
    if isinstance(layers, dict):
        return {int(k): int(v) for k, v in layers.items()}
    out: dict[int, int] = {}
    for part in str(layers).split(","):
        r, _, c = part.strip().partition("x")
        out[int(r)] = out.get(int(r), 0) + (int(c) if c else 1)
    return out


class HierarchicalVAE(nn.Module):
    """A VDVAE-style hierarchical VAE for (N, C, S, S) images with values in {0, 1}.

    Args:
        in_channels, image_size: C and S.
        resolutions: the resolutions of the two paths, from S down (e.g. (8, 4, 1)); each must
            divide the previous one.
        layers: latent layers per resolution, ``{1: 1, 4: 2}`` or ``"1x1,4x2"``.
        width, mid: channels of the state and of the blocks' bottlenecks.
        z_channels: channels of each latent map (a latent at resolution r has z_channels r^2 units).
        enc_blocks, dec_blocks: plain residual blocks per resolution in each path.
        top_prior: ``"learned"`` (VDVAE: p(z_L) from the learned constant) or ``"standard"``
            (p(z_L) = N(0, I)).

    ``loss(x)`` gives the negative ELBO per image (nats) and per-layer KLs (eq. H3); ``sample(n)``,
    ``reconstruct(x)``, ``log_weights(x, k)``, ``iwae_bound(x, k)``.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 8,
                 resolutions: Sequence[int] = (8, 4, 1), layers: Any = "1x1,4x2",
                 width: int = 32, mid: int = 16, z_channels: int = 4, enc_blocks: int = 1,
                 dec_blocks: int = 1, top_prior: str = "learned") -> None:
        super().__init__()
        res = [int(r) for r in resolutions]
        if res[0] != image_size or any(a % b for a, b in zip(res, res[1:])) or \
                sorted(res, reverse=True) != res:
            raise ValueError(f"resolutions must start at image_size={image_size} and decrease, "
                             f"each dividing the previous one; got {tuple(res)}")
        lay = _parse_layers(layers)
        if any(r not in res for r in lay):
            raise ValueError(f"layers {lay} name a resolution not in {tuple(res)}")
        if top_prior not in ("learned", "standard"):
            raise ValueError(f"top_prior must be 'learned' or 'standard', got {top_prior!r}")
        self.config = dict(in_channels=in_channels, image_size=image_size, resolutions=tuple(res),
                           layers=lay, width=width, mid=mid, z_channels=z_channels,
                           enc_blocks=enc_blocks, dec_blocks=dec_blocks, top_prior=top_prior)
        self.image_shape = (in_channels, image_size, image_size)
        self.encoder = BottomUp(in_channels, width, mid, res, enc_blocks)
        self.decoder = TopDown(in_channels, width, mid, z_channels, res, lay, dec_blocks,
                               top_prior)

    @property
    def n_layers(self) -> int:
        return len(self.decoder.latent_blocks)

    def forward(self, x: Tensor, eps: Sequence[Tensor | None] | None = None
                ) -> tuple[Tensor, list[dict[str, Tensor]]]:
        """(logits of p(x | z), per-layer stats) with every z_l sampled from q(z_l | x, z_>l).
        Each stats dict holds mu_q, logvar_q, mu_p, logvar_p, z and kl (N,), top layer first."""
        return self.decoder(self.encoder(x), x.shape[0], eps)

    def loss(self, x: Tensor, eps: Sequence[Tensor | None] | None = None
             ) -> tuple[Tensor, dict[str, Any]]:
        """Negative ELBO per image, averaged over the batch (H3):

            loss = mean_n [ -log p(x_n | z) + sum_l KL_l(x_n) ]

        Returns (loss, stats) with stats["recon"] (mean -log p(x|z)), stats["kl_layers"] (a list
        of per-layer mean KLs, top first, Tensors) and stats["kl"] (their sum), all in nats."""
        logits, layer_stats = self.forward(x, eps)
        nll = -bernoulli_log_prob_with_logits(x, logits)                  # (N,)
        kls = [st["kl"] for st in layer_stats]                            # each (N,)
        kl_total = kls[0]
        for k in kls[1:]:
            kl_total = kl_total + k
        loss = (nll + kl_total).mean()
        return loss, {"recon": nll.mean(), "kl": kl_total.mean(),
                      "kl_layers": [k.mean() for k in kls], "layers": layer_stats}

    def log_weights(self, x: Tensor, k: int) -> Tensor:
        """log w for k importance samples per image: shape (k, N) (see the module docstring)."""
        n = x.shape[0]
        xk = x.reshape((1,) + tuple(x.shape)).broadcast_to((k,) + tuple(x.shape))
        xk = xk.reshape((k * n,) + tuple(x.shape[1:]))
        logits, layer_stats = self.forward(xk)
        logw = bernoulli_log_prob_with_logits(xk, logits)
        for st in layer_stats:
            z = st["z"]
            logw = logw + gaussian_log_prob(z, st["mu_p"], st["logvar_p"]) \
                - gaussian_log_prob(z, st["mu_q"], st["logvar_q"])
        return logw.reshape(k, n)

    def iwae_bound(self, x: Any, k: int = 100, batch_size: int | None = None,
                   reduction: str = "mean") -> Any:
        """One draw of log (1/k) sum_i w_i, an estimate of IWAE_k(x), in nats (higher is
        better): its mean over the images (a float) with ``reduction="mean"``, or one value per
        image (a NumPy array) with ``"none"``.

        ``batch_size`` images (default: about 2000 / k) are processed at a time, under
        ``no_grad``, in evaluation mode."""
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
        p = next(iter(self.parameters()))
        xs = x if isinstance(x, Tensor) else sg.tensor(x, dtype=p.dtype, device=p.device)
        bs = batch_size or max(1, 2000 // k)
        was_training = self.training
        self.eval()
        values = []
        try:
            with sg.no_grad():
                for start in range(0, xs.shape[0], bs):
                    lw = self.log_weights(xs[start:start + bs], k)
                    values.append((lw.logsumexp(axis=0) - math.log(k)).numpy().astype(numpy.float64))
        finally:
            self.train(was_training)
        per_image = numpy.concatenate(values)
        return float(per_image.mean()) if reduction == "mean" else per_image

    def sample(self, n: int, temperature: float = 1.0, probs: bool = True) -> Tensor:
        """n images drawn top-down from the prior: the Bernoulli means sigmoid(logits) when
        ``probs`` (the usual picture), else the logits."""
        logits, _ = self.decoder(None, n, temperature=temperature)
        return F.sigmoid(logits) if probs else logits

    def reconstruct(self, x: Tensor) -> Tensor:
        """sigmoid(logits) of p(x | z), z ~ q(z | x) drawn top-down."""
        logits, _ = self.forward(x)
        return F.sigmoid(logits)


class HierarchicalVAETrainStep:
    """Adam on the negative ELBO, with gradient-norm clipping (VDVAE clips and skips huge
    updates; we only clip). Returns loss, recon, kl and ``kl_<l>`` per layer (top = 0).

    ``free_bits`` = lambda > 0 trains on the "free bits" objective of Kingma et al. (2016,
    "Improved variational inference with inverse autoregressive flow") with one group per
    latent layer: recon + sum_l max(lambda, E_batch KL_l).
    A layer whose batch-mean KL is below lambda nats then gets no gradient pushing it to
    zero, the usual remedy for layers that collapse onto the prior. The reported ``loss`` is
    always the true negative ELBO.
    """

    def __init__(self, model: HierarchicalVAE, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), grad_clip: float | None = 200.0,
                 free_bits: float = 0.0) -> None:
        if not free_bits >= 0:
            raise ValueError(f"free_bits must be a number of nats >= 0, got {free_bits}")
        self.model = model
        self.opt = Adam(model.parameters(), lr=lr, betas=betas)
        self.grad_clip = grad_clip
        self.free_bits = free_bits

    def step(self, batch: Any) -> dict[str, float]:
        p = next(iter(self.model.parameters()))
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        x = x if isinstance(x, Tensor) else sg.tensor(x, dtype=p.dtype, device=p.device)
        self.model.train()
        loss, st = self.model.loss(x)
        objective = loss
        if self.free_bits > 0:
            objective = st["recon"]
            for k in st["kl_layers"]:
                objective = objective + F.maximum(k, self.free_bits)
        self.opt.zero_grad()
        objective.backward()
        out = {"loss": loss.item(), "recon": st["recon"].item(), "kl": st["kl"].item()}
        if self.grad_clip is not None:
            out["grad_norm"] = clip_grad_norm_(self.model.parameters(), self.grad_clip)
        if not math.isfinite(out["loss"]):
            raise FloatingPointError(f"hierarchical VAE loss is not finite: {out}")
        self.opt.step()
        for i, k in enumerate(st["kl_layers"]):
            out[f"kl_{i}"] = k.item()
        return out

    __call__ = step

    def state_dict(self) -> dict[str, Any]:
        return {"opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.opt.load_state_dict(state["opt"])
