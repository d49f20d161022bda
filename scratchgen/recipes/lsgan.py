"""Least-squares GAN (Mao et al. 2017) on the embedded digits or MNIST: DCGAN's networks with
the least-squares loss.

    scratchgen train lsgan                      # embedded digits at 28x28
    scratchgen train lsgan --data mnist --data-dir ../shared/data/mnist --epochs 3 \\
        --out runs/lsgan-mnist

The loss (Mao et al., eq. 2, with the 0-1 coding a = 0, b = c = 1, on D's raw output l):

    L_D = 1/2 E_x[(l(x) - 1)^2] + 1/2 E_z[l(G(z))^2],     L_G = 1/2 E_z[(l(G(z)) - 1)^2]

which for the optimal D makes G minimise a Pearson chi^2 divergence (their Sec. 3.2, for the
coding b - c = 1, b - a = 2; the 0-1 coding is the one the official code trains with). Unlike
the sigmoid cross-entropy, it keeps pulling generated samples that D already classifies as real
but that lie far from the data (their Fig. 1), instead of saturating.

Settings: the networks are ``models.dcgan``'s (28x28: 128x7x7 -> 64x14x14 -> 1x28x28), as the
paper's scene experiments build on DCGAN. Optimiser: the official code's (github.com/xudonmao/
LSGAN, ``train_lsun.py`` / ``vgg.py``): Adam with lr 1e-3 and beta1 = 0.5 for both networks,
batch 64 (DCGAN itself found 1e-3 too high for its loss and used 2e-4). Where the code differs
from the paper's eq. 2: ``tf.nn.l2_loss`` sums x^2 / 2 over the batch instead of averaging, so
its losses are 64 times ours; Adam is almost invariant to that scale, so the updates are nearly
the same.

On the embedded digits the defaults are ``--width 32 --batch-size 32``, 100 epochs:
``scratchgen train lsgan --eval`` ran 4600 steps in 92 s; on the 297 test digits, "model
(real-vs-real baseline)": FD 142.0 (87.3), classifier score 7.17 (9.83), precision 0.485
(0.731), recall 0.865 (0.842), class-histogram KL to uniform 0.052 (0.011); lr 1e-3 trained
stably there.

Seconds per MNIST epoch (937 steps of 64), from the steps of ``scratchgen train lsgan --data
mnist --data-dir ../shared/data/mnist --steps 60 --no-eval`` (``metrics.json``'s
``train_seconds_per_step``) on an otherwise idle 2-core CPU: 76 s (0.081 s per step).

The shared recipe, its outputs and its evaluation are in ``recipes/image_gan.py``.
"""
from __future__ import annotations

from typing import Any

from scratchgen.recipes import image_gan
from scratchgen.models import dcgan

__all__ = ["RECIPE", "parser", "DEFAULTS", "main", "sample", "evaluate", "build_networks"]

#: The official LSGAN code's optimiser: Adam lr 1e-3, beta1 0.5, batch 64.
DEFAULTS = {**dcgan.DEFAULTS, "d_loss": "lsgan", "g_loss": "lsgan", "lr_g": 1e-3, "lr_d": 1e-3,
            "betas": (0.5, 0.999), "batch_size": 64}


def build_networks(opts: dict[str, Any]) -> tuple[dcgan.DCGANGenerator, dcgan.DCGANDiscriminator]:
    G = dcgan.DCGANGenerator(opts["z_dim"], opts["image_size"], 1, opts["width"])
    D = dcgan.DCGANDiscriminator(opts["image_size"], 1, opts["width"], norm="batch")
    return G, D


RECIPE = image_gan.Recipe(
    name="lsgan", title="LSGAN", doc=__doc__, build=build_networks,
    defaults={**DEFAULTS, "image_size": 28},
    epochs={"digits": 100, "mnist": 5}, digits={"batch_size": 32, "width": 32})


parser, main, sample, evaluate = image_gan.entry_points(RECIPE)

if __name__ == "__main__":
    main()
