"""``scratchgen bench models`` end to end on two small models with one timed step (the full
run is a benchmark), and its steps-per-epoch rule."""
from __future__ import annotations

import json
import sys

import pytest


def test_bench_models_prints_a_row_per_model_and_writes_them(tmp_path, capsys, monkeypatch):
    from scratchgen import cli

    monkeypatch.setattr(sys, "argv", ["scratchgen"])  # the CLI renames argv[0]
    path = tmp_path / "rows.json"
    assert cli.main(["bench", "models", "--models", "vae,hierarchical-fc-vae", "--steps", "1",
                     "--warmup", "0", "--json", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("model "))
    assert lines[header].split()[:6] == ["model", "batch", "ms/step", "steps/epoch", "s/epoch",
                                         "params"]
    table = [line.split() for line in lines[header + 1:header + 3]]
    assert [r[0] for r in table] == ["vae", "hierarchical-fc-vae"]
    assert [int(r[1]) for r in table] == [128, 64]            # the examples' batch sizes
    assert [int(r[3]) for r in table] == [469, 938]           # ceil(60000 / batch)
    for r in table:
        ms, steps, seconds = float(r[2]), int(r[3]), float(r[4])
        assert ms > 0 and seconds == pytest.approx(ms * steps / 1e3, abs=0.06)
    assert int(table[0][5].replace(",", "")) == 784 * 400 + 400 + 2 * (400 * 20 + 20) \
        + 20 * 400 + 400 + 400 * 784 + 784                    # the FC VAE 784-400-20

    rows = json.loads(path.read_text())
    assert [r["model"] for r in rows] == ["vae", "hierarchical-fc-vae"]
    for r, t in zip(rows, table):
        assert r["steps"] == 1 and r["warmup"] == 0 and r["device"] == "cpu"
        assert r["seconds_per_epoch"] == pytest.approx(r["ms_per_step"] * r["steps_per_epoch"]
                                                       / 1e3)
        assert f"{r['ms_per_step']:.2f}" == t[2] and r["parameters"] == int(t[5].replace(",", ""))


def test_bench_models_rejects_unknown_names(capsys):
    from scratchgen.benchmarks import models

    with pytest.raises(SystemExit):
        models.main(["--models", "vae,no-such-model"])
    assert "no-such-model" in capsys.readouterr().err


def test_steps_per_epoch_rounds_up_unless_the_loader_drops_the_last_batch():
    from scratchgen.benchmarks.models import Case

    assert Case(128, print, (), 0).steps_per_epoch == 469
    assert Case(64, print, (), 0, drop_last=True).steps_per_epoch == 937
