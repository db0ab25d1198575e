"""The single writer: task outcomes into ``regulas.db`` in batched transactions.

A task's result rows and its ``done`` mark are committed in the same transaction, so a
driver killed at any moment leaves each task either fully recorded or not at all.
Rows arrive column-wise (``{column: sequence}``) and go in through the DB-API driver's
``executemany``: measured here that is 4-5x faster than SQLAlchemy Core inserts of
lists of dicts, and the sink is on the critical path of every study.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Engine, Table

from regulas.core.errors import LeaseLost, StoreError
from regulas.core.workload import Columns
from regulas.store.schema import result_tables

#: what a task's rows can provoke: a broken constraint, an unknown table or column, a bad value
_ROW_ERRORS = (sqlite3.IntegrityError, StoreError, ValueError, TypeError)


@dataclass
class TaskOutcome:
    """What a worker sends back for one task: small summaries, never big arrays."""

    key: str
    status: str  # "done" | "failed"
    started_at: float
    finished_at: float
    worker: str
    rows: dict[str, Columns] = field(default_factory=dict)
    #: (array, chunk key, size, sha256) of each chunk file the task wrote (``task_chunk``)
    chunks: list[tuple[str, str, int, str]] = field(default_factory=list)
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    attempts: int = 1  # tries it stands for: 1 + its runs cancelled over their time limit before it

    @property
    def n_rows(self) -> int:
        return sum(_n_rows(cols) for cols in self.rows.values())


def _n_rows(cols: Columns) -> int:
    return len(next(iter(cols.values()))) if cols else 0


@dataclass
class _Prepared:
    sql: str
    params: list[tuple[Any, ...]]
    columns: list[str]


def _as_list(values: Sequence[Any] | np.ndarray) -> list[Any]:
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


def prepare_rows(table: Table, cols: Columns, study_id: int, task_id: int | None) -> _Prepared:
    """Column-wise rows -> one INSERT and its parameter tuples, NaN made explicit.

    ``task_id`` None: a study-level table without a task column.
    """
    unknown = set(cols) - set(table.c.keys())
    if unknown:
        raise StoreError(f"table {table.name!r} has no column(s) {sorted(unknown)}")
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        raise StoreError(f"rows for table {table.name!r} have columns of different lengths {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    names: list[str] = ["study_id"]
    columns: list[list[Any]] = [[study_id] * n]
    if task_id is not None:
        names.append("task_id")
        columns.append([task_id] * n)
    for name, values in cols.items():
        flag = table.c[name].info.get("nan_flag")
        if flag is None:
            names.append(name)
            columns.append(_as_list(values))
            continue
        arr = np.asarray(values, dtype=float)
        nan = np.isnan(arr)
        listed = arr.tolist()
        for i in np.flatnonzero(nan).tolist():
            listed[i] = None
        names += [name, flag]
        columns += [listed, nan.tolist()]
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    return _Prepared(sql, list(zip(*columns)), names)


#: a done task's chunk digests; a task computed again replaces those of its earlier run
CHUNK_UPSERT = (
    "INSERT INTO task_chunk (study_id, task_id, array, chunk, size, sha256) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (study_id, array, chunk) DO UPDATE SET task_id = excluded.task_id, size = excluded.size, "
    "sha256 = excluded.sha256, checked_at = NULL, problem = NULL"
)


class Sink:
    """Buffers outcomes and commits them together; the only writer of result rows.

    Parameters
    ----------
    engine : the study database.
    study_id : the study the rows belong to.
    task_ids : task key -> task id, from the plan registration.
    commit_every_s, commit_every_rows : flush when either is reached.
    """

    def __init__(
        self,
        engine: Engine,
        study_id: int,
        task_ids: Mapping[str, int],
        *,
        commit_every_s: float = 1.0,
        commit_every_rows: int = 200_000,
        tables: Mapping[str, Table] | None = None,
        lease_token: str | None = None,
    ) -> None:
        self._conn = engine.raw_connection()
        self.lease_token = lease_token
        self.study_id = study_id
        self.task_ids = dict(task_ids)
        self.commit_every_s = commit_every_s
        self.commit_every_rows = commit_every_rows
        if tables is None:
            tables = result_tables()
        self.tables = dict(tables)
        self._buffer: list[TaskOutcome] = []
        self._submitted: list[tuple[float, int]] = []
        self._buffered_rows = 0
        self._last_commit = time.monotonic()
        self.rows_written = 0
        self.done = 0
        self.failed = 0
        self.reconciled = 0  # outcomes of tasks another driver had completed: dropped
        self.write_s = 0.0  # time spent writing into the database (the single writer's load)

    def submitted(self, key: str) -> None:
        """Note that a task went to the cluster; written with the next commit."""
        self._submitted.append((time.time(), self.task_ids[key]))

    def add(self, outcome: TaskOutcome) -> None:
        self._buffer.append(outcome)
        self._buffered_rows += outcome.n_rows
        if (
            self._buffered_rows >= self.commit_every_rows
            or time.monotonic() - self._last_commit >= self.commit_every_s
        ):
            self.flush()

    def flush(self) -> None:
        batch, self._buffer, self._buffered_rows = self._buffer, [], 0
        started = time.perf_counter()
        try:
            self._write(batch)
        except _ROW_ERRORS:
            # One bad task must not take its batch-mates down: retry them one by one
            # and record the offender as failed with what was wrong with its rows.
            for outcome in batch:
                try:
                    self._write([outcome])
                except _ROW_ERRORS as exc:
                    self._write([_as_failure(outcome, exc)])
        finally:
            self.write_s += time.perf_counter() - started
        self._last_commit = time.monotonic()

    def _write(self, batch: list[TaskOutcome]) -> None:
        submitted, self._submitted = self._submitted, []
        if not batch and not submitted:
            return
        cur = self._conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")  # the write lock first: the fence and the writes see one state
            self._check_fence(cur)
            cur.executemany("UPDATE task SET status='running', submitted_at=? WHERE id=?", submitted)
            # a task another driver completed stays as that driver recorded it: never doubled, never failed
            done_elsewhere = self._done_already(cur, batch)
            batch = [o for o in batch if self.task_ids[o.key] not in done_elsewhere]
            n_rows = 0
            for outcome in batch:
                task_id = self.task_ids[outcome.key]
                for table_name, cols in outcome.rows.items():
                    table = self.tables.get(table_name)
                    if table is None:
                        raise StoreError(f"unknown result table {table_name!r}; known: {sorted(self.tables)}")
                    prepared = prepare_rows(table, cols, self.study_id, task_id)
                    cur.executemany(prepared.sql, prepared.params)
                    n_rows += len(prepared.params)
            cur.executemany(CHUNK_UPSERT, [
                (self.study_id, self.task_ids[o.key], *chunk) for o in batch if o.status == "done" for chunk in o.chunks
            ])
            cur.executemany(
                "UPDATE task SET status=?, attempts=attempts+?, started_at=?, finished_at=?, duration_s=?, "
                "worker=?, error_type=?, error_message=?, traceback=? WHERE id=?",
                [
                    (
                        o.status,
                        o.attempts,
                        o.started_at,
                        o.finished_at,
                        o.finished_at - o.started_at,
                        o.worker,
                        o.error_type,
                        o.error_message,
                        o.traceback,
                        self.task_ids[o.key],
                    )
                    for o in batch
                ],
            )
            self._conn.commit()
        except BaseException:
            self._conn.rollback()
            self._submitted = submitted + self._submitted
            raise
        finally:
            cur.close()
        self.rows_written += n_rows
        self.reconciled += len(done_elsewhere)
        self.done += sum(o.status == "done" for o in batch)
        self.failed += sum(o.status != "done" for o in batch)

    def _check_fence(self, cur: Any) -> None:
        """Refresh this driver's lease row; :class:`LeaseLost` when another driver holds it now."""
        if self.lease_token is None:
            return
        cur.execute(
            "UPDATE study_lease SET heartbeat_at=? WHERE study_id=? AND token=? AND released_at IS NULL",
            (time.time(), self.study_id, self.lease_token),
        )
        if cur.rowcount == 1:
            return
        row = cur.execute("SELECT host, pid, slurm_job_id, acquired_at FROM study_lease WHERE study_id=?", (self.study_id,)).fetchone()
        who = "no driver" if row is None else f"pid {row[1]} on {row[0]}" + (f" (SLURM job {row[2]})" if row[2] else "") + (
            " since " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row[3])))
        raise LeaseLost(
            f"this driver lost the lease of its study to {who} (its heartbeat was older than execution.lease_timeout_s, "
            "e.g. the driver was stopped or cut off); it stops without writing: the tasks it did not commit are run by the other driver"
        )

    def _done_already(self, cur: Any, batch: list[TaskOutcome]) -> set[int]:
        ids = [self.task_ids[o.key] for o in batch]
        if not ids:
            return set()
        marks = ",".join("?" * len(ids))
        return {r[0] for r in cur.execute(f"SELECT id FROM task WHERE status='done' AND id IN ({marks})", ids)}

    def discard(self) -> None:
        """Drop what is buffered and close, writing nothing (the study is another driver's now)."""
        self._buffer, self._submitted, self._buffered_rows = [], [], 0
        self._conn.close()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._conn.close()


def _as_failure(outcome: TaskOutcome, exc: Exception) -> TaskOutcome:
    return TaskOutcome(
        key=outcome.key,
        status="failed",
        started_at=outcome.started_at,
        finished_at=outcome.finished_at,
        worker=outcome.worker,
        error_type=f"{type(exc).__module__}.{type(exc).__name__}",
        error_message=f"its result rows were refused by the database: {exc}",
        traceback=None,
    )
