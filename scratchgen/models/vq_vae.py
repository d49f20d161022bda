"""VQ-VAE (van den Oord, Vinyals & Kavukcuoglu, 2017, "Neural Discrete Representation
Learning"), with the network of the Keras VQ-VAE example for 28 x 28 images.

An encoder maps an image x to a grid of vectors z_e(x) (N, D, h, w); each vector is replaced by
its nearest entry of a learned codebook e in R^{K x D}:

    q(z = k | x) = 1 if k = argmin_j ||z_e(x) - e_j||^2, else 0              (eq. 1)
    z_q(x) = e_k                                                               (eq. 2)

and a decoder maps the quantised grid back to an image. Training minimises

    L = -log p(x | z_q(x)) + ||sg[z_e(x)] - e||^2 + beta ||z_e(x) - sg[e]||^2   (eq. 3)

(the paper prints the first term as log p(x | z_q(x)); as a loss to be minimised it is the
negative log-likelihood, the reconstruction error), where the reconstruction term is, for a
Gaussian decoder of fixed variance sigma^2, the squared error / (2 sigma^2) up to a constant;
like the Keras example we use mean((x_hat - x)^2) / Var(x) (the *normalised* MSE: 1.0 means "no
better than predicting the mean pixel"). The gradient of the reconstruction term reaches the
encoder through the straight-through estimator z_e + sg[z_q - z_e] (Sec. 3.2;
``scratchgen.losses.vq``), and beta = 0.25.

**EMA codebook** (``ema=True``; paper Appendix A.1, eqs. 6-8, and ``VectorQuantizerEMA`` in
DeepMind's Sonnet): instead of the codebook loss the codes follow exponential moving averages of
the encoder outputs assigned to them. With n_i the number of vectors assigned to code i in the
batch and s_i their sum,

    N_i <- gamma N_i + (1 - gamma) n_i,    m_i <- gamma m_i + (1 - gamma) s_i      (eqs. 6, 7)
    N_i^ = (N_i + eps) / (sum_j N_j + K eps) * sum_j N_j      (Laplace smoothing: no N_i = 0)
    e_i = m_i / N_i^                                                                (eq. 8)

with gamma = 0.99 (the paper's value) and eps = 1e-5. The paper's eq. 8 divides by N_i itself;
the smoothing is Sonnet's, and so is the start: the averages start at 0 and are debiased by
1 / (1 - gamma^t) after t updates (Kingma & Ba's zero-debiasing), so the first update sets each
used code to the mean of its vectors. Codes never chosen have m_i = 0 and move to the origin.

**Dead-code restarts** (optional, ``restart_dead_codes=True``; the "random restarts for
embeddings" of Dhariwal et al., 2020, Jukebox): a code whose (debiased) moving-average use N_i
falls below ``dead_threshold`` is moved onto a random encoder output of the current batch. The
moving average of use is kept in both modes.

The prior over code maps is a ``scratchgen.models.pixelcnn.PixelCNN`` trained afterwards on the
frozen encoder's codes; ``VQVAE.sample`` draws codes from it and decodes them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy

import scratchgen.functional as F
import scratchgen.nn as nn
from scratchgen import backend
from scratchgen.autograd import Tensor, no_grad
from scratchgen.creation import uniform
from scratchgen.losses import vq as vql

__all__ = ["VectorQuantizer", "QuantizerOutput", "VQVAE"]


@dataclass
class QuantizerOutput:
    """What ``VectorQuantizer`` returns for an (N, D, h, w) input z_e."""

    z_q: Tensor             # (N, D, h, w) straight-through: value z_q, gradient to z_e
    indices: Any            # (N, h, w) int64 xp array: the chosen codes
    loss: Tensor            # codebook + beta * commitment (beta * commitment with EMA)
    codebook_loss: Tensor   # ||sg[z_e] - e||^2 (mean)
    commitment_loss: Tensor  # ||z_e - sg[e]||^2 (mean)
    z_q_codes: Tensor       # (N, D, h, w) the codes themselves (gradient to the codebook)


class VectorQuantizer(nn.Module):
    """The quantisation bottleneck: a codebook (K, D), nearest-code lookup, straight-through
    gradients and the VQ loss terms (eqs. 1-3), with optional EMA codebook updates and dead-code
    restarts (see the module docstring).

    ``forward(z_e)`` takes (N, D, h, w); in training mode with ``ema=True`` it also updates the
    codebook (under ``no_grad``), using the assignment it just computed.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, beta: float = 0.25,
                 ema: bool = False, decay: float = 0.99, eps: float = 1e-5,
                 restart_dead_codes: bool = False, dead_threshold: float = 1.0,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.beta, self.ema, self.decay, self.eps = beta, ema, decay, eps
        self.restart_dead_codes, self.dead_threshold = restart_dead_codes, dead_threshold
        dt = backend.as_dtype(dtype)
        dev = backend.device(device)
        # U(-1/K, 1/K), as the common PyTorch ports of Sonnet's VQ-VAE
        init = uniform(-1.0 / num_embeddings, 1.0 / num_embeddings,
                       (num_embeddings, embedding_dim), dtype=dt, device=dev).data
        zeros_k = backend.to_device(numpy.zeros(num_embeddings, dt), dev)
        if ema:
            # moved by moving averages, not by the optimiser: a buffer, not a Parameter
            self.register_buffer("codebook", Tensor(init))
            self.register_buffer("ema_sum", Tensor(backend.to_device(
                numpy.zeros((num_embeddings, embedding_dim), dt), dev)))
        else:
            self.codebook = nn.Parameter(init)
        self.register_buffer("ema_count", Tensor(zeros_k))           # N_i (biased)
        self.register_buffer("ema_steps", Tensor(backend.to_device(numpy.zeros((), dt), dev)))

    # ---- lookup ---------------------------------------------------------------------------------
    def lookup(self, indices: Any) -> Tensor:
        """Codes e_k for an (N, h, w) index map: (N, D, h, w)."""
        idx = indices.data if isinstance(indices, Tensor) else indices
        idx = self.codebook.xp.asarray(idx)
        n, h, w = idx.shape
        rows = F.getitem(self.codebook, idx.reshape(-1))
        return vql.unflatten_latents(rows, (n, self.embedding_dim, h, w))

    def encode_indices(self, z_e: Tensor) -> Any:
        """argmin_j ||z_e - e_j||^2 at every position (eq. 1): an (N, h, w) int64 xp array."""
        n, d, h, w = z_e.shape
        return vql.nearest_code(vql.flatten_latents(z_e.detach()), self.codebook).reshape(n, h, w)

    def forward(self, z_e: Tensor) -> QuantizerOutput:
        n, d, h, w = z_e.shape
        if d != self.embedding_dim:
            raise ValueError(f"VectorQuantizer: expected {self.embedding_dim} channels, got "
                             f"{z_e.shape}")
        rows = vql.flatten_latents(z_e)                                  # (M, D)
        codes, k = vql.quantize(rows, self.codebook)                     # eqs. 1-2
        z_q = vql.unflatten_latents(codes, z_e.shape)
        cb = vql.codebook_loss(z_e, z_q)
        commit = vql.commitment_loss(z_e, z_q)
        loss = self.beta * commit if self.ema else cb + self.beta * commit   # eq. 3
        if self.training:
            with no_grad():
                self._update_statistics(rows.detach().data, k)
        return QuantizerOutput(vql.straight_through(z_e, z_q), k.reshape(n, h, w), loss, cb,
                               commit, z_q)

    # ---- EMA codebook and restarts ------------------------------------------------------------
    def code_use(self) -> Any:
        """The debiased moving average of how many vectors each code gets per batch (K,)."""
        t = float(self.ema_steps.data)
        if t == 0:
            return self.ema_count.data * 0
        return self.ema_count.data / (1.0 - self.decay ** t)

    def _update_statistics(self, z: Any, k: Any) -> None:
        """One EMA step on the batch's rows z (M, D) assigned to codes k (M,) (no gradient)."""
        xp = backend.get_array_module(z)
        g, big_k = self.decay, self.num_embeddings
        onehot = xp.eye(big_k, dtype=z.dtype)[k]                        # (M, K)
        n_i = onehot.sum(axis=0)                                          # counts (K,)
        self.ema_count.data = g * self.ema_count.data + (1.0 - g) * n_i
        self.ema_steps.data = self.ema_steps.data + 1
        debias = 1.0 - g ** float(self.ema_steps.data)
        if self.ema:
            s_i = backend.matmul(onehot.T, z)                            # sums (K, D)
            self.ema_sum.data = g * self.ema_sum.data + (1.0 - g) * s_i
            big_n = self.ema_count.data / debias
            m = self.ema_sum.data / debias
            total = big_n.sum()
            smoothed = (big_n + self.eps) / (total + big_k * self.eps) * total
            self.codebook.data = (m / smoothed[:, None]).astype(z.dtype)
        if self.restart_dead_codes:
            self._restart(z, debias)

    def _restart(self, z: Any, debias: float) -> None:
        xp = backend.get_array_module(z)
        use = self.ema_count.data / debias
        dead = xp.nonzero(use < self.dead_threshold)[0]
        if len(dead) == 0:
            return
        gen = backend.generator(backend.device_of(z))
        pick = xp.asarray(gen.integers(0, z.shape[0], size=len(dead)))
        new = z[pick]
        self.codebook.data[dead] = new
        # the restarted code counts as used once, at its new place
        self.ema_count.data[dead] = self.dead_threshold * debias
        if self.ema:
            self.ema_sum.data[dead] = new * self.dead_threshold * debias

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}, beta={self.beta}"
        if self.ema:
            s += f", ema=True, decay={self.decay}, eps={self.eps}"
        if self.restart_dead_codes:
            s += f", restart_dead_codes=True, dead_threshold={self.dead_threshold}"
        return s


class VQVAE(nn.Module):
    """VQ-VAE for small images: two stride-2 convolutions down to an (H/4) x (W/4) grid of
    D-vectors (7 x 7 for MNIST), K codes, and the mirror-image decoder (the Keras example's
    network: conv 32 -> conv 64 -> 1x1 conv D; transposed convs 64 -> 32 -> conv to the image).

    Args:
        in_channels: image channels.
        num_embeddings: K, the codebook size (128 for MNIST).
        embedding_dim: D (16 for MNIST).
        hidden: channels of the two stride-2 stages.
        beta: the commitment weight of eq. 3.
        ema, decay, eps, restart_dead_codes, dead_threshold: see ``VectorQuantizer``.
        data_variance: Var(x) of the training images; the reconstruction term is divided by it.
    """

    def __init__(self, in_channels: int = 1, num_embeddings: int = 128, embedding_dim: int = 16,
                 hidden: tuple[int, int] = (32, 64), beta: float = 0.25, ema: bool = False,
                 decay: float = 0.99, eps: float = 1e-5, restart_dead_codes: bool = False,
                 dead_threshold: float = 1.0, data_variance: float = 1.0) -> None:
        super().__init__()
        c1, c2 = hidden
        self.data_variance = float(data_variance)
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c2, embedding_dim, 1))
        self.quantizer = VectorQuantizer(num_embeddings, embedding_dim, beta, ema, decay, eps,
                                         restart_dead_codes, dead_threshold)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(embedding_dim, c2, 3, stride=2, padding=1, output_padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.Conv2d(c1, in_channels, 3, padding=1))

    @property
    def num_embeddings(self) -> int:
        return self.quantizer.num_embeddings

    @staticmethod
    def latent_shape(image_shape: tuple[int, int]) -> tuple[int, int]:
        """(h, w) of the code map for (H, W) images: two stride-2 convolutions (k 3, pad 1)."""
        h, w = image_shape
        for _ in range(2):
            h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
        return h, w

    # ---- the model ------------------------------------------------------------------------------
    def encode(self, x: Tensor) -> Any:
        """Images -> code indices (N, h, w), int64 xp array (eq. 1)."""
        with no_grad():
            return self.quantizer.encode_indices(self.encoder(x))

    def decode(self, indices: Any) -> Tensor:
        """Code indices (N, h, w) -> images: decoder(e_k)."""
        return self.decoder(self.quantizer.lookup(indices))

    def reconstruct(self, x: Tensor) -> Tensor:
        """decoder(z_q(encoder(x))), without gradients."""
        with no_grad():
            return self.decode(self.encode(x))

    def forward(self, x: Tensor) -> tuple[Tensor, QuantizerOutput]:
        """x -> (x_hat, quantizer output), the training forward pass."""
        q = self.quantizer(self.encoder(x))
        return self.decoder(q.z_q), q

    def loss(self, x: Tensor) -> dict[str, Any]:
        """The terms of eq. 3 (means), the total in ``"loss"``, and the chosen ``"indices"``."""
        x_hat, q = self(x)
        recon = F.mse_loss(x_hat, x) / self.data_variance     # -log p(x|z_q) + const (scaled)
        return {"loss": recon + q.loss, "recon": recon, "codebook": q.codebook_loss,
                "commitment": q.commitment_loss, "indices": q.indices}

    def sample(self, prior: Any, n: int, latent_shape: tuple[int, int], y: Any = None,
               temperature: float = 1.0) -> Tensor:
        """Draw n code maps from ``prior`` (a PixelCNN over this model's codes) in raster order
        and decode them into images."""
        codes = prior.sample(n, latent_shape, y=y, temperature=temperature)
        with no_grad():
            return self.decode(codes)
