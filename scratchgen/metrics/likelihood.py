"""Estimates of a VAE's log-likelihood log p(x): the ELBO and the importance-weighted bound.

With k samples z_1..z_k ~ q(z|x), the importance weights w_i = p(x, z_i) / q(z_i|x) have
mean p(x), so (Burda, Grosse, Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016,
eq. 8)

    L_k(x) = E[ log (1/k) sum_i w_i ] <= log p(x)

and L_1 = ELBO <= L_k <= L_{k+1} <= log p(x), with L_k -> log p(x) as k -> infinity when the
weights p(x, z) / q(z|x) are bounded (their Theorem 1). One draw of

    log (1/k) sum_i p(x, z_i) / q(z_i|x)
        = logsumexp_i( log p(x|z_i) + log p(z_i) - log q(z_i|x) ) - log k

is the estimate returned here, computed with logsumexp: the weights themselves underflow in
float32 (log w is about -100 for an MNIST digit). It is a stochastic lower bound; averaged
over a test set with k = 5000 it is the usual "test log-likelihood" of VAE papers (reported as
a negative log-likelihood in nats).

The model needs ``encode(x) -> (mu, logvar)`` (a diagonal Gaussian q(z|x)) and
``log_px_given_z(x, z) -> (N,)``; its prior is N(0, I) unless it has a method
``prior_log_prob(z) -> (N,)``. Every VAE in ``scratchgen.models`` qualifies.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import scratchgen as sg
import scratchgen.functional as F
from scratchgen.autograd import Tensor, no_grad

__all__ = ["log_importance_weights", "iwae_bound", "iwae_log_likelihood", "evaluate_iwae"]

_LOG_2PI = math.log(2.0 * math.pi)

# The two Gaussian log-densities are written out here rather than imported from
# scratchgen.losses: metrics sit below losses in the house's layers (see DESIGN.md).


def _log_normal(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag exp(logvar)) per row:
    -1/2 sum_j (log 2 pi + logvar_j + (z_j - mu_j)^2 / exp(logvar_j))."""
    d = z - mu
    return ((logvar + d * d * (-logvar).exp() + _LOG_2PI) * -0.5).sum(axis=1)


def _log_standard_normal(z: Tensor) -> Tensor:
    """log N(z; 0, I) per row: -1/2 sum_j (log 2 pi + z_j^2)."""
    return ((z * z + _LOG_2PI) * -0.5).sum(axis=1)


def _prior_log_prob(model: Any, z: Tensor) -> Tensor:
    fn = getattr(model, "prior_log_prob", None)
    return fn(z) if callable(fn) else _log_standard_normal(z)


def _as_input(model: Any, x: Any) -> Tensor:
    """x on the device and in the dtype of the model's parameters."""
    t = x if isinstance(x, Tensor) else sg.tensor(x)
    for p in model.parameters():
        if t.device != p.device or t.dtype != p.dtype:
            t = t.to(p.device, dtype=p.dtype)
        break
    return t


def log_importance_weights(model: Any, x: Tensor, k: int, chunk: int | None = None) -> Tensor:
    """log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x) for k samples z_i ~ q(z|x) per
    image: shape (k, N). Differentiable (reparameterized), so it can train an IWAE too.

    ``chunk`` samples per image are decoded at a time (default: all k at once): the decoder
    sees batches of ``chunk * N`` codes.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    mu, logvar = model.encode(x)
    n, d = mu.shape
    chunk = k if chunk is None else max(1, min(int(chunk), k))
    pieces = []
    done = 0
    while done < k:
        s = min(chunk, k - done)
        # s copies of the batch, sample-major: row j*N + i holds sample j of image i
        mu_r = mu.unsqueeze(0).broadcast_to((s, n, d)).reshape((s * n, d))
        lv_r = logvar.unsqueeze(0).broadcast_to((s, n, d)).reshape((s * n, d))
        x_r = x.unsqueeze(0).broadcast_to((s,) + tuple(x.shape))
        x_r = x_r.reshape((s * n,) + tuple(x.shape[1:]))
        eps = sg.randn((s * n, d), dtype=mu.dtype, device=mu.device)
        z = mu_r + (lv_r * 0.5).exp() * eps                           # z_i ~ q(z|x)
        log_w = (model.log_px_given_z(x_r, z)                         # log p(x|z_i)
                 + _prior_log_prob(model, z)                          # + log p(z_i)
                 - _log_normal(z, mu_r, lv_r))                        # - log q(z_i|x)
        pieces.append(log_w.reshape((s, n)))
        done += s
    return pieces[0] if len(pieces) == 1 else F.concat(pieces, axis=0)


def iwae_bound(model: Any, x: Tensor, k: int = 64, chunk: int | None = None) -> Tensor:
    """One draw of the k-sample importance-weighted estimate per image, (N,) (eq. 8):
    log (1/k) sum_i w_i = logsumexp_i(log w_i) - log k. Its expectation is L_k(x); k = 1
    gives a one-sample estimate of the ELBO (with the KL estimated by sampling as well)."""
    log_w = log_importance_weights(model, x, k, chunk)
    return F.logsumexp(log_w, axis=0) - math.log(k)


def iwae_log_likelihood(model: Any, x: Tensor, k: int = 64, chunk: int | None = None) -> Tensor:
    """``iwae_bound`` without recording a graph, in eval mode (the model's mode is restored)."""
    modes = [(m, m.training) for m in model.modules()] if hasattr(model, "modules") else []
    if hasattr(model, "eval"):
        model.eval()
    try:
        with no_grad():
            return iwae_bound(model, x, k, chunk)
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)


def evaluate_iwae(model: Any, batches: Iterable[Any], k: int = 64,
                  chunk: int | None = None) -> float:
    """The mean of ``iwae_log_likelihood`` over every image of ``batches`` (image batches, or
    ``(images, labels)`` tuples): an estimate of the test log-likelihood in nats (negate it
    for the NLL that papers report)."""
    total, count = 0.0, 0
    for batch in batches:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        x = _as_input(model, x)
        total += float(iwae_log_likelihood(model, x, k, chunk).sum().item())
        count += int(x.shape[0])
    if count == 0:
        raise ValueError("evaluate_iwae got no images")
    return total / count
