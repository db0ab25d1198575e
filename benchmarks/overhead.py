"""Cost of the machinery itself: per-task overhead with empty tasks, and sink throughput.

Measured side by side in one run:

* per-task overhead: the ``noop`` workload through ``run_study`` (plan, keys, task
  rows, bounded submission, outcomes, single-writer commits) vs. bare
  ``client.submit`` + ``as_completed`` of an empty function on the same LocalCluster;
* sink throughput: :class:`regulas.store.sink.Sink` vs. plain ``sqlite3`` executemany
  vs. SQLAlchemy Core ``insert`` with a list of dicts, into the same schema.

Usage: ``python benchmarks/overhead.py [--quick]``; writes
``benchmarks/results/overhead[.quick].json`` and prints the result as one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from distributed import Client, LocalCluster, as_completed

from regulas.core.task import make_task
from regulas.execution.progress import RunProgress
from regulas.execution.runner import run_study
from regulas.store.database import open_study, open_write, register_tasks
from regulas.store.sink import Sink, TaskOutcome
from regulas.study import load_study
from regulas.workloads.score import SCORE_TABLES, score

HERE = Path(__file__).resolve().parent
CONFIGS = HERE.parent / "configs"


def _empty(i: int) -> int:
    return i


def bench_overhead(n_tasks: int, workers: int, tmp: Path) -> dict[str, float]:
    config = tmp / "noop.yaml"
    config.write_text("study: {name: noop, workload: noop}\nnoop: {n_tasks: 1, rows_per_task: 1}\n")
    with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster) as client:
        client.submit(_empty, -1).result()  # warm the workers

        t0 = time.perf_counter()
        ac = as_completed()
        futures = iter(range(n_tasks))
        for _ in range(4 * workers):
            ac.add(client.submit(_empty, next(futures), pure=False))
        for f in ac:
            f.result()
            nxt = next(futures, None)
            if nxt is not None:
                ac.add(client.submit(_empty, nxt, pure=False))
        bare = time.perf_counter() - t0

        spec = load_study(config, [f"store.root={tmp / 'store'}", f"noop.n_tasks={n_tasks}"])
        t0 = time.perf_counter()
        summary = run_study(spec, client=client, progress=RunProgress("none"))
        regulas = time.perf_counter() - t0
        assert summary.done == n_tasks, summary
    return {
        "tasks": n_tasks,
        "workers": workers,
        "bare_dask_ms_per_task": 1e3 * bare / n_tasks,
        "regulas_ms_per_task": 1e3 * regulas / n_tasks,
        "regulas_over_bare": regulas / bare,
    }


def bench_sink(n_rows: int, tmp: Path) -> dict[str, float]:
    per_task = 10_000
    n_tasks = n_rows // per_task
    rng = np.random.default_rng(0)
    values = rng.standard_normal(per_task)
    values[::97] = np.nan

    def outcome(key: str, t: int) -> TaskOutcome:
        return TaskOutcome(
            key=key, status="done", started_at=0.0, finished_at=1.0, worker="w",
            rows={"score": {"target": [f"e{i}" for i in range(per_task)], "method": ["m"] * per_task,
                            "split": [t] * per_task, "metric": ["mse"] * per_task, "value": values}},
        )

    def fresh(name: str):
        engine = open_write(tmp / f"{name}.db", SCORE_TABLES)
        rec = open_study(engine, name="s", workload="noop", config_yaml="", config_hash="h", root_seed=0, package_versions={})
        tasks = [make_task(study="s", kind="k", block={"t": t}, root_seed=0, config={}, data_fingerprint="") for t in range(n_tasks)]
        ids = register_tasks(engine, rec.id, tasks)
        return engine, rec.id, tasks, ids

    engine, sid, tasks, ids = fresh("sink")
    outcomes = [outcome(t.key, i) for i, t in enumerate(tasks)]
    sink = Sink(engine, sid, {k: v[0] for k, v in ids.items()}, commit_every_s=1e9, commit_every_rows=200_000)
    t0 = time.perf_counter()
    for o in outcomes:
        sink.add(o)
    sink.close()
    t_sink = time.perf_counter() - t0
    assert sink.rows_written == n_tasks * per_task

    engine2, sid2, tasks2, ids2 = fresh("raw")
    tid = ids2[tasks2[0].key][0]
    rows = [(sid2, tid, f"e{i}", "m", t, "mse", None if np.isnan(v) else float(v), bool(np.isnan(v)))
            for t in range(n_tasks) for i, v in enumerate(values.tolist())]
    conn = sqlite3.connect(tmp / "raw.db")
    conn.execute("PRAGMA cache_size=-262144")  # the same settings as the sink's connection
    t0 = time.perf_counter()
    conn.executemany(
        "INSERT INTO score (study_id, task_id, target, method, split, metric, value, value_is_nan) VALUES (?,?,?,?,?,?,?,?)", rows
    )
    conn.commit()
    t_raw = time.perf_counter() - t0
    conn.close()

    engine3, sid3, tasks3, ids3 = fresh("core")
    tid3 = ids3[tasks3[0].key][0]
    n_core = min(n_rows, 200_000)  # the slow path, on a slice
    dicts = [{"study_id": sid3, "task_id": tid3, "target": f"e{j}", "method": "m", "split": 0, "metric": "mse",
              "value": 0.5, "value_is_nan": False} for j in range(n_core)]
    t0 = time.perf_counter()
    with engine3.begin() as c:
        c.execute(score.insert(), dicts)
    t_core = time.perf_counter() - t0
    for e in (engine, engine2, engine3):
        e.dispose()
    rate_sink, rate_raw, rate_core = n_rows / t_sink, n_rows / t_raw, n_core / t_core
    return {
        "rows": n_rows,
        "sink_rows_per_s": rate_sink,
        "raw_sqlite3_rows_per_s": rate_raw,
        "sqlalchemy_core_rows_per_s": rate_core,
        "sink_over_raw": rate_sink / rate_raw,
        "sink_over_core": rate_sink / rate_core,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes, under 2 minutes on 2 cores")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=None, help="default results/overhead[.quick].json")
    args = p.parse_args(argv)
    # a quick run must not overwrite the full result (splicing_tcga_projection reads overhead.json)
    args.out = args.out or HERE / "results" / ("overhead.quick.json" if args.quick else "overhead.json")
    n_tasks, n_rows = (1000, 500_000) if args.quick else (5000, 2_000_000)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        result = {
            "benchmark": "overhead",
            "quick": args.quick,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "per_task": bench_overhead(n_tasks, args.workers, tmp),
            "sink": bench_sink(n_rows, tmp),
        }
    result["goals"] = {
        "per_task_ms_le_20": result["per_task"]["regulas_ms_per_task"] <= 20,
        "sink_rows_per_s_ge_500k": result["sink"]["sink_rows_per_s"] >= 500_000,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result), file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
