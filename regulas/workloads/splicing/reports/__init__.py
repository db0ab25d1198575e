"""Reports of splicing (regulAS) studies, read from the store without refitting.

The regulAS report set, configured as regulAS configures it (``experiment.reports``:
name -> ``{_target_, _depends_on_, **kwargs}``) and chained by ``_depends_on_``:

- :class:`ModelPerformanceReport` (``regulAS.reports.ModelPerformanceReport``);
- :class:`FeatureRankingReport` (``regulAS.reports.FeatureRankingReport``);
- :class:`ExportCSV` (``regulAS.reports.ExportCSV``);

plus the default figures (:class:`DefaultFigures`) and the summary printed after a run
(:class:`SplicingSummary`). :func:`check_reports` validates a section before any work;
:func:`study_reports` lists a study's reports for :func:`regulas.reports.run_reports`.

The names below are imported on first use (PEP 562): reading a config imports
:mod:`~regulas.workloads.splicing.reports.config` only, and the report classes import
pandas, matplotlib and the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from regulas.core.lazy import lazy_attributes

if TYPE_CHECKING:
    from regulas.workloads.splicing.reports.base import ReportError, ReportOutput, SplicingReport
    from regulas.workloads.splicing.reports.config import check_reports
    from regulas.workloads.splicing.reports.export import ExportCSV
    from regulas.workloads.splicing.reports.figures import DefaultFigures
    from regulas.workloads.splicing.reports.performance import ModelPerformanceReport
    from regulas.workloads.splicing.reports.ranking import FeatureRankingReport
    from regulas.workloads.splicing.reports.results import StudyResults
    from regulas.workloads.splicing.reports.run import run_reports, study_reports
    from regulas.workloads.splicing.reports.summary import SplicingSummary

#: public name -> the module of this package defining it
_MODULES = {
    "ReportError": "base",
    "ReportOutput": "base",
    "SplicingReport": "base",
    "check_reports": "config",
    "ExportCSV": "export",
    "DefaultFigures": "figures",
    "ModelPerformanceReport": "performance",
    "FeatureRankingReport": "ranking",
    "StudyResults": "results",
    "run_reports": "run",
    "study_reports": "run",
    "SplicingSummary": "summary",
}

__getattr__ = lazy_attributes(__name__, _MODULES)

__all__ = [
    "ExportCSV",
    "FeatureRankingReport",
    "ModelPerformanceReport",
    "DefaultFigures",
    "ReportError",
    "ReportOutput",
    "SplicingReport",
    "SplicingSummary",
    "StudyResults",
    "check_reports",
    "run_reports",
    "study_reports",
]
