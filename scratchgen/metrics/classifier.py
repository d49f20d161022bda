"""The classifiers whose features measure generated digits, and the weights shipped for them.

A LeNet-5-style network (LeCun, Bottou, Bengio, Haffner, "Gradient-based learning applied to
document recognition", 1998), with ReLU, max pooling and dropout as is usual today:

    x (1x28x28, in [0, 1]) -> (x - 0.1307) / 0.3081 -> conv 5x5, c1 -> ReLU -> maxpool 2  (c1x12x12)
      -> conv 5x5, c2 -> ReLU -> maxpool 2                                       (c2x4x4)
      -> linear 16 c2 -> h -> ReLU   = features(x)                               (h)
      -> dropout 0.5 -> linear h -> 10                                           (logits)

Two trained copies ship inside the package (``pretrained_classifier``), so the sample-quality
metrics of ``scratchgen.metrics.gan`` need no download; both read 28x28 grey images in [0, 1]:

- ``"mnist"``: c1, c2, h = 32, 64, 256, trained on the 60,000 MNIST training images (3 epochs of
  Adam, lr 1e-3 halved every epoch, batch 128): 99.19% accuracy on the 10,000 test images.
- ``"digits"``: c1, c2, h = 16, 32, 128, trained on the 1,500 training images of the embedded UCI
  digits (``scratchgen.data.Digits(size=28)``, 8x8 scans resampled to 28x28) with random shifts
  of up to 2 pixels (120 epochs, Adam, lr 1e-3 decayed to 1e-5, batch 64): 97.31% on its 297
  test images (8 errors).

``scripts/train_classifiers.py`` (beside the package) retrains both and rewrites the weights;
each file also carries these numbers in ``model.info``.
"""
from __future__ import annotations

import os
import pathlib
from importlib import resources
from typing import Any

import scratchgen as sg
import scratchgen.functional as F
from scratchgen import nn
from scratchgen.serialization import load, save

__all__ = ["LeNet", "MNIST_MEAN", "MNIST_STD", "PRETRAINED", "pretrained_classifier",
           "save_classifier", "load_classifier", "save_mnist_classifier",
           "load_mnist_classifier"]

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # of the training images' pixels, scaled to [0, 1]
_FORMAT = "scratchgen-mnist-classifier"

#: The shipped classifiers: name -> file under ``scratchgen/metrics/weights/``.
PRETRAINED = {"mnist": "mnist_lenet.npz", "digits": "digits_lenet.npz"}


class LeNet(nn.Module):
    """A LeNet-5-style classifier of 28x28 grey images given in [0, 1].

    ``forward(x)`` gives the class logits; ``features(x)`` the ``hidden``-dimensional penultimate
    activations, the space in which generated and real digits are compared, and ``head(h)`` the
    logits from them (so one pass yields both). The input is
    standardised inside (``(x - 0.1307) / 0.3081``), so callers pass plain [0, 1] pixels.
    """

    def __init__(self, channels: tuple[int, int] = (32, 64), hidden: int = 256,
                 num_classes: int = 10, dropout: float = 0.5) -> None:
        super().__init__()
        c1, c2 = channels
        self.config = {"channels": [c1, c2], "hidden": hidden, "num_classes": num_classes,
                       "dropout": dropout}
        self.conv1 = nn.Conv2d(1, c1, 5)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(c2 * 4 * 4, hidden)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, num_classes)

    def features(self, x: Any) -> sg.Tensor:
        """Penultimate activations relu(fc1(...)) of images (N, 1, 28, 28) in [0, 1]."""
        if not isinstance(x, sg.Tensor):
            x = sg.tensor(x, device=self.conv1.weight.device, dtype=self.conv1.weight.dtype)
        h = (x - MNIST_MEAN) * (1.0 / MNIST_STD)
        h = self.pool(F.relu(self.conv1(h)))
        h = self.pool(F.relu(self.conv2(h)))
        return F.relu(self.fc1(F.reshape(h, (h.shape[0], -1))))

    def head(self, h: sg.Tensor) -> sg.Tensor:
        """Class logits from features: fc2(dropout(h))."""
        return self.fc2(self.drop(h))

    def forward(self, x: Any) -> sg.Tensor:
        return self.head(self.features(x))


def save_classifier(model: LeNet, path: str | os.PathLike, **info: Any) -> pathlib.Path:
    """Write the classifier's configuration and weights (and ``info``, e.g. its accuracy)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save({"format": _FORMAT, "config": model.config, "state_dict": model.state_dict(),
          "info": info}, path)
    return path


def load_classifier(path: str | os.PathLike, device: Any = "cpu") -> LeNet:
    """A classifier written by ``save_classifier`` (e.g. ``runs/lenet/classifier.npz`` of
    ``scratchgen bench lenet``), in evaluation mode with frozen float32 parameters;
    ``model.info`` holds what was saved with it (test accuracy, epochs...)."""
    state = load(path, device)
    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a classifier saved by save_classifier")
    cfg = state["config"]
    model = LeNet(tuple(cfg["channels"]), cfg["hidden"], cfg["num_classes"], cfg["dropout"])
    model.load_state_dict(state["state_dict"])
    model.to(device)
    model.eval()
    model.requires_grad_(False)
    model.info = dict(state.get("info", {}))
    return model


# the names the classifier had when only MNIST had one
save_mnist_classifier = save_classifier
load_mnist_classifier = load_classifier


def pretrained_classifier(dataset: str = "mnist", device: Any = "cpu") -> LeNet:
    """The LeNet shipped with the package for ``dataset`` (``"mnist"`` or ``"digits"``).

    Both classify 28x28 grey images in [0, 1] (``"digits"``: ``Digits(size=28)``); the model is
    in evaluation mode with frozen parameters, ``model.info["test_accuracy"]`` says how well it
    does, and ``model.features(x)`` gives its penultimate features (256-d for ``"mnist"``,
    128-d for ``"digits"``).
    """
    if dataset not in PRETRAINED:
        raise ValueError(f"no pretrained classifier for dataset {dataset!r}: choose one of "
                         f"{', '.join(map(repr, PRETRAINED))}")
    ref = resources.files("scratchgen.metrics").joinpath(f"weights/{PRETRAINED[dataset]}")
    with resources.as_file(ref) as path:
        if not path.exists():
            raise FileNotFoundError(f"the weights {PRETRAINED[dataset]} are missing from the "
                                    f"installed package (expected at {path})")
        return load_classifier(path, device)
