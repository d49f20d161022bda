"""The default loss networks of the perceptual losses, one interface for all: a
``FeatureNetwork`` whose ``net(x, layers)`` returns ``{layer name: activation}``.

* Colour images: VGG-16's conv blocks (``scratchgen.models.vgg``), trained weights from
  ``load_vgg16(path)`` when a converted file is at hand, otherwise ``random_vgg16(seed)``.
* Grey 28x28 digits: the LeNet classifiers shipped with the package
  (``scratchgen.metrics.classifier.pretrained_classifier``), trained on MNIST or on the
  embedded UCI digits, read layer by layer by ``LeNetFeatures``:

      x in [0, 1] -> (x - 0.1307) / 0.3081 -> conv1 -> relu1 -> pool1      (c1 x 24 x 24, 12 x 12)
        -> conv2 -> relu2 -> pool2                                          (c2 x 8 x 8, 4 x 4)
        -> fc1 -> relu3                                                     (h; = LeNet.features)

  (``"mnist"``: c1, c2, h = 32, 64, 256; ``"digits"``: 16, 32, 128.) The Gram-based style loss
  needs spatial maps, so only relu1 / pool1 / relu2 / pool2 serve as style layers; relu3 is
  a vector and serves as a content layer (the classifier's notion of "which digit").
"""
from __future__ import annotations

from typing import Any

import scratchgen as sg
import scratchgen.functional as F
from scratchgen.autograd import Tensor
from scratchgen.metrics.classifier import MNIST_MEAN, MNIST_STD, LeNet, pretrained_classifier
from scratchgen.models.vgg import FeatureNetwork, VGG16Features, random_vgg16

__all__ = ["LeNetFeatures", "LENET_LAYERS", "LENET_CONTENT_LAYERS", "LENET_STYLE_LAYERS",
           "lenet_features", "default_loss_network"]

#: every named layer of ``LeNetFeatures``, in order
LENET_LAYERS = ("conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "fc1", "relu3")
#: suggested layers for digits: content from the second block, style from both blocks
LENET_CONTENT_LAYERS = ("relu2",)
LENET_STYLE_LAYERS = ("relu1", "relu2")


class LeNetFeatures(FeatureNetwork):
    """A trained ``LeNet`` classifier read as a feature network (layers ``LENET_LAYERS``).

    The classifier's parameters are shared, not copied, and frozen; its own standardisation
    of [0, 1] inputs is applied first, so ``net(x, ("relu3",))["relu3"]`` equals
    ``classifier.features(x)``.
    """

    layer_names = LENET_LAYERS
    default_layers = LENET_CONTENT_LAYERS

    def __init__(self, classifier: LeNet) -> None:
        super().__init__()
        self.classifier = classifier
        classifier.requires_grad_(False)
        classifier.eval()

    def prepare(self, x: Any) -> Tensor:
        w = self.classifier.conv1.weight
        if not isinstance(x, Tensor):
            x = sg.tensor(x, dtype=w.dtype, device=w.device)
        if x.ndim != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(f"LeNetFeatures takes grey 28x28 images (N, 1, 28, 28) in [0, 1], "
                             f"got shape {x.shape}")
        return (x - MNIST_MEAN) * (1.0 / MNIST_STD)

    def stage(self, name: str, h: Tensor) -> Tensor:
        net = self.classifier
        if name in ("conv1", "conv2"):
            return getattr(net, name)(h)
        if name.startswith("relu"):
            return F.relu(h)
        if name.startswith("pool"):
            return net.pool(h)
        return net.fc1(F.reshape(h, (h.shape[0], -1)))     # fc1


def lenet_features(dataset: str = "mnist", device: Any = "cpu") -> LeNetFeatures:
    """The shipped LeNet classifier of ``dataset`` (``"mnist"`` or ``"digits"``) as a frozen
    feature network with the layers ``LENET_LAYERS``."""
    return LeNetFeatures(pretrained_classifier(dataset, device))


def default_loss_network(kind: str = "rgb", seed: int = 0,
                         device: Any = "cpu") -> LeNetFeatures | VGG16Features:
    """The loss network to use when none is given: ``"rgb"`` -> ``random_vgg16(seed)`` (for
    colour images), ``"mnist"`` / ``"digits"`` -> ``lenet_features(kind)`` (for 28x28 digits).
    """
    if kind == "rgb":
        return random_vgg16(seed, device=device)
    if kind in ("mnist", "digits"):
        return lenet_features(kind, device)
    raise ValueError(f"default_loss_network: unknown kind {kind!r}; choose 'rgb', 'mnist' or "
                     "'digits'")
