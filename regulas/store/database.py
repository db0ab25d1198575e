"""Open ``regulas.db`` (the one way in: :func:`open_write` for the driver, :func:`open_read`
for everyone else), check and migrate its schema, and keep the study and task bookkeeping.

Every function but :func:`open_read` runs in the driver, the only process that writes the
database. Readers (``regulas status``, reports, users with ``pandas.read_sql``) may open
it at any time: WAL mode lets them read while the driver writes.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Engine, create_engine, delete, event, select, text, tuple_, update
from sqlalchemy.exc import DatabaseError

from regulas.core.errors import StoreError
from regulas.core.task import Task
from regulas.core.workload import Columns, Rows, WorkloadTables, rows_by_table
from regulas.store import schema
from regulas.store.inputs import FileState, InputCheck, compare_files, describe_change, fix_hint
from regulas.store.lease import Holder
from regulas.store.schema import SCHEMA_VERSION, study, study_input, study_lease, task
from regulas.store.sink import prepare_rows


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL is durable across application crashes in WAL mode (only an OS crash can
    # lose the last commits), which is the failure regulas must survive.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # 256 MiB of page cache: index pages of large result tables stay in memory while
    # the sink inserts (the default 2 MiB made inserts ~20% slower here).
    cursor.execute("PRAGMA cache_size=-262144")
    cursor.close()


def _migrate_3_to_4(conn: Any) -> None:
    """``score.is_nan`` -> ``score.value_is_nan``: every NaN flag is ``<column>_is_nan``."""
    columns = {r[1] for r in conn.exec_driver_sql("PRAGMA table_info(score)")}
    if "is_nan" in columns:
        conn.exec_driver_sql("ALTER TABLE score RENAME COLUMN is_nan TO value_is_nan")


def _migrate_4_to_5(conn: Any) -> None:
    """Additive: ``create_all`` adds ``study_input``. A study of a version-4 store has no
    recorded inputs; its next run records them as they are then."""


#: ``regulas_meta`` key: UNIX time at which a store made before schema 6 was upgraded. Its
#: done tasks that finished before then and have no ``task_chunk`` rows are "unverified"
#: (their chunks were written before digests existed), not damaged.
DIGESTS_SINCE = "chunk_digests_since"


def _migrate_5_to_6(conn: Any) -> None:
    """Additive: ``create_all`` adds ``task_chunk`` and ``study_lease``; the time of the upgrade
    is recorded, so that ``regulas verify`` tells the tasks done before it (no digests) from
    damaged ones. The next run of a study records its driver."""
    conn.exec_driver_sql(
        "INSERT OR IGNORE INTO regulas_meta (key, value) VALUES (?, ?)", (DIGESTS_SINCE, repr(time.time()))
    )


def _then(*steps: Callable[[Any], None]) -> Callable[[Any], None]:
    def upgrade(conn: Any) -> None:
        for step in steps:
            step(conn)

    return upgrade


#: older schema version -> what brings it to this one; ``create_all`` then adds the tables
#: it lacks (version 1 had no splicing tables at all, version 4 no ``study_input``, version 5
#: no ``task_chunk`` nor ``study_lease``). Version 2 stored splicing results by event name (3 by index): no migration.
UPGRADES: dict[int, Callable[[Any], None]] = {
    1: _then(_migrate_3_to_4, _migrate_5_to_6),
    3: _then(_migrate_3_to_4, _migrate_5_to_6),
    4: _then(_migrate_4_to_5, _migrate_5_to_6),
    5: _migrate_5_to_6,
}


def _sync_views(conn: Any, views: Mapping[str, str]) -> None:
    """Create the given views, replacing any whose SQL text changed (other views are left alone)."""
    found = dict(conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type='view'")).all())
    for name, select_sql in views.items():
        create = f"CREATE VIEW {name} AS {select_sql}"
        if found.get(name) == create:
            continue
        conn.execute(text(f"DROP VIEW IF EXISTS {name}"))
        conn.execute(text(create))


def _stored_version(conn: Any, db_path: Path) -> int | None:
    """The database's schema version; None for an empty file; refuses foreign and newer files."""
    has_meta = conn.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type='table' AND name='regulas_meta'"
    ).first()
    if not has_meta:
        other = conn.exec_driver_sql("SELECT count(*) FROM sqlite_master WHERE type='table'").scalar_one()
        if other:
            raise StoreError(f"{db_path} is an SQLite database but not a regulas one (no regulas_meta table)")
        return None
    row = conn.exec_driver_sql("SELECT value FROM regulas_meta WHERE key='schema_version'").first()
    found = int(row[0]) if row else 0
    if found > SCHEMA_VERSION:
        raise StoreError(
            f"{db_path} has schema version {found}, newer than this regulas understands "
            f"({SCHEMA_VERSION}); upgrade regulas-hpc or use another store.root"
        )
    return found


def _check_rows(tables: WorkloadTables) -> None:
    """Every typed rows class names a declared table and only its columns, and fills every
    column that is required (not null, no default, not the store's ids or NaN flags)."""
    declared = {t.name: t for t in tables.all}
    for rows in tables.rows:
        table = declared.get(rows.table)
        if table is None:
            raise StoreError(f"{rows.__name__} is for table {rows.table!r}, which the workload does not declare")
        columns = set(table.c.keys())
        fields = set(rows.column_names())
        flags = {c.info["nan_flag"] for c in table.c if "nan_flag" in c.info}
        required = {
            c.name for c in table.c
            if not c.nullable and c.server_default is None and c.name not in {"study_id", "task_id"} | flags
        }
        if fields - columns or required - fields:
            raise StoreError(
                f"{rows.__name__} does not match table {rows.table!r}: unknown {sorted(fields - columns)}, "
                f"missing {sorted(required - fields)}"
            )


def open_write(db_path: Path, tables: WorkloadTables | None = None) -> Engine:
    """The driver's engine on ``db_path``: the one way to open a store for writing.

    Creates the file and the store's tables when new, checks the schema version (refuses a
    newer one, migrates an older one in place), creates the workload's ``tables`` and (re)creates
    its views. Every connection gets WAL mode and the pragmas above.
    """
    db_path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{db_path}")
    event.listen(engine, "connect", _on_connect)
    tables = tables or WorkloadTables()
    _check_rows(tables)
    try:
        with engine.begin() as conn:
            # one write transaction from the first read on: pysqlite would otherwise commit each
            # CREATE TABLE on its own, and a second driver opening a new store at the same moment
            # could see regulas_meta without its version row ("schema version 0")
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            found = _stored_version(conn, db_path)
            if found is not None and found < SCHEMA_VERSION:
                if found not in UPGRADES:
                    raise StoreError(
                        f"{db_path} has schema version {found}, older than this regulas ({SCHEMA_VERSION}) "
                        "and no migration exists for it; use another store.root"
                    )
                UPGRADES[found](conn)
            schema.metadata.create_all(conn, tables=[*schema.CORE_TABLES, *tables.all])
            _sync_views(conn, tables.views)
            if found is None:
                conn.execute(schema.regulas_meta.insert(), [{"key": "schema_version", "value": str(SCHEMA_VERSION)}])
            elif found < SCHEMA_VERSION:
                conn.execute(
                    schema.regulas_meta.update()
                    .where(schema.regulas_meta.c.key == "schema_version")
                    .values(value=str(SCHEMA_VERSION))
                )
    except DatabaseError as exc:  # also "file is not a database"
        engine.dispose()
        raise StoreError(f"cannot open {db_path} as an SQLite database: {exc.orig}") from exc
    except BaseException:
        engine.dispose()
        raise
    return engine


def _read_only_connection(db_path: Path) -> sqlite3.Connection:
    uri = db_path.resolve().as_uri()
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError:
        # a WAL database in a folder we cannot write (a read-only copy or mount): SQLite
        # cannot create the -shm index, so read the file as immutable (committed pages only)
        conn.close()
        conn = sqlite3.connect(f"{uri}?immutable=1", uri=True)
    return conn


def open_read(db_path: Path) -> Engine:
    """A read-only engine on an existing store: the one way for status, reports and readers.

    Safe while a driver writes (WAL); works on a read-only copy. Refuses a missing file, a
    file that is not a regulas database and schema versions other than this regulas's
    (an older store is upgraded in place by the next ``regulas run`` of one of its studies).
    """
    if not db_path.is_file():
        raise StoreError(f"no regulas database at {db_path} (expected the database of a store.root)")
    engine = create_engine("sqlite://", creator=lambda: _read_only_connection(db_path))
    try:
        with engine.connect() as conn:
            found = _stored_version(conn, db_path)
    except DatabaseError as exc:
        engine.dispose()
        raise StoreError(f"cannot open {db_path} as an SQLite database: {exc.orig}") from exc
    except StoreError:
        engine.dispose()
        raise
    if found is None or found < SCHEMA_VERSION:
        engine.dispose()
        raise StoreError(
            f"{db_path} has schema version {found or 0}, older than this regulas ({SCHEMA_VERSION}); "
            "rerun `regulas run` on one of its study configs once to upgrade it in place"
        )
    return engine


@dataclass(frozen=True)
class StudyRecord:
    id: int
    name: str
    config_hash: str
    status: str
    resumed: bool


def open_study(
    engine: Engine,
    *,
    name: str,
    workload: str,
    config_yaml: str,
    config_hash: str,
    root_seed: int,
    package_versions: dict[str, str],
    describe_change: Callable[[str], str] | None = None,
) -> StudyRecord:
    """Create the study row, or reopen it for a resume when the config hash matches.

    A different hash is refused; ``describe_change(stored_config_yaml)`` says what differs
    (the result-relevant keys, old -> new), else the message shows the two hashes.
    """
    now = time.time()
    with engine.begin() as conn:
        row = conn.execute(select(study).where(study.c.name == name)).mappings().first()
        if row is None:
            result = conn.execute(
                study.insert().values(
                    name=name,
                    workload=workload,
                    config_yaml=config_yaml,
                    config_hash=config_hash,
                    root_seed=root_seed,
                    package_versions=json.dumps(package_versions, sort_keys=True),
                    host=socket.gethostname(),
                    started_at=now,
                    resumed_at=now,
                    status="running",
                )
            )
            study_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            return StudyRecord(study_id, name, config_hash, "running", resumed=False)
        if row["config_hash"] != config_hash:
            change = describe_change(row["config_yaml"]) if describe_change is not None else ""
            if not change:
                change = f"stored hash {row['config_hash'][:12]}, now {config_hash[:12]}"
            raise StoreError(
                f"study {name!r} already exists in this store with a different config ({change}); "
                "resume it with the same config, or pick another study.name or store.root"
            )
        conn.execute(
            update(study)
            .where(study.c.id == row["id"])
            .values(status="running", resumed_at=now, finished_at=None, runs=study.c.runs + 1)
        )
        return StudyRecord(int(row["id"]), name, config_hash, "running", resumed=True)


def finish_study(engine: Engine, study_id: int, status: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(study).where(study.c.id == study_id).values(status=status, finished_at=time.time()))
        # tasks submitted but never collected did not run to completion as far as we know
        conn.exec_driver_sql("UPDATE task SET status='pending' WHERE study_id=? AND status='running'", (study_id,))


def write_study_rows(engine: Engine, study_id: int, rows: Sequence[Rows] | Mapping[str, Columns]) -> None:
    """Write a study's rows in study-level tables (by the driver, before any task).

    Rows are upserted by primary key, never deleted and inserted again: task results
    reference them with ON DELETE CASCADE, so a delete on resume would wipe every result
    of the study. A resumed study describes the same models (the config hash guarantees
    it); a row whose key is no longer described is deleted, with whatever references it.
    """
    by_table = rows if isinstance(rows, Mapping) else rows_by_table(rows)
    allowed = schema.study_tables()
    with engine.begin() as conn:
        for name, cols in by_table.items():
            table = allowed.get(name)
            if table is None:
                raise StoreError(f"{name!r} is not a study-level table; allowed: {', '.join(sorted(allowed)) or 'none'}")
            prepared = prepare_rows(table, cols, study_id, None)
            keys = [c.name for c in table.primary_key.columns]
            stale = table.delete().where(table.c.study_id == study_id)
            if prepared.params:
                at = [prepared.columns.index(k) for k in keys]
                stale = stale.where(tuple_(*(table.c[k] for k in keys)).notin_([tuple(r[i] for i in at) for r in prepared.params]))
            conn.execute(stale)
            if prepared.params:
                update = ", ".join(f"{c} = excluded.{c}" for c in prepared.columns if c not in keys)
                conn.exec_driver_sql(
                    f"{prepared.sql} ON CONFLICT ({', '.join(keys)}) DO " + (f"UPDATE SET {update}" if update else "NOTHING"),
                    prepared.params,
                )


class TaskState(NamedTuple):
    """A task's row as the driver needs it to resume."""

    id: int
    status: str
    attempts: int


def register_tasks(engine: Engine, study_id: int, tasks: Sequence[Task]) -> dict[str, TaskState]:
    """Insert the plan's tasks that are new; return key -> its :class:`TaskState`.

    Tasks left ``running`` by a driver that died count as pending again: their results
    never reached the database, so nothing of theirs is lost by running them again.
    """
    with engine.begin() as conn:
        known = {
            r.key: (r.id, r.status, r.attempts)
            for r in conn.execute(
                select(task.c.key, task.c.id, task.c.status, task.c.attempts).where(task.c.study_id == study_id)
            )
        }
        new = [
            (study_id, t.key, t.kind, json.dumps(t.block, sort_keys=True), t.seed)
            for t in tasks
            if t.key not in known
        ]
        if new:
            conn.exec_driver_sql(
                "INSERT INTO task (study_id, key, kind, block, seed, status, attempts) VALUES (?, ?, ?, ?, ?, 'pending', 0)",
                new,
            )
        conn.exec_driver_sql(
            "UPDATE task SET status='pending' WHERE study_id=? AND status='running'", (study_id,)
        )
        rows = conn.execute(
            select(task.c.key, task.c.id, task.c.status, task.c.attempts).where(task.c.study_id == study_id)
        )
        return {r.key: TaskState(r.id, r.status, r.attempts) for r in rows}


def register_arrays(engine: Engine, study_id: int, arrays: Iterable[dict[str, Any]]) -> None:
    rows = [
        (
            study_id,
            a["name"],
            a["path"],
            json.dumps(list(a["shape"])),
            json.dumps(list(a["chunks"])),
            str(a["dtype"]),
            json.dumps(list(a["dims"])),
            a.get("description", ""),
        )
        for a in arrays
    ]
    if rows:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT OR REPLACE INTO zarr_array (study_id, name, path, shape, chunks, dtype, dims, description) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )


def check_pinned_inputs(
    engine: Engine,
    *,
    name: str,
    config_hash: str,
    files: Sequence[FileState],
    data_fingerprint: str | None,
    config: str,
) -> InputCheck | None:
    """Before a rerun writes anything: refuse it when an input file recorded at the study's
    first run changed content (or is gone), or when the data fingerprint differs.

    ``files``: the input files as found now (stat only; hashed here when needed). Returns
    None for a study that does not exist yet or whose config differs (:func:`open_study`
    says so); else what :func:`record_inputs` should update. Writes nothing.
    """
    with engine.connect() as conn:
        row = conn.execute(select(study.c.id, study.c.config_hash).where(study.c.name == name)).first()
        if row is None or row.config_hash != config_hash:
            return None
        recorded = conn.execute(select(study_input).where(study_input.c.study_id == row.id)).mappings().all()
    old_files = {r["path"]: FileState(r["path"], r["size"], r["mtime"], r["digest"]) for r in recorded if r["kind"] == "file"}
    old_data = next((r["digest"] for r in recorded if r["kind"] == "data"), None)
    found = compare_files(old_files, files)
    problems = [describe_change(old, new) for old, new in found.changed]
    if not problems and data_fingerprint is not None and old_data is not None and data_fingerprint != old_data:
        # the data changed in a way the file check cannot see (e.g. a folder input)
        problems.append(f"the input data (fingerprint {old_data[:12]} -> {data_fingerprint[:12]})")
    if problems:
        raise StoreError(
            f"study {name!r} was run on other inputs; changed since its first run: "
            + "; ".join(problems) + f". Its done tasks would be mixed with results of the new data; {fix_hint(config)}"
        )
    return found


def check_data_fingerprint(engine: Engine, study_id: int, data_fingerprint: str, *, name: str, config: str) -> None:
    """Refuse a study whose recorded data fingerprint differs from ``data_fingerprint``."""
    with engine.connect() as conn:
        old = conn.execute(
            select(study_input.c.digest).where(study_input.c.study_id == study_id, study_input.c.kind == "data")
        ).scalar_one_or_none()
    if old is not None and old != data_fingerprint:
        raise StoreError(
            f"study {name!r} was run on other inputs: the input data (fingerprint {old[:12]} -> {data_fingerprint[:12]}) "
            f"changed since its first run. Its done tasks would be mixed with results of the new data; {fix_hint(config)}"
        )


def record_inputs(engine: Engine, study_id: int, files: Iterable[FileState], data_fingerprint: str | None = None) -> None:
    """Record (or update) the study's input files, hashed, and its data fingerprint."""
    rows = [
        {"study_id": study_id, "kind": "file", "path": f.path, "size": f.size, "mtime": f.mtime, "digest": f.with_digest().sha256}
        for f in files
    ]
    if data_fingerprint is not None:
        rows.append({"study_id": study_id, "kind": "data", "path": "", "size": None, "mtime": None, "digest": data_fingerprint})
    if not rows:
        return
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO study_input (study_id, kind, path, size, mtime, digest) "
            "VALUES (:study_id, :kind, :path, :size, :mtime, :digest) "
            "ON CONFLICT (study_id, kind, path) DO UPDATE SET size = excluded.size, mtime = excluded.mtime, digest = excluded.digest",
            rows,
        )


def recorded_inputs(engine: Engine, study_id: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            select(study_input).where(study_input.c.study_id == study_id).order_by(study_input.c.kind, study_input.c.path)
        ).mappings()]


def delete_study(engine: Engine, name: str) -> bool:
    """Delete a study's rows: its tasks, results and every other row that references it
    (ON DELETE CASCADE). True when there was one."""
    with engine.begin() as conn:
        result = conn.execute(study.delete().where(study.c.name == name))
        return bool(result.rowcount)


def record_lease(engine: Engine, study_id: int, holder: Holder) -> None:
    """Record (or take over) the lease of a study in the database: the sink's commits are
    fenced by its token from now on (see :class:`regulas.store.sink.Sink`)."""
    values = {
        "token": holder.token,
        "host": holder.host,
        "pid": holder.pid,
        "slurm_job_id": holder.slurm_job_id,
        "acquired_at": holder.started_at,
        "heartbeat_at": time.time(),
        "released_at": None,
    }
    with engine.begin() as conn:
        conn.execute(delete(study_lease).where(study_lease.c.study_id == study_id))
        conn.execute(study_lease.insert().values(study_id=study_id, **values))


def release_lease(engine: Engine, study_id: int, token: str) -> None:
    """Mark the lease released, if this token still holds it."""
    with engine.begin() as conn:
        conn.execute(
            update(study_lease)
            .where(study_lease.c.study_id == study_id, study_lease.c.token == token, study_lease.c.released_at.is_(None))
            .values(released_at=time.time())
        )


def reopen_tasks(engine: Engine, study_id: int, keys: Iterable[str]) -> int:
    """Set done tasks back to pending and delete their result rows (they run again).

    Result rows are those of every table of the database with a ``task_id`` column, also
    of workloads whose tables this process did not register (``regulas verify`` knows no
    workload); the task's ``task_chunk`` rows stay until its next commit replaces them.
    """
    with engine.begin() as conn:
        return reopen_tasks_in(conn, study_id, keys)


def reopen_tasks_in(conn: Any, study_id: int, keys: Iterable[str]) -> int:
    """:func:`reopen_tasks` inside the caller's transaction ``conn``."""
    keys = list(keys)
    if not keys:
        return 0
    # keys and ids as one JSON parameter each: any number of them, whatever SQLite's variable limit
    ids = json.dumps([r[0] for r in conn.exec_driver_sql(
        "SELECT id FROM task WHERE study_id = ? AND status = 'done' AND key IN (SELECT value FROM json_each(?))",
        (study_id, json.dumps(keys)),
    )])
    for name in _task_tables(conn):
        conn.exec_driver_sql(f'DELETE FROM "{name}" WHERE task_id IN (SELECT value FROM json_each(?))', (ids,))
    return int(conn.exec_driver_sql(
        "UPDATE task SET status = 'pending' WHERE id IN (SELECT value FROM json_each(?))", (ids,)
    ).rowcount)


def _task_tables(conn: Any) -> list[str]:
    """The tables of task results in the database: every table with a ``task_id`` but ``task_chunk``."""
    names = [n for (n,) in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite%'")]
    return [
        n for n in names
        if n != schema.task_chunk.name and any(r[1] == "task_id" for r in conn.exec_driver_sql(f'PRAGMA table_info("{n}")'))
    ]


def recorded_chunk_sizes(engine: Engine, study_id: int) -> dict[tuple[str, str], int]:
    """(array, chunk key) -> the size recorded when the done task that wrote it was committed."""
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT c.array, c.chunk, c.size FROM task_chunk c JOIN task t ON t.id = c.task_id "
            "WHERE c.study_id = ? AND t.status = 'done'",
            (study_id,),
        )
        return {(a, k): int(n) for a, k, n in rows}
