"""VGG-16's convolutional blocks as a loss network (Simonyan & Zisserman 2015, "Very Deep
Convolutional Networks for Large-Scale Image Recognition", configuration D), through relu4_3:

    block 1:  conv1_1 (3 -> 64)    relu  conv1_2 (64 -> 64)    relu  pool1 (max 2x2)
    block 2:  conv2_1 (64 -> 128)  relu  conv2_2 (128 -> 128)  relu  pool2
    block 3:  conv3_1 (128 -> 256) relu  conv3_2, conv3_3 (256 -> 256) with relus  pool3
    block 4:  conv4_1 (256 -> 512) relu  conv4_2, conv4_3 (512 -> 512) with relus

every convolution 3x3 with padding 1 (so only the pools change the size: H x W at block 1,
H/2 x W/2 at block 2, H/4 at block 3, H/8 at block 4). These are the layers Johnson et al.
2016 ("Perceptual Losses for Real-Time Style Transfer and Super-Resolution") read: relu2_2
for the feature reconstruction (content) loss, relu1_2, relu2_2, relu3_3 and relu4_3 for the
style loss. Their positions in torchvision's ``vgg16().features`` are ``TORCHVISION_INDEX``
(conv1_1 is ``features.0``, relu4_3 is ``features.22``).

Three ways to get one:

* ``load_vgg16(path)``: the ImageNet-trained weights, from an ``.npz`` with the keys
  ``conv1_1.weight``, ``conv1_1.bias``, ..., ``conv4_3.bias`` (``scripts/convert_vgg16.py``
  writes one from torchvision's file). This is the network of the papers.
* ``random_vgg16(seed)``: the same architecture with fixed random weights, the default when no
  trained weights are at hand. Random-weight networks do carry texture statistics:
  He, Wang & Hopcroft 2016 ("A Powerful Generative Model Using Random Weights for the Deep
  Image Representation") synthesise textures and transfer styles with a random VGG-19, and
  Ustyuzhaninov et al. 2017 ("What does it take to generate natural textures?") with a single
  layer of random filters; what matters is that the activations neither vanish nor explode
  through the depth, and that there are many channels. See ``random_vgg16``.
* ``VGG16Features(channels=...)``: any widths, for tests and quick experiments.

Every feature network of this package (also ``loss_networks.lenet_features``) is a
``FeatureNetwork``: ``net(x, layers=("relu2_2",))`` returns ``{name: activation}`` and stops
after the deepest layer asked for.
"""
from __future__ import annotations

import os
import pathlib
import zipfile
from typing import Any, Sequence

import numpy
from numpy.lib.npyio import NpzFile

import scratchgen as sg
import scratchgen.functional as F
from scratchgen import nn
from scratchgen.autograd import Tensor

__all__ = ["FeatureNetwork", "VGG16Features", "VGG16_CHANNELS", "VGG16_LAYERS",
           "TORCHVISION_INDEX", "IMAGENET_MEAN", "IMAGENET_STD", "JOHNSON_CONTENT_LAYERS",
           "JOHNSON_STYLE_LAYERS", "vgg16_shapes", "check_vgg16_arrays", "load_vgg16",
           "save_vgg16", "random_vgg16"]

#: ImageNet statistics of RGB pixels in [0, 1], the normalisation torchvision's VGG was trained on
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: output channels of the four blocks of VGG-16
VGG16_CHANNELS = (64, 128, 256, 512)
_CONVS_PER_BLOCK = (2, 2, 3, 3)

#: the layers Johnson et al. 2016 use (Sec. 3.1 and 4.1 of the paper)
JOHNSON_CONTENT_LAYERS = ("relu2_2",)
JOHNSON_STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


def _vgg_layer_names() -> tuple[str, ...]:
    names: list[str] = []
    for b, n in enumerate(_CONVS_PER_BLOCK, start=1):
        for i in range(1, n + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        if b < len(_CONVS_PER_BLOCK):
            names.append(f"pool{b}")
    return tuple(names)


#: every named layer in order: conv1_1, relu1_1, conv1_2, relu1_2, pool1, ..., relu4_3
VGG16_LAYERS = _vgg_layer_names()
#: layer name -> its index in torchvision's ``vgg16().features`` (they are in the same order)
TORCHVISION_INDEX = {name: i for i, name in enumerate(VGG16_LAYERS)}


class FeatureNetwork(nn.Module):
    """A network read as a sequence of named stages: ``forward(x, layers)`` runs them in order,
    keeps the outputs of those named in ``layers`` and stops after the deepest of them.

    Subclasses set ``layer_names`` (every name, in order) and ``default_layers`` (read
    when ``layers`` is not given), and define ``stage(name, h)`` (the output of stage ``name``
    given the previous stage's output) and ``prepare(x)`` (the input as the first stage
    expects it, e.g. normalised).
    """

    layer_names: tuple[str, ...] = ()
    default_layers: tuple[str, ...] = ()

    def prepare(self, x: Tensor) -> Tensor:
        return x

    def stage(self, name: str, h: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not define stage()")

    def check_layers(self, layers: Sequence[str]) -> tuple[str, ...]:
        """``layers`` as a tuple, after checking every name exists (one error naming those
        that do not, and the valid ones)."""
        if isinstance(layers, str):
            layers = (layers,)
        layers = tuple(layers)
        if not layers:
            raise ValueError(f"{type(self).__name__}: layers is empty; ask for at least one of "
                             f"{', '.join(self.layer_names)}")
        unknown = [n for n in layers if n not in self.layer_names]
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown layer(s) "
                             f"{', '.join(map(repr, unknown))}; choose from "
                             f"{', '.join(self.layer_names)}")
        return layers

    def forward(self, x: Any, layers: Sequence[str] | None = None) -> dict[str, Tensor]:
        layers = self.check_layers(self.default_layers if layers is None else layers)
        last = max(self.layer_names.index(n) for n in layers)
        h = self.prepare(x)
        out: dict[str, Tensor] = {}
        for name in self.layer_names[:last + 1]:
            h = self.stage(name, h)
            if name in layers:
                out[name] = h
        return {n: out[n] for n in layers}


class VGG16Features(FeatureNetwork):
    """VGG-16's conv1_1 ... relu4_3 (the module docstring draws them), with the convolutions
    as attributes ``conv1_1`` ... ``conv4_3`` (so ``state_dict()`` keys are
    ``conv1_1.weight``, ...), and the layer names of ``VGG16_LAYERS``.

    ``forward(x, layers=("relu2_2",))`` takes images (N, 3, H, W) and returns
    ``{name: activation}`` (relu2_2 alone when ``layers`` is not given). With ``normalize=True``
    (the default) the inputs are RGB in [0, 1] and are standardised with ImageNet's mean and
    standard deviation first (``normalize_input``), as the trained network expects; with
    ``normalize=False`` they are passed on unchanged.
    ``channels`` sets the four blocks' widths (VGG-16's are 64, 128, 256, 512).
    """

    layer_names = VGG16_LAYERS
    default_layers = JOHNSON_CONTENT_LAYERS

    def __init__(self, channels: Sequence[int] = VGG16_CHANNELS, normalize: bool = True) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) != 4 or min(channels) < 1:
            raise ValueError(f"VGG16Features: channels must be 4 positive widths, got {channels}")
        self.channels, self.normalize = channels, bool(normalize)
        c_in = 3
        for b, (c, n) in enumerate(zip(channels, _CONVS_PER_BLOCK), start=1):
            for i in range(1, n + 1):
                setattr(self, f"conv{b}_{i}", nn.Conv2d(c_in, c, 3, padding=1))
                c_in = c
        self.requires_grad_(False)   # a loss network: frozen, gradients flow to the input only
        self.eval()

    def normalize_input(self, x: Tensor) -> Tensor:
        """(x - mean) / std per RGB channel, with ImageNet's statistics (``IMAGENET_MEAN``,
        ``IMAGENET_STD``) of pixels in [0, 1]."""
        w = self.conv1_1.weight
        mean = sg.tensor(numpy.array(IMAGENET_MEAN).reshape(1, 3, 1, 1), dtype=w.dtype,
                         device=w.device)
        inv_std = sg.tensor(1.0 / numpy.array(IMAGENET_STD).reshape(1, 3, 1, 1), dtype=w.dtype,
                            device=w.device)
        return (x - mean) * inv_std

    def prepare(self, x: Any) -> Tensor:
        if not isinstance(x, Tensor):
            x = sg.tensor(x, dtype=self.conv1_1.weight.dtype, device=self.conv1_1.weight.device)
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"VGG16Features takes RGB images (N, 3, H, W), got shape {x.shape}")
        return self.normalize_input(x) if self.normalize else x

    def stage(self, name: str, h: Tensor) -> Tensor:
        if name.startswith("conv"):
            return getattr(self, name)(h)
        if name.startswith("relu"):
            return F.relu(h)
        return F.max_pool2d(h, 2, 2)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, normalize={self.normalize}"


def vgg16_shapes(channels: Sequence[int] = VGG16_CHANNELS) -> dict[str, tuple[int, ...]]:
    """The parameter shapes, key -> shape: ``conv1_1.weight`` (64, 3, 3, 3), ``conv1_1.bias``
    (64,), ... ``conv4_3.bias`` (512,) for VGG-16's widths."""
    shapes: dict[str, tuple[int, ...]] = {}
    c_in = 3
    for b, (c, n) in enumerate(zip(channels, _CONVS_PER_BLOCK), start=1):
        for i in range(1, n + 1):
            shapes[f"conv{b}_{i}.weight"] = (c, c_in, 3, 3)
            shapes[f"conv{b}_{i}.bias"] = (c,)
            c_in = c
    return shapes


def check_vgg16_arrays(arrays: dict[str, Any], where: str,
                       channels: Sequence[int] = VGG16_CHANNELS) -> None:
    """Raise one ``ValueError`` naming ``where`` and every missing key, every key of the wrong
    shape (found vs expected), every array that is not floating point and every unexpected
    key of ``arrays``; return if it holds exactly VGG-16's parameters."""
    expected = vgg16_shapes(channels)
    missing = [k for k in expected if k not in arrays]
    unexpected = sorted(k for k in arrays if k not in expected)
    found = {k: numpy.asarray(arrays[k]) for k in expected if k in arrays}
    misshapen = [f"{k} {a.shape} (expected {expected[k]})" for k, a in found.items()
                 if a.shape != expected[k]]
    not_float = [f"{k} ({a.dtype})" for k, a in found.items()
                 if not numpy.issubdtype(a.dtype, numpy.floating)]
    problems = []
    if missing:
        problems.append("missing " + ", ".join(missing))
    if misshapen:
        problems.append("wrong shape " + ", ".join(misshapen))
    if not_float:
        problems.append("not floating point " + ", ".join(not_float))
    if unexpected:
        problems.append("unexpected " + ", ".join(unexpected))
    if problems:
        raise ValueError(f"{where}: not VGG-16 conv1_1..conv4_3 weights: " + "; ".join(problems))


def load_vgg16(path: str | os.PathLike, normalize: bool = True, device: Any = "cpu",
               dtype: Any = "float32") -> VGG16Features:
    """A frozen ``VGG16Features`` with the weights of the ``.npz`` at ``path``: exactly the 20
    arrays ``conv1_1.weight`` (64, 3, 3, 3), ``conv1_1.bias`` (64,), ..., ``conv4_3.bias``
    (512,) (``vgg16_shapes()``), the weights in PyTorch's (out, in, kh, kw) layout and RGB
    input channel order, for inputs normalised with ImageNet's statistics
    (``scripts/convert_vgg16.py`` writes such a file from torchvision's ``vgg16`` weights).
    A file with missing, misshapen or extra arrays is refused with one error naming them."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_vgg16: no such file {path}")
    try:
        z = numpy.load(path, allow_pickle=False)
        if not isinstance(z, NpzFile):
            raise ValueError("it holds a single array, not named arrays")
        with z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"load_vgg16: {path} is not a readable .npz file ({e})") from None
    check_vgg16_arrays(arrays, str(path))
    net = VGG16Features(normalize=normalize)
    net.load_state_dict({k: a.astype(numpy.float32) for k, a in arrays.items()})
    return net.to(device=device, dtype=dtype)


def save_vgg16(net: VGG16Features, path: str | os.PathLike) -> pathlib.Path:
    """Write ``net``'s 20 arrays to an ``.npz`` that ``load_vgg16`` reads (plain
    ``numpy.savez``, float32)."""
    path = pathlib.Path(path)
    arrays = {k: numpy.asarray(sg.backend.to_device(a, "cpu"), numpy.float32)
              for k, a in net.state_dict().items()}
    check_vgg16_arrays(arrays, str(path), net.channels)
    with open(path, "wb") as f:
        numpy.savez(f, **arrays)
    return path


def random_vgg16(seed: int = 0, channels: Sequence[int] = VGG16_CHANNELS,
                 normalize: bool = True, device: Any = "cpu",
                 dtype: Any = "float32") -> VGG16Features:
    """VGG-16's architecture with fixed random weights, the same for the same ``seed`` on every
    machine (drawn from ``numpy.random.default_rng(seed)``, not from the global generator):

        W ~ N(0, 2 / fan_in),  fan_in = 9 c_in,  b = 0      (He et al. 2015's initialisation)

    Why this one: a random network describes a texture through the Gram matrices of its
    activations only if the activations keep their scale through the ten convolutions. With
    variance 2 / fan_in a ReLU layer preserves the second moment of its input (He et al. 2015,
    "Delving Deep into Rectifiers", eq. 10), so every layer's Gram matrix has entries of the
    same order and no style layer drowns the others; zero biases keep the ReLUs from being all
    on or all off. (PyTorch's default, U(+-1/sqrt(fan_in)), has variance 1 / (3 fan_in): on
    random images the mean squared activation falls from 0.3 at relu1_1 to 4e-5 at relu4_3,
    and the Gram matrices, its squares, span about eight orders of magnitude, so that the
    style loss is relu1_2's alone. With He's scaling it stays between 1.8 and 8 at every
    layer.) He, Wang & Hopcroft 2016 also draw Gaussian weights, and rescale each layer's
    loss weight so that the layers contribute equally (their "automatic normalisation"); the
    fan-in scaling does most of that by construction. Ustyuzhaninov et al. 2017 generate
    natural textures of high quality from a single layer of random filters without pooling:
    neither depth, pooling nor training is indispensable. The full VGG widths are kept, since
    more random filters measure more statistics.

    Measured (``scripts/style_distance_demo.py``; distance = ``style_loss`` over relu1_2,
    relu2_2, relu3_3, relu4_3 between two crops): on the grey 512 x 512 textures brick, grass
    and gravel of scikit-image, cut into 16 non-overlapping 96 x 96 crops each, the nearest
    other crop of every crop comes from the same texture (1-NN 100%), and the median distance
    between crops of different textures is 26 times that between crops of the same texture
    (with PyTorch's default initialisation 9.7; for the colour Gram matrix of the pixels
    alone 15, and 1-NN 92%). The four layers contribute 7%, 10%, 37% and 46% of that
    distance; with PyTorch's default initialisation relu1_2 contributes 100% (99.6%), so
    the deeper layers, the larger structures, are not seen at all.
    """
    net = VGG16Features(channels, normalize=normalize)
    rng = numpy.random.default_rng(seed)
    state = {}
    for key, shape in vgg16_shapes(net.channels).items():
        if key.endswith(".weight"):
            fan_in = shape[1] * shape[2] * shape[3]
            w = rng.standard_normal(shape, dtype=numpy.float32) * numpy.float32(
                numpy.sqrt(2.0 / fan_in))
            state[key] = w
        else:
            state[key] = numpy.zeros(shape, numpy.float32)
    net.load_state_dict(state)
    return net.to(device=device, dtype=dtype)
