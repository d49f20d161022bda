"""How a training run stops early: Ctrl-C or SIGTERM (``_SignalGuard`` defers them to the end of
the current step, then ``Trainer.fit`` saves and raises ``TrainingInterrupted``) and a loss
that is not finite (``NonFiniteLossError``)."""
from __future__ import annotations

import pathlib
import signal
import threading
from typing import Any

__all__ = ["TrainingInterrupted", "NonFiniteLossError"]


class TrainingInterrupted(KeyboardInterrupt):
    """What ``Trainer.fit`` raises after Ctrl-C (SIGINT) or SIGTERM, once it has saved the
    checkpoint. ``str(exc)`` is a one-line message (the step, the checkpoint, how to
    continue); ``signum`` is the signal (SIGINT also for a ``KeyboardInterrupt`` raised by the
    train step itself); ``checkpoint`` is the file written (``None`` without an out_dir)."""

    def __init__(self, message: str, signum: int = signal.SIGINT,
                 checkpoint: pathlib.Path | None = None) -> None:
        super().__init__(message)
        self.signum = int(signum)
        self.checkpoint = checkpoint


class NonFiniteLossError(FloatingPointError):
    """A value returned by the train step was NaN or infinite. ``step`` is the step that
    produced it (1-based), ``losses`` all the values of that step, ``checkpoint`` the last
    checkpoint written (whose weights came from finite steps), or ``None``."""

    def __init__(self, message: str, step: int, losses: dict[str, float],
                 checkpoint: pathlib.Path | None) -> None:
        super().__init__(message)
        self.step = step
        self.losses = losses
        self.checkpoint = checkpoint


_SIGNALS = ("SIGINT", "SIGTERM")


class _SignalGuard:
    """Turns the first Ctrl-C (SIGINT) or SIGTERM into a request the loop honours after the
    current step (so the checkpoint it then writes is of a whole step); a second one
    interrupts at once."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested is not None:
            raise TrainingInterrupted("interrupted", signum)
        self.requested = signum

    def __enter__(self) -> "_SignalGuard":
        if self.enabled:
            for name in _SIGNALS:
                sig = getattr(signal, name, None)
                if sig is not None:
                    self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
