"""The reader's scripts in examples/: each runs a few steps and writes a valid PNG, refuses to
overwrite its picture, and is listed in examples/README.md."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest
from PIL import Image

from scratchgen.cli import MODELS

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SCRIPTS = sorted(p.stem for p in EXAMPLES.glob("*.py"))

#: options that keep each run to a few seconds; scripts with several discriminator steps per
#: generator step run five steps, so that the generator's step runs too
TINY = {
    "vq_vae": ["--prior-steps", "2"],
    "intro_vae": ["--warmup", "1"],          # one plain-VAE step, then the introspective steps
    "dcgan": ["--width", "8"],
    "cgan": ["--width", "8"],
    "lsgan": ["--width", "8"],
    "wgan_gp": ["--width", "8", "--steps", "5"],
    "sngan": ["--width", "8"],
    "sagan": ["--width", "8"],
    "pix2pix": ["--width", "4"],
    "cyclegan": ["--width", "4"],
    "style_transfer": ["--width", "4"],
}


def run(script: str, *args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, str(EXAMPLES / f"{script}.py"), *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


def test_the_folder_has_the_scripts():
    assert {"vae", "beta_vae", "info_vae", "vq_vae", "intro_vae", "soft_intro_vae",
            "hierarchical_vae", "gan", "dcgan", "cgan", "lsgan", "wgan_gp", "sngan",
            "sagan", "pix2pix", "cyclegan", "style_transfer"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_writes_a_png(script, tmp_path):
    out = tmp_path / "picture.png"
    args = ["--steps", "2", "--out", str(out), "--seed", "1"] + TINY.get(script, [])
    r = run(script, *args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(out) as im:
        im.verify()
    with Image.open(out) as im:
        assert min(im.size) >= 32


def test_an_existing_picture_is_not_overwritten(tmp_path):
    out = tmp_path / "vae.png"
    out.write_bytes(b"mine")
    r = run("vae", "--steps", "1", cwd=tmp_path)
    assert r.returncode != 0
    assert "--force" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert out.read_bytes() == b"mine"
    r = run("vae", "--steps", "1", "--force", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_bad_steps_get_one_line_naming_the_flag(tmp_path):
    r = run("vae", "--steps", "0", cwd=tmp_path)
    assert r.returncode == 2
    assert "--steps" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "vae.png").exists()


def test_every_script_is_in_the_readme():
    readme = (EXAMPLES / "README.md").read_text()
    missing = [s for s in SCRIPTS if f"{s}.py" not in readme]
    assert not missing, f"examples/README.md does not list {missing}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_follows_the_conventions(script):
    text = (EXAMPLES / f"{script}.py").read_text()
    doc = text.split('"""')[1]
    name = script.replace("_", "-")
    assert name in MODELS and f"scratchgen train {name}" in doc, "it points to the full recipe"
    assert f"python examples/{script}.py" in doc, "the docstring gives the command"
    # --steps, --out, --force and --seed, an existing --out refused, the seed set
    assert "script_parser(__doc__" in text and "script_args(p)" in text
    assert ".backward()" in text and ".zero_grad()" in text and ".step()" in text
    assert "import scratchgen.recipes" not in text and "from scratchgen.recipes" not in text
