"""What a ``Trainer`` checkpoints: its whole state as one dict (``trainer_state``), checked and
put back (``restore_trainer_state``); ``History``, rows checkpointed with the run; ``FitResult``,
what ``Trainer.fit`` returns."""
from __future__ import annotations

import pathlib
from dataclasses import dataclass, field
from typing import Any, Mapping

from scratchgen.train.checkpoint import capture_rng_state, restore_rng_state

__all__ = ["FitResult", "History", "trainer_state", "restore_trainer_state", "named_objects",
           "TRAINER_STATE_FORMAT"]

TRAINER_STATE_FORMAT = "scratchgen-trainer"
_STATE_VERSION = 1


@dataclass
class FitResult:
    """What ``Trainer.fit`` returns: where the run stands and what it logged in this session."""

    step: int
    epoch: int
    seconds: float
    losses: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: pathlib.Path | None = None


def named_objects(objects: Any, what: str) -> dict[str, Any]:
    """Accept one object, a list of them or a name -> object mapping; give a name -> object dict."""
    if objects is None:
        return {}
    if isinstance(objects, Mapping):
        named = {str(k): v for k, v in objects.items()}
    elif isinstance(objects, (list, tuple)):
        named = {str(i): v for i, v in enumerate(objects)}
    else:
        named = {"0": objects}
    for name, obj in named.items():
        if not (callable(getattr(obj, "state_dict", None))
                and callable(getattr(obj, "load_state_dict", None))):
            raise TypeError(f"{what} {name!r} ({type(obj).__name__}) has no state_dict() / "
                            "load_state_dict(), so it cannot be checkpointed")
    return named


class History(list):
    """A list of rows (one per epoch, say) that a Trainer checkpoints as one of its
    ``extras``, so that a resumed run's summary holds the rows of every session, not just the
    last one's: ``history = History(); Trainer(..., extras={"history": history})``."""

    def state_dict(self) -> dict[str, Any]:
        return {"rows": list(self)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self[:] = list(state["rows"])


def trainer_state(trainer: Any, loader_state: Any = None, rng_state: Any = None) -> dict[str, Any]:
    """Everything a resumed run of ``trainer`` needs: its counters, every registered object's
    ``state_dict()``, the loader's position, the random generators and the running means (the
    train step's own state when it has one)."""
    loader_sd = getattr(trainer.loader, "state_dict", None)
    state: dict[str, Any] = {
        "format": TRAINER_STATE_FORMAT, "version": _STATE_VERSION,
        "step": trainer.step, "epoch": trainer.epoch, "batch_in_epoch": trainer.batch_in_epoch,
        "elapsed": trainer.elapsed,
        "modules": {k: m.state_dict() for k, m in trainer.modules.items()},
        "optimizers": {k: o.state_dict() for k, o in trainer.optimizers.items()},
        "schedulers": {k: s.state_dict() for k, s in trainer.schedulers.items()},
        "extras": {k: e.state_dict() for k, e in trainer.extras.items()},
        "loader": loader_state if loader_state is not None else (
            loader_sd() if callable(loader_sd) else None),
        "rng": rng_state if rng_state is not None else capture_rng_state(),
        "meter": trainer.meter.state_dict(),
    }
    step_sd = getattr(trainer.train_step, "state_dict", None)
    if callable(step_sd) and callable(getattr(trainer.train_step, "load_state_dict", None)):
        state["train_step"] = step_sd()
    return state


def restore_trainer_state(trainer: Any, state: Mapping[str, Any]) -> None:
    """Put ``trainer_state``'s dict back into ``trainer``; every registered name must be in the
    checkpoint and vice versa (an error lists the differences)."""
    if state.get("format") != TRAINER_STATE_FORMAT:
        raise ValueError(f"not a Trainer checkpoint (format {state.get('format')!r})")
    problems = []
    for group in ("modules", "optimizers", "schedulers", "extras"):
        mine, saved = set(getattr(trainer, group)), set(state.get(group, {}))
        if mine != saved:
            problems.append(f"{group}: registered {sorted(mine)}, checkpoint has "
                            f"{sorted(saved)}")
    if problems:
        raise ValueError("the checkpoint does not match this Trainer's registered state:\n  "
                         + "\n  ".join(problems))
    for group in ("modules", "optimizers", "schedulers", "extras"):
        for name, obj in getattr(trainer, group).items():
            obj.load_state_dict(state[group][name])
    loader_state = state.get("loader")
    if loader_state is not None and callable(getattr(trainer.loader, "load_state_dict", None)):
        trainer.loader.load_state_dict(loader_state)
    if "train_step" in state and callable(getattr(trainer.train_step, "load_state_dict", None)):
        trainer.train_step.load_state_dict(state["train_step"])
    restore_rng_state(state["rng"])
    trainer.step = int(state["step"])
    trainer.epoch = int(state["epoch"])
    trainer.batch_in_epoch = int(state["batch_in_epoch"])
    trainer.elapsed = float(state["elapsed"])
    trainer.meter.load_state_dict(state.get("meter", {}))
