"""Command line: ``scratchgen list|train|sample|eval|report|bench ...`` (also
``python -m scratchgen``).

    scratchgen train vae                        # a VAE on the embedded digits: pictures in runs/vae
    scratchgen train vae --data mnist --data-dir DIR --epochs 10
    scratchgen train MODEL --help               # each model's own options
    scratchgen list                             # the models, one line each
    scratchgen sample RUN --n 64 --out s.png    # draw from a trained run (.png or .npy)
    scratchgen eval RUN                         # the run's metrics, one JSON object on stdout
    scratchgen eval RUN --help                  # the model's evaluation options
    scratchgen report RUN                       # (re)write RUN/report.html
    scratchgen bench engine                     # autograd overhead vs the same math in NumPy
    scratchgen bench kernels                    # convolution/attention time and GFLOP/s
    scratchgen bench lenet --data-dir DIR       # LeNet on MNIST: accuracy, seconds per epoch
    scratchgen bench models                     # seconds per MNIST epoch of every example's model
    scratchgen bench torch                      # train steps against the same models in PyTorch

Every model trains on the embedded digits by default (no download) and takes ``--device cuda``.

A run folder belongs to one run: a new run refuses a folder that holds anything, and
``--resume`` continues only a run of the same model with the same options (``--epochs``,
``--steps``, ``--device``, ``--checkpoint-every`` and ``--allow-nonfinite`` may change).
Checkpoints are written at least once a minute (``--checkpoint-every SECONDS``), at the end,
and on Ctrl-C or SIGTERM. Each ``scratchgen train`` run ends by writing ``report.html`` in its
folder (config, loss curves, metrics and pictures in one page that needs no network), also when
it stops at Ctrl-C, SIGTERM or a non-finite loss.

``scratchgen eval RUN`` runs the model's ``evaluate(run, device, ...)`` on the run's newest
checkpoint and prints its metrics as one JSON object (non-finite numbers as ``null``); anything
else the evaluation prints goes to stderr. Its keyword parameters with defaults are the
command's flags (``k`` becomes ``--k``), typed by their annotations.

Errors a user can cause (a bad flag value, a folder that is not the right run, a missing data
file, a loss that became NaN) end with one line, ``scratchgen: error: ...``, and no
traceback; ``--debug`` anywhere on the line shows the traceback. Exit status: 0 done, 1 the
run stopped at a non-finite loss, 2 an error in the command (its flags, files or folders),
130 / 143 stopped by Ctrl-C / SIGTERM after saving a checkpoint.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import math
import pathlib
import signal
import sys
import typing
from typing import Any, Callable, Mapping

from scratchgen import __version__

__all__ = ["main", "MODELS", "BENCHMARKS"]

#: ``scratchgen train NAME`` runs ``main(argv)`` of this module in ``scratchgen.recipes``.
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
    "pix2pix": ("pix2pix", "paired image-to-image translation, U-Net + PatchGAN (Isola et al.)"),
    "cyclegan": ("cyclegan", "unpaired translation with cycle consistency (Zhu et al.)"),
    "style-transfer": ("style_transfer", "fast style transfer (Johnson et al.) or --optimize (Gatys)"),
}

BENCHMARKS = {
    "engine": "scratchgen.benchmarks.engine",
    "modes": "scratchgen.benchmarks.modes",
    "kernels": "scratchgen.kernels.bench",
    "lenet": "scratchgen.benchmarks.lenet",
    "models": "scratchgen.benchmarks.models",
    "torch": "scratchgen.benchmarks.torch_compare",
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
    from scratchgen.train.images import save_image_grid
    from scratchgen.train.plots import scatter_2d

    out = pathlib.Path(args.out)
    if out.suffix not in (".png", ".npy"):
        return _fail(f"--out {args.out}: the file must end in .png or .npy")
    if args.n < 1:
        return _fail(f"--n {args.n}: must be at least 1")
    name, module = _example(args.run)
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
        what = f" of class {args.label}" if args.label is not None else ""
        save_image_grid(samples, out, nrow=nrow, value_range=(0, 1),
                        scale=max(1, 64 // samples.shape[-1]),
                        caption=f"{len(samples)} samples{what} of {args.run} (seed {args.seed})")
    print(f"wrote {len(samples)} samples of {args.run} to {out}")
    return 0


def _example(run: str) -> tuple[str, Any]:
    """(model name, example module) of the run folder ``run``, from its config.json."""
    from scratchgen.train import RunError, read_run_config

    name = read_run_config(run)["model"]
    if name not in MODELS:
        raise RunError(f"{run} is a run of {name!r}, which scratchgen does not know")
    return name, importlib.import_module(f"scratchgen.recipes.{MODELS[name][0]}")


def _evaluation_parameters(fn: Any) -> list[inspect.Parameter] | None:
    """The flags of an ``evaluate(run, device="cpu", **options)``: its keyword parameters with
    defaults after ``run``, or None when ``fn`` is not such a function."""
    if not callable(fn):
        return None
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if not params or params[0].kind not in positional or \
            "device" not in [p.name for p in params[1:]]:
        return None
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    found = [p for p in params[1:] if p.kind in keyword and p.default is not p.empty]
    # a parameter after run without a default would get no value from the command line
    if any(p.default is p.empty and p.kind in keyword for p in params[1:]):
        return None
    return found


def _flag_type(fn: Any, param: inspect.Parameter) -> Any:
    """The Python type a flag's text becomes: the annotation (``int | None`` counts as int),
    else the default's type, else str."""
    try:
        hint = typing.get_type_hints(fn).get(param.name)
    except Exception:  # an annotation that does not resolve: fall back on the default
        hint = None
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if len(args) == 1:
        hint = args[0]
    if hint in (bool, int, float, str):
        return hint
    if param.default is not None and type(param.default) in (bool, int, float, str):
        return type(param.default)
    return str


def _docstring_args(fn: Any) -> dict[str, str]:
    """``{name: help}`` from the ``Args:`` section of ``fn``'s docstring (``name: text`` lines,
    continued on more deeply indented ones)."""
    doc = inspect.getdoc(fn) or ""
    found: dict[str, str] = {}
    inside, name, indent = False, None, 0
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:", "Options:"):
            inside, name, indent = True, None, -1
            continue
        if not inside:
            continue
        if not stripped:
            continue
        depth = len(line) - len(line.lstrip())
        if indent < 0:
            indent = depth
        if depth < indent:
            break
        head, sep, text = stripped.partition(":")
        if depth == indent and sep and head.isidentifier():
            name = head
            found[name] = text.strip()
        elif name is not None:
            found[name] += " " + stripped
    return found


def _json_ready(value: Any) -> Any:
    """``value`` as strict JSON data: non-finite floats become None, NumPy scalars and arrays
    Python numbers and lists, tuples lists, paths strings."""
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, pathlib.PurePath):
        return str(value)
    if hasattr(value, "tolist"):
        return _json_ready(value.tolist())
    if hasattr(value, "item"):
        return _json_ready(value.item())
    return str(value)


def _evaluate(run: str | None, rest: list[str]) -> int:
    """``scratchgen eval RUN [--device D] [the model's options]``: the model's ``evaluate``
    on the run, printed as one JSON object on stdout."""
    from scratchgen.train import options

    if run is None:  # `scratchgen eval` or `scratchgen eval --help`
        print("usage: scratchgen eval RUN [--device DEVICE] [options]\n\n"
              "Prints the metrics of a run's newest checkpoint as one JSON object.\n"
              "`scratchgen eval RUN --help` lists the options of the run's model.")
        return 0 if any(a in ("-h", "--help") for a in rest) else 2
    name, module = _example(run)
    fn = getattr(module, "evaluate", None)
    params = _evaluation_parameters(fn)
    if params is None:
        return _fail(f"{run}: evaluating {name!r} runs is not supported")
    helps = _docstring_args(fn)
    # the docstring up to its Args: section says what the figures are
    about = (inspect.getdoc(fn) or "").split("\nArgs:")[0].strip()
    parser = options.ArgumentParser(prog=f"scratchgen eval {run}",
                                    description=about or f"The metrics of a {name!r} run.")
    for param in params:
        flag = "--" + param.name.replace("_", "-")
        kind = _flag_type(fn, param)
        text = helps.get(param.name, "")
        if param.name == "device":
            parser.add_argument(flag, type=options.device, default=param.default,
                                help=text or "cpu, cuda or cuda:N (default %(default)s)")
        elif kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction,
                                default=param.default, help=text)
        else:
            convert: Callable[[str], Any] = {int: options.integer, float: options.finite_float
                                             }.get(kind, str)
            parser.add_argument(flag, type=convert, default=param.default,
                                help=(text + " " if text else "") + "(default %(default)s)")
    kwargs = vars(parser.parse_args(rest))
    # the JSON object is the only thing on stdout, so that it can be piped as it is
    with contextlib.redirect_stdout(sys.stderr):
        result = fn(pathlib.Path(run), **kwargs)
    if not isinstance(result, Mapping):
        raise TypeError(f"{module.__name__}.evaluate returned {type(result).__name__}, "
                        "not a dict")
    # the run's own identity first, and never overridden by a metric of the same name
    record = {"model": name, "run": str(run)}
    record.update((k, v) for k, v in result.items() if k not in record)
    print(json.dumps(_json_ready(record)))
    return 0


def _report(run: str) -> int:
    """``scratchgen report RUN``: (re)write RUN/report.html."""
    from scratchgen.train.report import write_report

    path = write_report(run)
    print(f"wrote {path}")
    return 0


def _train(name: str, rest: list[str]) -> int:
    """``scratchgen train NAME ...``: the example's ``main(rest)``, then ``report.html`` in
    each run folder it started or resumed (also after Ctrl-C, SIGTERM or a non-finite loss,
    when the folder holds more than its config.json)."""
    from scratchgen.train import CONFIG_NAME, NonFiniteLossError, TrainingInterrupted
    from scratchgen.train.report import write_report
    from scratchgen.train.run import recording_runs

    module = importlib.import_module(f"scratchgen.recipes.{MODELS[name][0]}")
    sys.argv[0] = f"scratchgen train {name}"  # argparse in the module names itself after argv[0]
    with recording_runs() as folders:
        try:
            result = module.main(rest)
        except (TrainingInterrupted, KeyboardInterrupt, NonFiniteLossError):
            for folder in folders:
                # a folder with nothing but its config is free for the next new run: a
                # report would take that away
                if any(p.name != CONFIG_NAME for p in folder.iterdir()):
                    with contextlib.suppress(Exception):  # the run's own error comes first
                        write_report(folder)
            raise
    for folder in folders:
        print(f"wrote {write_report(folder)}")
    return result if isinstance(result, int) else 0


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
    # no -h: `scratchgen eval RUN --help` lists the options of the run's own model
    ev = sub.add_parser("eval", help="print a trained run's metrics as one JSON object",
                        add_help=False)
    ev.add_argument("run", nargs="?", help="the run folder (e.g. runs/vae)")
    re_ = sub.add_parser("report", help="write a run's report.html (config, curves, pictures)")
    re_.add_argument("run", help="the run folder (e.g. runs/vae)")
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
    if args.command in ("sample", "report") and rest:
        return _fail(f"unrecognised arguments: {' '.join(rest)}")
    if args.command == "sample":
        return _sample(args)
    if args.command == "eval":
        return _evaluate(args.run, rest)
    if args.command == "report":
        return _report(args.run)
    if getattr(args, "model", "") is None or getattr(args, "name", "") is None:
        table = MODELS if args.command == "train" else {k: (v, v) for k, v in BENCHMARKS.items()}
        print(f"usage: scratchgen {args.command} "
              f"{'MODEL' if args.command == 'train' else 'NAME'} [options]\n")
        for k, v in table.items():
            print(f"  {k:20s} {v[1]}")
        return 0 if rest and rest[0] in ("-h", "--help") else 2
    if args.command == "train":
        return _train(args.model, rest)
    module = importlib.import_module(BENCHMARKS[args.name])
    sys.argv[0] = f"scratchgen bench {args.name}"
    result = module.main(rest)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
