"""Benchmark 3: KronSumLMM at TCGA scale, G = 20,000 genes, T = 600 motifs, P = 8 ... 1,000 conditions.

Model: low-rank C0 (rank 4) and diagonal C1, the structure that keeps the number of
parameters linear in P. Each P runs in its own child process so that its peak memory
(ru_maxrss) is its own. Per P we report the setup (one decomposition of M and the
projections of Y), the cost of one likelihood + gradient evaluation and of the wall time of a
whole fit. The evaluation is timed in its real stages (KronSumProblem.rotate and
Evaluation's back-rotation of the gradient: O(P^3), the eigendecomposition of
C1^-1/2 C0 C1^-1/2 and P x P products; KronSumProblem.reduce and
Evaluation.inner_gradients: O(r P^2), r = rank M = 600); the stages' sum is reported against
the whole evaluation as coverage. The P where the O(P^3) stages pass half of the time is
reported as the crossover.

    python benchmarks/lmm_tcga_scale.py --quick    # P in {8, 64, 256}: < 2 min on 2 cores
    python benchmarks/lmm_tcga_scale.py            # P in {8, 32, 128, 256, 512, 1000}
The last line is one JSON object; results go to benchmarks/results/lmm_tcga_scale.json
(--quick: lmm_tcga_scale.quick.json). These figures are the general path (solver="general").

The structured path (solver="structured", no P x P matrix; issue 12) is measured by

    OMP_NUM_THREADS=1 python benchmarks/lmm_tcga_scale.py --structured [--P 8 ... 10000] [--noise diagonal factor]

one child process per (P, noise): the data are simulated in place (Y written by blocks of
conditions, so generation never holds more than Y), then the whole fit
(KronSumLMM(solver="structured"), n_restarts=0) is timed, with its stages from the
estimator's fit_seconds_ (setup: the decomposition of M and U^T Y; optimise; posterior);
peak resident memory is the child's ru_maxrss after the data and after the fit. Signal rank 4 up to P = 1,000 and 8 beyond, noise "diagonal" or "factor" (rank 4).
Results: benchmarks/results/lmm_tcga_scale.structured.json (rows merged by (P, noise)).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from regulas.core.task import derive_seed
from regulas.lmm import KronSumLMM, KronSumProblem

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ROOT_SEED = 20201118
G, T, RANK = 20_000, 600, 4
NOISE_RANK = 4  # of the factor noise, structured runs


def simulate(P: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    M = rng.gamma(0.5, 1.0, size=(G, T))
    M = (M - M.min(0)) / (M.max(0) - M.min(0))
    L = rng.standard_normal((P, RANK))
    beta = rng.standard_normal((T, RANK)) @ L.T / np.sqrt(T)
    noise = rng.standard_normal((G, P)) * np.sqrt(rng.uniform(0.5, 2.0, size=P))
    signal = M @ beta
    signal -= signal.mean(0)
    scale = np.sqrt(0.25 * np.sum(noise**2) / np.sum(signal**2))  # signal fraction 0.2
    return M, scale * signal + noise


def _best_of(fn: Any, repeats: int = 3) -> float:
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return float(best)


def _one_p(P: int, threads: int | None, max_iter: int, queue: Any) -> None:
    seed = derive_seed(ROOT_SEED, "bench.lmm_tcga_scale", {"P": P})
    M, Y = simulate(P, seed)
    with threadpool_limits(threads):
        t0 = time.perf_counter()
        problem = KronSumProblem(M, Y)
        setup = time.perf_counter() - t0
        rng = np.random.default_rng(seed)
        L = rng.standard_normal((P, RANK))
        C0, L1 = L @ L.T / P, np.diag(np.sqrt(rng.uniform(0.5, 2.0, P)))
        t_eval = _best_of(lambda: problem.evaluate(C0, L1).grad_C0)  # value and gradient
        # the evaluation's own stages, timed one by one
        rotated = problem.rotate(C0, L1)
        ev = problem.reduce(rotated)
        inner0, inner1 = ev.inner_gradients()
        t_rotate = _best_of(lambda: problem.rotate(C0, L1))
        t_reduce = _best_of(lambda: problem.reduce(rotated))
        t_inner = _best_of(ev.inner_gradients)
        t_back = _best_of(lambda: ev.rotate_back(inner0, inner1))
        t_p3, t_rp2 = t_rotate + t_back, t_reduce + t_inner
        problem = ev = None  # type: ignore[assignment]  # frees the P x P buffers before the fit
        fit_row: dict[str, Any] = {}
        if max_iter > 0:
            tracemalloc.start()  # numpy reports its buffers to tracemalloc: peak of the fit alone
            t0 = time.perf_counter()
            est = KronSumLMM(
                signal="lowrank_k", rank=RANK, noise="diagonal", n_restarts=0, max_iter=max_iter, random_state=seed, solver="general"
            )
            est.fit(M, Y)
            fit_row = {
                "fit_s": round(time.perf_counter() - t0, 2),
                "n_iter": est.n_iter_,
                "converged": est.converged_,
                "loglik": est.log_likelihood_,
                "fit_peak_traced_mb": round(tracemalloc.get_traced_memory()[1] / 2**20, 1),
            }
            tracemalloc.stop()
    queue.put(
        {
            "P": P,
            "setup_s": round(setup, 3),
            "eval_s": round(t_eval, 5),
            "eval_rP2_part_s": round(t_rp2, 5),
            "eval_P3_part_s": round(t_p3, 5),
            "stages_s": {"rotate": round(t_rotate, 5), "reduce": round(t_reduce, 5),
                         "inner_gradients": round(t_inner, 5), "gradient_back_rotation": round(t_back, 5)},
            "stage_coverage": round((t_p3 + t_rp2) / t_eval, 3),
            "P3_share": round(t_p3 / (t_p3 + t_rp2), 3),
            **fit_row,
            "process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
    )


def structured_rank(P: int) -> int:
    return RANK if P <= 1000 else 8


def simulate_blocks(P: int, seed: int, rank: int, noise: str) -> tuple[np.ndarray, np.ndarray]:
    """Y = M beta + E (signal fraction 0.2) built by blocks of conditions: nothing Y-sized but Y.

    E is diagonal (per-condition variances in [0.5, 2]) or, for "factor", that plus a rank-4
    common part Z H^T. The signal's scale comes from M's Gram matrix (its exact sum of
    squares) and the noise's expected sum of squares.
    """
    rng = np.random.default_rng(seed)
    M = rng.gamma(0.5, 1.0, size=(G, T))
    M = (M - M.min(0)) / (M.max(0) - M.min(0))
    Mc = M - M.mean(0)
    beta = rng.standard_normal((T, rank)) @ rng.standard_normal((P, rank)).T / np.sqrt(T)
    sd = np.sqrt(rng.uniform(0.5, 2.0, size=P))
    Hf = rng.standard_normal((P, NOISE_RANK)) * 0.5 if noise == "factor" else np.zeros((P, 0))
    Z = rng.standard_normal((G, Hf.shape[1]))
    signal_ss = float(np.einsum("ij,ij->", beta, (Mc.T @ Mc) @ beta))
    noise_ss = G * float((sd**2).sum() + (Hf**2).sum())
    scale = np.sqrt(0.25 * noise_ss / signal_ss)
    Y = np.empty((G, P))
    for lo in range(0, P, 500):
        sl = slice(lo, min(lo + 500, P))
        Y[:, sl] = rng.standard_normal((G, sl.stop - lo)) * sd[sl]
        Y[:, sl] += scale * (Mc @ beta[:, sl]) + Z @ Hf[sl].T
    return M, Y


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _one_structured(P: int, noise: str, max_iter: int, queue: Any) -> None:
    rank = structured_rank(P)
    seed = derive_seed(ROOT_SEED, "bench.lmm_tcga_scale.structured", {"P": P, "noise": noise})
    M, Y = simulate_blocks(P, seed, rank, noise)
    rss_data = _rss_mb()
    t0 = time.perf_counter()
    kw = {"noise_rank": NOISE_RANK} if noise == "factor" else {}
    est = KronSumLMM(signal="lowrank_k", rank=rank, noise=noise, solver="structured", n_restarts=0, max_iter=max_iter, **kw)
    est.fit(M, Y)
    fit = time.perf_counter() - t0
    queue.put(
        {
            "P": P,
            "noise": noise,
            "signal_rank": rank,
            "noise_rank": NOISE_RANK if noise == "factor" else 0,
            "fit_s": round(fit, 2),  # the whole KronSumLMM.fit, setup included
            "setup_s": est.fit_seconds_["setup"],
            "optimise_s": est.fit_seconds_["optimise"],
            "posterior_s": est.fit_seconds_["posterior"],
            "n_iter": est.n_iter_,
            "n_evaluations": est.n_evaluations_,
            "converged": est.converged_,
            "loglik": est.log_likelihood_,
            "rss_after_data_mb": rss_data,
            "process_peak_rss_mb": _rss_mb(),
            "y_mb": round(Y.nbytes / 2**20, 1),
            "load_average_1min": round(os.getloadavg()[0], 2),
        }
    )


def structured_main(Ps: list[int], noises: list[str], max_iter: int, out: Path) -> None:
    """One child process per (P, noise); rows merged into ``out`` by (P, noise)."""
    old = json.loads(out.read_text()) if out.exists() else {}
    rows = {(r["P"], r["noise"]): r for r in old.get("rows", [])}
    ctx = mp.get_context("fork")
    for noise in noises:
        for P in Ps:
            queue = ctx.Queue()
            proc = ctx.Process(target=_one_structured, args=(P, noise, max_iter, queue))
            proc.start()
            row = queue.get()
            proc.join()
            rows[(P, noise)] = row
            print(json.dumps(row), flush=True)
            write_structured(out, list(rows.values()))


def write_structured(out: Path, rows: list[dict[str, Any]]) -> None:
    """The structured results with a summary: whole-fit seconds per noise and P, next to the
    general path's fits of lmm_tcga_scale.json (its own data, same sizes, rank 4, diagonal noise)."""
    ordered = sorted(rows, key=lambda r: (r["noise"], r["P"]))
    general_file = RESULTS_DIR / "lmm_tcga_scale.json"
    general = {r["P"]: r.get("fit_s") for r in json.loads(general_file.read_text())["rows"]} if general_file.exists() else {}
    summary = {
        "benchmark": "lmm_tcga_scale.structured",
        "G": G,
        "T": T,
        "signal": "lowrank_k (rank 4 up to P = 1,000, 8 beyond)",
        "threads": "OMP_NUM_THREADS=" + str(os.environ.get("OMP_NUM_THREADS", "unset")),
        "solver": "structured",
        "fit_s": {noise: {r["P"]: r["fit_s"] for r in ordered if r["noise"] == noise} for noise in sorted({r["noise"] for r in ordered})},
        "general_path_fit_s (lmm_tcga_scale.json)": general,
        "aims_s": {"P=1000 rank 4 diagonal": 3, "P=10000 rank 8 diagonal": 15, "P=10000 rank 8 factor (rank 4)": 60},
    }
    out.write_text(json.dumps({"summary": summary, "rows": ordered}, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--structured", action="store_true", help="the structured path (writes lmm_tcga_scale.structured.json)")
    ap.add_argument("--noise", nargs="+", default=["diagonal", "factor"], choices=["diagonal", "factor"], help="structured runs")
    ap.add_argument("--threads", type=int, default=None, help="BLAS threads (default: all of the node)")
    ap.add_argument("--max-iter", type=int, default=2000, help="L-BFGS-B iterations per start")
    ap.add_argument("--P", type=int, nargs="+", default=[8, 32, 128, 256, 512, 1000], help="conditions (full mode)")
    ap.add_argument("--stages-only", action="store_true",
                    help="time the evaluation's stages, no fits (writes lmm_tcga_scale.stages.json)")
    ap.add_argument("--out", type=Path, default=None, help="default results/lmm_tcga_scale[.quick|.stages].json")
    args = ap.parse_args()
    if args.structured:
        Ps = args.P if args.P != ap.get_default("P") else [8, 32, 128, 512, 1000, 2000, 5000, 10000]
        structured_main(Ps, args.noise, args.max_iter, args.out or RESULTS_DIR / "lmm_tcga_scale.structured.json")
        return
    suffix = ".quick" if args.quick else (".stages" if args.stages_only else "")
    out = args.out or RESULTS_DIR / f"lmm_tcga_scale{suffix}.json"
    Ps = [8, 64, 256] if args.quick else args.P
    max_iter = 0 if args.stages_only else (min(args.max_iter, 300) if args.quick else args.max_iter)

    rows = []
    ctx = mp.get_context("fork")
    for P in Ps:
        queue = ctx.Queue()
        proc = ctx.Process(target=_one_p, args=(P, args.threads, max_iter, queue))
        proc.start()
        row = queue.get()
        proc.join()
        rows.append(row)
        print(json.dumps(row), flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"partial": True, "rows": rows}, indent=1))

    # below ~1 ms per evaluation Python overhead, not flops, sets the split: ignore those P
    crossover = next((r["P"] for r in rows if r["P3_share"] > 0.5 and r["eval_P3_part_s"] > 1e-3), None)
    summary = {
        "benchmark": "lmm_tcga_scale",
        "mode": "quick" if args.quick else ("stages only" if args.stages_only else "full"),
        "G": G,
        "T": T,
        "signal": f"lowrank_k (rank {RANK})",
        "noise": "diagonal",
        "threads": args.threads or "all",
        "P": [r["P"] for r in rows],
        "fit_s": [r.get("fit_s") for r in rows],
        "eval_s": [r["eval_s"] for r in rows],
        "fit_peak_traced_mb": [r.get("fit_peak_traced_mb") for r in rows],
        "process_peak_rss_mb": [r["process_peak_rss_mb"] for r in rows],
        "P3_share": [r["P3_share"] for r in rows],
        "stage_coverage": [r["stage_coverage"] for r in rows],
        "P3_dominates_from_P": crossover,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
