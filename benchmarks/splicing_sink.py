"""Writing splicing results: the single-writer Sink against plain sqlite3, event index against name.

The rows have the shape of the GSE114922 study (events x 2 pipelines x 5 outer splits:
one ``splice_score`` row and ``top_k`` ``splice_importance`` rows per event, model and
split; event names of ~90 characters like rMATS's ``gene:type:coordinates``). Three
writers, side by side in one run, each into a fresh database:

- ``sink``: :class:`regulas.store.sink.Sink`, as the driver writes them (schema 3: the
  event is an integer index into ``splice_event``);
- ``raw_index``: plain ``sqlite3`` ``executemany`` of the same rows into the same tables;
- ``raw_name``: plain ``sqlite3`` into the same tables with the event's *name* in the key
  instead of its index (schema 2's layout: no ``splice_event``), the rest unchanged.

Reported: rows/s and database size of each, and the ratios.

Usage: ``python benchmarks/splicing_sink.py [--quick]``; writes
``results/splicing_sink[.quick].json`` and prints it as one JSON line last.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.schema import CreateIndex, CreateTable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from splicing_common import header, write_result  # noqa: E402

from regulas.core.task import make_task  # noqa: E402
from regulas.store.database import open_study, open_write, register_tasks, write_study_rows  # noqa: E402
from regulas.store.sink import Sink, TaskOutcome  # noqa: E402
from regulas.workloads.splicing import tables  # noqa: E402

MODELS, SPLITS, TOP_K, FEATURES, BLOCK = 2, 5, 10, 868, 250


def event_names(n: int) -> list[str]:
    return [f"GENE{i % 977}:MXE:chr15:{67209544 + i}:67209462:67208658:67208562:67203597:67203548:{67202000 + i}"
            for i in range(n)]


def task_rows(rng: np.random.Generator, events: list[int], model: int, split: int) -> dict[str, dict[str, Any]]:
    n = len(events)
    score = {"event": events, "model": [model] * n, "split": [split] * n, "n_train": [32] * n, "n_test": [8] * n,
             **{m: rng.random(n) for m in tables.SPLICE_METRICS}, "params": ['{"alpha": 1.0}'] * n,
             "fit_time_s": rng.random(n)}
    importance = {"event": [e for e in events for _ in range(TOP_K)], "model": [model] * n * TOP_K,
                  "split": [split] * n * TOP_K, "kind": ["coef"] * n * TOP_K, "rank": list(range(1, TOP_K + 1)) * n,
                  "feature": [f"RBP{j}" for j in rng.integers(0, FEATURES, n * TOP_K)],
                  "score": rng.standard_normal(n * TOP_K)}
    return {"splice_score": score, "splice_importance": importance}


def plan(n_events: int) -> list[tuple[int, int, int]]:
    return [(b, m, s) for b in range(0, n_events, BLOCK) for m in range(MODELS) for s in range(SPLITS)]


def with_sink(folder: Path, names: list[str]) -> tuple[int, float]:
    engine = open_write(folder / "regulas.db", tables.SPLICING_TABLES)
    rec = open_study(engine, name="s", workload="splicing", config_yaml="bench", config_hash="0" * 64, root_seed=0,
                     package_versions={})
    write_study_rows(engine, rec.id, {
        "splice_event": {"event": list(range(len(names))), "name": names},
        "splice_model": {"model": list(range(MODELS)), "pipeline": [f"p{m}" for m in range(MODELS)],
                         "candidate": [-1] * MODELS, "params": ["{}"] * MODELS,
                         "label": [f"p{m}" for m in range(MODELS)], "identity": [str(m) for m in range(MODELS)],
                         "steps": ["[]"] * MODELS, "grid": ["{}"] * MODELS},
    })
    cells = plan(len(names))
    tasks = [make_task(study="s", kind="fit", block={"b": b, "m": m, "s": s}, root_seed=0, config={},
                       data_fingerprint="d") for b, m, s in cells]
    ids = register_tasks(engine, rec.id, tasks)
    rng = np.random.default_rng(0)
    outcomes = [
        TaskOutcome(key=t.key, status="done", started_at=0.0, finished_at=0.1, worker="w",
                    rows=task_rows(rng, list(range(b, min(b + BLOCK, len(names)))), m, s))
        for t, (b, m, s) in zip(tasks, cells)
    ]
    n_rows = sum(o.n_rows for o in outcomes)
    sink = Sink(engine, rec.id, {k: v[0] for k, v in ids.items()})
    t0 = time.perf_counter()
    for o in outcomes:
        sink.add(o)
    sink.close()
    seconds = time.perf_counter() - t0
    engine.dispose()
    return n_rows, seconds


def with_sqlite3(folder: Path, names: list[str], *, by_name: bool) -> tuple[int, float]:
    """The same rows by executemany; ``by_name``: the event's name in the key (no splice_event)."""
    ddl = []
    for table in (tables.splice_score, tables.splice_importance):
        create = str(CreateTable(table).compile(dialect=sqlite_dialect.dialect()))
        create = create.replace("REFERENCES task (id)", "").replace("REFERENCES study (id)", "")
        create = "\n".join(line for line in create.splitlines() if "FOREIGN KEY" not in line)
        create = create.replace(", \n)", "\n)").rstrip().rstrip(",")
        if by_name:
            create = create.replace("event INTEGER NOT NULL", "event VARCHAR(255) NOT NULL")
        ddl.append(create)
        ddl += [str(CreateIndex(ix).compile(dialect=sqlite_dialect.dialect())) for ix in table.indexes]
    conn = sqlite3.connect(folder / "raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for statement in ddl:
        conn.execute(statement)
    rng = np.random.default_rng(0)
    batches = []
    for b, m, s in plan(len(names)):
        rows = task_rows(rng, list(range(b, min(b + BLOCK, len(names)))), m, s)
        if by_name:
            for cols in rows.values():
                cols["event"] = [names[e] for e in cols["event"]]
        batches.append(rows)
    n_rows = 0
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    for rows in batches:
        for table, cols in rows.items():
            nan_cols = [c for c in {t.name: t for t in tables.SPLICING_TABLES.results}[table].columns if c.info.get("nan_flag")]
            values = dict(cols, study_id=[1] * len(cols["event"]), task_id=[1] * len(cols["event"]))
            for c in nan_cols:
                v = np.asarray(values[c.name], dtype=float)
                values[c.name] = [None if np.isnan(x) else float(x) for x in v]
                values[c.info["nan_flag"]] = np.isnan(v).tolist()
            names_ = list(values)
            conn.executemany(
                f"INSERT INTO {table} ({', '.join(names_)}) VALUES ({', '.join('?' * len(names_))})",
                list(zip(*(values[c] for c in names_))),
            )
            n_rows += len(cols["event"])
    conn.execute("COMMIT")
    seconds = time.perf_counter() - t0
    conn.close()
    return n_rows, seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2,000 events instead of 9,990 (under a minute)")
    p.add_argument("--out", type=Path, help="result JSON (default: results/splicing_sink[.quick].json)")
    args = p.parse_args(argv)
    n_events = 2_000 if args.quick else 9_990
    names = event_names(n_events)
    result = header("splicing_sink", args.quick, {"events": n_events, "models": MODELS, "splits": SPLITS,
                                                  "top_k": TOP_K, "block": BLOCK})
    measured: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, run in (("sink", lambda f: with_sink(f, names)),
                          ("raw_index", lambda f: with_sqlite3(f, names, by_name=False)),
                          ("raw_name", lambda f: with_sqlite3(f, names, by_name=True))):
            folder = Path(tmp, name)
            folder.mkdir()
            n_rows, seconds = run(folder)
            size = sum(f.stat().st_size for f in folder.iterdir())
            measured[name] = {"rows": n_rows, "seconds": seconds, "rows_per_s": n_rows / seconds, "mb": size / 1e6}
    result["measured"] = measured
    result["ratios"] = {
        "sink_over_raw_index": measured["sink"]["rows_per_s"] / measured["raw_index"]["rows_per_s"],
        "raw_index_over_raw_name": measured["raw_index"]["rows_per_s"] / measured["raw_name"]["rows_per_s"],
        "size_name_over_index": measured["raw_name"]["mb"] / measured["raw_index"]["mb"],
    }
    result["load_average_1min"] = os.getloadavg()[0]
    write_result(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
