"""Checkpoint files of a training run: written atomically, the previous one kept.

A run folder holds ``checkpoint.npz`` (the newest) and ``checkpoint.prev.npz`` (the one before).
Both are ``scratchgen.serialization`` archives, written completely under a temporary name and
renamed into place, so neither name ever points at a partial file, and a crash while saving
leaves at least the older complete checkpoint. The previous checkpoint is also a second line
of defence against a newest one damaged later on disk: ``load_latest`` falls back to it when
the newest one cannot be read.

Random state: ``capture_rng_state`` / ``restore_rng_state`` cover scratchgen's per-device
generators (``backend.get_rng_state``), NumPy's legacy global generator (``numpy.random.*``)
and Python's ``random``, so that user code drawing from any of them resumes exactly.
"""
from __future__ import annotations

import contextlib
import os
import pathlib
import random
from typing import Any, Iterator

import numpy

from scratchgen import backend
from scratchgen.serialization import CheckpointError, load, remove_stale_temporaries, save

__all__ = ["CHECKPOINT_NAME", "PREVIOUS_NAME", "save_checkpoint", "load_checkpoint",
           "load_latest", "capture_rng_state", "restore_rng_state", "isolated_rng",
           "CheckpointError"]

CHECKPOINT_NAME = "checkpoint.npz"
PREVIOUS_NAME = "checkpoint.prev.npz"


def _previous_path(path: pathlib.Path) -> pathlib.Path:
    """``run/checkpoint.npz`` -> ``run/checkpoint.prev.npz`` (``name.ext`` -> ``name.prev.ext``)."""
    return path.with_name(path.stem + ".prev" + path.suffix)


def save_checkpoint(state: Any, path: str | os.PathLike,
                    keep_previous: bool = True) -> pathlib.Path:
    """Write ``state`` to ``path`` atomically; the file it replaces becomes ``*.prev.npz``.

    The new checkpoint is first written completely under a temporary name (itself atomically);
    then the current file is renamed to the previous name and the new one onto ``path``. A
    failed write changes nothing; a crash between the two renames leaves the previous
    checkpoint, which ``load_latest`` falls back to. No file is ever modified in place.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not keep_previous:
        save(state, path)
        return path
    staged = path.with_name("." + path.name + ".new")
    save(state, staged)
    if path.exists():
        os.replace(path, _previous_path(path))
    os.replace(staged, path)
    return path


def load_checkpoint(path: str | os.PathLike, device: Any = "cpu") -> Any:
    """Read a checkpoint (``FileNotFoundError`` if missing, ``CheckpointError`` if damaged)."""
    return load(path, device)


def load_latest(directory: str | os.PathLike, device: Any = "cpu",
                warn: Any = None) -> tuple[pathlib.Path, Any] | None:
    """The newest readable checkpoint of a run folder, as ``(path, state)``; ``None`` if there
    is none. A damaged ``checkpoint.npz`` is reported through ``warn(message)`` and the previous
    checkpoint is used instead. Temporary files that a killed save left in ``directory`` are
    removed (``serialization.remove_stale_temporaries``)."""
    directory = pathlib.Path(directory)
    # temporaries of a save killed mid-write (``kill -9``) are never read; they go here
    for name in (CHECKPOINT_NAME, "." + CHECKPOINT_NAME + ".new", PREVIOUS_NAME):
        remove_stale_temporaries(directory / name)
    errors = []
    for name in (CHECKPOINT_NAME, PREVIOUS_NAME):
        p = directory / name
        if not p.exists():
            continue
        try:
            return p, load(p, device)
        except CheckpointError as exc:
            errors.append(str(exc))
            if warn is not None:
                warn(f"warning: {exc}; trying the previous checkpoint")
    if errors:
        raise CheckpointError("no readable checkpoint in " + str(directory) + ":\n  "
                              + "\n  ".join(errors))
    return None


# ---------------------------------------------------------------------------------------------
# random state


def capture_rng_state() -> dict[str, Any]:
    """Every global random state a training step may draw from, as checkpointable data."""
    version, internal, gauss = random.getstate()
    return {
        "scratchgen": backend.get_rng_state(),
        "numpy": numpy.random.get_state(legacy=False),
        "python": {"version": version, "internal": numpy.asarray(internal, dtype=numpy.uint64),
                   "gauss": gauss},
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back what ``capture_rng_state`` returned."""
    if "scratchgen" in state:
        backend.set_rng_state(state["scratchgen"])
    if "numpy" in state:
        numpy.random.set_state(state["numpy"])
    if "python" in state:
        py = state["python"]
        random.setstate((int(py["version"]), tuple(int(v) for v in py["internal"]), py["gauss"]))


@contextlib.contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Run a block (a sampling or evaluation hook) on its own random numbers, then give the
    training run back its generators untouched.

    Inside the block scratchgen's generators are fresh ones seeded with ``seed`` (on every
    device), and NumPy's and Python's global generators too. Training thus draws exactly the
    same numbers whether or not, and however often, the hook ran, and the hook itself is
    reproducible (same ``seed``, same pictures).
    """
    np_state = numpy.random.get_state(legacy=False)
    py_state = random.getstate()
    numpy.random.seed(int(seed) % 2**32)
    random.seed(int(seed))
    try:
        with backend.fork_rng(seed):
            yield
    finally:
        numpy.random.set_state(np_state)
        random.setstate(py_state)
