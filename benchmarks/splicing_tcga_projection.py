"""Projection of a TCGA-scale splicing study from measured task blocks.

The study: 10,000 samples x 1,500 RBPs x 50,000 events x 5 outer splits x one ridge
pipeline (StandardScaler + Ridge over 10 alphas, nested 5-fold selection). It is too big
to run here, so this script measures what one task costs at the real sample and feature
counts and multiplies:

- ``task_s``: one task = one block of events x one outer split, through
  :func:`regulas.splicing.evaluate.evaluate_block` (single BLAS thread, as in a worker),
  timed at two block sizes so the per-block cost (SVDs of the training X: 1 outer +
  5 inner) and the per-event cost (projections, predictions, metrics) separate:
  ``task_s(B) = fixed + B * per_event``;
- ``sink_rows_per_s``: the single writer's insert rate for the task's result rows
  (one wide ``splice_score`` row and ``top_k`` importance rows per event), taken from
  ``benchmarks/results/overhead.json`` when present (measured by ``overhead.py``).

Projected core-hours = (blocks x splits) x task_s(B); wall hours on one node of
``cores`` cores and on N SLURM nodes follow, with the driver's writes as the floor
(the writer is one process: rows / rows_per_s).

Usage: ``python benchmarks/splicing_tcga_projection.py [--quick]``; writes
``results/splicing_tcga_projection[.quick].json`` and prints it as one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from regulas.splicing import PipelineSpec, evaluate_block

from splicing_common import RESULTS, header, write_result  # type: ignore[import-not-found]

STUDY = {"samples": 10_000, "features": 1_500, "events": 50_000, "splits": 5, "alphas": 10, "inner_cv": 5, "top_k": 10}
NODES = (1, 4, 16, 64)
CORES_PER_NODE = 2


def ridge_spec(alphas: int) -> PipelineSpec:
    return PipelineSpec.from_config({
        "transformations": {"ZScore": {"_target_": "sklearn.preprocessing.StandardScaler"}},
        "model": {"Ridge": {"_target_": "sklearn.linear_model.Ridge",
                            "_varargs_": {"alpha": np.logspace(-1, 4, alphas).tolist()}}},
    })


def time_task(n: int, p: int, block: int, alphas: int, inner: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    X = rng.gamma(2.0, 1.0, size=(n, p))
    Y = 1 / (1 + np.exp(-(X[:, :20] @ rng.standard_normal((20, block)) * 0.1 + rng.standard_normal((n, block)))))
    test = rng.choice(n, size=n // 5, replace=False)
    train = np.setdiff1d(np.arange(n), test)
    spec = ridge_spec(alphas)
    with threadpool_limits(1):
        t0 = time.process_time()
        fits = evaluate_block(X, Y, train, test, spec, selection="nested", inner_cv=inner, random_state=seed)
        elapsed = time.process_time() - t0
    assert fits.path == "batched" and np.isfinite(fits.pred).all()
    return elapsed


def sink_rate() -> tuple[float, str]:
    path = RESULTS / "overhead.json"
    if path.is_file():
        data = json.loads(path.read_text())
        rate = data.get("sink", {}).get("regulas_rows_per_s") or data.get("sink_rows_per_s")
        if rate:
            return float(rate), str(path.name)
    return 110_000.0, "prior measurement (benchmarks/overhead.py, 2M rows)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2,000 samples instead of 10,000 (under 2 minutes)")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    n = 2_000 if args.quick else STUDY["samples"]
    f, alphas, inner = STUDY["features"], STUDY["alphas"], STUDY["inner_cv"]
    small, large = (100, 400) if args.quick else (250, 1000)
    t_small = time_task(n, f, small, alphas, inner)
    t_large = time_task(n, f, large, alphas, inner, seed=1)
    per_event = max((t_large - t_small) / (large - small), 0.0)
    fixed = max(t_small - small * per_event, 0.0)
    if args.quick:  # the SVDs scale with n (n x p with n > p); the per-event work with n too
        fixed *= STUDY["samples"] / n
        per_event *= STUDY["samples"] / n
    rate, rate_source = sink_rate()
    rows = STUDY["events"] * STUDY["splits"] * (1 + STUDY["top_k"])
    writer_h = rows / rate / 3600
    by_block = {}
    for block in (500, 1000, 2000, 5000):
        tasks = -(-STUDY["events"] // block) * STUDY["splits"]
        core_h = tasks * (fixed + block * per_event) / 3600
        by_block[block] = {
            "tasks": tasks,
            "core_hours": core_h,
            "wall_hours": {
                f"{nodes}_nodes_x_{CORES_PER_NODE}_cores": max(core_h / (nodes * CORES_PER_NODE), writer_h)
                for nodes in NODES
            },
        }
    result = header("splicing_tcga_projection", args.quick, {**STUDY, "measured_samples": n})
    result.update({
        "measured": {"block_small": small, "task_s_small": t_small, "block_large": large, "task_s_large": t_large},
        "model": {"fixed_s_per_task": fixed, "per_event_s": per_event,
                  "note": "task_s(B) = fixed + B * per_event at 10,000 samples (scaled linearly from the quick size)"},
        "writer": {"rows": rows, "rows_per_s": rate, "source": rate_source, "hours": writer_h},
        "projection_by_block": by_block,
    })
    write_result(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
