"""The default figures of a splicing study (PNG, matplotlib's Agg canvas, no pyplot state).

- ``score_distribution.png``: per pipeline label, the distribution over events of the
  mean test R² and the mean test MSE (one box per pipeline);
- ``top_regulators.png``: events x features heatmap: the best-predicted events (best
  pipeline with stored importances, by mean test R²) against the features most often
  among their top-ranked ones; colour = importance relative to the event's top feature;
- ``predicted_vs_true.png``: test predictions against true PSI over all outer folds for
  the best-predicted events (from Zarr).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from regulas.workloads.splicing.reports.base import ReportOutput, SplicingReport
from regulas.workloads.splicing.reports.performance import ModelPerformanceReport
from regulas.workloads.splicing.reports.results import StudyResults

MAX_PIPELINES = 30  # boxes in the score distribution (best by median R²)
HEATMAP_EVENTS = 25
HEATMAP_FEATURES = 25
HEATMAP_TOP_RANK = 10  # a feature counts as "top-ranked" for an event up to this rank
SCATTER_EVENTS = 6
#: importance kind used for an (event, pipeline) when several are stored, most trusted first
KIND_PREFERENCE = ("permutation", "coef", "feature_importances")


def mean_scores(results: StudyResults, path: str, *, score: bool) -> pd.DataFrame:
    """Mean over outer folds per (event, pipeline) of a stored metric: columns event, pipeline, mean."""
    kwargs = {"score_fn": path} if score else {"loss_fn": path}
    report = ModelPerformanceReport(**kwargs)
    frame = report.generate(results, {}, Path(".")).frame
    assert frame is not None
    return frame.rename(columns={report.mean_column: "mean"})[["event", "pipeline", "mean"]]


def best_per_event(r2: pd.DataFrame) -> pd.DataFrame:
    """Each event's pipeline of highest mean R², events best first (NaN R² left out)."""
    finite = r2[np.isfinite(r2["mean"])]
    best = finite.sort_values(["mean", "pipeline"], ascending=[False, True], kind="stable")
    return best.drop_duplicates("event").reset_index(drop=True)


def _title(results: StudyResults, text: str) -> str:
    note = f"\n({results.note})" if results.note else ""
    return f"{results.study}: {text}{note}"


def _short(label: str, width: int = 48) -> str:
    """An event ID cut to fit a subplot title (rMATS IDs run to 100+ characters)."""
    return label if len(label) <= width else label[: width - 1] + "…"


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def _message(path: Path, title: str, message: str) -> Path:
    fig = Figure(figsize=(7, 3), layout="constrained")
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return _save(fig, path)


def score_distribution(results: StudyResults, r2: pd.DataFrame, mse: pd.DataFrame, path: Path) -> Path:
    medians = r2.groupby("pipeline")["mean"].median().sort_values(ascending=False, na_position="last")
    labels = list(medians.index[:MAX_PIPELINES])
    shown = "" if len(medians) <= MAX_PIPELINES else f" (best {MAX_PIPELINES} of {len(medians)} by median R²)"
    fig = Figure(figsize=(max(7.0, 0.5 * len(labels) + 3), 5.5), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, frame, name in ((axes[0], r2, "mean test R² per event"), (axes[1], mse, "mean test MSE per event")):
        data = [frame.loc[(frame["pipeline"] == lab) & np.isfinite(frame["mean"]), "mean"].to_numpy() for lab in labels]
        kept = [(lab, d) for lab, d in zip(labels, data) if d.size]
        if kept:
            ax.boxplot([d for _, d in kept], showfliers=True)
            ax.set_xticks(range(1, len(kept) + 1), [lab for lab, _ in kept], rotation=30, ha="right")
        ax.set_ylabel(name)
        ax.set_xlabel("pipeline")
        ax.grid(axis="y", alpha=0.3)
    n_events = r2["event"].nunique()
    fig.suptitle(_title(results, f"score distribution over {n_events} events per pipeline{shown}"))
    return _save(fig, path)


def _preferred_kind(ranking: pd.DataFrame) -> pd.DataFrame:
    """Keep one importance kind per (event, pipeline): the first of KIND_PREFERENCE stored."""
    order = {k: i for i, k in enumerate(KIND_PREFERENCE)}
    ranking = ranking.assign(_pref=ranking["kind"].map(order).fillna(len(order)))
    first = ranking.groupby(["event", "pipeline"])["_pref"].transform("min")
    return ranking[ranking["_pref"] == first].drop(columns="_pref")


def top_regulators(results: StudyResults, r2: pd.DataFrame, path: Path) -> Path:
    title = "top regulators of the best-predicted events"
    with_importance = r2[r2["pipeline"].isin(results.models_with_importance())]
    if with_importance.empty:
        return _message(path, _title(results, title), "no feature importances are stored for this study")
    # pairs without rows (e.g. an event whose fits all failed) have no ranking: take a margin
    candidates = best_per_event(with_importance).head(4 * HEATMAP_EVENTS)
    ranking = _preferred_kind(results.feature_ranking(list(candidates["event"])))
    best = candidates.merge(ranking[["event", "pipeline"]].drop_duplicates(), on=["event", "pipeline"])
    best = best.head(HEATMAP_EVENTS)
    if best.empty:
        return _message(path, _title(results, title), "no event with a finite test R² and stored importances")
    top = ranking.merge(best[["event", "pipeline"]], on=["event", "pipeline"])
    top = top.assign(relative=top["score"] / top.groupby("event")["score"].transform("max"))
    frequent = (
        top[top["rank"] <= HEATMAP_TOP_RANK]
        .groupby("feature")
        .agg(count=("event", "nunique"), mean=("relative", "mean"))
        .sort_values(["count", "mean"], ascending=False)
        .head(HEATMAP_FEATURES)
    )
    features = list(frequent.index)
    matrix = (
        top.pivot_table(index="event", columns="feature", values="relative", aggfunc="max")
        .reindex(index=best["event"], columns=features)
        .fillna(0.0)
    )
    fig = Figure(figsize=(max(6.0, 0.35 * len(features) + 4), max(4.0, 0.3 * len(best) + 2.5)), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(matrix.to_numpy(), aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(features)), features, rotation=60, ha="right", fontsize=8)
    ylabels = [f"{e} ({p}, R²={v:.2f})" for e, p, v in best[["event", "pipeline", "mean"]].itertuples(index=False)]
    ax.set_yticks(range(len(best)), ylabels, fontsize=8)
    ax.set_xlabel(f"feature (most often within the top {HEATMAP_TOP_RANK} of these events)")
    ax.set_ylabel("event (best pipeline, mean test R²)")
    kinds = ", ".join(sorted(top["kind"].unique()))
    fig.colorbar(image, ax=ax, label=f"importance relative to the event's top feature ({kinds})")
    ax.set_title(_title(results, title))
    return _save(fig, path)


def predicted_vs_true(results: StudyResults, r2: pd.DataFrame, path: Path) -> Path:
    title = "predicted vs true PSI on the outer test folds, best-predicted events"
    best = best_per_event(r2).head(SCATTER_EVENTS)
    if best.empty:
        return _message(path, _title(results, title), "no event has a finite mean test R²")
    model_of = dict(zip(results.models["label"], results.models["model"]))
    position = {e: i for i, e in enumerate(results.events)}
    cols = min(3, len(best))
    rows = int(np.ceil(len(best) / cols))
    fig = Figure(figsize=(4.2 * cols, 4.0 * rows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, (event, pipeline, value) in zip(axes, best[["event", "pipeline", "mean"]].itertuples(index=False)):
        y_true, y_pred, split = results.test_values(int(model_of[pipeline]), position[event])
        ax.scatter(y_true, y_pred, c=split, cmap="tab10", vmin=0, vmax=9, s=14, alpha=0.8)
        low = float(min(y_true.min(initial=0.0), y_pred.min(initial=0.0)))
        high = float(max(y_true.max(initial=1.0), y_pred.max(initial=1.0)))
        ax.plot([low, high], [low, high], color="grey", linewidth=1, linestyle="--")
        ax.set_title(f"{_short(event)}\n{pipeline}, mean R² = {value:.3f}", fontsize=9)
        ax.set_xlabel("true PSI")
        ax.set_ylabel("predicted PSI")
    for ax in axes[len(best) :]:
        ax.set_axis_off()
    fig.suptitle(_title(results, f"{title} (colour = outer split)"))
    return _save(fig, path)


def write_default_figures(results: StudyResults, out_dir: Path) -> list[Path]:
    """Write the three default figures into ``out_dir``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    r2 = mean_scores(results, "sklearn.metrics.r2_score", score=True)
    mse = mean_scores(results, "sklearn.metrics.mean_squared_error", score=False)
    return [
        score_distribution(results, r2, mse, out_dir / "score_distribution.png"),
        top_regulators(results, r2, out_dir / "top_regulators.png"),
        predicted_vs_true(results, r2, out_dir / "predicted_vs_true.png"),
    ]


class DefaultFigures(SplicingReport):
    """The three default figures of every splicing study (see the module docstring)."""

    name = "regulas.figures"

    def generate(
        self, results: StudyResults, inputs: Mapping[str, pd.DataFrame | None], out_dir: Path
    ) -> ReportOutput:
        return ReportOutput(frame=None, files=write_default_figures(results, out_dir), title="score distribution, top regulators, predicted vs true")
