"""A run folder belongs to one run: ``config.json`` beside its checkpoint, logs and pictures.

``prepare_run_folder(out, "vae", args, args.resume)`` is the first thing a training command
does. A new run gets a new (or empty) folder and writes ``config.json``, the model's name and
the options it was trained with; a folder that holds anything is refused, so no run ever
writes over another's model, pictures, log or checkpoints. ``--resume`` continues the run in
the folder: it must be a run of the same model, and the options that define the run must be
the stored ones (the ones the user leaves out are taken from the folder); only those that do
not change what is trained (``--epochs``, ``--steps``, the device...) may differ, and their
changes are recorded in ``config.json`` under ``"resumes"``.

``recording_runs()`` collects the folders that ``prepare_run_folder`` started or resumed in a
block of code, for the command line to write each one's ``report.html`` once the training
command is done.

``read_run_config(run)`` gives the stored options back, so that a finished run can be rebuilt
and used (``scratchgen sample RUN``) without the user repeating its flags; ``load_run_state``
reads the newest checkpoint of a run folder. Every refusal is a ``RunError`` with a one-line
message that names the folder, the flag and what to do.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import pathlib
import sys
from typing import Any, Collection, Iterator, Mapping, Sequence

from scratchgen.serialization import atomic_write, remove_stale_temporaries
from scratchgen.train.checkpoint import load_latest

__all__ = ["CONFIG_NAME", "MAY_CHANGE", "RunError", "prepare_run_folder", "given_options",
           "write_run_config", "read_run_config", "load_run_state", "recording_runs"]

CONFIG_NAME = "config.json"

#: Options a resumed run may change: how long it runs, where, how often it saves, and how it
#: treats a non-finite loss. Every other option defines the run and must match on resume.
MAY_CHANGE = ("epochs", "steps", "device", "resume", "out", "checkpoint_every",
              "allow_nonfinite")


# the lists of the recording_runs blocks now open (they may nest): prepare_run_folder adds
# each folder it accepts to every one of them
_recorders: list[list[pathlib.Path]] = []


@contextlib.contextmanager
def recording_runs() -> Iterator[list[pathlib.Path]]:
    """``with recording_runs() as folders: ...`` -- ``folders`` lists (in order, each once) the
    run folders that ``prepare_run_folder`` started or resumed inside the block; a folder it
    refused is not listed."""
    folders: list[pathlib.Path] = []
    _recorders.append(folders)
    try:
        yield folders
    finally:
        # by identity: an enclosing block's list may be equal to this one
        _recorders[:] = [r for r in _recorders if r is not folders]


def _record(out: pathlib.Path) -> pathlib.Path:
    for folders in _recorders:
        if out not in folders:
            folders.append(out)
    return out


class RunError(ValueError):
    """A folder that cannot be used as asked: a new run into a folder that holds something,
    ``--resume`` of a folder that holds no run, another model's run or other options."""


def _json_value(v: Any) -> Any:
    """``v`` as JSON data: tuples become lists, anything else that JSON lacks its ``str``."""
    if isinstance(v, (str, int, float, bool, type(None))):
        return v
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _json_value(x) for k, x in v.items()}
    return str(v)


def _options_dict(options: argparse.Namespace | Mapping[str, Any]) -> dict[str, Any]:
    opts = vars(options) if isinstance(options, argparse.Namespace) else dict(options)
    return {k: _json_value(v) for k, v in opts.items()}


def _write_config(out: pathlib.Path, config: Mapping[str, Any]) -> pathlib.Path:
    path = out / CONFIG_NAME
    text = json.dumps(config, indent=2) + "\n"
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    return path


def write_run_config(out: str | os.PathLike, model: str,
                     options: argparse.Namespace | Mapping[str, Any]) -> pathlib.Path:
    """Write ``{"model": model, "options": {...}}`` to ``out/config.json`` (JSON values only:
    tuples are stored as lists, anything else JSON lacks as its ``str``), replacing any
    config there. ``prepare_run_folder`` is the checked way to start or resume a run."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return _write_config(out, {"model": model, "options": _options_dict(options)})


def read_run_config(run: str | os.PathLike, model: str | None = None) -> dict[str, Any]:
    """The ``config.json`` of a run folder, as ``{"model": ..., "options": {...}, ...}``; with
    ``model`` given, a run of any other model is refused."""
    run = pathlib.Path(run)
    path = run / CONFIG_NAME
    if not run.is_dir():
        raise RunError(f"{run}: no such run folder")
    if not path.is_file():
        raise RunError(f"{run}: not a run folder (no {CONFIG_NAME})")
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: unreadable ({exc})") from None
    if not isinstance(config, dict) or "model" not in config or "options" not in config:
        raise RunError(f"{path}: not a scratchgen run config")
    if model is not None and config["model"] != model:
        raise RunError(f"{run} is a run of {config['model']!r}, not of {model!r}")
    return config


def load_run_state(run: str | os.PathLike, device: Any = "cpu") -> dict[str, Any]:
    """The newest readable checkpoint of a run folder (the Trainer's state dict)."""
    found = load_latest(run, device)
    if found is None:
        raise RunError(f"{run}: no checkpoint yet (the run has not saved one)")
    return found[1]


def given_options(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None
                  ) -> set[str]:
    """The destinations of the options that ``argv`` (default ``sys.argv[1:]``) sets
    explicitly, as opposed to those left at their defaults: ``{"lr", "epochs"}`` for
    ``--lr 0.01 --epochs 3``. Parses ``argv`` a second time with ``parser``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    unset = object()
    dests = vars(parser.parse_args(argv))
    # argparse fills in a default only where the namespace lacks the attribute, so the ones
    # still holding the marker afterwards were not on the command line
    ns = parser.parse_args(argv, argparse.Namespace(**{k: unset for k in dests}))
    return {k for k, v in vars(ns).items() if v is not unset}


def _flag(key: str) -> str:
    return "--" + key.rstrip("_").replace("_", "-")


def _shown(v: Any) -> str:
    if v is None:
        return "unset"
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, list):
        return ",".join(str(x) for x in v)
    return str(v)


def prepare_run_folder(out: str | os.PathLike, model: str,
                       options: argparse.Namespace | Mapping[str, Any], resume: bool,
                       may_change: Collection[str] = MAY_CHANGE,
                       given: Collection[str] | None = None) -> pathlib.Path:
    """Start a run in ``out``, or check that ``--resume`` may continue the one there; returns
    ``out`` as a ``Path`` (created).

    New run (``resume`` false): ``out`` must not exist, or be an empty folder, or hold
    nothing but a ``config.json`` (a run that stopped before writing anything else); the
    ``RunError`` for one that holds anything else says how to resume it or to choose another
    ``--out``. ``out/config.json`` is written: ``{"model", "options", "resumes": []}``.

    ``resume`` true: ``out`` must hold ``config.json`` of a run of ``model`` (a run whose
    process stopped before its first checkpoint is continued from step 0). Each stored option
    that is not in ``may_change`` must equal the given one; the ``RunError`` names every
    differing flag: ``--lr 0.01 differs from the run's 0.001``. ``given`` is the set of
    option names the user set on the command line (``given_options``): the others are not
    compared but take the stored values, so that ``--resume`` needs no flags repeated. With
    ``given=None`` every option counts as given. A ``Namespace`` ``options`` is updated in
    place with the stored values it takes. The options in ``may_change`` that differ from the
    stored ones are recorded as ``{"time": ..., "changed": {name: [stored, given]}}`` in
    ``config.json``'s ``"resumes"`` list, and ``"options"`` holds their new values.
    """
    out = pathlib.Path(out)
    if out.exists() and not out.is_dir():
        raise RunError(f"{out} is a file, not a folder; choose another --out")
    opts = _options_dict(options)
    if not resume:
        remove_stale_temporaries(out / CONFIG_NAME)
        # a folder with only config.json holds a run that stopped before it wrote anything
        # (a data file missing, say): nothing there can be lost, so a new run takes it
        if out.is_dir() and any(p.name != CONFIG_NAME for p in out.iterdir()):
            if (out / CONFIG_NAME).exists():
                raise RunError(f"{out} already holds a run; pass --resume to continue it, or "
                               "--out NEW for a new one")
            raise RunError(f"{out} is not empty; choose a new or empty folder with --out")
        out.mkdir(parents=True, exist_ok=True)
        _write_config(out, {"model": model, "options": opts, "resumes": []})
        return _record(out)

    if not out.is_dir():
        raise RunError(f"--resume: {out} does not exist; without --resume a new run starts "
                       "there")
    if not (out / CONFIG_NAME).is_file():
        raise RunError(f"--resume: {out} is not a run folder (no {CONFIG_NAME}); give the "
                       "run's folder with --out")
    config = read_run_config(out)
    if config["model"] != model:
        raise RunError(f"--resume: {out} is a run of {config['model']!r}, not of {model!r}")
    stored = config["options"]
    if not isinstance(stored, dict):
        raise RunError(f"--resume: {out / CONFIG_NAME} holds no options")
    explicit = set(opts) if given is None else set(given)
    differing, changed = [], {}
    for key, value in opts.items():
        if key not in stored or key == "resume":
            continue
        if key not in explicit:
            opts[key] = stored[key]
            if isinstance(options, argparse.Namespace):
                setattr(options, key, stored[key])
        elif value != stored[key]:
            if key in may_change:
                changed[key] = [stored[key], value]
            else:
                differing.append(f"{_flag(key)} {_shown(value)} differs from the run's "
                                 f"{_shown(stored[key])}")
    if differing:
        free = ", ".join(_flag(k) for k in opts if k in may_change and k != "resume")
        raise RunError("--resume: " + "; ".join(differing)
                       + (f" (a resumed run may change only {free})" if free else ""))
    config["options"] = {**stored, **{k: v[1] for k, v in changed.items()}}
    resumes = config.get("resumes")
    config["resumes"] = (resumes if isinstance(resumes, list) else []) + [
        {"time": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
         "changed": changed}]
    _write_config(out, config)
    return _record(out)
