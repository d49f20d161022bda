"""Command line: ``scratchgen train MODEL [options]`` and ``scratchgen bench NAME [options]``
(also ``python -m scratchgen``).

    scratchgen train vae                        # a VAE on the embedded digits: pictures in runs/vae
    scratchgen train vae --data mnist --data-dir ../shared/data/mnist --epochs 10
    scratchgen train MODEL --help               # each model's own options
    scratchgen list                             # the models, one line each
    scratchgen sample RUN --n 64 --out s.png    # draw from a trained run (.png or .npy)
    scratchgen bench engine                     # autograd overhead vs the same math in NumPy
    scratchgen bench kernels                    # convolution/attention time and GFLOP/s
    scratchgen bench lenet --data-dir DIR       # LeNet on MNIST: accuracy, seconds per epoch
    scratchgen bench models                     # seconds per MNIST epoch of every example's model

Every model trains on the embedded digits by default (no download) and takes ``--device cuda``.

A run folder belongs to one run: a new run refuses a folder that holds anything, and
``--resume`` continues only a run of the same model with the same options (``--epochs``,
``--steps``, ``--device``, ``--checkpoint-every`` and ``--allow-nonfinite`` may change).
Checkpoints are written at least once a minute (``--checkpoint-every SECONDS``), at the end,
and on Ctrl-C or SIGTERM.

Errors a user can cause (a bad flag value, a folder that is not the right run, a missing data
file, a loss that became NaN) end with one line, ``scratchgen: error: ...``, and no
traceback; ``--debug`` anywhere on the line shows the traceback. Exit status: 0 done, 1 the
run stopped at a non-finite loss, 2 an error in the command (its flags, files or folders),
130 / 143 stopped by Ctrl-C / SIGTERM after saving a checkpoint.
"""
from __future__ import annotations

import argparse
import importlib
import math
import pathlib
import signal
import sys

from scratchgen import __version__

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
    "gan": ("gan", "GAN with MLPs, minimax or non-saturating, PacGAN packing (Goodfellow)"),
    "dcgan": ("dcgan", "DCGAN (Radford et al.)"),
    "cgan": ("cgan", "conditional GAN: concatenated labels, conditional BN, projection D"),
    "lsgan": ("lsgan", "least-squares GAN (Mao et al.)"),
    "wgan-gp": ("wgan_gp", "Wasserstein GAN with gradient penalty (Gulrajani et al.)"),
    "sngan": ("sngan", "spectrally normalised GAN, hinge loss (Miyato et al.)"),
    "sagan": ("sagan", "self-attention GAN (Zhang et al.)"),
}

BENCHMARKS = {
    "engine": "scratchgen.benchmarks.engine",
    "modes": "scratchgen.benchmarks.modes",
    "kernels": "kernels.bench",
    "lenet": "scratchgen.benchmarks.lenet",
    "models": "scratchgen.benchmarks.models",
}


def _fail(message: str) -> int:
    """A user's error: one line on stderr, exit status 2."""
    print(f"scratchgen: error: {message}", file=sys.stderr)
    return 2


def _sample(args: argparse.Namespace) -> int:
    """``scratchgen sample RUN``: draw ``--n`` samples from a finished (or running) run with the
    model's own ``sample(run, n, label, seed, device)`` and write them as a picture or an
    array (float32: (N, C, H, W) images in [0, 1], or (N, 2) points)."""
    import numpy

    from scratchgen.serialization import atomic_write
    from scratchgen.train import read_run_config
    from scratchgen.train.images import save_image_grid, scatter_2d

    out = pathlib.Path(args.out)
    if out.suffix not in (".png", ".npy"):
        return _fail(f"--out {args.out}: the file must end in .png or .npy")
    if args.n < 1:
        return _fail(f"--n {args.n}: must be at least 1")
    config = read_run_config(args.run)
    name = config["model"]
    if name not in MODELS:
        return _fail(f"{args.run} is a run of {name!r}, which scratchgen does not know")
    module = importlib.import_module(f"scratchgen.examples.{MODELS[name][0]}")
    if not callable(getattr(module, "sample", None)):
        return _fail(f"{args.run}: sampling from {name!r} runs is not supported")
    samples = numpy.asarray(module.sample(pathlib.Path(args.run), args.n, label=args.label,
                                          seed=args.seed, device=args.device),
                            dtype=numpy.float32)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        atomic_write(out, lambda f: numpy.save(f, samples))
    elif samples.ndim == 2:
        scatter_2d(samples, None, out, title=f"{len(samples)} samples of {args.run}",
                   xlabel="x1", ylabel="x2")
    else:
        nrow = max(1, int(math.ceil(math.sqrt(len(samples)))))
        save_image_grid(samples, out, nrow=nrow, value_range=(0, 1),
                        scale=max(1, 64 // samples.shape[-1]))
    print(f"wrote {len(samples)} samples of {args.run} to {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status. User
    errors are printed as one line (see the module docstring); ``--debug`` re-raises them."""
    from scratchgen.train import NonFiniteLossError, RunError, TrainingInterrupted

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        return _main(argv)
    except TrainingInterrupted as exc:
        if debug:
            raise
        print(f"scratchgen: {exc}", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        if debug:
            raise
        print("scratchgen: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except SystemExit as exc:
        # argparse exits with a status after printing; a message instead of a status is a
        # user error raised by a model's own checks
        if debug or exc.code is None or isinstance(exc.code, int):
            raise
        return _fail(str(exc.code).strip().splitlines()[0])
    except NonFiniteLossError as exc:
        if debug:
            raise
        print(f"scratchgen: error: {_first_line(exc)}", file=sys.stderr)
        return 1
    except (RunError, ValueError, OSError) as exc:
        if debug:
            raise
        return _fail(_first_line(exc))


def _first_line(exc: BaseException) -> str:
    """The exception's message on one line: its first line, and a pointer to ``--debug``
    when the rest was left out."""
    text = str(exc).strip() or type(exc).__name__
    lines = text.splitlines()
    return lines[0] + (" (--debug shows the rest)" if len(lines) > 1 else "")


def _main(argv: list[str]) -> int:
    from scratchgen.train import options

    parser = options.ArgumentParser(prog="scratchgen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"scratchgen {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (anywhere on the line)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the models")
    sa = sub.add_parser("sample", help="draw samples from a trained run")
    sa.add_argument("run", help="the run folder (e.g. runs/dcgan)")
    sa.add_argument("--n", type=int, default=64, help="how many samples")
    sa.add_argument("--label", type=int, default=None, help="class of a conditional model")
    sa.add_argument("--seed", type=int, default=0)
    sa.add_argument("--device", type=options.device, default="cpu")
    sa.add_argument("--out", required=True, help="FILE.png (a picture) or FILE.npy (float32)")
    # no -h on the subcommands: `scratchgen train vae --help` is the model's own help
    tr = sub.add_parser("train", help="train a model and write its pictures", add_help=False)
    tr.add_argument("model", nargs="?", choices=list(MODELS), metavar="MODEL")
    be = sub.add_parser("bench", help="run a benchmark", add_help=False)
    be.add_argument("name", nargs="?", choices=list(BENCHMARKS), metavar="NAME")
    args, rest = parser.parse_known_args(argv)
    if args.command == "list":
        for k, v in MODELS.items():
            print(f"{k:20s} {v[1]}")
        return 0
    if args.command == "sample":
        if rest:
            return _fail(f"unrecognised arguments: {' '.join(rest)}")
        return _sample(args)
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
