"""One self-contained HTML page per study: ``<out_dir>/index.html``.

What ran (study, workload, description, status, runs, times), its provenance (root seed,
host, package versions, the resolved config), the task counts and failures, then every
report's output in run order: its text, its table (the first rows, sortable by a click on a
column header; the whole table as a CSV file beside the page), its figures embedded as PNG
data URIs and links to its other files. No network fetch: CSS and JS are inline, and a
Content-Security-Policy forbids loading anything but data: images.

Only the shown rows are formatted, so the page costs the same for a 100-row table as for a
million-row one (plus writing that table's CSV).
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd
import yaml
from sqlalchemy import Engine, text

from regulas.core.report import NOTE, TITLE, Report, ReportOutput

#: rows of a report's table shown on the page; the CSV beside the page has them all
TOP_ROWS = 50
#: failed tasks listed on the page (the count is always complete)
MAX_FAILURES = 20
PAGE_NAME = "index.html"

_EMBEDDED = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


@dataclass
class StudyInfo:
    """The study's row of the ``study`` table and its task counts, as the page shows them."""

    name: str
    workload: str
    description: str
    status: str
    runs: int
    root_seed: int
    host: str
    started_at: float | None
    resumed_at: float | None
    finished_at: float | None
    package_versions: dict[str, str]
    config_yaml: str
    task_counts: dict[str, int] = field(default_factory=dict)
    task_seconds: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def read(cls, db: Engine, study_id: int) -> StudyInfo:
        with db.connect() as conn:
            row = conn.execute(
                text("SELECT name, workload, config_yaml, root_seed, package_versions, host, started_at, resumed_at, "
                     "finished_at, runs, status FROM study WHERE id = :s"),
                {"s": study_id},
            ).one()
            counts = conn.execute(
                text("SELECT status, count(*), sum(duration_s) FROM task WHERE study_id = :s GROUP BY status ORDER BY status"),
                {"s": study_id},
            ).all()
            failed = conn.execute(
                text("SELECT key, kind, block, attempts, worker, error_type, error_message, traceback FROM task "
                     "WHERE study_id = :s AND status = 'failed' ORDER BY id LIMIT :n"),
                {"s": study_id, "n": MAX_FAILURES},
            ).all()
        name, workload, config_yaml, seed, versions, host, started, resumed, finished, runs, status = row
        try:
            tree = yaml.safe_load(config_yaml) or {}
        except yaml.YAMLError:
            tree = {}
        study_section = tree.get("study") if isinstance(tree, dict) else None
        description = study_section.get("description") if isinstance(study_section, dict) else None
        try:
            package_versions = {str(k): str(v) for k, v in json.loads(versions).items()}
        except (ValueError, AttributeError):
            package_versions = {"(unreadable)": str(versions)}
        return cls(
            name=str(name),
            workload=str(workload),
            description="" if description is None else str(description),
            status=str(status),
            runs=int(runs),
            root_seed=int(seed),
            host=str(host),
            started_at=started,
            resumed_at=resumed,
            finished_at=finished,
            package_versions=package_versions,
            config_yaml=str(config_yaml),
            task_counts={str(s): int(n) for s, n, _ in counts},
            task_seconds=float(sum(d or 0.0 for _, _, d in counts)),
            failures=[dict(r._mapping) for r in failed],
        )


# ----------------------------------------------------------------------------- formatting

def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _when(t: float | None) -> str:
    if t is None:
        return "—"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{int(minutes)} min {s:.0f} s"
    hours, m = divmod(minutes, 60)
    return f"{int(hours)} h {int(m)} min"


def _cell(value: Any) -> str:
    """One ``<td>``: numbers right-aligned, formatted, with their raw value in ``data-v`` for sorting."""
    if value is None or value is pd.NA or value is pd.NaT:
        return '<td class="na" data-v="">—</td>'
    if isinstance(value, bool | np.bool_):
        return f"<td>{_e(bool(value))}</td>"
    if isinstance(value, int | np.integer):
        return f'<td class="n" data-v="{int(value)}">{int(value):,}</td>'
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return '<td class="n na" data-v="">NaN</td>'
        if math.isinf(v):
            return f'<td class="n" data-v="{"Infinity" if v > 0 else "-Infinity"}">{"∞" if v > 0 else "−∞"}</td>'
        shown = f"{v:,.0f}" if v.is_integer() and abs(v) < 1e15 else f"{v:.4g}"
        return f'<td class="n" data-v="{v!r}">{_e(shown)}</td>'
    return f"<td>{_e(value)}</td>"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "report"


def _href(path: Path, folder: Path) -> str:
    return quote(Path(os.path.relpath(path, folder)).as_posix())


def _data_uri(path: Path) -> str:
    return f"data:{_EMBEDDED[path.suffix.lower()]};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


# ----------------------------------------------------------------------------- sections

def _dl(items: Iterable[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _study_section(info: StudyInfo) -> str:
    elapsed = None if info.started_at is None or info.finished_at is None else info.finished_at - info.started_at
    what = [
        ("study", _e(info.name)),
        ("workload", _e(info.workload)),
        ("description", _e(info.description) if info.description else "—"),
        ("status", f'<span class="status {_e(info.status)}">{_e(info.status)}</span>'),
        ("runs", _e(info.runs)),
        ("started", _e(_when(info.started_at))),
        ("latest run started", _e(_when(info.resumed_at))),
        ("finished", _e(_when(info.finished_at))),
        ("elapsed (first start to finish)", _e(_duration(elapsed))),
        ("task time (sum over tasks)", _e(_duration(info.task_seconds))),
    ]
    versions = ", ".join(f"{_e(k)} {_e(v)}" for k, v in sorted(info.package_versions.items()))
    provenance = [
        ("root seed", _e(info.root_seed)),
        ("host", _e(info.host)),
        ("package versions", versions or "—"),
    ]
    return (
        '<section id="study"><h2>What ran</h2>' + _dl(what)
        + "<h2>Provenance</h2>" + _dl(provenance)
        + f"<details><summary>resolved config (YAML)</summary><pre>{_e(info.config_yaml)}</pre></details></section>"
    )


def _tasks_section(info: StudyInfo) -> str:
    total = sum(info.task_counts.values())
    counts = "".join(f"<tr><td>{_e(s)}</td>{_cell(n)}</tr>" for s, n in info.task_counts.items())
    parts = [
        '<section id="tasks"><h2>Tasks</h2>',
        f'<table class="counts"><thead><tr><th>status</th><th>tasks</th></tr></thead><tbody>{counts}</tbody>'
        f"<tfoot><tr><td>total</td>{_cell(total)}</tr></tfoot></table>",
    ]
    n_failed = info.task_counts.get("failed", 0)
    if n_failed:
        shown = f" (the first {len(info.failures)})" if len(info.failures) < n_failed else ""
        parts.append(f'<h3 class="bad">{n_failed:,} failed task(s){shown}</h3>')
        for f in info.failures:
            head = (f"<code>{_e(str(f['key'])[:12])}</code> {_e(f['kind'])} {_e(f['block'])} attempts={_e(f['attempts'])}: "
                    f"<b>{_e(f['error_type'])}</b>: {_e(f['error_message'])}")
            parts.append(f"<details><summary>{head}</summary><pre>{_e(f['traceback'] or '')}</pre></details>")
    parts.append("</section>")
    return "".join(parts)


def _flat(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its index as columns (unless it is the default one) and string column names."""
    if not isinstance(frame.index, pd.RangeIndex):
        frame = frame.reset_index()
    names = [" ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in frame.columns]
    if names != list(frame.columns):
        frame = frame.set_axis(names, axis=1)
    return frame


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """``frame`` as CSV (header, no index; NaN as an empty field): Arrow's writer, ~10x faster than
    pandas' on 100k+ rows, and pandas' for what Arrow cannot convert (e.g. mixed object columns)."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowException, TypeError, ValueError):
        frame.to_csv(path, index=False)
        return
    pa_csv.write_csv(table, str(path))


def _table(frame: pd.DataFrame, csv_href: str, top: int) -> str:
    shown = frame.head(top)
    header = "".join(f'<th title="click to sort">{_e(c)}</th>' for c in shown.columns)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in shown.itertuples(index=False, name=None))
    n = len(frame)
    caption = (f"all {n:,} rows" if n <= top else f"the first {top:,} of {n:,} rows (sorting reorders the rows shown)")
    return (
        f'<p class="caption">{caption}; full table: <a href="{_e(csv_href)}">{_e(Path(csv_href).name)}</a></p>'
        f'<div class="scroll"><table class="sortable"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table></div>'
    )


def _report_section(index: int, report: Report, output: ReportOutput, folder: Path, top: int) -> str:
    frame = output.frame
    attrs_title = frame.attrs.get(TITLE) if frame is not None else None
    title = output.title or attrs_title or report.name
    doc = (type(report).__doc__ or "").strip().split("\n\n")[0]
    parts = [f'<section class="report" id="r{index}"><h2>{_e(title)}</h2>',
             f'<p class="meta">report <code>{_e(report.name)}</code>' + (f" — {_e(' '.join(doc.split()))}" if doc else "") + "</p>"]
    note = frame.attrs.get(NOTE) if frame is not None else None
    if note:
        parts.append(f'<p class="note">{_e(note)}</p>')
    if output.text:
        parts.append(f"<pre>{_e(output.text)}</pre>")
    if frame is not None and len(frame.columns):
        frame = _flat(frame)
        csv = folder / f"table_{index:02d}_{_slug(report.name)}.csv"
        write_csv(frame, csv)
        parts.append(_table(frame, _href(csv, folder), top))
    figures = [p for p in output.files if p.suffix.lower() in _EMBEDDED and p.is_file()]
    others = [p for p in output.files if p not in figures]
    for path in figures:
        parts.append(f'<figure><img src="{_data_uri(path)}" alt="{_e(path.name)}">'
                     f'<figcaption><a href="{_e(_href(path, folder))}">{_e(path.name)}</a></figcaption></figure>')
    if others:
        links = "".join(f'<li><a href="{_e(_href(p, folder))}">{_e(p.name)}</a></li>' for p in others)
        parts.append(f'<p>files:</p><ul class="files">{links}</ul>')
    parts.append("</section>")
    return "".join(parts)


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
main{max-width:1200px;margin:0 auto;padding:1.2em 2em 3em}
header{background:#233044;color:#fff;padding:1em 2em}header h1{margin:0;font-size:1.5em}
header p{margin:.3em 0 0;color:#c9d3e3}
nav{margin:.6em 0 0}nav a{color:#9cc3ff;margin-right:1em;text-decoration:none}
section{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:.6em 1.4em 1em;margin:1.2em 0}
h2{font-size:1.2em;border-bottom:1px solid #e4e7ec;padding-bottom:.2em}h3.bad{color:#a3261b}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1.2em}dt{color:#5a6272}dd{margin:0}
pre{background:#f3f4f7;border:1px solid #e4e7ec;padding:.6em;overflow-x:auto;font-size:12.5px}
table{border-collapse:collapse;font-size:13px}th,td{border-bottom:1px solid #e4e7ec;padding:.2em .7em;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}td.na{color:#8a92a3}
table.sortable th{cursor:pointer;background:#eef1f5;position:sticky;top:0;user-select:none}
table.sortable th[aria-sort=ascending]::after{content:" \\25B2"}table.sortable th[aria-sort=descending]::after{content:" \\25BC"}
tbody tr:hover{background:#f5f8ff}.scroll{max-height:36em;overflow:auto}
.caption,.meta{color:#5a6272;font-size:.92em}.note{background:#fff6e0;border-left:4px solid #e0a400;padding:.4em .8em}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #e4e7ec}figcaption{font-size:.9em;color:#5a6272}
.status{padding:0 .5em;border-radius:3px;background:#e4e7ec}.status.done{background:#d7f0dd}.status.failed{background:#f8d7d3}
summary{cursor:pointer}footer{color:#8a92a3;font-size:.85em;text-align:center}
"""

# Sort the rows of a table by a click on its header: numbers (data-v) numerically, text
# naturally; a second click reverses; NaN and empty cells stay last either way.
_JS = """
(function () {
  function key(row, i) {
    var c = row.cells[i], v = c.getAttribute("data-v");
    if (v === null) return c.textContent;
    return v === "" ? null : parseFloat(v);
  }
  function compare(a, b, dir) {
    if (a === null || b === null) return a === b ? 0 : (a === null ? 1 : -1);
    if (typeof a === "number" && typeof b === "number") return dir * (a < b ? -1 : a > b ? 1 : 0);
    return dir * String(a).localeCompare(String(b), undefined, {numeric: true});
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, i) {
      th.addEventListener("click", function () {
        var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows).map(function (r, n) { return [key(r, i), n, r]; });
        rows.sort(function (a, b) { return compare(a[0], b[0], dir) || a[1] - b[1]; });
        rows.forEach(function (r) { body.appendChild(r[2]); });
      });
    });
  });
})();
"""

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def render_page(info: StudyInfo, reports: Sequence[Report], outputs: Mapping[str, ReportOutput], folder: Path,
                *, top: int = TOP_ROWS, group: tuple[str, str] | None = None) -> str:
    """The page's HTML; writes each report table's CSV into ``folder`` on the way.

    ``group``: (name, studies) when the reports cover several studies under one name (the
    first of them is ``info``, which the study and tasks sections describe)."""
    sections = [_report_section(i, r, outputs[r.name], folder, top) for i, r in enumerate(reports, 1) if r.name in outputs]
    nav = "".join(
        f'<a href="#r{i}">{_e(outputs[r.name].title or r.name)}</a>' for i, r in enumerate(reports, 1) if r.name in outputs
    )
    subtitle = f"{info.workload} study · {info.status} · finished {_when(info.finished_at)}"
    heading = info.name
    if group is not None:
        heading, studies = group
        subtitle = f"{info.workload} studies {studies}; the study and task sections describe {info.name}"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{_e(heading)} — regulas report</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{_e(heading)}</h1><p>{_e(subtitle)}</p>"
        f'<nav><a href="#study">study</a><a href="#tasks">tasks</a>{nav}</nav></header><main>'
        + _study_section(info) + _tasks_section(info) + "".join(sections)
        + f"<footer>written by regulas at {_e(_when(time.time()))}</footer></main><script>{_JS}</script></body></html>\n"
    )


def write_page(db: Engine, study_id: int, reports: Sequence[Report], outputs: Mapping[str, ReportOutput], folder: Path,
               *, top: int = TOP_ROWS, group: tuple[str, Sequence[str]] | None = None) -> Path:
    """Write ``folder/index.html`` (and the CSV of every report table beside it); returns its path.

    ``group``: (name, study names) of reports on several studies; ``study_id`` is the first."""
    folder.mkdir(parents=True, exist_ok=True)
    shown = (group[0], ", ".join(group[1])) if group else None
    page = render_page(StudyInfo.read(db, study_id), reports, outputs, folder, top=top, group=shown)
    path = folder / PAGE_NAME
    tmp = path.with_name(f".{PAGE_NAME}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


__all__ = ["PAGE_NAME", "TOP_ROWS", "StudyInfo", "render_page", "write_csv", "write_page"]
