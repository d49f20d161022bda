"""WGAN-GP (Gulrajani et al. 2017) on the embedded digits or MNIST: a Wasserstein critic kept
1-Lipschitz by a gradient penalty.

    scratchgen train wgan-gp                    # embedded digits at 28x28
    scratchgen train wgan-gp --data mnist --data-dir ../shared/data/mnist --epochs 5 \\
        --out runs/wgan-gp-mnist

The critic l estimates the Wasserstein-1 distance through its Kantorovich-Rubinstein dual,
which needs l to be 1-Lipschitz; instead of clipping weights (WGAN), the penalty pushes the
norm of its gradient to 1 on straight lines between real and generated examples (their eq. 3):

    L_D = E_z[l(G(z))] - E_x[l(x)] + lambda E_x^[(||grad_x^ l(x^)||_2 - 1)^2],
    x^ = alpha x + (1 - alpha) G(z),  alpha ~ U[0, 1] per example;     L_G = -E_z[l(G(z))]

Settings, from the paper's Algorithm 1: lambda = 10, n_critic = 5 critic updates per generator
update, Adam lr 1e-4, betas (0, 0.9), batch 64; no batch norm in the critic (it would make each
example's gradient depend on the others in the batch, Sec. 4). Where the official code
differs: its MNIST script (github.com/igul222/improved_wgan_training, ``gan_mnist.py``) uses
betas (0.5, 0.9), batch 50, z of size 128 and 5x5 kernels, with no normalisation anywhere;
``--beta1 0.5`` gives its optimiser. We keep DCGAN's networks (``models.dcgan``) with batch
norm in G, and ``--critic-norm`` none (as that script) or layer (the paper's suggestion,
per-example layer normalisation over the whole map, as the code's 64x64 critics).

Each step of the run (and each batch of an epoch) is one critic update, so an epoch makes
steps / 5 generator updates.

On the embedded digits the defaults are ``--width 32 --batch-size 32``, 200 epochs (9200
critic updates, 1840 generator updates; 0.031 s per step, about 5 minutes); their sample
quality was not measured.

Measured on MNIST, 2-core CPU (a low-priority job beside it): ``scratchgen train wgan-gp
--data mnist --data-dir ../shared/data/mnist --epochs 5 --eval`` took 108 s per epoch of
critic updates (937 steps of 64, 187 generator updates); after 5 epochs (937 generator
updates) its samples are broken strokes, 10,000 of them against the test images on the shipped
classifier's features: Frechet distance 317.3, KID 21.9, classifier score 4.07, precision 0.50,
recall 0.33, class KL to uniform 0.23. The paper trains for 200,000 generator updates; with
lr 1e-4 and betas (0, 0.9) a few hundred are not enough (DCGAN's settings draw digits in
the same number of epochs).

The shared recipe, its outputs and its evaluation are in ``recipes/image_gan.py``.
"""
from __future__ import annotations

import argparse
from typing import Any

from scratchgen.recipes import image_gan
from scratchgen.models import dcgan

__all__ = ["RECIPE", "parser", "DEFAULTS", "main", "sample", "evaluate", "build_networks"]

#: Algorithm 1 of Gulrajani et al. 2017 (z of size 128 as their code).
DEFAULTS = {"d_loss": "wasserstein", "g_loss": "wasserstein", "lr_g": 1e-4, "lr_d": 1e-4,
            "betas": (0.0, 0.9), "n_dis": 5, "gp_lambda": 10.0, "z_dim": 128, "width": 64,
            "batch_size": 64}


def build_networks(opts: dict[str, Any]) -> tuple[dcgan.DCGANGenerator, dcgan.DCGANDiscriminator]:
    G = dcgan.DCGANGenerator(opts["z_dim"], opts["image_size"], 1, opts["width"])
    D = dcgan.DCGANDiscriminator(opts["image_size"], 1, opts["width"],
                                 norm=opts.get("critic_norm", "none"))
    return G, D


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--critic-norm", choices=["none", "layer"], default="none",
                   help="normalisation in the critic: none (default) or layer; never batch norm, "
                        "which breaks the per-example gradient penalty")


RECIPE = image_gan.Recipe(
    name="wgan-gp", title="WGAN-GP", doc=__doc__, build=build_networks,
    add_arguments=add_arguments,
    defaults={**DEFAULTS, "image_size": 28},
    epochs={"digits": 200, "mnist": 10}, digits={"batch_size": 32, "width": 32})


parser, main, sample, evaluate = image_gan.entry_points(RECIPE)

if __name__ == "__main__":
    main()
