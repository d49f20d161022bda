"""What every VAE can do once trained: sample, reconstruct, interpolate, traverse, edit.

These work on any model with

* ``encode(x)``: the code of x -- a Tensor (an autoencoder), or a tuple whose first element is
  the mean of q(z|x) (a VAE: ``(mu, logvar)``). The tools use that mean, the most likely code,
  not a random sample, so the pictures are repeatable;
* ``decode(z)``: the mean image E[x | z] (for a Bernoulli decoder, sigmoid of the logits);
* ``z_dim``: the number of latent units (for sampling from the prior N(0, I)).

Each tool runs without recording a graph and with the model in eval mode (batch norm uses its
running statistics, so one image at a time gives the same result as a batch); the model's
previous mode is restored afterwards. Inputs may be Tensors or NumPy arrays; they are moved to
the model's device and dtype.

Shapes: images are (N, C, H, W) (one image (C, H, W) is treated as a batch of one); the tools
that return several decodes per input return (N, steps, C, H, W), ready for
``images.save_image_grid(out.reshape(-1, C, H, W), path, nrow=steps)``.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Iterable, Iterator, Sequence

import numpy

import scratchgen as sg
from scratchgen import backend
from scratchgen.autograd import Tensor, no_grad
from scratchgen.metrics.likelihood import log_importance_weights

__all__ = [
    "model_device", "model_dtype", "as_input", "evaluating", "latent_code",
    "sample_prior", "reconstruct", "lerp", "slerp", "interpolate", "latent_traversal",
    "unit_activity", "kl_per_unit", "attribute_vector", "edit", "evaluate_loss",
    "evaluate_bounds",
]


# ---- plumbing --------------------------------------------------------------------------------

def _first_parameter(model: Any) -> Tensor | None:
    for p in model.parameters():
        return p
    return None


def model_device(model: Any) -> backend.Device:
    """The device of the model's parameters (the CPU for a model without parameters)."""
    p = _first_parameter(model)
    return p.device if p is not None else backend.device("cpu")


def model_dtype(model: Any) -> numpy.dtype:
    """The floating dtype of the model's parameters (the default dtype without parameters)."""
    p = _first_parameter(model)
    return p.dtype if p is not None else backend.get_default_dtype()


def as_input(model: Any, x: Any) -> Tensor:
    """``x`` as a Tensor on the model's device, in its dtype (floating inputs only are cast)."""
    if isinstance(x, Tensor):
        t = x
    else:
        t = sg.tensor(x)
    dev, dt = model_device(model), model_dtype(model)
    if t.dtype.kind != "f":
        raise TypeError(f"the model takes floating images (e.g. in [0, 1]), got dtype {t.dtype}; "
                        "convert integer pixels first (data.transforms.ToFloat)")
    if t.device != dev or t.dtype != dt:
        t = t.to(dev, dtype=dt)
    return t


def _batch(model: Any, x: Any) -> Tensor:
    x = as_input(model, x)
    image_shape = getattr(model, "image_shape", None)
    if image_shape is not None and tuple(x.shape) == tuple(image_shape):
        x = x.reshape((1,) + tuple(x.shape))
    return x


@contextlib.contextmanager
def evaluating(model: Any) -> Iterator[None]:
    """No graph, eval mode; every submodule's previous train/eval mode is restored on exit."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with no_grad():
            yield
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)


def latent_code(model: Any, x: Any) -> Tensor:
    """The code of x: the mean of q(z|x) for a VAE, z = f(x) for an autoencoder, (N, z_dim)."""
    with evaluating(model):
        out = model.encode(_batch(model, x))
    return out[0] if isinstance(out, tuple) else out


def _decode(model: Any, z: Tensor) -> Tensor:
    with evaluating(model):
        return model.decode(z)


def _as_latent(model: Any, z: Any) -> Tensor:
    return as_input(model, z)


# ---- sampling and reconstruction -------------------------------------------------------------

def sample_prior(model: Any, n: int, temperature: float = 1.0) -> Tensor:
    """Draw z ~ N(0, temperature^2 I) and decode: n new images E[x|z], (n, C, H, W).

    (Kingma & Welling 2014: ancestral sampling of the generative process of their sec. 2.1, z
    from the prior -- N(0, I) in their sec. 3 -- then the decoder.)
    The mean image is shown rather than a Bernoulli sample of it, as is usual for MNIST.
    ``temperature`` < 1 draws from the bulk of the prior (sharper, less varied samples).
    """
    z = sg.randn((int(n), int(model.z_dim)), dtype=model_dtype(model), device=model_device(model))
    if temperature != 1.0:
        z = z * float(temperature)
    return _decode(model, z)


def reconstruct(model: Any, x: Any) -> Tensor:
    """decode(encode(x)): the mean image at the posterior mean, same shape as the batch x."""
    return _decode(model, latent_code(model, x))


# ---- interpolation ---------------------------------------------------------------------------

def lerp(z0: Tensor, z1: Tensor, t: Sequence[float]) -> Tensor:
    """Points (1 - t) z0 + t z1 on the segment, for rows z0, z1 (N, d): shape (N, len(t), d)."""
    xp = z0.xp
    ts = xp.asarray(list(t), dtype=z0.dtype)[None, :, None]
    a, b = z0.data[:, None, :], z1.data[:, None, :]
    return Tensor((1 - ts) * a + ts * b)


def slerp(z0: Tensor, z1: Tensor, t: Sequence[float]) -> Tensor:
    """Spherical interpolation (Shoemake 1985; for latent spaces White 2016):

        slerp(z0, z1; t) = sin((1 - t) W) / sin W * z0 + sin(t W) / sin W * z1,
        W = arccos( z0 . z1 / (|z0| |z1|) )

    It follows the great circle between the directions of z0 and z1 while the norm moves
    linearly -- under a high-dimensional Gaussian prior the norm of typical points is about
    sqrt(d), and the straight segment passes through improbably short vectors. Falls back to
    ``lerp`` for (anti)parallel or zero vectors, where W is undefined. Shape (N, len(t), d).
    """
    xp = z0.xp
    a, b = z0.data.astype(numpy.float64), z1.data.astype(numpy.float64)
    na = xp.linalg.norm(a, axis=1, keepdims=True)
    nb = xp.linalg.norm(b, axis=1, keepdims=True)
    ts = xp.asarray(list(t), dtype=numpy.float64)[None, :, None]
    lin = (1 - ts) * a[:, None, :] + ts * b[:, None, :]
    ok = (na[:, 0] > 1e-12) & (nb[:, 0] > 1e-12)
    cos = (a * b).sum(axis=1) / xp.maximum(na[:, 0] * nb[:, 0], 1e-300)
    omega = xp.arccos(xp.clip(cos, -1.0, 1.0))
    so = xp.sin(omega)
    ok = ok & (so > 1e-6)
    so_safe = xp.where(ok, so, 1.0)[:, None, None]
    om = omega[:, None, None]
    # directions on the great circle, with the norm interpolated linearly
    ua, ub = a / xp.maximum(na, 1e-300), b / xp.maximum(nb, 1e-300)
    direction = (xp.sin((1 - ts) * om) / so_safe) * ua[:, None, :] + \
        (xp.sin(ts * om) / so_safe) * ub[:, None, :]
    norm = (1 - ts) * na[:, None, :] + ts * nb[:, None, :]
    sph = direction * norm
    out = xp.where(ok[:, None, None], sph, lin)
    return Tensor(out.astype(z0.dtype))


def interpolate(model: Any, x_a: Any, x_b: Any, steps: int = 8, method: str = "linear") -> Tensor:
    """Decode the path between the codes of x_a and x_b: (N, steps, C, H, W).

    Column 0 is decode(code(x_a)) and column ``steps - 1`` is decode(code(x_b)) exactly; in
    between the codes are interpolated linearly (``"linear"``) or spherically (``"slerp"``).
    """
    if steps < 2:
        raise ValueError(f"interpolate needs at least 2 steps (the two endpoints), got {steps}")
    za, zb = latent_code(model, x_a), latent_code(model, x_b)
    if za.shape != zb.shape:
        raise ValueError(f"interpolate: x_a and x_b must hold the same number of images, got "
                         f"codes {za.shape} and {zb.shape}")
    ts = [i / (steps - 1) for i in range(steps)]
    if method == "linear":
        path = lerp(za, zb, ts)
    elif method == "slerp":
        path = slerp(za, zb, ts)
    else:
        raise ValueError(f"method must be 'linear' or 'slerp', got {method!r}")
    n, d = za.shape
    images = _decode(model, path.reshape((n * steps, d)))
    return images.reshape((n, steps) + tuple(images.shape[1:]))


# ---- latent traversal ------------------------------------------------------------------------

def latent_traversal(model: Any, x: Any = None, z: Any = None, dims: Iterable[int] | None = None,
                     values: Sequence[float] | None = None, steps: int = 9,
                     limit: float = 3.0) -> Tensor:
    """Vary one latent unit at a time, holding the others: (len(dims), steps, C, H, W).

    The base code is the code of the single image ``x``, or ``z`` (d,), or the prior mean 0.
    Row r sets unit ``dims[r]`` to each of ``values`` (default ``steps`` values evenly spread
    over [-limit, limit], i.e. +-3 prior standard deviations) and decodes. Units the model does
    not use (KL ~ 0, see ``unit_activity``) give rows of identical images.
    """
    d = int(model.z_dim)
    if x is not None and z is not None:
        raise ValueError("give the base point as x (an image) or as z (a code), not both")
    if x is not None:
        base = latent_code(model, x)
        if base.shape[0] != 1:
            raise ValueError(f"latent_traversal takes one base image, got {base.shape[0]}")
        base = base.numpy()[0]
    elif z is not None:
        base = numpy.asarray(z.numpy() if isinstance(z, Tensor) else z, dtype=numpy.float64)
        base = base.reshape(-1)
        if base.shape != (d,):
            raise ValueError(f"latent_traversal: z must have {d} entries, got {base.shape}")
    else:
        base = numpy.zeros(d)
    dims = list(range(d)) if dims is None else [int(i) for i in dims]
    for i in dims:
        if not 0 <= i < d:
            raise ValueError(f"latent unit {i} does not exist (z_dim = {d})")
    vals = numpy.linspace(-limit, limit, steps) if values is None else \
        numpy.asarray(list(values), dtype=numpy.float64)
    codes = numpy.repeat(numpy.asarray(base, dtype=numpy.float64)[None, None, :],
                         len(dims) * len(vals), axis=0).reshape(len(dims), len(vals), d)
    for r, i in enumerate(dims):
        codes[r, :, i] = vals
    zs = _as_latent(model, codes.reshape(-1, d))
    images = _decode(model, zs)
    return images.reshape((len(dims), len(vals)) + tuple(images.shape[1:]))


def kl_per_unit(model: Any, x: Any) -> numpy.ndarray:
    """The KL of each latent unit, averaged over the images x: (z_dim,) nats,
    KL_j = E_x [ 1/2 (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2) ] (the closed form of appendix B,
    per unit). Their sum is the model's KL term; a beta-VAE with large beta, or a capacity-
    annealed one early in training, spends it on few units. Needs ``encode -> (mu, logvar)``."""
    with evaluating(model):
        mu, logvar = model.encode(_batch(model, x))
    m, lv = mu.numpy().astype(numpy.float64), logvar.numpy().astype(numpy.float64)
    return (0.5 * (m * m + numpy.exp(lv) - 1.0 - lv)).mean(axis=0)


def unit_activity(model: Any, x: Any) -> numpy.ndarray:
    """How much each latent unit is used: the variance over the data of its posterior mean,
    A_u = Cov_x( E_{q(z|x)}[z_u] ) (Burda et al. 2016, "Importance Weighted Autoencoders": a
    unit is "active" when A_u > 0.01). A NumPy vector (z_dim,); sort it to pick the units
    worth traversing."""
    codes = latent_code(model, x).numpy().astype(numpy.float64)
    return codes.var(axis=0)


# ---- attribute editing -----------------------------------------------------------------------

def attribute_vector(model: Any, x_with: Any, x_without: Any) -> Tensor:
    """The direction of an attribute in latent space: mean code of the images that have it
    minus mean code of those that do not (z_smile = mean z(smiling) - mean z(neutral)), (d,)."""
    za = latent_code(model, x_with)
    zb = latent_code(model, x_without)
    return za.mean(axis=0) - zb.mean(axis=0)


def edit(model: Any, x: Any, vector: Any, alphas: Sequence[float] = (-2, -1, 0, 1, 2)) -> Tensor:
    """Encode x, move its code along ``vector`` and decode: decode(code(x) + alpha * vector)
    for each alpha, shape (N, len(alphas), C, H, W). alpha = 0 is the plain reconstruction."""
    z = latent_code(model, x)
    v = _as_latent(model, vector).reshape((1, 1, -1))
    a = _as_latent(model, numpy.asarray(list(alphas), dtype=numpy.float64)).reshape((1, -1, 1))
    n, d = z.shape
    codes = (z.reshape((n, 1, d)) + a * v).reshape((n * len(alphas), d))
    images = _decode(model, codes)
    return images.reshape((n, len(alphas)) + tuple(images.shape[1:]))


# ---- evaluation ------------------------------------------------------------------------------

def evaluate_loss(model: Any, batches: Iterable[Any]) -> dict[str, float]:
    """The model's loss terms averaged over every image of ``batches`` (an iterable of image
    batches, or of ``(images, labels)`` tuples such as a DataLoader gives).

    ``model.loss(x)`` returns per-image batch means; they are weighted by the batch size, so
    the result is the mean over images even when the last batch is short. Like the PyTorch
    VAE example's test loss, a VAE's terms are one-sample Monte Carlo estimates (a fresh z per
    image), unbiased for the negative ELBO.
    """
    totals: dict[str, float] = {}
    count = 0
    with evaluating(model):
        for batch in batches:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            x = as_input(model, x)
            terms = model.loss(x)
            n = int(x.shape[0])
            for k, v in terms.items():
                totals[k] = totals.get(k, 0.0) + float(v.item()) * n
            count += n
    if count == 0:
        raise ValueError("evaluate_loss got no images")
    return {k: v / count for k, v in totals.items()}


def evaluate_bounds(model: Any, batches: Iterable[Any], k: int = 64,
                    chunk: int | None = None) -> dict[str, float]:
    """The importance-weighted bound and the ELBO of a VAE, each averaged over every image of
    ``batches`` (image batches, or ``(images, labels)`` tuples), from the same k importance
    weights log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x), z_i ~ q(z|x), per image
    (``metrics.likelihood.log_importance_weights``; Burda et al. 2016, eq. 8):

        "iwae": mean_x [ logsumexp_i(log w_i) - log k ]     (an estimate of L_k <= log p(x))
        "elbo": mean_x [ (1/k) sum_i log w_i ]              (an estimate of L_1, the ELBO)

    in nats per image (higher is better); ``"images"`` counts the images. The ELBO comes free
    with the bound, averaged over k draws instead of one, and ``elbo <= iwae`` holds for every
    image (Jensen's inequality on the same weights)."""
    iwae, elbo, count = 0.0, 0.0, 0
    with evaluating(model):
        for batch in batches:
            x = as_input(model, batch[0] if isinstance(batch, (tuple, list)) else batch)
            log_w = log_importance_weights(model, x, k, chunk)           # (k, N)
            iwae += float((log_w.logsumexp(axis=0) - math.log(k)).sum().item())
            elbo += float(log_w.mean(axis=0).sum().item())
            count += int(x.shape[0])
    if count == 0:
        raise ValueError("evaluate_bounds got no images")
    return {"iwae": iwae / count, "elbo": elbo / count, "images": count}
