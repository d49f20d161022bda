"""TimedStep: counts the calls and the seconds spent in the wrapped step, passes its results
and its state through."""
from __future__ import annotations

import time

from scratchgen.train import TimedStep


class _Step:
    def __init__(self) -> None:
        self.calls, self.loaded = 0, None

    def __call__(self, batch):
        time.sleep(0.01)
        self.calls += 1
        return {"loss": float(batch)}

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.loaded = state


def test_timed_step_times_its_calls_and_passes_results_and_state_through():
    inner = _Step()
    timed = TimedStep(inner)
    assert [timed(b) for b in (1, 2, 3)] == [{"loss": 1.0}, {"loss": 2.0}, {"loss": 3.0}]
    assert timed.calls == 3 == inner.calls
    assert 0.03 <= timed.seconds < 3.0
    assert timed.state_dict() == {"calls": 3}
    timed.load_state_dict({"calls": 7})
    assert inner.loaded == {"calls": 7}
