"""Command-line options the training commands share, checked where they are parsed.

A bad value is refused by ``argparse`` with one line that names the flag and the value
(``scratchgen train vae: error: argument --z-dim: 0 is not a positive integer``), before any
data is read or any file written:

- ``ArgumentParser``: argparse's parser, with errors on one line instead of the usage text.
- types: ``integer``, ``positive_int``, ``nonnegative_int``, ``finite_float``,
  ``positive_float``, ``nonnegative_float``, ``fraction`` (in [0, 1)), ``unit_interval``
  ([0, 1]), ``device`` (``cpu``, ``cuda``, ``cuda:N``; ``cuda`` only where CuPy sees a GPU).
  The floats refuse ``nan`` and ``inf``.
- ``add_run_options(parser)``: ``--checkpoint-every SECONDS`` and ``--allow-nonfinite``, the
  Trainer's ``checkpoint_seconds`` and ``allow_nonfinite``.
- ``data_errors(data, data_dir)``: the data layer's errors (written for Python callers:
  ``data_dir=``) reworded for the command line (``--data-dir``).
- ``script_parser`` / ``script_args``: the options every script of ``examples/`` takes
  (``--steps``, ``--out``, ``--force``, ``--seed``), an existing ``--out`` refused unless
  ``--force``, and the seed set.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
from typing import Any, Iterator

from scratchgen import backend
from scratchgen.train.run import RunError

__all__ = ["ArgumentParser", "integer", "positive_int", "nonnegative_int", "finite_float",
           "positive_float", "nonnegative_float", "fraction", "unit_interval", "device",
           "add_run_options", "data_errors", "flag_error", "DEFAULT_CHECKPOINT_SECONDS",
           "script_parser", "script_args"]

#: ``--checkpoint-every``'s default: a run killed without warning loses at most a minute.
DEFAULT_CHECKPOINT_SECONDS = 60.0


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line on stderr,
    ``PROG: error: MESSAGE (PROG --help lists the options)``, with exit status 2, instead
    of the usage text followed by the message."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} ({self.prog} --help lists the options)\n")


def _number(text: str, kind: type) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number")
    return value


def integer(text: str) -> int:
    """Any integer."""
    return int(_number(text, int))


def positive_int(text: str) -> int:
    """An integer >= 1."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return int(value)


def nonnegative_int(text: str) -> int:
    """An integer >= 0."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return int(value)


def finite_float(text: str) -> float:
    """A finite number."""
    return _number(text, float)


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not positive")
    return value


def nonnegative_float(text: str) -> float:
    """A finite number >= 0."""
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1)."""
    value = _number(text, float)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1)")
    return value


def unit_interval(text: str) -> float:
    """A number in [0, 1]."""
    value = _number(text, float)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1]")
    return value


def device(text: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``; a CUDA device only where CuPy is installed and sees
    a GPU."""
    try:
        dev = backend.device(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a device: use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not backend.cuda_is_available():
        try:
            import cupy  # noqa: F401  (only whether it imports)
        except ImportError:
            raise argparse.ArgumentTypeError(
                f"{text} needs CuPy, which is not installed "
                "(pip install 'scratchgen[cuda]'); use --device cpu") from None
        raise argparse.ArgumentTypeError(f"{text}: CuPy finds no usable NVIDIA GPU; "
                                         "use --device cpu")
    return text


def flag_error(flag: str, value: Any, why: str) -> SystemExit:
    """The one-line error for a flag's bad value, ``--flag value: why``, to raise."""
    return SystemExit(f"{flag} {value}: {why}")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """``--checkpoint-every SECONDS`` (default 60) and ``--allow-nonfinite``."""
    parser.add_argument("--checkpoint-every", type=positive_float,
                        default=DEFAULT_CHECKPOINT_SECONDS, metavar="SECONDS",
                        help="save a checkpoint when this many seconds have passed since "
                             f"the last one (default {DEFAULT_CHECKPOINT_SECONDS:g}), checked "
                             "after each step; also at the end, on Ctrl-C and on SIGTERM")
    parser.add_argument("--allow-nonfinite", action="store_true",
                        help="train on when a loss becomes NaN or infinite (by default the "
                             "run stops there, keeping its last checkpoint)")


@contextlib.contextmanager
def data_errors(data: str, data_dir: str | None) -> Iterator[None]:
    """Run the loading of the data set ``data``; for MNIST (the one read from files), a
    missing file (``FileNotFoundError``) or a failed download (``RuntimeError``) becomes a
    one-line ``RunError`` that names ``--data`` / ``--data-dir`` and the files expected."""
    try:
        yield
    except (FileNotFoundError, RuntimeError):
        if data != "mnist":
            raise
        files = ("the four MNIST files train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                 "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, gzipped or not")
        if data_dir is not None and not os.path.isdir(data_dir):
            raise RunError(f"--data-dir {data_dir}: no such folder (it should hold {files})"
                           ) from None
        if data_dir is not None:
            raise RunError(f"--data-dir {data_dir}: the files are not there (it should hold "
                           f"{files})") from None
        raise RunError(f"--data {data}: the files are not in the cache and could not be "
                       f"downloaded; pass --data-dir DIR, a folder holding {files}") from None


def script_parser(doc: str | None, out: str, steps: int,
                  steps_help: str = "optimiser steps") -> ArgumentParser:
    """The parser of a script of ``examples/``, described by its docstring's first paragraph,
    with ``--steps`` (default ``steps``), ``--out`` (the picture, default ``out``),
    ``--force`` and ``--seed``; the script adds its own options."""
    p = ArgumentParser(description=(doc or "").split("\n\n")[0])
    p.add_argument("--steps", type=positive_int, default=steps, help=steps_help)
    p.add_argument("--out", default=out, help="the picture to write")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--seed", type=integer, default=0)
    return p


def script_args(p: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse a script's options; stop with one line if ``--out`` exists and ``--force`` is not
    given (nothing the user has is overwritten); set the random seed."""
    args = p.parse_args(argv)
    if os.path.exists(args.out) and not args.force:
        p.exit(1, f"{args.out} exists: pass --force to overwrite it, or another --out\n")
    from scratchgen import manual_seed

    manual_seed(args.seed)
    return args
