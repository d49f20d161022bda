"""Generated images through a classifier: features, class probabilities and all GAN metrics at once.

The classifier is any module with ``features(x) -> (N, d)`` and ``head(h) -> (N, K)`` logits,
such as the ``LeNet`` of ``scratchgen.metrics.classifier`` (``pretrained_classifier("mnist")``
or ``pretrained_classifier("digits")``). Images are (N, 1, H, W) or (N, H, W): uint8 in 0..255
or floats in [0, 1] (map a tanh generator's [-1, 1] output with (x + 1) / 2 first).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

import scratchgen as sg

from .gan import (_host, _kl_rows, classifier_score, frechet_distance_from_features, kid,
                  precision_recall)

__all__ = ["classifier_outputs", "class_accuracy", "image_metrics"]


def _images(images: Any, name: str) -> np.ndarray:
    x = np.asarray(_host(images))
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] != 1 or x.shape[0] < 1:
        raise ValueError(f"{name} must be grey images (N, 1, H, W) or (N, H, W), got {x.shape}")
    if x.dtype == np.uint8:
        return x.astype(np.float32) * np.float32(1.0 / 255.0)
    x = x.astype(np.float32)
    lo, hi = float(x.min()), float(x.max())
    # a little slack for interpolation overshoot; [-1, 1] images are the common mistake
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < -0.01 or hi > 1.01:
        raise ValueError(f"{name} must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}] (map "
                         "tanh outputs with (x + 1) / 2)")
    return x


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def classifier_outputs(images: Any, classifier: Any,
                       batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, d) and class probabilities softmax(logits) (N, K) of ``images``, float64.

    Runs in batches without gradients and with the classifier in evaluation mode (dropout off),
    on the classifier's device; its training mode is restored afterwards.
    """
    x = _images(images, "classifier_outputs: images")
    if batch_size < 1:
        raise ValueError(f"classifier_outputs: batch_size must be >= 1, got {batch_size}")
    param = next(iter(classifier.parameters()))
    was_training = classifier.training
    classifier.eval()
    feats, logits = [], []
    try:
        with sg.no_grad():
            for i in range(0, x.shape[0], batch_size):
                batch = sg.tensor(x[i:i + batch_size], device=param.device, dtype=param.dtype)
                h = classifier.features(batch)
                feats.append(h.numpy().astype(np.float64))
                logits.append(classifier.head(h).numpy().astype(np.float64))
    finally:
        classifier.train(was_training)
    return np.concatenate(feats), _softmax(np.concatenate(logits))


def class_accuracy(images: Any, labels: Any, classifier: Any, batch_size: int = 500) -> float:
    """Fraction of ``images`` the classifier assigns to the class in ``labels`` (N,): the
    accuracy on real data, or for a conditional generator how often it draws the class asked."""
    y = np.asarray(_host(labels)).reshape(-1)
    n = np.asarray(_host(images)).shape[0]
    if y.shape[0] != n:
        raise ValueError(f"class_accuracy: {n} images but {y.shape[0]} labels")
    _, probs = classifier_outputs(images, classifier, batch_size)
    return float((probs.argmax(axis=1) == y).mean())


def image_metrics(real_images: Any, fake_images: Any, classifier: Any, *,
                  batch_size: int = 500, kid_subsets: int = 100, kid_subset_size: int = 1000,
                  k: int = 3, splits: int = 1, seed: int | None = 0) -> dict[str, Any]:
    """Every sample-quality metric of fakes against reals, in the classifier's feature space.

    Returns a JSON-ready dict:

    - ``n_real``, ``n_fake``: the sample counts. FD, the classifier score and precision/recall
      depend on them, so compare numbers only at equal counts.
    - ``fd``: Frechet distance of the features (``frechet_distance_from_features``).
    - ``kid_mean``, ``kid_std``: ``kid`` over ``kid_subsets`` subsets of min(kid_subset_size, n).
    - ``classifier_score``, ``classifier_score_std``: Inception Score of the fakes with this
      classifier (``splits`` parts); ``classifier_score_real`` that of the reals, for scale.
    - ``precision``, ``recall``: ``precision_recall`` with ``k`` neighbours.
    - ``fake_class_histogram``: the fraction of fakes given each class (argmax), and
      ``fake_class_kl_uniform`` = KL(histogram || uniform) = log K - H(histogram), 0 when all
      classes are drawn equally often, log K when a single class is.
    """
    real_f, real_p = classifier_outputs(real_images, classifier, batch_size)
    fake_f, fake_p = classifier_outputs(fake_images, classifier, batch_size)
    num_classes = fake_p.shape[1]
    hist = np.bincount(fake_p.argmax(axis=1), minlength=num_classes) / fake_p.shape[0]
    kid_est = kid(real_f, fake_f, subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
    score = classifier_score(fake_p, splits)
    precision, recall = precision_recall(real_f, fake_f, k)
    return {
        "n_real": int(real_f.shape[0]),
        "n_fake": int(fake_f.shape[0]),
        "fd": frechet_distance_from_features(real_f, fake_f),
        "kid_mean": kid_est.mean,
        "kid_std": kid_est.std,
        "classifier_score": score.mean,
        "classifier_score_std": score.std,
        "classifier_score_real": classifier_score(real_p, splits).mean,
        "precision": precision,
        "recall": recall,
        "fake_class_histogram": [float(h) for h in hist],
        "fake_class_kl_uniform": float(_kl_rows(hist, np.full(num_classes, 1.0 / num_classes))),
    }
