"""The one report mechanism: runs a study's reports (:class:`regulas.core.report.Report`)
in order and collects their tables, figures, files and texts; helpers for figures and CSV.

Every workload's reports go through :func:`run_reports`: the splicing workload's regulAS
reports, the regnet figures and the demo's alike.

:mod:`~regulas.reports.run` (pandas, SQLAlchemy) is imported on first use of its names
(PEP 562): a workload module imports :mod:`regulas.reports.figures`, and importing it to
read a config must not import those.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from regulas.core.lazy import lazy_attributes
from regulas.core.report import Report, ReportContext, ReportOutput

if TYPE_CHECKING:
    from regulas.reports.run import ReportError, ReportRun, run_reports

__getattr__ = lazy_attributes(__name__, {"ReportError": "run", "ReportRun": "run", "run_reports": "run"})

__all__ = ["Report", "ReportContext", "ReportError", "ReportOutput", "ReportRun", "run_reports"]
