"""``report.html``: written by ``scratchgen train`` and ``scratchgen report``, it shows a run
folder's config, curves, metrics and pictures with nothing from the network and no script, and
renders in a real browser (headless Chromium) with every picture loaded."""
from __future__ import annotations

import base64
import html.parser
import io
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from scratchgen import cli
from scratchgen.train import (
    MetricsLog, prepare_run_folder, recording_runs, save_image_grid, write_report,
    write_run_config,
)

TINY_VAE = ["--size", "8", "--hidden", "16", "--iwae-k", "0", "--epochs", "2"]


class _Tags(html.parser.HTMLParser):
    """Every start tag of a page, as (name, {attribute: value})."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def _tags(text: str) -> list[tuple[str, dict[str, str]]]:
    parser = _Tags()
    parser.feed(text)
    return parser.tags


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    """A finished tiny ``scratchgen train vae`` run (two epochs on 8x8 digits, ~2 s)."""
    out = tmp_path_factory.mktemp("report") / "vae"
    assert cli.main(["train", "vae", *TINY_VAE, "--out", str(out)]) == 0
    return out


def test_train_writes_a_self_contained_report(vae_run, capsys):
    page = (vae_run / "report.html").read_text()
    tags = _tags(page)
    assert not [t for t, _ in tags if t in ("script", "link", "iframe", "object", "embed")]
    assert "javascript:" not in page and "http://" not in page and "https://" not in page
    # every href stays in the page; every picture is a PNG inside it, of its stated size
    assert all(a["href"].startswith("#") for t, a in tags if t == "a" and "href" in a)
    images = [a for t, a in tags if t == "img"]
    sources = {p.name for p in vae_run.glob("*.png")} | {"step"}
    assert len(images) >= len(sources)
    for a in images:
        assert a["src"].startswith("data:image/png;base64,") and a["alt"]
        with Image.open(io.BytesIO(base64.b64decode(a["src"].split(",", 1)[1]))) as im:
            assert im.format == "PNG" and im.size == (int(a["width"]), int(a["height"]))
    # the config, the metrics, a chart per loss, each picture by name, the newest grid only
    assert "<b>z_dim</b>20" in page and "summary.json" in page
    for name in ("loss", "recon", "kl", "eval/test_loss"):
        assert f"<code>{name}</code>: last:" in page
    for png in vae_run.glob("*.png"):
        assert f"<code>{png.name}</code>" in page
    grids = sorted(p.name for p in (vae_run / "samples").iterdir())
    assert len(grids) == 2 and f"samples/{grids[-1]}" in page and grids[0] not in page
    # the caption stored in a picture is its alternative text
    assert 'alt="odd columns: test images' in page


def test_report_command_and_its_refusals(tmp_path, capsys):
    run = tmp_path / "run"
    write_run_config(run, "gan", {"data": "ring", "lr": 2e-4})
    assert cli.main(["report", str(run)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {run / 'report.html'}"
    page = (run / "report.html").read_text()
    assert "no training log" in page and "no pictures" in page
    assert cli.main(["report", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such run folder" in err[0]


def test_report_of_a_folder_of_several_trainers(tmp_path):
    """Curves of every Trainer folder inside the run, nested metrics, non-finite numbers,
    the newest grid of each samples/ folder."""
    write_run_config(tmp_path, "hierarchical-vae", {"compare": True})
    for kind in ("hvae", "vae"):
        log = MetricsLog(tmp_path / kind / "metrics.jsonl")
        for step in (10, 20, 30):
            log.write({"step": step, "losses": {"loss": 100.0 / step, "kl": float("nan")}})
        for step in (1, 2):
            save_image_grid(np.zeros((4, 1, 8, 8)), tmp_path / kind / "samples"
                            / f"step_{step:06d}.png", caption=f"{kind} after step {step}")
    (tmp_path / "metrics.json").write_text(json.dumps(
        {"models": {"hvae": {"iwae": -16.5, "kl_per_layer": [1.0, 2.0]}},
         "epochs": [{"epoch": 1, "loss": 3.0}, {"epoch": 2, "loss": float("inf")}]}))
    (tmp_path / "broken.json").write_text("{")
    page = write_report(tmp_path).read_text()
    assert page.count("<code>loss</code>: last: 3.33333 at step 30") == 2
    assert "hvae/samples/step_000002.png" in page and "hvae/samples/step_000001.png" not in page
    assert "vae/samples/step_000002.png" in page
    assert "-16.5" in page and "inf" in page and "broken.json" in page and "unreadable" in page


def test_recording_runs_lists_the_folders_started_or_resumed(tmp_path):
    import argparse

    opts = argparse.Namespace(lr=0.1)
    with recording_runs() as folders:
        prepare_run_folder(tmp_path / "a", "vae", opts, resume=False)
        prepare_run_folder(tmp_path / "a", "vae", opts, resume=True)
        (tmp_path / "a" / "checkpoint.npz").write_bytes(b"")
        with pytest.raises(ValueError, match="already holds a run"):
            prepare_run_folder(tmp_path / "a", "vae", opts, resume=False)  # refused
    assert folders == [tmp_path / "a"]
    prepare_run_folder(tmp_path / "b", "vae", opts, resume=False)
    assert folders == [tmp_path / "a"]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


# The check runs in a copy of the report (the report itself holds no script): after the page
# and its pictures have loaded, it writes what it found into the page, which --dump-dom prints.
_CHECK = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message || e.type)), true);
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt);
  const out = document.createElement("pre");
  out.id = "check";
  out.textContent = JSON.stringify({images: images.length, broken: broken,
                                    errors: window.__errors});
  document.body.appendChild(out);
});
</script>"""


@pytest.mark.skipif(_chromium() is None, reason="no Chromium binary (chromium, "
                    "chromium-browser, google-chrome) on PATH; `.ci/run` installs one")
def test_report_renders_in_headless_chromium(vae_run, tmp_path):
    page = (vae_run / "report.html").read_text()
    check = tmp_path / "check.html"
    # the error listener must be in place before the page's body is parsed
    check.write_text(page.replace("<body>", "<body>" + _CHECK, 1))
    res = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--disable-extensions", f"--user-data-dir={tmp_path / 'profile'}",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom",
         check.as_uri()],
        capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="check">(.*?)</pre>', res.stdout, re.S)
    assert found, res.stderr[-2000:]
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["images"] >= len(list(vae_run.glob("*.png"))) + 3   # + curves, samples/
    assert result["broken"] == [] and result["errors"] == []
    console = [line for line in res.stderr.splitlines() if "CONSOLE" in line]
    assert not console, console
