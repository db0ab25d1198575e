"""The few lines printed after a splicing run: per model, events, mean MSE, R² and Pearson r."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from sqlalchemy import text

from regulas.core.report import Report, ReportContext, ReportOutput


def _fmt(value: float | None) -> str:
    return f"{value:<8.4f}" if value is not None else "NaN     "


class SplicingSummary(Report):
    """Per model (best mean MSE first): events scored, mean MSE, R² and r, and NaN R² count."""

    name = "regulas.summary"

    def __init__(self, selection: str = "nested") -> None:
        self.selection = selection

    def write(self, ctx: ReportContext, inputs: Mapping[str, pd.DataFrame | None]) -> ReportOutput:
        with ctx.db.connect() as conn:
            rows = conn.execute(text(
                "SELECT m.label, count(DISTINCT r.event), avg(r.mse), avg(r.r2), avg(r.pearson), sum(r.r2_is_nan) "
                "FROM splice_score r JOIN splice_model m ON m.study_id = r.study_id AND m.model = r.model "
                "WHERE r.study_id = :s GROUP BY m.model ORDER BY avg(r.mse)"
            ), {"s": ctx.study_id}).all()
        width = max([len(r[0]) for r in rows] + [8])
        lines = [f"{'pipeline':<{width}}  events  mean MSE  mean R2   mean r    R2 NaN"]
        lines += [
            f"{label:<{width}}  {n:<6d}  {_fmt(mse)}  {_fmt(r2)}  {_fmt(r)}  {nan}" for label, n, mse, r2, r, nan in rows
        ]
        if self.selection == "outer":
            lines.append("selection 'outer': every grid point is scored on the test folds; the best of them is optimistic")
        frame = pd.DataFrame(rows, columns=["pipeline", "events", "mean_mse", "mean_r2", "mean_r", "r2_nan"])
        return ReportOutput(frame=frame, text="\n".join(lines), title="per pipeline: events scored, mean MSE, R² and r")
