"""Run a splicing study's reports straight from its store paths (a convenience over
:func:`regulas.reports.run_reports`, which is what ``regulas run`` and ``regulas report`` use)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from regulas.core.report import Report, ReportContext
from regulas.reports import run_reports as run_report_list
from regulas.store.arrays import StudyArrays
from regulas.workloads.splicing.reports.config import plan_reports
from regulas.workloads.splicing.reports.figures import DefaultFigures
from regulas.workloads.splicing.reports.results import StudyResults


def study_reports(reports: Mapping[str, Any] | None, *, key: str = "experiment.reports",
                  source: str | None = None) -> list[Report]:
    """The configured reports in dependency order, then the default figures."""
    return [*(item.report for item in plan_reports(reports, key=key, source=source)), DefaultFigures()]


def run_reports(
    reports: Mapping[str, Any] | None,
    *,
    db_path: Path,
    arrays_path: Path,
    study: str,
    out_dir: Path,
    source: str | None = None,
    key: str = "experiment.reports",
) -> list[Path]:
    """Run the configured reports in dependency order, then write the default figures.

    Each report receives the output tables of the reports named in its ``_depends_on_``.
    The config, the study and its arrays are all checked before anything is written.
    Returns the files written (CSV exports, then the figures). ``key`` and ``source``
    name the config section in error messages.
    """
    planned = study_reports(reports, key=key, source=source)
    results = StudyResults(Path(db_path), Path(arrays_path), study)
    ctx = ReportContext(
        study=study,
        study_id=results.study_id,
        db=results.engine,
        db_path=Path(db_path),
        arrays=StudyArrays(Path(arrays_path), study),
        out_dir=Path(out_dir),
        cache={"splicing.results": results},
    )
    return run_report_list(planned, ctx).files
