"""The result store on disk: a real SQLite file and real Zarr arrays in tmp_path, no mocks.

Covers the schema (WAL, indexed foreign keys, named constraints), version refusal,
explicit NaN, one-transaction-per-task atomicity in the sink, task registration on a
resume, Zarr chunk ownership (and why it exists), and deterministic task keys/seeds.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy.exc
import zarr
from sqlalchemy import Engine

from conftest import open_all
from regulas.core.errors import OwnershipError, StoreError
from regulas.core.task import Task, derive_seed, make_task
from regulas.store import schema
from regulas.store.arrays import ArraySpec, Region, RegionWriter, StudyArrays
from regulas.store.database import StudyRecord, open_read, open_study, register_tasks
from regulas.store.reading import read_frame
from regulas.store.root import StoreLayout, find_layout, write_marker
from regulas.store.schema import SCHEMA_VERSION
from regulas.store.sink import Sink, TaskOutcome
from regulas.store.status import format_status
from regulas.workloads.splicing import tables as splicing_tables

HASH_A = "a" * 20 + "1" * 44
HASH_B = "b" * 20 + "2" * 44


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "regulas.db"


@pytest.fixture
def engine(db_path: Path) -> Engine:
    eng = open_all(db_path)
    yield eng
    eng.dispose()


def sql(db: Path, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(query, params).fetchall()
    finally:
        conn.close()


def new_study(engine: Engine, name: str = "s", config_hash: str = HASH_A) -> StudyRecord:
    return open_study(
        engine,
        name=name,
        workload="demo",
        config_yaml="seed: 1\n",
        config_hash=config_hash,
        root_seed=1,
        package_versions={"numpy": np.__version__},
    )


def plan(n: int, study: str = "s") -> list[Task]:
    return [
        make_task(study=study, kind="t", block={"i": i}, root_seed=1, config={"a": 1}, data_fingerprint="fp")
        for i in range(n)
    ]


def scores(targets: list[str], values: Any, split: int = 0) -> dict[str, Any]:
    n = len(targets)
    return {"target": targets, "method": ["ridge"] * n, "split": [split] * n, "metric": ["mse"] * n, "value": values}


def outcome(key: str, rows: dict[str, Any] | None = None, status: str = "done") -> TaskOutcome:
    now = time.time()
    return TaskOutcome(key=key, status=status, started_at=now - 0.5, finished_at=now, worker="w1", rows=rows or {})


def make_sink(engine: Engine, study_id: int, ids: dict[str, tuple[int, str, int]]) -> Sink:
    # huge thresholds: nothing is committed until flush() is called explicitly
    return Sink(engine, study_id, {k: v[0] for k, v in ids.items()}, commit_every_s=3600, commit_every_rows=10**9)


# ---------------------------------------------------------------------------- schema


def test_connect_creates_schema_in_wal_mode(engine: Engine, db_path: Path) -> None:
    tables = {r[0] for r in sql(db_path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == set(schema.metadata.tables)
    assert {"regulas_meta", "study", "task", "score", "zarr_array"} <= tables
    # WAL is a property of the file: a fresh plain connection sees it too
    assert sql(db_path, "PRAGMA journal_mode") == [("wal",)]
    assert sql(db_path, "SELECT value FROM regulas_meta WHERE key='schema_version'") == [(str(SCHEMA_VERSION),)]
    with engine.connect() as conn:  # the engine's connections enforce foreign keys
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
    # reopening an existing regulas database is fine and does not duplicate the meta row
    open_all(db_path).dispose()
    assert sql(db_path, "SELECT count(*) FROM regulas_meta") == [(1,)]


def test_every_foreign_key_leads_an_index(engine: Engine, db_path: Path) -> None:
    declared = {
        (t.name, tuple(c.name for c in fk.columns))
        for t in schema.metadata.tables.values()
        for fk in t.foreign_key_constraints
    }
    on_disk: dict[tuple[str, int], list[str]] = {}
    for table in schema.metadata.tables:
        for row in sql(db_path, f"PRAGMA foreign_key_list({table})"):  # (id, seq, table, from, to, ...)
            on_disk.setdefault((table, row[0]), []).append(row[3])
    assert declared == {(table, tuple(cols)) for (table, _id), cols in on_disk.items()}
    assert {("task", ("study_id",)), ("score", ("task_id",)), ("splice_score", ("study_id", "model"))} <= declared
    unindexed = []
    for table, columns in sorted(declared):
        leading = set()
        # a single INTEGER PRIMARY KEY is the rowid itself: the table's own B-tree is keyed by it
        pk = [(name, kind) for _cid, name, kind, _nn, _dflt, pk in sql(db_path, f"PRAGMA table_info({table})") if pk]
        if len(pk) == 1 and pk[0][1].upper() == "INTEGER":
            leading.add((pk[0][0],))
        for _seq, index, *_ in sql(db_path, f"PRAGMA index_list({table})"):
            info = sorted(sql(db_path, f"PRAGMA index_info({index})"))  # (seqno, cid, name)
            leading.add(tuple(name for _seqno, _cid, name in info[: len(columns)]))
        if columns not in leading:
            unindexed.append(f"{table}{columns}")
    assert not unindexed, f"foreign keys without an index led by their columns: {unindexed}"


def test_constraints_and_indexes_are_named(engine: Engine, db_path: Path) -> None:
    ddl = dict(sql(db_path, "SELECT name, sql FROM sqlite_master WHERE type='table'"))
    prefixes = {"PrimaryKeyConstraint": "pk_", "UniqueConstraint": "uq_", "CheckConstraint": "ck_",
                "ForeignKeyConstraint": "fk_"}
    seen = 0
    for table in schema.metadata.tables.values():
        for constraint in table.constraints:
            name = constraint.name
            assert isinstance(name, str) and name.startswith(prefixes[type(constraint).__name__]), (table.name, name)
            assert f"CONSTRAINT {name} " in ddl[table.name], f"{name} not named in the DDL of {table.name}"
            seen += 1
        for index in table.indexes:
            assert isinstance(index.name, str) and index.name.startswith(f"ix_{table.name}_")
            assert sql(db_path, "SELECT tbl_name FROM sqlite_master WHERE type='index' AND name=?", (index.name,)) == [
                (table.name,)
            ]
    assert seen >= 2 * len(schema.metadata.tables)  # the loops above did check something
    # every index on disk is either a declared (named) one or SQLite's own for a named
    # PRIMARY KEY / UNIQUE constraint
    declared = {i.name for t in schema.metadata.tables.values() for i in t.indexes}
    for name, index_sql in sql(db_path, "SELECT name, sql FROM sqlite_master WHERE type='index'"):
        assert name in declared or (index_sql is None and name.startswith("sqlite_autoindex_")), name


def test_newer_schema_version_is_refused(db_path: Path) -> None:
    open_all(db_path).dispose()
    sql_conn = sqlite3.connect(db_path)
    sql_conn.execute("UPDATE regulas_meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    sql_conn.commit()
    sql_conn.close()
    with pytest.raises(StoreError) as info:
        open_all(db_path)
    msg = str(info.value)
    assert str(db_path) in msg
    assert f"schema version {SCHEMA_VERSION + 1}" in msg
    assert f"({SCHEMA_VERSION})" in msg and "newer" in msg


@pytest.mark.parametrize("version", [0, 2])  # 2: v3 names a result's event by index (splice_event)
def test_older_schema_version_without_migration_is_refused(db_path: Path, version: int) -> None:
    open_all(db_path).dispose()
    sql_conn = sqlite3.connect(db_path)
    sql_conn.execute("UPDATE regulas_meta SET value=? WHERE key='schema_version'", (str(version),))
    sql_conn.commit()
    sql_conn.close()
    with pytest.raises(StoreError, match=rf"schema version {version}, older than this regulas \({SCHEMA_VERSION}\) and no migration"):
        open_all(db_path)


def test_version_1_database_is_upgraded_additively(db_path: Path) -> None:
    open_all(db_path).dispose()
    conn = sqlite3.connect(db_path)
    for name in ("splice_importance", "splice_score", "splice_model", "splice_event", "sim_score"):
        conn.execute(f"DROP TABLE {name}")
    conn.execute("DROP VIEW performance")
    conn.execute("UPDATE regulas_meta SET value='1' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    open_all(db_path).dispose()
    assert sql(db_path, "SELECT value FROM regulas_meta WHERE key='schema_version'") == [(str(SCHEMA_VERSION),)]
    names = {n for (n,) in sql(db_path, "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
    assert {"splice_event", "splice_model", "splice_score", "performance", "feature_ranking", "sim_result"} <= names


def _splice_model_rows(labels: list[str]) -> dict[str, list[Any]]:
    n = len(labels)
    return {
        "model": list(range(n)),
        "pipeline": labels,
        "candidate": [-1] * n,
        "params": ["{}"] * n,
        "label": labels,
        "identity": [f"{i:064d}" for i in range(n)],
        "steps": ["[]"] * n,
        "grid": ["{}"] * n,
    }


def test_study_rows_are_replaced_not_duplicated(engine: Engine, db_path: Path) -> None:
    from regulas.store.database import write_study_rows

    record = new_study(engine)
    write_study_rows(engine, record.id, {"splice_model": _splice_model_rows(["a", "b"])})
    write_study_rows(engine, record.id, {"splice_model": _splice_model_rows(["a", "b"])})
    assert sql(db_path, "SELECT model, label FROM splice_model ORDER BY model") == [(0, "a"), (1, "b")]
    with pytest.raises(StoreError, match="not a study-level table; allowed: splice_event, splice_model"):
        write_study_rows(engine, record.id, {"score": {}})


def test_performance_and_feature_ranking_views(engine: Engine, db_path: Path) -> None:
    from regulas.store.database import write_study_rows

    record = new_study(engine)
    write_study_rows(engine, record.id, {"splice_event": {"event": [0, 1], "name": ["e1", "e2"]},
                                         "splice_model": _splice_model_rows(["ZScore+Ridge"])})
    tasks = plan(2)
    ids = register_tasks(engine, record.id, tasks)
    sink = make_sink(engine, record.id, ids)
    for split, task in enumerate(tasks):
        metrics = {m: [0.1 * (split + 1), np.nan] for m in splicing_tables.SPLICE_METRICS}
        importance = [0.5, -2.0] if split == 0 else [1.5, 0.0]
        rows = {
            "splice_score": {
                "event": [0, 1], "model": [0, 0], "split": [split] * 2, "n_train": [8, 8], "n_test": [2, 1],
                **metrics, "params": ['{"alpha": 1.0}'] * 2, "fit_time_s": [0.01, 0.01],
            },
            "splice_importance": {
                "event": [0, 0], "model": [0, 0], "split": [split] * 2, "kind": ["coef"] * 2,
                "rank": [1, 2], "feature": ["RBFOX2", "QKI"] if split == 0 else ["QKI", "RBFOX2"],
                "score": importance,
            },
        }
        sink.add(outcome(task.key, rows))
    sink.close()
    perf = sql(db_path, "SELECT study, event, pipeline, split, metric, value FROM performance ORDER BY event, split, metric")
    assert len(perf) == 2 * 2 * len(splicing_tables.SPLICE_METRICS)
    assert ("s", "e1", "ZScore+Ridge", 1, "mse", 0.2) in [(*r[:5], round(r[5], 12)) for r in perf if r[1] == "e1"]
    assert {r[5] for r in perf if r[1] == "e2"} == {None}  # NaN stays NULL, never 0
    ranking = sql(db_path, "SELECT event, pipeline, kind, feature, rank, score FROM feature_ranking ORDER BY rank")
    # mean |importance| over the two splits: QKI (2.0 + 1.5) / 2, RBFOX2 (0.5 + 0.0) / 2
    assert ranking == [("e1", "ZScore+Ridge", "coef", "QKI", 1, 1.75), ("e1", "ZScore+Ridge", "coef", "RBFOX2", 2, 0.25)]


def test_foreign_sqlite_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE foo (x INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError) as info:
        open_all(other)
    assert str(other) in str(info.value) and "not a regulas one" in str(info.value)
    assert sql(other, "SELECT name FROM sqlite_master WHERE type='table'") == [("foo",)]


def test_non_sqlite_file_is_refused_with_store_error(tmp_path: Path) -> None:
    junk = tmp_path / "regulas.db"
    junk.write_bytes(b"this is a text file, not an SQLite database\n" * 100)
    with pytest.raises(StoreError, match="regulas.db"):
        open_all(junk)


# ------------------------------------------------------------------ sink and NaN


def test_nan_and_inf_are_stored_explicitly(engine: Engine, db_path: Path) -> None:
    study_id = new_study(engine).id
    tasks = plan(1)
    ids = register_tasks(engine, study_id, tasks)
    sink = make_sink(engine, study_id, ids)
    values = np.array([np.nan, np.inf, 1.5, -np.inf, 0.1 + 0.2, np.nan])
    targets = [f"t{i}" for i in range(len(values))]
    sink.add(outcome(tasks[0].key, {"score": scores(targets, values)}))
    assert sql(db_path, "SELECT count(*) FROM score") == [(0,)]  # buffered, not yet committed
    sink.close()

    conn = sqlite3.connect(db_path)
    try:
        df = pd.read_sql(
            "SELECT target, value, value IS NULL AS is_null, value_is_nan, task_id FROM score ORDER BY target", conn
        )
        task_row = pd.read_sql("SELECT status, attempts, worker, duration_s FROM task", conn)
    finally:
        conn.close()
    assert list(df.target) == targets
    nan = np.isnan(values)
    assert df.value_is_nan.tolist() == nan.astype(int).tolist()
    assert df.is_null.tolist() == nan.astype(int).tolist()
    assert df.value[~nan].tolist() == values[~nan].tolist()  # exact, including +-inf
    assert set(df.task_id) == {ids[tasks[0].key][0]}
    assert task_row.to_dict("records") == [
        {"status": "done", "attempts": 1, "worker": "w1", "duration_s": pytest.approx(0.5)}
    ]
    assert sink.rows_written == len(values) and sink.done == 1 and sink.failed == 0


def test_duplicate_rows_fail_only_the_offending_task(engine: Engine, db_path: Path) -> None:
    study_id = new_study(engine).id
    tasks = plan(3)
    ids = register_tasks(engine, study_id, tasks)
    good, bad, later = tasks
    sink = make_sink(engine, study_id, ids)
    rows = scores(["a", "b", "c"], [1.0, 2.0, 3.0])
    sink.add(outcome(good.key, {"score": rows}))
    sink.add(outcome(bad.key, {"score": {**rows, "value": [7.0, 8.0, 9.0]}}))  # same target/method/split/metric
    sink.flush()
    # the same violation against rows committed by an earlier flush
    sink.add(outcome(later.key, {"score": scores(["z", "a"], [5.0, 6.0])}))
    sink.close()

    status = dict(sql(db_path, "SELECT key, status FROM task"))
    assert status == {good.key: "done", bad.key: "failed", later.key: "failed"}
    stored = sql(db_path, "SELECT task_id, target, value FROM score ORDER BY target")
    assert stored == [(ids[good.key][0], t, v) for t, v in (("a", 1.0), ("b", 2.0), ("c", 3.0))]
    for key in (bad.key, later.key):
        ((etype, message, attempts),) = sql(
            db_path, "SELECT error_type, error_message, attempts FROM task WHERE key=?", (key,)
        )
        assert etype == "sqlite3.IntegrityError"
        assert "refused by the database" in message and "UNIQUE constraint failed: score." in message
        assert attempts == 1
    assert sink.done == 1 and sink.failed == 2 and sink.rows_written == 3


def test_rows_with_unknown_column_fail_only_that_task(engine: Engine, db_path: Path) -> None:
    study_id = new_study(engine).id
    good, bad = plan(2)
    ids = register_tasks(engine, study_id, [good, bad])
    sink = make_sink(engine, study_id, ids)
    sink.add(outcome(good.key, {"score": scores(["a"], [1.0])}))
    sink.add(outcome(bad.key, {"score": {**scores(["b"], [2.0]), "bogus": [1]}}))
    sink.close()
    assert dict(sql(db_path, "SELECT key, status FROM task")) == {good.key: "done", bad.key: "failed"}
    assert sql(db_path, "SELECT target FROM score") == [("a",)]


def test_register_tasks_resets_running_and_is_idempotent(engine: Engine, db_path: Path) -> None:
    study_id = new_study(engine).id
    tasks = plan(4)
    first = register_tasks(engine, study_id, tasks)
    assert {v[1:] for v in first.values()} == {("pending", 0)}
    assert len({v[0] for v in first.values()}) == 4
    # a driver died: one task running, one done
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE task SET status='running' WHERE key=?", (tasks[0].key,))
    conn.execute("UPDATE task SET status='done', attempts=1 WHERE key=?", (tasks[1].key,))
    conn.commit()
    conn.close()
    second = register_tasks(engine, study_id, [*tasks, *plan(5)[4:]])  # the plan grew by one
    assert {k: v[0] for k, v in second.items() if k in first} == {k: v[0] for k, v in first.items()}
    assert second[tasks[0].key][1:] == ("pending", 0)
    assert second[tasks[1].key][1:] == ("done", 1)
    assert len(second) == 5
    assert sql(db_path, "SELECT count(*), count(DISTINCT key) FROM task") == [(5, 5)]
    stored = dict(sql(db_path, "SELECT key, seed FROM task"))
    assert stored == {t.key: t.seed for t in [*tasks, *plan(5)[4:]]}  # 63-bit seeds round-trip


def test_open_study_refuses_a_different_config_hash(engine: Engine, db_path: Path) -> None:
    first = new_study(engine, config_hash=HASH_A)
    assert not first.resumed
    again = new_study(engine, config_hash=HASH_A)
    assert again.resumed and again.id == first.id
    assert sql(db_path, "SELECT runs FROM study") == [(2,)]
    with pytest.raises(StoreError) as info:
        new_study(engine, config_hash=HASH_B)
    msg = str(info.value)
    assert "'s'" in msg and HASH_A[:12] in msg and HASH_B[:12] in msg
    assert sql(db_path, "SELECT config_hash, runs FROM study") == [(HASH_A, 2)]
    other = new_study(engine, name="s2", config_hash=HASH_B)  # another name is another study
    assert other.id != first.id and not other.resumed


def test_a_changed_config_is_refused_with_the_keys_that_differ(tmp_path: Path) -> None:
    from regulas.execution.runner import plan_study
    from regulas.store.database import open_write
    from regulas.study import load_study

    demo = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
    root = f"store.root={tmp_path / 'out'}"

    def plan_again(*overrides: str) -> None:
        spec = load_study(demo, [root, *overrides])
        engine = open_write(spec.store.db_path, spec.workload.store_tables())
        try:
            plan_study(spec, engine)
        finally:
            engine.dispose()

    plan_again()
    plan_again("demo.sleep_s=0.5", "cluster.n_workers=1")  # how it runs may change: a resume
    with pytest.raises(StoreError) as info:
        plan_again("demo.alpha=2.5", "seed=7")
    msg = str(info.value)
    assert "study 'demo' already exists in this store with a different config" in msg
    assert "changed: demo.alpha 1.0 -> 2.5, seed 42 -> 7)" in msg, msg
    assert "resume it with the same config, or pick another study.name or store.root" in msg
    assert "hash" not in msg
    with pytest.raises(StoreError) as info:  # many keys: the first few, then how many more
        plan_again("demo.alpha=2.5", "seed=7", "demo.noise=2.0", "demo.n_splits=4", "demo.fail_blocks=[1]", "demo.n_samples=60")
    msg = str(info.value)
    assert "changed: demo.alpha 1.0 -> 2.5, demo.fail_blocks [] -> [1], demo.n_samples 120 -> 60, " in msg, msg
    assert "demo.n_splits 5 -> 4 and 2 more)" in msg  # demo.noise and seed
    assert sql(tmp_path / "out" / "regulas.db", "SELECT runs FROM study") == [(2,)]  # nothing was changed


# -------------------------------------------------------------- Zarr ownership


@pytest.fixture
def arrays(tmp_path: Path) -> StudyArrays:
    a = StudyArrays(tmp_path / "arrays.zarr", "s")
    a.create(ArraySpec("A", (4, 100), (4, 20), dims=("x", "y")))
    a.create(ArraySpec("E", (4, 90), (4, 20)))  # 90 is not a multiple of 20
    a.create(ArraySpec("S", (4, 100), (4, 10), shards=(4, 20)))
    return a


def test_unaligned_region_is_refused(arrays: StudyArrays) -> None:
    with pytest.raises(OwnershipError) as info:
        arrays.check_ownership([("t1", [Region.of("A", slice(0, 4), slice(5, 25))])])
    assert "whole write units" in str(info.value) and "'A'" in str(info.value)
    with pytest.raises(OwnershipError, match="outside array"):
        arrays.check_ownership([("t1", [Region.of("A", slice(0, 4), slice(80, 120))])])
    with pytest.raises(OwnershipError, match="unknown array 'nope'"):
        arrays.check_ownership([("t1", [Region.of("nope", slice(0, 4), slice(0, 20))])])


def test_two_owners_of_one_chunk_are_refused(arrays: StudyArrays) -> None:
    plan_ = [
        ("task-one", [Region.of("A", slice(0, 4), slice(0, 40))]),
        ("task-two", [Region.of("A", slice(0, 4), slice(20, 60))]),
    ]
    with pytest.raises(OwnershipError) as info:
        arrays.check_ownership(plan_)
    msg = str(info.value)
    assert "task-one" in msg and "task-two" in msg and "(0, 1)" in msg
    # disjoint whole chunks, several regions per task, several arrays: accepted
    arrays.check_ownership(
        [
            ("task-one", [Region.of("A", slice(0, 4), slice(0, 20)), Region.of("A", slice(0, 4), slice(40, 60))]),
            ("task-two", [Region.of("A", slice(0, 4), slice(20, 40)), Region.of("E", slice(0, 4), slice(0, 20))]),
        ]
    )


def test_region_up_to_the_array_end_is_aligned(arrays: StudyArrays) -> None:
    arrays.check_ownership(
        [
            ("t1", [Region.of("E", slice(0, 4), slice(60, 80))]),
            ("t2", [Region.of("E", slice(0, 4), slice(80, 90))]),  # last, partial chunk
        ]
    )
    with pytest.raises(OwnershipError, match="whole write units"):
        arrays.check_ownership([("t1", [Region.of("E", slice(0, 4), slice(80, 85))])])


def test_sharded_array_unit_is_the_shard(arrays: StudyArrays) -> None:
    with pytest.raises(OwnershipError, match="whole write units along dim 1 \\(unit 20"):
        arrays.check_ownership([("t1", [Region.of("S", slice(0, 4), slice(0, 10))])])  # one chunk
    with pytest.raises(OwnershipError, match="t1 and t2 both own"):
        arrays.check_ownership(
            [("t1", [Region.of("S", slice(0, 4), slice(0, 20))]), ("t2", [Region.of("S", slice(0, 4), slice(0, 20))])]
        )
    arrays.check_ownership([("t1", [Region.of("S", slice(0, 4), slice(0, 20))])])
    with pytest.raises(StoreError, match="multiples of chunks"):
        ArraySpec("bad", (4, 100), (4, 10), shards=(4, 15))


def test_region_writer_checks_ownership_and_shape(arrays: StudyArrays, tmp_path: Path) -> None:
    owned = Region.of("A", slice(0, 4), slice(20, 40))
    writer = RegionWriter(str(arrays.store_path), "s", (owned,))
    with pytest.raises(OwnershipError, match="refused"):
        writer.write(Region.of("A", slice(0, 4), slice(40, 60)), np.zeros((4, 20)))
    with pytest.raises(OwnershipError):
        writer.write(Region.of("A", slice(0, 4), slice(30, 50)), np.zeros((4, 20)))  # half outside
    with pytest.raises(StoreError) as info:
        writer.write(owned, np.zeros((4, 19)))
    assert type(info.value) is StoreError and "does not fit" in str(info.value)
    data = np.arange(80, dtype=float).reshape(4, 20) / 7
    writer.write(owned, data)
    writer.write(Region.of("A", slice(1, 3), slice(25, 30)), data[1:3, 5:10] * 2)  # inside the owned region
    back = zarr.open_array(store=str(arrays.store_path), path="s/A", mode="r")[...]
    expected = np.full((4, 100), np.nan)
    expected[:, 20:40] = data
    expected[1:3, 25:30] *= 2
    np.testing.assert_array_equal(back, expected)


def test_reopen_with_other_shards_is_refused(tmp_path: Path) -> None:
    StudyArrays(tmp_path / "z.zarr", "s").create(ArraySpec("S", (4, 100), (4, 10), shards=(4, 50)))
    again = StudyArrays(tmp_path / "z.zarr", "s")
    # on disk the write unit is 50 wide; a spec with unit 10 would let 5 tasks share a shard
    with pytest.raises(StoreError):
        again.create(ArraySpec("S", (4, 100), (4, 10)))


RACE = r"""
import sys, time, zarr
store, which, n, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
arr = zarr.open_array(store=store, path="s/race", mode="r+")
half = slice(0, 50) if which == 0 else slice(50, 100)  # two halves of chunk 0
own = slice(100 * (which + 1), 100 * (which + 2))      # chunk 1 or 2, owned whole
lost = errors = own_bad = 0
time.sleep(max(0.0, go - time.time()))
for i in range(1, n + 1):
    if i > 1:
        try:  # did my previous write of the shared chunk survive the other writer?
            lost += int((arr[0, half] != i - 1).any())
        except Exception:
            errors += 1
        own_bad += int((arr[0, own] != i - 1).any())
    arr[0, half] = i
    arr[0, own] = i
print(lost, errors, own_bad)
"""


def test_why_chunks_have_one_owner(tmp_path: Path) -> None:
    """Two processes write concurrently: halves of one shared chunk, and a chunk each.

    Lost updates on the shared chunk are racy, so they are only reported. What is
    asserted: whole chunks owned by one writer always end exact, and the plan that
    shares a chunk is refused by check_ownership before any task could write.
    """
    store = tmp_path / "arrays.zarr"
    arrays = StudyArrays(store, "s")
    arrays.create(ArraySpec("race", (1, 300), (1, 100)))
    n = 150
    go = time.time() + 2.0  # both interpreters import zarr first, then start together
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(store), str(w), str(n), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for w in (0, 1)
    ]
    counts = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
        counts.append([int(x) for x in out.split()])
    back = zarr.open_array(store=str(store), path="s/race", mode="r")[0]
    np.testing.assert_array_equal(back[100:300], np.full(200, float(n)))  # owned whole: exact
    assert [c[2] for c in counts] == [0, 0]  # and never disturbed between a writer's own writes
    print(
        f"shared chunk, {n} writes per process: lost updates seen {[c[0] for c in counts]}, "
        f"failed reads {[c[1] for c in counts]}, values wrong at the end {int(np.count_nonzero(back[:100] != n))}"
    )

    racy_plan = [
        ("writer-0", [Region.of("race", 0, slice(0, 50)), Region.of("race", 0, slice(100, 200))]),
        ("writer-1", [Region.of("race", 0, slice(50, 100)), Region.of("race", 0, slice(200, 300))]),
    ]
    with pytest.raises(OwnershipError, match="whole write units"):
        arrays.check_ownership(racy_plan)
    # widened to whole chunks, the two writers collide on chunk 0 instead: also refused
    widened = [(k, [Region.of("race", 0, slice(0, 100)), *regions[1:]]) for k, regions in racy_plan]
    with pytest.raises(OwnershipError, match="writer-0 and writer-1 both own unit \\(0, 0\\)"):
        arrays.check_ownership(widened)
    arrays.check_ownership([(k, regions[1:]) for k, regions in racy_plan])  # what the test did safely


# ------------------------------------------------------------- task keys and seeds

BASE: dict[str, Any] = dict(
    study="s", kind="demo.ridge", block={"block": 3, "split": 1}, root_seed=42, config={"alpha": 1.0},
    data_fingerprint="f" * 64,
)


def task_with(**change: Any) -> Task:
    return make_task(**{**BASE, **change})


def test_task_key_and_seed_are_deterministic() -> None:
    a, b = task_with(), task_with()
    assert (a.key, a.seed) == (b.key, b.seed)
    reordered = task_with(block={"split": 1, "block": 3}, config={"alpha": 1.0})
    assert (reordered.key, reordered.seed) == (a.key, a.seed)
    assert len(a.key) == 32 and int(a.key, 16) >= 0
    # and across interpreters (no dependence on hash randomization or process state)
    code = (
        "from regulas.core.task import make_task; import json, sys; "
        "t = make_task(**json.loads(sys.argv[1])); print(t.key, t.seed)"
    )
    import json

    out = subprocess.run([sys.executable, "-c", code, json.dumps(BASE)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [a.key, str(a.seed)]


@pytest.mark.parametrize(
    ("change", "seed_changes"),
    [
        ({"config": {"alpha": 2.0}}, False),
        ({"data_fingerprint": "e" * 64}, False),
        ({"study": "other"}, False),
        ({"block": {"block": 4, "split": 1}}, True),
        ({"block": {"block": 3, "split": 2}}, True),
        ({"kind": "demo.lasso"}, True),
        ({"root_seed": 43}, True),
    ],
    ids=["config", "fingerprint", "study", "block", "split", "kind", "root-seed"],
)
def test_what_changes_key_and_seed(change: dict[str, Any], seed_changes: bool) -> None:
    base, changed = task_with(), task_with(**change)
    assert changed.key != base.key
    assert (changed.seed != base.seed) is seed_changes


def test_seeds_fit_in_63_bits_and_use_them() -> None:
    seeds = [derive_seed(7, "k", {"i": i}) for i in range(500)]
    assert all(isinstance(s, int) and 0 <= s < 2**63 for s in seeds)
    assert max(seeds) >= 2**62  # the full range is used, not 32 bits
    assert len(set(seeds)) == len(seeds)
    assert derive_seed(2**40, "k", {"i": 0}) < 2**63
    np.random.default_rng(max(seeds))  # accepted as a numpy seed


# ------------------------------------------------------- migration, read-only opening, store root


def _score_rows(n: int) -> dict[str, Any]:
    return {"target": [f"t{i}" for i in range(n)], "method": ["m"] * n, "split": [0] * n, "metric": ["r2"] * n,
            "value": [float("nan") if i % 2 else 0.5 * i for i in range(n)]}


def test_schema_3_store_is_upgraded_in_place(engine: Engine, db_path: Path) -> None:
    """A store written by schema 3 (``score.is_nan``) keeps its rows and is upgraded to the
    single NaN-flag spelling ``value_is_nan`` by the next driver that opens it."""
    record = new_study(engine)
    ids = register_tasks(engine, record.id, plan(1))
    sink = make_sink(engine, record.id, ids)
    sink.add(outcome(plan(1)[0].key, {"score": _score_rows(4)}))
    sink.close()
    engine.dispose()
    conn = sqlite3.connect(db_path)
    conn.execute("ALTER TABLE score RENAME COLUMN value_is_nan TO is_nan")
    conn.execute("UPDATE regulas_meta SET value='3' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=r"schema version 3, older .* rerun `regulas run`"):
        open_read(db_path)  # readers do not migrate; the message says how to
    open_all(db_path).dispose()
    assert sql(db_path, "SELECT value FROM regulas_meta WHERE key='schema_version'") == [(str(SCHEMA_VERSION),)]
    assert sql(db_path, "SELECT target, value, value_is_nan FROM score ORDER BY target") == [
        ("t0", 0.0, 0), ("t1", None, 1), ("t2", 1.0, 0), ("t3", None, 1)]


def test_read_only_engine_reads_nan_back_and_cannot_write(engine: Engine, db_path: Path) -> None:
    record = new_study(engine)
    ids = register_tasks(engine, record.id, plan(1))
    sink = make_sink(engine, record.id, ids)
    sink.add(outcome(plan(1)[0].key, {"score": _score_rows(3)}))
    sink.close()
    reader = open_read(db_path)  # while the driver's engine is open (WAL)
    try:
        frame = read_frame(reader, "SELECT target, value, value_is_nan FROM score ORDER BY target")
        assert list(frame.columns) == ["target", "value"]  # the flag is folded into the value
        assert frame.value.iloc[0] == 0.0 and np.isnan(frame.value.iloc[1]) and frame.value.iloc[2] == 1.0
        with pytest.raises(sqlalchemy.exc.OperationalError, match="readonly"), reader.begin() as conn:
            conn.exec_driver_sql("DELETE FROM score")
    finally:
        reader.dispose()
    assert len(sql(db_path, "SELECT * FROM score")) == 3


def test_store_root_marker_names_its_database(tmp_path: Path) -> None:
    """`regulas status ROOT` finds a database not called regulas.db (regulAS's database.url)
    through the root's marker; a second layout in the same root is refused."""
    root = tmp_path / "root"
    layout = StoreLayout(root, db="lr_svr.db", arrays="arrays.zarr")
    write_marker(layout)
    write_marker(layout)  # the same layout again: fine
    eng = open_all(layout.db_path)
    new_study(eng, name="lr_svr")
    eng.dispose()
    assert find_layout(root) == layout
    assert find_layout(layout.db_path) == layout
    assert "study 'lr_svr' (demo)" in format_status(root)
    with pytest.raises(StoreError, match="holds database 'lr_svr.db'"):
        write_marker(StoreLayout(root, db="regulas.db"))
    with pytest.raises(StoreError, match="no regulas store"):
        find_layout(tmp_path / "nowhere")


def test_rows_classes_are_checked_against_their_tables(db_path: Path) -> None:
    """A workload's typed rows that name a column its table lacks fail when the store opens."""
    from dataclasses import dataclass

    from regulas.core.workload import Rows, WorkloadTables
    from regulas.store.database import open_write
    from regulas.workloads.score import score

    @dataclass
    class Misspelt(Rows):
        table = "score"
        target: list[str]
        method: list[str]
        split: list[int]
        metirc: list[str]
        value: list[float]

    with pytest.raises(StoreError, match=r"unknown \['metirc'\], missing \['metric'\]"):
        open_write(db_path, WorkloadTables(results=(score,), rows=(Misspelt,)))


def test_version_4_store_is_upgraded_with_study_input(engine: Engine, db_path: Path) -> None:
    """Schema 5 adds ``study_input``: a version-4 store keeps its studies and gains the table."""
    record = new_study(engine)
    engine.dispose()
    conn = sqlite3.connect(db_path)
    conn.execute("DROP TABLE study_input")
    conn.execute("UPDATE regulas_meta SET value='4' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=r"schema version 4, older .* rerun `regulas run`"):
        open_read(db_path)
    open_all(db_path).dispose()
    assert sql(db_path, "SELECT value FROM regulas_meta WHERE key='schema_version'") == [(str(SCHEMA_VERSION),)]
    assert SCHEMA_VERSION == 6
    assert sql(db_path, "SELECT id, name FROM study") == [(record.id, "s")]
    assert sql(db_path, "SELECT name FROM sqlite_master WHERE type='table' AND name='study_input'") == [("study_input",)]
    # and on to 6: task_chunk, and the time from which tasks have digests
    assert sql(db_path, "SELECT name FROM sqlite_master WHERE type='table' AND name='task_chunk'") == [("task_chunk",)]
    assert sql(db_path, "SELECT count(*) FROM regulas_meta WHERE key='chunk_digests_since'") == [(1,)]


def test_a_zarr_table_input_is_pinned_by_its_files(tmp_path: Path) -> None:
    # a Zarr table is a folder: its stat is its files' total size and latest mtime, its
    # digest covers each file's path and bytes (a study on Zarr input used to crash here)
    import os

    from regulas.data.tables import write_table
    from regulas.store.inputs import FileState, compare_files

    table = tmp_path / "psi.zarr"
    write_table(pd.DataFrame({"ev1": [0.1, 0.2], "ev2": [0.3, 0.4]}, index=["s1", "s2"]), table)
    before = FileState.of(table, digest=True)
    assert before.size == sum(f.stat().st_size for f in table.rglob("*") if f.is_file()) > 0
    assert compare_files({before.path: before}, [FileState.of(table)]).changed == []
    for f in table.rglob("*"):  # touched, same content: refreshed after hashing
        os.utime(f, (2_000_000_000, 2_000_000_000))
    touched = compare_files({before.path: before}, [FileState.of(table)])
    assert touched.changed == [] and [t.sha256 for t in touched.refreshed] == [before.sha256]
    write_table(pd.DataFrame({"ev1": [0.1, 0.2], "ev2": [0.3, 0.5]}, index=["s1", "s2"]), tmp_path / "other.zarr")
    import shutil

    shutil.rmtree(table)
    shutil.copytree(tmp_path / "other.zarr", table)  # one value differs
    ((old, now),) = compare_files({before.path: before}, [FileState.of(table)]).changed
    assert old.sha256 == before.sha256 and now is not None and now.sha256 != before.sha256
    shutil.rmtree(table)
    assert compare_files({before.path: before}, []).changed == [(before, None)]


def test_pinned_inputs_are_checked_by_stat_then_content(engine: Engine, tmp_path: Path) -> None:
    import os

    from regulas.store.database import check_data_fingerprint, check_pinned_inputs, delete_study, record_inputs
    from regulas.store.inputs import FileState

    data = tmp_path / "psi.tsv"
    data.write_text("a\t0.5\n")
    record = new_study(engine)
    record_inputs(engine, record.id, [FileState.of(data)], "fp-1")
    assert sql(engine.url.database, "SELECT kind, size, digest FROM study_input ORDER BY kind") == [  # type: ignore[arg-type]
        ("data", None, "fp-1"), ("file", 6, FileState.of(data, digest=True).sha256)]

    def check(fingerprint: str = "fp-1") -> Any:
        return check_pinned_inputs(engine, name="s", config_hash=HASH_A, files=[FileState.of(data)],
                                   data_fingerprint=fingerprint, config="study.yaml")

    assert check().changed == [] and check().refreshed == []
    os.utime(data, (1_000_000_000, 1_000_000_000))  # new mtime, same content: trusted after hashing
    refreshed = check().refreshed
    assert [f.mtime for f in refreshed] == [1_000_000_000]
    record_inputs(engine, record.id, refreshed)  # what the runner does: the new stat is recorded
    assert check().refreshed == []
    data.write_text("a\t0.6\n")  # same size, new content
    os.utime(data, (1_000_000_000, 1_000_000_000))
    assert check().changed == []  # same size and mtime: trusted without reading (the cheap check)
    os.utime(data, (1_000_000_500, 1_000_000_500))
    with pytest.raises(StoreError) as info:
        check()
    msg = str(info.value)
    assert str(data) in msg and "size 6 -> 6 bytes" in msg and "content differs" in msg
    assert "study.name or store.root" in msg and "regulas run study.yaml --restart" in msg
    with pytest.raises(StoreError, match=r"the input data \(fingerprint fp-1 -> fp-2\)"):
        check_pinned_inputs(engine, name="s", config_hash=HASH_A, files=[], data_fingerprint="fp-2", config="c.yaml")
    with pytest.raises(StoreError, match=r"fingerprint fp-1 -> fp-3"):
        check_data_fingerprint(engine, record.id, "fp-3", name="s", config="c.yaml")
    assert check_pinned_inputs(engine, name="other", config_hash=HASH_A, files=[], data_fingerprint=None, config="c") is None
    assert delete_study(engine, "s") and sql(engine.url.database, "SELECT count(*) FROM study_input") == [(0,)]  # type: ignore[arg-type]


def test_missing_units_maps_regions_to_chunk_files(tmp_path: Path) -> None:
    arrays = StudyArrays(tmp_path / "arrays.zarr", "s")
    arrays.create(ArraySpec("a", (4, 6), (2, 3)))
    arrays.create(ArraySpec("b", (4, 6), (1, 3), shards=(2, 3)))
    owned = [(f"t{i}", (Region.of("a", slice(2 * i, 2 * i + 2), slice(0, 6)), Region.of("b", slice(2 * i, 2 * i + 2), slice(0, 6))))
             for i in range(2)]
    assert arrays.missing_units(owned) == {"t0": {"a", "b"}, "t1": {"a", "b"}}  # nothing written yet
    for _key, regions in owned:
        writer = RegionWriter(str(arrays.store_path), "s", regions)
        for r in regions:
            writer.write(r, np.full(r.shape, np.nan))  # all fill value: written anyway
    assert arrays.missing_units(owned) == {}
    (arrays.group_path / "a" / "c" / "1" / "1").unlink()
    (arrays.group_path / "b" / "c" / "0" / "0").unlink()
    assert arrays.missing_units(owned) == {"t1": {"a"}, "t0": {"b"}}
    assert arrays.remove() and not arrays.group_path.exists()


_OPEN_NEW_STORE = """
import sys
from pathlib import Path
from regulas.store.database import open_write
open_write(Path(sys.argv[1])).dispose()
"""


def test_drivers_creating_one_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    """Three processes open the same new database at the same moment (drivers of different
    studies started together on a new store.root). The store is created in one transaction:
    without it, pysqlite committed each CREATE TABLE alone and another process saw
    regulas_meta without its version row ("schema version 0") or hit "table already exists"."""
    for i in range(5):
        db = tmp_path / f"r{i}" / "regulas.db"
        db.parent.mkdir()
        procs = [subprocess.Popen([sys.executable, "-c", _OPEN_NEW_STORE, str(db)], stderr=subprocess.PIPE, text=True)
                 for _ in range(3)]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], errors
        assert sql(db, "SELECT value FROM regulas_meta WHERE key='schema_version'") == [(str(SCHEMA_VERSION),)]
