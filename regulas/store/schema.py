"""The SQLite schema of ``regulas.db`` (SQLAlchemy 2 Core), in one place.

Conventions (after mlflow's SQL store): every constraint and index has a name; every
foreign key is indexed; a float that may be NaN is stored as ``value`` (NULL when NaN)
beside an explicit ``is_nan`` flag, because SQLite turns NaN into NULL and NULL alone
cannot tell "not a number" from "not measured".

Only the driver writes this database (see :mod:`regulas.store.sink`).
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

#: Bump when a table changes; a database newer than the code is refused.
SCHEMA_VERSION = 3

STUDY_STATUSES = ("running", "done", "failed", "interrupted")
TASK_STATUSES = ("pending", "running", "done", "failed")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

regulas_meta = Table(
    "regulas_meta",
    metadata,
    Column("key", String(64), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("key"),
)

study = Table(
    "study",
    metadata,
    Column("id", Integer, nullable=False),
    Column("name", String(128), nullable=False),
    Column("workload", String(64), nullable=False),
    Column("config_yaml", Text, nullable=False),
    Column("config_hash", String(64), nullable=False, comment="hash of the result-relevant config"),
    Column("root_seed", Integer, nullable=False),
    Column("package_versions", Text, nullable=False, comment="JSON: package -> version"),
    Column("host", String(255), nullable=False),
    Column("started_at", Float, nullable=False, comment="UNIX time of the first run"),
    Column("resumed_at", Float, nullable=True, comment="UNIX time of the latest run"),
    Column("finished_at", Float, nullable=True),
    Column("runs", Integer, nullable=False, server_default="1"),
    Column("status", String(16), nullable=False),
    PrimaryKeyConstraint("id"),
    UniqueConstraint("name"),
    CheckConstraint(f"status IN {STUDY_STATUSES}", name="status"),
)

task = Table(
    "task",
    metadata,
    Column("id", Integer, nullable=False),
    Column("study_id", Integer, ForeignKey("study.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(64), nullable=False, comment="hash of everything that determines the result"),
    Column("kind", String(64), nullable=False),
    Column("block", Text, nullable=False, comment="JSON description of the block of work"),
    Column("seed", Integer, nullable=False, comment="derived from study.root_seed and the task identity"),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("submitted_at", Float, nullable=True),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("duration_s", Float, nullable=True),
    Column("worker", String(255), nullable=True),
    Column("error_type", String(255), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("traceback", Text, nullable=True),
    PrimaryKeyConstraint("id"),
    UniqueConstraint("key"),
    CheckConstraint(f"status IN {TASK_STATUSES}", name="status"),
    CheckConstraint("attempts >= 0", name="attempts"),
    Index(None, "study_id"),
    Index(None, "study_id", "status"),
)

zarr_array = Table(
    "zarr_array",
    metadata,
    Column("id", Integer, nullable=False),
    Column("study_id", Integer, ForeignKey("study.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("path", Text, nullable=False, comment="path inside the Zarr store"),
    Column("shape", Text, nullable=False, comment="JSON list"),
    Column("chunks", Text, nullable=False, comment="JSON list: the unit a task owns"),
    Column("dtype", String(32), nullable=False),
    Column("dims", Text, nullable=False, comment="JSON list of dimension names"),
    Column("description", Text, nullable=False, server_default=""),
    PrimaryKeyConstraint("id"),
    UniqueConstraint("study_id", "name"),
    Index(None, "study_id"),
)

score = Table(
    "score",
    metadata,
    Column("study_id", Integer, ForeignKey("study.id", ondelete="CASCADE"), nullable=False),
    Column("task_id", Integer, ForeignKey("task.id", ondelete="CASCADE"), nullable=False),
    Column("target", String(255), nullable=False, comment="what was predicted: an event, a gene, a cell"),
    Column("method", String(255), nullable=False, comment="pipeline or estimator name"),
    Column("split", Integer, nullable=False, comment="outer split (or replicate) index"),
    Column("metric", String(64), nullable=False),
    Column("value", Float, nullable=True, info={"nan_flag": "is_nan"}),
    Column("is_nan", Boolean, nullable=False),
    # The natural key is the primary key of a WITHOUT ROWID table: one B-tree instead
    # of a rowid table plus a unique index (measured 1.2x more rows/s in the sink).
    PrimaryKeyConstraint("study_id", "target", "method", "split", "metric"),
    Index(None, "task_id"),
    sqlite_with_rowid=False,
)


def _nan_float(name: str, comment: str) -> list[Column]:
    """A float column that may be NaN, and its explicit flag column ``<name>_is_nan``."""
    return [
        Column(name, Float, nullable=True, info={"nan_flag": f"{name}_is_nan"}, comment=comment),
        Column(f"{name}_is_nan", Boolean, nullable=False),
    ]


# --- splicing (regulAS) workload -------------------------------------------------


def _event_result_columns() -> list[Column]:
    """The leading columns of a per-(event, model, outer split) result row."""
    return [
        Column("study_id", Integer, ForeignKey("study.id", ondelete="CASCADE"), nullable=False),
        Column("task_id", Integer, ForeignKey("task.id", ondelete="CASCADE"), nullable=False),
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
    Column("study_id", Integer, ForeignKey("study.id", ondelete="CASCADE"), nullable=False),
    Column("event", Integer, nullable=False, comment="index of the event in the study: the `event` axis of Zarr arrays"),
    Column("name", String(255), nullable=False, comment="the event's name (a target column of the dataset)"),
    PrimaryKeyConstraint("study_id", "event"),
    UniqueConstraint("study_id", "name"),
)

splice_model = Table(
    "splice_model",
    metadata,
    Column("study_id", Integer, ForeignKey("study.id", ondelete="CASCADE"), nullable=False),
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
    *[c for m in SPLICE_METRICS for c in _nan_float(m, f"{m} on the test samples")],
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
    *_nan_float("score", "signed importance (coefficient, impurity importance or permutation mean)"),
    PrimaryKeyConstraint("study_id", "event", "model", "split", "kind", "rank"),
    *_event_result_keys(),
    sqlite_with_rowid=False,
)

# --- motif-activity (regNet) workload ---------------------------------------------

sim_score = Table(
    "sim_score",
    metadata,
    Column("study_id", Integer, ForeignKey("study.id", ondelete="CASCADE"), nullable=False),
    Column("task_id", Integer, ForeignKey("task.id", ondelete="CASCADE"), nullable=False),
    Column("cell", String(255), nullable=False, comment="label of the grid cell"),
    Column("replicate", Integer, nullable=False),
    Column("genes", Integer, nullable=False, comment="G"),
    Column("conditions", Integer, nullable=False, comment="P"),
    Column("motifs", Integer, nullable=False, comment="T"),
    Column("V", String(64), nullable=False, comment="signal covariance structure between conditions"),
    Column("Sigma", String(64), nullable=False, comment="noise covariance structure"),
    Column("noise_fraction", Float, nullable=False),
    Column("fraction", Float, nullable=False, comment="signal fraction f"),
    Column("method", String(64), nullable=False),
    Column("metric", String(64), nullable=False),
    *_nan_float("value", "the metric's value"),
    PrimaryKeyConstraint("study_id", "cell", "replicate", "method", "metric"),
    Index(None, "task_id"),
    sqlite_with_rowid=False,
)

#: Result tables a workload may return rows for (tasks never name study/task ids).
RESULT_TABLES: dict[str, Table] = {
    "score": score,
    "splice_score": splice_score,
    "splice_importance": splice_importance,
    "sim_score": sim_score,
}

#: Tables a workload fills once per study, before any task (``Workload.study_rows``).
STUDY_TABLES: dict[str, Table] = {"splice_event": splice_event, "splice_model": splice_model}

_PERFORMANCE = " UNION ALL ".join(
    f"SELECT st.name AS study, e.name AS event, m.label AS pipeline, r.split AS split, '{metric}' AS metric, "
    f"r.{metric} AS value FROM splice_score r JOIN study st ON st.id = r.study_id "
    "JOIN splice_event e ON e.study_id = r.study_id AND e.event = r.event "
    "JOIN splice_model m ON m.study_id = r.study_id AND m.model = r.model"
    for metric in SPLICE_METRICS
)

#: Documented SQL views, the stable interface for users and reports: name -> SELECT.
#: (Re)created on every connect when their text changed; a view holds no data, so
#: changing one needs no migration.
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
    # sim_result: one row per (study, grid cell, replicate, method, metric) of a regNet study.
    "sim_result": (
        "SELECT st.name AS study, r.replicate, r.genes, r.conditions, r.motifs, r.V, r.Sigma, r.noise_fraction, "
        "r.fraction, r.method, r.metric, r.value, r.cell FROM sim_score r JOIN study st ON st.id = r.study_id"
    ),
}
