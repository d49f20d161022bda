"""What a training run tells its user: a progress line and a JSONL metrics log.

- ``RunningMeans``: the mean of each loss since the last report (what the progress line and
  the log show; a mean over ``log_every`` steps is far less noisy than one step's value).
- ``ProgressLine``: ``step 500/10000  epoch 1.07  41.2 it/s  ETA 3:50  loss 0.1234``, redrawn
  in place with ``\\r`` when the stream is a terminal, one line per report otherwise (so a
  log file or CI output gets readable lines, not one huge line of carriage returns).
- ``MetricsLog``: ``metrics.jsonl``, one JSON object per report,
  ``{"step": 500, "epoch": 1.07, "time": 12.3, "losses": {"loss": 0.1234}}``; evaluation
  results (``{"eval": {...}}``) go in the same file. Non-finite numbers are written as
  ``null`` so that every line is strict JSON.
- ``read_metrics``: the log back as ``{name: [(step, value), ...]}``, ready for
  ``plots.plot_curves``.
"""
from __future__ import annotations

import json
import math
import os
import pathlib
import sys
import time
from typing import IO, Any, Iterable, Mapping

__all__ = ["RunningMeans", "ProgressLine", "MetricsLog", "read_metrics", "format_duration",
           "as_float"]


def as_float(value: Any) -> float:
    """A Python float from a float, an int, a 0-d array or a one-element Tensor."""
    if hasattr(value, "item"):
        value = value.item()
    return float(value)


def _json_number(x: float) -> float | None:
    return x if math.isfinite(x) else None


def format_duration(seconds: float) -> str:
    """``"42s"``, ``"3:05"``, ``"1:02:03"`` or ``"?"`` for an unknown (inf/nan) duration."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class RunningMeans:
    """Accumulates ``{name: value}`` dicts; ``means()`` is the per-name mean since ``reset()``.

    A name missing from some updates is averaged over the updates that had it (a loss computed
    every fifth step, say). A non-finite value makes that name's mean non-finite, so a diverging
    loss is never hidden by its finite neighbours.
    """

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def update(self, values: Mapping[str, Any]) -> None:
        for name, v in values.items():
            x = as_float(v)
            self.sums[name] = self.sums.get(name, 0.0) + x
            self.counts[name] = self.counts.get(name, 0) + 1

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.counts[k] for k in self.sums if self.counts[k]}

    def reset(self) -> None:
        self.sums.clear()
        self.counts.clear()

    def __len__(self) -> int:
        return max(self.counts.values(), default=0)

    def state_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sums = {str(k): float(v) for k, v in state.get("sums", {}).items()}
        self.counts = {str(k): int(v) for k, v in state.get("counts", {}).items()}


def _fmt_value(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    a = abs(x)
    if a != 0 and (a < 1e-3 or a >= 1e5):
        return f"{x:.3e}"
    return f"{x:.4f}"


class ProgressLine:
    """The one-line status of a run, written to ``stream`` (default ``sys.stderr``).

    On a terminal, ``update`` redraws the line in place (at most ``refresh_per_s`` times a
    second) and ``report`` leaves it as a permanent line; elsewhere only ``report`` writes,
    one full line each time.
    """

    def __init__(self, total_steps: int | None = None, stream: IO[str] | None = None,
                 tty: bool | None = None, refresh_per_s: float = 10.0) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty()) if callable(isatty) else False
        self.tty = tty
        self.total_steps = total_steps
        self.min_interval = 1.0 / refresh_per_s if refresh_per_s > 0 else 0.0
        self._last_draw = -math.inf
        self._width = 0

    def format(self, step: int, epoch: float | None, rate: float,
               means: Mapping[str, float], eta_rate: float | None = None) -> str:
        """``step 500/10000  epoch 1.07  41.2 it/s  ETA 3:50  loss 0.1234 ...``

        ``rate`` is the recent speed; the ETA uses ``eta_rate`` (e.g. the session's average
        speed, steadier than the last window's) when given."""
        parts = [f"step {step}/{self.total_steps}" if self.total_steps else f"step {step}"]
        if epoch is not None:
            parts.append(f"epoch {epoch:.2f}")
        parts.append(f"{rate:.2f} it/s" if rate < 10 else f"{rate:.1f} it/s")
        if self.total_steps:
            remaining = max(self.total_steps - step, 0)
            r = eta_rate if eta_rate is not None else rate
            parts.append("ETA " + format_duration(remaining / r if r > 0 else math.inf))
        parts += [f"{k} {_fmt_value(v)}" for k, v in means.items()]
        return "  ".join(parts)

    def _write(self, text: str, final: bool) -> None:
        if self.tty:
            pad = " " * max(self._width - len(text), 0)
            self.stream.write("\r" + text + pad + ("\n" if final else ""))
            self._width = 0 if final else len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def update(self, step: int, epoch: float | None, rate: float,
               means: Mapping[str, float], eta_rate: float | None = None) -> None:
        """Redraw the live line (terminals only; a no-op otherwise)."""
        if not self.tty:
            return
        now = time.monotonic()
        if now - self._last_draw < self.min_interval:
            return
        self._last_draw = now
        self._write(self.format(step, epoch, rate, means, eta_rate), final=False)

    def report(self, step: int, epoch: float | None, rate: float,
               means: Mapping[str, float], eta_rate: float | None = None) -> None:
        """Write a permanent line."""
        self._write(self.format(step, epoch, rate, means, eta_rate), final=True)
        self._last_draw = time.monotonic()

    def message(self, text: str) -> None:
        """A line of text that does not disturb the live line."""
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End a live line left open, so the next output starts on a fresh line."""
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


class MetricsLog:
    """Appends one JSON object per line to ``path`` (``metrics.jsonl``).

    Each line is flushed as it is written, so the log is readable while training runs and
    survives a crash up to its last report.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(_clean(record), allow_nan=False)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def truncate_after(self, step: int) -> int:
        """Drop the records with ``step`` greater than ``step`` (a resumed run repeats those
        steps and logs them again); the file is rewritten atomically. Returns how many went."""
        if not self.path.exists():
            return 0
        keep, dropped = [], 0
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a crash
                dropped += 1
                continue
            if isinstance(rec, dict) and int(rec.get("step", 0)) > step:
                dropped += 1
                continue
            keep.append(line)
        if dropped:
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
            os.replace(tmp, self.path)
        return dropped


def _clean(obj: Any) -> Any:
    """JSON-ready: floats that are nan/inf become None; Tensors and NumPy scalars become floats."""
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (str, bool)) or obj is None:
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return _json_number(obj)
    if hasattr(obj, "item"):
        v = obj.item()
        return _json_number(float(v)) if isinstance(v, float) else v
    return obj


def read_metrics(path: str | os.PathLike, sections: Iterable[str] = ("losses", "eval"),
                 ) -> dict[str, list[tuple[int, float]]]:
    """Read ``metrics.jsonl`` back as ``{name: [(step, value), ...]}``.

    Names come from the ``sections`` of each record (``losses`` and ``eval`` by default); a name
    found in ``eval`` is prefixed ``"eval/"``. Missing (``null``) values are skipped, and a last
    line cut short by a crash is ignored.
    """
    series: dict[str, list[tuple[int, float]]] = {}
    p = pathlib.Path(path)
    if not p.exists():
        return series
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(rec, dict):
            continue
        step = int(rec.get("step", 0))
        for section in sections:
            values = rec.get(section)
            if not isinstance(values, dict):
                continue
            prefix = "" if section == "losses" else f"{section}/"
            for name, v in values.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    series.setdefault(prefix + name, []).append((step, float(v)))
    return series
