"""Reports of splicing (regulAS) studies, read from the store without refitting.

The regulAS report set, configured as regulAS configures it (``experiment.reports``:
name -> ``{_target_, _depends_on_, **kwargs}``) and chained by ``_depends_on_``:

- :class:`ModelPerformanceReport` (``regulAS.reports.ModelPerformanceReport``);
- :class:`FeatureRankingReport` (``regulAS.reports.FeatureRankingReport``);
- :class:`ExportCSV` (``regulAS.reports.ExportCSV``);

plus the default figures (:mod:`regulas.reports.figures`). :func:`check_reports`
validates a section before any work; :func:`run_reports` runs it on a study.
"""

from regulas.reports.base import Report, ReportError, ReportOutput
from regulas.reports.config import check_reports
from regulas.reports.export import ExportCSV
from regulas.reports.performance import ModelPerformanceReport
from regulas.reports.ranking import FeatureRankingReport
from regulas.reports.results import StudyResults
from regulas.reports.run import run_reports

__all__ = [
    "ExportCSV",
    "FeatureRankingReport",
    "ModelPerformanceReport",
    "Report",
    "ReportError",
    "ReportOutput",
    "StudyResults",
    "check_reports",
    "run_reports",
]
