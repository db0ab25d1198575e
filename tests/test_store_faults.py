"""Store faults made for real: a read-only mount, a full disk (a small tmpfs), damaged Zarr
metadata and a reader that goes away. Each is one message (exit 2, or quiet for a broken
pipe), nothing created where nothing may be, and nothing lost.

Tests and CI run as root, which ignores permission bits: read-only stores are a bind mount
remounted read-only and a full disk is a tmpfs of a few MiB. Where mounting is not allowed
(no CAP_SYS_ADMIN, e.g. an unprivileged container) those tests skip and say so.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zarr

from conftest import CONFIGS, QUIET, query, regulas_cmd, run_cli

pytestmark = pytest.mark.slow

SMALL = ("demo.n_targets=200", "demo.block_size=20", "demo.n_splits=5", "cluster.n_workers=2")
SCORES = "SELECT target, method, split, metric, value, value_is_nan FROM score ORDER BY target, split, metric"


def _mount(args: list[str]) -> None:
    proc = subprocess.run(["mount", *args], capture_output=True, text=True)
    if proc.returncode:
        pytest.skip(f"cannot mount here (mount {' '.join(args)}: {proc.stderr.strip()}); needs root with CAP_SYS_ADMIN")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


@pytest.fixture
def read_only_view(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(source folder, a read-only bind mount of it)."""
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    src, view = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    view.mkdir()
    _mount(["--bind", str(src), str(view)])
    try:
        _mount(["-o", "remount,bind,ro", str(view)])
        yield src, view
    finally:
        _umount(view)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of 2.5 MiB: with the 2 MiB a run sets aside, no room for all of the small demo study."""
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    disk = tmp_path / "disk"
    disk.mkdir()
    _mount(["-t", "tmpfs", "-o", "size=2560k", "tmpfs", str(disk)])
    try:
        yield disk
    finally:
        _umount(disk)


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    errors = [line for line in proc.stderr.splitlines() if "Traceback" in line or line.startswith("regulas: error: ")]
    assert len(errors) == 1 and errors[0].startswith("regulas: error: "), proc.stderr
    return errors[0]


def _done(db: Path) -> int:
    """Done tasks so far; 0 while the file exists but the driver has not committed its schema."""
    if not db.exists():
        return 0
    try:
        return int(query(db, "SELECT count(*) FROM task WHERE status='done'")[0][0])
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        return 0


def _started(argv: list[str], db: Path, *, at_least: int) -> subprocess.Popen[bytes]:
    """A run started in the background, once ``at_least`` of its tasks are done."""
    proc = subprocess.Popen(regulas_cmd(*argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _done(db) < at_least:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the run ended (or stalled) before {at_least} tasks were done")
        time.sleep(0.2)
    return proc


def _argv(root: Path) -> list[str]:
    return ["run", str(CONFIGS / "demo.yaml"), f"store.root={root}", *SMALL, *QUIET]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished small demo study, run once for the module; tests work on copies."""
    root = tmp_path_factory.mktemp("finished") / "out"
    first = run_cli(_argv(root))
    assert first.returncode == 0, first.stdout + first.stderr
    return root


def _copy(finished: Path, root: Path) -> list[str]:
    """A copy of the finished store at ``root``; the argv that runs (resumes) it there."""
    shutil.copytree(finished, root, ignore=shutil.ignore_patterns("leases", "reports"))
    return _argv(root)


def test_read_only_store_is_read_by_status_and_report_and_refused_by_run(
    tmp_path: Path, finished: Path, read_only_view: tuple[Path, Path]
) -> None:
    src, view = read_only_view
    _copy(finished, src / "out")
    ro = view / "out"

    status = run_cli(["status", str(ro)])
    assert status.returncode == 0 and "tasks 50/50 done" in status.stdout, status.stdout + status.stderr

    report = run_cli(["report", str(ro)])
    assert report.returncode == 2
    line = _one_error_line(report)
    assert f"the report folder {ro}/reports/demo" in line and "is not writable (Read-only file system)" in line, line
    assert "--out DIR" in line

    out = tmp_path / "elsewhere"
    report = run_cli(["report", str(ro), "--out", str(out)])
    assert report.returncode == 0, report.stderr
    assert (out / "index.html").is_file() and (out / "demo_performance.png").is_file()

    for root in (ro, ro / "new"):  # an existing read-only store, and a new store inside a read-only folder
        run = run_cli(_argv(root))
        assert run.returncode == 2
        line = _one_error_line(run)
        assert f"store.root {root}" in line and "is not writable (Read-only file system)" in line, line
    assert not (src / "out" / "new").exists()


def test_read_only_copy_of_a_wal_store_is_read(tmp_path: Path, read_only_view: tuple[Path, Path]) -> None:
    """A store whose driver was killed keeps its last commits in the WAL file; a reader on a
    read-only mount cannot create the WAL index and used to say "not a regulas database"."""
    src, view = read_only_view
    root = src / "out"
    argv = _argv(root) + ["demo.n_targets=2000"]
    proc = _started(argv, root / "regulas.db", at_least=5)
    proc.kill()
    proc.wait()
    assert (root / "regulas.db-wal").stat().st_size > 0
    status = run_cli(["status", str(view / "out")])
    assert status.returncode == 0, status.stderr
    assert "driver gone" in status.stdout and " done" in status.stdout, status.stdout


def test_full_disk_stops_the_run_with_one_message_and_the_rerun_completes(finished: Path, small_disk: Path) -> None:
    root = small_disk / "out"
    argv = _argv(root)
    full = run_cli(argv)
    assert full.returncode == 2, full.stdout + full.stderr
    line = _one_error_line(full)
    assert f"no space left for the store at {root}" in line and "rerun the same command to resume" in line, line
    db = root / "regulas.db"
    assert query(db, "SELECT status FROM study") == [("interrupted",)]
    # a full disk is not the tasks' fault: none is recorded as failed or charged an attempt
    assert query(db, "SELECT count(*) FROM task WHERE status='failed' OR (status!='done' AND attempts>0)") == [(0,)]

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    again = run_cli(argv)
    assert again.returncode == 0, again.stdout + again.stderr
    assert query(db, SCORES) == query(finished / "regulas.db", SCORES)
    pred = zarr.open_array(str(root / "arrays.zarr"), path="demo/pred", mode="r")[:]
    np.testing.assert_array_equal(pred, zarr.open_array(str(finished / "arrays.zarr"), path="demo/pred", mode="r")[:])


def test_damaged_array_metadata_is_one_message_and_restart_recovers(tmp_path: Path, finished: Path) -> None:
    root = tmp_path / "out"
    argv = _copy(finished, root)
    meta = root / "arrays.zarr" / "demo" / "pred" / "zarr.json"
    meta.write_text("garbage{")
    for args in (argv, ["report", str(root)]):
        proc = run_cli(args)
        assert proc.returncode == 2
        line = _one_error_line(proc)
        assert f"the metadata of Zarr array demo/pred cannot be read ({meta}: JSONDecodeError" in line, line
        assert "--restart" in line
    restarted = run_cli([*argv, "--restart"])
    assert restarted.returncode == 0, restarted.stderr
    assert query(root / "regulas.db", SCORES) == query(finished / "regulas.db", SCORES)


def test_broken_pipe_is_quiet(finished: Path) -> None:
    # a reader that closes at once, as `regulas status ROOT | head -0` does
    proc = subprocess.Popen(regulas_cmd("status", str(finished)), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141  # 128 + SIGPIPE, as a shell reports it
    assert err == ""


def test_status_reads_the_drivers_snapshot_where_it_cannot_read_the_wal(
    read_only_view: tuple[Path, Path]
) -> None:
    """While a driver writes, a reader that cannot use the WAL index (here: a read-only view
    of the store, as a login node reading a compute node's store is for SQLite) reports the
    progress the driver snapshots beside its lease, between what the database said just
    before and just after."""
    src, view = read_only_view
    root = src / "out"
    db = root / "regulas.db"
    proc = _started([*_argv(root), "demo.sleep_s=0.3", "cluster.n_workers=1"], db, at_least=3)
    try:
        time.sleep(2.5)  # one snapshot period
        before = _done(db)
        status = run_cli(["status", str(view / "out")])
        after = _done(db)
        assert proc.poll() is None, "the run ended before the status was read"
    finally:
        proc.kill()
        proc.wait()
    assert status.returncode == 0, status.stderr
    first = status.stdout.splitlines()[0]
    assert "from the driver's snapshot" in first and "is not writable here" in first, status.stdout
    done = int(first.split("tasks ")[1].split("/")[0])
    # the snapshot counts results as they arrive, the database when they are committed (every second)
    assert before - 5 <= done <= after + 5, (before, done, after, first)
    assert f"driver: pid {proc.pid} on " in status.stdout
