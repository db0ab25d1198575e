"""Batched ridge path vs per-event scikit-learn fits on the same study, side by side.

Study: n samples × p features (RBP-like expression) × E events (PSI in [0, 1]), 5 outer
ShuffleSplit splits, StandardScaler + Ridge over 10 alphas, in both selection modes:

* nested: regulas ``evaluate_block`` on all events of a split at once vs. per event
  ``GridSearchCV(pipeline, alphas, cv=KFold(5))`` then ``predict`` (51 fits per event);
* outer: every alpha fitted on the training part, vs. 10 pipeline fits per event.

The batched side runs on every event and split. The per-event side runs on a sample of
events (on one split; every split costs the same) and is scaled to the whole study. On
those events both sides must give the same predictions (max |Δ| ≤ 1e-8) and, nested,
the same chosen alpha. Both sides use one BLAS thread, as a regulas worker does, and
the ratio is taken in CPU time of this process (wall time, which on a shared machine
depends on other people's load, is recorded beside it).

Usage: ``python benchmarks/splicing_ridge_batched.py [--quick]``; writes
``benchmarks/results/splicing_ridge_batched[.quick].json`` and prints the result as one
JSON line last.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Literal, cast

import numpy as np
from sklearn.model_selection import GridSearchCV, KFold, ShuffleSplit
from splicing_common import header, write_result
from threadpoolctl import threadpool_limits

from regulas.splicing import PipelineSpec, evaluate_block

ALPHAS = [float(a) for a in np.logspace(-1, 4, 10)]
SIZES = {"full": (2000, 1500, 5000, 4), "quick": (300, 400, 1000, 4)}  # n, p, events, sampled events


def make_study(n: int, p: int, n_events: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Log-normal correlated expression; PSI = logistic(sparse linear signal + noise)."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 20))
    X = np.exp(0.4 * latent @ rng.normal(size=(20, p)) / np.sqrt(20) + 0.6 * rng.normal(size=(n, p)))
    Z = (X - X.mean(0)) / X.std(0)
    W = np.zeros((p, n_events))
    for j in range(n_events):
        W[rng.choice(p, 10, replace=False), j] = rng.normal(scale=0.3, size=10)
    Y = 1 / (1 + np.exp(-(Z @ W + rng.normal(size=(n, n_events)))))
    return X, Y


def spec() -> PipelineSpec:
    return PipelineSpec.from_config(
        {
            "transformations": {"StandardScaler": {"_target_": "sklearn.preprocessing.StandardScaler"}},
            "model": {"Ridge": {"_target_": "sklearn.linear_model.Ridge", "_varargs_": {"alpha": ALPHAS}}},
        }
    )


def per_event(s: PipelineSpec, selection: str, X, y, train, test) -> tuple[np.ndarray, list[float]]:
    """Plain scikit-learn for one event: predictions (n_out, n_test) and chosen alpha(s)."""
    if selection == "nested":
        gs = GridSearchCV(s.build(), {"Ridge__alpha": ALPHAS}, cv=KFold(5), scoring="neg_mean_squared_error")
        gs.fit(X[train], y[train])
        return gs.predict(X[test])[None], [gs.best_params_["Ridge__alpha"]]
    preds = [s.build({"alpha": a}).fit(X[train], y[train]).predict(X[test]) for a in ALPHAS]
    return np.array(preds), ALPHAS


def bench(selection: Literal["nested", "outer"], X, Y, splits, n_sample: int) -> dict[str, float | int | bool]:
    s = spec()
    n_events = Y.shape[1]
    t0, c0 = time.perf_counter(), time.process_time()
    first = None
    for tr, te in splits:  # keep the first split's results only (outer mode is large)
        fits = evaluate_block(X, Y, tr, te, s, selection=selection, inner_cv=5, random_state=0)
        assert fits.path == "batched"
        first = first or fits
        del fits
    batched_s, batched_cpu = time.perf_counter() - t0, time.process_time() - c0
    assert first is not None

    sample = np.random.default_rng(1).choice(n_events, n_sample, replace=False)
    train, test = splits[0]
    max_diff, same_alpha = 0.0, True
    t0, c0 = time.perf_counter(), time.process_time()
    for e in sample:
        pred, alphas = per_event(s, selection, X, Y[:, e], train, test)
        max_diff = max(max_diff, float(np.abs(pred - first.pred[:, :, e]).max()))
        same_alpha &= alphas == [first.params[k][e]["alpha"] for k in range(len(alphas))]
    sampled_s, sampled_cpu = time.perf_counter() - t0, time.process_time() - c0
    scale = n_events * len(splits) / n_sample
    return {
        "batched_s": batched_s,
        "batched_cpu_s": batched_cpu,
        "per_event_sampled_events": n_sample,
        "per_event_sampled_s": sampled_s,
        "per_event_sampled_cpu_s": sampled_cpu,
        "per_event_projected_s": sampled_s * scale,
        "per_event_projected_cpu_s": sampled_cpu * scale,
        # CPU time (one BLAS thread each side) is the headline: wall time on the shared
        # machine varies with other people's load; the wall ratio is kept beside it.
        "ratio": sampled_cpu * scale / batched_cpu,
        "ratio_wall": sampled_s * scale / batched_s,
        "max_abs_pred_diff": max_diff,
        "same_chosen_alpha": bool(same_alpha),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes, under 2 minutes on 2 cores")
    p.add_argument("--modes", default="nested,outer", help="selection modes to measure (comma-separated)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    size = "quick" if args.quick else "full"
    n, n_features, n_events, n_sample = SIZES[size]
    X, Y = make_study(n, n_features, n_events)
    splits = list(ShuffleSplit(n_splits=5, test_size=0.2, random_state=0).split(X))
    result = header("splicing_ridge_batched", args.quick, {"samples": n, "features": n_features, "events": n_events, "splits": 5, "alphas": len(ALPHAS), "inner_cv": 5})
    with threadpool_limits(1):
        for mode in args.modes.split(","):
            result[mode] = bench(cast(Literal["nested", "outer"], mode), X, Y, splits, n_sample)
    result["goals"] = {
        f"{mode}_{goal}": ok
        for mode in args.modes.split(",")
        for goal, ok in (
            ("ratio_ge_1000", result[mode]["ratio"] >= 1000),
            ("max_diff_le_1e-8", result[mode]["max_abs_pred_diff"] <= 1e-8),
            ("same_alpha", result[mode]["same_chosen_alpha"]),
        )
    }
    write_result(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
