"""DCGAN (Radford, Metz & Chintala 2016) on the embedded digits or MNIST.

    scratchgen train dcgan                      # embedded digits at 28x28, no download
    scratchgen train dcgan --data mnist --data-dir ../shared/data/mnist --epochs 3 \\
        --out runs/dcgan-mnist                  # with FD / KID / precision / recall at the end
    scratchgen sample runs/dcgan --n 64 --out dcgan.png

Settings (``models.dcgan``): the 28x28 networks z (100) -> 128x7x7 -> 64x14x14 -> 1x28x28 and
back (``--width 64``), BN in both except G's output and D's input, ReLU / LeakyReLU(0.2), tanh,
N(0, 0.02) weights; the BCE loss with the non-saturating generator loss; Adam lr 2e-4, betas
(0.5, 0.999) for both networks; batch 128 as the paper (the PyTorch example uses 64).
``--image-size 32`` or ``64`` builds the power-of-two networks (4x4 start) instead.

On the 1,500 embedded digits the default run uses narrower networks and smaller batches
(``--width 32 --batch-size 32``, 100 epochs of 46 steps): the paper's width and batch overfit
that small set (width 64 / batch 64 for 60 epochs: slower, and worse samples and FD).

Measured on a shared 2-core CPU (other jobs running; seconds are wall clock of the training
steps alone). Figures are "model (real-vs-real baseline)" on the shipped classifier's features
(``recipes/image_gan.py`` explains the baseline):

    scratchgen train dcgan --eval               # the default run, on the digits
      4600 steps in 115-182 s (1 min 56 s for the whole command on a lightly loaded machine);
      297 samples against the 297 test digits: FD 185.7 (87.3), classifier score 7.17 (9.83),
      precision 0.505 (0.731), recall 0.896 (0.842), class-histogram KL to uniform 0.040 (0.011)
    scratchgen train dcgan --data mnist --data-dir ../shared/data/mnist --epochs 3 \\
        --out runs/dcgan-mnist                  # then --epochs 6 --resume
      130-169 s per epoch (468 steps of 128); 10,000 samples against the 10,000 test images:
      3 epochs: FD 185.9 (2.69), KID 13.7 (0.12), classifier score 5.59 (9.68), precision
        0.476 (0.874), recall 0.623 (0.889), KL to uniform 0.145 (0.002); arithmetic.png:
        7 - 1 + 0 gives a 0 with the 7's top bar, read as 0 by the classifier
      6 epochs: FD 156.7, KID 12.6, classifier score 6.15, precision 0.470, recall 0.710,
        KL to uniform 0.098 (the class-conditional nets with concatenated labels reach
        FD 14.6 in the same 6 epochs: ``recipes/cgan.py``); arithmetic.png: a 7 whose stroke
        closes into a loop, read as 7 (7 of the 8 images)
    (the FC VAE, ``scratchgen train vae --data mnist --epochs 10``, through the same
     evaluation: FD 276.1, KID 25.1, classifier score 4.84, precision 0.697, recall 0.570,
     KL to uniform 0.093)

The shared recipe, its outputs and its evaluation are in ``recipes/image_gan.py``.
"""
from __future__ import annotations

from typing import Any

from scratchgen.recipes import image_gan
from scratchgen.models import dcgan

__all__ = ["RECIPE", "parser", "main", "sample", "evaluate", "build_networks"]


def build_networks(opts: dict[str, Any]) -> tuple[dcgan.DCGANGenerator, dcgan.DCGANDiscriminator]:
    G = dcgan.DCGANGenerator(opts["z_dim"], opts["image_size"], 1, opts["width"])
    D = dcgan.DCGANDiscriminator(opts["image_size"], 1, opts["width"], norm="batch")
    return G, D


RECIPE = image_gan.Recipe(
    name="dcgan", title="DCGAN", doc=__doc__, build=build_networks,
    defaults={**dcgan.DEFAULTS, "image_size": 28},
    epochs={"digits": 100, "mnist": 5}, digits={"batch_size": 32, "width": 32})


parser, main, sample, evaluate = image_gan.entry_points(RECIPE)

if __name__ == "__main__":
    main()
