"""Progress line, running means and the JSONL log on their own."""
from __future__ import annotations

import io
import json
import math

import pytest

from scratchgen.train.log import (
    MetricsLog, ProgressLine, RunningMeans, format_duration, read_metrics,
)


def test_format_duration():
    assert [format_duration(s) for s in (0, 42.4, 185, 3723, math.inf, float("nan"))] == \
        ["0s", "42s", "3:05", "1:02:03", "?", "?"]


def test_running_means():
    m = RunningMeans()
    m.update({"a": 1.0, "b": 2.0})
    m.update({"a": 3.0})
    assert m.means() == {"a": 2.0, "b": 2.0} and len(m) == 2
    m.update({"b": float("inf")})
    assert math.isinf(m.means()["b"])
    restored = RunningMeans()
    restored.load_state_dict(m.state_dict())
    assert restored.means() == m.means()
    m.reset()
    assert m.means() == {} and len(m) == 0


def test_progress_line_format_and_styles():
    out = io.StringIO()
    p = ProgressLine(total_steps=1000, stream=out, tty=False)
    line = p.format(250, 1.5, 50.0, {"loss": 0.12345, "kl": 1e-6}, eta_rate=25.0)
    assert line == "step 250/1000  epoch 1.50  50.0 it/s  ETA 30s  loss 0.1235  kl 1.000e-06"
    p.update(1, 0.0, 1.0, {})  # not a terminal: nothing until a report
    assert out.getvalue() == ""
    p.report(2, 0.0, 1.0, {"loss": 1.0})
    assert out.getvalue().count("\n") == 1 and "\r" not in out.getvalue()

    out = io.StringIO()
    p = ProgressLine(total_steps=None, stream=out, tty=True, refresh_per_s=0)
    p.update(1, None, 1.0, {"loss": 1.0})
    p.update(2, None, 1.0, {"loss": 0.5})
    p.message("hello")
    p.report(3, None, 1.0, {"loss": 0.25})
    text = out.getvalue()
    assert text.startswith("\rstep 1  1.00 it/s  loss 1.0000") and "\rstep 2" in text
    assert "hello\n" in text and text.endswith("loss 0.2500\n")


def test_metrics_log_truncate_and_read(tmp_path):
    log = MetricsLog(tmp_path / "m.jsonl")
    for step in (10, 20, 30):
        log.write({"step": step, "epoch": step / 10, "time": 0.0,
                   "losses": {"loss": 1.0 / step, "bad": float("nan")}})
    log.write({"step": 30, "epoch": 3.0, "time": 0.0, "eval": {"acc": 0.9}})
    with open(tmp_path / "m.jsonl", "a") as f:
        f.write('{"step": 40, "losses": {"lo')  # a line cut short by a crash
    lines = (tmp_path / "m.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["losses"]["bad"] is None
    series = read_metrics(tmp_path / "m.jsonl")
    assert series == {"loss": [(10, 0.1), (20, 0.05), (30, pytest.approx(1 / 30))],
                      "eval/acc": [(30, 0.9)]}
    assert log.truncate_after(20) == 3  # two records past step 20 and the broken line
    assert [json.loads(x)["step"] for x in (tmp_path / "m.jsonl").read_text().splitlines()] == \
        [10, 20]
    assert read_metrics(tmp_path / "missing.jsonl") == {}
