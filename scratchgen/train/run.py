"""A run folder's record of what was trained: ``config.json`` beside the checkpoint.

``write_run_config(out, "dcgan", args)`` stores the model's name and the options it was trained
with; ``read_run_config(run)`` gives them back, so that a finished run can be rebuilt and used
(``scratchgen sample RUN``) without the user repeating its flags. ``load_run_state`` reads
the newest checkpoint of a run folder, with one-line errors for a folder that is not a run.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
from typing import Any, Mapping

from scratchgen.train.checkpoint import load_latest

__all__ = ["CONFIG_NAME", "RunError", "write_run_config", "read_run_config", "load_run_state"]

CONFIG_NAME = "config.json"


class RunError(ValueError):
    """A folder that is not a usable run (no config, no checkpoint, another model's run)."""


def write_run_config(out: str | os.PathLike, model: str,
                     options: argparse.Namespace | Mapping[str, Any]) -> pathlib.Path:
    """Write ``{"model": model, "options": {...}}`` to ``out/config.json`` (JSON values only:
    anything else is stored as its ``str``)."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    opts = vars(options) if isinstance(options, argparse.Namespace) else dict(options)
    clean = {k: (v if isinstance(v, (str, int, float, bool, list, type(None))) else str(v))
             for k, v in opts.items()}
    path = out / CONFIG_NAME
    tmp = path.with_name("." + CONFIG_NAME + ".tmp")
    tmp.write_text(json.dumps({"model": model, "options": clean}, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def read_run_config(run: str | os.PathLike, model: str | None = None) -> dict[str, Any]:
    """The ``config.json`` of a run folder, as ``{"model": ..., "options": {...}}``; with
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
