"""Studies on a real single-node SLURM (slurm/dev-cluster.sh) through dask-jobqueue.

They run only when asked: ``REGULAS_TEST_SLURM=1`` in the environment (``.ci/run`` sets it
when it brought the dev cluster up); without it they skip and say so, and nothing starts
SLURM daemons behind the caller's back. When asked, a session fixture uses the dev cluster
when it is already up (as ``.ci/run`` leaves it) or starts it and stops it at the end; the
tests then skip only where SLURM cannot be started: not root, or slurm-wlm not installed.
Every test gives its worker jobs their own job name, so it can find (and at the end
cancel) exactly its own jobs.

Covers: the demo, a splicing and a regNet study on SLURM give the same database rows
and Zarr arrays as on a LocalCluster; workers are SLURM jobs with BLAS pinned;
``scancel`` of a worker job mid-run; workers that reach their lifetime before the
walltime are replaced, and so are workers SLURM kills at the walltime; a replacement
worker that does not share the store is refused before its first task; all workers lost
with the replacement pending stops the run in bounded time; the driver killed mid-run
and resumed; jobs that cannot start (sbatch refuses an impossible
memory request; a worker that dies at start) stop the run with the reason in bounded
time; a store the workers do not share (a private tmpfs over store.root in the
workers' mount namespace, as node-local /tmp would be) is refused before any task;
the sbatch template runs a whole study; ``cluster-script`` prints without submitting.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import zarr

from conftest import CONFIGS, QUIET, REPO, query, regulas_cmd, run_cli

DEV_CLUSTER = REPO / "slurm" / "dev-cluster.sh"
TEMPLATE = REPO / "slurm" / "run-study.sbatch"

#: the environment variable that asks for the SLURM tests (value "1")
ASK = "REGULAS_TEST_SLURM"

#: seconds any SLURM command (squeue, scancel, dev-cluster.sh status) may take
SLURM_CMD_TIMEOUT_S = 60

# small demo: 4 blocks x 2 splits = 8 tasks
TINY = ("demo.n_targets=80", "demo.block_size=20", "demo.n_splits=2")


@pytest.fixture(scope="session")
def slurm() -> Iterator[str]:
    """SLURM_CONF of a running dev cluster (started here if it is not up yet), when asked for."""
    if os.environ.get(ASK) != "1":
        pytest.skip(f"SLURM tests run only when asked: set {ASK}=1 (with slurm/dev-cluster.sh up, or as root with "
                    "slurm-wlm installed to have the tests start and stop the dev cluster); .ci/run does")
    started = False
    if subprocess.run([str(DEV_CLUSTER), "status"], capture_output=True, timeout=SLURM_CMD_TIMEOUT_S).returncode != 0:
        if os.geteuid() != 0:
            pytest.skip("SLURM tests: no dev cluster is up and starting slurmd needs root (run as root or start slurm/dev-cluster.sh up)")
        if shutil.which("slurmctld") is None or shutil.which("slurmd") is None:
            pytest.skip("SLURM tests: slurm-wlm is not installed (apt-get install -y --no-install-recommends slurm-wlm)")
        up = subprocess.run([str(DEV_CLUSTER), "up"], capture_output=True, text=True, timeout=180)
        if up.returncode != 0:
            pytest.fail(f"slurm/dev-cluster.sh up failed:\n{up.stdout}{up.stderr}")
        started = True
    env_line = subprocess.run([str(DEV_CLUSTER), "env"], capture_output=True, text=True, check=True,
                              timeout=SLURM_CMD_TIMEOUT_S).stdout
    conf = env_line.strip().removeprefix("export SLURM_CONF=")
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf
    try:
        yield conf
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        if started:
            subprocess.run([str(DEV_CLUSTER), "down"], capture_output=True, timeout=120)


@pytest.fixture
def job_name(slurm: str) -> Iterator[str]:
    """A job name of this test's own; its leftover jobs are cancelled at the end."""
    name = f"rt-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["scancel", f"--name={name}"], capture_output=True, timeout=SLURM_CMD_TIMEOUT_S)


def _jobs(name: str) -> dict[str, str]:
    out = subprocess.run(
        ["squeue", "--noheader", "--states=all", f"--name={name}", "--format=%i|%T"],
        capture_output=True, text=True, check=True, timeout=SLURM_CMD_TIMEOUT_S,
    ).stdout
    return dict(line.split("|") for line in out.split())


def _scontrol(*args: str) -> None:
    subprocess.run(["scontrol", *args], check=True, capture_output=True, timeout=SLURM_CMD_TIMEOUT_S)


def _scancel(*args: str) -> None:
    subprocess.run(["scancel", *args], check=True, capture_output=True, timeout=SLURM_CMD_TIMEOUT_S)


def _wait_until_ended(name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while any(s in ("RUNNING", "PENDING", "COMPLETING") for s in _jobs(name).values()):
        if time.monotonic() > deadline:
            raise AssertionError(f"jobs {name} still active after {timeout} s: {_jobs(name)}")
        time.sleep(0.2)


def _slurm_args(tmp_path: Path, job_name: str, *extra: str) -> list[str]:
    return [
        "cluster=slurm", f"cluster.job_name={job_name}", "cluster.memory=1GiB", "cluster.min_jobs=2",
        "cluster.max_jobs=2", "cluster.poll_interval_s=1", "cluster.startup_timeout_s=180",
        f"cluster.local_directory={tmp_path}/dask-scratch", *QUIET, *extra,
    ]


def _scores(db: Path) -> list[tuple]:
    return query(db, "SELECT target, method, split, metric, value, value_is_nan FROM score ORDER BY target, split, metric")


def _task_status(db: Path) -> Counter:
    return Counter(dict(query(db, "SELECT status, count(*) FROM task GROUP BY status")))


def _wait_for_done(db: Path, at_least: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the driver ended before the intervention: " + (proc.stdout.read() if proc.stdout else "")
        try:
            if db.is_file() and _task_status(db).get("done", 0) >= at_least:
                return
        except sqlite3.OperationalError as exc:  # the driver has not created the task table yet
            if "no such table" not in str(exc):
                raise
        time.sleep(0.1)
    raise AssertionError(f"fewer than {at_least} tasks done after {timeout} s")


def _cancel_mid_run(argv: list[str], db: Path, job_name: str, after_done: int, *, before: Callable[[], None] = lambda: None,
                    timeout: float = 300) -> tuple[int, str, str, float]:
    """Run the driver; once ``after_done`` tasks are done, ``before()`` then scancel the
    oldest running worker job. Returns (exit code, output, cancelled job, seconds from
    the scancel to the driver's end)."""
    proc = subprocess.Popen(regulas_cmd(*argv), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for_done(db, after_done, proc)
        before()
        running = [j for j, state in _jobs(job_name).items() if state == "RUNNING"]
        assert running, _jobs(job_name)
        victim = min(running)
        t0 = time.monotonic()
        _scancel(victim)
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out, victim, time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()


def _assert_complete_without_duplicates(db: Path, n_tasks: int, n_targets: int, n_splits: int) -> None:
    assert _task_status(db) == Counter({"done": n_tasks})
    total, distinct = query(db, "SELECT count(*), count(DISTINCT target || '/' || split || '/' || metric) FROM score")[0]
    assert total == distinct == n_targets * n_splits * 2


def test_demo_on_slurm_matches_local_cluster(tmp_path: Path, demo_config: Path, job_name: str) -> None:
    on_slurm = run_cli(["run", str(demo_config), f"store.root={tmp_path / 'slurm'}", *TINY, *_slurm_args(tmp_path, job_name)])
    assert on_slurm.returncode == 0, on_slurm.stdout + on_slurm.stderr
    assert "starting SLURMCluster" in on_slurm.stderr
    assert "is shared with the" in on_slurm.stderr  # the store probe ran
    local = run_cli(["run", str(demo_config), f"store.root={tmp_path / 'local'}", *TINY, "cluster.n_workers=2", *QUIET])
    assert local.returncode == 0, local.stdout + local.stderr

    a, b = tmp_path / "slurm" / "regulas.db", tmp_path / "local" / "regulas.db"
    assert _task_status(a) == Counter({"done": 8})
    assert len(_scores(a)) == 80 * 2 * 2
    assert _scores(a) == _scores(b)
    assert query(a, "SELECT key, seed, status FROM task ORDER BY key") == query(b, "SELECT key, seed, status FROM task ORDER BY key")
    for name in ("pred", "coef"):
        x = zarr.open_array(str(tmp_path / "slurm" / "arrays.zarr"), path=f"demo/{name}", mode="r")[:]
        y = zarr.open_array(str(tmp_path / "local" / "arrays.zarr"), path=f"demo/{name}", mode="r")[:]
        np.testing.assert_array_equal(x, y)
    # the work really ran in SLURM jobs of this test, which wrote their logs where configured
    jobs = _jobs(job_name)
    assert len(jobs) >= 1
    logs = {p.name for p in (tmp_path / "slurm" / "slurm-logs").iterdir()}
    assert {f"{job_name}-{j}.err" for j in jobs} <= logs


#: columns and metrics that measure wall-clock time: they differ between any two runs
TIMING = ("fit_time_s", "submitted_at", "started_at", "finished_at", "duration_s", "worker")


def _rows(db: Path, table: str) -> list[tuple]:
    """All rows of a table or view, without ids and timings, in a fixed order."""
    cols = [c for (_, c, *_rest) in query(db, f"PRAGMA table_info({table})") if c not in ("study_id", "task_id", "id", *TIMING)]
    where = " WHERE metric NOT IN ('fit_time_s')" if "metric" in cols else ""
    return query(db, f"SELECT {', '.join(cols)} FROM {table}{where} ORDER BY {', '.join(cols)}")


def _assert_same_results(a: Path, b: Path, study: str, tables: tuple[str, ...]) -> None:
    """Two stores (SLURM, LocalCluster) hold the same tasks, rows and Zarr arrays."""
    db_a, db_b = a / "regulas.db", b / "regulas.db"
    assert _rows(db_a, "task") == _rows(db_b, "task")
    for table in tables:
        rows = _rows(db_a, table)
        assert rows, f"{table} is empty"
        assert rows == _rows(db_b, table), table
    group_a = zarr.open_group(str(a / "arrays.zarr"), path=study, mode="r")
    group_b = zarr.open_group(str(b / "arrays.zarr"), path=study, mode="r")
    names = sorted(name for name, _ in group_a.arrays())
    assert names and names == sorted(name for name, _ in group_b.arrays())
    for name in names:
        np.testing.assert_array_equal(group_a[name][...], group_b[name][...], err_msg=name)


def _run_on_slurm_and_locally(tmp_path: Path, config: Path, job_name: str, *overrides: str) -> tuple[Path, Path]:
    on_slurm = run_cli(["run", str(config), f"store.root={tmp_path / 'slurm'}", *overrides, *_slurm_args(tmp_path, job_name)])
    assert on_slurm.returncode == 0, on_slurm.stdout + on_slurm.stderr
    assert "starting SLURMCluster" in on_slurm.stderr and "is shared with the" in on_slurm.stderr
    local = run_cli(["run", str(config), f"store.root={tmp_path / 'local'}", *overrides, "cluster.n_workers=2", *QUIET])
    assert local.returncode == 0, local.stdout + local.stderr
    assert len(_jobs(job_name)) >= 1  # the SLURM run's work ran in jobs of this test
    return tmp_path / "slurm", tmp_path / "local"


def test_splicing_on_slurm_matches_local_cluster(tmp_path: Path, job_name: str) -> None:
    """24 synthetic events (5% PSI missing), 2 pipelines with a nested grid search, 3 splits."""
    from test_splicing import N_EVENTS, study_config, write_dataset

    expr, psi = write_dataset(tmp_path / "data")
    config = study_config(tmp_path / "data", expr, psi)
    a, b = _run_on_slurm_and_locally(tmp_path, config, job_name)
    assert query(a / "regulas.db", "SELECT count(*) FROM splice_score") == [(N_EVENTS * 2 * 3,)]
    _assert_same_results(a, b, "small", ("splice_model", "splice_score", "splice_importance", "performance", "feature_ranking"))


def test_regnet_on_slurm_matches_local_cluster(tmp_path: Path, job_name: str) -> None:
    """A small regNet grid on the real motif scores: 2 cells x 2 replicates, ridge and an LMM."""
    from test_regnet import MOTIF_FILE

    grid = ("regnet.replicates=2", "regnet.genes=[60]", "regnet.conditions=[3]", "regnet.motifs=[10]",
            "regnet.V=[id,freeform]", "regnet.Sigma=[identityV]", "regnet.noise_fraction=[0.5]", "regnet.fraction=[0.3]",
            "regnet.methods=[{name: ridge, kind: ridge}, {name: lmm, kind: lmm, signal: freeform, noise: diagonal}]",
            f"regnet.motif_scores={MOTIF_FILE}")
    a, b = _run_on_slurm_and_locally(tmp_path, CONFIGS / "regnet.yaml", job_name, *grid)
    counts = dict(query(a / "regulas.db", "SELECT method, count(DISTINCT cell || '/' || replicate) FROM sim_score GROUP BY method"))
    assert counts == {"simulation": 4, "ridge": 4, "lmm": 4}
    _assert_same_results(a, b, "regnet", ("sim_score", "sim_result"))


def test_workers_are_slurm_jobs_with_one_thread_and_blas_pinned(tmp_path: Path, job_name: str) -> None:
    from threadpoolctl import threadpool_info

    from regulas.execution.cluster.slurm import SlurmBackend, SlurmClusterConfig

    backend = SlurmBackend(SlurmClusterConfig(
        job_name=job_name, memory="1GiB", min_jobs=2, max_jobs=2, dashboard_address=None, poll_interval_s=1,
        log_directory=str(tmp_path / "logs"), local_directory=str(tmp_path / "scratch"), startup_timeout_s=180,
    ))
    client = backend.start()
    try:
        client.wait_for_workers(2, timeout=180)
        assert set(client.nthreads().values()) == {1}
        # stdlib and threadpoolctl functions: the workers cannot import this test module
        job_ids = set(client.run(os.getenv, "SLURM_JOB_ID").values())
        assert job_ids <= set(_jobs(job_name)) and len(job_ids) == 2  # one worker per job
        assert set(client.run(os.getenv, "OPENBLAS_NUM_THREADS").values()) == {"1"}
        for pools in client.run(threadpool_info).values():
            assert pools and all(p["num_threads"] == 1 for p in pools)
        assert backend.check() == []  # nothing lost, nothing failed
    finally:
        backend.close()
    time.sleep(1)
    assert all(state in ("CANCELLED", "COMPLETED", "COMPLETING") for state in _jobs(job_name).values())


def _executions(traces: Path) -> dict[str, list[str]]:
    """Task key -> the SLURM jobs that started it, one entry per execution (demo.trace_dir)."""
    out: dict[str, list[str]] = {}
    for p in traces.iterdir():
        key, job, _ = p.name.split(".")
        out.setdefault(key, []).append(job)
    return out


def test_scancel_of_a_worker_job_mid_run(tmp_path: Path, demo_config: Path, job_name: str) -> None:
    root = tmp_path / "out"
    db = root / "regulas.db"
    traces = tmp_path / "traces"
    traces.mkdir()
    argv = ["run", str(demo_config), f"store.root={root}", "demo.n_targets=160", "demo.block_size=20", "demo.n_splits=2",
            "demo.sleep_s=0.5", "execution.commit_every_s=0.1", f"demo.trace_dir={traces}", *_slurm_args(tmp_path, job_name)]
    code, out, victim, _ = _cancel_mid_run(argv, db, job_name, 3)
    assert code == 0, out
    assert f"SLURM job {victim} CANCELLED" in out and "submitting a replacement job" in out
    assert len(_jobs(job_name)) >= 3  # two at the start, one replacement
    _assert_complete_without_duplicates(db, 16, 160, 2)
    # each task's outcome was stored once (one recorded attempt, its 20 targets x 2 metrics)...
    per_task = query(db, "SELECT t.key, t.attempts, count(s.target) FROM task t JOIN score s ON s.task_id = t.id GROUP BY t.id")
    assert len(per_task) == 16 and {(a, n) for _, a, n in per_task} == {(1, 40)}
    # ...although the cancelled job had started a task that it never finished: it ran again elsewhere
    executions = _executions(traces)
    cut_short = [k for k, jobs in executions.items() if victim in jobs and any(j != victim for j in jobs)]
    assert cut_short, executions
    pred = zarr.open_array(str(root / "arrays.zarr"), path="demo/pred", mode="r")[:]
    assert (np.isfinite(pred).sum(axis=0) == 1).all()


def _run_with_one_minute_walltime(
    tmp_path: Path, demo_config: Path, job_name: str, *, sleep_s: float, retire: str
) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    """The 36-task demo (a trace file per task run) on 2 jobs of 1-minute walltime; it must succeed.
    Returns (store root, trace folder, the finished run)."""
    root = tmp_path / "out"
    traces = tmp_path / "traces"
    traces.mkdir()
    proc = run_cli(["run", str(demo_config), f"store.root={root}", "demo.n_targets=360", "demo.block_size=20",
                    "demo.n_splits=2", f"demo.sleep_s={sleep_s}", f"demo.trace_dir={traces}",
                    *_slurm_args(tmp_path, job_name), "cluster.walltime='1'",
                    f"cluster.retire_before_walltime_s={retire}"], timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root, traces, proc


def test_walltime_shorter_than_study_workers_retire_and_are_replaced(tmp_path: Path, demo_config: Path, job_name: str) -> None:
    """A 1-minute walltime; workers retire 25 s before it (lifetime 35 s +- 6 s) while
    the study needs 45 s of work per worker: replacement jobs finish it."""
    root, traces, proc = _run_with_one_minute_walltime(tmp_path, demo_config, job_name, sleep_s=2.5, retire="25")
    assert "COMPLETED: worker" in proc.stderr and "submitting a replacement job" in proc.stderr
    jobs = _jobs(job_name)
    assert len(jobs) >= 3, jobs
    db = root / "regulas.db"
    _assert_complete_without_duplicates(db, 36, 360, 2)
    assert len({w for (w,) in query(db, "SELECT DISTINCT worker FROM task")}) >= 3  # done by replaced workers too
    # a task cut short by a retiring worker runs again elsewhere; every task ran
    assert set(Counter(p.name.split(".")[0] for p in traces.iterdir())) == {k for (k,) in query(db, "SELECT key FROM task")}


def test_walltime_kill_by_slurm_workers_are_replaced(tmp_path: Path, demo_config: Path, job_name: str) -> None:
    """No retirement (retire_before_walltime_s null): SLURM itself ends each job at its
    1-minute walltime (state TIMEOUT), inside a task; the study (about 90 s of work per
    worker) still completes, with every task's results stored once."""
    root, traces, proc = _run_with_one_minute_walltime(tmp_path, demo_config, job_name, sleep_s=5, retire="null")
    assert "TIMEOUT (TimeLimit): worker" in proc.stderr and "submitting a replacement job" in proc.stderr
    jobs = _jobs(job_name)
    assert list(jobs.values()).count("TIMEOUT") >= 2, jobs
    db = root / "regulas.db"
    _assert_complete_without_duplicates(db, 36, 360, 2)
    per_task = query(db, "SELECT t.attempts, count(s.target) FROM task t JOIN score s ON s.task_id = t.id GROUP BY t.id")
    assert len(per_task) == 36 and set(per_task) == {(1, 40)}
    executions = _executions(traces)
    assert set(executions) == {k for (k,) in query(db, "SELECT key FROM task")}
    timed_out = {j for j, state in jobs.items() if state == "TIMEOUT"}
    assert any(set(js) & timed_out and len(js) > 1 for js in executions.values()), executions  # killed inside a task


def test_late_worker_that_does_not_share_the_store_is_refused(tmp_path: Path, demo_config: Path, job_name: str) -> None:
    """The first worker job sees store.root; its replacement (after scancel) runs in a
    private mount namespace with an empty tmpfs over store.root: the probe must stop the
    run before the replacement runs a task."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux) to give a worker a private mount namespace")
    root = tmp_path / "out"
    root.mkdir()
    db = root / "regulas.db"
    first = tmp_path / "first-job-started"  # mkdir is atomic: only the first job creates it
    python = tmp_path / "python-first-job-shares.sh"
    python.write_text(f"""#!/bin/sh
if mkdir {first} 2>/dev/null; then exec {sys.executable} "$@"; fi
exec unshare --mount --propagation private /bin/sh -c 'mount -t tmpfs tmpfs {root} && exec {sys.executable} "$@"' sh "$@"
""")
    python.chmod(0o755)
    argv = ["run", str(demo_config), f"store.root={root}", "demo.n_targets=160", "demo.block_size=20", "demo.n_splits=2",
            "demo.sleep_s=0.5", "execution.commit_every_s=0.1",
            *_slurm_args(tmp_path, job_name, "cluster.min_jobs=1", "cluster.max_jobs=1", f"cluster.python={python}")]
    code, out, _, _ = _cancel_mid_run(argv, db, job_name, 2)
    assert code == 2, out
    (error,) = [line for line in out.splitlines() if line.startswith("regulas: error:")]
    assert f"store.root {root} is not shared between the driver" in error and "and worker tcp://" in error, error
    assert f"the worker cannot read {root}/.regulas-probe/driver-" in error and "No such file or directory" in error
    workers = {w for (w,) in query(db, "SELECT DISTINCT worker FROM task WHERE status = 'done'")}
    assert len(workers) == 1  # only the first job's worker did tasks
    assert query(db, "SELECT status FROM study") == [("interrupted",)]


def test_worker_jobs_failing_to_start_in_a_row_stop_the_run(tmp_path: Path, demo_config: Path, job_name: str) -> None:
    """The first worker job works; every other one dies at start. While a worker is
    connected each failure is reported and replaced; 2 x max_jobs = 4 failures in a row
    stop the run (a slot that can never start a worker must not be resubmitted forever)."""
    root = tmp_path / "out"
    db = root / "regulas.db"
    first = tmp_path / "first-job-started"  # mkdir is atomic: only the first job creates it
    traces = tmp_path / "traces"  # a file per task run: the first worker is connected once one exists
    traces.mkdir()
    python = tmp_path / "python-only-first-job-starts.sh"
    python.write_text(f"""#!/bin/sh
if mkdir {first} 2>/dev/null; then exec {sys.executable} "$@"; fi
# fail only once the first worker runs tasks (before that, a failure alone ends the run)
for _ in $(seq 600); do [ -n "$(ls {traces})" ] && break; sleep 0.1; done
echo "regulas test: this worker job is made to fail at start" >&2
exit 3
""")
    python.chmod(0o755)
    proc = run_cli(["run", str(demo_config), f"store.root={root}", "demo.n_targets=1000", "demo.block_size=20",
                    "demo.n_splits=2", "demo.sleep_s=1", "execution.commit_every_s=0.1", f"demo.trace_dir={traces}",
                    *_slurm_args(tmp_path, job_name, f"cluster.python={python}")], timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    (error,) = [line for line in proc.stderr.splitlines() if line.startswith("regulas: error:")]
    assert "before its Dask worker connected" in error
    assert "stopping: 4 worker jobs in a row failed to start" in proc.stderr, proc.stderr
    assert "regulas test: this worker job is made to fail at start" in proc.stderr  # the tail of its .err log
    assert proc.stderr.count("(other workers go on; submitting a replacement job)") == 3, proc.stderr
    done = _task_status(db)["done"]
    assert 0 < done < 100  # the working job's tasks are stored; the run stopped long before the end
    assert query(db, "SELECT status FROM study") == [("interrupted",)]
    _wait_until_ended(job_name)


def test_all_workers_lost_and_replacements_pending_stops_in_bounded_time(
    tmp_path: Path, demo_config: Path, job_name: str, slurm: str
) -> None:
    """The node is drained, then the only worker job is cancelled: its replacement stays
    PENDING; the driver stops after cluster.startup_timeout_s with SLURM's reason."""
    root = tmp_path / "out"
    db = root / "regulas.db"
    node = subprocess.run(["sinfo", "--noheader", "-N", "--format=%N"], capture_output=True, text=True, check=True,
                          timeout=SLURM_CMD_TIMEOUT_S).stdout.split()[0]
    argv = ["run", str(demo_config), f"store.root={root}", "demo.n_targets=160", "demo.block_size=20", "demo.n_splits=2",
            "demo.sleep_s=0.5", "execution.commit_every_s=0.1",
            *_slurm_args(tmp_path, job_name, "cluster.min_jobs=1", "cluster.max_jobs=1"), "cluster.startup_timeout_s=20"]
    try:
        code, out, _, elapsed = _cancel_mid_run(
            argv, db, job_name, 2, before=lambda: _scontrol("update", f"nodename={node}", "state=drain", "reason=regulas-test"),
            timeout=180,
        )
    finally:
        _scontrol("update", f"nodename={node}", "state=resume")
    assert code == 2, out
    (error,) = [line for line in out.splitlines() if line.startswith("regulas: error:")]
    assert "no Dask worker connected for 20 s (cluster.startup_timeout_s)" in error and "PENDING" in error, error
    assert "rerun the same command to resume" in error
    assert 20 < elapsed < 90
    done = _task_status(db)["done"]
    assert 2 <= done < 16 and query(db, "SELECT status FROM study") == [("interrupted",)]
    _wait_until_ended(job_name)  # closing the cluster cancelled the pending replacement


def test_driver_killed_mid_run_resumes_without_redoing_done_tasks(tmp_path: Path, demo_config: Path, job_name: str) -> None:
    root = tmp_path / "out"
    db = root / "regulas.db"
    traces = tmp_path / "traces"
    traces.mkdir()
    argv = ["run", str(demo_config), f"store.root={root}", f"demo.trace_dir={traces}", "demo.n_targets=160",
            "demo.block_size=20", "demo.n_splits=2", "demo.sleep_s=0.4", "execution.commit_every_s=0.1",
            *_slurm_args(tmp_path, job_name)]
    proc = subprocess.Popen(regulas_cmd(*argv), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for_done(db, 4, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # the orphaned worker jobs lost their scheduler; cancel them before the rerun
    _scancel(f"--name={job_name}")
    _wait_until_ended(job_name)
    done_before = {k for (k,) in query(db, "SELECT key FROM task WHERE status='done'")}
    assert 4 <= len(done_before) < 16
    counts_before = Counter(p.name.split(".")[0] for p in traces.iterdir())

    rerun = run_cli(argv)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{len(done_before)} already done" in rerun.stderr
    counts_after = Counter(p.name.split(".")[0] for p in traces.iterdir())
    assert [k for k in done_before if counts_after[k] != counts_before[k]] == []  # no done task ran again
    assert set(counts_after) == {k for (k,) in query(db, "SELECT key FROM task")}
    _assert_complete_without_duplicates(db, 16, 160, 2)
    assert query(db, "SELECT status, runs FROM study") == [("done", 2)]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # more memory than the node has: sbatch refuses the job outright
        (["cluster.memory=100000GiB"], ["sbatch refused the job", "Memory specification can not be satisfied"]),
        # the job starts and its worker dies at once (dask-jobqueue #620): the .err log explains
        (["cluster.worker_extra_args=[--no-such-option]"], ["FAILED", "exit code 2:0", "No such option", ".err"]),
        # the job waits in the queue: the startup timeout ends the wait, with SLURM's reason
        (["cluster.job_extra_directives=[--begin=now+1hour]", "cluster.startup_timeout_s=15"],
         ["no Dask worker connected within cluster.startup_timeout_s=15 s", "PENDING (BeginTime)"]),
    ],
    ids=["impossible-memory", "worker-dies-at-start", "pending-past-timeout"],
)
def test_job_that_cannot_start_stops_the_run_with_its_reason(
    tmp_path: Path, demo_config: Path, job_name: str, overrides: list[str], expected: list[str]
) -> None:
    t0 = time.monotonic()
    proc = run_cli(["run", str(demo_config), f"store.root={tmp_path / 'out'}", *TINY,
                    *_slurm_args(tmp_path, job_name, "cluster.startup_timeout_s=600", *overrides)], timeout=300)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 2, proc.stdout + proc.stderr
    error = [line for line in proc.stderr.splitlines() if line.startswith("regulas: error:")]
    assert len(error) == 1, proc.stderr
    for text in expected:
        assert text in error[0]
    assert elapsed < 120  # bounded: by the job's failure, long before the default startup timeout
    assert not any(s in ("RUNNING", "PENDING") for s in _jobs(job_name).values())  # nothing left behind


def test_store_not_shared_with_workers_is_refused_before_any_task(tmp_path: Path, demo_config: Path, job_name: str) -> None:
    """Each worker runs in its own mount namespace with an empty tmpfs over store.root,
    as if store.root were on node-local disk: the probe must catch it."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux) to give the workers a private mount namespace")
    root = tmp_path / "out"
    root.mkdir()
    traces = tmp_path / "traces"
    traces.mkdir()
    private = f"unshare --mount --propagation private /bin/sh -c 'mount -t tmpfs tmpfs {root} && exec {sys.executable} \"$@\"' sh"
    proc = run_cli(["run", str(demo_config), f"store.root={root}", *TINY, f"demo.trace_dir={traces}",
                    *_slurm_args(tmp_path, job_name, "cluster.min_jobs=1", f"cluster.python={private}")])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"store.root {root} is not shared between the driver" in proc.stderr
    assert f"the worker cannot read {root}/.regulas-probe/driver-" in proc.stderr
    assert "No such file or directory" in proc.stderr
    assert _task_status(root / "regulas.db") == Counter({"pending": 8})
    assert list(traces.iterdir()) == []  # no task ran


def test_sbatch_template_runs_a_whole_study(tmp_path: Path, demo_config: Path, job_name: str) -> None:
    root = tmp_path / "out"
    env = {**os.environ, "REGULAS": str(Path(sys.executable).with_name("regulas"))}
    driver_log = tmp_path / "driver.out"
    proc = subprocess.run(
        ["sbatch", "--wait", f"--job-name={job_name}-driver", f"--output={driver_log}", str(TEMPLATE), str(demo_config),
         f"store.root={root}", *TINY, *_slurm_args(tmp_path, job_name, "cluster.min_jobs=1")],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )
    log = driver_log.read_text() if driver_log.is_file() else "(no driver log)"
    assert proc.returncode == 0, proc.stdout + proc.stderr + log
    assert "regulas driver: job" in log and "starting SLURMCluster" in log
    assert _task_status(root / "regulas.db") == Counter({"done": 8})
    assert len(_jobs(job_name)) >= 1  # the workers were jobs of their own


def test_cluster_script_prints_without_submitting(tmp_path: Path, demo_config: Path) -> None:
    """Needs dask-jobqueue only, no running SLURM."""
    name = f"rt-{uuid.uuid4().hex[:8]}"
    root = tmp_path / "out"
    proc = run_cli([
        "cluster-script", str(demo_config), f"store.root={root}", "cluster=slurm", "cluster.queue=short",
        "cluster.account=lab42", "cluster.cores=4", "cluster.processes=2", "cluster.memory=8GiB",
        "cluster.walltime='2:00:00'", "cluster.retire_before_walltime_s=600", f"cluster.job_name={name}",
        "cluster.job_extra_directives=[--qos=normal]", "cluster.job_script_prologue=[module load python]",
        "cluster.interface=ib0", "cluster.python=/opt/py/bin/python",
    ])
    assert proc.returncode == 0, proc.stderr
    script = proc.stdout
    assert script.startswith("#!/usr/bin/env bash")
    for line in (f"#SBATCH -J {name}", "#SBATCH -p short", "#SBATCH -A lab42", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --mem=8G", "#SBATCH -t 2:00:00", "#SBATCH --qos=normal",
                 f"#SBATCH --error={root}/slurm-logs/%x-%j.err", "export OPENBLAS_NUM_THREADS=1", "module load python"):
        assert line in script.splitlines(), line
    command = script.splitlines()[-1]
    assert command.startswith("/opt/py/bin/python -m distributed.cli.dask_worker tcp://SCHEDULER-ADDRESS:PORT")
    for part in ("--nthreads 2", "--nworkers 2", "--memory-limit 4.00GiB", "--interface ib0",
                 "--lifetime 6600s", "--lifetime-stagger 150s"):
        assert part in command, part
    assert not root.exists()  # nothing created, nothing submitted
    if shutil.which("squeue") and os.environ.get("SLURM_CONF"):
        assert _jobs(name) == {}

    local = run_cli(["cluster-script", str(demo_config)])
    assert local.returncode == 2
    assert "cluster-script needs a batch backend (add the override cluster=slurm)" in local.stderr


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 1800), ("1:30", 90), ("2:00:00", 7200), ("1-0", 86400), ("1-2:30", 95400), ("2-00:00:10", 172810)],
)
def test_walltime_formats(text: str, seconds: int) -> None:
    from regulas.execution.cluster._slurm_jobs import walltime_seconds

    assert walltime_seconds(text) == seconds


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("cluster.walltime=UNLIMITED", "key 'cluster.walltime': not a SLURM time limit (given: 'UNLIMITED')"),
        ("cluster.walltime=1:30", "key 'cluster.walltime': expected the time limit as a quoted string (given the number 90"),
        ("cluster.memory=lots", "key 'cluster.memory': not a memory size (given: 'lots')"),
        ("cluster.min_jobs=5", "key 'cluster.min_jobs': min_jobs (5) is larger than max_jobs (4)"),
        ("cluster.processes=3", "key 'cluster.processes': 1 cores cannot be split evenly into 3 worker processes"),
        ("cluster.retire_before_walltime_s=3600", "key 'cluster.retire_before_walltime_s': out of range (given: 3600.0)"),
        ("cluster.queues=short", "key 'cluster.queues': no such key; did you mean 'cluster.queue'?"),
    ],
)
def test_bad_slurm_settings_are_named_before_any_work(demo_config: Path, override: str, message: str) -> None:
    from regulas.core.errors import ConfigError
    from regulas.study import load_study

    with pytest.raises(ConfigError) as caught:
        load_study(demo_config, ["cluster=slurm", override])
    assert message in str(caught.value)


def test_lease_of_an_ended_driver_job_is_taken_over(slurm: str, tmp_path: Path, demo_config: Path, job_name: str) -> None:
    """A study resubmitted after its driver job ended: the new driver runs on another host,
    where the old pid means nothing, and the old lease's heartbeat is still fresh. SLURM says
    the job has ended, so the lease is taken over at once (no wait for the timeout)."""
    ended = subprocess.run(["sbatch", "--wait", "--parsable", f"--job-name={job_name}-gone", "--output=/dev/null",
                            "--wrap", "true"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert ended.returncode == 0, ended.stderr
    job_id = ended.stdout.strip().split(";")[0]
    root = tmp_path / "out"
    lease = root / "leases" / "demo.lease"
    lease.parent.mkdir(parents=True)
    lease.write_text(json.dumps({"host": "node042", "pid": 4242, "slurm_job_id": job_id, "started_at": time.time() - 60,
                                 "timeout_s": 60, "token": "abc"}))
    taken = run_cli(["run", str(demo_config), f"store.root={root}", *TINY, "cluster.n_workers=1", *QUIET])
    assert taken.returncode == 0, taken.stderr
    assert f"held by pid 4242 on node042 (SLURM job {job_id})" in taken.stderr, taken.stderr
    assert f"SLURM job {job_id} has ended" in taken.stderr
