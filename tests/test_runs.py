"""End-to-end runs of the demo study on a real LocalCluster, real SQLite, real Zarr.

Covers: the shipped demo; resume after SIGKILL of the driver (same results as an
uninterrupted run, no done task computed again); a failing task (recorded with its
traceback, siblings complete, exit code 1, retried on the next run up to the attempt
limit); a worker process killed mid-run (study completes, no lost or duplicate rows).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import zarr
from distributed import Client, LocalCluster
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error, r2_score
from sklearn.model_selection import KFold

from conftest import QUIET, REPO, demo_task_key, query, regulas_cmd, run_cli, task_traces, traced_demo_run

pytestmark = pytest.mark.slow

SMALL = ("demo.n_targets=200", "demo.block_size=20", "demo.n_splits=5", "cluster.n_workers=2")


def _scores(db: Path) -> list[tuple]:
    return query(db, "SELECT target, method, split, metric, value, value_is_nan FROM score ORDER BY target, split, metric")


def _task_status(db: Path) -> Counter:
    return Counter(dict(query(db, "SELECT status, count(*) FROM task GROUP BY status")))


def test_demo_end_to_end(tmp_path: Path, demo_config: Path) -> None:
    root = tmp_path / "out"
    proc = run_cli(["run", str(demo_config), f"store.root={root}", *QUIET])
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "dashboard" not in proc.stderr  # turned off above
    db = root / "regulas.db"
    assert _task_status(db) == Counter({"done": 100})
    assert query(db, "SELECT name, status, root_seed FROM study") == [("demo", "done", 42)]
    (n_rows,) = query(db, "SELECT count(*) FROM score")[0]
    assert n_rows == 1000 * 5 * 2

    # Independent check: refit one block with scikit-learn on the same split and compare
    # predictions in Zarr and metrics in SQLite, for every target of the block.
    group = zarr.open_group(str(root / "arrays.zarr"), path="demo", mode="r")
    X, Y, pred = group["X"][:], group["Y"][:], group["pred"][:]
    assert pred.shape == (5, 120, 1000)
    (block,) = query(db, "SELECT block FROM task WHERE kind='demo.ridge' ORDER BY id LIMIT 1")[0]
    b = json.loads(block)
    start, stop, split = b["targets"][0], b["targets"][1], b["split"]
    train, test = list(KFold(5, shuffle=True, random_state=b["split_seed"]).split(X))[split]
    ref = Ridge(alpha=1.0).fit(X[train], Y[train, start:stop]).predict(X[test])
    np.testing.assert_allclose(pred[split][np.ix_(test, np.arange(start, stop))], ref, rtol=0, atol=1e-10)
    # every sample is a test sample in exactly one split
    assert (np.isfinite(pred).sum(axis=0) == 1).all()
    db_mse = dict(query(db, "SELECT target, value FROM score WHERE metric='mse' AND split=?", (split,)))
    db_r2 = dict(query(db, "SELECT target, value FROM score WHERE metric='r2' AND split=?", (split,)))
    for j in range(start, stop):
        name = f"target{j:05d}"
        assert db_mse[name] == pytest.approx(mean_squared_error(Y[test, j], pred[split, test, j]), rel=1e-12)
        assert db_r2[name] == pytest.approx(r2_score(Y[test, j], pred[split, test, j]), rel=1e-10)
    arrays = {r[0] for r in query(db, "SELECT name FROM zarr_array")}
    assert arrays == {"X", "W", "Y", "pred", "coef"}
    figure = root / "reports" / "demo" / "demo_performance.png"
    assert f"figure:   {figure}" in proc.stdout
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _wait_for_done(db: Path, at_least: int, proc: subprocess.Popen, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the driver ended before it could be interrupted"
        if db.is_file():
            try:
                done = _task_status(db).get("done", 0)
            except Exception:  # noqa: BLE001 - the DB may not have its tables yet
                done = 0
            if done >= at_least:
                return done
        time.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} tasks done after {timeout} s")


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_prints_one_line_and_marks_the_study_interrupted(tmp_path: Path, demo_config: Path) -> None:
    root = tmp_path / "out"
    db = root / "regulas.db"
    argv = ["run", str(demo_config), f"store.root={root}", *SMALL, "demo.sleep_s=0.3", *QUIET]
    # a terminal's foreground job: SIGINT at its default (a test run started in the background
    # of a shell without job control, `cmd &`, inherits it ignored, and so would the driver)
    proc = subprocess.Popen(regulas_cmd(*argv), cwd=REPO, start_new_session=True,
                            preexec_fn=_default_sigint,  # noqa: PLW1509 - only resets one signal
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_done(db, 4, proc)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
        _, stderr = proc.communicate(timeout=120)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert stderr.splitlines()[-1] == (
        "regulas: interrupted; finished tasks are saved, rerun the same command to resume"
    ), stderr
    assert query(db, "SELECT status FROM study") == [("interrupted",)]


def test_busy_dashboard_port_is_one_plain_line(tmp_path: Path, demo_config: Path) -> None:
    import socket

    root = tmp_path / "out"
    holder = socket.socket()
    try:
        try:
            holder.bind(("0.0.0.0", 8787))
            holder.listen()
        except OSError:
            pass  # something else holds the port already: just as good
        proc = run_cli(["run", str(demo_config), f"store.root={root}", "demo.n_targets=40", "demo.block_size=20",
                        "cluster.n_workers=1", "cluster.dashboard_address=:8787", "execution.progress=log"])
    finally:
        holder.close()
    assert proc.returncode == 0, proc.stderr
    assert "already in use" not in proc.stderr and "warnings.warn" not in proc.stderr, proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("dashboard: ")]
    assert line.endswith("/status (port 8787 was taken)"), line
    log = root / "logs" / "driver.log"
    assert "Port 8787 is already in use" in log.read_text()
    assert f"messages of dask and other libraries: {log}" in proc.stderr


def test_resume_after_driver_sigkill(tmp_path: Path, demo_config: Path) -> None:
    common = [*SMALL, "demo.sleep_s=0.15", "execution.commit_every_s=0.1", *QUIET]
    traces = tmp_path / "traces"
    traces.mkdir()
    root = tmp_path / "interrupted"
    db = root / "regulas.db"
    argv = ["run", str(demo_config), f"store.root={root}", f"demo.trace_dir={traces}", *common]
    proc = subprocess.Popen(regulas_cmd(*argv), cwd=REPO, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for_done(db, 12, proc)
        status = run_cli(["status", str(root)])  # readable while the driver writes
        assert status.returncode == 0 and "study 'demo' (demo): running" in status.stdout, status.stdout
        assert "driver gone" not in status.stdout
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the orphaned LocalCluster workers
        except ProcessLookupError:
            pass
    assert proc.returncode == -signal.SIGKILL
    assert (root / "leases" / "demo.lease").is_file()  # left behind: its pid is gone
    status = run_cli(["status", str(root)])
    assert "running" in status.stdout and "  driver gone (last heartbeat " in status.stdout, status.stdout
    assert "rate" not in status.stdout and "ETA" not in status.stdout, status.stdout
    done_before = {k for (k,) in query(db, "SELECT key FROM task WHERE status='done'")}
    assert 12 <= len(done_before) < 50
    rows_before = query(db, "SELECT count(*) FROM score")[0][0]
    assert rows_before == len(done_before) * 20 * 2  # rows and done marks committed together
    traces_before = task_traces(traces)

    resumed = run_cli(["run", str(demo_config), f"store.root={root}", f"demo.trace_dir={traces}", *common])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{len(done_before)} already done" in resumed.stderr
    assert f"taking over the stale lease of study 'demo' held by pid {proc.pid} on " in resumed.stderr, resumed.stderr
    assert not (root / "leases" / "demo.lease").exists()  # released at the end
    traces_after = task_traces(traces)
    recomputed = [k for k in done_before if traces_after[k] != traces_before[k]]
    assert recomputed == []  # no task that was done is computed again
    assert set(traces_after) == {k for (k,) in query(db, "SELECT key FROM task")}
    assert _task_status(db) == Counter({"done": 50})
    assert query(db, "SELECT status, runs FROM study") == [("done", 2)]

    clean = tmp_path / "uninterrupted"
    straight = run_cli(["run", str(demo_config), f"store.root={clean}", *common])
    assert straight.returncode == 0, straight.stdout + straight.stderr
    assert _scores(db) == _scores(clean / "regulas.db")
    assert query(db, "SELECT key, seed FROM task ORDER BY key") == query(clean / "regulas.db", "SELECT key, seed FROM task ORDER BY key")
    a = zarr.open_array(str(root / "arrays.zarr"), path="demo/pred", mode="r")[:]
    b = zarr.open_array(str(clean / "arrays.zarr"), path="demo/pred", mode="r")[:]
    np.testing.assert_array_equal(a, b)


def test_failing_task_is_recorded_and_siblings_complete(tmp_path: Path, demo_config: Path) -> None:
    root = tmp_path / "out"
    traces = tmp_path / "traces"
    traces.mkdir()
    argv = ["run", str(demo_config), f"store.root={root}", f"demo.trace_dir={traces}",
            "demo.fail_blocks=[3]", "execution.max_attempts=2", *SMALL, *QUIET]
    first = run_cli(argv)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "5 task(s) not done" in first.stdout
    db = root / "regulas.db"
    assert _task_status(db) == Counter({"done": 45, "failed": 5})
    failed = query(db, "SELECT block, attempts, error_type, error_message, traceback FROM task WHERE status='failed'")
    for block, attempts, etype, message, tb in failed:
        assert '"block": 3' in block and attempts == 1
        assert etype == "builtins.RuntimeError"
        assert message == "demo.fail_blocks asks block 3 to fail"
        assert "Traceback (most recent call last)" in tb and "run_task" in tb
    assert query(db, "SELECT count(*) FROM score")[0][0] == 45 * 20 * 2
    assert query(db, "SELECT status FROM study") == [("failed",)]
    status = run_cli(["status", str(root)])
    assert "5 failed" in status.stdout and "builtins.RuntimeError: demo.fail_blocks" in status.stdout
    assert "raise RuntimeError" in status.stdout  # the tail of each traceback

    second = run_cli(argv)  # failed tasks are retried, done ones are not
    assert second.returncode == 1
    assert "5 failed before, retried: attempt limit 2" in second.stderr
    assert {a for (a,) in query(db, "SELECT attempts FROM task WHERE status='failed'")} == {2}
    counts = task_traces(traces)
    done_keys = {k for (k,) in query(db, "SELECT key FROM task WHERE status='done'")}
    assert all(counts[k] == 1 for k in done_keys)
    assert all(counts[k] == 2 for (k,) in query(db, "SELECT key FROM task WHERE status='failed'"))

    third = run_cli(argv)  # the attempt limit is reached: nothing is run, still exit 1
    assert third.returncode == 1
    assert "5 failed 2 times and are not retried" in third.stderr
    assert sum(task_traces(traces).values()) == sum(counts.values())


def test_worker_killed_mid_run(tmp_path: Path, demo_config: Path) -> None:
    root = tmp_path / "out"
    db = root / "regulas.db"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        argv = ["run", str(demo_config), f"store.root={root}", "cluster=address", f"cluster.address={cluster.scheduler_address}",
                "demo.n_targets=200", "demo.block_size=20", "demo.sleep_s=0.2", "execution.commit_every_s=0.1",
                "execution.progress=log"]
        proc = subprocess.Popen(regulas_cmd(*argv), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            _wait_for_done(db, 10, proc)
            pids = client.run(os.getpid)
            victim = sorted(pids.values())[0]
            os.kill(victim, signal.SIGKILL)
            out, _ = proc.communicate(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, out
        assert victim not in client.run(os.getpid).values()  # the nanny replaced it
    assert _task_status(db) == Counter({"done": 50})
    total, distinct = query(
        db, "SELECT count(*), count(DISTINCT target || '/' || split || '/' || metric) FROM score"
    )[0]
    assert total == distinct == 200 * 5 * 2
    pred = zarr.open_array(str(root / "arrays.zarr"), path="demo/pred", mode="r")[:]
    assert (np.isfinite(pred).sum(axis=0) == 1).all()  # nothing lost in the arrays either


def _blas_threads() -> tuple[str | None, int]:
    from threadpoolctl import threadpool_info

    return os.environ.get("OPENBLAS_NUM_THREADS"), max((p["num_threads"] for p in threadpool_info()), default=1)


def test_local_backend_one_thread_per_worker_and_blas_pinned() -> None:
    from regulas.execution.cluster.base import default_workers
    from regulas.execution.cluster.local import LocalBackend, LocalClusterConfig

    backend = LocalBackend(LocalClusterConfig(dashboard_address=None))
    client = backend.start()
    try:
        nthreads = client.nthreads()
        assert len(nthreads) == default_workers() and set(nthreads.values()) == {1}
        for env_value, pool_threads in client.run(_blas_threads).values():
            assert env_value == "1" and pool_threads == 1
        # workers yield the CPU to the driver (scheduler, database writer): cluster.worker_nice
        # (Linux keeps a nice value per thread: the threads that run tasks, too)
        niced = min(os.nice(0) + 10, 19)
        assert set(client.run(os.nice, 0).values()) == {niced}
        assert client.submit(os.nice, 0, pure=False).result() == niced
    finally:
        backend.close()
    assert backend.client is None and backend.cluster is None


def test_local_backend_without_dashboard_does_not_claim_port_8787() -> None:
    """With ``dashboard_address: null`` a second cluster on the machine (8787 taken) starts
    without distributed's "Port 8787 is already in use" warning."""
    import socket
    import warnings

    from regulas.execution.cluster.local import LocalBackend, LocalClusterConfig

    with socket.socket() as holder:
        try:
            holder.bind(("", 8787))
            holder.listen()
        except OSError:
            pass  # somebody else holds it: the same condition
        backend = LocalBackend(LocalClusterConfig(n_workers=1, dashboard_address=None))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                link = backend.start().dashboard_link
            finally:
                backend.close()
    assert not [w for w in caught if "already in use" in str(w.message)]
    assert ":8787/" not in link


def _worker_error(text: str) -> None:
    import logging

    logging.getLogger("distributed.worker").error(text)


def test_hurried_close_of_a_stuck_cluster_is_bounded_and_kills_its_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """After Ctrl-C the driver closes its cluster in a hurry: an event loop the interrupt left
    stuck (the fault, caused for real by blocking the loop) costs HURRIED_CLOSE_S per close,
    not a minute each, and the worker processes are gone when close returns."""
    import threading

    import psutil

    from regulas.execution.cluster import base
    from regulas.execution.cluster.local import LocalBackend, LocalClusterConfig

    monkeypatch.setattr(base, "HURRIED_CLOSE_S", 2.0)
    backend = LocalBackend(LocalClusterConfig(n_workers=1, dashboard_address=None))
    client = backend.start()
    stuck = threading.Event()
    try:
        pids = list(client.run(os.getpid).values())
        client.loop.add_callback(stuck.wait, 120)  # blocks the cluster's event loop thread
        backend.hurry = True
        t0 = time.monotonic()
        backend.close()
        took = time.monotonic() - t0
    finally:
        stuck.set()
    assert took < 10, took  # two closes of 2 s each, plus the kill loop; 120 s without the hurry
    assert backend.client is None and backend.cluster is None
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def test_local_worker_log_records_go_to_the_run_log_file(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """A local worker process shares the driver's stderr: an ERROR it logs (a heartbeat that
    meets a closed scheduler at the end of a run) goes to the run's log file, not the console;
    before the store folder exists it is dropped and creates nothing."""
    from regulas.execution.cluster.local import LocalBackend, LocalClusterConfig

    log = tmp_path / "store" / "logs" / "driver.log"
    backend = LocalBackend(LocalClusterConfig(n_workers=1, dashboard_address=None))
    backend.worker_log = log
    client = backend.start()
    try:
        client.run(_worker_error, "before the store folder exists")
        assert not (tmp_path / "store").exists()
        log.parent.mkdir(parents=True)
        client.run(_worker_error, "a worker's heartbeat failed")
    finally:
        backend.close()
    err = capfd.readouterr().err
    assert "heartbeat failed" not in err and "before the store" not in err, err
    (line,) = log.read_text().splitlines()
    assert "worker pid" in line and "distributed.worker ERROR: a worker's heartbeat failed" in line, line


def test_task_that_kills_its_worker_is_recorded(tmp_path: Path, demo_config: Path) -> None:
    """A task that takes its worker process down (segfault, OOM kill) every time: Dask
    gives up on it after its allowed failures; it is recorded and the rest completes."""
    root = tmp_path / "out"
    proc = run_cli(["run", str(demo_config), f"store.root={root}", "demo.n_targets=100", "demo.block_size=20",
                    "demo.n_splits=2", "demo.crash_blocks=[2]", "cluster.n_workers=2", *QUIET])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    # distributed's own stderr handlers (distributed.client: "Couldn't gather keys", when a
    # result is lost with its worker) write to the log file, not the console
    assert "Couldn't gather" not in proc.stderr and "WARNING" not in proc.stderr, proc.stderr
    db = root / "regulas.db"
    assert _task_status(db) == Counter({"done": 8, "failed": 2})
    for block, etype, message in query(db, "SELECT block, error_type, error_message FROM task WHERE status='failed'"):
        assert '"block": 2' in block
        assert etype == "distributed.scheduler.KilledWorker" and "died" in message
    assert query(db, "SELECT count(*) FROM score")[0][0] == 8 * 20 * 2


def _stop_mid_run(root: Path, argv: list[str], sig: signal.Signals, *, at_least: int = 4) -> tuple[int, str, float]:
    """Start ``regulas run``, send ``sig`` to its whole process group (as SLURM and a closing
    terminal do) once ``at_least`` tasks are done; return (exit code, stderr, seconds to exit)."""
    proc = subprocess.Popen(regulas_cmd(*argv), cwd=REPO, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_done(root / "regulas.db", at_least, proc)
        os.killpg(proc.pid, sig)
        sent = time.monotonic()
        _, stderr = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return proc.returncode, stderr, took


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_stop_like_ctrl_c_and_resume(tmp_path: Path, demo_config: Path, sig: signal.Signals) -> None:
    root = tmp_path / "out"
    db = root / "regulas.db"
    common = [*SMALL, "demo.n_targets=100", "demo.sleep_s=0.3", "execution.commit_every_s=0.1", *QUIET]
    argv = ["run", str(demo_config), f"store.root={root}", *common]
    code, stderr, took = _stop_mid_run(root, argv, sig)
    assert code == 128 + sig, stderr
    assert took < 20
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert stderr.splitlines()[-1] == (
        f"regulas: terminated ({sig.name}); finished tasks are saved, rerun the same command to resume"
    ), stderr
    assert query(db, "SELECT status FROM study") == [("interrupted",)]
    done = query(db, "SELECT count(*) FROM task WHERE status='done'")[0][0]
    assert 4 <= done < 25 and query(db, "SELECT count(*) FROM score")[0][0] == done * 20 * 2
    status = run_cli(["status", str(root)])
    assert "study 'demo' (demo): interrupted" in status.stdout and "rate" not in status.stdout, status.stdout
    if sig != signal.SIGTERM:
        return
    resumed = run_cli(argv)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{done} already done" in resumed.stderr
    assert query(db, "SELECT status, runs FROM study") == [("done", 2)]
    clean = tmp_path / "uninterrupted"
    straight = run_cli(["run", str(demo_config), f"store.root={clean}", *common])
    assert straight.returncode == 0, straight.stdout + straight.stderr
    assert _scores(db) == _scores(clean / "regulas.db")


def _study_scores(db: Path, study: str) -> list[tuple]:
    return query(db, "SELECT target, method, split, metric, value, value_is_nan FROM score JOIN study ON study.id = score.study_id "
                 "WHERE study.name = ? ORDER BY target, split, metric", (study,))


def test_one_driver_per_study_and_studies_side_by_side(tmp_path: Path, demo_config: Path) -> None:
    """Three drivers start together on one store: two on study 'demo' (one is refused at once,
    naming the other), one on study 'other' (runs beside it). Both studies complete."""
    root = tmp_path / "out"
    common = [f"store.root={root}", "demo.n_targets=100", "demo.block_size=20", "demo.n_splits=3",
              "cluster.n_workers=1", "demo.sleep_s=0.2", *QUIET]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [
        subprocess.Popen(regulas_cmd("run", str(demo_config), *common, *extra), cwd=REPO, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for extra in ([], [], ["study.name=other"])
    ]
    try:
        outs = [p.communicate(timeout=180) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    codes = [p.returncode for p in procs]
    assert sorted(codes[:2]) == [0, 2] and codes[2] == 0, outs
    loser, winner = (0, 1) if codes[0] == 2 else (1, 0)
    (line,) = outs[loser][1].splitlines()
    assert line.startswith("regulas: error: study 'demo' is being run by another driver: "
                           f"pid {procs[winner].pid} on "), line
    assert " since " in line and "last heartbeat" in line
    db = root / "regulas.db"
    assert query(db, "SELECT name, status, runs FROM study ORDER BY name") == [("demo", "done", 1), ("other", "done", 1)]
    assert not list((root / "leases").iterdir())  # both released
    clean = tmp_path / "clean"
    straight = run_cli(["run", str(demo_config), *common, f"store.root={clean}"])
    assert straight.returncode == 0, straight.stderr
    expected = _study_scores(clean / "regulas.db", "demo")
    assert len(expected) == 100 * 3 * 2
    assert _study_scores(db, "demo") == expected == _study_scores(db, "other")


def test_live_foreign_lease_refuses_before_the_store_is_touched(tmp_path: Path, demo_config: Path) -> None:
    """A lease held on another host with a fresh heartbeat: exit 2 at once, no database made;
    the same lease with an old heartbeat is taken over."""
    root = tmp_path / "out"
    lease = root / "leases" / "demo.lease"
    lease.parent.mkdir(parents=True)
    started = time.time() - 3600
    # no SLURM job: with one, a login node asks squeue, and a job SLURM does not know has ended
    # (test_slurm.py::test_lease_of_an_ended_driver_job_is_taken_over)
    lease.write_text(json.dumps({"host": "node042", "pid": 4242, "slurm_job_id": None, "started_at": started,
                                 "timeout_s": 60, "token": "abc"}))
    argv = ["run", str(demo_config), f"store.root={root}", "demo.n_targets=40", "demo.block_size=20",
            "demo.n_splits=2", "cluster.n_workers=1", *QUIET]
    refused = run_cli(argv)
    assert refused.returncode == 2, refused.stderr
    assert "pid 4242 on node042 since " in refused.stderr
    assert not (root / "regulas.db").exists()
    os.utime(lease, (time.time() - 61, time.time() - 61))
    taken = run_cli(argv)
    assert taken.returncode == 0, taken.stderr
    assert "taking over the stale lease of study 'demo' held by pid 4242 on node042" in taken.stderr
    assert re.search(r"last heartbeat 6\d s ago, more than 60 s", taken.stderr), taken.stderr
    assert not lease.exists()


def test_rerun_recomputes_done_tasks_whose_chunk_files_are_gone(tmp_path: Path, demo_config: Path) -> None:
    """Delete one ``pred`` chunk file of a finished study and truncate a ``coef`` one of
    another task: the rerun sends exactly the two tasks that own them back to work (a file
    not of the size recorded in ``task_chunk`` is not trusted), and the arrays and scores
    equal those of the first run."""
    root, traces, argv = traced_demo_run(tmp_path, demo_config, *SMALL)
    db = root / "regulas.db"
    group_path = root / "arrays.zarr" / "demo"
    before = {name: zarr.open_array(str(root / "arrays.zarr"), path=f"demo/{name}", mode="r")[:] for name in ("pred", "coef")}
    scores_before = _scores(db)
    traces_before = task_traces(traces)
    (group_path / "pred" / "c" / "2" / "0" / "3").unlink()  # split 2, targets 60..80: one task's unit
    truncated = group_path / "coef" / "c" / "4" / "0" / "1"  # split 4, targets 20..40
    truncated.write_bytes(truncated.read_bytes()[:-7])
    owners = {demo_task_key(db, 2, [60, 80]), demo_task_key(db, 4, [20, 40])}

    again = run_cli(argv)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 done task(s) have chunk files missing or not of their recorded size in array(s) coef, pred: they run again" in again.stderr
    assert "48 already done, 2 to run" in again.stderr
    traces_after = task_traces(traces)
    assert {k for k in traces_after if traces_after[k] != traces_before[k]} == owners
    for name, arr in before.items():
        np.testing.assert_array_equal(zarr.open_array(str(root / "arrays.zarr"), path=f"demo/{name}", mode="r")[:], arr)
    assert _scores(db) == scores_before  # its rows were replaced, not doubled
    assert _task_status(db) == Counter({"done": 50})
    third = run_cli(argv)
    assert third.returncode == 0 and "50 already done, 0 to run" in third.stderr, third.stderr


def test_frozen_driver_is_taken_over_and_fenced(tmp_path: Path, demo_config: Path) -> None:
    """Driver A is frozen (SIGSTOP) past its lease timeout; driver B takes the study over and
    completes it; A, thawed, finds its lease gone at its next commit and stops (exit 2)
    without writing. The study ends done with the results of an uninterrupted run, every
    task done once in the database, none failed."""
    root, clean = tmp_path / "out", tmp_path / "clean"
    common = ["demo.n_targets=200", "demo.block_size=20", "demo.n_splits=3", "cluster.n_workers=1",
              "execution.lease_timeout_s=4", *QUIET]
    argv = ["run", str(demo_config), f"store.root={root}", *common]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    a = subprocess.Popen(regulas_cmd(*argv, "demo.sleep_s=0.5"), cwd=REPO, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        db = root / "regulas.db"
        _wait_for_done(db, 3, a)
        (token_a,) = query(db, "SELECT token FROM study_lease")[0]
        a.send_signal(signal.SIGSTOP)
        time.sleep(6)  # past the 4 s timeout: A's heartbeat is stale
        b = run_cli(argv)
        assert b.returncode == 0, b.stderr
        assert "taking over the stale lease of study 'demo' held by pid " + str(a.pid) in b.stderr
        assert "last heartbeat" in b.stderr
        (token_b, released) = query(db, "SELECT token, released_at FROM study_lease")[0]
        assert token_b != token_a and released is not None
        done_by_b = query(db, "SELECT key, finished_at FROM task ORDER BY key")
    finally:
        a.send_signal(signal.SIGCONT)
    _, a_err = a.communicate(timeout=120)
    assert a.returncode == 2, a_err
    lines = [ln for ln in a_err.splitlines() if ln.startswith("regulas: error: ")]
    assert len(lines) == 1 and "this driver lost the lease of its study to pid " in lines[0], a_err
    assert "Traceback" not in a_err
    assert query(db, "SELECT key, finished_at FROM task ORDER BY key") == done_by_b  # A wrote nothing after B
    assert query(db, "SELECT status FROM study") == [("done",)]
    assert _task_status(db) == Counter({"done": 30})
    assert run_cli(["run", str(demo_config), f"store.root={clean}", *common]).returncode == 0
    assert _scores(db) == _scores(clean / "regulas.db")


def test_shared_inputs_are_computed_once_per_run_and_change_no_result(tmp_path: Path, demo_config: Path) -> None:
    """A shared input (here each split's folds) is one Dask task per run that every task
    naming it depends on: same results as without it; its error is each dependent's."""
    small = ("demo.n_targets=60", "demo.block_size=20", "demo.n_splits=3", "cluster.n_workers=2", *QUIET)
    plain, shared = tmp_path / "plain", tmp_path / "shared"
    assert run_cli(["run", str(demo_config), f"store.root={plain}", *small]).returncode == 0
    proc = run_cli(["run", str(demo_config), f"store.root={shared}", "demo.share_splits=true", *small])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "shared computations: 3, each computed once and reused by the tasks naming it (9 tasks)" in proc.stderr
    a = zarr.open_array(str(plain / "arrays.zarr"), path="demo/pred", mode="r")[:]
    b = zarr.open_array(str(shared / "arrays.zarr"), path="demo/pred", mode="r")[:]
    np.testing.assert_array_equal(a, b)
    assert _scores(plain / "regulas.db") == _scores(shared / "regulas.db")

    failing = tmp_path / "failing"
    proc = run_cli(["run", str(demo_config), f"store.root={failing}", "demo.share_splits=true",
                    "demo.fail_shared_splits=[1]", *small])
    assert proc.returncode == 1 and "3 task(s) not done" in proc.stdout, proc.stdout + proc.stderr
    db = failing / "regulas.db"
    assert _task_status(db) == Counter({"done": 6, "failed": 3})
    for block, etype, message, tb in query(db, "SELECT block, error_type, error_message, traceback FROM task WHERE status='failed'"):
        assert '"split": 1' in block and etype == "builtins.RuntimeError"
        assert message == "demo.fail_shared_splits asks the shared input of split 1 to fail"
        assert "compute_shared" in tb
