"""What ``pip install .`` installs: the package ``scratchgen`` and nothing else at the top level
(another project on the package index owns the name ``kernels``). The repository's top-level
``kernels/`` folder is the package ``scratchgen.kernels`` through the link
``scratchgen/kernels -> ../kernels``; the kernels import each other relatively and never import
``scratchgen``."""
from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _python_files(*folders: str) -> list[pathlib.Path]:
    return [p for f in folders for p in (ROOT / f).rglob("*.py")]


def test_the_kernels_are_scratchgen_kernels():
    link = ROOT / "scratchgen" / "kernels"
    assert link.is_symlink() and os.readlink(link) == "../kernels"
    assert link.resolve() == (ROOT / "kernels").resolve()
    top_level = re.compile(r"^\s*(from\s+kernels[\s.]|import\s+kernels\b)", re.M)
    offenders = [str(p.relative_to(ROOT)) for p in _python_files("scratchgen", "tests", "kernels")
                 if top_level.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
    # the house's rule: kernels never imports scratchgen
    up = re.compile(r"^\s*(from\s+scratchgen\b|import\s+scratchgen\b)", re.M)
    assert [p.name for p in (ROOT / "kernels").rglob("*.py") if up.search(p.read_text())] == []
    toml = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'include\s*=\s*\["scratchgen\*"\]', toml)
    assert '"scratchgen.kernels" = ["cuda/*.cu"]' in toml
    assert '"scratchgen.kernels.conv" = ["*.md"]' in toml


def test_importing_scratchgen_loads_no_top_level_kernels():
    code = ("import sys, scratchgen, scratchgen.functional, scratchgen.nn, scratchgen.models."
            "vq_vae; print(sorted(m for m in sys.modules if m.split('.')[0] == 'kernels'))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_the_wheel_holds_scratchgen_only(tmp_path):
    """Builds the wheel from a copy of the sources (so that no build/ folder lands in the
    working tree), with pip's isolated build environment."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("scratchgen", "kernels"):
        shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=ignore)
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                          "--wheel-dir", str(tmp_path / "dist"), str(src)],
                         capture_output=True, text=True, timeout=300)
    if res.returncode != 0 and re.search(r"No matching distribution|Could not find a version|"
                                         r"NewConnectionError|Network is unreachable",
                                         res.stderr):
        pytest.skip("pip cannot reach a package index for the build's setuptools")
    assert res.returncode == 0, res.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("scratchgen-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} \
        == {"scratchgen"}
    kernel_files = {n for n in names if n.startswith("scratchgen/kernels/")}
    shipped = [*(ROOT / "kernels").rglob("*.py"), *(ROOT / "kernels" / "cuda").glob("*.cu"),
               *(ROOT / "kernels").rglob("*.md")]
    assert any(f.parent.name == "conv" for f in shipped)  # the subpackage, through the link
    for f in shipped:
        assert f"scratchgen/kernels/{f.relative_to(ROOT / 'kernels').as_posix()}" in kernel_files
    top_level = [n for n in names if n.endswith("top_level.txt")]
    assert not top_level or zipfile.ZipFile(wheel).read(top_level[0]).split() == [b"scratchgen"]
