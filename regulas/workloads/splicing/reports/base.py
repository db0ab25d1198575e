"""What every report is: a small class built from its config keys.

A report reads a finished splicing study (:class:`~regulas.workloads.splicing.reports.results.StudyResults`)
and the output tables of the reports it depends on (regulAS's ``_depends_on_``), and
returns its own table and the files it wrote. Constructors validate their arguments,
so :func:`regulas.workloads.splicing.reports.check_reports` finds every bad value before any work starts.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from regulas.core.errors import ConfigError
from regulas.core.report import NOTE, TITLE, Report, ReportContext, ReportOutput
from regulas.reports import ReportError

if TYPE_CHECKING:
    from regulas.workloads.splicing.reports.results import StudyResults



class ReportParamError(ConfigError):
    """A report argument is invalid; ``param`` is the config key under the report's node."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message, key=param)
        self.param = param
        self.detail = message


def optional_str(param: str, value: Any) -> str | None:
    if value is not None and not (isinstance(value, str) and value):
        raise ReportParamError(param, f"expected a non-empty string or null, got {value!r}")
    return value


def optional_positive_int(param: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ReportParamError(param, f"expected a positive integer or null, got {value!r}")
    return value


class SplicingReport(Report):
    """Base class of the splicing reports (the regulAS report classes map to subclasses).

    Parameters
    ----------
    experiment_name : regulAS's ``experiment_name``; when given, it must name the study the
        reports run on (its study name or its experiment ``name``).
    """

    #: the config key of this report (``experiment.reports.<name>``), for error messages
    key: str = ""

    def __init__(self, experiment_name: str | None = None) -> None:
        self.experiment_name = optional_str("experiment_name", experiment_name)

    def output_columns(self) -> frozenset[str]:
        """Columns of the output table known before running (checked against ``sort_by`` keys)."""
        return frozenset()

    def check_inputs(self, available: Mapping[str, frozenset[str]]) -> None:
        """Check the reports this one depends on (name -> their known columns); raise ReportParamError."""

    def check(self, ctx: ReportContext) -> None:
        for results in members(ctx):
            results.events  # noqa: B018 - fail on missing Zarr arrays before writing anything
            known = {results.study, results.experiment_name} - {None}
            if self.experiment_name is not None and self.experiment_name not in known:
                raise ConfigError(
                    f"names experiment {self.experiment_name!r}, but the reports run on study {results.study!r}"
                    + (f" (experiment name {results.experiment_name!r})" if results.experiment_name else ""),
                    key=f"{self.key or self.name}.experiment_name",
                )

    def write(self, ctx: ReportContext, inputs: Mapping[str, pd.DataFrame | None]) -> ReportOutput:
        from regulas.workloads.splicing.reports.results import StudyResults

        if ctx.group:
            return self.generate_group(ctx, inputs)
        return self.generate(StudyResults.of(ctx), inputs, ctx.out_dir)

    def generate_group(self, ctx: ReportContext, inputs: Mapping[str, pd.DataFrame | None]) -> ReportOutput:
        """The report on several studies (``ctx.group``, regulAS's experiments of one name):
        :meth:`generate` on each study with its own rows of the inputs (so each pipeline is
        scored on its own predictions), the tables stacked under a first column ``study``."""
        frames: list[pd.DataFrame] = []
        files: list[Path] = []
        for results in members(ctx):
            own = {name: rows_of(frame, results.study) for name, frame in inputs.items()}
            out = self.generate(results, own, ctx.out_dir / results.study)
            files += out.files
            if out.frame is not None:
                frames.append(out.frame.assign(study=results.study)[["study", *out.frame.columns]])
        if not frames:
            return ReportOutput(None, files)
        frame = pd.concat(frames, ignore_index=True)
        title = str(frames[0].attrs.get(TITLE, "")).partition(": ")[2]  # "<study>: what" -> "what"
        frame.attrs[TITLE] = f"{ctx.study} ({len(frames)} studies): {title}" if title else ctx.study
        frame.attrs[NOTE] = " ".join(dict.fromkeys(str(f.attrs.get(NOTE, "")) for f in frames if f.attrs.get(NOTE)))
        return ReportOutput(frame, files)

    @abstractmethod
    def generate(
        self, results: StudyResults, inputs: Mapping[str, pd.DataFrame | None], out_dir: Path
    ) -> ReportOutput:
        """Produce the report from the study's results and the outputs of its dependencies."""


def members(ctx: ReportContext) -> list[StudyResults]:
    """The studies a report run covers: each of ``ctx.group``, else ``ctx.study``."""
    from regulas.workloads.splicing.reports.results import StudyResults

    if not ctx.group:
        return [StudyResults.of(ctx)]
    return [StudyResults.member(ctx, name) for name in ctx.group]


def rows_of(frame: pd.DataFrame | None, study: str) -> pd.DataFrame | None:
    """One study's rows of a group's table (``study`` column dropped); other tables as they are."""
    if frame is None or "study" not in frame.columns:
        return frame
    own = frame[frame["study"] == study].drop(columns="study").reset_index(drop=True)
    own.attrs = dict(frame.attrs)
    return own


__all__ = ["NOTE", "TITLE", "ReportError", "ReportOutput", "ReportParamError", "SplicingReport", "members", "rows_of"]
