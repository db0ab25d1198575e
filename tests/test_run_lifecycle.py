"""How a run starts and ends: the cluster launched while the data loads, stopped at once when
the data is bad, its worker processes gone when the run returns, and the reports of an
unchanged study not drawn again. Real LocalCluster, real files; no timing asserted."""

from __future__ import annotations

import logging
import subprocess
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from conftest import QUIET, run_cli
from regulas.core.errors import DataError
from regulas.execution.cluster.local import _killed_at_close_quiet, kill_children
from regulas.execution.runner import run_study
from regulas.study import load_study

pytestmark = pytest.mark.slow

SMALL = ("demo.n_targets=40", "demo.block_size=20", "demo.n_splits=2", "cluster.n_workers=2")


def _worker_processes() -> list[psutil.Process]:
    """Live child processes of this one that are Dask worker processes (spawned by a nanny)."""
    out = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(child.cmdline()):
                out.append(child)
        except psutil.Error:
            continue
    return out


def _no_workers_left(timeout_s: float = 10.0) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout_s
    while (left := _worker_processes()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def test_bad_data_stops_the_launched_cluster_before_the_store_exists(tmp_path: Path) -> None:
    # the LocalCluster is launched before the data is read; a PSI above 1 must stop the
    # run with one error, create no store, and leave no worker process behind
    expr = tmp_path / "expr.tsv"
    psi = tmp_path / "psi.tsv"
    expr.write_text("sample\tA\tB\n" + "".join(f"s{i}\t{i}\t{i % 3}\n" for i in range(8)))
    values = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 1.7]  # s7: not a PSI
    psi.write_text("sample\tev1\n" + "".join(f"s{i}\t{v}\n" for i, v in enumerate(values)))
    config = tmp_path / "study.yaml"
    root = tmp_path / "out"
    config.write_text(textwrap.dedent(f"""\
        study: {{name: bad, workload: splicing}}
        store: {{root: {root}}}
        cluster: {{n_workers: 2, dashboard_address: null}}
        execution: {{progress: log}}
        experiment:
          name: bad
          dataset: {{_target_: regulas.data.TableLoader, features: {expr}, targets: {psi}}}
          split: {{_target_: sklearn.model_selection.KFold, n_splits: 2}}
          pipelines:
            - model: {{Ridge: {{_target_: sklearn.linear_model.Ridge}}}}
        """))
    spec = load_study(config)
    with pytest.raises(DataError, match=r"ev1"):
        run_study(spec)
    assert not root.exists()
    assert _no_workers_left() == []


def test_worker_processes_are_gone_when_the_run_returns(tmp_path: Path, demo_config: Path) -> None:
    spec = load_study(demo_config, [f"store.root={tmp_path / 'out'}", *SMALL, *QUIET])
    summary = run_study(spec)
    assert summary.ok and summary.done == summary.total > 0
    assert _no_workers_left(timeout_s=0.0) == []  # closed (and killed if slow) before run_study returned


def test_kill_children_spares_a_process_that_is_not_a_child(tmp_path: Path) -> None:
    # a grandchild re-parented to init when its shell exits: not ours to kill
    out = subprocess.run(["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True, check=True)
    orphan = psutil.Process(int(out.stdout))
    child = subprocess.Popen(["sleep", "60"])
    try:
        kill_children([orphan.pid, child.pid])
        assert child.wait(timeout=10) == -9
        assert orphan.is_running() and orphan.status() != psutil.STATUS_ZOMBIE
    finally:
        orphan.kill()
        child.kill()


def test_rerun_of_an_unchanged_study_keeps_its_reports(tmp_path: Path, demo_config: Path) -> None:
    root = tmp_path / "out"
    args = ["run", str(demo_config), f"store.root={root}", *SMALL, *QUIET]
    first = run_cli(args)
    assert first.returncode == 0, first.stderr + first.stdout
    figure = root / "reports" / "demo" / "demo_performance.png"
    page = root / "reports" / "demo" / "index.html"
    stamps = (figure.stat().st_mtime_ns, page.stat().st_mtime_ns)
    assert "reports: unchanged" not in first.stdout

    second = run_cli(args)
    assert second.returncode == 0, second.stderr + second.stdout
    assert "0 done now" in second.stdout and "reports: unchanged" in second.stdout
    # the cluster launched while the data loaded is stopped before its workers finished
    # starting: quietly (no error in the log, so no pointer to it)
    assert "messages of dask" not in second.stderr and "Traceback" not in second.stderr, second.stderr
    assert f"figure:   {figure}" in second.stdout and f"report:   {page}" in second.stdout
    assert (figure.stat().st_mtime_ns, page.stat().st_mtime_ns) == stamps  # not drawn again

    figure.unlink()  # a file of the last run is gone: the reports are written again
    third = run_cli(args)
    assert third.returncode == 0 and "reports: unchanged" not in third.stdout
    assert figure.is_file()

    again = run_cli(["report", str(root)])  # an explicit report always writes
    assert again.returncode == 0, again.stderr
    assert page.stat().st_mtime_ns > stamps[1]


def test_close_drops_the_restart_warning_of_a_nanny_whose_worker_it_killed() -> None:
    # the race behind it (a nanny turning "running" between being told its worker's exit is
    # expected and the kill) cannot be caused on demand; the filter that answers it can be
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    nanny_log = logging.getLogger("distributed.nanny")
    keep = Keep(logging.WARNING)
    nanny_log.addHandler(keep)
    try:
        with _killed_at_close_quiet():
            nanny_log.warning("Restarting worker (status=%s)", "Status.running")
            nanny_log.warning("Worker process %d was killed by signal %d", 12, 9)
        nanny_log.warning("Restarting worker (status=%s)", "Status.running")  # not while closing: kept
    finally:
        nanny_log.removeHandler(keep)
    assert records == ["Worker process 12 was killed by signal 9", "Restarting worker (status=Status.running)"]
