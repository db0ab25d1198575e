"""The one report mechanism: runs a study's reports (:class:`regulas.core.report.Report`)
in order and collects their tables, figures, files and texts; helpers for figures and CSV.

Every workload's reports go through :func:`run_reports`: the splicing workload's regulAS
reports, the regnet figures and the demo's alike.
"""

from regulas.core.report import Report, ReportContext, ReportOutput
from regulas.reports.run import ReportError, ReportRun, run_reports

__all__ = ["Report", "ReportContext", "ReportError", "ReportOutput", "ReportRun", "run_reports"]
