"""Missing PSI at scale: per-event cost of regulas.splicing.missing_ridge (PCG preconditioned by the
shared factorisation) vs the current route (one StandardScaler + SVD per event and training set,
evaluate_block) vs scikit-learn (GridSearchCV(Pipeline([StandardScaler(), Ridge()]))), one thread.

Shape: n training rows × p = 1,500 features, 5% of PSI missing at random per event, Ridge grid
of 10 α, inner KFold(5), test rows = n / 4 (one outer split of 5-fold CV). Each method runs on a
few events and its per-event CPU time (``process_time``, one thread) is scaled linearly (the per-event work is linear in the
number of events); the shared factorisations (1 + 5 per outer split) are reported apart, as
they are computed once per split and reused by every block. The errors are against the current
route on the same events (predictions, inner scores, chosen α), and the stopping tolerance is
swept to show how the achieved error follows it.

    OMP_NUM_THREADS=1 python benchmarks/splicing_missing.py --sizes 2000
    OMP_NUM_THREADS=1 python benchmarks/splicing_missing.py --sizes 8000 --events 16 --ref-events 1
    OMP_NUM_THREADS=1 python benchmarks/splicing_missing.py --quick    # n = 400, p = 150
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from splicing_common import RESULTS, header, write_result
from threadpoolctl import threadpool_limits

from regulas.splicing import PipelineSpec, evaluate_block
from regulas.splicing.missing_ridge import factorize_shared, fit_missing_ridge

ALPHAS = np.logspace(-1, 4, 10)
STUDY_EVENTS, STUDY_SPLITS = 50_000, 5


def make_data(n: int, p: int, m: int, rate: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Correlated features (40 factors + noise, offsets), PSI-like targets from 10 planted features."""
    rng = np.random.default_rng(seed)
    n_all = n + n // 4
    X = rng.normal(size=(n_all, 40)) @ rng.normal(size=(40, p)) * 0.3 + rng.normal(size=(n_all, p)) + rng.normal(0, 3, p)
    beta = np.zeros((p, m))
    beta[rng.integers(0, p, 10)] = rng.normal(size=(10, m))
    Y = 1 / (1 + np.exp(-(X @ beta / 10 + rng.normal(size=(n_all, m)))))
    Y[:n][rng.random((n, m)) < rate] = np.nan
    return X, Y, np.arange(n), np.arange(n, n_all)


def spec() -> PipelineSpec:
    return PipelineSpec.from_config({
        "transformations": {"ZScore": {"_target_": "sklearn.preprocessing.StandardScaler"}},
        "model": {"Ridge": {"_target_": "sklearn.linear_model.Ridge", "_varargs_": {"alpha": ALPHAS.tolist()}}},
    })


def sklearn_event(X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> np.ndarray:
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    rows = train[~np.isnan(y[train])]
    pipe = Pipeline([("scale", StandardScaler()), ("ridge", Ridge())])
    g = GridSearchCV(pipe, {"ridge__alpha": ALPHAS.tolist()}, cv=KFold(5), scoring="neg_mean_squared_error")
    return np.asarray(g.fit(X[rows], y[rows]).predict(X[test]))


def run_size(n: int, p: int, events: int, ref_events: int, sk_events: int, chunk: int) -> dict[str, Any]:
    from sklearn.model_selection import KFold

    X, Y, train, test = make_data(n, p, events, 0.05, seed=n)
    cv = KFold(5)
    out: dict[str, Any] = {"n_train": n, "p": p, "n_test": len(test), "missing_rate": 0.05, "n_alphas": len(ALPHAS), "inner_folds": 5}
    t = time.process_time()
    shared = factorize_shared(X[train], cv)
    out["shared_factorisations_s_per_split"] = time.process_time() - t

    fits = {}
    # the shared preconditioner alone can fail to converge (then an event falls back to its own
    # SVDs): it runs on fewer events
    for pc, m in (("woodbury", events), ("shared", min(events, ref_events * 2))):
        t = time.process_time()
        fit = fit_missing_ridge(X[train], Y[train][:, :m], X[test], ALPHAS, cv, shared=shared, chunk=chunk, preconditioner=pc)
        dt = time.process_time() - t
        fits[pc] = fit
        its = fit.iterations[:, fit.route == "pcg"]
        out[f"pcg_{pc}"] = {
            "events": m,
            "s_per_event": dt / m,
            "routes": {r: int(np.sum(fit.route == r)) for r in np.unique(fit.route)},
            "iterations_max_per_set": its.max(axis=1).tolist() if its.size else [],
            "iterations_mean_per_set": its.mean(axis=1).round(2).tolist() if its.size else [],
        }

    # the current route: every event its own group, one StandardScaler + SVD per training set
    sub = np.arange(ref_events)
    t = time.process_time()
    ref = evaluate_block(X, Y[:, sub], train, test, spec(), inner_cv=5, random_state=0)
    out["current_route_s_per_event"] = (time.process_time() - t) / ref_events
    out["current_route_events"] = ref_events
    ref_pred = ref.pred[0]
    ref_alpha = np.array([ref.params[0][j]["alpha"] for j in range(ref_events)])
    for pc, fit in fits.items():
        out[f"pcg_{pc}"]["max_abs_pred_error_vs_current_route"] = float(np.nanmax(np.abs(fit.pred[:, sub] - ref_pred)))
        out[f"pcg_{pc}"]["alpha_equal_current_route"] = bool(np.all(fit.alpha[sub] == ref_alpha))

    # the exact (direct) inner scores, and how the achieved error follows the stopping tolerance
    direct = fit_missing_ridge(X[train], Y[train][:, sub], X[test], ALPHAS, cv, method="direct")
    sweep = []
    for tol in (1e-4, 1e-6, 1e-8, 1e-10, 1e-12):
        f = fit_missing_ridge(X[train], Y[train][:, sub], X[test], ALPHAS, cv, shared=shared, tol=tol, chunk=chunk)
        sweep.append({
            "tol": tol,
            "routes": {r: int(np.sum(f.route == r)) for r in np.unique(f.route)},
            "iterations_max": int(f.iterations.max()),
            "max_abs_pred_error": float(np.abs(f.pred - direct.pred).max()),
            "max_abs_inner_score_error": float(np.abs(f.scores - direct.scores).max()),
            "alpha_equal": bool(np.all(f.best == direct.best)),
        })
    out["tolerance_sweep_vs_direct"] = sweep

    t = time.process_time()
    sk_err = 0.0
    for j in range(sk_events):
        sk_err = max(sk_err, float(np.abs(sklearn_event(X, Y[:, j], train, test) - fits["woodbury"].pred[:, j]).max()))
    out["sklearn_s_per_event"] = (time.process_time() - t) / sk_events
    out["sklearn_events"] = sk_events
    out["pcg_woodbury"]["max_abs_pred_error_vs_sklearn"] = sk_err

    n_fit = STUDY_EVENTS * STUDY_SPLITS
    best = min(("woodbury", "shared"), key=lambda pc: out[f"pcg_{pc}"]["s_per_event"])
    out["projection_50000_events_x_5_splits_cpu_h"] = {
        "note": "per-event seconds × 250,000 (linear in events) + shared factorisations × 5 splits; one thread",
        f"pcg_{best}": (out[f"pcg_{best}"]["s_per_event"] * n_fit + out["shared_factorisations_s_per_split"] * STUDY_SPLITS) / 3600,
        "current_route": out["current_route_s_per_event"] * n_fit / 3600,
        "sklearn": out["sklearn_s_per_event"] * n_fit / 3600,
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="n = 400, p = 150, a few events (seconds)")
    ap.add_argument("--sizes", type=int, nargs="*", help="training rows (default 2000 8000)")
    ap.add_argument("--events", type=int, default=None, help="events fitted by PCG per size")
    ap.add_argument("--ref-events", type=int, default=2, help="events fitted by the current route (and the direct reference)")
    ap.add_argument("--chunk", type=int, default=16, help="events solved together")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.quick:
        p, sizes, events, ref, sk = 150, args.sizes or [400], args.events or 32, 4, 2
    else:
        p, sizes, events, ref, sk = 1500, args.sizes or [2000, 8000], args.events or 32, args.ref_events, 1
    result = header("splicing_missing", args.quick, {"p": p, "alphas": ALPHAS.tolist(), "events_projected": STUDY_EVENTS,
                                                       "outer_splits_projected": STUDY_SPLITS})
    with threadpool_limits(1):
        result["sizes"] = [run_size(n, p, events, ref, sk, args.chunk) for n in sizes]
    out = args.out or RESULTS / f"splicing_missing{'.quick' if args.quick else ''}.json"
    if out.exists():  # sizes run one invocation at a time (each under ~5 minutes) share one file
        old = json.loads(out.read_text())
        ran = {s["n_train"] for s in result["sizes"]}
        result["sizes"] = sorted([s for s in old.get("sizes", []) if s["n_train"] not in ran] + result["sizes"], key=lambda s: s["n_train"])
    write_result(result, out)


if __name__ == "__main__":
    main()
