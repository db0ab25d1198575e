"""Stalls (issue 11): frozen workers and tasks over their time limit, with real processes.

A worker is frozen with SIGSTOP (the driver's LocalCluster worker processes are found as
its children running multiprocessing's ``spawn_main``); a hung task is the demo's
``hang_blocks``. The time limit's automatic rule is unit-tested.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import QUIET, REPO, query, regulas_cmd, run_cli
from regulas.core.config.sections import ExecutionSection
from regulas.core.errors import ConfigError
from regulas.execution.stalls import AUTO_FACTOR, AUTO_FLOOR_S, AUTO_MIN_FINISHED, TaskLimits

#: 15 tasks of about half a second each
STUDY = ("demo.n_targets=100", "demo.block_size=20", "demo.n_splits=3", "demo.sleep_s=0.5", "execution.commit_every_s=0.1")


def _scores(db: Path) -> list[tuple]:
    return query(db, "SELECT target, method, split, metric, value, value_is_nan FROM score ORDER BY target, split, metric")


def _status(db: Path) -> Counter:
    return Counter(dict(query(db, "SELECT status, count(*) FROM task GROUP BY status")))


@pytest.fixture(scope="module")
def clean_scores(tmp_path_factory: pytest.TempPathFactory, demo_config_path: Path) -> list[tuple]:
    """The scores of an uninterrupted run of STUDY."""
    root = tmp_path_factory.mktemp("clean") / "out"
    proc = run_cli(["run", str(demo_config_path), f"store.root={root}", *STUDY, "demo.sleep_s=0", *QUIET])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return _scores(root / "regulas.db")


@pytest.fixture(scope="module")
def demo_config_path() -> Path:
    return REPO / "configs" / "demo.yaml"


def _wait_until(what: str, ready: Callable[[], bool], proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the driver ended before {what}: {proc.communicate()}"
        try:
            if ready():
                return
        except Exception:  # noqa: BLE001 - the database may not have its tables yet
            pass
        time.sleep(0.1)
    raise AssertionError(f"not {what} after {timeout} s")


def _worker_pids(driver: int) -> list[int]:
    """The LocalCluster worker processes of ``driver`` (its children started by multiprocessing's spawn)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == driver and b"spawn_main" in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return sorted(pids)


def _kill(pids: list[int], sig: signal.Signals = signal.SIGKILL) -> None:
    for pid in pids:
        if pid <= 0:  # 0 would be this test's own process group
            continue
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(regulas_cmd(*argv), cwd=REPO, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _run_and_stop_a_worker(argv: list[str], n_workers: int, done: int) -> tuple[int, int, str, float]:
    """Run ``regulas run``; SIGSTOP one of its ``n_workers`` LocalCluster workers once ``done``
    tasks are done. (the worker's pid, the driver's exit code, its stderr, seconds from the
    SIGSTOP to the driver's exit)."""
    db = Path(next(a for a in argv if a.startswith("store.root=")).split("=", 1)[1]) / "regulas.db"
    proc = _start(argv)
    victim = 0
    try:
        _wait_until(f"{n_workers} workers started", lambda: len(_worker_pids(proc.pid)) == n_workers, proc)
        _wait_until(f"{done} tasks done", lambda: _status(db)["done"] >= done, proc)
        victim = _worker_pids(proc.pid)[0]
        os.kill(victim, signal.SIGSTOP)
        stopped = time.monotonic()
        _, stderr = proc.communicate(timeout=150)
        return victim, proc.returncode, stderr, time.monotonic() - stopped
    finally:
        _kill([victim])
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_stopped_worker_among_two_its_task_runs_elsewhere(tmp_path: Path, demo_config_path: Path,
                                                          clean_scores: list[tuple]) -> None:
    """Dask's worker TTL (cluster.worker_ttl_s) restarts the frozen worker; its task runs on the
    other one and the study completes with the same results as an uninterrupted run."""
    root = tmp_path / "out"
    db = root / "regulas.db"
    argv = ["run", str(demo_config_path), f"store.root={root}", *STUDY, "cluster.n_workers=2",
            "cluster.worker_ttl_s=10", *QUIET]
    victim, code, stderr, took = _run_and_stop_a_worker(argv, 2, done=3)
    assert code == 0, stderr
    assert took < 120, took
    assert f"(host 127.0.0.1, pid {victim}) is unresponsive: no heartbeat for" in stderr, stderr
    assert "is gone (restarted or removed by Dask); its tasks run on other workers" in stderr, stderr
    assert "Traceback" not in stderr, stderr
    assert _status(db) == Counter({"done": 15})
    assert query(db, "SELECT status FROM study") == [("done",)]
    assert _scores(db) == clean_scores


def test_only_worker_stopped_stops_the_run_then_it_resumes(tmp_path: Path, demo_config_path: Path,
                                                           clean_scores: list[tuple]) -> None:
    """The original failure: with the only worker frozen the driver printed nothing and never
    stopped. Now it stops about startup_timeout_s after the worker went silent, with one
    message naming it (exit 2, study interrupted, done tasks kept), and a rerun completes."""
    root = tmp_path / "out"
    db = root / "regulas.db"
    # a long worker TTL: Dask must not replace the frozen worker before the driver gives up
    argv = ["run", str(demo_config_path), f"store.root={root}", *STUDY, "cluster.n_workers=1",
            "cluster.startup_timeout_s=10", "cluster.worker_ttl_s=300", *QUIET]
    victim, code, stderr, took = _run_and_stop_a_worker(argv, 1, done=2)
    assert code == 2, stderr
    # silent for 10 s (stalls.UNRESPONSIVE_AFTER_S), then startup_timeout_s, then closing the cluster
    assert took < 10 + 10 + 40, took
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("regulas: error:")]
    assert len(errors) == 1 and errors == stderr.splitlines()[-1:], stderr
    assert "no Dask worker has answered for 10 s (cluster.startup_timeout_s)" in errors[0]
    assert f"(host 127.0.0.1, pid {victim}), no heartbeat for " in errors[0]
    assert "SIGSTOP" in errors[0] and "rerun the same command to resume" in errors[0]
    assert query(db, "SELECT status FROM study") == [("interrupted",)]
    done = _status(db)["done"]
    assert 2 <= done < 15
    assert query(db, "SELECT count(*) FROM score")[0][0] == done * 20 * 2

    resumed = run_cli(argv)  # a new cluster
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{done} already done" in resumed.stderr
    assert _status(db) == Counter({"done": 15})
    assert _scores(db) == clean_scores


def test_task_over_its_time_limit_is_retried_elsewhere_then_recorded_failed(tmp_path: Path, demo_config_path: Path) -> None:
    """Block 1 hangs: each of its tasks is cancelled after execution.task_timeout_s, started
    again on another worker, and recorded failed after max_attempts; the siblings complete."""
    root = tmp_path / "out"
    db = root / "regulas.db"
    proc = run_cli(["run", str(demo_config_path), f"store.root={root}", "demo.n_targets=60", "demo.block_size=20",
                    "demo.n_splits=2", "demo.hang_blocks=[1]", "cluster.n_workers=2", "execution.task_timeout_s=2",
                    "execution.max_attempts=2", *QUIET], timeout=150)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert _status(db) == Counter({"done": 4, "failed": 2})
    assert query(db, "SELECT DISTINCT attempts FROM task WHERE status = 'done'") == [(1,)]
    failed = query(db, "SELECT block, attempts, error_type, error_message, worker FROM task WHERE status = 'failed'")
    for block, attempts, etype, message, worker in failed:
        assert '"block": 1' in block
        assert attempts == 2 and etype == "regulas.TaskTimeout"
        assert message.startswith("ran over its time limit of execution.task_timeout_s=2 s: cancelled after ")
        assert f"on worker {worker} (host " in message and worker.startswith("tcp://")
    lines = [line for line in proc.stderr.splitlines() if "over its time limit of execution.task_timeout_s=2 s" in line]
    assert sum("attempt 2 of 2 is submitted again" in line for line in lines) == 2, proc.stderr
    assert sum("it used its 2 attempts and is recorded failed" in line for line in lines) == 2, proc.stderr
    assert query(db, "SELECT count(*) FROM score")[0][0] == 4 * 20 * 2


def test_automatic_time_limit_is_ten_times_the_median_of_finished_tasks_of_the_kind() -> None:
    limits = TaskLimits(None)
    for seconds in [10.0, 20.0, 30.0, 1000.0][: AUTO_MIN_FINISHED - 1]:
        limits.finished("a", seconds)
    assert limits.limit("a") is None  # fewer than 5 finished: no limit yet
    limits.finished("a", 40.0)
    assert limits.limit("a") == AUTO_FACTOR * 30.0 == 300.0  # the median, robust to the 1000 s one
    assert "300 s, 10 x the median 30 s of the 5 finished a tasks" in limits.describe("a")
    assert limits.limit("b") is None  # each kind has its own
    for _ in range(5):
        limits.finished("b", 0.05)
    assert limits.limit("b") == AUTO_FLOOR_S == 60.0  # 10 x 0.05 s is within a loaded machine's jitter
    assert limits.limit("a") == 300.0

    explicit = TaskLimits(7.0)
    assert explicit.limit("a") == 7.0  # before any task finished, and whatever finishes
    for _ in range(10):
        explicit.finished("a", 100.0)
    assert explicit.limit("a") == 7.0 and explicit.describe("a") == "execution.task_timeout_s=7 s"

    off = TaskLimits(0.0)
    for _ in range(10):
        off.finished("a", 1.0)
    assert off.limit("a") is None  # 0: no limit at all


def test_task_timeout_must_not_be_negative() -> None:
    ExecutionSection(task_timeout_s=0).check("execution", None)
    ExecutionSection(task_timeout_s=None).check("execution", None)
    with pytest.raises(ConfigError, match=r"key 'execution.task_timeout_s': out of range \(given: -1\); expected a value >= 0"):
        ExecutionSection(task_timeout_s=-1).check("execution", None)
