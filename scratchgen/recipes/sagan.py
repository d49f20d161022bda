"""SAGAN (Zhang et al. 2019) on the embedded digits or MNIST: self-attention blocks in both
networks of a spectrally normalised GAN trained with the hinge loss and two learning rates.

    scratchgen train sagan                      # unconditional, embedded digits
    scratchgen train sagan --conditional        # as the paper: conditional BN + projection
    scratchgen train sagan --data mnist --data-dir ../shared/data/mnist --epochs 5 \\
        --out runs/sagan-mnist

A self-attention block lets every position of a feature map read from all the others,
y = gamma o + x with o the attention output and gamma starting at 0 (their eq. 1-3;
``models.sagan``). Training as the paper's Sec. 5 (``models.sagan.DEFAULTS``): spectral
normalisation in G and D, the hinge loss

    L_D = E[relu(1 - D(x))] + E[relu(1 + D(G(z)))],     L_G = -E[D(G(z))],

the two time-scale update rule, Adam lr 1e-4 for G and 4e-4 for D with betas (0, 0.9), one D
update per G update. The paper's model is class-conditional (ImageNet); ``--conditional``
gives that form, unconditional is the default here. z has 128 units, batch 64.

Attention sits after the block whose output has ``--attention-resolution`` pixels a side,
by default half the image side (14 for 28x28, 16 for 32x32), which both networks have.

On the embedded digits the defaults are ``--width 16 --batch-size 32``, 60 epochs (2760
steps; 0.114 s per step, about 5 minutes); their sample quality was not measured.

Seconds per MNIST epoch (937 steps of 64), from the steps of ``scratchgen train sagan --data
mnist --data-dir ../shared/data/mnist --steps 60 --no-eval`` (``metrics.json``'s
``train_seconds_per_step``) on an otherwise idle 2-core CPU: 779 s (0.83 s per step). On
MNIST, ``--epochs 2 --eval`` (1874 generator updates; 826 s per epoch): mostly recognisable
digits, 10,000 samples against the test images on the shipped classifier's features: Frechet
distance 134.7, KID 10.5, classifier score 6.25, precision 0.48, recall 0.67, class KL to
uniform 0.09.

The shared recipe, its outputs and its evaluation are in ``recipes/image_gan.py``.
"""
from __future__ import annotations

import argparse
from typing import Any

from scratchgen.recipes import image_gan
from scratchgen.models import sagan
from scratchgen.train.options import positive_int

__all__ = ["RECIPE", "parser", "main", "sample", "evaluate", "build_networks", "attention_resolution"]


def attention_resolution(opts: dict[str, Any]) -> int:
    """--attention-resolution, or half the image side."""
    r = opts.get("attention_resolution")
    return r if r is not None else opts["image_size"] // 2


def build_networks(opts: dict[str, Any]) -> tuple[sagan.SAGenerator, sagan.SADiscriminator]:
    k = image_gan.NUM_CLASSES if opts.get("conditional") else None
    r = attention_resolution(opts)
    G = sagan.SAGenerator(opts["z_dim"], opts["image_size"], 1, opts["width"], k, r)
    D = sagan.SADiscriminator(opts["image_size"], 1, opts["width"], k, r)
    return G, D


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--attention-resolution", type=positive_int, default=None,
                   help="side of the feature maps that get self-attention (default: half the "
                        "image side)")
    p.add_argument("--conditional", action="store_true",
                   help="class-conditional: conditional BN in G, projection discriminator")


def check(opts: dict[str, Any]) -> None:
    r = opts.get("attention_resolution")
    if r is None:
        return
    try:
        both = sorted(set(sagan.generator_resolutions(opts["image_size"]))
                      & set(sagan.discriminator_resolutions(opts["image_size"])))
    except ValueError:
        return  # the image size itself is reported when the networks are built
    if r not in both:
        raise SystemExit(f"--attention-resolution {r}: for {opts['image_size']}x"
                         f"{opts['image_size']} images both networks have feature maps of "
                         f"side {', '.join(map(str, both)) or '(none in common)'}")


RECIPE = image_gan.Recipe(
    name="sagan", title="SAGAN", doc=__doc__, build=build_networks,
    add_arguments=add_arguments, check=check,
    defaults={**sagan.DEFAULTS, "z_dim": 128, "width": 64, "batch_size": 64, "image_size": 28},
    epochs={"digits": 60, "mnist": 5}, digits={"batch_size": 32, "width": 16})


parser, main, sample, evaluate = image_gan.entry_points(RECIPE)

if __name__ == "__main__":
    main()
