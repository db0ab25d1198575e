"""Open ``regulas.db``: create or check the schema, WAL mode, study and task bookkeeping.

Every function here runs in the driver, the only process that writes the database.
Readers (``regulas status``, reports, users with ``pandas.read_sql``) may open it at
any time: WAL mode lets them read while the driver writes.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, select, text, tuple_, update
from sqlalchemy.exc import DatabaseError

from regulas.errors import StoreError
from regulas.store import schema
from regulas.store.schema import SCHEMA_VERSION, study, task
from regulas.store.sink import Columns, prepare_rows


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


#: Older schema versions that only lack tables and views (``create_all`` adds them).
ADDITIVE_UPGRADES = frozenset({1})


def _sync_views(conn: Any) -> None:
    """Create the documented views, replacing any whose SQL text changed."""
    found = dict(conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type='view'")).all())
    for name, select_sql in schema.VIEWS.items():
        create = f"CREATE VIEW {name} AS {select_sql}"
        if found.get(name) == create:
            continue
        conn.execute(text(f"DROP VIEW IF EXISTS {name}"))
        conn.execute(text(create))


def connect(db_path: Path, *, create: bool = True) -> Engine:
    """Engine for ``db_path``; creates the schema in a new file, refuses a newer one."""
    if not create and not db_path.is_file():
        raise StoreError(f"no regulas database at {db_path} (expected the store.root of a study)")
    db_path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{db_path}")
    event.listen(engine, "connect", _on_connect)
    try:
        with engine.begin() as conn:
            has_meta = conn.execute(
                text("SELECT name FROM sqlite_master WHERE type='table' AND name='regulas_meta'")
            ).first()
            if has_meta:
                row = conn.execute(
                    select(schema.regulas_meta.c.value).where(schema.regulas_meta.c.key == "schema_version")
                ).first()
                found = int(row[0]) if row else 0
                if found > SCHEMA_VERSION:
                    raise StoreError(
                        f"{db_path} has schema version {found}, newer than this regulas understands "
                        f"({SCHEMA_VERSION}); upgrade regulas-hpc or use another store.root"
                    )
                if found < SCHEMA_VERSION and found not in ADDITIVE_UPGRADES:
                    raise StoreError(
                        f"{db_path} has schema version {found}, older than this regulas ({SCHEMA_VERSION}) "
                        "and no migration exists for it; use another store.root"
                    )
            elif create:
                other = conn.execute(text("SELECT count(*) FROM sqlite_master WHERE type='table'")).scalar_one()
                if other:
                    raise StoreError(f"{db_path} is an SQLite database but not a regulas one (no regulas_meta table)")
            schema.metadata.create_all(conn)
            _sync_views(conn)
            if not has_meta:
                conn.execute(
                    schema.regulas_meta.insert(), [{"key": "schema_version", "value": str(SCHEMA_VERSION)}]
                )
            elif found < SCHEMA_VERSION:  # an additive upgrade: create_all added the new tables
                conn.execute(
                    schema.regulas_meta.update()
                    .where(schema.regulas_meta.c.key == "schema_version")
                    .values(value=str(SCHEMA_VERSION))
                )
    except DatabaseError as exc:  # also "file is not a database"
        raise StoreError(f"cannot open {db_path} as an SQLite database: {exc.orig}") from exc
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
) -> StudyRecord:
    """Create the study row, or reopen it for a resume when the config hash matches."""
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
            raise StoreError(
                f"study {name!r} already exists in this store with a different config "
                f"(stored hash {row['config_hash'][:12]}, now {config_hash[:12]}); "
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


def write_study_rows(engine: Engine, study_id: int, rows: Mapping[str, Columns]) -> None:
    """Write a study's rows in study-level tables (by the driver, before any task).

    Rows are upserted by primary key, never deleted and inserted again: task results
    reference them with ON DELETE CASCADE, so a delete on resume would wipe every result
    of the study. A resumed study describes the same models (the config hash guarantees
    it); a row whose key is no longer described is deleted, with whatever references it.
    """
    with engine.begin() as conn:
        for name, cols in rows.items():
            table = schema.STUDY_TABLES.get(name)
            if table is None:
                raise StoreError(f"{name!r} is not a study-level table; allowed: {', '.join(schema.STUDY_TABLES)}")
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


def register_tasks(engine: Engine, study_id: int, tasks: Sequence[Any]) -> dict[str, tuple[int, str, int]]:
    """Insert the plan's tasks that are new; return key -> (task id, status, attempts).

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
        return {r.key: (r.id, r.status, r.attempts) for r in rows}


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
