"""Projection of a TCGA-scale splicing study from measured task blocks.

The study: 10,000 samples x 1,500 RBPs x 50,000 events x 5 outer splits x one ridge
pipeline (StandardScaler + Ridge over 10 alphas, nested 5-fold selection). It is too big
to run here, so this script runs real tasks of it at the real sample and feature counts
and multiplies. A synthetic dataset of that shape (events: one large block) is prepared
as a regulas study (Parquet files, ``TableLoader``, Zarr inputs); then, single-threaded:

- ``task_s``: whole tasks as a worker runs them (``execute_task``: read X and the block of
  Y from Zarr, the batched ridge path — 1 outer + 5 inner SVDs — metrics, top-k
  importances, predictions and full importance vectors written to Zarr), at two block
  sizes, so the per-task cost and the per-event cost separate:
  ``task_s(B) = fixed + B * per_event``;
- ``writer_s``: the task's result rows (one wide ``splice_score`` row and ``top_k``
  ``splice_importance`` rows per event) committed by the real single-writer ``Sink`` into
  the study's SQLite file, also at both block sizes;
- ``dispatch_s``: the machinery's per-task cost (submission, outcome, bookkeeping),
  from ``benchmarks/results/overhead.json`` (``overhead.py``; this script stops if it is
  missing).

Projected core-hours = tasks x (task_s(B) + dispatch_s); wall hours on one node of
``cores`` cores and on N SLURM nodes follow, with the single writer as the floor (it is
one process: tasks x writer_s(B) however many nodes). The SVDs of one task do not
shrink with more nodes: the shortest possible study is one task long.

Usage: ``python benchmarks/splicing_tcga_projection.py [--quick]``; writes
``results/splicing_tcga_projection[.quick].json`` and prints it as one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from splicing_common import RESULTS, header, write_result  # type: ignore[import-not-found]

from regulas.execution.worker import execute_task
from regulas.store.database import open_write
from regulas.store.sink import Sink
from regulas.study import load_study

STUDY = {"samples": 10_000, "features": 1_500, "events": 50_000, "splits": 5, "alphas": 10, "inner_cv": 5, "top_k": 10}
NODES = (1, 4, 16, 64)
CORES_PER_NODE = 2
BLOCKS = (500, 1000, 2000, 5000)


def write_data(folder: Path, n: int, p: int, events: int, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    X = rng.gamma(2.0, 1.0, size=(n, p))
    signal = X[:, :20] @ rng.standard_normal((20, events)) * 0.1
    Y = 1 / (1 + np.exp(-(signal + rng.standard_normal((n, events)))))
    samples = pd.Index([f"s{i}" for i in range(n)], name="sample")
    features, targets = folder / "features.parquet", folder / "psi.parquet"
    pd.DataFrame(X, index=samples, columns=[f"RBP{j}" for j in range(p)]).to_parquet(features)
    pd.DataFrame(Y, index=samples, columns=[f"EV{j}" for j in range(events)]).to_parquet(targets)
    return features, targets


def study_config(folder: Path, features: Path, targets: Path, block: int) -> Path:
    config = {
        "seed": 0,
        "study": {"name": f"tcga_b{block}", "workload": "splicing"},
        "store": {"root": str(folder / "out")},
        "experiment": {
            "name": f"tcga_b{block}",
            "dataset": {"_target_": "regulas.data.TableLoader", "features": str(features), "targets": str(targets)},
            "split": {"_target_": "sklearn.model_selection.KFold", "n_splits": STUDY["splits"], "shuffle": True,
                      "random_state": 0},
            "pipelines": [{
                "transformations": {"ZScore": {"_target_": "sklearn.preprocessing.StandardScaler"}},
                "model": {"Ridge": {"_target_": "sklearn.linear_model.Ridge",
                                    "_varargs_": {"alpha": np.logspace(-1, 4, STUDY["alphas"]).tolist()}}},
            }],
            "block_size": block,
            "selection": "nested",
            "inner_cv": STUDY["inner_cv"],
            "top_k": STUDY["top_k"],
        },
    }
    path = folder / f"study_b{block}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def time_block(config: Path) -> dict[str, float]:
    """Prepare the study, run its first task as a worker does, commit its rows with the Sink."""
    from regulas.execution.runner import plan_study

    spec = load_study(config)
    engine = open_write(spec.store.db_path, spec.workload.tables)
    study_id, _, tasks, status = plan_study(spec, engine)
    task = tasks[0]  # block 0, split 0
    t0, c0 = time.perf_counter(), time.process_time()
    outcome = execute_task(spec.workload, task, str(spec.store.arrays_path), spec.study.name, blas_threads=1)
    task_wall, task_cpu = time.perf_counter() - t0, time.process_time() - c0
    if outcome.status != "done":
        raise RuntimeError(f"the measured task failed: {outcome.error_type}: {outcome.error_message}\n{outcome.traceback}")
    sink = Sink(engine, study_id, {k: v[0] for k, v in status.items()}, commit_every_s=1e9, commit_every_rows=10**9)
    t0 = time.perf_counter()
    sink.add(outcome)
    sink.close()
    writer_s = time.perf_counter() - t0
    engine.dispose()
    return {"task_cpu_s": task_cpu, "task_wall_s": task_wall, "writer_s": writer_s, "rows": outcome.n_rows}


def dispatch_ms() -> tuple[float, str]:
    path = RESULTS / "overhead.json"
    try:
        value = json.loads(path.read_text())["per_task"]["regulas_ms_per_task"]
    except (OSError, KeyError, ValueError) as exc:
        raise SystemExit(
            f"{path}: need per_task.regulas_ms_per_task (the machinery's cost per task) from "
            f"`python benchmarks/overhead.py`; could not read it ({type(exc).__name__}: {exc})"
        ) from None
    return float(value), f"{path.name}: per_task.regulas_ms_per_task"


def fit_line(small: int, large: int, t_small: float, t_large: float) -> tuple[float, float]:
    """(fixed, per_event) of t(B) = fixed + B * per_event through the two measurements."""
    per_event = max((t_large - t_small) / (large - small), 0.0)
    return max(t_small - small * per_event, 0.0), per_event


def project(fixed: float, per_event: float, w_fixed: float, w_per_event: float, dispatch_s: float) -> dict[int, Any]:
    out: dict[int, Any] = {}
    for block in BLOCKS:
        tasks = -(-STUDY["events"] // block) * STUDY["splits"]
        task_s = fixed + block * per_event + dispatch_s
        core_h = tasks * task_s / 3600
        writer_h = tasks * (w_fixed + block * w_per_event) / 3600
        out[block] = {
            "tasks": tasks,
            "task_s": task_s,
            "core_hours": core_h,
            "writer_hours": writer_h,
            "wall_hours": {
                f"{nodes}_nodes_x_{CORES_PER_NODE}_cores": max(
                    core_h / (nodes * CORES_PER_NODE), writer_h, task_s / 3600
                )
                for nodes in NODES
            },
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2,000 samples and smaller blocks (under 2 minutes)")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    dispatch, dispatch_source = dispatch_ms()
    load = os.getloadavg()[0]
    n = 2_000 if args.quick else STUDY["samples"]
    small, large = (100, 400) if args.quick else (250, 1000)
    with tempfile.TemporaryDirectory(prefix="tcga_projection_") as tmp:
        folder = Path(tmp)
        features, targets = write_data(folder, n, STUDY["features"], large)
        m_small = time_block(study_config(folder, features, targets, small))
        m_large = time_block(study_config(folder, features, targets, large))
    fixed, per_event = fit_line(small, large, m_small["task_cpu_s"], m_large["task_cpu_s"])
    w_fixed, w_per_event = fit_line(small, large, m_small["writer_s"], m_large["writer_s"])
    scale = STUDY["samples"] / n
    if args.quick:  # the SVDs scale with n (n x p with n > p), and so does the per-event work
        fixed, per_event = fixed * scale, per_event * scale
    result = header("splicing_tcga_projection", args.quick, {**STUDY, "measured_samples": n})
    result.update({
        "measured": {"block_small": small, "small": m_small, "block_large": large, "large": m_large},
        "model": {
            "fixed_s_per_task": fixed, "per_event_s": per_event,
            "writer_fixed_s_per_task": w_fixed, "writer_per_event_s": w_per_event,
            "dispatch_ms_per_task": dispatch, "dispatch_source": dispatch_source,
            "note": "task_s(B) = fixed + B * per_event (CPU, one thread) + dispatch; writer_s(B) likewise"
                    + (f"; compute scaled x{scale:g} from {n} samples" if args.quick else ""),
        },
        "load_average_1min": [load, os.getloadavg()[0]],
        "projection_by_block": project(fixed, per_event, w_fixed, w_per_event, dispatch / 1e3),
    })
    write_result(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
