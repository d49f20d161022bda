"""The weights of a model at its best validation figure (early stopping's "restore the best
weights"), kept in memory and checkpointed with the run so that a resumed run keeps them."""
from __future__ import annotations

import math
from typing import Any

__all__ = ["BestWeights"]


class BestWeights:
    """Remembers ``module``'s state dict from the call of ``offer(value, epoch)`` with the
    lowest ``value`` (``mode="min"``, a loss) or the highest (``mode="max"``, an accuracy).
    ``restore()`` loads it back. Register it as a Trainer ``extras`` entry so that the copy
    travels in the checkpoint.

    Select on held-out data that is not the test set, or the figure reported for the kept
    weights is no longer a test figure.
    """

    def __init__(self, module: Any, mode: str = "min") -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"BestWeights: mode must be 'min' or 'max', got {mode!r}")
        self.module, self.mode = module, mode
        self.value: float | None = None
        self.epoch: int | None = None
        self.state: dict[str, Any] = {}

    def offer(self, value: float, epoch: int) -> bool:
        """Keep a copy of the module's weights if ``value`` beats the best so far (a NaN never
        does); returns whether it did."""
        value = float(value)
        if math.isnan(value):
            return False
        if self.value is not None and (value >= self.value if self.mode == "min"
                                       else value <= self.value):
            return False
        self.value, self.epoch = value, int(epoch)
        self.state = dict(self.module.state_dict())
        return True

    def restore(self, module: Any = None) -> None:
        """Load the kept weights into ``module`` (default: the tracked one)."""
        if self.value is None:
            raise RuntimeError("BestWeights.restore: no value was offered yet, nothing is kept")
        (self.module if module is None else module).load_state_dict(self.state)

    def state_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "value": self.value, "epoch": self.epoch,
                "state": dict(self.state)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict["mode"] != self.mode:
            raise ValueError(f"BestWeights: the checkpoint kept mode {state_dict['mode']!r}, "
                             f"this one is {self.mode!r}")
        value, epoch = state_dict["value"], state_dict["epoch"]
        self.value = None if value is None else float(value)
        self.epoch = None if epoch is None else int(epoch)
        self.state = dict(state_dict["state"])
