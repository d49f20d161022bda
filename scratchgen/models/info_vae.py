"""InfoVAE and MMD-VAE: S. Zhao, J. Song, S. Ermon, "InfoVAE: Balancing Learning and Inference
in Variational Autoencoders", AAAI 2019.

The ELBO's KL term, averaged over the data, splits into two parts (Hoffman & Johnson 2016):

    E_x KL( q(z|x) || p(z) ) = I_q(x; z) + KL( q(z) || p(z) ),   q(z) = E_x q(z|x)

so the VAE pays for every nat of information its codes carry about x. With a flexible decoder
it can stop using z altogether, and with a weak one q(z) may still miss p(z) (holes in the
latent space, bad samples). InfoVAE weighs the terms separately. The paper's objective
L_InfoVAE (section 4, "The InfoVAE Model Family": eq. 5, and eq. 6 the equivalent form that
can be optimized, written here), with a strict divergence D in place of KL( q(z) || p(z) ),
which the paper allows (its Proposition 2):

    L = E_x E_{q(z|x)}[ log p(x|z) ]
        - (1 - alpha)        E_x KL( q(z|x) || p(z) )
        - (alpha + lambda - 1) D( q(z) || p(z) )

* alpha = 0, lambda = 1: the ELBO (the VAE);
* alpha = 1: no per-image KL -- the information term is not penalized -- and q(z) is pulled
  to p(z) by lambda * D: the **MMD-VAE** when D is the maximum mean discrepancy (the default
  here), closely related to WAE-MMD (Tolstikhin et al. 2018).

D = MMD^2 is estimated from the batch: its codes z_i ~ q(z_i|x_i) are samples of the
aggregate posterior q(z), compared with as many samples of p(z) = N(0, I) by the unbiased
estimator with an IMQ or RBF kernel (``losses.mmd``). The MMD, unlike KL(q(z) || p(z)), needs
no density of q(z): only samples.
"""
from __future__ import annotations

from typing import Sequence

import scratchgen as sg
from scratchgen import nn
from scratchgen.autograd import Tensor
from scratchgen.losses.mmd import KERNELS, mmd_unbiased
from scratchgen.models.vae import VAE

__all__ = ["InfoVAE", "MMDVAE"]


class InfoVAE(VAE):
    """InfoVAE with an MMD divergence (Zhao et al. 2019). Same arguments as ``VAE`` plus:

    Args:
        alpha: weight 1 - alpha of the per-image KL (1: none, the MMD-VAE; 0: all of it).
        lambda_: with alpha, the weight alpha + lambda - 1 of MMD(q(z), p(z)). For alpha = 1
            this is simply lambda: loss = reconstruction + lambda * MMD.
        kernel: ``"imq"`` (inverse multiquadric, heavy-tailed) or ``"rbf"``.
        kernel_sigma: the prior's standard deviation in the kernels' scale C = 2 z_dim sigma^2.

    Choosing lambda: MMD^2 of a batch is a small number (1e-3 to 1e-1 here) next to a
    reconstruction term of tens to hundreds of nats per image, so lambda is large -- but the
    batch estimate is also noisy (about +-0.005 for 128 codes), and lambda multiplies that
    noise too. Measured on the embedded digits (60 epochs, batch 128, alpha = 1):
    z = 20: lambda = 10 left q(z) far from p(z) (test MMD^2 0.057, poor samples), lambda = 1000
    matched it (0.0046, good samples, reconstruction 286 vs 255 nats); z = 2 (8x8 images,
    1500 steps): lambda = 1000 collapsed to uninformative codes (q(z|x) = p(z) for every x
    matches q(z) to p(z) exactly) where lambda = 10 worked. The default, 1000, is for the
    usual z = 10..20.
    """

    def __init__(self, image_shape: Sequence[int] = (1, 28, 28), z_dim: int = 20,
                 alpha: float = 1.0, lambda_: float = 1000.0, kernel: str = "imq",
                 kernel_sigma: float = 1.0, arch: str = "fc", hidden: int | None = None,
                 channels: Sequence[int] = (32, 64), likelihood: str = "bernoulli",
                 decoder_logvar: float | str = 0.0, encoder: nn.Module | None = None,
                 decoder: nn.Module | None = None) -> None:
        super().__init__(image_shape, z_dim, arch, hidden, channels, likelihood, decoder_logvar,
                         encoder, decoder)
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {sorted(KERNELS)}, got {kernel!r}")
        self.alpha, self.lambda_ = float(alpha), float(lambda_)
        self.kernel, self.kernel_sigma = kernel, float(kernel_sigma)

    @property
    def kl_weight(self) -> float:
        return 1.0 - self.alpha

    @property
    def mmd_weight(self) -> float:
        return self.alpha + self.lambda_ - 1.0

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """-L_InfoVAE per image as ``"loss"``, with ``"recon"``, ``"kl"``, ``"mmd"`` and the
        plain -ELBO (``"neg_elbo"``) for comparison with other models."""
        t = self.elbo_terms(x)
        z_q = t["z"]                                                 # samples of q(z)
        z_p = sg.randn(z_q.shape, dtype=z_q.dtype, device=z_q.device)  # samples of p(z)
        mmd = mmd_unbiased(z_q, z_p, self.kernel, self.kernel_sigma)   # D(q(z) || p(z))
        recon = -t["log_px"].mean()                                  # -E log p(x|z)
        kl = t["kl"].mean()                                          # E_x KL(q(z|x) || p(z))
        loss = recon + kl * self.kl_weight + mmd * self.mmd_weight  # -L_InfoVAE
        return {"loss": loss, "recon": recon, "kl": kl, "mmd": mmd, "neg_elbo": recon + kl}

    def extra_repr(self) -> str:
        return (super().extra_repr() + f", alpha={self.alpha}, lambda_={self.lambda_}, "
                f"kernel={self.kernel}")


class MMDVAE(InfoVAE):
    """``InfoVAE(alpha=1)``: reconstruction + lambda * MMD(q(z), p(z)), no per-image KL."""

    def __init__(self, image_shape: Sequence[int] = (1, 28, 28), z_dim: int = 20,
                 lambda_: float = 1000.0, kernel: str = "imq", kernel_sigma: float = 1.0,
                 arch: str = "fc", hidden: int | None = None, channels: Sequence[int] = (32, 64),
                 likelihood: str = "bernoulli", decoder_logvar: float | str = 0.0) -> None:
        super().__init__(image_shape, z_dim, 1.0, lambda_, kernel, kernel_sigma, arch, hidden,
                         channels, likelihood, decoder_logvar)
