"""``scratchgen bench torch``: the scratchgen side of every model takes a step, the table, the
comparison of one step's state, and the PyTorch side where PyTorch is installed (the full run
is a benchmark)."""
from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys

import numpy
import pytest

from scratchgen.benchmarks import torch_compare as tc

needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None,
    reason="PyTorch is not installed (`scratchgen bench torch --install-torch` installs it)")


@pytest.mark.parametrize("name", list(tc.MODELS))
def test_the_scratchgen_side_of_every_model_takes_a_step(name):
    r = tc.measure("scratchgen", name, steps=1, warmup=0, threads=1)
    assert r["side"] == "scratchgen" and r["model"] == name
    assert len(r["times_ms"]) == 1 and r["ms_median"] == r["ms_min"] > 0
    assert r["losses"] and all(math.isfinite(v) for v in r["losses"].values())
    assert r["kernel_threads"] >= 1


def test_importing_the_module_does_not_import_torch():
    code = ("import sys, scratchgen.benchmarks.torch_compare, scratchgen.cli; "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_table_gives_both_times_their_ratio_and_the_threads():
    row = tc._summarise("dcgan", {
        "scratchgen": [{"ms_median": m, "ms_min": m - 1, "kernel_threads": 2, "blas_threads": 2}
                       for m in (30.0, 32.0, 31.0)],
        "torch": [{"ms_median": m, "ms_min": m - 1, "torch_threads": 2}
                  for m in (10.0, 9.0, 11.0)]})
    assert row["scratchgen"]["ms_median"] == 31.0 and row["scratchgen"]["ms_min"] == 29.0
    assert row["torch"]["ms_median"] == 10.0 and row["ratio"] == pytest.approx(3.1)
    header, line = tc.format_table([row]).splitlines()
    assert header.split()[:2] == ["model", "batch"] and "ratio" in header
    assert line.split()[:7] == ["dcgan", "64", "31.00", "29.00", "10.00", "8.00", "3.10"]
    assert line.endswith("2/2, 2")
    alone = tc.format_row(tc._summarise("fc-vae", {"scratchgen": [
        {"ms_median": 4.0, "ms_min": 3.5, "kernel_threads": 1, "blas_threads": 1}]}))
    assert alone.split()[:7] == ["fc-vae", "128", "4.00", "3.50", "-", "-", "-"]


def test_without_torch_the_command_times_the_scratchgen_side_and_says_so(
        tmp_path, capsys, monkeypatch):
    from scratchgen import cli

    monkeypatch.setattr(sys, "argv", ["scratchgen"])  # the CLI renames argv[0]
    monkeypatch.setattr(tc, "torch_available", lambda: (False, "No module named 'torch'"))
    path = tmp_path / "rows.json"
    assert cli.main(["bench", "torch", "--models", "fc-vae", "--steps", "1", "--warmup", "0",
                     "--rounds", "1", "--threads", "1", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "PyTorch not found (No module named 'torch')" in out
    row = out.splitlines()[out.splitlines().index(tc._HEADER) + 1].split()
    assert row[0] == "fc-vae" and float(row[2]) > 0 and row[4:7] == ["-", "-", "-"]
    assert row[-2:] == ["1/1,", "-"]  # the child ran on the threads it was given
    (saved,) = json.loads(path.read_text())
    assert saved["model"] == "fc-vae" and saved["scratchgen"]["kernel_threads"] == 1
    assert "torch" not in saved and "ratio" not in saved


def test_the_command_rejects_unknown_models(capsys):
    with pytest.raises(SystemExit):
        tc.main(["--models", "fc-vae,no-such-model", "--no-torch"])
    assert "no-such-model" in capsys.readouterr().err


def test_check_state_passes_equal_steps_and_fails_different_ones():
    rng = numpy.random.default_rng(0)
    w0 = rng.standard_normal(100).astype(numpy.float32)
    lr = 1e-3
    step = -lr * numpy.sign(rng.standard_normal(100)).astype(numpy.float32)
    sg_side = {"loss.loss": numpy.array(1.0), "before.w": w0, "w": w0 + step,
               "grad.b": numpy.full(3, 1e-9), "grad.w": numpy.ones(3)}
    same = tc.check_state(sg_side, dict(sg_side), 1e-4, lr)
    assert same["ok"] and same["worst_rel_err"] == 0 and same["zero_gradients"] == ["grad.b"]
    flipped = dict(sg_side, w=w0 + step)
    flipped["w"][0] = w0[0] - step[0]  # a near-zero gradient moved the other way by Adam
    r = tc.check_state(sg_side, flipped, 1e-4, lr)
    assert r["ok"] and r["adam_sign_flips"] == 1
    off = dict(sg_side, w=(w0 + step) * numpy.float32(1.01))
    assert not tc.check_state(sg_side, off, 1e-4, lr)["ok"]
    assert not tc.check_state(sg_side, dict(sg_side, **{"loss.loss": numpy.array(1.01)}),
                              1e-4, lr)["ok"]


@needs_torch
def test_the_torch_side_computes_the_same_step(capsys):
    results = tc.main(["--check", "--models", "fc-vae,sagan-block", "--threads", "1"])
    out = capsys.readouterr().out
    assert results == 0, out
    assert out.count(" ok ") == 2


@needs_torch
def test_the_torch_side_is_timed_in_its_own_process(capsys):
    rows = tc.main(["--models", "fc-vae", "--steps", "1", "--warmup", "0", "--rounds", "1",
                    "--threads", "1"])
    (row,) = rows
    assert row["torch"]["ms_median"] > 0 and row["torch"]["torch_threads"] == 1
    assert row["ratio"] == pytest.approx(row["scratchgen"]["ms_median"]
                                         / row["torch"]["ms_median"])


def test_install_torch_prints_and_runs_the_pip_command(capsys, monkeypatch):
    ran = []

    class Done:
        returncode = 0

    monkeypatch.setattr(tc.subprocess, "run", lambda cmd, **kw: ran.append(cmd) or Done())
    assert tc.main(["--install-torch"]) == 0
    assert ran == [tc.INSTALL_COMMAND] and ran[0][1:5] == ["-m", "pip", "install", "torch"]
    assert capsys.readouterr().out.strip() == " ".join(tc.INSTALL_COMMAND)
