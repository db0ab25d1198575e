"""ExportCSV: write the tables of the reports it depends on as CSV files."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from regulas.core.report import ReportContext
from regulas.workloads.splicing.reports.base import NOTE, ReportOutput, ReportParamError, SplicingReport
from regulas.workloads.splicing.reports.results import StudyResults

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


class ExportCSV(SplicingReport):
    """Write each dependency's table to ``<output_dir>/<report name>.csv``.

    Parameters
    ----------
    output_dir : folder of the files; a relative path is under the reports' output folder.
    sep : the field separator (one character, e.g. ``;`` as in the regulAS sample).
    experiment_name : see :class:`~regulas.workloads.splicing.reports.base.SplicingReport`.

    A table that carries a caveat (selection ``outer``: the best-by-test choice is
    optimistic) gets it as a first line ``# <caveat>``; read with ``comment="#"``.
    Output table: one row per file written (``report``, ``path``).
    """

    def __init__(self, output_dir: str = "reports", sep: str = ",", experiment_name: str | None = None) -> None:
        super().__init__(experiment_name)
        if not isinstance(output_dir, str) or not output_dir:
            raise ReportParamError("output_dir", f"expected a folder path, got {output_dir!r}")
        if not isinstance(sep, str) or len(sep) != 1 or sep in '"\n\r#':
            raise ReportParamError("sep", f"expected one separator character such as ',' or ';', got {sep!r}")
        self.output_dir = output_dir
        self.sep = sep

    def output_columns(self) -> frozenset[str]:
        return frozenset({"report", "path"})

    def check_inputs(self, available: Mapping[str, frozenset[str]]) -> None:
        if not available:
            raise ReportParamError(
                "_depends_on_", "ExportCSV exports the tables of the reports it depends on; name them in _depends_on_"
            )
        unsafe = [name for name in available if not _SAFE_NAME.match(name) or name in (".", "..")]
        if unsafe:
            raise ReportParamError(
                "_depends_on_",
                f"report name(s) {unsafe} cannot be file names; use letters, digits, '_', '-' and '.'",
            )

    def folder(self, out_dir: Path) -> Path:
        path = Path(self.output_dir).expanduser()
        return path if path.is_absolute() else Path(out_dir) / path

    def write(self, ctx: ReportContext, inputs: Mapping[str, pd.DataFrame | None]) -> ReportOutput:
        return self.export(inputs, ctx.out_dir)  # one file per table, also for a group of studies

    def generate(
        self, results: StudyResults, inputs: Mapping[str, pd.DataFrame | None], out_dir: Path
    ) -> ReportOutput:
        return self.export(inputs, out_dir)

    def export(self, inputs: Mapping[str, pd.DataFrame | None], out_dir: Path) -> ReportOutput:
        """Write each table of ``inputs`` as ``<folder>/<name>.csv``."""
        folder = self.folder(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for name, frame in inputs.items():
            if frame is None:
                continue
            path = folder / f"{name}.csv"
            with path.open("w", newline="") as handle:
                note = frame.attrs.get(NOTE, "")
                if note:
                    handle.write(f"# {note}\n")
                frame.to_csv(handle, sep=self.sep, index=False)
            written.append(path)
        listing = pd.DataFrame({"report": [p.stem for p in written], "path": [str(p) for p in written]})
        return ReportOutput(listing, written)
