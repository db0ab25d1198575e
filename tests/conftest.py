"""Shared helpers: run the real CLI in a subprocess, read the real SQLite file."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from regulas import datasets

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
#: the data sets shipped in the package (regulas/datasets/data): every real-data test uses them
DATASETS = Path(datasets.DATA)

# Test runs must not fight over the default dashboard port or print bars into logs.
QUIET = ("cluster.dashboard_address=null", "execution.progress=log", "execution.progress_every_s=1")


def regulas_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "regulas", *args]


def run_cli(args: Sequence[str], *, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        regulas_cmd(*args), capture_output=True, text=True, timeout=timeout, cwd=cwd or REPO, env=env
    )


def query(db: Path, sql: str, params: Sequence[object] = ()) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, tuple(params)).fetchall()
    finally:
        conn.close()


def traced_demo_run(tmp_path: Path, config: Path, *overrides: str) -> tuple[Path, Path, list[str]]:
    """Run the demo study into ``tmp_path/out``, each task leaving a trace file in
    ``tmp_path/traces`` (``demo.trace_dir``); returns the root, the trace folder and the
    arguments that run it again."""
    root = tmp_path / "out"
    traces = tmp_path / "traces"
    traces.mkdir()
    argv = ["run", str(config), f"store.root={root}", f"demo.trace_dir={traces}", *overrides, *QUIET]
    first = run_cli(argv)
    assert first.returncode == 0, first.stdout + first.stderr
    return root, traces, argv


def task_traces(trace_dir: Path) -> Counter[str]:
    """Task key -> how many times the demo computed it (its trace files)."""
    return Counter(p.name.split(".")[0] for p in trace_dir.iterdir())


def demo_task_key(db: Path, split: int, targets: list[int]) -> str:
    """The key of the demo task of outer split ``split`` on targets ``[start, stop]``."""
    (key,) = [k for (k, block) in query(db, "SELECT key, block FROM task")
              if json.loads(block)["split"] == split and json.loads(block)["targets"] == targets]
    return key


@pytest.fixture
def demo_config() -> Path:
    return CONFIGS / "demo.yaml"


#: ``record_property(SUMMARY, text)`` in a test puts ``text`` in a section at the end of the
#: pytest output (also with -q), e.g. how long a real-data study took in CI.
SUMMARY = "ci_summary"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = [
        f"{report.nodeid}: {value}"
        for report in terminalreporter.stats.get("passed", [])
        for key, value in report.user_properties
        if key == SUMMARY
    ]
    if lines:
        terminalreporter.section("measured in this run")
        for line in lines:
            terminalreporter.write_line(line)


def open_all(db: Path):  # type: ignore[no-untyped-def]
    """The store at ``db`` opened for writing with the tables of every built-in workload."""
    from regulas.core.workload import WorkloadTables
    from regulas.store.database import open_write
    from regulas.workloads.regnet.tables import REGNET_TABLES
    from regulas.workloads.score import SCORE_TABLES
    from regulas.workloads.splicing.tables import SPLICING_TABLES

    return open_write(db, WorkloadTables.union(SCORE_TABLES, SPLICING_TABLES, REGNET_TABLES))
