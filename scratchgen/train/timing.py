"""``TimedStep``: a train step that counts the seconds spent inside it."""
from __future__ import annotations

import time
from typing import Any, Callable

__all__ = ["TimedStep"]


class TimedStep:
    """Wraps a train step (``step(batch) -> dict``) and adds up the wall-clock seconds of its
    calls, so that a recipe can report seconds per step or per epoch of training alone, without
    the pictures, evaluations and checkpoints the Trainer makes in between. Its state is the
    wrapped step's (``state_dict`` / ``load_state_dict`` pass through), so the Trainer resumes
    it as it would the step itself."""

    def __init__(self, step: Callable[[Any], Any]) -> None:
        self.step, self.seconds, self.calls = step, 0.0, 0

    def __call__(self, batch: Any) -> Any:
        t0 = time.perf_counter()
        out = self.step(batch)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return out

    def state_dict(self) -> dict[str, Any]:
        return self.step.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step.load_state_dict(state)
