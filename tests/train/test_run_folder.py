"""Run folders: a new run never writes into another run's folder, ``--resume`` continues only the
same model's run with the same options, and the shared option types refuse bad values by flag."""
from __future__ import annotations

import argparse
import json
import os

import pytest

from scratchgen.train import (
    RunError, given_options, prepare_run_folder, read_run_config, write_run_config,
)
from scratchgen.train import options


def _parser():
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--dims", type=int, nargs="*", default=[1, 2])
    p.add_argument("--ema", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--out", default="runs/x")
    p.add_argument("--resume", action="store_true")
    return p


def _start(tmp_path, argv, model="vae"):
    p = _parser()
    args = p.parse_args(argv + ["--out", str(tmp_path / "run")])
    out = prepare_run_folder(args.out, model, args, args.resume,
                             given=given_options(p, argv + ["--out", str(tmp_path / "run")]))
    return out, args


def test_given_options_are_those_on_the_command_line():
    p = _parser()
    assert given_options(p, ["--lr", "0.01", "--no-ema"]) == {"lr", "ema"}
    assert given_options(p, []) == set()
    # a flag given at its default value still counts as given
    assert given_options(p, ["--batch-size", "128", "--resume"]) == {"batch_size", "resume"}


def test_a_new_run_writes_its_config(tmp_path):
    out, _ = _start(tmp_path, ["--lr", "0.01"])
    config = read_run_config(out, "vae")
    assert config["options"]["lr"] == 0.01 and config["options"]["dims"] == [1, 2]
    assert config["resumes"] == []


def test_a_new_run_refuses_a_folder_that_holds_a_run(tmp_path):
    out, _ = _start(tmp_path, [])
    (out / "checkpoint.npz").write_bytes(b"a run's work")
    with pytest.raises(RunError) as err:
        _start(tmp_path, ["--epochs", "2"])
    assert str(err.value) == (f"{out} already holds a run; pass --resume to continue it, or "
                              "--out NEW for a new one")
    assert (out / "checkpoint.npz").read_bytes() == b"a run's work"


def test_a_new_run_refuses_a_folder_with_other_files_and_a_file(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="run is not empty; choose a new or empty folder"):
        _start(tmp_path, [])
    (tmp_path / "run" / "notes.txt").unlink()
    (tmp_path / "run").rmdir()
    (tmp_path / "run").write_text("a file")
    with pytest.raises(RunError, match="run is a file, not a folder"):
        _start(tmp_path, [])


def test_a_run_that_wrote_nothing_but_its_config_is_taken_over(tmp_path):
    # a run that stopped before anything but config.json (a missing data file, say) loses
    # nothing when a new one starts there
    _start(tmp_path, ["--lr", "0.5"], model="beta-vae")
    out, _ = _start(tmp_path, ["--lr", "0.01"])
    assert read_run_config(out) == {"model": "vae", "options": read_run_config(out)["options"],
                                    "resumes": []}
    assert read_run_config(out)["options"]["lr"] == 0.01


def test_resume_refuses_what_is_not_a_run_of_this_model(tmp_path):
    with pytest.raises(RunError, match="--resume: .*run does not exist"):
        _start(tmp_path, ["--resume"])
    (tmp_path / "run").mkdir()
    with pytest.raises(RunError, match=r"--resume: .*run is not a run folder \(no config.json\)"):
        _start(tmp_path, ["--resume"])
    write_run_config(tmp_path / "run", "beta-vae", {"lr": 1e-3})
    with pytest.raises(RunError, match="--resume: .*run is a run of 'beta-vae', not of 'vae'"):
        _start(tmp_path, ["--resume"])


def test_resume_names_every_flag_that_would_change_the_run(tmp_path):
    _start(tmp_path, ["--lr", "0.001", "--no-ema"])
    with pytest.raises(RunError) as err:
        _start(tmp_path, ["--resume", "--lr", "0.01", "--batch-size", "64", "--ema"])
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("--resume: --lr 0.01 differs from the run's 0.001; "
                              "--batch-size 64 differs from the run's 128; "
                              "--ema on differs from the run's off")
    assert "may change only --epochs, --out" in message


def test_resume_takes_the_stored_options_and_records_the_changes(tmp_path):
    _start(tmp_path, ["--lr", "0.01", "--epochs", "2", "--dims", "3"])
    out, args = _start(tmp_path, ["--resume", "--epochs", "5"])
    # flags left out come from the run, so that --resume needs none repeated
    assert (args.lr, args.dims, args.epochs) == (0.01, [3], 5)
    config = read_run_config(out)
    assert config["options"]["epochs"] == 5 and config["options"]["lr"] == 0.01
    assert [r["changed"] for r in config["resumes"]] == [{"epochs": [2, 5]}]
    # a second resume without --epochs continues to the last length asked for
    out, args = _start(tmp_path, ["--resume"])
    assert args.epochs == 5
    assert [r["changed"] for r in read_run_config(out)["resumes"]] == [{"epochs": [2, 5]}, {}]


def test_resume_of_a_run_stopped_before_its_first_checkpoint_is_allowed(tmp_path):
    out, _ = _start(tmp_path, [])
    (out / "metrics.jsonl").write_text("")
    out, _ = _start(tmp_path, ["--resume"])   # the Trainer then starts it from step 0
    assert out.is_dir()


def test_without_given_every_option_is_compared(tmp_path):
    args = argparse.Namespace(lr=0.01, epochs=2, out=str(tmp_path / "r"), resume=False)
    prepare_run_folder(args.out, "vae", args, False)
    same = argparse.Namespace(lr=0.01, epochs=3, out=args.out, resume=True)
    prepare_run_folder(same.out, "vae", same, True)
    other = argparse.Namespace(lr=0.02, epochs=3, out=args.out, resume=True)
    with pytest.raises(RunError, match="--lr 0.02 differs from the run's 0.01"):
        prepare_run_folder(other.out, "vae", other, True)
    # an option the caller declares changeable is recorded, not refused
    prepare_run_folder(other.out, "vae", other, True, may_change=("lr", "epochs"))
    assert read_run_config(args.out)["options"]["lr"] == 0.02


def test_config_json_is_readable_by_others(tmp_path):
    old = os.umask(0o022)
    try:
        out, _ = _start(tmp_path, [])
    finally:
        os.umask(old)
    assert os.stat(out / "config.json").st_mode & 0o777 == 0o644
    assert json.loads((out / "config.json").read_text())["model"] == "vae"


# ---- the option types ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind, text, message", [
    (options.positive_int, "0", "0 is not a positive integer"),
    (options.positive_int, "2.5", "'2.5' is not an integer"),
    (options.nonnegative_int, "-1", "-1 is negative"),
    (options.positive_float, "nan", "nan is not a finite number"),
    (options.positive_float, "inf", "inf is not a finite number"),
    (options.positive_float, "-0.1", "-0.1 is not positive"),
    (options.positive_float, "abc", "'abc' is not a number"),
    (options.nonnegative_float, "-1e-9", "-1e-9 is negative"),
    (options.fraction, "1", "1 is not in [0, 1)"),
    (options.unit_interval, "1.5", r"1.5 is not in [0, 1]"),
    (options.device, "tpu", "'tpu' is not a device: use cpu, cuda or cuda:N"),
])
def test_option_types_refuse_by_value(kind, text, message):
    with pytest.raises(argparse.ArgumentTypeError) as err:
        kind(text)
    assert str(err.value) == message


def test_option_types_accept_good_values():
    assert options.positive_int("3") == 3 and options.nonnegative_int("0") == 0
    assert options.positive_float("1e-3") == 1e-3 and options.fraction("0") == 0.0
    assert options.unit_interval("1") == 1.0 and options.finite_float("-2") == -2.0
    assert options.device("cpu") == "cpu"


def test_cuda_without_a_gpu_is_refused_at_parse_time(monkeypatch):
    monkeypatch.setattr(options.backend, "cuda_is_available", lambda: False)
    with pytest.raises(argparse.ArgumentTypeError, match="use --device cpu"):
        options.device("cuda:1")


def test_parse_errors_are_one_line(capsys):
    p = options.ArgumentParser(prog="scratchgen train vae")
    p.add_argument("--z-dim", type=options.positive_int, default=20)
    with pytest.raises(SystemExit) as exc:
        p.parse_args(["--z-dim", "0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err == ("scratchgen train vae: error: argument --z-dim: 0 is not a positive integer "
                   "(scratchgen train vae --help lists the options)\n")


def test_data_errors_name_the_flags(tmp_path):
    from scratchgen.data import MNIST

    with pytest.raises(RunError) as err:
        with options.data_errors("mnist", str(tmp_path)):
            MNIST(train=True, data_dir=tmp_path)
    assert str(err.value).startswith(f"--data-dir {tmp_path}: the files are not there")
    assert "data_dir=" not in str(err.value) and "download=True" not in str(err.value)
    with pytest.raises(RunError, match=r"--data-dir /no/such: no such folder"):
        with options.data_errors("mnist", "/no/such"):
            MNIST(train=True, data_dir="/no/such")
    with pytest.raises(RunError, match="--data mnist: .* could not be downloaded; pass "
                                       "--data-dir DIR"):
        with options.data_errors("mnist", None):
            raise RuntimeError("MNIST: could not download train-images-idx3-ubyte.gz")
