"""Run a study's reports from its store, in order, without refitting anything."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from regulas.core.errors import RegulasError
from regulas.core.report import Report, ReportContext, ReportOutput
from regulas.reports.html import write_page

log = logging.getLogger(__name__)


class ReportError(RegulasError):
    """A report could not be produced from the study's results."""


@dataclass
class ReportRun:
    """What the reports of a study produced, by report name, in run order, and the study's
    HTML page (``<out_dir>/index.html``: every output on one self-contained page)."""

    outputs: dict[str, ReportOutput] = field(default_factory=dict)
    page: Path | None = None

    @property
    def files(self) -> list[Path]:
        return [f for out in self.outputs.values() for f in out.files]

    @property
    def texts(self) -> list[str]:
        return [out.text for out in self.outputs.values() if out.text]


def run_reports(reports: Sequence[Report], ctx: ReportContext) -> ReportRun:
    """Run ``reports`` in the given order; each gets the tables of the reports it depends on.

    The order must put every report after those it depends on (workloads plan it so, and a
    report naming one that has not run yet is refused before anything is written); every
    report's :meth:`~regulas.core.report.Report.check` runs before the first one writes.
    Last, the study's HTML page is written (:func:`regulas.reports.html.write_page`).
    """
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
    return run
