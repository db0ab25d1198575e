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
SCHEMA_VERSION = 1

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

#: Result tables a workload may return rows for (tasks never name study/task ids).
RESULT_TABLES: dict[str, Table] = {"score": score}
