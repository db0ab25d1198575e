"""The store's own tables of ``regulas.db`` (SQLAlchemy 2 Core), and the helpers workloads
build their tables with.

The store owns ``regulas_meta``, ``study``, ``task``, ``zarr_array``, ``study_input``, ``study_lease`` and ``task_chunk``. A workload defines
its result tables on the same :data:`metadata` (so their foreign keys to ``study`` and
``task`` resolve) with :func:`study_ref`, :func:`task_ref` and :func:`nan_float`, and
declares them in its ``tables`` (:class:`regulas.core.workload.WorkloadTables`); the
store creates them when a study of that workload opens the database.

Conventions (after mlflow's SQL store): every constraint and index has a name; every
foreign key is indexed; a float that may be NaN is stored as ``<name>`` (NULL when NaN)
beside an explicit ``<name>_is_nan`` flag, because SQLite turns NaN into NULL and NULL
alone cannot tell "not a number" from "not measured". The column's ``info["nan_flag"]``
names its flag; the sink writes both and :func:`regulas.store.reading.read_frame` turns
them back into NaN.

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

#: Bump when a table changes; a database newer than the code is refused. 4: the NaN flag of
#: ``score.value`` is ``value_is_nan`` like every other (was ``is_nan``). 5: ``study_input``
#: pins the input files and data fingerprint of each study. 6: ``task_chunk`` records the
#: size and digest of every chunk (shard) file a done task wrote; ``study_lease`` records the
#: driver that holds each study, and fences its commits.
SCHEMA_VERSION = 6

STUDY_STATUSES = ("running", "done", "failed", "interrupted")
INPUT_KINDS = ("file", "data")
TASK_STATUSES = ("pending", "running", "done", "failed")
#: what ``regulas verify`` found wrong with a recorded chunk file
CHUNK_PROBLEMS = ("missing", "mismatch", "undecodable")

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

study_input = Table(
    "study_input",
    metadata,
    Column("id", Integer, nullable=False),
    Column("study_id", Integer, ForeignKey("study.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(8), nullable=False, comment="file: an input file the config names; data: the workload's data fingerprint"),
    Column("path", Text, nullable=False, comment="absolute path of the file; '' for kind data"),
    Column("size", Integer, nullable=True, comment="bytes at the first run (file)"),
    Column("mtime", Float, nullable=True, comment="UNIX modification time at the first run, or when last verified (file)"),
    Column("digest", String(128), nullable=False, comment="sha256 of the file's content, or the data fingerprint"),
    PrimaryKeyConstraint("id"),
    UniqueConstraint("study_id", "kind", "path"),
    CheckConstraint(f"kind IN {INPUT_KINDS}", name="kind"),
    Index(None, "study_id"),
)

study_lease = Table(
    "study_lease",
    metadata,
    Column("study_id", Integer, ForeignKey("study.id", ondelete="CASCADE"), nullable=False),
    Column("token", String(32), nullable=False, comment="the token of the lease file <store.root>/leases/<study>.lease"),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("slurm_job_id", String(64), nullable=True),
    Column("acquired_at", Float, nullable=False, comment="UNIX time the driver took the lease"),
    Column("heartbeat_at", Float, nullable=False, comment="UNIX time of the driver's latest commit or heartbeat"),
    Column("released_at", Float, nullable=True, comment="UNIX time the run ended; NULL while it holds the lease"),
    # the driver's every commit updates this row only while its token is the one here, so a
    # driver whose lease was taken over (frozen past execution.lease_timeout_s) cannot write
    PrimaryKeyConstraint("study_id"),
)

task_chunk = Table(
    "task_chunk",
    metadata,
    Column("id", Integer, nullable=False),
    Column("study_id", Integer, ForeignKey("study.id", ondelete="CASCADE"), nullable=False),
    Column("task_id", Integer, ForeignKey("task.id", ondelete="CASCADE"), nullable=False, comment="the task that wrote it"),
    Column("array", String(255), nullable=False, comment="zarr_array.name"),
    Column("chunk", String(255), nullable=False, comment="the chunk (shard) key inside the array, e.g. c/2/0/3"),
    Column("size", Integer, nullable=False, comment="bytes of the file when its task was committed"),
    Column("sha256", String(64), nullable=False, comment="sha256 of the file's bytes when its task was committed"),
    Column("checked_at", Float, nullable=True, comment="UNIX time of the latest `regulas verify` that read it"),
    Column("problem", String(16), nullable=True, comment="what that verify found wrong (NULL: nothing)"),
    PrimaryKeyConstraint("id"),
    UniqueConstraint("study_id", "array", "chunk"),
    CheckConstraint(f"problem IN {CHUNK_PROBLEMS}", name="problem"),
    CheckConstraint("size >= 0", name="size"),
    Index(None, "study_id"),
    Index(None, "task_id"),
)


#: suffix of the flag column beside a float that may be NaN
NAN_FLAG_SUFFIX = "_is_nan"


def study_ref() -> Column:
    """``study_id``: the study a row belongs to (every workload table starts with it)."""
    return Column("study_id", Integer, ForeignKey("study.id", ondelete="CASCADE"), nullable=False)


def task_ref() -> Column:
    """``task_id``: the task whose result a row is (index it: ``Index(None, "task_id")``)."""
    return Column("task_id", Integer, ForeignKey("task.id", ondelete="CASCADE"), nullable=False)


def nan_float(name: str, comment: str = "") -> list[Column]:
    """A float column that may be NaN, and its explicit flag column ``<name>_is_nan``."""
    flag = f"{name}{NAN_FLAG_SUFFIX}"
    return [
        Column(name, Float, nullable=True, info={"nan_flag": flag}, comment=comment or None),
        Column(flag, Boolean, nullable=False),
    ]


#: the store's own tables; workloads' tables are created from their declarations
CORE_TABLES = (regulas_meta, study, task, zarr_array, study_input, study_lease, task_chunk)


def study_tables() -> dict[str, Table]:
    """Workload tables filled once per study: defined on the store's metadata, no ``task_id``."""
    return {
        name: t for name, t in metadata.tables.items()
        if t not in CORE_TABLES and "study_id" in t.c and "task_id" not in t.c
    }


def result_tables() -> dict[str, Table]:
    """Workload tables of task results: defined on the store's metadata, with a ``task_id``."""
    return {name: t for name, t in metadata.tables.items() if t not in CORE_TABLES and "task_id" in t.c}
