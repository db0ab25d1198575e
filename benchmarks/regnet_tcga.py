"""Ridge vs the structured Kronecker-sum LMM at TCGA scale (issue 12): the figures of a run of
``configs/regnet_tcga.yaml``, read from the study's database and store.

The grid is run with ``regulas run`` (one store root per P, so that each half can run and be
reported alone), then this script reads each store's ``regulas.db`` (tasks and ``sim_score``)
and its Zarr size, and, when given, the memory log of the run (``--mem-log``: lines ``epoch pid
ppid rss_kB``, e.g. a ``ps`` sampler) and ``/usr/bin/time -v`` outputs::

    regulas run configs/regnet_tcga.yaml store.root=/tmp/regnet-tcga/p10000 'regnet.conditions=[10000]' \\
        cluster.n_workers=2 cluster.dashboard_address=null
    regulas run configs/regnet_tcga.yaml store.root=/tmp/regnet-tcga/p1000 'regnet.conditions=[1000]' \\
        'regnet.replicates_by_conditions={}' cluster.n_workers=2 cluster.dashboard_address=null
    python benchmarks/regnet_tcga.py /tmp/regnet-tcga/p1000 /tmp/regnet-tcga/p10000 --mem-log /tmp/regnet-tcga/mem.log \\
        --mem-pid <pid of the P = 1,000 run> --mem-pid <pid of the P = 10,000 run> \\
        --time /tmp/regnet-tcga/time_p1000.txt --time /tmp/regnet-tcga/time_p10000.txt

β recovery is compared as in ``benchmarks/regnet_accuracy.py``: d = Pearson(β̂_LMM, β) −
Pearson(β̂_ridge, β) over all T x P entries of a data set, paired on the same data, mean and
standard error over the data sets of a (P, noise Σ) group (pooled over signal fractions and
replicates); and, within data sets, the same difference per condition (column of β), with its
mean, standard error over conditions (conditions of one data set share M and the fitted
covariances, so this SE is optimistic) and the share of conditions where the LMM is better.

Writes benchmarks/results/regnet_tcga.{json,md}; prints the JSON's summary line last.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from regulas.workloads.regnet.reports import paired_comparison  # noqa: E402

RIDGE = "ridge"
LMMS = ("lmm", "lmm_factor")
PER_CONDITION = re.compile(r"pearson_c(\d+)$")


def read_store(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(sim_score rows with a ``noise`` column, task rows) of the one study in ``root``."""
    con = sqlite3.connect(f"file:{root / 'regulas.db'}?mode=ro", uri=True)
    try:
        df = pd.read_sql("SELECT cell, replicate, genes, conditions, motifs, V, Sigma, noise_fraction, fraction, method, "
                         "metric, value FROM sim_score", con)
        tasks = pd.read_sql("SELECT kind, status, started_at, finished_at, duration_s, worker, block FROM task", con)
    finally:
        con.close()
    df["noise"] = df.Sigma
    return df, tasks


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def task_times(tasks: pd.DataFrame) -> dict[str, Any]:
    done = tasks[tasks.status == "done"]
    out: dict[str, Any] = {
        "tasks": {k: int(v) for k, v in tasks.groupby("status").size().items()},
        "wall_s": round(float(done.finished_at.max() - done.started_at.min()), 1) if len(done) else None,
    }
    for kind, grp in done.groupby("kind"):
        d = grp.duration_s
        out[str(kind)] = {"n": int(d.size), "mean_s": round(float(d.mean()), 1), "min_s": round(float(d.min()), 1),
                          "max_s": round(float(d.max()), 1), "sum_s": round(float(d.sum()), 1)}
    return out


def fit_figures(df: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for (method, metric), grp in df[df.metric.isin(["fit_time_s", "read_setup_s", "n_iter", "alpha", "converged",
                                                    "kl_Sigma", "achieved_fraction"])].groupby(["method", "metric"]):
        v = grp.value.astype(float)
        out.setdefault(str(method), {})[str(metric)] = {
            "median": round(float(v.median()), 4), "min": round(float(v.min()), 4), "max": round(float(v.max()), 4), "n": int(v.size)}
    return out


def per_condition(df: pd.DataFrame, lmm: str) -> pd.DataFrame:
    """Per (P, noise): the per-condition Pearson difference lmm - ridge pooled over the data sets."""
    part = df[df.method.isin([lmm, RIDGE]) & df.metric.str.match(PER_CONDITION)]
    w = part.pivot_table(index=["conditions", "noise", "cell", "replicate", "metric"], columns="method", values="value",
                         aggfunc="first").dropna().reset_index()
    w["d"] = w[lmm] - w[RIDGE]
    g = w.groupby(["conditions", "noise"])
    return pd.DataFrame({"conditions_n": g.size(), "d": g.d.mean(), "se": g.d.std(ddof=1) / np.sqrt(g.size()),
                         "wins": g.d.apply(lambda d: float(np.mean(d > 0)))}).reset_index()


def memory(mem_log: Path | None, root_pid: int | None) -> dict[str, Any] | None:
    """Peak resident memory of the process ``root_pid`` and its descendants, from a ``epoch pid ppid rss_kB``
    log (other processes of the machine are in it too): in one process and summed at one instant."""
    if mem_log is None or root_pid is None or not mem_log.exists():
        return None
    log = pd.read_csv(mem_log, sep=" ", names=["t", "pid", "ppid", "rss_kb"])
    parent = dict(zip(log.pid, log.ppid))
    mine = {root_pid}
    changed = True
    while changed:
        new = {p for p, pp in parent.items() if pp in mine and p not in mine}
        mine |= new
        changed = bool(new)
    part = log[log.pid.isin(mine)]
    if part.empty:
        return None
    per_sample = part.groupby("t").rss_kb.sum()
    return {"peak_process_gb": round(float(part.rss_kb.max()) / 2**20, 2),
            "peak_sum_gb": round(float(per_sample.max()) / 2**20, 2), "processes": len(set(part.pid)),
            "note": "resident memory of the run's driver and worker processes, sampled every 2 s"}


def time_v(paths: list[Path]) -> dict[str, Any]:
    out = {}
    for p in paths:
        text = p.read_text()
        wall = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", text)
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
        out[p.stem] = {"wall": wall.group(1) if wall else None,
                       "max_rss_gb": round(int(rss.group(1)) / 2**20, 2) if rss else None}
    return out


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in json.loads(frame.to_json(orient="records"))]


def markdown(d: dict[str, Any]) -> str:
    lines = [
        "# Ridge vs the structured LMM at TCGA scale (configs/regnet_tcga.yaml)",
        "",
        "G = 20,000 genes, T = 600 motifs (copula M calibrated on the 400 real regions), V = lowrank_4, "
        "Σ ∈ {diagonal, factor_4}, signal fraction f ∈ {0.1, 0.3}; ridge (alpha by leave-one-out, 33 values), "
        "LMM `lowrank_k` (rank 4) with `noise: diagonal` (lmm) or `noise: factor` (noise_rank 4, lmm_factor). "
        "d = Pearson(β̂, β) of the LMM minus ridge's on the same data set.",
        "",
        "## β recovery per noise structure (pooled over f and replicates)",
        "",
        "| P | noise Σ | LMM | data sets | Pearson ridge | Pearson LMM | d ± SE (data sets) | per condition: d ± SE, LMM better |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in d["beta_recovery"]:
        lines.append(f"| {r['conditions']:,} | {r['noise']} | {r['lmm_method']} | {r['n']} | {r['ridge']:.3f} | {r['lmm']:.3f} | "
                     f"{r['diff']:+.4f} ± {_se(r['se'])} | {r['d_condition']:+.4f} ± {_se(r['se_condition'])}, {r['wins_condition']:.1%} |")
    lines += ["", "## Per signal fraction", "", "| P | noise Σ | f | LMM | data sets | Pearson ridge | Pearson LMM | d ± SE |",
              "|---|---|---|---|---|---|---|---|"]
    for c in d["cells"]:
        lines.append(f"| {c['conditions']:,} | {c['noise']} | {c['fraction']:g} | {c['lmm_method']} | {c['n']} | {c['ridge']:.3f} | "
                     f"{c['lmm']:.3f} | {c['diff']:+.4f} ± {_se(c['se'])} |")
    lines += ["", "## Time and memory", "", "| P | tasks done / all | wall (first start to last finish of the done tasks) | simulate_block tasks | fit_streamed tasks | "
              "ridge fit | lmm fit | lmm_factor fit | Zarr |",
              "|---|---|---|---|---|---|---|---|---|"]
    for run in d["runs"]:
        t, f = run["tasks"], run["fits"]
        sim, fit = t.get("regnet.simulate_block", {}), t.get("regnet.fit_streamed", {})

        def med(m: str, f: dict[str, Any] = f) -> str:
            x = f.get(m, {}).get("fit_time_s")
            return f"{x['median']:.1f} s ({x['min']:.1f}–{x['max']:.1f})" if x else "-"

        n_all = sum(t["tasks"].values())
        lines.append(f"| {run['conditions']:,} | {t['tasks'].get('done', 0)} / {n_all} | {t['wall_s']:,.0f} s | {sim.get('n', 0)} x {sim.get('mean_s', 0):.1f} s "
                     f"({sim.get('min_s', 0):.1f}–{sim.get('max_s', 0):.1f}) | {fit.get('n', 0)} x {fit.get('mean_s', 0):.0f} s "
                     f"({fit.get('min_s', 0):.0f}–{fit.get('max_s', 0):.0f}) | {med('ridge')} | {med('lmm')} | {med('lmm_factor')} | "
                     f"{run['zarr_bytes'] / 1e9:.2f} GB |")
    for run in d["runs"]:
        if run.get("memory"):
            m = run["memory"]
            lines += ["", f"P = {run['conditions']:,}: peak resident memory {m['peak_process_gb']} GB in one process, "
                      f"{m['peak_sum_gb']} GB summed over the run's {m['processes']} processes ({m['note']})."]
    return "\n".join(lines) + "\n"


def _se(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("roots", type=Path, nargs="+", help="store roots of regnet_tcga runs (one per P)")
    parser.add_argument("--mem-log", type=Path)
    parser.add_argument("--mem-pid", type=int, action="append", default=[],
                        help="per root, in order: the pid whose process tree ran it (read from --mem-log)")
    parser.add_argument("--time", type=Path, action="append", default=[], help="/usr/bin/time -v outputs")
    parser.add_argument("--out-dir", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    frames, runs = [], []
    for n, root in enumerate(args.roots):
        df, tasks = read_store(root)
        frames.append(df)
        P = sorted({int(json.loads(b)["cell"]["conditions"]) for b in tasks.block})  # also when no fit has finished
        runs.append({"root": str(root), "conditions": P[0] if len(P) == 1 else P, "tasks": task_times(tasks),
                     "fits": fit_figures(df), "zarr_bytes": du(root / "arrays.zarr"),
                     "memory": memory(args.mem_log, args.mem_pid[n] if n < len(args.mem_pid) else None)})
    df = pd.concat(frames, ignore_index=True)
    rows = []
    for lmm in LMMS:
        if lmm not in set(df.method):
            continue
        pooled = paired_comparison(df, lmm, RIDGE, "pearson", by=("conditions", "noise")).rename(columns={lmm: "lmm"})
        cond = per_condition(df, lmm)
        merged = pooled.merge(cond, on=["conditions", "noise"], how="left")
        merged = merged.rename(columns={"d": "d_condition", "se_y": "se_condition", "se_x": "se", "wins_x": "wins",
                                        "wins_y": "wins_condition"})
        merged.insert(2, "lmm_method", lmm)
        rows += records(merged)
    rows.sort(key=lambda r: (r["conditions"], r["noise"], r["lmm_method"]))
    cells = []
    for lmm in LMMS:
        if lmm in set(df.method):
            c = paired_comparison(df, lmm, RIDGE, "pearson", by=("conditions", "noise", "fraction")).rename(columns={lmm: "lmm"})
            c.insert(3, "lmm_method", lmm)
            cells += records(c)
    cells.sort(key=lambda r: (r["conditions"], r["noise"], r["fraction"], r["lmm_method"]))
    out: dict[str, Any] = {
        "benchmark": "regnet_tcga", "config": "configs/regnet_tcga.yaml", "cpus": os.cpu_count(),
        "beta_recovery": rows, "cells": cells, "runs": runs, "time_v": time_v(args.time),
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "regnet_tcga.json").write_text(json.dumps(out, indent=1) + "\n")
    (args.out_dir / "regnet_tcga.md").write_text(markdown(out))
    print(json.dumps({"beta_recovery": [{k: r[k] for k in ("conditions", "noise", "lmm_method", "n", "diff", "se")} for r in rows]}))


if __name__ == "__main__":
    main()
