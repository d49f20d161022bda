"""``report.html``: one page that shows a run folder -- its config, training curves, metrics and
pictures -- readable offline in any browser.

``write_report(run)`` reads only what a run folder holds, so every model's runs get a report
without code of their own:

- Config: ``config.json`` (the model, its options and the resumes of the run).
- Metrics: every other ``*.json`` file (``summary.json``, ``metrics.json``, ...), as tables:
  a list of records (one per epoch, say) becomes a table with a column per field.
- Training curves: one small chart per series of every ``metrics.jsonl`` (``read_metrics``;
  the run's own and those of Trainer folders inside it), drawn with ``curves_image``.
- Pictures: every PNG in the folder and its subfolders, except that of a ``samples/`` folder of
  grids written during training only the newest is shown; each with its file name and the
  caption stored in it (``images.png_description``).
- Files: what the folder holds, with sizes.

The page is plain HTML and CSS: no script, no font, style sheet or picture from the network.
The pictures and charts are embedded as ``data:`` URIs, so ``report.html`` stays whole when it
is copied or mailed alone (a PNG over ``INLINE_LIMIT`` bytes is linked by its relative path
instead).
"""
from __future__ import annotations

import base64
import datetime
import html
import io
import json
import math
import os
import pathlib
from typing import Any, Mapping

from scratchgen.serialization import atomic_write
from scratchgen.train.images import png_description
from scratchgen.train.plots import curves_image
from scratchgen.train.log import read_metrics
from scratchgen.train.run import CONFIG_NAME, read_run_config

__all__ = ["REPORT_NAME", "INLINE_LIMIT", "write_report", "render_report"]

REPORT_NAME = "report.html"

#: PNGs up to this many bytes are embedded in the page; bigger ones are linked.
INLINE_LIMIT = 4 * 2**20

_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1e1e1e;
       margin: 0 auto; max-width: 1200px; padding: 0 20px 40px; }
header { border-bottom: 1px solid #ddd; margin-bottom: 8px; }
h1 { font-size: 1.6em; margin: 18px 0 2px; }
h2 { font-size: 1.25em; margin: 28px 0 8px; border-bottom: 1px solid #eee; padding-bottom: 3px; }
h3 { font-size: 1.02em; margin: 16px 0 6px; }
nav a { margin-right: 14px; }
.muted { color: #6a6a6a; }
code, pre { font: 13px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; }
table { border-collapse: collapse; margin: 4px 0 10px; }
th, td { border: 1px solid #e2e2e2; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f6f6f6; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; max-width: 100%; }
.options { display: grid; grid-template-columns: repeat(auto-fill, minmax(270px, 1fr));
           gap: 2px 18px; margin: 4px 0 10px; }
.options div { border-bottom: 1px solid #eee; padding: 2px 0; overflow-wrap: anywhere; }
.options b { font-weight: 600; margin-right: 8px; }
.gallery { display: flex; flex-wrap: wrap; gap: 8px 22px; align-items: flex-start; }
figure { display: table; margin: 0 0 16px; }
figure img { max-width: 100%; height: auto; border: 1px solid #e6e6e6; }
figcaption { display: table-caption; caption-side: bottom; font-size: 0.92em; color: #444;
             margin-top: 3px; }
details > summary { cursor: pointer; color: #245; }
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(v: float | int) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if not math.isfinite(v):
        return str(v)
    return f"{v:.6g}"


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def _scalar_html(v: Any) -> str:
    if v is None:
        return '<span class="muted">null</span>'
    if isinstance(v, (int, float)):
        return _number(v)
    return _esc(v)


def _records_html(rows: list[Mapping[str, Any]], depth: int) -> str:
    """A list of records as a table: one column per field (in order of first appearance)."""
    columns: list[str] = []
    for row in rows:
        columns += [str(k) for k in row if str(k) not in columns]
    head = "".join(f"<th>{_esc(c)}</th>" for c in columns)
    body = []
    for row in rows:
        body.append("<tr>" + "".join(_cell(row.get(c), depth + 1) for c in columns) + "</tr>")
    table = (f'<div class="scroll"><table><tr>{head}</tr>' + "".join(body)
             + "</table></div>")
    if len(rows) > 12:
        return (f"<details><summary>{len(rows)} rows ({_esc(', '.join(columns[:8]))}"
                f"{', ...' if len(columns) > 8 else ''})</summary>{table}</details>")
    return table


def _cell(v: Any, depth: int) -> str:
    """A table cell; numbers right-aligned."""
    if _is_num(v):
        return f'<td class="num">{_scalar_html(v)}</td>'
    return f"<td>{_value_html(v, depth)}</td>"


def _value_html(v: Any, depth: int = 0) -> str:
    """Any JSON value as HTML: scalars as text, objects as two-column tables, lists of
    records as tables, other lists inline (behind a click when long)."""
    if _is_scalar(v):
        return _scalar_html(v)
    if isinstance(v, Mapping):
        if not v:
            return '<span class="muted">{}</span>'
        if depth > 4:
            return f"<code>{_esc(json.dumps(v))}</code>"
        rows = "".join(f"<tr><th>{_esc(k)}</th>{_cell(x, depth + 1)}</tr>"
                       for k, x in v.items())
        return f"<table>{rows}</table>"
    if isinstance(v, (list, tuple)):
        items = list(v)
        if items and all(isinstance(x, Mapping) for x in items) and depth <= 4:
            return _records_html(items, depth)
        text = ", ".join(_scalar_html(x) if _is_scalar(x) else _esc(json.dumps(x))
                         for x in items)
        if len(items) > 16:
            return f"<details><summary>{len(items)} values</summary><code>{text}</code></details>"
        return f"<code>[{text}]</code>"
    return _esc(v)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _hidden(path: pathlib.Path, root: pathlib.Path) -> bool:
    """A temporary or hidden file, or one inside a hidden folder."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _files(run: pathlib.Path, pattern: str) -> list[pathlib.Path]:
    """The files matching ``pattern`` in ``run`` and below, the folder's own first; samples
    and reconstructions before the other pictures, then by name."""
    def order(p: pathlib.Path) -> tuple[int, int, str]:
        first = 0 if p.name.startswith("sample") else 1 if p.name.startswith("reconstr") else 2
        return len(p.relative_to(run).parts), first, p.relative_to(run).as_posix()

    return sorted((p for p in run.rglob(pattern) if p.is_file() and not _hidden(p, run)),
                  key=order)


def _config_section(config: Mapping[str, Any]) -> str:
    parts = ['<section id="config"><h2>Config</h2>']
    options = config.get("options")
    if isinstance(options, Mapping) and options:
        parts.append('<div class="options">' + "".join(
            f"<div><b>{_esc(k)}</b>{_value_html(v, 1)}</div>" for k, v in options.items())
            + "</div>")
    resumes = config.get("resumes")
    if isinstance(resumes, list) and resumes:
        parts.append("<h3>Resumed</h3><ul>")
        for r in resumes:
            if not isinstance(r, Mapping):
                continue
            changed = r.get("changed")
            what = ", ".join(
                f"{_esc(k)}: " + (f"{_esc(v[0])} &rarr; {_esc(v[1])}"
                                  if isinstance(v, list) and len(v) == 2 else _esc(v))
                for k, v in changed.items()) if isinstance(changed, Mapping) else ""
            parts.append(f"<li>{_esc(r.get('time', '?'))}"
                         f"{' (' + what + ')' if what else ''}</li>")
        parts.append("</ul>")
    parts.append("</section>")
    return "".join(parts)


def _metrics_section(run: pathlib.Path) -> str:
    parts = ['<section id="metrics"><h2>Metrics</h2>']
    found = False
    for path in _files(run, "*.json"):
        if path.relative_to(run).as_posix() == CONFIG_NAME:
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            parts.append(f"<h3>{_esc(path.relative_to(run).as_posix())}</h3>"
                         f'<p class="muted">unreadable: {_esc(exc)}</p>')
            continue
        found = True
        parts.append(f"<h3>{_esc(path.relative_to(run).as_posix())}</h3>"
                     f'<div class="scroll">{_value_html(data)}</div>')
    if not found:
        parts.append('<p class="muted">no metrics files (*.json) in the folder yet</p>')
    parts.append("</section>")
    return "".join(parts)


def _chart(name: str, points: list[tuple[int, float]]) -> str:
    """A figure with the chart of one series (at least one point), on a log scale when its
    values are positive and span more than two decades."""
    values = [v for _, v in points if math.isfinite(v)]
    log_y = bool(values) and min(values) > 0 and max(values) / min(values) > 100
    image = curves_image({name: points}, title=name, xlabel="training step",
                         ylabel="log scale" if log_y else "", log_y=log_y, size=(460, 280),
                         legend=False)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    last_step, last = points[-1]
    note = f"last: {_number(last)} at step {last_step}"
    return (f'<figure><img src="{_data_uri(buf.getvalue())}" width="{image.width}" '
            f'height="{image.height}" alt="{_esc(name)} against the training step">'
            f"<figcaption><code>{_esc(name)}</code>: {_esc(note)}</figcaption></figure>")


def _curves_section(run: pathlib.Path) -> str:
    parts = ['<section id="curves"><h2>Training curves</h2>']
    logs = _files(run, "metrics.jsonl")
    for log in logs:
        found = read_metrics(log)
        # the training losses first; an epoch counter against the step says nothing
        series = {k: found[k] for k in sorted(found, key=lambda k: k.startswith("eval/"))
                  if found[k] and k.rsplit("/", 1)[-1] != "epoch"}
        where = log.relative_to(run).as_posix()
        parts.append(f"<h3>{_esc(where)}</h3>")
        if not series:
            parts.append('<p class="muted">no values logged yet</p>')
            continue
        parts.append('<p class="muted">one chart per logged series (training losses, then '
                     'evaluations as <code>eval/...</code>), against the training step</p>')
        parts.append('<div class="gallery">'
                     + "".join(_chart(name, pts) for name, pts in series.items()) + "</div>")
    if not logs:
        parts.append('<p class="muted">no training log (metrics.jsonl) in the folder</p>')
    parts.append("</section>")
    return "".join(parts)


def _picture(run: pathlib.Path, path: pathlib.Path, note: str = "") -> str:
    from PIL import Image

    rel = path.relative_to(run).as_posix()
    try:
        with Image.open(path) as im:
            width, height = im.size
        data = path.read_bytes()
    except (OSError, ValueError, SyntaxError) as exc:
        return (f'<figure><figcaption><code>{_esc(rel)}</code>: unreadable ({_esc(exc)})'
                f"</figcaption></figure>")
    src = _data_uri(data) if len(data) <= INLINE_LIMIT else _esc(rel)
    # a caption stored in the PNG is drawn in the picture too: here it is the alternative text
    description = png_description(path)
    caption = f"<code>{_esc(rel)}</code>" + (f" ({_esc(note)})" if note else "")
    return (f'<figure><img src="{src}" width="{width}" height="{height}" '
            f'alt="{_esc(description or rel)}"><figcaption>{caption}</figcaption></figure>')


def _pictures_section(run: pathlib.Path) -> str:
    parts = ['<section id="pictures"><h2>Pictures</h2>']
    pngs = _files(run, "*.png")
    grids: dict[pathlib.Path, list[pathlib.Path]] = {}
    shown = []
    for p in pngs:
        if p.parent.name == "samples" and p.parent != run:
            grids.setdefault(p.parent, []).append(p)
        else:
            shown.append(_picture(run, p))
    for folder, files in grids.items():
        newest = max(files, key=lambda p: p.name)
        shown.append(_picture(run, newest, f"the newest of {len(files)} grids in "
                                           f"{folder.relative_to(run).as_posix()}/, written "
                                           "during training"))
    parts.append('<div class="gallery">' + "".join(shown) + "</div>" if shown
                 else '<p class="muted">no pictures in the folder yet</p>')
    parts.append("</section>")
    return "".join(parts)


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _files_section(run: pathlib.Path) -> str:
    rows = []
    for entry in sorted(run.iterdir(), key=lambda p: (p.is_dir(), p.name)):
        if entry.name.startswith(".") or entry.name == REPORT_NAME:
            continue
        if entry.is_dir():
            inside = [p for p in entry.rglob("*") if p.is_file() and not _hidden(p, run)]
            what = f"folder: {len(inside)} files, {_size(sum(p.stat().st_size for p in inside))}"
        else:
            what = _size(entry.stat().st_size)
        rows.append(f"<tr><td><code>{_esc(entry.name)}{'/' if entry.is_dir() else ''}</code>"
                    f"</td><td>{_esc(what)}</td></tr>")
    return ('<section id="files"><h2>Files</h2>'
            + (f"<table>{''.join(rows)}</table>" if rows else '<p class="muted">none</p>')
            + "</section>")


def render_report(run: str | os.PathLike) -> str:
    """The HTML of ``run``'s report (see the module docstring); the folder must be a run folder
    (``RunError`` otherwise, from ``read_run_config``)."""
    from scratchgen import __version__

    run = pathlib.Path(run)
    config = read_run_config(run)
    model = config["model"]
    when = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    sections = [_config_section(config), _metrics_section(run), _curves_section(run),
                _pictures_section(run), _files_section(run)]
    nav = " ".join(f'<a href="#{s}">{s.capitalize()}</a>'
                   for s in ("config", "metrics", "curves", "pictures", "files"))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(run.name)}: a {_esc(model)} run</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<header><h1>{_esc(run.name)}</h1>"
        f'<p>a run of <b>{_esc(model)}</b> in <code>{_esc(run.resolve())}</code>'
        f'<br><span class="muted">report written {_esc(when)} by scratchgen '
        f"{_esc(__version__)}</span></p><nav>{nav}</nav></header>"
        + "\n".join(sections) + "</body></html>\n")


def write_report(run: str | os.PathLike) -> pathlib.Path:
    """Write ``run/report.html`` (replacing the one there, atomically) and return its path.
    Refuses a folder that is not a run folder with a ``RunError``."""
    run = pathlib.Path(run)
    text = render_report(run)
    path = run / REPORT_NAME
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    return path
