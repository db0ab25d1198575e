"""The TCGA-scale splicing study end to end with ``regulas run``, on this machine.

Data: ``python -m regulas.sim.synthetic_splicing`` (calibrated on GSE114922, seed 14,
HDF5), generated into ``--data`` when absent and kept out of the repository (4 GB of PSI
at full size; reproducible from its seed). Study: ``configs/splicing_tcga.yaml``
(StandardScaler → Ridge over 10 alphas, nested 5-fold, 5 outer KFold splits, blocks of
1,000 events, missing PSI fitted per event on its own rows) on a LocalCluster of
``--workers`` one-thread workers, or with ``--cluster slurm`` on as many one-core SLURM
worker jobs (the dev SLURM of ``slurm/dev-cluster.sh``, ``SLURM_CONF`` set); with
``--compare-with STORE`` the stored predictions and coefficients are compared with another
run's of the same data (e.g. the local run against the SLURM one).

Measured: wall time of the command; the task phase and the sum of task durations (one
BLAS thread per task, so about their CPU time) from the database; the database writer's
time (from the run's summary line); peak resident memory of the driver and of the largest
worker (psutil, sampled every 0.5 s: the driver's descendants, or on SLURM the processes of
the worker jobs); disk use of the Zarr arrays and of the database;
predictions of sampled events against scikit-learn's GridSearchCV on their own rows; the
precision of each regulated event's top-r coefficients (r = its number of planted
regulators) against the planted truth.

The arithmetic bound beside it: per task (one block of m events, one outer split) the
inner-fold validation predictions cost n_alphas × Σ_k n_val_k × p × m × 2 flops, the
right-hand sides (n_train + Σ_k n_val_k) × p × m × 2 + 6 × p² × m × 2, the test
predictions n_test × p × m × 2 per chosen alpha group; divided by this machine's measured
one-thread DGEMM rate, summed over the tasks and divided by the workers.

Usage: ``python benchmarks/splicing_tcga.py --events 50000 [--missing-rate 0.05]
[--data DIR] [--store DIR] [--workers 2] [--check-events 2] [--cluster slurm]
[--compare-with STORE]``; writes
``benchmarks/results/splicing_tcga[_missing<rate>]_<events>[_slurm].json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from splicing_common import RESULTS, header

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "splicing_tcga.yaml"
ALPHAS = np.logspace(-1, 4, 10)
SAMPLES, RBPS, SPLITS, INNER = 10_000, 1_500, 5, 5
QUIET = ["cluster.dashboard_address=null", "execution.progress=log", "execution.progress_every_s=30"]
AIMS = {"complete_wall_min": 20.0, "missing_wall_h": 3.0, "peak_memory_gb": 4.0, "writer_share": 0.05, "disk_gb": 30.0}


def generate(folder: Path, events: int, missing_rate: float) -> dict[str, Any]:
    if (folder / "generation.json").is_file():
        made = json.loads((folder / "generation.json").read_text())
        shape, settings = made["shape"], made["settings"]
        if (shape["samples"], shape["rbps"], shape["events"]) != (SAMPLES, RBPS, events) or settings["missing_rate"] != missing_rate:
            raise SystemExit(f"{folder} holds another data set ({shape}, missing {settings['missing_rate']}): use another --data")
        return {"generated_s": None, "command": made["command"]}
    cmd = [sys.executable, "-m", "regulas.sim.synthetic_splicing", "--samples", str(SAMPLES), "--rbps", str(RBPS),
           "--events", str(events), "--missing-rate", str(missing_rate), "--seed", "14", "--out", str(folder)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO)
    return {"generated_s": round(time.perf_counter() - t0, 1), "command": " ".join(cmd[1:])}


class MemoryWatch:
    """Peak RSS of a process and of the largest of its descendants, sampled in a thread."""

    def __init__(self, pid: int, every_s: float = 0.5, slurm: bool = False) -> None:
        import psutil

        self.proc = psutil.Process(pid)
        self.slurm = slurm
        self.every_s = every_s
        self.driver = 0
        self.worker = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                self.driver = max(self.driver, self.proc.memory_info().rss)
                for child in self._workers():
                    try:
                        self.worker = max(self.worker, child.memory_info().rss)
                    except psutil.Error:
                        continue
            except psutil.Error:
                return
            self._stop.wait(self.every_s)

    def _workers(self) -> list[Any]:
        import psutil

        if not self.slurm:
            return list(self.proc.children(recursive=True))
        # SLURM worker jobs are children of slurmstepd, not of the driver: their nannies, and
        # the worker processes the nannies spawn
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            cmd = " ".join(proc.info["cmdline"] or [])
            if "distributed.cli.dask" in cmd and proc.pid != self.proc.pid:
                try:
                    found += [proc, *proc.children(recursive=True)]
                except psutil.Error:
                    continue
        return found

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return {"driver_peak_gb": round(self.driver / 1e9, 2), "worker_peak_gb": round(self.worker / 1e9, 2)}


def dgemm_rate() -> float:
    """This machine's one-thread float64 matrix-product rate (flop/s), at the study's shapes."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    A, B = rng.random((1600, RBPS)), rng.random((RBPS, 1000))
    with threadpool_limits(1):
        A @ B
        t0 = time.perf_counter()
        for _ in range(5):
            A @ B
    return float(2 * 1600 * RBPS * 1000 * 5 / (time.perf_counter() - t0))


def bound_s(events: int, block: int, rate: float, workers: int) -> dict[str, Any]:
    """Matrix-product flops of the study over the measured DGEMM rate and the workers.

    ``direct``: the issue's bound, every alpha's validation predictions computed
    (n_alphas x n_val x p per fold and event); ``alpha_path``: what the tasks compute
    (right-hand sides, rotations into the eigenbases, one p x p product and one n_val x p
    product per fold for every alpha at once, the test predictions), per event and split.
    """
    n_train, n_test = SAMPLES * (SPLITS - 1) // SPLITS, SAMPLES // SPLITS
    n_val = n_train // INNER
    p = RBPS
    direct = 2 * p * (len(ALPHAS) * INNER * n_val + n_train + INNER * n_val + n_test + 6 * p)
    path = 2 * p * (n_train + INNER * n_val + 6 * p + INNER * (n_val + p) + n_test + p)
    tasks = SPLITS * -(-events // block)
    out: dict[str, Any] = {"tasks": tasks, "dgemm_gflops": round(rate / 1e9, 1)}
    for name, per_event in (("direct", direct), ("alpha_path", path)):
        total = per_event * events * SPLITS
        out[name] = {"flops_per_event_and_split": per_event, "flops": total, "core_s": round(total / rate, 1),
                     "wall_s": round(total / rate / workers, 1)}
    return out


def du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run_study(data: Path, store: Path, workers: int, cluster: str = "local") -> dict[str, Any]:
    env = {**os.environ, "TCGA_SYNTHETIC": str(data)}
    if cluster == "slurm":  # a fixed number of one-core jobs; a walltime the longest task fits in many times
        where = ["cluster=slurm", f"cluster.min_jobs={workers}", f"cluster.max_jobs={workers}", "cluster.memory=4GiB",
                 "cluster.walltime=04:00:00"]
    else:
        where = [f"cluster.n_workers={workers}"]
    cmd = [sys.executable, "-m", "regulas", "run", str(CONFIG), f"store.root={store}", *where, *QUIET]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watch = MemoryWatch(proc.pid, slurm=cluster == "slurm")
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    memory = watch.stop()
    (store / "run.stdout").write_text(out)
    (store / "run.stderr").write_text(err)
    if proc.returncode != 0:
        raise SystemExit(f"regulas run failed ({proc.returncode}):\n{err[-3000:]}\n{out[-2000:]}")
    m = re.search(r"result rows; ([0-9.]+) s \(the database writer ([0-9.]+) s\)", out)
    with sqlite3.connect(store / "regulas.db") as conn:
        start, stop, busy, n = conn.execute(
            "SELECT min(started_at), max(finished_at), sum(finished_at - started_at), count(*) FROM task WHERE status = 'done'"
        ).fetchone()
        failed = conn.execute("SELECT count(*) FROM task WHERE status != 'done'").fetchone()[0]
    run_s = float(m.group(1)) if m else None
    writer_s = float(m.group(2)) if m else None
    return {
        "wall_s": round(wall, 1),
        "run_s": run_s,
        "task_phase_s": round(stop - start, 1),
        "task_sum_s": round(busy, 1),
        "tasks_done": n,
        "tasks_failed": failed,
        "mean_task_s": round(busy / n, 2),
        "writer_s": writer_s,
        "writer_share": round(writer_s / wall, 4) if writer_s is not None else None,
        "shared_computations": _shared_line(err),
        **memory,
        "disk_gb": {"arrays": round(du(store / "arrays.zarr") / 1e9, 2), "database": round(du(store / "regulas.db") / 1e9, 2)},
    }


def _shared_line(stderr: str) -> str | None:
    m = re.search(r"shared computations: [^\n]*", stderr)
    return m.group(0) if m else None


def check_events(store: Path, n_check: int) -> dict[str, Any]:
    """Stored predictions of ``n_check`` events (split 0) against GridSearchCV on their rows."""
    import zarr
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    study = "splicing_tcga"
    arr = {n: zarr.open_array(str(store / "arrays.zarr"), path=f"{study}/{n}", mode="r") for n in ("X", "Y", "train_index", "test_index", "pred")}
    X = arr["X"][...]
    train, test = (row[row >= 0] for row in (arr["train_index"][0], arr["test_index"][0]))
    n_events = arr["Y"].shape[1]
    picks = np.linspace(0, n_events - 1, n_check).astype(int)
    worst, t0 = 0.0, time.perf_counter()
    for e in picks.tolist():
        y = arr["Y"][:, e]
        tr, obs = train[~np.isnan(y[train])], ~np.isnan(y[test])
        with threadpool_limits(1):
            gs = GridSearchCV(make_pipeline(StandardScaler(), Ridge()), {"ridge__alpha": list(ALPHAS)}, cv=KFold(INNER),
                              scoring="neg_mean_squared_error").fit(X[tr], y[tr])
            want = gs.predict(X[test[obs]])
        got = arr["pred"][0, 0, : len(test), e][obs]
        worst = max(worst, float(np.max(np.abs(got - want))))
    return {"events": picks.tolist(), "max_abs_diff": worst, "within_1e-8": worst <= 1e-8,
            "sklearn_s": round(time.perf_counter() - t0, 1)}


def compare_stores(store: Path, other: Path) -> dict[str, Any]:
    """Largest difference between two runs' stored predictions and coefficients (every split,
    position and event; NaN where one is missing counts as a difference), read by event blocks."""
    import zarr

    study = "splicing_tcga"
    out: dict[str, Any] = {"other_store": str(other)}
    for name in ("pred", "importance"):
        a = zarr.open_array(str(store / "arrays.zarr"), path=f"{study}/{name}", mode="r")
        b = zarr.open_array(str(other / "arrays.zarr"), path=f"{study}/{name}", mode="r")
        if a.shape != b.shape:
            raise SystemExit(f"{other}: {name} has shape {b.shape}, this run's {a.shape}")
        worst, nan_mismatch, block = 0.0, 0, a.chunks[-1]
        for start in range(0, a.shape[-1], block):
            x, y = a[..., start : start + block], b[..., start : start + block]
            nan_mismatch += int(np.count_nonzero(np.isnan(x) != np.isnan(y)))
            both = ~np.isnan(x) & ~np.isnan(y)
            if both.any():
                worst = max(worst, float(np.max(np.abs(x[both] - y[both]))))
        out[name] = {"max_abs_diff": worst, "nan_mismatches": nan_mismatch, "values": int(np.prod(a.shape))}
    out["equal"] = all(out[n]["max_abs_diff"] == 0.0 and out[n]["nan_mismatches"] == 0 for n in ("pred", "importance"))
    return out


def planted_precision(data: Path, store: Path) -> dict[str, Any]:
    """Per regulated event with r planted regulators: the share of them among its top r
    features by mean |coef| over the outer splits (Zarr, all features)."""
    import zarr

    from regulas.data.tables import read_table

    study = "splicing_tcga"
    imp = zarr.open_array(str(store / "arrays.zarr"), path=f"{study}/importance", mode="r")
    y = zarr.open_array(str(store / "arrays.zarr"), path=f"{study}/Y", mode="r")
    features = list(zarr.open_array(str(store / "arrays.zarr"), path=f"{study}/X", mode="r").attrs["features"])
    events = list(y.attrs["events"])
    truth = read_table(data / "truth_regulators.tsv", numeric=False)
    planted: dict[str, set[str]] = {}
    for event, reg in zip(truth.index, truth["regulator"]):
        planted.setdefault(str(event), set()).add(str(reg))
    hits, found_all, n = 0.0, 0, 0
    block = imp.chunks[-1]
    for start in range(0, len(events), block):
        stop = min(start + block, len(events))
        score = np.nanmean(np.abs(imp[0, :, :, start:stop]), axis=0)  # (features, events)
        for j in range(stop - start):
            regs = planted.get(events[start + j])
            if not regs or not np.isfinite(score[:, j]).any():
                continue
            top = {features[i] for i in np.argsort(-np.nan_to_num(score[:, j], nan=-1.0))[: len(regs)]}
            share = len(top & regs) / len(regs)
            hits += share
            found_all += share == 1.0
            n += 1
    return {"regulated_events": n, "precision_at_r": round(hits / n, 4) if n else None,
            "all_found_share": round(found_all / n, 4) if n else None}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--missing-rate", type=float, default=0.0)
    ap.add_argument("--data", type=Path, default=None, help="data folder (default /tmp/regulas-tcga-<events>-<rate>)")
    ap.add_argument("--store", type=Path, default=None, help="store root (default: <data>-out, emptied first)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--check-events", type=int, default=2)
    ap.add_argument("--cluster", choices=("local", "slurm"), default="local")
    ap.add_argument("--compare-with", type=Path, default=None, help="another run's store of the same data")
    args = ap.parse_args(argv)
    data = args.data or Path(f"/tmp/regulas-tcga-{args.events}-{args.missing_rate:g}")
    store = args.store or Path(f"{data}-out" if args.cluster == "local" else f"{data}-{args.cluster}-out")
    load_before = os.getloadavg()[0]
    made = generate(data, args.events, args.missing_rate)
    rate = dgemm_rate()
    shutil.rmtree(store, ignore_errors=True)
    store.mkdir(parents=True)
    measured = run_study(data, store, args.workers, args.cluster)
    load_after = os.getloadavg()[0]
    result = header("splicing_tcga", False, {
        "samples": SAMPLES, "rbps": RBPS, "events": args.events, "missing_rate": args.missing_rate, "splits": SPLITS,
        "alphas": len(ALPHAS), "inner_cv": INNER, "block": 1000, "workers": args.workers, "config": "configs/splicing_tcga.yaml",
        "cluster": args.cluster,
    })
    result.update({
        "data": made,
        "load_average_1min": [round(load_before, 2), round(load_after, 2)],
        "measured": measured,
        "bound": bound_s(args.events, 1000, rate, args.workers),
        "exactness": check_events(store, args.check_events),
        "planted": planted_precision(data, store),
        "aims": AIMS,
    })
    if args.compare_with is not None:
        result["compared"] = compare_stores(store, args.compare_with)
    suffix = f"_missing{args.missing_rate:g}" if args.missing_rate else ""
    where = "" if args.cluster == "local" else f"_{args.cluster}"
    out = RESULTS / f"splicing_tcga{suffix}_{args.events}{where}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
