"""The command line's own commands: ``list``, ``--version``, and ``sample``'s refusals (the
models' ``sample`` functions are tested with their examples)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

import scratchgen
from scratchgen import cli
from scratchgen.train import write_run_config


def test_list_names_every_model(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == list(cli.MODELS)
    assert all(len(line.split()) > 1 for line in out)


def test_version():
    res = subprocess.run([sys.executable, "-m", "scratchgen", "--version"], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == f"scratchgen {scratchgen.__version__}"


@pytest.mark.parametrize("make, args, message", [
    (None, ["--out", "s.png"], "no such run folder"),
    ("empty", ["--out", "s.png"], "not a run folder (no config.json)"),
    ("run", ["--out", "s.jpg"], "s.jpg: the file must end in .png or .npy"),
    ("run", ["--out", "s.npy", "--n", "0"], "--n 0: must be at least 1"),
    ("alien", ["--out", "s.npy"], "which scratchgen does not know"),
    ("broken", ["--out", "s.npy"], "not a scratchgen run config"),
])
def test_sample_refuses_with_one_line(tmp_path, capsys, make, args, message):
    run = tmp_path / "run"
    if make is not None:
        run.mkdir()
    if make == "run":
        write_run_config(run, "gan", {"data": "ring"})
    elif make == "alien":
        write_run_config(run, "no-such-model", {})
    elif make == "broken":
        (run / "config.json").write_text(json.dumps([1, 2]))
    args = [a if not a.startswith("s.") else str(tmp_path / a) for a in args]
    assert cli.main(["sample", str(run), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_run_config_round_trip(tmp_path):
    import argparse

    from scratchgen.train import RunError, read_run_config

    write_run_config(tmp_path, "dcgan", argparse.Namespace(lr=2e-4, data="digits", dims=[1, 2],
                                                           path=tmp_path))
    cfg = read_run_config(tmp_path, "dcgan")
    assert cfg == {"model": "dcgan", "options": {"lr": 2e-4, "data": "digits", "dims": [1, 2],
                                                 "path": str(tmp_path)}}
    with pytest.raises(RunError, match="is a run of 'dcgan', not of 'gan'"):
        read_run_config(tmp_path, "gan")
