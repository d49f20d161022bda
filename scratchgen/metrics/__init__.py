"""Evaluation metrics.

- ``likelihood``: ELBO and importance-weighted log-likelihood bounds of VAEs.
- ``toy``: KL and JSD between 2-D histograms of real and generated samples.
- ``modes``: mode coverage of 2-D mixtures (modes captured, high-quality fraction, reverse KL)
  and the standard ring and grid settings.
- ``gan``: sample quality on feature vectors: Frechet distance, KID, classifier (Inception)
  score, improved precision and recall.
- ``features``: those metrics on images, through a classifier's features and probabilities;
  ``class_accuracy`` for conditional generators.
- ``classifier``: the LeNet classifier and the trained copies shipped with the package
  (``pretrained_classifier("mnist" | "digits")``).
"""
