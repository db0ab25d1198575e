"""The few lines printed after a splicing run: per model, events, MSE, R² and Pearson r.

Each event's score is its mean over the outer test folds; the table gives the median
over events (robust: a few events with R² of -10,000 move it little) beside the mean.
R² is NaN on a test fold whose PSI is constant (no variance to explain) or has fewer
than two samples; such folds are left out of the R² columns and counted.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from sqlalchemy import text

from regulas.core.report import Report, ReportContext, ReportOutput
from regulas.store.reading import read_frame

#: the line under the table that says what the R² columns and the NaN count mean
R2_NOTE = ("R2 < 0: worse than predicting the event's mean PSI. R2 NaN: test folds (event x outer split) whose\n"
           "test PSI is constant (or has < 2 samples), so R2 is undefined; they are left out of the R2 columns.")


def _fmt(value: float | None) -> str:
    return f"{value:<9.4f}" if value is not None and np.isfinite(value) else "NaN      "


def summary_frame(scores: pd.DataFrame) -> pd.DataFrame:
    """Per pipeline from rows (pipeline, event, mse, r2, pearson, r2_nan_flag) of ``splice_score``.

    Columns: pipeline, events, median_mse, mean_mse, median_r2, mean_r2, median_r, mean_r,
    r2_nan (test folds with NaN R²), folds (all test folds); best median MSE first. Each
    event's value is its mean over its folds with a finite value; medians and means are
    over events.
    """
    per_event = scores.groupby(["pipeline", "event"])[["mse", "r2", "pearson"]].mean()
    g = per_event.groupby(level="pipeline")
    folds = scores.groupby("pipeline")
    frame = pd.DataFrame({
        "events": g.size(),
        "median_mse": g["mse"].median(),
        "mean_mse": g["mse"].mean(),
        "median_r2": g["r2"].median(),
        "mean_r2": g["r2"].mean(),
        "median_r": g["pearson"].median(),
        "mean_r": g["pearson"].mean(),
        "r2_nan": folds["r2_nan_flag"].sum().astype(int),
        "folds": folds.size(),
    })
    frame = frame.sort_values(["median_mse", "mean_mse"], kind="stable", na_position="last")
    return frame.rename_axis("pipeline").reset_index()


def summary_lines(frame: pd.DataFrame) -> list[str]:
    """The printed table of :func:`summary_frame` and the note on R²."""
    width = max([len(p) for p in frame["pipeline"]] + [8])
    cols = ("median MSE", "mean MSE", "median R2", "mean R2", "median r", "mean r")
    head = f"{'pipeline':<{width}}  events  " + " ".join(f"{c:<10}" for c in cols) + "  R2 NaN (of folds)"
    lines = [head]
    for row in frame.itertuples(index=False):
        values = (row.median_mse, row.mean_mse, row.median_r2, row.mean_r2, row.median_r, row.mean_r)
        lines.append(f"{row.pipeline:<{width}}  {row.events:<6d}  " + " ".join(f"{_fmt(v)} " for v in values)
                     + f" {row.r2_nan} (of {row.folds})")
    lines.append("median, mean: over events of each event's mean over its outer test folds (the median is robust\n"
                 "to a few extreme events). " + R2_NOTE)
    return lines


#: the line of the summary that says which selection a study used
SELECTION_LINES = {
    "nested": "selection: nested (hyper-parameters chosen by an inner search on each outer training part; "
              "unbiased test estimates)",
    "outer": "selection: outer (regulAS's selection: every grid point scored on the outer test folds, the best "
             "picked by test mean, which is optimistic; selection=nested gives unbiased estimates)",
}


def stored_selection(ctx: ReportContext, study_id: int) -> str:
    """``outer`` when the study's models are grid points scored on the outer folds, else ``nested``."""
    found = read_frame(ctx.db, text("SELECT max(candidate) AS c FROM splice_model WHERE study_id = :s"), {"s": study_id})
    top = found["c"].iloc[0] if len(found) else None
    return "outer" if top is not None and pd.notna(top) and int(top) >= 0 else "nested"


class SplicingSummary(Report):
    """Per model (best median MSE first): events, median and mean MSE, R² and r, and NaN R² folds;
    and which selection the study used. On several studies (``ctx.group``) one table per study."""

    name = "regulas.summary"

    def write(self, ctx: ReportContext, inputs: Mapping[str, pd.DataFrame | None]) -> ReportOutput:
        studies = ctx.group or {ctx.study: ctx.study_id}
        frames, lines, notes = [], [], []
        for name, study_id in studies.items():
            scores = read_frame(
                ctx.db,
                text("SELECT m.label AS pipeline, r.event, r.mse, r.r2, r.pearson, r.r2_is_nan AS r2_nan_flag "
                     "FROM splice_score r JOIN splice_model m ON m.study_id = r.study_id AND m.model = r.model "
                     "WHERE r.study_id = :s"),
                {"s": study_id},
            )
            frame = summary_frame(scores)
            *table, notes_line = summary_lines(frame)
            if ctx.group:
                lines.append(f"study {name!r}:")
                frame.insert(0, "study", name)
            lines += table
            notes.append(notes_line)
            frames.append(frame)
            selection = SELECTION_LINES[stored_selection(ctx, study_id)]
            if not ctx.group or selection not in lines:
                lines.append(selection)
        lines.append(notes[0])
        frame = pd.concat(frames, ignore_index=True)
        return ReportOutput(frame=frame, text="\n".join(lines), title="per pipeline: medians and means of MSE, R² and r")
