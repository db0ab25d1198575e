"""Run a study's reports from its store, in order, without refitting anything."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from regulas.core.errors import RegulasError
from regulas.core.report import Report, ReportContext, ReportOutput
from regulas.reports.html import write_page
from regulas.store.root import write_json_atomically

log = logging.getLogger(__name__)


class ReportError(RegulasError):
    """A report could not be produced from the study's results."""


@dataclass
class ReportRun:
    """What the reports of a study produced, by report name, in run order, and the study's
    HTML page (``<out_dir>/index.html``: every output on one self-contained page)."""

    outputs: dict[str, ReportOutput] = field(default_factory=dict)
    page: Path | None = None
    #: the outputs of an earlier run for the same results and reports, not written again
    reused: bool = False

    @property
    def files(self) -> list[Path]:
        return [f for out in self.outputs.values() for f in out.files]

    @property
    def texts(self) -> list[str]:
        return [out.text for out in self.outputs.values() if out.text]


def run_reports(reports: Sequence[Report], ctx: ReportContext, *, stamp: str | None = None, reuse: bool = False) -> ReportRun:
    """Run ``reports`` in the given order; each gets the tables of the reports it depends on.

    ``stamp`` identifies the results and the reports (e.g. a digest of the study's task
    states and of its config); it is recorded in ``<out_dir>/`` :data:`RECORD` with what the
    reports wrote. With ``reuse``, a folder whose record has the same stamp, and still holds
    every file it lists, is left as it is and its record returned: a rerun of an unchanged
    study does not draw its figures again.

    The order must put every report after those it depends on (workloads plan it so, and a
    report naming one that has not run yet is refused before anything is written); every
    report's :meth:`~regulas.core.report.Report.check` runs before the first one writes.
    Last, the study's HTML page is written (:func:`regulas.reports.html.write_page`).
    """
    if reuse and stamp is not None:
        earlier = _recorded(ctx.out_dir, stamp)
        if earlier is not None:
            return earlier
    seen: set[str] = set()
    for report in reports:
        missing = [d for d in report.depends_on if d not in seen]
        if missing:
            raise ReportError(f"report {report.name!r} depends on {missing}, which do not run before it")
        if report.name in seen:
            raise ReportError(f"two reports are named {report.name!r}")
        seen.add(report.name)
    for report in reports:
        report.check(ctx)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    run = ReportRun()
    for report in reports:
        inputs: dict[str, pd.DataFrame | None] = {d: run.outputs[d].frame for d in report.depends_on}
        output = report.write(ctx, inputs)
        run.outputs[report.name] = output
        log.info("report %s: %s", report.name, "no table" if output.frame is None else f"{len(output.frame)} rows")
    group = (ctx.study, list(ctx.group)) if ctx.group else None
    run.page = write_page(ctx.db, ctx.study_id, reports, run.outputs, ctx.out_dir, group=group)
    if stamp is not None:
        _record(ctx.out_dir, stamp, run)
    return run


#: what the last run of the reports in a folder wrote, and for which results
RECORD = ".regulas-reports.json"


def _record(out_dir: Path, stamp: str, run: ReportRun) -> None:
    record = {
        "stamp": stamp,
        "page": run.page.name if run.page is not None else None,
        "outputs": {
            name: {"files": [str(f.relative_to(out_dir)) if f.is_relative_to(out_dir) else str(f) for f in out.files],
                   "text": out.text, "title": out.title}
            for name, out in run.outputs.items()
        },
    }
    write_json_atomically(out_dir / RECORD, record)


def _recorded(out_dir: Path, stamp: str) -> ReportRun | None:
    """The run recorded in ``out_dir`` for ``stamp``, if every file it wrote is still there."""
    try:
        record = json.loads((out_dir / RECORD).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("stamp") != stamp:
        return None
    run = ReportRun(reused=True)
    try:
        for name, out in record["outputs"].items():
            files = [out_dir / f for f in out["files"]]
            run.outputs[name] = ReportOutput(files=files, text=out["text"], title=out["title"])
        run.page = out_dir / record["page"] if record["page"] else None
    except (KeyError, TypeError, AttributeError):
        return None
    if not all(f.is_file() for f in [*run.files, *([run.page] if run.page else [])]):
        return None
    return run
