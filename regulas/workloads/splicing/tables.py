"""The splicing workload's tables and views in ``regulas.db``.

Result rows name their event and model by index (``splice_event``, ``splice_model``, both
filled once per study); the views ``performance`` and ``feature_ranking`` join the names
and are the stable interface for users and reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import (
    Column,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from regulas.core.workload import Rows, WorkloadTables
from regulas.store.schema import metadata, nan_float, study_ref, task_ref


def _event_result_columns() -> list[Column]:
    """The leading columns of a per-(event, model, outer split) result row."""
    return [
        study_ref(),
        task_ref(),
        Column("event", Integer, nullable=False, comment="index of the event in the study (splice_event)"),
        Column("model", Integer, nullable=False),
        Column("split", Integer, nullable=False, comment="outer split index"),
    ]


def _event_result_keys() -> list[ForeignKeyConstraint | Index]:
    """Foreign keys of a result row to its event and model, and the index its model key needs
    (the primary key, led by study_id and event, serves the event key)."""
    return [
        ForeignKeyConstraint(["study_id", "event"], ["splice_event.study_id", "splice_event.event"], ondelete="CASCADE"),
        ForeignKeyConstraint(["study_id", "model"], ["splice_model.study_id", "splice_model.model"], ondelete="CASCADE"),
        Index(None, "task_id"),
        Index(None, "study_id", "model"),
    ]


SPLICE_METRICS = ("mse", "mae", "r2", "pearson", "spearman")

# Result rows name their event by index, not by name: event names run to ~100 characters
# (gene:type:coordinates), and a WITHOUT ROWID table repeats its key in every index, so a
# name in the key tripled the size of splice_importance (GSE114922: 383 MB, most of it names).
splice_event = Table(
    "splice_event",
    metadata,
    study_ref(),
    Column("event", Integer, nullable=False, comment="index of the event in the study: the `event` axis of Zarr arrays"),
    Column("name", String(255), nullable=False, comment="the event's name (a target column of the dataset)"),
    PrimaryKeyConstraint("study_id", "event"),
    UniqueConstraint("study_id", "name"),
)

splice_model = Table(
    "splice_model",
    metadata,
    study_ref(),
    Column("model", Integer, nullable=False, comment="index of the model in the study: the `model` axis of Zarr arrays"),
    Column("pipeline", String(255), nullable=False, comment="pipeline name: its step names joined by '+'"),
    Column("candidate", Integer, nullable=False, comment="grid point in selection 'outer'; -1 when nested search chooses"),
    Column("params", Text, nullable=False, comment="JSON: the grid point (outer) or '{}' (nested)"),
    Column("label", String(512), nullable=False, comment="pipeline name, plus the grid point in selection 'outer'"),
    Column("identity", String(64), nullable=False, comment="hash of the steps, their parameters and the grid"),
    Column("steps", Text, nullable=False, comment="JSON list: name, class path, package version, get_params()"),
    Column("grid", Text, nullable=False, comment="JSON: hyper-parameter -> candidate values"),
    PrimaryKeyConstraint("study_id", "model"),
    UniqueConstraint("study_id", "label"),
)

splice_score = Table(
    "splice_score",
    metadata,
    *_event_result_columns(),
    Column("n_train", Integer, nullable=False, comment="training samples with a PSI value"),
    Column("n_test", Integer, nullable=False, comment="test samples with a PSI value"),
    *[c for m in SPLICE_METRICS for c in nan_float(m, f"{m} on the test samples")],
    Column("params", Text, nullable=False, comment="JSON: the hyper-parameters used (chosen by the inner search when nested)"),
    Column("fit_time_s", Float, nullable=False, comment="seconds to select and fit this event (shared work divided evenly)"),
    PrimaryKeyConstraint("study_id", "event", "model", "split"),
    *_event_result_keys(),
    sqlite_with_rowid=False,
)

splice_importance = Table(
    "splice_importance",
    metadata,
    *_event_result_columns(),
    Column("kind", String(32), nullable=False, comment="coef | feature_importances | permutation"),
    Column("rank", Integer, nullable=False, comment="1 = most important by |score| in this split"),
    Column("feature", String(255), nullable=False),
    *nan_float("score", "signed importance (coefficient, impurity importance or permutation mean)"),
    PrimaryKeyConstraint("study_id", "event", "model", "split", "kind", "rank"),
    *_event_result_keys(),
    sqlite_with_rowid=False,
)

_PERFORMANCE = " UNION ALL ".join(
    f"SELECT st.name AS study, e.name AS event, m.label AS pipeline, r.split AS split, '{metric}' AS metric, "
    f"r.{metric} AS value FROM splice_score r JOIN study st ON st.id = r.study_id "
    "JOIN splice_event e ON e.study_id = r.study_id AND e.event = r.event "
    "JOIN splice_model m ON m.study_id = r.study_id AND m.model = r.model"
    for metric in SPLICE_METRICS
)


#: Documented SQL views: name -> SELECT. (Re)created when their text changed; a view holds
#: no data, so changing one needs no migration.
VIEWS: dict[str, str] = {
    # performance: one row per (study, event, pipeline, outer split, metric); value NULL = NaN.
    "performance": _PERFORMANCE,
    # feature_ranking: importances aggregated over the outer splits of each (event, pipeline,
    # kind): score = mean over splits of |importance| (a feature outside a split's stored
    # top-k counts 0 there); rank 1 = most important.
    "feature_ranking": (
        "SELECT study, event, pipeline, kind, feature, "
        "ROW_NUMBER() OVER (PARTITION BY study, event, pipeline, kind ORDER BY score DESC, feature) AS rank, score "
        "FROM (SELECT st.name AS study, e.name AS event, m.label AS pipeline, i.kind AS kind, i.feature AS feature, "
        "SUM(ABS(i.score)) / n.splits AS score "
        "FROM splice_importance i "
        "JOIN (SELECT study_id, event, model, kind, COUNT(DISTINCT split) AS splits FROM splice_importance "
        "GROUP BY study_id, event, model, kind) n "
        "ON n.study_id = i.study_id AND n.event = i.event AND n.model = i.model AND n.kind = i.kind "
        "JOIN study st ON st.id = i.study_id "
        "JOIN splice_event e ON e.study_id = i.study_id AND e.event = i.event "
        "JOIN splice_model m ON m.study_id = i.study_id AND m.model = i.model "
        "GROUP BY i.study_id, i.event, i.model, i.kind, i.feature)"
    ),
}


@dataclass
class SpliceEventRows(Rows):
    table = "splice_event"
    event: Sequence[int]
    name: Sequence[str]


@dataclass
class SpliceModelRows(Rows):
    table = "splice_model"
    model: Sequence[int]
    pipeline: Sequence[str]
    candidate: Sequence[int]
    params: Sequence[str]
    label: Sequence[str]
    identity: Sequence[str]
    steps: Sequence[str]
    grid: Sequence[str]


@dataclass
class SpliceScoreRows(Rows):
    """Per (event, model, split): sizes, the metrics (NaN allowed), the chosen params and the fit time."""

    table = "splice_score"
    event: Sequence[int]
    model: Sequence[int]
    split: Sequence[int]
    n_train: Sequence[int]
    n_test: Sequence[int]
    mse: Sequence[float] | np.ndarray
    mae: Sequence[float] | np.ndarray
    r2: Sequence[float] | np.ndarray
    pearson: Sequence[float] | np.ndarray
    spearman: Sequence[float] | np.ndarray
    params: Sequence[str]
    fit_time_s: Sequence[float] | np.ndarray


@dataclass
class SpliceImportanceRows(Rows):
    """The top-k importances of each (event, model, split) and kind."""

    table = "splice_importance"
    event: Sequence[int]
    model: Sequence[int]
    split: Sequence[int]
    kind: Sequence[str]
    rank: Sequence[int]
    feature: Sequence[str]
    score: Sequence[float] | np.ndarray


SPLICING_TABLES = WorkloadTables(
    results=(splice_score, splice_importance),
    study=(splice_event, splice_model),
    views=VIEWS,
    rows=(SpliceEventRows, SpliceModelRows, SpliceScoreRows, SpliceImportanceRows),
)
