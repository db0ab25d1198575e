"""The default figures of a splicing study (PNG, matplotlib's Agg canvas, no pyplot state).

- ``score_distribution.png``: per pipeline label, the distribution over events of the
  mean test R² and the mean test MSE (one box per pipeline); the axes span the 1st-99th
  percentile and the tails near it (R² no lower than -1), and the events outside are
  counted at the axis edge (:func:`~regulas.reports.figures.robust_limits`);
- ``top_regulators.png``: events x features heatmap: the best-predicted events with a
  mean test R² > 0 (best pipeline with stored importances) against the features most
  often among their top-ranked ones; colour = importance relative to the event's top feature;
- ``predicted_vs_true.png``: test predictions against true PSI over all outer folds for
  the best-predicted events (from Zarr), coloured by outer split (with a legend).

Events are labelled ``GENE TYPE #i`` (:func:`~regulas.reports.figures.short_label`;
``i`` = the event's position on the study's event axis); the full IDs are in the tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from regulas.core.report import ReportContext
from regulas.reports.figures import clip_note, mark_outside, robust_limits, short_label
from regulas.workloads.splicing.reports.base import ReportOutput, SplicingReport, members
from regulas.workloads.splicing.reports.performance import ModelPerformanceReport
from regulas.workloads.splicing.reports.results import StudyResults

MAX_PIPELINES = 30  # boxes in the score distribution (best by median R²)
HEATMAP_EVENTS = 25
HEATMAP_FEATURES = 25
HEATMAP_TOP_RANK = 10  # a feature counts as "top-ranked" for an event up to this rank
SCATTER_EVENTS = 6
#: the lowest R² a score axis shows (R² < 0: worse than predicting the mean; far below -1
#: it only says how badly, and a few such events would squash every box to a line)
R2_FLOOR = -1.0
#: predicted PSI beyond these is drawn at the axis edge of predicted_vs_true.png
PSI_BOUNDS = (-0.25, 1.25)
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
    return _heading(results.study, results.note, text)


def _heading(label: str, note: str, text: str) -> str:
    return f"{label}: {text}" + (f"\n({note})" if note else "")


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


def score_distribution(label: str, note: str, r2: pd.DataFrame, mse: pd.DataFrame, path: Path) -> Path:
    """Boxes per pipeline over events (rows of ``r2``, ``mse``: event, pipeline, mean); the
    title starts with ``label`` and carries ``note``."""
    medians = r2.groupby("pipeline")["mean"].median().sort_values(ascending=False, na_position="last")
    labels = list(medians.index[:MAX_PIPELINES])
    shown = "" if len(medians) <= MAX_PIPELINES else f" (best {MAX_PIPELINES} of {len(medians)} by median R²)"
    fig = Figure(figsize=(max(8.0, 0.6 * len(labels) + 4), 6.0), layout="constrained")
    axes = fig.subplots(1, 2)
    notes = []
    panels = (
        (axes[0], r2, "R²", "mean test R² per event", (R2_FLOOR, 1.0), (0.0,)),
        (axes[1], mse, "MSE", "mean test MSE per event", (0.0, None), ()),
    )
    for ax, frame, metric, name, bounds, include in panels:
        data = [frame.loc[(frame["pipeline"] == lab) & np.isfinite(frame["mean"]), "mean"].to_numpy() for lab in labels]
        kept = [(lab, d) for lab, d in zip(labels, data) if d.size]
        if kept:
            # box and whiskers from all events; only the axis is limited
            ax.boxplot([d for _, d in kept], showfliers=True, flierprops={"markersize": 3, "alpha": 0.4})
            ax.set_xticks(range(1, len(kept) + 1), [lab for lab, _ in kept], rotation=30, ha="right")
            clip = robust_limits(np.concatenate([d for _, d in kept]), bounds=bounds, include=include)
            mark_outside(ax, range(1, len(kept) + 1), [d for _, d in kept], clip)
            note = clip_note(clip, "(event, pipeline) values")
            if note:
                notes.append(f"{metric}: {note}")
        if include:
            ax.axhline(0.0, color="grey", linewidth=0.8, linestyle="--")
        ax.set_ylabel(name + (" (0 = predicting the mean PSI)" if include else ""))
        ax.set_xlabel("pipeline")
        ax.grid(axis="y", alpha=0.3)
    n_events = r2["event"].nunique()
    n_nan = int(r2.loc[~np.isfinite(r2["mean"]), "event"].nunique())
    caption = [f"box: median and quartiles over events; whiskers 1.5 IQR. Axes: 1st-99th percentile and the "
               f"tails near it (R² ≥ {R2_FLOOR:g}); ▼/▲ with a count = events of that box beyond the axis."]
    caption += notes
    if n_nan:
        caption.append(f"{n_nan} event(s) with NaN R² in some pipeline (constant test PSI) are left out of that box.")
    fig.suptitle(_heading(label, note, f"score distribution over {n_events} events per pipeline{shown}"))
    fig.supxlabel("\n".join(caption), fontsize=8, ha="left", x=0.01)
    return _save(fig, path)


def _preferred_kind(ranking: pd.DataFrame) -> pd.DataFrame:
    """Keep one importance kind per (event, pipeline): the first of KIND_PREFERENCE stored."""
    order = {k: i for i, k in enumerate(KIND_PREFERENCE)}
    ranking = ranking.assign(_pref=ranking["kind"].map(order).fillna(len(order)))
    first = ranking.groupby(["event", "pipeline"])["_pref"].transform("min")
    return ranking[ranking["_pref"] == first].drop(columns="_pref")


def well_predicted(r2: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``r2`` (event, pipeline, mean) with a mean test R² > 0: predicted better than the mean PSI."""
    values = r2["mean"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        return r2[np.isfinite(values) & (values > 0.0)]


def event_labels(results: StudyResults, events: list[str]) -> list[str]:
    """:func:`short_label` of each event with its position on the study's event axis."""
    position = {e: i for i, e in enumerate(results.events)}
    return [short_label(e, position.get(e)) for e in events]


def regulator_events(results: StudyResults, r2: pd.DataFrame,
                     n: int = HEATMAP_EVENTS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The events of the top-regulators heatmap and their importances.

    Up to ``n`` events with a mean test R² > 0, best first, each with its best pipeline
    among those with stored importances (columns event, pipeline, mean), and the
    importance rows of those (event, pipeline) pairs (one kind each, by KIND_PREFERENCE).
    """
    with_importance = r2[r2["pipeline"].isin(results.models_with_importance())]
    # pairs without rows (e.g. an event whose fits all failed) have no ranking: take a margin
    candidates = best_per_event(well_predicted(with_importance)).head(4 * n)
    ranking = _preferred_kind(results.feature_ranking(list(candidates["event"])))
    best = candidates.merge(ranking[["event", "pipeline"]].drop_duplicates(), on=["event", "pipeline"])
    return best.head(n), ranking


def top_regulators(results: StudyResults, r2: pd.DataFrame, path: Path) -> Path:
    title = "top regulators of the best-predicted events (mean test R² > 0)"
    with_importance = r2[r2["pipeline"].isin(results.models_with_importance())]
    if with_importance.empty:
        return _message(path, _title(results, title), "no feature importances are stored for this study")
    positive = well_predicted(with_importance)
    if positive.empty:
        return _message(
            path, _title(results, title),
            f"none of the {with_importance['event'].nunique()} events is predicted better than its mean PSI "
            "(every mean test R² ≤ 0 or NaN),\nso no feature stands out as its regulator",
        )
    best, ranking = regulator_events(results, r2)
    if best.empty:
        return _message(path, _title(results, title), "no event with a mean test R² > 0 has stored importances")
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
    fig = Figure(figsize=(max(7.0, 0.32 * len(features) + 5), max(4.5, 0.3 * len(best) + 3)), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(matrix.to_numpy(), aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(features)), features, rotation=60, ha="right", fontsize=8)
    names = event_labels(results, list(best["event"]))
    ylabels = [f"{n}  {p}  R²={v:.2f}" for n, p, v in zip(names, best["pipeline"], best["mean"])]
    ax.set_yticks(range(len(best)), ylabels, fontsize=8)
    ax.set_xlabel(f"feature (most often within the top {HEATMAP_TOP_RANK} of these events)")
    ax.set_ylabel("event (gene, type, #index in the study)  best pipeline  mean test R²")
    kinds = ", ".join(sorted(top["kind"].unique()))
    fig.colorbar(image, ax=ax, label=f"importance relative to the event's top feature ({kinds})")
    n_pos, n_all = positive["event"].nunique(), with_importance["event"].nunique()
    ax.set_title(_title(results, f"{title}\n{len(best)} best of the {n_pos} of {n_all} events with R² > 0"),
                 fontsize=10)
    return _save(fig, path)


def predicted_vs_true(results: StudyResults, r2: pd.DataFrame, path: Path) -> Path:
    from matplotlib import colormaps
    from matplotlib.lines import Line2D

    title = "predicted vs true PSI on the outer test folds, best-predicted events"
    best = best_per_event(r2).head(SCATTER_EVENTS)
    if best.empty:
        return _message(path, _title(results, title), "no event has a finite mean test R²")
    model_of = dict(zip(results.models["label"], results.models["model"]))
    position = {e: i for i, e in enumerate(results.events)}
    cols = min(3, len(best))
    rows = int(np.ceil(len(best) / cols))
    fig = Figure(figsize=(4.2 * cols, 4.0 * rows + 1.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    palette = colormaps["tab10"]
    splits_seen: set[int] = set()
    outside_total = 0
    for ax, (event, pipeline, value) in zip(axes, best[["event", "pipeline", "mean"]].itertuples(index=False)):
        y_true, y_pred, split = results.test_values(int(model_of[pipeline]), position[event])
        split = np.asarray(split, dtype=int)
        splits_seen.update(int(s) for s in np.unique(split))
        clip = robust_limits(np.concatenate([y_true, y_pred]), bounds=PSI_BOUNDS, include=(0.0, 1.0),
                             quantiles=(0.0, 1.0))
        inside = (y_pred >= clip.low) & (y_pred <= clip.high)
        colours = palette(split % 10)
        ax.scatter(y_true[inside], y_pred[inside], c=colours[inside], s=14, alpha=0.8)
        if (~inside).any():  # far-off predictions: hollow triangles at the edge
            outside_total += int((~inside).sum())
            ax.scatter(y_true[~inside], clip.clipped(y_pred[~inside]), marker="^", facecolors="none",
                       edgecolors=colours[~inside], s=30)
        ax.plot([clip.low, clip.high], [clip.low, clip.high], color="grey", linewidth=1, linestyle="--")
        ax.set_xlim(clip.low, clip.high)
        ax.set_ylim(clip.low, clip.high)
        out = int((~inside).sum())
        extra = f"; {out} prediction(s) beyond the axis, at its edge" if out else ""
        ax.set_title(f"{short_label(event, position[event])}\n{pipeline}, mean R² = {value:.3f}{extra}", fontsize=9)
        ax.set_xlabel("true PSI")
        ax.set_ylabel("predicted PSI")
    for ax in axes[len(best) :]:
        ax.set_axis_off()
    handles = [Line2D([], [], linestyle="", marker="o", color=palette(s % 10), label=f"outer split {s}")
               for s in sorted(splits_seen)]
    handles.append(Line2D([], [], color="grey", linestyle="--", label="predicted = true"))
    if outside_total:
        handles.append(Line2D([], [], linestyle="", marker="^", markerfacecolor="none", color="black",
                              label="beyond the axis (drawn at its edge)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
    fig.suptitle(_title(results, title))
    return _save(fig, path)


def write_default_figures(results: StudyResults, out_dir: Path) -> list[Path]:
    """Write the three default figures into ``out_dir``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    r2 = mean_scores(results, "sklearn.metrics.r2_score", score=True)
    mse = mean_scores(results, "sklearn.metrics.mean_squared_error", score=False)
    return [
        score_distribution(results.study, results.note, r2, mse, out_dir / "score_distribution.png"),
        top_regulators(results, r2, out_dir / "top_regulators.png"),
        predicted_vs_true(results, r2, out_dir / "predicted_vs_true.png"),
    ]


class DefaultFigures(SplicingReport):
    """The three default figures of every splicing study (see the module docstring).

    On several studies (the experiments of one regulAS name): the score distribution over
    the events of them all, per pipeline, as regulAS's performance plot aggregates over its
    experiments; each study's own three figures are written by its run.
    """

    name = "regulas.figures"

    def generate_group(self, ctx: ReportContext, inputs: Mapping[str, pd.DataFrame | None]) -> ReportOutput:
        r2s: list[pd.DataFrame] = []
        mses: list[pd.DataFrame] = []
        notes = []
        for results in members(ctx):
            for metric, score, out in (("sklearn.metrics.r2_score", True, r2s),
                                       ("sklearn.metrics.mean_squared_error", False, mses)):
                scores = mean_scores(results, metric, score=score)
                # events of different studies are different events, even with one name (regulAS's "psi")
                out.append(scores.assign(event=results.study + "/" + scores["event"].astype(str)))
            if results.note:
                notes.append(results.note)
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
        path = score_distribution(
            f"{ctx.study} ({len(ctx.group)} studies)", " ".join(dict.fromkeys(notes)),
            pd.concat(r2s, ignore_index=True), pd.concat(mses, ignore_index=True), ctx.out_dir / "score_distribution.png",
        )
        return ReportOutput(frame=None, files=[path], title="score distribution over the events of every study")

    def generate(
        self, results: StudyResults, inputs: Mapping[str, pd.DataFrame | None], out_dir: Path
    ) -> ReportOutput:
        return ReportOutput(frame=None, files=write_default_figures(results, out_dir), title="score distribution, top regulators, predicted vs true")
