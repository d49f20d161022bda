"""GAN losses, all on the discriminator's logits (pre-sigmoid scores) and averaged over the batch.

Write D(x) = sigmoid(l(x)) for the probability that x is real and l for the logit the network
outputs. Since log sigmoid(l) = -softplus(-l) and log(1 - sigmoid(l)) = -softplus(l), every
log-probability below is a softplus of a logit: finite for any logit, with gradients that never
divide by a probability that underflowed.

The minimax game (Goodfellow et al. 2014, "Generative Adversarial Nets", eq. 1):

    min_G max_D V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))]

* ``discriminator_loss(real, fake, "bce")``  = -V = E[softplus(-l(x))] + E[softplus(l(G(z)))]
* ``generator_loss(fake, "minimax")``        =      E[log(1 - D(G(z)))] = -E[softplus(l(G(z)))]
  (saturates: when D rejects the samples, l -> -inf and its gradient sigmoid(l) -> 0)
* ``generator_loss(fake, "non-saturating")`` = -E[log D(G(z))] = E[softplus(-l(G(z)))]
  (the paper's Sec. 3 fix: same fixed point, gradient 1 - sigmoid(l) -> 1 where D rejects)

Least squares (Mao et al. 2017, "Least Squares Generative Adversarial Networks", eq. 2 with
the 0-1 coding a = 0, b = c = 1), the raw output l taken as D's score:

* ``"lsgan"``: L_D = 1/2 E[(l(x) - 1)^2] + 1/2 E[l(G(z))^2],  L_G = 1/2 E[(l(G(z)) - 1)^2]

Hinge (Lim & Ye 2017, "Geometric GAN"; Miyato et al. 2018 for SNGAN; Zhang et al. 2019 for
SAGAN):

* ``"hinge"``: L_D = E[relu(1 - l(x))] + E[relu(1 + l(G(z)))],  L_G = -E[l(G(z))]

Wasserstein (Arjovsky et al. 2017, "Wasserstein GAN"; the critic l estimates the
Kantorovich-Rubinstein dual when it is 1-Lipschitz):

* ``"wasserstein"``: L_D = E[l(G(z))] - E[l(x)],  L_G = -E[l(G(z))]

Penalties that keep the critic smooth, each a function of D (any callable from a batch to
logits, e.g. ``lambda x: D(x, y)`` for a conditional one) with the graph kept, so that adding
them to L_D trains D through a double backward:

* ``gradient_penalty`` (Gulrajani et al. 2017, "Improved Training of Wasserstein GANs",
  eq. 3): lam E_x^[(||grad_x^ l(x^)||_2 - 1)^2], x^ = alpha x + (1 - alpha) G(z)
* ``r1_penalty`` (Mescheder et al. 2018, "Which Training Methods for GANs do actually
  Converge?", eq. 9): gamma/2 E_x[||grad_x l(x)||^2] on real data
"""
from __future__ import annotations

from typing import Callable

import scratchgen as sg
import scratchgen.functional as F
from scratchgen.autograd import Tensor

__all__ = ["discriminator_loss", "generator_loss", "gradient_penalty", "r1_penalty",
           "D_KINDS", "G_KINDS"]

#: the ``kind`` values of ``discriminator_loss`` and of ``generator_loss``
D_KINDS = ("bce", "lsgan", "hinge", "wasserstein")
G_KINDS = ("minimax", "non-saturating", "lsgan", "hinge", "wasserstein")


def _check_kind(kind: str, kinds: tuple[str, ...], what: str) -> str:
    if kind not in kinds:
        raise ValueError(f"{what}: unknown kind {kind!r}; choose one of {', '.join(kinds)}")
    return kind


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, kind: str = "bce") -> Tensor:
    """The discriminator's (critic's) loss to minimise, given its logits on a batch of real
    data and on a batch of generated data (which may differ in size); ``kind`` is one of
    ``D_KINDS`` (the formulas are in the module docstring). Pass ``fake_logits`` computed
    on detached samples: this loss trains D only."""
    _check_kind(kind, D_KINDS, "discriminator_loss")
    if kind == "bce":          # -E[log D(x)] - E[log(1 - D(G(z)))]
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if kind == "lsgan":        # 1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2]
        return ((real_logits - 1.0) ** 2).mean() * 0.5 + (fake_logits ** 2).mean() * 0.5
    if kind == "hinge":        # E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    return fake_logits.mean() - real_logits.mean()     # wasserstein: E[D(G(z))] - E[D(x)]


def generator_loss(fake_logits: Tensor, kind: str = "non-saturating") -> Tensor:
    """The generator's loss to minimise, given D's logits on generated data (not detached:
    the gradient reaches G through D); ``kind`` is one of ``G_KINDS``."""
    _check_kind(kind, G_KINDS, "generator_loss")
    if kind == "minimax":          # E[log(1 - D(G(z)))]
        return -F.softplus(fake_logits).mean()
    if kind == "non-saturating":   # -E[log D(G(z))]
        return F.softplus(-fake_logits).mean()
    if kind == "lsgan":            # 1/2 E[(D(G(z)) - 1)^2]
        return ((fake_logits - 1.0) ** 2).mean() * 0.5
    return -fake_logits.mean()     # hinge and wasserstein: -E[D(G(z))]


def _input_gradient(D: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """grad_x sum_i l(x_i) (= each example's own gradient, the examples being independent
    through D), as a differentiable tensor of x's shape."""
    with sg.enable_grad():     # a penalty is a gradient, even where the caller disabled them
        x = x.detach().requires_grad_(True)
        (g,) = sg.grad(D(x).sum(), x, create_graph=True)
    return g


def _per_example_squared_norm(g: Tensor) -> Tensor:
    """||g_i||^2 over all of example i's dimensions (channels and pixels), shape (N,)."""
    return (g * g).reshape(g.shape[0], -1).sum(axis=1)


def gradient_penalty(D: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor,
                     lam: float = 10.0, alpha: Tensor | None = None,
                     eps: float = 1e-12) -> Tensor:
    """WGAN-GP's penalty, lam E[(||grad_x^ D(x^)||_2 - 1)^2], with x^ on the straight line
    between a real and a generated example, x^_i = alpha_i x_i + (1 - alpha_i) G(z_i).

    One alpha_i ~ U[0, 1] per example (broadcast over its channels and pixels), and the norm is
    taken over all of an example's dimensions: a norm per pixel or an alpha per pixel is a
    different (wrong) penalty. ``alpha`` (shape (N,)) may be given, for tests. ``real`` and
    ``fake`` are detached: the penalty trains D only. ``eps`` inside the square root keeps the
    norm differentiable where the gradient vanishes (the official code has no such term; it
    changes the norm by at most 1e-6).
    """
    if real.shape != fake.shape:
        raise ValueError(f"gradient_penalty: real {real.shape} and fake {fake.shape} batches "
                         "must have the same shape")
    n = real.shape[0]
    if alpha is None:
        alpha = sg.rand(n, dtype=real.dtype, device=real.device)
    elif alpha.size != n:
        raise ValueError(f"gradient_penalty: alpha needs one value per example ({n}), "
                         f"got shape {alpha.shape}")
    a = alpha.detach().reshape(n, *([1] * (real.ndim - 1)))
    x_hat = real.detach() * a + fake.detach() * (1.0 - a)
    norm = F.sqrt(_per_example_squared_norm(_input_gradient(D, x_hat)) + eps)
    return ((norm - 1.0) ** 2).mean() * lam


def r1_penalty(D: Callable[[Tensor], Tensor], real: Tensor, gamma: float = 10.0) -> Tensor:
    """R1 (Mescheder et al. 2018, eq. 9): gamma/2 E_x[||grad_x D(x)||^2] on real data, the
    norm over all of an example's dimensions, with the graph kept so that it trains D.

    The paper's 1/2 is kept. (The authors' code, GAN_stability, adds
    ``reg_param * mean_i ||grad_x l(x_i)||^2`` (``compute_grad2`` in ``gan_training/train.py``)
    without the 1/2, so the ``reg_param`` = 10 of its configs is our gamma = 20.)
    """
    g = _input_gradient(D, real)
    return _per_example_squared_norm(g).mean() * (0.5 * gamma)
