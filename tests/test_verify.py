"""Checksummed arrays and ``regulas verify``: real SQLite, real Zarr on disk, the real CLI
in a subprocess (and a real LocalCluster for the end-to-end case).

Covers: the digests a task's commit records (plain and sharded arrays); verify telling a
missing, an undecodable (crc32c) and a mismatching chunk apart, by array and task, and
setting exactly their tasks back to pending; a rerun recomputing them to arrays equal to
the clean run's; ``report`` refusing damaged arrays by name; a schema-5 store upgraded
and reported unverified, not damaged.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine

from conftest import REPO, demo_task_key, open_all, query, run_cli, task_traces, traced_demo_run
from regulas.core.errors import StoreError
from regulas.core.task import Region, Task
from regulas.store.arrays import ArraySpec, RegionWriter, StudyArrays
from regulas.store.database import open_study, register_tasks, reopen_tasks
from regulas.store.root import StoreLayout, write_marker
from regulas.store.schema import SCHEMA_VERSION
from regulas.store.sink import Sink, TaskOutcome
from regulas.store.verify import check_study_arrays, verify_store

#: 16 tasks (2 outer splits x 8 blocks of 20 targets), each owning a pred and a coef chunk
SMALL = ("demo.n_targets=160", "demo.block_size=20", "demo.n_splits=2", "cluster.n_workers=1")


def _bit_flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _arrays_digest(root: Path) -> dict[str, object]:
    """The store digest tool's hashes of every Zarr array and of the score table."""
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "store_digest.py"), str(root)],
                          capture_output=True, text=True, check=True)
    return {k: v for k, v in json.loads(proc.stdout).items() if k.startswith("zarr:") or k == "table:score"}


@pytest.mark.slow
def test_verify_finds_deleted_and_flipped_chunks_and_the_rerun_recomputes_exactly_them(tmp_path: Path, demo_config: Path) -> None:
    root, traces, argv = traced_demo_run(tmp_path, demo_config, *SMALL)
    db = root / "regulas.db"
    assert query(db, "SELECT count(*), count(DISTINCT task_id) FROM task_chunk") == [(32, 16)]  # pred + coef per task
    clean = _arrays_digest(root)
    traces_before = task_traces(traces)
    clean_verify = run_cli(["verify", str(root)])
    assert clean_verify.returncode == 0, clean_verify.stderr
    assert "study 'demo': 32 chunk file(s) of 16 done task(s) read" in clean_verify.stdout
    assert "all match their digests" in clean_verify.stdout

    group = root / "arrays.zarr" / "demo"
    (group / "pred" / "c" / "1" / "0" / "3").unlink()  # split 1, targets 60..80
    _bit_flip(group / "coef" / "c" / "0" / "0" / "7")  # split 0, targets 140..160: same size, other bytes
    owners = {demo_task_key(db, 1, [60, 80]), demo_task_key(db, 0, [140, 160])}

    # the report's cheap check (stat) names the missing chunk
    refused = run_cli(["report", str(root)])
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "'pred' (c/1/0/3 missing)" in refused.stderr and "Traceback" not in refused.stderr

    found = run_cli(["verify", str(root), "--study", "demo"])
    assert found.returncode == 1, found.stdout + found.stderr
    out = found.stdout
    assert "32 chunk file(s) of 16 done task(s) read" in out and "2 damaged" in out
    assert "missing     array 'pred' chunk c/1/0/3 (task " in out
    assert "undecodable array 'coef' chunk c/0/0/7 (task " in out and "checksum" in out
    for key in owners:
        assert f"task {key[:12]} demo.ridge" in out
    assert "2 task(s) set back to pending" in out
    assert {k for (k,) in query(db, "SELECT key FROM task WHERE status = 'pending'")} == owners
    assert query(db, "SELECT count(*) FROM score s JOIN task t ON t.id = s.task_id WHERE t.status = 'pending'") == [(0,)]
    assert sorted(query(db, "SELECT array, chunk, problem FROM task_chunk WHERE problem IS NOT NULL")) == [
        ("coef", "c/0/0/7", "undecodable"), ("pred", "c/1/0/3", "missing")]

    # damage stays known until a run repairs it: verify again exits 1, report names both arrays
    again = run_cli(["verify", str(root)])
    assert again.returncode == 1 and "2 chunk(s) found damaged by an earlier verify wait for `regulas run`" in again.stdout
    refused = run_cli(["report", str(root)])
    assert refused.returncode == 2
    assert "'coef' (c/0/0/7 undecodable); 'pred' (c/1/0/3 missing)" in refused.stderr

    rerun = run_cli(argv)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "14 already done, 2 to run" in rerun.stderr
    traces_after = task_traces(traces)
    assert {k for k in traces_after if traces_after[k] != traces_before[k]} == owners
    assert _arrays_digest(root) == clean  # arrays and scores equal the clean run's, rows not doubled
    assert query(db, "SELECT status, count(*) FROM task GROUP BY status") == [("done", 16)]
    assert query(db, "SELECT count(*) FROM task_chunk WHERE problem IS NOT NULL") == [(0,)]
    repaired = run_cli(["verify", str(root)])
    assert repaired.returncode == 0 and "all match their digests" in repaired.stdout, repaired.stdout
    assert run_cli(["report", str(root)]).returncode == 0

    # a bit flipped after the last verify: same size, so only the crc32c codec can tell; the
    # report stops with one message that names verify, not with a traceback
    _bit_flip(group / "pred" / "c" / "0" / "0" / "5")
    flipped = run_cli(["report", str(root)])
    assert flipped.returncode == 2, flipped.stdout + flipped.stderr
    assert "fails its checksum" in flipped.stderr and "regulas verify" in flipped.stderr
    assert "Traceback" not in flipped.stderr


def _store_with_tasks(root: Path, n_tasks: int = 3) -> tuple[Engine, int, StudyArrays, list[Task]]:
    """A store with study 's' whose tasks each own a row block of a plain and of a sharded array."""
    write_marker(StoreLayout(root))
    engine = open_all(root / "regulas.db")
    record = open_study(engine, name="s", workload="demo", config_yaml="seed: 1\n", config_hash="h" * 64,
                        root_seed=1, package_versions={})
    arrays = StudyArrays(root / "arrays.zarr", "s")
    arrays.create(ArraySpec("a", (2 * n_tasks, 6), (2, 3)))
    arrays.create(ArraySpec("b", (2 * n_tasks, 6), (1, 3), shards=(2, 6)))
    tasks = [Task(f"k{i}", "t", {"i": i}, i, (Region.of("a", slice(2 * i, 2 * i + 2), slice(0, 6)),
                                                Region.of("b", slice(2 * i, 2 * i + 2), slice(0, 6))))
             for i in range(n_tasks)]
    status = register_tasks(engine, record.id, tasks)
    return engine, record.id, arrays, [t for t in tasks if t.key in status]


def _commit(engine: Engine, study_id: int, arrays: StudyArrays, tasks: list[Task], *, digests: bool = True) -> None:
    sink = Sink(engine, study_id, {k: v.id for k, v in register_tasks(engine, study_id, tasks).items()})
    for i, t in enumerate(tasks):
        writer = RegionWriter(str(arrays.store_path), "s", t.regions)
        for r in t.regions:
            writer.write(r, np.arange(12, dtype=float).reshape(2, 6) + 100 * i)
        chunks = [(c.array, c.chunk, c.size, c.sha256) for c in writer.chunk_digests()] if digests else []
        sink.add(TaskOutcome(t.key, "done", 0.0, 1.0, "w", chunks=chunks))
    sink.close()


def test_commit_records_every_chunk_and_shard_file_and_verify_tells_damage_apart(tmp_path: Path) -> None:
    root = tmp_path / "store"
    engine, study_id, arrays, tasks = _store_with_tasks(root)
    _commit(engine, study_id, arrays, tasks)
    db = root / "regulas.db"
    rows = query(db, "SELECT t.key, c.array, c.chunk, c.size FROM task_chunk c JOIN task t ON t.id = c.task_id ORDER BY c.id")
    # a: two chunks (3 columns each) per task; b: one shard file per task (two rows of chunks)
    assert [(k, a, c) for k, a, c, _n in rows] == [
        (f"k{i}", a, c) for i in range(3) for a, c in (("a", f"c/{i}/0"), ("a", f"c/{i}/1"), ("b", f"c/{i}/0"))]
    assert all(n == (root / "arrays.zarr" / "s" / a / c).stat().st_size for _k, a, c, n in rows)
    assert "Crc32cCodec" in repr(arrays.open("a").metadata.codecs)
    check_study_arrays(StoreLayout(root), "s")  # clean

    group = root / "arrays.zarr" / "s"
    _bit_flip(group / "b" / "c" / "1" / "0")  # a shard: its inner chunk fails crc32c
    shutil.copyfile(group / "a" / "c" / "0" / "0", group / "a" / "c" / "2" / "1")  # valid bytes, wrong place
    (check,) = verify_store(root)
    assert (check.chunks, check.tasks) == (9, 3)
    assert sorted((b.array, b.chunk, b.problem, b.task_key) for b in check.bad) == [
        ("a", "c/2/1", "mismatch", "k2"), ("b", "c/1/0", "undecodable", "k1")]
    assert check.reopened == 2 and check.damaged and check.unverified == 0
    assert query(db, "SELECT key, status FROM task ORDER BY key") == [("k0", "done"), ("k1", "pending"), ("k2", "pending")]
    with pytest.raises(StoreError, match=r"'a' \(c/2/1 mismatch\); 'b' \(c/1/0 undecodable\)"):
        check_study_arrays(StoreLayout(root), "s")
    # the recomputed tasks' commit replaces their digests and clears the problems
    _commit(engine, study_id, arrays, tasks[1:])
    assert query(db, "SELECT count(*), count(problem) FROM task_chunk") == [(9, 0)]
    (check,) = verify_store(root)
    assert not check.bad and not check.damaged
    engine.dispose()


def test_schema_5_store_is_upgraded_by_verify_and_reported_unverified(tmp_path: Path) -> None:
    root = tmp_path / "store"
    engine, study_id, arrays, tasks = _store_with_tasks(root)
    _commit(engine, study_id, arrays, tasks, digests=False)  # what a schema-5 driver committed
    engine.dispose()
    db = root / "regulas.db"
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE task_chunk")
    conn.execute("DELETE FROM regulas_meta WHERE key = 'chunk_digests_since'")
    conn.execute("UPDATE regulas_meta SET value = '5' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    (root / "arrays.zarr" / "s" / "a" / "c" / "0" / "0").unlink()  # not detectable: no digest was recorded

    proc = run_cli(["verify", str(root)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "study 's': 0 chunk file(s) of 0 done task(s) read (0 B in" in proc.stdout and "no chunk digests recorded" in proc.stdout
    assert "unverified: 3 done task(s) finished before this store recorded chunk digests" in proc.stdout
    assert "damaged" not in proc.stdout.replace("not counted as damaged", "")
    assert query(db, "SELECT value FROM regulas_meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    assert query(db, "SELECT status, count(*) FROM task GROUP BY status") == [("done", 3)]

    # a task committed after the upgrade has digests and is verified; the others stay unverified
    engine = open_all(db)
    reopen_tasks(engine, study_id, [tasks[0].key])  # as a rerun does: a done task is committed again only once reopened
    _commit(engine, study_id, arrays, tasks[:1])
    engine.dispose()
    proc = run_cli(["verify", str(root)])
    assert proc.returncode == 0 and "3 chunk file(s) of 1 done task(s) read" in proc.stdout, proc.stdout
    assert "unverified: 2 done task(s)" in proc.stdout


def test_verify_usage_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = run_cli(["verify", str(tmp_path / "nowhere")])
    assert missing.returncode == 2 and missing.stderr.startswith("regulas: error: no regulas store at")
    root = tmp_path / "store"
    _store_with_tasks(root)[0].dispose()
    unknown = run_cli(["verify", str(root), "--study", "other"])
    assert unknown.returncode == 2 and "no study named 'other'" in unknown.stderr and "studies there: 's'" in unknown.stderr
    assert run_cli(["verify"]).returncode == 2  # argparse: the store root is required

