"""SNGAN (Miyato et al. 2018) on the embedded digits or MNIST: spectral normalisation in the
discriminator, the hinge loss, and optionally the projection discriminator for classes.

    scratchgen train sngan                      # the paper's standard CNN, embedded digits
    scratchgen train sngan --arch resnet        # the official CIFAR-10 ResNets
    scratchgen train sngan --conditional        # conditional BN in G, projection D (classes)
    scratchgen train sngan --data mnist --data-dir ../shared/data/mnist --epochs 5 \\
        --out runs/sngan-mnist

Every weight W of D is divided by its largest singular value, W / sigma(W) (their eq. 8,
sigma from one power iteration per step), which bounds D's Lipschitz constant by 1 without
a penalty. The loss is the hinge loss of the official CIFAR-10 runs,

    L_D = E[relu(1 - D(x))] + E[relu(1 + D(G(z)))],     L_G = -E[D(G(z))],

with Adam lr 2e-4, betas (0, 0.9) and n_dis = 5 discriminator updates per generator update
(``models.sngan.DEFAULTS``; the module docstring lists where the paper and code differ). z has
128 units and the batch 64, as the official runs; their linear decay of the learning rates is
left out. The networks and their sizes (28 = 7 x 2^2, 32 = 4 x 2^3, ...) are
``models.sngan``'s.

Each step of the run (and each batch of an epoch) is one discriminator update, so an epoch
makes steps / 5 generator updates.

On the embedded digits the defaults are ``--width 16 --batch-size 32``, 100 epochs (4600
discriminator updates; 0.053 s per step, about 4 minutes); their sample quality was not
measured.

Seconds per MNIST epoch (937 steps of 64), from the steps of ``scratchgen train sngan --data
mnist --data-dir ../shared/data/mnist --steps 60 --no-eval`` (``metrics.json``'s
``train_seconds_per_step``) on an otherwise idle 2-core CPU: 352 s for the CNN (0.375 s per
step), 500 s for ``--arch resnet`` (0.53 s per step). On MNIST, ``--epochs 3 --eval`` (2811
discriminator updates, 562 generator updates; 444 s per epoch): digit-like strokes, not yet
digits, 10,000 samples against the test images on the shipped classifier's features: Frechet
distance 204.1, KID 15.1, classifier score 5.38, precision 0.52, recall 0.65, class KL to
uniform 0.19 (the paper trains for 100,000 generator updates).

The shared recipe, its outputs and its evaluation are in ``recipes/image_gan.py``.
"""
from __future__ import annotations

import argparse
from typing import Any

from scratchgen.recipes import image_gan
from scratchgen.models import sngan

__all__ = ["RECIPE", "parser", "main", "sample", "evaluate", "build_networks"]


def build_networks(opts: dict[str, Any]) -> tuple[sngan.SNGenerator, sngan.SNDiscriminator]:
    k = image_gan.NUM_CLASSES if opts.get("conditional") else None
    G = sngan.SNGenerator(opts["z_dim"], opts["image_size"], 1, opts["width"], k, opts["arch"])
    D = sngan.SNDiscriminator(opts["image_size"], 1, opts["width"], k, opts["arch"])
    return G, D


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", choices=list(sngan.ARCHS), default="cnn",
                   help="cnn (the paper's standard CNN, default) or resnet (the official "
                        "CIFAR-10 ResNets)")
    p.add_argument("--conditional", action="store_true",
                   help="class-conditional: conditional BN in G, projection discriminator")


RECIPE = image_gan.Recipe(
    name="sngan", title="SNGAN", doc=__doc__, build=build_networks,
    add_arguments=add_arguments,
    defaults={**sngan.DEFAULTS, "z_dim": 128, "width": 64, "batch_size": 64, "image_size": 28},
    epochs={"digits": 100, "mnist": 10}, digits={"batch_size": 32, "width": 16})


parser, main, sample, evaluate = image_gan.entry_points(RECIPE)

if __name__ == "__main__":
    main()
