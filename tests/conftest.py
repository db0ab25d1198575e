"""Shared helpers: run the real CLI in a subprocess, read the real SQLite file."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
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
