"""Kill -9 of the driver halfway through the demo, rerun, compare with an uninterrupted run.

Measures: tasks done when the driver died, tasks run by the resume, done tasks computed
again (must be 0), wall time of the resume, and whether the final ``score`` table equals
an uninterrupted run's. Usage: ``python benchmarks/resume.py [--quick]``; writes
``benchmarks/results/resume[.quick].json`` and prints the result as one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEMO = HERE.parent / "configs" / "demo.yaml"
QUIET = ["execution.progress=none", "cluster.dashboard_address=null"]
SCORES = "SELECT target, method, split, metric, value, value_is_nan FROM score ORDER BY 1, 2, 3, 4"


def _query(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "regulas", "run", str(DEMO), *args, *QUIET], capture_output=True, text=True)


def _traces(folder: Path) -> Counter:
    return Counter(p.name.split(".")[0] for p in folder.iterdir())


def measure(tmp: Path, extra: list[str]) -> dict[str, object]:
    traces = tmp / "traces"
    traces.mkdir()
    a, b = tmp / "interrupted", tmp / "uninterrupted"
    argv = [sys.executable, "-m", "regulas", "run", str(DEMO), f"store.root={a}", f"demo.trace_dir={traces}",
            "demo.sleep_s=0.1", *extra, *QUIET]
    proc = subprocess.Popen(argv, start_new_session=True)
    db = a / "regulas.db"
    total = None
    while proc.poll() is None:
        time.sleep(0.05)
        try:
            (done, total), = _query(db, "SELECT sum(status = 'done'), count(*) FROM task")
        except (sqlite3.Error, ValueError, TypeError):
            continue
        if total and done and done >= total // 2:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the LocalCluster workers it left behind
    except ProcessLookupError:
        pass
    done_at_kill = {k for (k,) in _query(db, "SELECT key FROM task WHERE status = 'done'")}
    before = _traces(traces)
    t0 = time.perf_counter()
    resumed = _run(f"store.root={a}", f"demo.trace_dir={traces}", *extra)
    resume_s = time.perf_counter() - t0
    after = _traces(traces)
    straight = _run(f"store.root={b}", *extra)
    return {
        "tasks": total,
        "done_when_killed": len(done_at_kill),
        "run_by_resume": sum(after.values()) - sum(before.values()),
        "done_tasks_recomputed": sum(after[k] != before[k] for k in done_at_kill),
        "resume_exit_code": resumed.returncode,
        "resume_s": resume_s,
        "uninterrupted_exit_code": straight.returncode,
        "same_scores_as_uninterrupted": _query(db, SCORES) == _query(b / "regulas.db", SCORES),
        "score_rows": len(_query(db, SCORES)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a smaller demo (under a minute)")
    p.add_argument("--out", type=Path, default=None, help="default results/resume[.quick].json")
    args = p.parse_args(argv)
    # a quick run must not overwrite the full result (splicing_tcga_projection reads overhead.json)
    args.out = args.out or HERE / "results" / ("resume.quick.json" if args.quick else "resume.json")
    extra = ["demo.n_targets=400", "demo.block_size=20"] if args.quick else []
    with tempfile.TemporaryDirectory() as tmp:
        result = {"benchmark": "resume", "quick": args.quick, **measure(Path(tmp), extra)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
