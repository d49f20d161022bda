"""Command line: ``scratchgen train MODEL [options]`` and ``scratchgen bench NAME [options]``
(also ``python -m scratchgen``).

    scratchgen train vae                        # a VAE on the embedded digits: pictures in runs/vae
    scratchgen train vae --data mnist --data-dir ../shared/data/mnist --epochs 10
    scratchgen train MODEL --help               # each model's own options
    scratchgen bench engine                     # autograd overhead vs the same math in NumPy
    scratchgen bench kernels                    # convolution/attention time and GFLOP/s
    scratchgen bench lenet --data-dir DIR       # LeNet on MNIST: accuracy, seconds per epoch
    scratchgen bench models                     # seconds per MNIST epoch of every example's model

Every model trains on the embedded digits by default (no download) and takes ``--device cuda``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "MODELS", "BENCHMARKS"]

#: ``scratchgen train NAME`` runs ``main(argv)`` of this module in ``scratchgen.examples``.
MODELS = {
    "softmax-regression": ("softmax_regression", "softmax regression written with raw ops"),
    "vae": ("vae_mnist", "VAE, fully connected or convolutional (Kingma & Welling)"),
    "ae-vs-vae": ("ae_vs_vae_latent", "2-D latent spaces of an autoencoder and a VAE"),
    "beta-vae": ("beta_vae", "beta-VAE and the capacity-annealed variant"),
    "info-vae": ("info_vae", "InfoVAE / MMD-VAE"),
    "vq-vae": ("vq_vae", "VQ-VAE with a straight-through codebook"),
    "vq-vae2": ("vq_vae2", "two-level VQ-VAE-2 with PixelCNN priors"),
    "pixelcnn-prior": ("pixelcnn_prior", "gated PixelCNN prior over VQ-VAE codes"),
    "intro-vae": ("intro_vae", "IntroVAE"),
    "soft-intro-vae": ("soft_intro_vae", "Soft-IntroVAE on images"),
    "soft-intro-vae-toy": ("soft_intro_vae_toy", "Soft-IntroVAE on 2-D toy densities"),
    "hierarchical-vae": ("hierarchical_vae", "hierarchical VAE (VDVAE-style top-down path)"),
    "lenet": ("lenet_mnist", "LeNet classifier on MNIST (features for later metrics)"),
}

BENCHMARKS = {
    "engine": "scratchgen.benchmarks.engine",
    "kernels": "kernels.bench",
    "lenet": "scratchgen.benchmarks.lenet",
    "models": "scratchgen.benchmarks.models",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scratchgen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    # no -h on the subcommands: `scratchgen train vae --help` is the model's own help
    tr = sub.add_parser("train", help="train a model and write its pictures", add_help=False)
    tr.add_argument("model", nargs="?", choices=list(MODELS), metavar="MODEL")
    be = sub.add_parser("bench", help="run a benchmark", add_help=False)
    be.add_argument("name", nargs="?", choices=list(BENCHMARKS), metavar="NAME")
    args, rest = parser.parse_known_args(argv)
    if getattr(args, "model", "") is None or getattr(args, "name", "") is None:
        table = MODELS if args.command == "train" else {k: (v, v) for k, v in BENCHMARKS.items()}
        print(f"usage: scratchgen {args.command} "
              f"{'MODEL' if args.command == 'train' else 'NAME'} [options]\n")
        for k, v in table.items():
            print(f"  {k:20s} {v[1]}")
        return 0 if rest and rest[0] in ("-h", "--help") else 2
    if args.command == "train":
        module = importlib.import_module(f"scratchgen.examples.{MODELS[args.model][0]}")
        prog = f"scratchgen train {args.model}"
    else:
        module = importlib.import_module(BENCHMARKS[args.name])
        prog = f"scratchgen bench {args.name}"
    sys.argv[0] = prog  # argparse in the module names itself after argv[0]
    result = module.main(rest)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
