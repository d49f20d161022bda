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
  starting at 1 and 0); D as ``concat``;
* ``projection`` (Miyato & Koyama 2018): G as ``cbn``; D's logit is psi(phi(x)) +
  <V_y, phi(x)>.

Both networks are DCGAN's (``models.dcgan``), trained as DCGAN (BCE, non-saturating G loss,
Adam 2e-4, betas (0.5, 0.999)); the fake batch of each step carries the real batch's labels.
samples.png has one row per class (the same latent down each column), and ``--eval`` adds the
fraction of samples the shipped classifier reads as the class they were drawn for.

The shared recipe, its outputs and its evaluation are in ``examples/image_gan.py``.
"""
from __future__ import annotations

import argparse
import pathlib
from typing import Any

import numpy as np

from scratchgen.examples import image_gan
from scratchgen.models import cgan, dcgan

__all__ = ["RECIPE", "main", "sample", "build_networks"]


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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return image_gan.main(RECIPE, argv)


def sample(run: pathlib.Path, n: int, label: int | None = None, seed: int = 0,
           device: str = "cpu") -> np.ndarray:
    """n samples of a cgan run, float32 (n, 1, S, S) in [0, 1]: all of class ``label``, or
    0, 1, ..., 9, 0, ... when it is None."""
    return image_gan.sample(RECIPE, run, n, label, seed, device)


if __name__ == "__main__":
    main()
