"""Overhead of the generic per-event path over the scikit-learn fits it runs.

The two pipelines of regulAS's sample experiment (StandardScaler + ElasticNet(l1_ratio=0.2)
over alpha in [0.1, 0.5, 1.0]; MinMaxScaler + SVR(kernel=linear) over C in [0.1, 0.5, 1.0])
on RBP expression × PSI events (the real GSE114922 data when /work/shared/data is present,
else a synthetic study of the same shape), 5 outer ShuffleSplit splits, nested selection
with 5 inner folds (16 fits per event and split), measured side by side:

* regulas: ``evaluate_block`` on the block of events, per split (selection, metrics,
  importances, bookkeeping included);
* bare scikit-learn: the same fits in a plain loop (clone, fit, predict, pick the best
  mean validation MSE, refit, predict) — the cost of the fits themselves;
* for reference, GridSearchCV + predict per event, what a user would write.

Both sides are timed alternately split by split, ``--repeats`` times, in CPU time of this process (one
BLAS thread; wall time is recorded too), and the ratio of the medians is reported. Usage: ``python benchmarks/splicing_generic_overhead.py [--quick]``; writes
``benchmarks/results/splicing_generic_overhead[.quick].json`` and prints the result as one
JSON line last.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold, ShuffleSplit
from threadpoolctl import threadpool_limits

from regulas.splicing import PipelineSpec, evaluate_block
from splicing_common import header, write_result

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"

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


def load_study(n_events: int) -> tuple[np.ndarray, np.ndarray, str]:
    """log2(FPKM + 1) of the RBPs × the first events of GSE114922 (or a synthetic stand-in)."""
    gse = DATA / "gse114922"
    if gse.exists():
        rbps = pd.read_csv(DATA / "rbp" / "sebestyen2016_rbps.tsv", sep="\t")["symbol"]
        expr = pd.read_csv(gse / "expression_fpkm.tsv.gz", sep="\t", index_col=0)
        psi = pd.read_csv(gse / "psi.tsv.gz", sep="\t", index_col=0)
        psi = psi.loc[:, psi.notna().all() & (psi.std() > 0)].iloc[:, :n_events]
        X = np.log2(expr.loc[psi.index, expr.columns.intersection(rbps)].to_numpy(dtype=np.float64) + 1)
        return X, psi.to_numpy(dtype=np.float64), "gse114922"
    rng = np.random.default_rng(0)
    X = np.log2(np.exp(rng.normal(size=(40, 870))) + 1)
    Y = 1 / (1 + np.exp(-(X - X.mean(0)) @ rng.normal(scale=0.05, size=(870, n_events))))
    return X, Y, "synthetic"


def bare_nested(spec: PipelineSpec, X, Y, train, test) -> np.ndarray:
    """The same fits as evaluate_block(nested), in a plain scikit-learn loop."""
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
    def regulas_run(tr, te) -> np.ndarray:
        return evaluate_block(X, Y, tr, te, spec, inner_cv=5, random_state=0).pred[0]

    def bare_run(tr, te) -> np.ndarray:
        return bare_nested(spec, X, Y, tr, te)

    # Alternate the two sides split by split (and swap who goes first) so drifting load on
    # the shared machine hits both alike; sum per repeat.
    times = {k: np.zeros(repeats) for k in ("regulas", "bare", "regulas_wall", "bare_wall")}
    outputs: dict[str, list[np.ndarray]] = {"regulas": [], "bare": []}
    for r in range(repeats):
        for i, (tr, te) in enumerate(splits):
            order = [("regulas", regulas_run), ("bare", bare_run)]
            for name, run in order if (r + i) % 2 == 0 else order[::-1]:
                t0, c0 = time.perf_counter(), time.process_time()
                pred = run(tr, te)
                times[name][r] += time.process_time() - c0
                times[f"{name}_wall"][r] += time.perf_counter() - t0
                if r == 0:
                    outputs[name].append(pred)
    c0 = time.process_time()
    gs_pred = [grid_search(spec, X, Y, tr, te) for tr, te in splits]
    gs_s = time.process_time() - c0
    diff = max(float(np.abs(a - b).max()) for a, b in zip(outputs["regulas"], gs_pred))
    diff_bare = max(float(np.abs(a - b).max()) for a, b in zip(outputs["regulas"], outputs["bare"]))
    med = {k: float(np.median(v)) for k, v in times.items()}
    reg, bare = med["regulas"], med["bare"]
    n_fits = len(splits) * Y.shape[1] * (len(spec.candidates()) * 5 + 1)
    return {
        "fits": n_fits,
        "regulas_cpu_s": reg,
        "bare_sklearn_cpu_s": bare,
        "gridsearchcv_cpu_s": gs_s,
        "all_repeats": {k: v.tolist() for k, v in times.items()},
        # CPU time (one BLAS thread) is the headline: wall time on the shared machine
        # varies with other people's load; the wall figure is kept beside it.
        "overhead_pct": 100 * (reg / bare - 1),
        "overhead_pct_min": 100 * (times["regulas"].min() / times["bare"].min() - 1),
        "overhead_pct_wall": 100 * (med["regulas_wall"] / med["bare_wall"] - 1),
        "gridsearchcv_over_regulas": gs_s / reg,
        "max_abs_pred_diff_vs_gridsearchcv": diff,
        "max_abs_pred_diff_vs_bare": diff_bare,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes, under 2 minutes on 2 cores")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    n_events, repeats = (10, 2) if args.quick else (40, 5)
    repeats = args.repeats or repeats
    X, Y, source = load_study(n_events)
    splits = list(ShuffleSplit(n_splits=5, test_size=0.2, random_state=0).split(X))
    result = header("splicing_generic_overhead", args.quick, {"data": source, "samples": X.shape[0], "features": X.shape[1], "events": Y.shape[1], "splits": 5, "inner_cv": 5, "repeats": repeats})
    with threadpool_limits(1):
        for item in SAMPLE_PIPELINES:
            spec = PipelineSpec.from_config(item)
            result[spec.name] = bench(spec, X, Y, splits, repeats)
    names = [PipelineSpec.from_config(i).name for i in SAMPLE_PIPELINES]
    result["goals"] = {
        **{f"{n}_overhead_le_10pct": result[n]["overhead_pct"] <= 10 for n in names},
        **{f"{n}_same_predictions_as_gridsearchcv": result[n]["max_abs_pred_diff_vs_gridsearchcv"] <= 1e-8 for n in names},
    }
    write_result(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
