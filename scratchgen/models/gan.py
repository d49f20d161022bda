"""The original GAN with multilayer perceptrons, and PacGAN's packed discriminator.

I. Goodfellow, J. Pouget-Abadie, M. Mirza, B. Xu, D. Warde-Farley, S. Ozair, A. Courville,
Y. Bengio, "Generative Adversarial Nets", NeurIPS 2014 (arXiv:1406.2661). Z. Lin, A. Khetan,
G. Fanti, S. Oh, "PacGAN: The power of two samples in generative adversarial networks",
NeurIPS 2018 (arXiv:1712.04086); official code github.com/fjxmlzn/PacGAN
(``synthetic_data_experiments``, Theano/Blocks).

A generator G maps noise z ~ p(z) = N(0, I) to a sample x~ = G(z); a discriminator D maps a
sample to the probability D(x) = sigmoid(l(x)) that it is real (the networks here output the
logit l). The two play the minimax game (Goodfellow et al., eq. 1)

    min_G max_D V(D, G) = E_{x ~ p_data}[log D(x)] + E_{z ~ p(z)}[log(1 - D(G(z)))],

whose inner maximum, for a fixed G, is D*(x) = p_data(x) / (p_data(x) + p_g(x)) (Prop. 1), at
which the outer objective is 2 JSD(p_data || p_g) - log 4 (Thm. 1). G is trained on
E[log(1 - D(G(z)))] ("minimax") or on -E[log D(G(z))] ("non-saturating", Sec. 3), both in
``scratchgen.losses.gan``; ``GANTrainStep`` alternates the updates (Algorithm 1).

PacGAN (Lin et al., Sec. 3) changes only D: it judges m samples at once, all real or all
generated,

    min_G max_D E_{x_1..x_m ~ p_data}[log D(x_1, ..., x_m)]
              + E_{z_1..z_m ~ p(z)}[log(1 - D(G(z_1), ..., G(z_m)))],

which is the same game played between the product distributions p_data^m and p_g^m. A mode
the generator drops shows up m times more often in a pack of m, so the packed D punishes mode
collapse more strongly (the paper's "mode collapse region" analysis, Thm. 3-4). Here the pack
is formed inside D: a batch of N samples (N divisible by m) is reshaped to N/m rows, each the
concatenation [x_1, ..., x_m] of m consecutive samples, and D returns N/m logits; the losses,
being averages over whatever logits they get, need no change.

Networks of the 2-D experiments (PacGAN Sec. 5.1 and the official ``config.py``):

* G: z (2-D standard Gaussian) -> 4 hidden layers of 400 units, each Linear without bias ->
  batch norm -> ReLU, then a Linear to the 2-D output (no output nonlinearity).
* D: 3 hidden layers of 200 maxout units with 5 pieces each (Goodfellow et al. 2013,
  "Maxout Networks": h_j(x) = max_{k <= 5} (x W_{jk} + b_{jk})), then a Linear to one logit; its
  input is pack * 2 wide.
* weights N(0, 0.02^2), biases 0; Adam with lr 1e-4, beta_1 0.8 (beta_2 the default 0.999);
  packs of m samples, 100 packs a batch; 400 epochs of 100,000 points (400,000 updates of each
  network); G trained with the non-saturating loss (the code's ``generator_loss`` is
  softplus(l(x)) + softplus(-l(G(z))), whose first term does not depend on G).

``MLPGenerator`` and ``MLPDiscriminator`` take those networks as their defaults. Differences
from the official code:

* the batch: the official code draws ``batch_size`` packs, i.e. m * 100 samples of each kind
  per update; here a batch of N samples makes N / m packs (``--batch-size 400 --pack 4`` is the
  paper's PacGAN4 batch).
* batch norm uses PyTorch's running-statistics momentum 0.1 (the code averages the population
  statistics with 0.05) and its per-batch statistics in training mode.
* ``init="pytorch"`` (uniform +-1/sqrt(fan_in), biases too) is offered beside the paper's
  N(0, 0.02^2); the toy example uses it, with smaller networks without batch norm trained at a
  higher learning rate, and R1 on the grid (``scratchgen.recipes.gan`` gives the measurements
  behind that).

For images G ends in a sigmoid (``output="sigmoid"``: pixels in [0, 1], as Goodfellow et al.'s
MNIST generator) and reshapes to ``out_shape``; D flattens each image first.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import scratchgen.functional as F
import scratchgen.nn as nn
from scratchgen.autograd import Tensor
from scratchgen.nn import init as nn_init

__all__ = ["Maxout", "MLPGenerator", "MLPDiscriminator", "pack_samples", "OUTPUTS", "INITS"]

#: output nonlinearities of ``MLPGenerator``
OUTPUTS = ("linear", "sigmoid", "tanh")
#: weight initializations of both networks
INITS = ("paper", "pytorch")


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _initialize(module: nn.Module, kind: str) -> None:
    """"paper": every weight ~ N(0, 0.02^2), every bias 0 (the official code's
    IsotropicGaussian(0.02) and Constant(0)); "pytorch": the layers' own defaults."""
    if kind not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {kind!r}")
    if kind == "pytorch":
        return
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn_init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn_init.zeros_(m.bias)


def pack_samples(x: Tensor, pack: int) -> Tensor:
    """PacGAN's packing: N samples of any shape -> (N / pack, pack * d), row i the concatenation
    of samples i*pack, ..., i*pack + pack - 1 flattened (d = the size of one sample)."""
    n = x.shape[0]
    if n % pack:
        raise ValueError(f"a batch of {n} samples cannot be split into packs of {pack}: "
                         f"the batch size must be a multiple of the pack size")
    d = math.prod(x.shape[1:])
    return x.reshape(n // pack, pack * d)


class Maxout(nn.Module):
    """A maxout layer (Goodfellow et al. 2013): ``pieces`` affine maps per output unit and their
    maximum,

        h_j(x) = max_{k = 1..K} z_{jk},   z_{jk} = x W_{jk} + b_{jk},   x (N, in), h (N, out).

    One Linear(in, K * out) computes every z; its outputs are read as (K, out) per example, so
    piece k of unit j is column k * out + j (the maximum over a leading axis of K contiguous
    (N, out) blocks is several times faster in NumPy than over a trailing axis of length K).
    """

    def __init__(self, in_features: int, out_features: int, pieces: int) -> None:
        super().__init__()
        self.in_features = _positive_int(in_features, "in_features")
        self.out_features = _positive_int(out_features, "out_features")
        self.pieces = _positive_int(pieces, "maxout pieces")
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, x: Tensor) -> Tensor:
        z = self.linear(x).reshape(x.shape[0], self.pieces, self.out_features)
        return F.max(z, axis=1)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, pieces={self.pieces}"


class MLPGenerator(nn.Module):
    """x~ = G(z): ``layers`` hidden layers of ``hidden`` units, then a Linear to ``out_dim``.

    Hidden layer: h <- ReLU(BN(h W)) with ``batch_norm`` (no bias: BN's shift replaces it), or
    h <- ReLU(h W + b) without. Output: h W + b, passed through ``output`` ("linear" for points,
    "sigmoid" for pixels in [0, 1], "tanh" for [-1, 1]) and reshaped to ``(N, *out_shape)``
    when ``out_shape`` is given (images), else (N, out_dim).
    """

    def __init__(self, z_dim: int = 2, out_dim: int = 2, hidden: int = 400, layers: int = 4,
                 batch_norm: bool = True, output: str = "linear",
                 out_shape: Sequence[int] | None = None, init: str = "paper") -> None:
        super().__init__()
        self.z_dim = _positive_int(z_dim, "z_dim")
        self.out_dim = _positive_int(out_dim, "out_dim")
        _positive_int(hidden, "hidden")
        _positive_int(layers, "layers")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        if out_shape is not None and math.prod(out_shape) != out_dim:
            raise ValueError(f"out_shape {tuple(out_shape)} does not hold out_dim={out_dim} "
                             "values")
        self.batch_norm, self.output = bool(batch_norm), output
        self.out_shape = tuple(out_shape) if out_shape is not None else None
        blocks: list[nn.Module] = []
        width = z_dim
        for _ in range(layers):
            blocks.append(nn.Linear(width, hidden, bias=not batch_norm))
            if batch_norm:
                blocks.append(nn.BatchNorm1d(hidden))
            blocks.append(nn.ReLU())
            width = hidden
        blocks.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*blocks)
        _initialize(self, init)

    def forward(self, z: Tensor) -> Tensor:
        x = self.net(z)
        if self.output == "sigmoid":
            x = F.sigmoid(x)
        elif self.output == "tanh":
            x = F.tanh(x)
        if self.out_shape is not None:
            x = x.reshape(x.shape[0], *self.out_shape)
        return x


class MLPDiscriminator(nn.Module):
    """l(x_1, ..., x_pack): the logit that a pack of ``pack`` samples is real.

    The N input samples (each flattened to ``in_dim`` values) become N / pack rows of
    pack * in_dim values (``pack_samples``); ``layers`` hidden layers of ``hidden`` units
    follow, each a ``Maxout`` with ``maxout`` pieces or, with ``maxout=None``, a Linear and a
    LeakyReLU(0.2); a final Linear gives one logit per pack, shape (N / pack,). ``pack=1`` is
    the ordinary GAN discriminator.
    """

    def __init__(self, in_dim: int = 2, hidden: int = 200, layers: int = 3, pack: int = 1,
                 maxout: int | None = 5, init: str = "paper") -> None:
        super().__init__()
        self.in_dim = _positive_int(in_dim, "in_dim")
        self.pack = _positive_int(pack, "pack")
        _positive_int(hidden, "hidden")
        _positive_int(layers, "layers")
        if maxout is not None:
            _positive_int(maxout, "maxout")
        self.maxout = maxout
        blocks: list[nn.Module] = []
        width = in_dim * pack
        for _ in range(layers):
            if maxout is not None:
                blocks.append(Maxout(width, hidden, maxout))
            else:
                blocks += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        blocks.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*blocks)
        _initialize(self, init)

    def forward(self, x: Tensor) -> Tensor:
        d = math.prod(x.shape[1:])
        if d != self.in_dim:
            raise ValueError(f"MLPDiscriminator(in_dim={self.in_dim}) got samples of "
                             f"{d} values (input shape {tuple(x.shape)})")
        return self.net(pack_samples(x, self.pack)).reshape(-1)

    def extra_repr(self) -> str:
        return f"pack={self.pack}"
