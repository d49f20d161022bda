"""The README's commands and snippets are true as written.

Every ``scratchgen train ...`` command in it (code blocks and tables) is parsed by its model's
own command line; every ``--vqvae RUN/vqvae.npz`` names a folder that one of its ``vq-vae``
commands writes; the commands that use a finished run (``sample``, ``eval``, ``report``),
``list`` and ``--version`` are run verbatim on a small stand-in for the main job's run (the main
job itself, 50 epochs, is too long for the default test run); the Python snippets run."""
from __future__ import annotations

import importlib
import json
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

from scratchgen import cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


def _commands() -> list[str]:
    """Every ``scratchgen ...`` command of the README: the lines of its bash blocks (without
    comments, after any ``... &&``) and the inline code of its text and tables."""
    found = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            line = line.rsplit("&&", 1)[-1].strip()
            if line.startswith("scratchgen "):
                found.append(line)
    found += [c.strip() for c in re.findall(r"`(scratchgen [^`]+)`", README)]
    return found


def _placeholder(command: str) -> bool:
    """A pattern such as ``scratchgen train MODEL --help`` rather than a command."""
    return any(w in ("MODEL", "RUN", "NAME", "...") for w in shlex.split(command))


COMMANDS = [c for c in dict.fromkeys(_commands()) if not _placeholder(c)]
TRAIN = [c for c in COMMANDS if c.startswith("scratchgen train ")]
# the quick ones, run as written once a run is in runs/vae
RUN_AS_WRITTEN = [
    "scratchgen list",
    "scratchgen --version",
    "scratchgen sample runs/vae --n 64 --out samples.png",
    "scratchgen eval runs/vae",
    "scratchgen eval runs/vae --k 1000 --images 10000",
    "scratchgen report runs/vae",
]


def test_the_readme_shows_the_commands_run_here():
    assert "scratchgen train vae" in COMMANDS            # the main job
    assert [c for c in RUN_AS_WRITTEN if c not in COMMANDS] == []
    assert {c.split()[1] for c in COMMANDS} <= {"train", "bench", "sample", "eval", "report",
                                                "list", "--version"}


@pytest.mark.parametrize("command", TRAIN)
def test_every_train_command_parses(command):
    words = shlex.split(command)[2:]
    name, argv = words[0], words[1:]
    assert name in cli.MODELS, name
    module = importlib.import_module(f"scratchgen.recipes.{cli.MODELS[name][0]}")
    module.parser().parse_args(argv)     # an unknown flag or a bad value exits here


def test_bench_commands_name_benchmarks():
    for command in COMMANDS:
        if command.startswith("scratchgen bench "):
            assert shlex.split(command)[2] in cli.BENCHMARKS, command


def test_every_vqvae_path_is_written_by_a_readme_command():
    outs = {shlex.split(c)[shlex.split(c).index("--out") + 1] for c in TRAIN
            if shlex.split(c)[2] == "vq-vae" and "--out" in c}
    for command in TRAIN:
        words = shlex.split(command)
        if "--vqvae" in words:
            path = pathlib.PurePosixPath(words[words.index("--vqvae") + 1])
            assert path.name == "vqvae.npz" and str(path.parent) in outs, command


def test_the_commands_on_a_finished_run(tmp_path):
    def run(command: str) -> subprocess.CompletedProcess:
        words = shlex.split(command)
        assert words[0] == "scratchgen"
        return subprocess.run([sys.executable, "-m", "scratchgen", *words[1:]], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)

    # a small run where the main job puts its own (8x8 digits, a narrow network, 2 epochs)
    made = run("scratchgen train vae --size 8 --hidden 16 --epochs 2 --iwae-k 0 --out runs/vae")
    assert made.returncode == 0, made.stderr
    for command in RUN_AS_WRITTEN:
        res = run(command)
        assert res.returncode == 0, (command, res.stderr)
        if command.startswith("scratchgen eval"):
            result = json.loads(res.stdout)
            assert result["model"] == "vae" and result["elbo"] <= result["iwae"]
    assert (tmp_path / "samples.png").is_file() and (tmp_path / "runs/vae/report.html").is_file()


def test_the_python_snippets_run():
    first, own_op = _blocks("python")
    exec(compile(first, "README: a first look", "exec"), {})
    # the op-testing snippet is a template: it needs an op to test, and nothing else
    import scratchgen.functional as F

    namespace = {"my_op": F.tanh}
    exec(compile(own_op, "README: testing your own op", "exec"), namespace)
    namespace["test_my_op"]()
