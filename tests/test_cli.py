"""The command line's own commands: ``list``, ``--version``, and ``sample``'s refusals (the
models' ``sample`` functions are tested with their examples); and what a user of ``scratchgen
train`` meets: run folders never overwritten, ``--resume`` that keeps the history and refuses
what does not match, one-line errors without tracebacks, Ctrl-C / SIGTERM / kill -9."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import scratchgen
from scratchgen import cli
from scratchgen.serialization import load
from scratchgen.train import RunError, read_run_config, write_run_config


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


# ---- the front door: run folders, resume, one-line errors, signals (issue 17) -----------------

TINY = ["--size", "8", "--hidden", "16", "--iwae-k", "0"]   # a digits VAE epoch: ~0.1 s


def _scratchgen(args, cwd, **kw):
    return subprocess.run([sys.executable, "-m", "scratchgen", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd, **kw)


@pytest.mark.parametrize("args, code, message", [
    (["--device", "tpu"], 2,
     "scratchgen train vae: error: argument --device: 'tpu' is not a device: use cpu, cuda or "
     "cuda:N (scratchgen train vae --help lists the options)"),
    (["--z-dim", "0"], 2,
     "scratchgen train vae: error: argument --z-dim: 0 is not a positive integer "
     "(scratchgen train vae --help lists the options)"),
    (["--lr", "nan"], 2,
     "scratchgen train vae: error: argument --lr: nan is not a finite number "
     "(scratchgen train vae --help lists the options)"),
    (["--resume", "--out", "notarun"], 2,
     "scratchgen: error: --resume: notarun does not exist; without --resume a new run starts "
     "there"),
    (["--data", "mnist", "--data-dir", "empty"], 2,
     "scratchgen: error: --data-dir empty: the files are not there (it should hold the four "
     "MNIST files train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
     "t10k-labels-idx1-ubyte, gzipped or not)"),
    (["--lr", "1e30", "--epochs", "3"], 1,
     "scratchgen: error: non-finite loss at step 2 (loss nan, recon nan, kl nan); the run "
     "stopped and no checkpoint was saved; allow_nonfinite=True (--allow-nonfinite) trains on "
     "anyway"),
])
def test_user_errors_end_with_one_line_and_no_traceback(tmp_path, args, code, message):
    (tmp_path / "empty").mkdir()
    res = _scratchgen(["train", "vae", *TINY, "--epochs", "1", "--out", "run", *args], tmp_path)
    assert res.returncode == code, res.stderr
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1] == message
    # nothing the run wrote outlives a refused start but its config (which the next start
    # takes over)
    assert not (tmp_path / "run").exists() or os.listdir(tmp_path / "run") == ["config.json"]


def _cli(capsys, *args):
    code = cli.main(list(args))
    return code, capsys.readouterr().err.strip().splitlines()


def test_a_run_folder_is_never_overwritten_and_resume_keeps_its_history(tmp_path, capsys,
                                                                       monkeypatch):
    monkeypatch.setattr(sys, "argv", ["scratchgen"])   # the CLI renames argv[0]
    run = tmp_path / "vae"
    code, _ = _cli(capsys, "train", "vae", *TINY, "--epochs", "1", "--out", str(run))
    assert code == 0
    before = (run / "checkpoint.npz").read_bytes()

    # a second run into the same folder is refused, and changes nothing there
    code, err = _cli(capsys, "train", "vae", *TINY, "--epochs", "2", "--out", str(run))
    assert (code, err) == (2, [f"scratchgen: error: {run} already holds a run; pass --resume "
                               "to continue it, or --out NEW for a new one"])
    assert (run / "checkpoint.npz").read_bytes() == before
    assert not (run / "checkpoint.prev.npz").exists()

    # flags that change the run's meaning are refused by name on resume
    code, err = _cli(capsys, "train", "vae", "--resume", "--lr", "0.01", "--batch-size", "64",
                     "--out", str(run))
    assert code == 2 and len(err) == 1
    assert err[0].startswith("scratchgen: error: --resume: --batch-size 64 differs from the "
                             "run's 128; --lr 0.01 differs from the run's 0.001 (a resumed run "
                             "may change only --epochs")
    code, err = _cli(capsys, "train", "beta-vae", "--resume", "--out", str(run))
    assert (code, err) == (2, [f"scratchgen: error: --resume: {run} is a run of 'vae', not of "
                               "'beta-vae'"])

    # --resume with more epochs: the summary and the log hold the whole run
    code, _ = _cli(capsys, "train", "vae", "--resume", "--epochs", "2", "--out", str(run))
    assert code == 0
    summary = json.loads((run / "summary.json").read_text())
    assert [e["epoch"] for e in summary["epochs"]] == [1, 2]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["eval"]["epoch"] for r in records if "eval" in r] == [1.0, 2.0]
    config = read_run_config(run, "vae")
    assert config["options"]["epochs"] == 2 and config["options"]["size"] == 8
    assert [r["changed"] for r in config["resumes"]] == [{"epochs": [1, 2]}]
    # the previous checkpoint is this run's own
    assert load(run / "checkpoint.prev.npz")["step"] == 12

    # resuming the finished run again keeps its history (it used to become [])
    code, _ = _cli(capsys, "train", "vae", "--resume", "--out", str(run))
    assert code == 0
    assert [e["epoch"] for e in json.loads((run / "summary.json").read_text())["epochs"]] == \
        [1, 2]

    # and the run can be used without Python
    code, _ = _cli(capsys, "sample", str(run), "--n", "5", "--seed", "3",
                   "--out", str(tmp_path / "a.npy"))
    assert code == 0
    a = np.load(tmp_path / "a.npy")
    assert a.dtype == np.float32 and a.shape == (5, 1, 8, 8) and 0 <= a.min() <= a.max() <= 1
    _cli(capsys, "sample", str(run), "--n", "5", "--seed", "3", "--out", str(tmp_path / "b.npy"))
    np.testing.assert_array_equal(a, np.load(tmp_path / "b.npy"))
    code, err = _cli(capsys, "sample", str(run), "--label", "1", "--out", str(tmp_path / "c.png"))
    assert (code, err) == (2, ["scratchgen: error: --label 1: the VAE is unconditional (it has "
                               "no classes)"])


def test_debug_shows_the_traceback(tmp_path, capsys):
    assert cli.main(["train", "vae", "--resume", "--out", str(tmp_path / "nope")]) == 2
    with pytest.raises(RunError, match="does not exist"):
        cli.main(["train", "vae", "--resume", "--out", str(tmp_path / "nope"), "--debug"])


def _wait_for(path, proc, seconds=60):
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.parametrize("sig, code, name", [(signal.SIGTERM, 143, "SIGTERM"),
                                             (signal.SIGINT, 130, "Ctrl-C")])
def test_sigterm_and_ctrl_c_save_and_end_with_one_line(tmp_path, sig, code, name):
    proc = subprocess.Popen([sys.executable, "-m", "scratchgen", "train", "vae", *TINY,
                             "--epochs", "10000", "--out", "run"], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(tmp_path / "run" / "metrics.jsonl", proc)   # training: past epoch 1
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"scratchgen: stopped by {name} at step ")
    assert last.endswith("; checkpoint saved to run/checkpoint.npz; continue with resume=True "
                         "(--resume)")
    step = int(last.split(" at step ")[1].split(";")[0])
    assert load(tmp_path / "run" / "checkpoint.npz")["step"] == step >= 12


def test_kill_9_loses_at_most_checkpoint_every_seconds(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "scratchgen", "train", "vae", *TINY,
                             "--epochs", "10000", "--checkpoint-every", "0.2", "--out", "run"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(tmp_path / "run" / "checkpoint.npz", proc)
        time.sleep(0.3)
    finally:
        proc.kill()
        proc.wait()
    res = _scratchgen(["train", "vae", "--resume", "--epochs", "1", "--out", "run"], tmp_path)
    # the checkpoint is past epoch 1 already: the resumed run only finishes up
    assert res.returncode == 0, res.stderr
    assert "resumed from run/checkpoint.npz at step" in res.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["epochs"][0]["epoch"] == 1
    assert not [n for n in os.listdir(tmp_path / "run") if n.endswith(".tmp")]
