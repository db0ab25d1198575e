"""A workload from a package installed beside regulas (tests/toy_workload), with no edit of regulas.

The toy package is installed for real with pip into a temporary folder and put on
``PYTHONPATH`` (the LocalCluster's workers inherit it); regulas finds it through the
``regulas.workloads`` entry point. Checked on a real run: the workload's own table, view,
Zarr array and report, the stored task seeds, resume, ``regulas status`` and ``regulas report``
from the store root. Without the package, ``study.workload: toy`` is refused with the
allowed names.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr

from conftest import QUIET, REPO, query, regulas_cmd
from regulas.core.hashing import derive_seed

TOY_SOURCE = Path(__file__).resolve().parent / "toy_workload"
TOY = {"n_tasks": 5, "width": 4, "scale": 3.0}
SEED = 7


def _env(pythonpath: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONUNBUFFERED"] = "1"
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return env


def _cli(args: list[str], env: Mapping[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(regulas_cmd(*args), check=False, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=dict(env))


def _build_env(tmp_path: Path) -> dict[str, str]:
    """The environment pip builds the toy package in (no build isolation: the venv's setuptools).

    setuptools < 70.1 builds wheels only with the ``wheel`` package; when the venv lacks it,
    it is installed into a folder of this test (pip's configured index) and put on the build's
    path, leaving the venv untouched.
    """
    if importlib.util.find_spec("setuptools") is None:
        pytest.fail("setuptools is not importable in this venv; the toy package cannot be built without isolation")
    import setuptools

    major, minor = (int(p) for p in setuptools.__version__.split(".")[:2])
    if (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None:
        return _env(None)
    tools = tmp_path / "build-tools"
    got = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(tools), "wheel"],
        check=False, capture_output=True, text=True, timeout=300,
    )
    if got.returncode != 0:
        pytest.fail(f"setuptools {setuptools.__version__} needs the 'wheel' package to build, and it could not "
                    f"be installed:\n{got.stderr}")
    return _env(str(tools))


def _install_toy(tmp_path: Path) -> Path:
    """pip-install tests/toy_workload into ``<tmp_path>/site``; returns that folder."""
    source = tmp_path / "toy_src"  # a copy: an in-tree build would leave build/ and *.egg-info in tests/
    shutil.copytree(TOY_SOURCE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--target", str(site), str(source)],
        check=False, capture_output=True, text=True, timeout=300, env=_build_env(tmp_path),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (dist,) = site.glob("regulas_toy_workload-*.dist-info")
    assert "toy = regulas_toy.workload:ToyWorkload" in (dist / "entry_points.txt").read_text()
    return site


def _write_config(folder: Path) -> Path:
    config = folder / "toy.yaml"
    config.write_text(yaml.safe_dump({
        "defaults": [{"cluster": "local"}, {"store": "sqlite"}, "_self_"],
        "seed": SEED,
        "study": {"name": "toy", "workload": "toy"},
        "toy": TOY,
    }, sort_keys=False))
    return config


def _expected() -> dict[int, np.ndarray]:
    """The draws, recomputed from the seed derivation of regulas.core.task.make_task."""
    return {
        i: TOY["scale"] * np.random.default_rng(derive_seed(SEED, "toy.draw", {"index": i})).standard_normal(TOY["width"])
        for i in range(TOY["n_tasks"])
    }


@pytest.mark.slow
def test_installed_workload_runs_end_to_end(tmp_path: Path) -> None:
    site = _install_toy(tmp_path)
    env = _env(str(site))
    config = _write_config(tmp_path)
    root = tmp_path / "out"
    argv = ["run", str(config), f"store.root={root}", "cluster.n_workers=1", *QUIET]
    proc = _cli(argv, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "study 'toy': 5 tasks; 0 were already done, 5 done now, 0 failed; 20 result rows" in proc.stdout

    db = root / "regulas.db"
    assert query(db, "SELECT name, workload, status, root_seed FROM study") == [("toy", "toy", "done", SEED)]
    expected = _expected()
    seeds = {b: s for b, s in query(db, "SELECT block, seed FROM task WHERE kind = 'toy.draw' AND status = 'done'")}
    assert seeds == {f'{{"index": {i}}}': derive_seed(SEED, "toy.draw", {"index": i}) for i in expected}

    # the table: exactly n_tasks x width rows, each the recomputed draw; NaN log <=> value <= 0
    rows = query(db, "SELECT task_index, item, value, log_value, log_value_is_nan FROM toy_result ORDER BY task_index, item")
    assert [(r[0], r[1]) for r in rows] == [(i, j) for i in range(TOY["n_tasks"]) for j in range(TOY["width"])]
    n_nan = 0
    for i, j, value, log_value, is_nan in rows:
        want = float(expected[i][j])
        assert value == pytest.approx(want, rel=1e-12)
        if want > 0:
            assert not is_nan and log_value == pytest.approx(math.log(want), rel=1e-12)
        else:
            assert is_nan and log_value is None
            n_nan += 1
    assert 0 < n_nan < len(rows)  # the seed gives both cases, so the NaN path is exercised
    # every row belongs to the task that drew it
    assert query(db, "SELECT count(*) FROM toy_result r JOIN task t ON t.id = r.task_id "
                     "WHERE t.block != '{\"index\": ' || r.task_index || '}'") == [(0,)]

    # the view: present in the schema and returning the same rows under the study's name
    assert query(db, "SELECT name FROM sqlite_master WHERE type = 'view'") == [("toy_view",)]
    view = query(db, "SELECT study, task_index, item, value, log_value, log_value_is_nan FROM toy_view "
                     "ORDER BY task_index, item")
    assert view == [("toy", *r) for r in rows]

    # the array: registered, and each row written by its task with the same values
    assert query(db, "SELECT name, shape, chunks, dims FROM zarr_array") == [
        ("toy_values", "[5, 4]", "[1, 4]", '["task", "item"]')
    ]
    values = zarr.open_array(str(root / "arrays.zarr"), path="toy/toy_values", mode="r")[:]
    np.testing.assert_allclose(values, np.stack([expected[i] for i in range(TOY["n_tasks"])]), rtol=1e-12, atol=0)

    # the report: one CSV row per task, and its line printed after the run
    csv = root / "reports" / "toy" / "toy_summary.csv"
    assert f"report:   {csv}" in proc.stdout
    assert f"toy: 20 values in 5 tasks; mean {np.mean(list(expected.values())):.4f}; {n_nan} without a log" in proc.stdout
    lines = csv.read_text().splitlines()
    assert lines[0] == "task_index,n,mean,n_log_nan" and len(lines) == 1 + TOY["n_tasks"]
    for line in lines[1:]:
        i, n, mean, n_log_nan = line.split(",")
        assert int(n) == TOY["width"]
        assert float(mean) == pytest.approx(float(np.mean(expected[int(i)])), rel=1e-9)
        assert int(n_log_nan) == int(np.sum(expected[int(i)] <= 0))

    # resume: the same command finds every key done and changes nothing
    again = _cli(argv, env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "5 tasks, 5 already done, 0 to run" in again.stderr
    assert query(db, "SELECT task_index, item, value, log_value, log_value_is_nan FROM toy_result "
                     "ORDER BY task_index, item") == rows

    status = _cli(["status", str(root)], env)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "study 'toy' (toy): done, run 2; tasks 5/5 done, 0 running, 0 pending, 0 failed" in status.stdout

    csv.unlink()  # reports again from the store root alone: the workload comes from the entry point
    report = _cli(["report", str(root)], env)
    assert report.returncode == 0, report.stdout + report.stderr
    assert str(csv) in report.stdout and len(csv.read_text().splitlines()) == 1 + TOY["n_tasks"]


def test_uninstalled_workload_is_refused_with_the_allowed_names(tmp_path: Path) -> None:
    config = _write_config(tmp_path)
    root = tmp_path / "out"
    proc = _cli(["run", str(config), f"store.root={root}", "cluster.n_workers=1", *QUIET], _env(None))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    message = proc.stderr.strip()
    assert message.startswith("regulas: error:") and "unknown workload (given: 'toy')" in message, message
    line = config.read_text().splitlines().index("  workload: toy") + 1
    assert f"{config}:{line}: key 'study.workload'" in message  # the file and line of the value
    allowed = message.split("allowed: ", 1)[1].split(", ")
    assert {"demo", "noop", "regnet", "splicing"} <= set(allowed) and "toy" not in allowed, message
    assert not root.exists()  # refused before the store was touched
