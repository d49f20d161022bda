"""Evaluation metrics: ``likelihood`` (ELBO and importance-weighted log-likelihood bounds),
``toy`` (KL and JSD between 2-D histograms of real and generated samples)."""
