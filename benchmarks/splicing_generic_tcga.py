"""The generic per-event path at TCGA shape: what regulAS's sample pipelines cost per event
at 10,000 samples x 1,500 RBPs, and what a 50,000-event study of them would take.

The Ridge grid of ``configs/splicing_tcga.yaml`` runs on shared factorisations
(``benchmarks/splicing_tcga.py``); any other estimator is fitted per event by scikit-learn.
This measures that generic path on the TCGA-shaped data set (``python -m
regulas.sim.synthetic_splicing``, seed 14, complete PSI): regulAS's sample experiment's two
pipelines (StandardScaler + ElasticNet(l1_ratio=0.2) over alpha in [0.1, 0.5, 1.0];
MinMaxScaler + SVR(kernel=linear) over C in [0.1, 0.5, 1.0]), nested selection with 5 inner
folds (16 model fits per event and split), on ``--events`` events and ``--splits`` outer
ShuffleSplit splits (test 20%): ``evaluate_block`` in process, one BLAS thread, CPU time.

Reported per pipeline: CPU seconds per event and split, and the **projection** (linear in
events and splits: every event is fitted alone) to 50,000 events x 5 splits in core-hours
and in wall hours on this machine's cores. Projected, not measured: at these costs the
study itself does not fit a session, which is the point of the figure.

Usage: ``python benchmarks/splicing_generic_tcga.py [--data DIR] [--events 4] [--splits 1]
[--pipelines 0 1]``; writes ``benchmarks/results/splicing_generic_tcga.json`` (a pipeline
measured alone replaces its own entry there and keeps the others'). The SVR pipeline is
slow at this size (libsvm: a linear-kernel fit on 6,400 rows takes 19 s at C = 0.1 and
105 s at C = 1 on this machine), so measure it on few events.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import h5py
import numpy as np
from sklearn.model_selection import ShuffleSplit
from splicing_common import RESULTS, header, write_result
from splicing_generic_overhead import SAMPLE_PIPELINES
from splicing_tcga import generate
from threadpoolctl import threadpool_limits

from regulas.splicing import PipelineSpec, evaluate_block

STUDY_EVENTS = 50_000
STUDY_SPLITS = 5


def load(data: Path, n_events: int) -> tuple[np.ndarray, np.ndarray]:
    """X (samples x RBPs) and the first ``n_events`` PSI columns of a generated HDF5 data set."""
    generate(data, max(n_events, 100), 0.0)  # refuses a folder holding another data set
    with h5py.File(data / "expression.h5") as f:
        X = np.asarray(f["values"][:], dtype=np.float64)
    with h5py.File(data / "psi.h5") as f:
        Y = np.asarray(f["values"][:, :n_events], dtype=np.float64)
    return X, Y


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("/tmp/regulas-tcga-100-0"))
    ap.add_argument("--events", type=int, default=4)
    ap.add_argument("--splits", type=int, default=1)
    ap.add_argument("--pipelines", type=int, nargs="+", default=list(range(len(SAMPLE_PIPELINES))),
                    help="indices into regulAS's sample pipelines (0: ElasticNet, 1: SVR)")
    args = ap.parse_args(argv)
    X, Y = load(args.data, args.events)
    if np.isnan(Y).any():
        raise SystemExit(f"{args.data}: the PSI has missing values; this benchmark wants complete PSI (--missing-rate 0)")
    splits = list(ShuffleSplit(n_splits=args.splits, test_size=0.2, random_state=0).split(X))
    cores = len(os.sched_getaffinity(0))
    result = header("splicing_generic_tcga", False, {
        "samples": X.shape[0], "rbps": X.shape[1],
        "inner_folds": 5, "selection": "nested", "data": str(args.data), "seed": 14,
    })
    result["load_average_at_start"] = os.getloadavg()[0]
    out = RESULTS / "splicing_generic_tcga.json"
    result["pipelines"] = json.loads(out.read_text())["pipelines"] if out.is_file() else {}
    for cfg in [SAMPLE_PIPELINES[i] for i in args.pipelines]:
        spec = PipelineSpec.from_config(cfg)
        cpu = wall = 0.0
        with threadpool_limits(1):
            for train, test in splits:
                t0, c0 = time.perf_counter(), time.process_time()
                evaluate_block(X, Y, train, test, spec, inner_cv=5, random_state=0)
                cpu += time.process_time() - c0
                wall += time.perf_counter() - t0
        per = cpu / (args.events * args.splits)
        core_h = per * STUDY_EVENTS * STUDY_SPLITS / 3600
        result["pipelines"][spec.name] = {
            "events_measured": args.events, "splits_measured": args.splits, "load_average_at_start": result["load_average_at_start"],
            "fits_per_event_and_split": 16,
            "cpu_s_per_event_and_split": round(per, 3),
            "wall_s_measured": round(wall, 1),
            "projected_core_hours_50000x5": round(core_h, 1),
            f"projected_wall_hours_on_{cores}_cores": round(core_h / cores, 1),
        }
        print(spec.name, result["pipelines"][spec.name], flush=True)
    result["projection"] = (f"linear in events and splits (each event is fitted alone): CPU per event and split x "
                            f"{STUDY_EVENTS} events x {STUDY_SPLITS} splits")
    write_result(result, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
