"""The contract of a report: a small class that turns a finished study into tables,
figures and files, read from the store without refitting.

Workloads list their reports (:meth:`regulas.core.workload.Workload.reports`); the engine
(:func:`regulas.reports.run_reports`) runs them in order, hands each the output tables of
the reports it depends on and collects what they wrote.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Engine

    from regulas.core.arrays import StudyArraysLike


@dataclass
class ReportContext:
    """A finished study as reports see it: the database read-only, the arrays, where to write.

    ``cache`` is shared by the reports of one run, for what several of them load (e.g. a
    workload's results table).

    ``group``: when the reports cover several studies together (regulAS reports on every
    experiment of one name), their names and ids in run order; ``study`` is then the name
    that groups them and ``study_id`` the first of them (whose run the HTML page describes).
    Empty: the reports cover ``study`` alone.
    """

    study: str
    study_id: int
    db: Engine
    db_path: Path
    arrays: StudyArraysLike
    out_dir: Path
    cache: dict[str, Any] = field(default_factory=dict)
    group: dict[str, int] = field(default_factory=dict)


#: ``DataFrame.attrs`` key of a caveat a report's table carries (e.g. optimistic selection);
#: the HTML page shows it above the table
NOTE = "note"
#: ``DataFrame.attrs`` key of a human-readable title of a report's table
TITLE = "title"


@dataclass
class ReportOutput:
    """A report's result: its table (passed to the reports depending on it), the files it
    wrote, an optional short text printed after a run, and an optional title of its
    section of the study's HTML page (default: the table's ``attrs["title"]``, else the
    report's name)."""

    frame: pd.DataFrame | None = None
    files: list[Path] = field(default_factory=list)
    text: str | None = None
    title: str | None = None


class Report(ABC):
    """One report. ``name`` names it among a study's reports; ``depends_on`` lists the
    reports whose tables it reads (regulAS's ``_depends_on_``)."""

    name: str = ""
    depends_on: tuple[str, ...] = ()

    def check(self, ctx: ReportContext) -> None:  # noqa: B027 - an optional hook
        """Raise if this report cannot run on the study (called for every report before any writes)."""

    @abstractmethod
    def write(self, ctx: ReportContext, inputs: Mapping[str, pd.DataFrame | None]) -> ReportOutput:
        """Produce the report from the study and the outputs of its dependencies."""
