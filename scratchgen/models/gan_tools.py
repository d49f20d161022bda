"""What any trained image GAN can do: sample (with truncation), draw a class grid, walk between
latents, and do arithmetic on latent vectors.

The tools take any generator ``G`` with ``G.z_dim`` that maps latents z (N, z_dim) to images,
``G(z)``, or, when ``G.num_classes`` is set, latents and labels, ``G(z, y)``. They run without a
graph, with G in eval mode (batch norm on its running statistics), restoring its mode after.
Pass the generator as ``GANTrainStep.sampling()`` yields it to use its EMA weights. Images come
back in G's own range ([-1, 1] for a tanh output); ``to_unit`` maps them to [0, 1].

* ``sample``: x = G(z), z ~ N(0, I), optionally truncated: coordinates outside [-t, t] drawn
  again (Brock et al. 2019, "Large Scale GAN Training for High Fidelity Natural Image
  Synthesis", Sec. 3.1), which trades variety for quality as t shrinks.
* ``class_grid``: one row per class, the same latent in each column, so a column shows one
  "style" drawn as every class.
* ``interpolate``: G along the straight line between two latents, or along the great circle
  (slerp: Shoemake 1985; for generative models White 2016, "Sampling Generative Networks"),
  which keeps the norm of z near the sqrt(d) shell where N(0, I) puts its mass; the midpoint of
  the straight line has norm about sqrt(d / 2).
* ``latent_arithmetic``: Radford et al. 2016 (DCGAN, Sec. 6.3): the latents of a few samples
  showing a concept are averaged, and sums and differences of these means (e.g. "smiling woman
  - neutral woman + neutral man") give images of the combined concept. Here the concepts are
  the classes a classifier sees in the samples of an unconditional generator, e.g. 7 - 1 + 0.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy

import scratchgen as sg
import scratchgen.functional as F
from scratchgen import backend
from scratchgen.autograd import Tensor
from scratchgen.models.gan_training import sample_latents
from scratchgen.models.vae_tools import (
    as_input, evaluating, lerp, model_device, model_dtype, slerp,
)

__all__ = ["to_unit", "is_conditional", "generate", "sample", "class_grid", "interpolate",
           "parse_equation", "ArithmeticResult", "latent_arithmetic", "INTERPOLATIONS"]

INTERPOLATIONS = ("linear", "spherical")


def to_unit(x: Any) -> Tensor:
    """Images from a tanh generator's [-1, 1] to [0, 1]: (x + 1) / 2, clipped."""
    t = x if isinstance(x, Tensor) else sg.tensor(x)
    return Tensor(t.xp.clip((t.data + 1.0) * 0.5, 0.0, 1.0))


def is_conditional(G: Any) -> bool:
    """Whether G takes labels, G(z, y) (``G.num_classes`` set)."""
    return getattr(G, "num_classes", None) is not None


def _like(G: Any) -> Tensor:
    """A tensor on G's device with G's dtype (for drawing latents)."""
    return sg.zeros(1, dtype=model_dtype(G), device=model_device(G))


def _labels(G: Any, n: int, labels: Any) -> Tensor | None:
    """The n labels to draw with: None for an unconditional G; for a conditional one, an int
    (all n of that class), a sequence / array / Tensor of n, or None (0, 1, ..., K-1, 0, ...)."""
    k = getattr(G, "num_classes", None)
    if k is None:
        if labels is not None:
            raise ValueError("labels were given, but the generator is unconditional")
        return None
    if labels is None:
        y = numpy.arange(n) % k
    elif isinstance(labels, (int, numpy.integer)) and not isinstance(labels, bool):
        y = numpy.full(n, int(labels))
    else:
        data = labels.data if isinstance(labels, Tensor) else labels
        y = numpy.asarray(backend.to_device(data, "cpu") if hasattr(data, "dtype") else data)
        if y.ndim != 1 or y.shape[0] != n:
            raise ValueError(f"need {n} labels, got shape {y.shape}")
    if y.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got {y.dtype}")
    bad = y[(y < 0) | (y >= k)]
    if bad.size:
        raise ValueError(f"label {int(bad[0])} is out of range for {k} classes (0..{k - 1})")
    return sg.tensor(y.astype(numpy.int64), device=model_device(G))


def generate(G: Any, z: Any, labels: Any = None, batch_size: int = 500) -> Tensor:
    """G(z) or G(z, y) for given latents z (N, z_dim), in eval mode without a graph, in chunks of
    ``batch_size``; labels as ``sample`` takes them."""
    z = as_input(G, z)
    if z.ndim != 2 or z.shape[1] != G.z_dim:
        raise ValueError(f"latents must have shape (N, {G.z_dim}), got {tuple(z.shape)}")
    y = _labels(G, z.shape[0], labels)
    parts = []
    with evaluating(G):
        for i in range(0, z.shape[0], batch_size):
            zi = Tensor(z.data[i:i + batch_size])
            parts.append((G(zi) if y is None else G(zi, Tensor(y.data[i:i + batch_size]))).data)
    return Tensor(z.xp.concatenate(parts, axis=0))


def sample(G: Any, n: int, labels: Any = None, truncation: float | None = None,
           batch_size: int = 500) -> Tensor:
    """n images G(z), z ~ N(0, I) (each coordinate redrawn until it lies in [-t, t] when
    ``truncation`` = t is given). A conditional G draws the classes in ``labels`` (an int, or n
    of them; default 0, 1, ..., K-1, 0, 1, ... so that every class is equally present)."""
    if isinstance(n, bool) or not isinstance(n, (int, numpy.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    y = _labels(G, int(n), labels)
    z = sample_latents(int(n), G.z_dim, _like(G), truncation)
    return generate(G, z, y, batch_size)


def class_grid(G: Any, num_classes: int | None = None, per_class: int = 8,
               truncation: float | None = None, shared_latents: bool = True) -> Tensor:
    """(K, per_class, C, H, W): row i holds ``per_class`` images of class i. With
    ``shared_latents`` every row uses the same latents, column j one z drawn as every class."""
    if not is_conditional(G):
        raise ValueError("class_grid needs a conditional generator (G.num_classes)")
    k = G.num_classes if num_classes is None else int(num_classes)
    if not 1 <= k <= G.num_classes:
        raise ValueError(f"num_classes {num_classes!r}: the generator has {G.num_classes}")
    like = _like(G)
    if shared_latents:
        z = sample_latents(per_class, G.z_dim, like, truncation)
        z = Tensor(z.xp.tile(z.data, (k, 1)))
    else:
        z = sample_latents(k * per_class, G.z_dim, like, truncation)
    y = numpy.repeat(numpy.arange(k), per_class)
    images = generate(G, z, y)
    return images.reshape((k, per_class) + tuple(images.shape[1:]))


def interpolate(G: Any, z0: Any, z1: Any, steps: int = 8, method: str = "linear",
                labels: Any = None) -> Tensor:
    """(N, steps, C, H, W): row i is G along the path from z0[i] to z1[i] (column 0 is G(z0[i]),
    the last G(z1[i])); ``method`` "linear" ((1 - t) z0 + t z1) or "spherical" (slerp, the norm
    moving linearly). A conditional G keeps each row's label (``labels``: an int or N of them)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2 (the two end points), got {steps!r}")
    if method not in INTERPOLATIONS:
        raise ValueError(f"method must be one of {', '.join(INTERPOLATIONS)}, got {method!r}")
    a, b = as_input(G, z0), as_input(G, z1)
    if a.ndim == 1:
        a, b = a.reshape(1, -1), b.reshape(1, -1)
    if a.shape != b.shape or a.shape[1] != G.z_dim:
        raise ValueError(f"z0 and z1 must both have shape (N, {G.z_dim}), got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    ts = [i / (steps - 1) for i in range(steps)]
    path = lerp(a, b, ts) if method == "linear" else slerp(a, b, ts)   # (N, steps, d)
    n = a.shape[0]
    y = _labels(G, n, labels)
    y_path = None if y is None else numpy.repeat(backend.to_device(y.data, "cpu"), steps)
    images = generate(G, path.reshape(n * steps, G.z_dim).to(dtype=a.dtype), y_path)
    return images.reshape((n, steps) + tuple(images.shape[1:]))


# ---- latent arithmetic -------------------------------------------------------------------------

_TERM = re.compile(r"\s*([+-]?)\s*(\d+)\s*")


def parse_equation(equation: str, num_classes: int = 10) -> list[tuple[int, int]]:
    """"7 - 1 + 0" -> [(+1, 7), (-1, 1), (+1, 0)]: signed class terms (ValueError otherwise)."""
    terms, pos = [], 0
    text = str(equation).strip()
    if not text:
        raise ValueError("equation is empty; write it like '7 - 1 + 0'")
    while pos < len(text):
        m = _TERM.match(text, pos)
        if m is None or (terms and not m.group(1)):
            raise ValueError(f"equation {equation!r}: write classes joined by + and -, "
                             "like '7 - 1 + 0'")
        cls = int(m.group(2))
        if cls >= num_classes:
            raise ValueError(f"equation {equation!r}: class {cls} is out of range for "
                             f"{num_classes} classes (0..{num_classes - 1})")
        terms.append((-1 if m.group(1) == "-" else 1, cls))
        pos = m.end()
    return terms


def _format_equation(terms: Sequence[tuple[int, int]]) -> str:
    out = ""
    for i, (s, c) in enumerate(terms):
        out += (("-" if s < 0 else "") if i == 0 else (" - " if s < 0 else " + ")) + str(c)
    return out


@dataclass
class ArithmeticResult:
    """What ``latent_arithmetic`` found and made (images in G's range).

    ``terms``: the signed classes; ``group_images`` (k, per_group, C, H, W): the samples whose
    latents were averaged for each term; ``mean_images`` (k, C, H, W): G at each mean latent;
    ``result_images`` (variants, C, H, W): G(z_result), then G(z_result + u), u ~ U[-noise,
    noise]^d; ``result_classes``: the classifier's class for each; ``counts``: how many of the
    candidate samples the classifier put in each class.
    """

    equation: str
    terms: list[tuple[int, int]]
    group_images: Tensor
    mean_images: Tensor
    result_latent: Tensor
    result_images: Tensor
    result_classes: list[int]
    counts: dict[int, int] = field(default_factory=dict)

    @property
    def title(self) -> str:
        """"z(7) - z(1) + z(0)" style caption of the arithmetic."""
        return " ".join(("" if i == 0 and s > 0 else ("- " if s < 0 else "+ ")) + f"z({c})"
                        for i, (s, c) in enumerate(self.terms)).strip()


def _classify(classifier: Any, images: Tensor, preprocess: Callable[[Tensor], Any],
              batch_size: int = 500) -> numpy.ndarray:
    """Class probabilities (N, K) of G's images, as a host array."""
    out = []
    with evaluating(classifier):
        for i in range(0, images.shape[0], batch_size):
            logits = classifier(preprocess(Tensor(images.data[i:i + batch_size])))
            out.append(numpy.asarray(backend.to_device(F.softmax(logits, axis=1).data, "cpu"),
                                     dtype=numpy.float64))
    return numpy.concatenate(out, axis=0)


def latent_arithmetic(G: Any, classifier: Any, equation: str = "7 - 1 + 0",
                      candidates: int = 1000, per_group: int = 3, variants: int = 8,
                      noise: float = 0.25, truncation: float | None = None,
                      preprocess: Callable[[Tensor], Any] | None = None) -> ArithmeticResult:
    """Vector arithmetic on the latents of an unconditional G (Radford et al. 2016, Sec. 6.3).

    ``candidates`` latents are drawn and their images classified; for each class c of the
    equation the ``per_group`` samples classified as c with the highest confidence are kept and
    their latents averaged, zbar_c (the paper averages three exemplars per concept: one sample's
    z is unstable). The result latent is the signed sum, e.g. for "7 - 1 + 0"

        z = zbar_7 - zbar_1 + zbar_0,

    drawn as G(z) and as G(z + u), u ~ U[-noise, noise]^d (the paper: 0.25), ``variants`` images
    in all. ``classifier`` maps ``preprocess(images)`` to class logits (default preprocessing:
    G's [-1, 1] images to [0, 1], what ``metrics.classifier.LeNet`` reads).
    """
    if is_conditional(G):
        raise ValueError("latent_arithmetic is for unconditional generators; a conditional one "
                         "is told its class directly")
    if per_group < 1 or variants < 1 or candidates < per_group:
        raise ValueError(f"need candidates >= per_group >= 1 and variants >= 1, got "
                         f"candidates={candidates}, per_group={per_group}, variants={variants}")
    preprocess = preprocess if preprocess is not None else to_unit
    like = _like(G)
    z = sample_latents(int(candidates), G.z_dim, like, truncation)
    images = generate(G, z)
    probs = _classify(classifier, images, preprocess)
    terms = parse_equation(equation, probs.shape[1])
    pred = probs.argmax(axis=1)
    counts = {int(c): int((pred == c).sum()) for c in range(probs.shape[1])}
    xp = z.xp
    means, groups = [], []
    for _, c in terms:
        idx = numpy.flatnonzero(pred == c)
        if idx.size < per_group:
            raise ValueError(f"only {idx.size} of {candidates} samples were classified as {c}; "
                             f"need {per_group} (draw more candidates)")
        best = idx[numpy.argsort(-probs[idx, c], kind="stable")[:per_group]]
        sel = backend.to_device(best, like.device)
        groups.append(images.data[sel])
        means.append(z.data[sel].mean(axis=0))
    z_mean = xp.stack(means)                                            # (k, d)
    signs = xp.asarray([s for s, _ in terms], dtype=z.dtype)[:, None]
    z_result = (signs * z_mean).sum(axis=0)                             # sum_i s_i zbar_i
    u = sg.rand(variants - 1, G.z_dim, dtype=z.dtype, device=like.device).data
    z_variants = xp.concatenate([z_result[None], z_result[None] + (2 * u - 1) * noise], axis=0)
    result = generate(G, Tensor(z_variants))
    result_classes = _classify(classifier, result, preprocess).argmax(axis=1)
    return ArithmeticResult(
        equation=_format_equation(terms), terms=terms,
        group_images=Tensor(xp.stack(groups)), mean_images=generate(G, Tensor(z_mean)),
        result_latent=Tensor(z_result), result_images=result,
        result_classes=[int(c) for c in result_classes], counts=counts)
