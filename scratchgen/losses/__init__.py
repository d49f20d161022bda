"""Reusable losses, each with its formula in the docstring.

``kl`` (Gaussian KL divergences, log-densities, the reparameterization), ``elbo`` (ELBO terms,
beta and capacity objectives), ``mmd`` (unbiased MMD with RBF and inverse-multiquadric kernels),
``vq`` (vector-quantization codebook and commitment losses), ``gan`` (the discriminator and
generator losses on logits: minimax, non-saturating, least squares, hinge, Wasserstein; the
WGAN-GP gradient penalty and R1), ``perceptual`` (Gram matrices, feature reconstruction, style
and total variation losses, ``PerceptualLoss``).
"""
