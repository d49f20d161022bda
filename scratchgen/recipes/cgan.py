"""Class-conditional GAN on the embedded digits or MNIST: ask for a digit, get that digit.

    scratchgen train cgan                             # labels concatenated to both inputs
    scratchgen train cgan --cond cbn                  # conditional BN in G, concatenation in D
    scratchgen train cgan --cond projection           # conditional BN in G, projection D
    scratchgen train cgan --data mnist --data-dir ../shared/data/mnist --epochs 3 \\
        --cond projection --out runs/cgan-projection-mnist
    scratchgen sample runs/cgan --label 7 --n 16 --out sevens.png

``--cond`` chooses how the label reaches the networks (``models.cgan``):

* ``concat`` (Mirza & Osindero 2014): G reads [z, onehot(y)], D reads the image with 10 one-hot
  label planes appended;
* ``cbn``: G's batch norms become conditional batch norms (a per-class scale and shift,
  starting at 1 and 0) and G reads [z, onehot(y)] as ``concat``'s does (BigGAN-deep's first
  layer: ``models.cgan`` says why); D as ``concat``;
* ``projection`` (Miyato & Koyama 2018): G as ``cbn``; D's logit is psi(phi(x)) +
  <V_y, phi(x)>.

Both networks are DCGAN's (``models.dcgan``), trained as DCGAN (BCE, non-saturating G loss,
Adam 2e-4, betas (0.5, 0.999)); the fake batch of each step carries the real batch's labels.
samples.png has one row per class (the same latent down each column), and ``--eval`` adds the
fraction of samples the shipped classifier reads as the class they were drawn for.

Measured on MNIST (shared 2-core CPU, other jobs running), 10,000 samples (1,000 per class)
against the 10,000 test images on the shipped classifier's features, "model (real-vs-real
baseline: 10,000 training images)"; class accuracy is the fraction of samples the classifier
reads as the class they were drawn for (its accuracy on the test images: 0.992):

    scratchgen train cgan --data mnist --data-dir ../shared/data/mnist --cond C --epochs 2 \
        --out runs/cgan-C-mnist, then the same with --epochs 6 --resume
    --cond concat      2 epochs: class accuracy 0.821, FD 102.5, KID 8.10, classifier score
                       7.61, precision 0.531, recall 0.466
                       6 epochs: class accuracy 0.980, FD 14.57 (2.69), KID 0.67 (0.12),
                       classifier score 9.52 (9.68), precision 0.678 (0.874), recall 0.741
                       (0.889); 115-217 s per epoch
    --cond cbn         2 epochs: class accuracy 0.813, FD 95.0, KID 6.75, score 7.58,
                       precision 0.530, recall 0.547
                       6 epochs: class accuracy 0.971, FD 15.97, KID 0.83, score 9.41,
                       precision 0.665, recall 0.759; 335-466 s per epoch (a busier CPU)
    --cond projection  6 epochs (one run of --epochs 6): class accuracy 0.990, FD 18.11,
                       KID 0.57, score 9.74, precision 0.703, recall 0.699; 169 s per
                       epoch

(cbn and projection measured with the label at G's first layer; before it, with G reading z
alone and the label in its two batch norms only, they reached class accuracy 0.141 / 0.123
after 2 epochs and 0.697 / 0.626 after 6, FD 104.8 / 151.9: ``models.cgan`` has the analysis.)
``concat`` stays the default, the simplest of the three.

The shared recipe, its outputs and its evaluation are in ``recipes/image_gan.py``.
"""
from __future__ import annotations

import argparse
from typing import Any

from scratchgen.recipes import image_gan
from scratchgen.models import cgan, dcgan

__all__ = ["RECIPE", "parser", "main", "sample", "evaluate", "build_networks"]


def build_networks(opts: dict[str, Any]) -> tuple[cgan.ConditionalGenerator, Any]:
    return cgan.build_conditional_gan(opts["cond"], opts["z_dim"], opts["image_size"], 1,
                                      opts["width"], image_gan.NUM_CLASSES)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cond", choices=list(cgan.CONDITIONINGS), default="concat",
                   help="how labels enter: concat (default), cbn or projection")


RECIPE = image_gan.Recipe(
    name="cgan", title="Conditional GAN", doc=__doc__, build=build_networks,
    add_arguments=add_arguments,
    defaults={**dcgan.DEFAULTS, "image_size": 28},
    epochs={"digits": 100, "mnist": 5}, digits={"batch_size": 32, "width": 32})


parser, main, sample, evaluate = image_gan.entry_points(RECIPE)

if __name__ == "__main__":
    main()
