"""Overhead of the generic per-event path over the scikit-learn fits it runs, in process and end to end.

The two pipelines of regulAS's sample experiment (StandardScaler + ElasticNet(l1_ratio=0.2)
over alpha in [0.1, 0.5, 1.0]; MinMaxScaler + SVR(kernel=linear) over C in [0.1, 0.5, 1.0])
on RBP expression × PSI events (the real GSE114922 data shipped in regulas/datasets,
else a synthetic study of the same shape), 5 outer ShuffleSplit splits, nested selection
with 5 inner folds (16 model fits per event and split), measured side by side:

* regulas: ``evaluate_block`` on the block of events, per split (selection, metrics,
  importances, bookkeeping included);
* same fits: the fits regulas runs, in a plain scikit-learn loop — the scaler fitted once
  per (inner) training set (it sees X only, so every event shares it), then clone / fit /
  predict of the model per event and candidate, best mean validation MSE, refit, predict;
  with the same scikit-learn setting (parameters validated once, before any fit). The
  overhead of regulas is measured against this: the cost of the fits themselves;
* pipeline loop: a whole Pipeline cloned and fitted per event, candidate and fold, with
  scikit-learn's defaults — what a user writes (and what regulas did before sharing the
  scaler); and GridSearchCV + predict per event for the predictions.

The sides alternate split by split (and swap who goes first), ``--repeats`` times, in CPU
time of this process (one BLAS thread; wall time beside it); the ratio of the medians is
the headline. Then the **end-to-end** side: ``regulas run`` of the same study (both
pipelines, the same events and splits, data from TSV files) on a LocalCluster of one
single-threaded worker, i.e. through Dask, the single SQLite writer and Zarr, in wall
time against the wall time of the same fits in process (regulAS 2023.7 spent 80–95% of a
run in database writes). Usage: ``python benchmarks/splicing_generic_overhead.py
[--quick]``; writes ``benchmarks/results/splicing_generic_overhead[.quick].json`` and
prints the result as one JSON line last.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
import yaml
import zarr
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold, ShuffleSplit
from splicing_common import header, write_result
from threadpoolctl import threadpool_limits

from regulas import datasets
from regulas.splicing import PipelineSpec, evaluate_block
from regulas.splicing.selection import seed32

HERE = Path(__file__).resolve().parent
DATA = Path(datasets.DATA)  # the data sets shipped with regulas

SAMPLE_PIPELINES = [
    {
        "transformations": {"StandardScaler": {"_target_": "sklearn.preprocessing.StandardScaler"}},
        "model": {"ElasticNet": {"_target_": "sklearn.linear_model.ElasticNet", "l1_ratio": 0.2, "_varargs_": {"alpha": [0.1, 0.5, 1.0]}}},
    },
    {
        "transformations": {"MinMaxScaler": {"_target_": "sklearn.preprocessing.MinMaxScaler"}},
        "model": {"SupportVectorMachine": {"_target_": "sklearn.svm.SVR", "kernel": "linear", "_varargs_": {"C": [0.1, 0.5, 1.0]}}},
    },
]
SPLITTER = {"_target_": "sklearn.model_selection.ShuffleSplit", "n_splits": 5, "test_size": 0.2, "random_state": 0}


def load_study(n_events: int) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """log2(FPKM + 1) of the RBPs × the first complete, varying events of GSE114922 (or a synthetic stand-in)."""
    gse = DATA / "gse114922"
    if gse.exists():
        rbps = pd.read_csv(DATA / "rbp" / "sebestyen2016_rbps.tsv", sep="\t")["symbol"]
        expr = pd.read_csv(gse / "expression_fpkm.tsv.gz", sep="\t", index_col=0)
        psi = pd.read_csv(gse / "psi.tsv.gz", sep="\t", index_col=0)
        psi = psi.loc[:, psi.notna().all() & (psi.std() > 0)].iloc[:, :n_events]
        X = np.log2(expr.loc[psi.index, expr.columns.intersection(rbps)].astype(np.float64) + 1)
        return X, psi.astype(np.float64), "gse114922"
    rng = np.random.default_rng(0)
    samples = [f"s{i}" for i in range(40)]
    X = np.log2(np.exp(rng.normal(size=(40, 870))) + 1)
    Y = 1 / (1 + np.exp(-(X - X.mean(0)) @ rng.normal(scale=0.05, size=(870, n_events))))
    return (pd.DataFrame(X, index=samples, columns=[f"g{j}" for j in range(870)]),
            pd.DataFrame(Y, index=samples, columns=[f"e{j}" for j in range(n_events)]), "synthetic")


def _scaled(transformers: list[Any], X_fit: np.ndarray, X_other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    for t in transformers:
        t = clone(t)
        X_fit, X_other = t.fit_transform(X_fit), t.transform(X_other)
    return X_fit, X_other


def same_fits(spec: PipelineSpec, X, Y, train, test) -> np.ndarray:
    """The fits evaluate_block(nested, random_state=0) runs, in a plain scikit-learn loop.

    Same estimators with the same parameters, the seed included: ElasticNet takes a
    random_state, and an int there costs a fresh RandomState in every fit.
    """
    seed = seed32(0)
    transformers = [est for _, est in spec.build(random_state=seed).steps[:-1]]
    models = [spec.build(c, random_state=seed).steps[-1][1] for c in spec.candidates()]
    X_tr, X_te = _scaled(transformers, X[train], X[test])
    folds = [(tr, va, *_scaled(transformers, X[train][tr], X[train][va])) for tr, va in KFold(5).split(X_tr)]
    pred = np.empty((len(test), Y.shape[1]))
    with sklearn.config_context(skip_parameter_validation=True):
        for e in range(Y.shape[1]):
            y = Y[train, e]
            mse = np.zeros(len(models))
            for c, model in enumerate(models):
                for tr, va, X_fit, X_val in folds:
                    resid = y[va] - clone(model).fit(X_fit, y[tr]).predict(X_val)
                    mse[c] += np.mean(resid * resid)
            pred[:, e] = clone(models[int(np.argmin(mse))]).fit(X_tr, y).predict(X_te)
    return pred


def pipeline_loop(spec: PipelineSpec, X, Y, train, test) -> np.ndarray:
    """A whole Pipeline per event, candidate and fold, scikit-learn's defaults."""
    protos = [spec.build(c) for c in spec.candidates()]
    X_tr, X_te = X[train], X[test]
    folds = list(KFold(5).split(X_tr))
    pred = np.empty((len(test), Y.shape[1]))
    for e in range(Y.shape[1]):
        y = Y[train, e]
        mse = np.zeros(len(protos))
        for c, proto in enumerate(protos):
            for tr, va in folds:
                resid = y[va] - clone(proto).fit(X_tr[tr], y[tr]).predict(X_tr[va])
                mse[c] += np.mean(resid * resid)
        pred[:, e] = clone(protos[int(np.argmin(mse))]).fit(X_tr, y).predict(X_te)
    return pred


def grid_search(spec: PipelineSpec, X, Y, train, test) -> np.ndarray:
    grid = {f"{spec.model_name}__{k}": v for k, v in spec.grid.items()}
    pred = np.empty((len(test), Y.shape[1]))
    for e in range(Y.shape[1]):
        gs = GridSearchCV(spec.build(), grid, cv=KFold(5), scoring="neg_mean_squared_error").fit(X[train], Y[train, e])
        pred[:, e] = gs.predict(X[test])
    return pred


def bench(spec: PipelineSpec, X, Y, splits, repeats: int) -> dict[str, Any]:
    sides: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
        "regulas": lambda tr, te: evaluate_block(X, Y, tr, te, spec, inner_cv=5, random_state=0).pred[0],
        "same_fits": lambda tr, te: same_fits(spec, X, Y, tr, te),
        "pipeline_loop": lambda tr, te: pipeline_loop(spec, X, Y, tr, te),
    }
    # Alternate the sides split by split (rotating who goes first) so drifting load on the
    # shared machine hits all alike; sum per repeat.
    cpu = {k: np.zeros(repeats) for k in sides}
    wall = {k: np.zeros(repeats) for k in sides}
    outputs: dict[str, list[np.ndarray]] = {k: [] for k in sides}
    names = list(sides)
    for r in range(repeats):
        for i, (tr, te) in enumerate(splits):
            shift = (r + i) % len(names)
            for name in names[shift:] + names[:shift]:
                t0, c0 = time.perf_counter(), time.process_time()
                pred = sides[name](tr, te)
                cpu[name][r] += time.process_time() - c0
                wall[name][r] += time.perf_counter() - t0
                if r == 0:
                    outputs[name].append(pred)
    c0 = time.process_time()
    gs_pred = [grid_search(spec, X, Y, tr, te) for tr, te in splits]
    gs_s = time.process_time() - c0

    def max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
        return max(float(np.abs(u - v).max()) for u, v in zip(a, b))

    med = {k: float(np.median(v)) for k, v in cpu.items()}
    med_wall = {k: float(np.median(v)) for k, v in wall.items()}
    n_models = len(spec.candidates())
    per_event_split = n_models * 5 + 1
    return {
        "model_fits": len(splits) * Y.shape[1] * per_event_split,
        "regulas_cpu_s": med["regulas"],
        "same_fits_cpu_s": med["same_fits"],
        "pipeline_loop_cpu_s": med["pipeline_loop"],
        "gridsearchcv_cpu_s": gs_s,
        "wall_s": med_wall,
        "all_repeats_cpu_s": {k: v.tolist() for k, v in cpu.items()},
        # CPU time (one BLAS thread) is the headline: wall time on the shared machine
        # varies with other people's load; the wall figure is kept beside it.
        "overhead_pct": 100 * (med["regulas"] / med["same_fits"] - 1),
        "overhead_pct_min": 100 * (cpu["regulas"].min() / cpu["same_fits"].min() - 1),
        "overhead_pct_wall": 100 * (med_wall["regulas"] / med_wall["same_fits"] - 1),
        "pipeline_loop_over_regulas": med["pipeline_loop"] / med["regulas"],
        "gridsearchcv_over_regulas": gs_s / med["regulas"],
        "max_abs_pred_diff_vs_gridsearchcv": max_diff(outputs["regulas"], gs_pred),
        "max_abs_pred_diff_vs_same_fits": max_diff(outputs["regulas"], outputs["same_fits"]),
        "max_abs_pred_diff_vs_pipeline_loop": max_diff(outputs["regulas"], outputs["pipeline_loop"]),
        "_pred": outputs["regulas"],
    }


def end_to_end(X: pd.DataFrame, Y: pd.DataFrame, tmp: Path, block_size: int) -> dict[str, Any]:
    """``regulas run`` of the study on one single-threaded worker; wall time and what it stored."""
    X.rename_axis("sample").to_csv(tmp / "features.tsv", sep="\t")  # repr floats: read back exactly
    Y.rename_axis("sample").to_csv(tmp / "psi.tsv", sep="\t")
    config = {
        "seed": 0,
        "study": {"name": "generic_overhead", "workload": "splicing"},
        "store": {"root": str(tmp / "out")},
        "experiment": {
            "name": "generic_overhead",
            "dataset": {"_target_": "regulas.data.TableLoader", "features": str(tmp / "features.tsv"),
                        "targets": str(tmp / "psi.tsv")},
            "split": SPLITTER,
            "pipelines": SAMPLE_PIPELINES,
            "block_size": block_size,
            "selection": "nested",
            "inner_cv": 5,
        },
    }
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [sys.executable, "-m", "regulas", "run", str(path), "cluster.n_workers=1", "cluster.dashboard_address=null",
           "execution.progress=log"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"regulas run failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    db = sqlite3.connect(f"file:{tmp / 'out' / 'regulas.db'}?mode=ro", uri=True)
    try:
        (tasks, task_s), = db.execute("SELECT count(*), sum(duration_s) FROM task WHERE status = 'done'").fetchall()
        (fit_s,), = db.execute("SELECT sum(fit_time_s) FROM splice_score").fetchall()
        (started, finished), = db.execute("SELECT started_at, finished_at FROM study").fetchall()
    finally:
        db.close()
    pred = zarr.open_array(str(tmp / "out" / "arrays.zarr"), path="generic_overhead/pred", mode="r")[...]
    test_index = zarr.open_array(str(tmp / "out" / "arrays.zarr"), path="generic_overhead/test_index", mode="r")[...]
    return {"wall_s": wall, "study_s": finished - started, "tasks": tasks, "task_duration_sum_s": task_s,
            "fit_time_sum_s": fit_s, "pred": pred, "test_index": test_index}


def run_end_to_end(X, Y, specs, splits, inproc: dict[str, dict[str, Any]], runs: int, block_size: int) -> dict[str, Any]:
    """End-to-end runs, each next to the same fits in process (wall time; load drifts, so pairs)."""
    Xa, Ya = X.to_numpy(), Y.to_numpy()
    walls, study_s, task_s, fit_s, same_s = [], [], [], [], []
    diff = 0.0
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="generic_e2e_") as tmp:
            r = end_to_end(X, Y, Path(tmp), block_size)
        t0 = time.perf_counter()
        with threadpool_limits(1):
            for spec in specs:
                for tr, te in splits:
                    same_fits(spec, Xa, Ya, tr, te)
        same_s.append(time.perf_counter() - t0)
        walls.append(r["wall_s"])
        study_s.append(r["study_s"])
        task_s.append(r["task_duration_sum_s"])
        fit_s.append(r["fit_time_sum_s"])
        for m, res in enumerate(inproc.values()):  # the stored predictions are the in-process ones
            for s, (_, te) in enumerate(splits):
                assert np.array_equal(r["test_index"][s][: len(te)], te)
                diff = max(diff, float(np.abs(r["pred"][m, s, : len(te)] - res["_pred"][s]).max()))
    ratio = lambda a: float(np.median(np.asarray(a) / np.asarray(same_s)))  # noqa: E731
    return {
        "runs": runs,
        "workers": 1,
        "tasks": r["tasks"],
        "run_wall_s": walls,
        "study_s": study_s,
        "task_duration_sum_s": task_s,
        "fit_time_sum_s": fit_s,
        "same_fits_wall_s": same_s,
        # study_s: from the study row's start to its end (planning, cluster start, tasks,
        # commits); run_wall_s adds Python start-up, config, data loading and the reports.
        "overhead_pct_study_vs_same_fits": 100 * (ratio(study_s) - 1),
        "overhead_pct_tasks_vs_same_fits": 100 * (ratio(task_s) - 1),
        "overhead_pct_run_vs_same_fits": 100 * (ratio(walls) - 1),
        "in_task_outside_fits_pct": 100 * float(np.median(1 - np.asarray(fit_s) / np.asarray(task_s))),
        "max_abs_pred_diff_stored_vs_in_process": diff,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes, under 2 minutes on 2 cores")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    n_events, repeats, e2e_runs = (4, 2, 1) if args.quick else (40, 3, 2)
    repeats = args.repeats or repeats
    Xdf, Ydf, source = load_study(n_events)
    X, Y = Xdf.to_numpy(), Ydf.to_numpy()
    splits = [(tr, te) for tr, te in ShuffleSplit(n_splits=5, test_size=0.2, random_state=0).split(X)]
    load = os.getloadavg()
    result = header("splicing_generic_overhead", args.quick, {
        "data": source, "samples": X.shape[0], "features": X.shape[1], "events": Y.shape[1], "splits": 5,
        "inner_cv": 5, "repeats": repeats})
    specs = [PipelineSpec.from_config(item) for item in SAMPLE_PIPELINES]
    with threadpool_limits(1):
        inproc = {spec.name: bench(spec, X, Y, splits, repeats) for spec in specs}
    result["e2e"] = run_end_to_end(Xdf, Ydf, specs, splits, inproc, e2e_runs, block_size=n_events)
    for name, res in inproc.items():
        res.pop("_pred")
        result[name] = res
    result["load_average_1min"] = [load[0], os.getloadavg()[0]]
    result["goals"] = {
        **{f"{s.name}_overhead_le_10pct": result[s.name]["overhead_pct"] <= 10 for s in specs},
        **{f"{s.name}_same_predictions_as_gridsearchcv": result[s.name]["max_abs_pred_diff_vs_gridsearchcv"] <= 1e-8
           for s in specs},
        "e2e_stored_predictions_equal_in_process": result["e2e"]["max_abs_pred_diff_stored_vs_in_process"] == 0.0,
    }
    write_result(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
