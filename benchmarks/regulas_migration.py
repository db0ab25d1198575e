"""regulAS users' own workflow: N per-event pickles run as one regulas study vs one run per file.

regulAS users keep one pickle per splicing event (``<out>/<gene>/<gene>_<setup>.pkl``) and
run regulAS's experiment file once per pickle. This benchmark makes N such pickles from the
packaged GSE114922 data (``examples/regulas/make_pickles.py``: the N most variable events,
40 samples x 868 RBPs) and times, with regulAS's sample experiment
(``examples/regulas/experiment.yaml``: ElasticNet and linear SVR, 3 grid points each,
ShuffleSplit(5), regulAS's selection):

* ``one_study``: ``regulas run experiment.yaml 'dataset.path_to_file=DIR/*/*.pkl'``, every
  pickle one event of one study (wall time of the whole command, per event; the task phase
  from the database, first task start to last task end; and the rest, "outside the tasks");
* ``rerun``: the same command again (nothing to run; the reports stand);
* ``per_file``: the same file run once per pickle, each a separate command into one store
  (regulAS's workflow; its cost per event does not depend on N, so at large N it is
  measured on the first ``--per-file`` pickles);
* ``cli``: ``regulas --help`` and ``regulas show-config`` (median of 5 runs, warm cache).

regulAS itself is not installed here; its figures are quoted from issue 15 as the anchor
(regulAS 2023.7.1, Python 3.8, same machine, same 20 events): 8.81 s per event run once
per file, and regulas's per-file runs then took 9.99 s per event = 0.66 x regulAS's
``--multirun``, i.e. regulAS's multirun ~6.6 s per event.

Usage: ``python benchmarks/regulas_migration.py [--quick] [--events 20 1000] [--per-file 20]``;
writes ``benchmarks/results/regulas_migration.json`` (``.quick.json`` with ``--quick``) and
prints it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = REPO / "examples" / "regulas" / "experiment.yaml"
RESULTS = REPO / "benchmarks" / "results"
QUIET = ["cluster.dashboard_address=null", "execution.progress=log", "execution.progress_every_s=5"]
#: regulAS 2023.7.1 on this machine, from issue 15 (not measured here: regulAS is not installed)
REGULAS_ANCHOR = {
    "per_file_s_per_event": 8.81,
    "multirun_s_per_event": round(9.99 * 0.66, 2),
    "source": "issue 15: regulAS 2023.7.1 on Python 3.8, same machine, same 20 GSE114922 events, alternated runs",
}
AIMS = {"one_study_s_per_event_at_1000": 0.1, "show_config_s": 1.0, "study_of_20_wall_s": 10.0}


def _make_pickles(out: Path, n: int) -> list[Path]:
    spec = importlib.util.spec_from_file_location("make_pickles", REPO / "examples" / "regulas" / "make_pickles.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    paths = []
    for event, frame in module.event_frames(n).items():
        path = module.pickle_path(out, event)
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_pickle(path)
        paths.append(path)
    return sorted(paths)


def _regulas(*args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "regulas", *args], capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"regulas {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, proc


def _task_phase(db: Path) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT s.name, min(t.started_at), max(t.finished_at), count(*) FROM task t JOIN study s ON s.id = t.study_id "
            "WHERE t.status = 'done' GROUP BY s.name"
        ).fetchall()
    return {name: {"task_phase_s": round(stop - start, 3), "tasks": n} for name, start, stop, n in rows}


def _waited(stderr: str) -> float:
    """Seconds the driver waited for the cluster after planning (0 when it was ready)."""
    m = re.search(r"waited ([0-9.]+) s for it", stderr)
    return float(m.group(1)) if m else 0.0


def one_study(folder: Path, store: Path, n: int) -> dict[str, Any]:
    args = ["run", str(EXPERIMENT), f"dataset.path_to_file={folder}/*/*.pkl", "random_state=42", f"store.root={store}", *QUIET]
    wall, proc = _regulas(*args)
    ((name, phase),) = _task_phase(store / "regulas.db").items()
    waited = _waited(proc.stderr)
    rerun_wall, rerun = _regulas(*args)
    return {
        "events": n,
        "study": name,
        "wall_s": round(wall, 2),
        "s_per_event": round(wall / n, 4),
        "task_phase_s": phase["task_phase_s"],
        "tasks": phase["tasks"],
        "waited_for_cluster_after_planning_s": waited,
        "outside_tasks_s": round(wall - phase["task_phase_s"] - waited, 2),
        "rerun_wall_s": round(rerun_wall, 2),
        "rerun_reports_reused": "reports: unchanged" in rerun.stdout,
    }


def per_file(paths: list[Path], store: Path) -> dict[str, Any]:
    walls = []
    for path in paths:
        wall, _ = _regulas("run", str(EXPERIMENT), f"dataset.path_to_file={path}", "random_state=42", f"store.root={store}", *QUIET)
        walls.append(wall)
    return {
        "runs": len(walls),
        "total_s": round(sum(walls), 2),
        "s_per_event": round(statistics.mean(walls), 3),
        "median_run_s": round(statistics.median(walls), 3),
    }


def cli_start(pickle: Path, repeats: int = 5) -> dict[str, Any]:
    def median(*args: str) -> float:
        return round(statistics.median(_regulas(*args)[0] for _ in range(repeats)), 3)

    _regulas("--help")  # warm the file cache
    return {
        "help_s": median("--help"),
        "show_config_s": median("show-config", str(EXPERIMENT), f"dataset.path_to_file={pickle}"),
        "repeats": repeats,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 events and 3 per-file runs only")
    parser.add_argument("--events", type=int, nargs="+", default=[20, 1000])
    parser.add_argument("--per-file", type=int, default=20, help="per-file runs measured (the first pickles)")
    args = parser.parse_args(argv)
    events, per_file_n = ([20], 3) if args.quick else (args.events, args.per_file)
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average_at_start": os.getloadavg()},
        "regulas_anchor_quoted": REGULAS_ANCHOR,
        "aims": AIMS,
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="regulas-migration-") as tmp:
        base = Path(tmp)
        paths = _make_pickles(base / "pickles", max(events))
        result["cli"] = cli_start(paths[0])
        for n in sorted(events):
            folder = base / f"pickles{n}"
            folder.mkdir()
            for p in paths[:n]:  # the n most variable events, in regulAS's folder layout
                (folder / p.parent.name).mkdir(exist_ok=True)
                os.link(p, folder / p.parent.name / p.name)
            run = {"one_study": one_study(folder, base / f"study{n}", n)}
            print(json.dumps(run), flush=True)
            result["runs"].append(run)
        result["per_file"] = per_file(paths[:per_file_n], base / "per_file")
    one = {r["one_study"]["events"]: r["one_study"] for r in result["runs"]}
    pf = result["per_file"]["s_per_event"]
    result["speedup_one_study_vs_per_file"] = {str(n): round(pf / r["s_per_event"], 1) for n, r in one.items()}
    result["speedup_vs_regulas_per_file"] = {
        "per_file": round(REGULAS_ANCHOR["per_file_s_per_event"] / pf, 2),
        **{f"one_study_{n}": round(REGULAS_ANCHOR["per_file_s_per_event"] / r["s_per_event"], 1) for n, r in one.items()},
    }
    result["aims_met"] = {
        "show_config_s": result["cli"]["show_config_s"] <= AIMS["show_config_s"],
        **({"study_of_20_wall_s": one[20]["wall_s"] <= AIMS["study_of_20_wall_s"]} if 20 in one else {}),
        **({"one_study_s_per_event_at_1000": one[1000]["s_per_event"] <= AIMS["one_study_s_per_event_at_1000"]}
           if 1000 in one else {}),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / ("regulas_migration.quick.json" if args.quick else "regulas_migration.json")
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
