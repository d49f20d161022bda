"""VQ-VAE-2 (Razavi, van den Oord & Vinyals, 2019, "Generating Diverse High-Fidelity Images with
VQ-VAE-2"): a hierarchy of two quantised latent maps, sized for small images.

Algorithm 1 of the paper (VQ-VAE training, stage 1: learning the hierarchical latent codes),
with the network of its Fig. 2a (Algorithm 1 writes h_top = E_top(x); as in Fig. 2a the top
encoder here works on the bottom encoder's features):

    h_top    = E_top(E_bottom_features(x))            top encoder, 1/4 of the image side
    e_top    = Quantize(h_top)                        nearest code (paper eq. 1)
    h_bottom = E_bottom(x, e_top)                     the bottom code is conditioned on the top:
                                                      the top decoder's output D_top(e_top) is
                                                      concatenated to the bottom features
    e_bottom = Quantize(h_bottom)                     1/2 of the image side
    x_hat    = D(e_top, e_bottom)                     the top map upsampled, concatenated to the
                                                      bottom map, decoded

so for 28 x 28 MNIST the bottom map is 14 x 14 and the top map 7 x 7 (in the paper, for
256 x 256 images, 64 x 64 and 32 x 32). Each quantiser is the one of VQ-VAE
(``scratchgen.models.vq_vae.VectorQuantizer``), by default with EMA codebook updates as in the
paper, and the loss adds one VQ term per level to the reconstruction error (paper eq. 2, which
is VQ-VAE's loss, its eq. 3, with one codebook and commitment term per level; the squared error
is divided by Var(x) here, as in ``vq_vae``):

    L = ||x - D(e_top, e_bottom)||^2 / Var(x)
        + sum over levels ( ||sg[h] - e||^2 + beta ||h - sg[e]||^2 )

With EMA updates the codebook term ||sg[h] - e||^2 is left out (the codes follow the moving
averages instead) and only beta times the commitment term remains.

Stage 2 (the priors, the paper's Algorithm 2) fits a PixelCNN to the top codes and a PixelCNN
to the bottom codes *conditioned on the top codes* (``bottom_condition`` turns a top map into the
bottom prior's conditioning map); ``sample`` draws top, then bottom, then decodes. The paper's
top prior also has self-attention layers; on 7 x 7 maps a gated PixelCNN already sees the whole
past.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import scratchgen.functional as F
import scratchgen.nn as nn
from scratchgen.autograd import Tensor, no_grad
from scratchgen.models.vq_vae import QuantizerOutput, VectorQuantizer

__all__ = ["ResBlock", "VQVAE2", "VQVAE2Output"]


class ResBlock(nn.Module):
    """x + conv1x1(relu(conv3x3(relu(x)))): the residual block of the paper's encoders and
    decoders (as in VQ-VAE, Sec. 4.1)."""

    def __init__(self, channels: int, res_channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, res_channels, 3, padding=1),
                                  nn.ReLU(), nn.Conv2d(res_channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x)


def _stack(channels: int, res_channels: int, n: int) -> list[nn.Module]:
    return [ResBlock(channels, res_channels) for _ in range(n)] + [nn.ReLU()]


@dataclass
class VQVAE2Output:
    x_hat: Tensor
    top: QuantizerOutput
    bottom: QuantizerOutput


class VQVAE2(nn.Module):
    """Two-level VQ-VAE. Image sides must be divisible by 4.

    Args:
        in_channels: image channels.
        hidden: channels of the encoders and decoders.
        res_channels: channels inside the residual blocks.
        num_res_blocks: residual blocks per encoder/decoder stage (2 in the paper).
        num_embeddings: K, codes per level (the same for both levels).
        embedding_dim: D, the code vector size (both levels).
        beta, ema, decay, eps, restart_dead_codes, dead_threshold: see ``VectorQuantizer``
            (``ema=True`` by default, as in the paper).
        data_variance: Var(x) of the training images; the reconstruction term is divided by it.
    """

    def __init__(self, in_channels: int = 1, hidden: int = 64, res_channels: int = 32,
                 num_res_blocks: int = 1, num_embeddings: int = 64, embedding_dim: int = 16,
                 beta: float = 0.25, ema: bool = True, decay: float = 0.99, eps: float = 1e-5,
                 restart_dead_codes: bool = False, dead_threshold: float = 1.0,
                 data_variance: float = 1.0) -> None:
        super().__init__()
        d, c, r, nb = embedding_dim, hidden, res_channels, num_res_blocks
        self.data_variance = float(data_variance)
        # E_bottom features: image -> 1/2 resolution
        self.enc_b = nn.Sequential(nn.Conv2d(in_channels, c, 4, stride=2, padding=1), nn.ReLU(),
                                   nn.Conv2d(c, c, 3, padding=1), *_stack(c, r, nb))
        # E_top: bottom features -> 1/4 resolution
        self.enc_t = nn.Sequential(nn.Conv2d(c, c, 4, stride=2, padding=1), nn.ReLU(),
                                   nn.Conv2d(c, c, 3, padding=1), *_stack(c, r, nb))
        self.pre_quant_t = nn.Conv2d(c, d, 1)
        self.quant_t = VectorQuantizer(num_embeddings, d, beta, ema, decay, eps,
                                       restart_dead_codes, dead_threshold)
        # D_top: top codes -> 1/2 resolution, the condition of the bottom quantiser
        self.dec_t = nn.Sequential(nn.Conv2d(d, c, 3, padding=1), *_stack(c, r, nb),
                                   nn.ConvTranspose2d(c, d, 4, stride=2, padding=1))
        self.pre_quant_b = nn.Conv2d(c + d, d, 1)
        self.quant_b = VectorQuantizer(num_embeddings, d, beta, ema, decay, eps,
                                       restart_dead_codes, dead_threshold)
        # D: [upsampled e_top, e_bottom] -> image
        self.upsample_t = nn.ConvTranspose2d(d, d, 4, stride=2, padding=1)
        self.dec = nn.Sequential(nn.Conv2d(2 * d, c, 3, padding=1), *_stack(c, r, nb),
                                 nn.ConvTranspose2d(c, in_channels, 4, stride=2, padding=1))

    @property
    def num_embeddings(self) -> int:
        return self.quant_t.num_embeddings

    @staticmethod
    def latent_shapes(image_shape: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
        """((h_top, w_top), (h_bottom, w_bottom)) for (H, W) images."""
        h, w = image_shape
        if h % 4 or w % 4:
            raise ValueError(f"VQVAE2 needs image sides divisible by 4, got {image_shape}")
        return (h // 4, w // 4), (h // 2, w // 2)

    # ---- Algorithm 1 ----------------------------------------------------------------------------
    def forward(self, x: Tensor) -> VQVAE2Output:
        h_b = self.enc_b(x)                                              # features, 1/2
        q_t = self.quant_t(self.pre_quant_t(self.enc_t(h_b)))           # e_top, 1/4
        h_bottom = self.pre_quant_b(F.concat([h_b, self.dec_t(q_t.z_q)], axis=1))
        q_b = self.quant_b(h_bottom)                                     # e_bottom | e_top
        return VQVAE2Output(self._decode_maps(q_t.z_q, q_b.z_q), q_t, q_b)

    def _decode_maps(self, e_top: Tensor, e_bottom: Tensor) -> Tensor:
        return self.dec(F.concat([self.upsample_t(e_top), e_bottom], axis=1))

    def loss(self, x: Tensor) -> dict[str, Any]:
        """Reconstruction / Var(x) plus each level's VQ terms; the indices of both levels."""
        out = self(x)
        recon = F.mse_loss(out.x_hat, x) / self.data_variance
        return {"loss": recon + out.top.loss + out.bottom.loss, "recon": recon,
                "vq_top": out.top.loss, "vq_bottom": out.bottom.loss,
                "top_indices": out.top.indices, "bottom_indices": out.bottom.indices}

    # ---- codes in, codes out --------------------------------------------------------------------
    def encode(self, x: Tensor) -> tuple[Any, Any]:
        """Images -> (top indices (N, H/4, W/4), bottom indices (N, H/2, W/2))."""
        with no_grad():
            h_b = self.enc_b(x)
            z_t = self.pre_quant_t(self.enc_t(h_b))
            top = self.quant_t.encode_indices(z_t)
            cond = self.dec_t(self.quant_t.lookup(top))
            bottom = self.quant_b.encode_indices(self.pre_quant_b(F.concat([h_b, cond], axis=1)))
        return top, bottom

    def decode(self, top: Any, bottom: Any) -> Tensor:
        """Code maps -> images: D(e_top, e_bottom)."""
        return self._decode_maps(self.quant_t.lookup(top), self.quant_b.lookup(bottom))

    def reconstruct(self, x: Tensor) -> Tensor:
        with no_grad():
            return self.decode(*self.encode(x))

    def bottom_condition(self, top: Any) -> Tensor:
        """The bottom prior's conditioning map for top codes (N, h, w): their one-hot vectors,
        nearest-upsampled x2 to the bottom map's size: (N, K, 2h, 2w)."""
        idx = top.data if isinstance(top, Tensor) else top
        onehot = F.one_hot(idx, self.num_embeddings, dtype=self.quant_t.codebook.dtype)
        return F.interpolate(onehot.permute(0, 3, 1, 2), scale_factor=2, mode="nearest")

    def sample(self, top_prior: Any, bottom_prior: Any, n: int, image_shape: tuple[int, int],
               y: Any = None, temperature: float = 1.0) -> Tensor:
        """Stage 2 sampling: top codes from ``top_prior``, bottom codes from ``bottom_prior``
        given the top codes (``bottom_condition``), then decode."""
        top_shape, bottom_shape = self.latent_shapes(image_shape)
        top = top_prior.sample(n, top_shape, y=y, temperature=temperature)
        cond = self.bottom_condition(top)
        bottom = bottom_prior.sample(n, bottom_shape, y=y, cond=cond, temperature=temperature)
        with no_grad():
            return self.decode(top, bottom)
