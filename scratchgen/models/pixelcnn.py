"""Gated PixelCNN, used as the prior over the discrete code maps of VQ-VAE and VQ-VAE-2
(van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu, 2016, "Conditional Image
Generation with PixelCNN Decoders"; the masks from van den Oord et al. 2016, "Pixel Recurrent
Neural Networks", Sec. 3.4).

A code map c of H x W codes, each in {0..K-1}, is modelled autoregressively in raster order
(rows top to bottom, each row left to right):

    p(c) = prod_i p(c_i | c_1, ..., c_{i-1})                               (paper eq. 1)

and every conditional is a categorical distribution over the K codes given by a softmax of the
network's logits at position i. Training minimises the cross-entropy -log p(c) / (H W), in nats
per code; sampling draws c_1, c_2, ... one position at a time.

The network is the paper's gated PixelCNN (Sec. 2.1-2.2, Fig. 2). Each layer has

* a **vertical stack** v: a (k//2 + 1) x k convolution over the rows above *and including* the
  current one (no mask is needed: the bottom of the kernel sits on the current row). v at row r
  depends on inputs in rows <= r only; it never reaches the output directly;
* a **horizontal stack** h: a 1 x k convolution masked to the pixels left of the centre (type
  'A', first layer: not the centre itself) or left of and at the centre (type 'B', later layers:
  the features at the centre depend only on earlier pixels), ``nn.MaskedConv2d`` with a 1 x k
  kernel; plus the vertical stack's pre-activations *shifted down one row* through a 1 x 1
  convolution, so that h at row r sees rows < r from v; plus a residual connection (not in the
  first layer);
* **gated activation units** (eq. 2), with an optional conditioning term (eq. 4 and 5):

      out = tanh(W_f * x + V_f e_y) (.) sigmoid(W_g * x + V_g e_y)

  where e_y is the class label's one-hot vector (so V e_y is a learned bias per class, the same
  at every position) and/or a spatial conditioning map s enters as V * s, a 1 x 1 convolution
  to 2C channels (eq. 5).

With P = k1//2 + (L - 1)(k//2) (L layers, k1 the first layer's kernel, k the others'), the
horizontal stack's output at (r, c) depends on the inputs at the P positions to its left in row
r (columns c - P .. c - 1) and in the P + 1 rows above it (rows r - P - 1 .. r - 1, columns
c - P .. c + P), clipped to the map, and on nothing else: never on (r, c) itself or on a later
position in raster order. So on an H x W map it sees every earlier position -- the two stacks
leave no "blind spot" (the reason for them, Sec. 2.2) -- exactly when P >= W - 1 and
P >= H - 2; P >= max(H, W) - 1 is enough.
``tests/models/test_pixelcnn.py`` checks both properties by exact gradients.

The codes enter through an embedding (a one-hot vector times a matrix); the head is
ReLU -> 1x1 conv -> ReLU -> 1x1 conv to K logits per position. Optional dropout (``dropout``,
as in PixelCNN++'s gated residual blocks) acts on each residual layer's gated horizontal
features before their 1 x 1 output convolution: a per-position mask, so causality is untouched.
"""
from __future__ import annotations

from typing import Any

import numpy

import scratchgen.functional as F
import scratchgen.nn as nn
from scratchgen import backend
from scratchgen.autograd import Tensor, no_grad
from scratchgen.models.steps import TrainStep

__all__ = ["GatedLayer", "PixelCNN", "PixelCNNTrainStep"]


def _shift_down(x: Tensor) -> Tensor:
    """Move a (N, C, H, W) map one row down (zeros enter at the top; the last row drops out):
    after it, row r holds what row r-1 held, so it depends on input rows < r only."""
    return F.pad2d(x, (0, 0, 1, 0))[:, :, :-1, :]


def _gate(a: Tensor) -> Tensor:
    """tanh(a_f) (.) sigmoid(a_g) for a = [a_f, a_g] split along channels (eq. 2)."""
    c = a.shape[1] // 2
    return F.tanh(a[:, :c]) * F.sigmoid(a[:, c:])


class GatedLayer(nn.Module):
    """One layer of the gated PixelCNN (the paper's Fig. 2): takes (v, h), returns (v', h').

    ``mask_type`` 'A' for the first layer (the horizontal stack does not see the current
    position; no residual, since the input is the embedded codes), 'B' afterwards.
    """

    def __init__(self, in_channels: int, channels: int, kernel_size: int, mask_type: str,
                 num_classes: int | None = None, cond_channels: int | None = None,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.channels, self.kernel_size, self.mask_type = channels, kernel_size, mask_type
        p = kernel_size // 2
        # vertical stack: rows r-p..r, columns c-p..c+p (input padded p above, p left and right)
        self.v_conv = nn.Conv2d(in_channels, 2 * channels, (p + 1, kernel_size))
        # the vertical stack feeds the horizontal one, one row later
        self.v_to_h = nn.Conv2d(2 * channels, 2 * channels, 1)
        # horizontal stack: columns c-p..c-1 (type A) or c-p..c (type B) of the current row
        self.h_conv = nn.MaskedConv2d(mask_type, in_channels, 2 * channels, (1, kernel_size),
                                      padding=(0, p))
        self.h_out = nn.Conv2d(channels, channels, 1)
        self.residual = mask_type == "B" and in_channels == channels
        self.dropout = nn.Dropout(dropout) if dropout and self.residual else None
        # conditioning inside the gate: V h (eq. 4) and V * s (eq. 5)
        self.class_bias = nn.Embedding(num_classes, 2 * channels) if num_classes else None
        self.cond_conv = nn.Conv2d(cond_channels, 2 * channels, 1) if cond_channels else None
        if self.class_bias is not None:  # start near the unconditional model
            self.class_bias.weight.data *= 0.1

    def _condition(self, y: Any, s: Tensor | None) -> Tensor | None:
        bias = None
        if self.class_bias is not None:
            if y is None:
                raise ValueError("this PixelCNN is class-conditional: pass the labels y")
            n = len(y)
            bias = self.class_bias(y).reshape(n, 2 * self.channels, 1, 1)
        if self.cond_conv is not None:
            if s is None:
                raise ValueError("this PixelCNN is conditioned on a map: pass cond")
            m = self.cond_conv(s)
            bias = m if bias is None else bias + m
        return bias

    def forward(self, v: Tensor, h: Tensor, y: Any = None, s: Tensor | None = None
                ) -> tuple[Tensor, Tensor]:
        p = self.kernel_size // 2
        cond = self._condition(y, s)
        v_pre = self.v_conv(F.pad2d(v, (p, p, p, 0)))                 # W_v * v, rows <= r
        h_pre = self.h_conv(h) + self.v_to_h(_shift_down(v_pre))      # W_h * h + (rows < r)
        if cond is not None:
            v_pre_c, h_pre = v_pre + cond, h_pre + cond
        else:
            v_pre_c = v_pre
        v_new = _gate(v_pre_c)                                   # eq. 2 (eqs. 4-5 if conditioned)
        h_gated = _gate(h_pre)
        if self.dropout is not None:
            h_gated = self.dropout(h_gated)
        h_new = self.h_out(h_gated)
        if self.residual:
            h_new = h_new + h
        return v_new, h_new


class PixelCNN(nn.Module):
    """Gated PixelCNN prior over (N, H, W) maps of codes in {0..K-1}.

    Args:
        num_codes: K, the number of categories per position (the VQ codebook size).
        channels: C, the width of both stacks.
        num_layers: gated layers (the first of type A with ``first_kernel``, then type B).
        kernel_size: k of the type-B layers (odd).
        first_kernel: k of the first (type A) layer (odd), 7 in the paper.
        num_classes: class-conditional when given (labels ``y`` in 0..num_classes-1).
        cond_channels: conditioned on a (N, cond_channels, H, W) map when given (VQ-VAE-2's
            bottom prior gets the top codes this way); a small 3x3 network embeds it first.
        dropout: dropout probability on the residual layers' gated horizontal features
            (training only; 0 turns it off).
    """

    def __init__(self, num_codes: int, channels: int = 64, num_layers: int = 8,
                 kernel_size: int = 3, first_kernel: int = 7, num_classes: int | None = None,
                 cond_channels: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"PixelCNN: dropout must be in [0, 1), got {dropout}")
        self.num_codes, self.channels = num_codes, channels
        self.num_classes, self.cond_channels = num_classes, cond_channels
        self.embed = nn.Embedding(num_codes, channels)
        if cond_channels:
            # seeing all of s is fine: it is given, not generated
            self.cond_net = nn.Sequential(nn.Conv2d(cond_channels, channels, 3, padding=1),
                                          nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1))
        else:
            self.cond_net = None
        cc = channels if cond_channels else None
        layers = [GatedLayer(channels, channels, first_kernel, "A", num_classes, cc)]
        layers += [GatedLayer(channels, channels, kernel_size, "B", num_classes, cc, dropout)
                   for _ in range(num_layers - 1)]
        self.layers = nn.ModuleList(layers)
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(),
                                  nn.Conv2d(channels, num_codes, 1))

    # ---- the network ------------------------------------------------------------------------
    def embed_codes(self, codes: Any) -> Tensor:
        """(N, H, W) integer codes -> (N, C, H, W) embeddings (a one-hot times a matrix)."""
        return self.embed(codes).permute(0, 3, 1, 2)

    def hidden(self, x: Tensor, y: Any = None, cond: Tensor | None = None) -> Tensor:
        """The horizontal stack's output (N, C, H, W) from embedded inputs x (N, C, H, W): at
        position i it depends on x at exactly the positions strictly before i (raster order)."""
        s = self.cond_net(cond) if self.cond_net is not None and cond is not None else None
        v = h = x
        for layer in self.layers:
            v, h = layer(v, h, y, s)
        return h

    def logits_from_embedding(self, x: Tensor, y: Any = None, cond: Tensor | None = None
                              ) -> Tensor:
        """The logits (N, K, H, W) from embedded inputs x (N, C, H, W); the head is 1 x 1, so
        the logits at i, like ``hidden``, see only the positions before i."""
        return self.head(self.hidden(x, y, cond))

    def forward(self, codes: Any, y: Any = None, cond: Tensor | None = None) -> Tensor:
        """Logits (N, K, H, W) of p(c_i | c_<i) at every position i, all in one pass."""
        return self.logits_from_embedding(self.embed_codes(codes), y, cond)

    # ---- training -----------------------------------------------------------------------------
    def loss(self, codes: Any, y: Any = None, cond: Tensor | None = None) -> Tensor:
        """-(1 / (N H W)) sum log p(c_i | c_<i): the cross-entropy in nats per code (eq. 1)."""
        return F.cross_entropy(self(codes, y, cond), codes)

    # ---- sampling ------------------------------------------------------------------------------
    def sample(self, n: int, shape: tuple[int, int], y: Any = None, cond: Tensor | None = None,
               temperature: float = 1.0, device: Any = None) -> Tensor:
        """Draw n code maps of ``shape`` (H, W) in raster order: at each position i run the
        network on the codes drawn so far and draw c_i ~ softmax(logits_i / temperature).
        ``temperature=0`` takes the most likely code (greedy). Returns int64 (n, H, W).

        One full forward pass per position (H W passes): simple, and cheap for the small code
        maps of a VQ-VAE. The result is exact because the logits at i ignore positions >= i,
        so the zeros not yet filled in do not matter.
        """
        hgt, wid = shape
        dev = backend.device(device) if device is not None else self.embed.weight.device
        xp = self.embed.weight.xp
        gen = backend.generator(dev)
        codes = xp.zeros((n, hgt, wid), dtype=numpy.int64)
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                for r in range(hgt):
                    for c in range(wid):
                        logits = self(Tensor(codes), y, cond).data[:, :, r, c]   # (n, K)
                        codes[:, r, c] = _draw(xp, gen, logits, temperature)
        finally:
            self.train(was_training)
        return Tensor(codes)


def _draw(xp: Any, gen: Any, logits: Any, temperature: float) -> Any:
    """One categorical draw per row of ``logits`` (n, K), by inverting the CDF with a uniform."""
    if temperature == 0:
        return logits.argmax(axis=1)
    z = logits.astype(numpy.float64) / temperature
    p = xp.exp(z - z.max(axis=1, keepdims=True))
    cdf = xp.cumsum(p, axis=1)
    u = xp.asarray(gen.random(len(z))) * cdf[:, -1]
    k = (cdf < u[:, None]).sum(axis=1)           # the first k with cdf_k >= u
    return xp.minimum(k, logits.shape[1] - 1)


class PixelCNNTrainStep(TrainStep):
    """``TrainStep`` for a PixelCNN: a batch is code maps (integers, not images), or the tuple
    of ``loss``'s arguments ``(codes, y)`` or ``(codes, y, cond)``. Logs ``loss``, the
    cross-entropy in nats per code."""

    def inputs(self, batch: Any) -> tuple[Any, ...]:
        return tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)
