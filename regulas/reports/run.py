"""Run a study's reports from its store, without refitting anything."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from regulas.errors import ConfigError
from regulas.reports.config import PlannedReport, plan_reports
from regulas.reports.figures import write_default_figures
from regulas.reports.results import StudyResults

log = logging.getLogger(__name__)


def _check_experiment_names(plan: list[PlannedReport], results: StudyResults, source: str | None) -> None:
    known = {results.study, results.experiment_name} - {None}
    for item in plan:
        name = item.report.experiment_name
        if name is not None and name not in known:
            raise ConfigError(
                f"names experiment {name!r}, but the reports run on study {results.study!r}"
                + (f" (experiment name {results.experiment_name!r})" if results.experiment_name else ""),
                key=f"{item.key}.experiment_name",
                source=source,
            )


def run_reports(
    reports: Mapping[str, Any] | None,
    *,
    db_path: Path,
    arrays_path: Path,
    study: str,
    out_dir: Path,
    source: str | None = None,
) -> list[Path]:
    """Run the configured reports in dependency order, then write the default figures.

    Each report receives the output tables of the reports named in its ``_depends_on_``.
    The config, the study and its arrays are all checked before anything is written.
    Returns the files written (CSV exports, then the figures).
    """
    plan = plan_reports(reports, source=source)
    results = StudyResults(Path(db_path), Path(arrays_path), study)
    _check_experiment_names(plan, results, source)
    results.events  # noqa: B018 - fail on missing Zarr arrays before writing anything
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs: dict[str, pd.DataFrame | None] = {}
    files: list[Path] = []
    for item in plan:
        output = item.report.generate(results, {d: outputs[d] for d in item.depends_on}, out_dir)
        outputs[item.name] = output.frame
        files += output.files
        log.info("report %s: %s", item.name, "no table" if output.frame is None else f"{len(output.frame)} rows")
    files += write_default_figures(results, out_dir)
    return files
