"""Write the result tables of docs/benchmarks.md from the JSON files in benchmarks/results.

Each table sits between two marker comments in the page,

    <!-- results:NAME -->
    ...generated, do not edit by hand...
    <!-- /results -->

and is rebuilt from ``benchmarks/results/<file>.json`` by the function ``TABLES[NAME]``.
The prose around the markers is left as it is.

    python benchmarks/docs_tables.py           # rewrite the tables in docs/benchmarks.md
    python benchmarks/docs_tables.py --check   # exit 1 when the page differs from the JSON

``tests/test_docs.py`` runs the same check, so the page cannot drift from the results.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PAGE = ROOT / "docs" / "benchmarks.md"
#: other pages that show some of the tables (every table has its marker in PAGE)
EXTRA_PAGES = [ROOT / "docs" / "regnet.md"]

MARKER = re.compile(r"(<!-- results:(?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S)


def load(name: str, results: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((results / name).read_text())
    return data


def num(x: Any, digits: int = 2, *, sign: bool = False, pct: bool = False) -> str:
    """A number for a table cell; ``-`` for a missing value."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if pct:
        return f"{x:+.{digits}f}%" if sign else f"{x:.{digits}f}%"
    if isinstance(x, float) and x != 0 and abs(x) < 10 ** -digits:
        return f"{x:+.1e}" if sign else f"{x:.1e}"
    return f"{x:+,.{digits}f}" if sign else f"{x:,.{digits}f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], *sources: str) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines.append("")
    lines.append("From " + " and ".join(f"`benchmarks/results/{source}`" for source in sources) + ".")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- one function per table


def overhead(results: Path) -> str:
    d = load("overhead.json", results)
    t, s = d["per_task"], d["sink"]
    rows = [
        ["per task (empty tasks)", f"{t['tasks']:,} tasks, {t['workers']} workers", f"{num(t['regulas_ms_per_task'])} ms",
         f"bare `client.submit` {num(t['bare_dask_ms_per_task'])} ms", f"{num(t['regulas_over_bare'])}x"],
        ["sink throughput", f"{s['rows']:,} rows", f"{num(s['sink_rows_per_s'], 0)} rows/s",
         f"plain `sqlite3` {num(s['raw_sqlite3_rows_per_s'], 0)} rows/s", f"{num(s['sink_over_raw'])}x"],
        ["sink throughput", f"{s['rows']:,} rows", f"{num(s['sink_rows_per_s'], 0)} rows/s",
         f"SQLAlchemy Core {num(s['sqlalchemy_core_rows_per_s'], 0)} rows/s", f"{num(s['sink_over_core'])}x"],
    ]
    return table(["what", "size", "regulas", "baseline", "regulas / baseline"], rows, "overhead.json")


def resume(results: Path) -> str:
    d = load("resume.json", results)
    rows = [[str(d["tasks"]), str(d["done_when_killed"]), str(d["run_by_resume"]), str(d["done_tasks_recomputed"]),
             str(d["resume_exit_code"]), f"{num(d['resume_s'], 1)} s", num(d["same_scores_as_uninterrupted"]), f"{d['score_rows']:,}"]]
    header = ["tasks", "done when killed", "run by the resume", "done tasks computed again", "resume exit code",
              "resume time", "same scores as an uninterrupted run", "score rows"]
    return table(header, rows, "resume.json")


def chunk_digests(results: Path) -> str:
    rows = []
    for name in ("chunk_digests.json", "chunk_digests.small_chunks.json"):
        d = load(name, results)
        rows.append([
            f"{d['chunks']:,} x {num(d['chunk_kb'], 0)} KB", f"{num(d['write_zstd_s'])} s", f"{num(d['write_zstd_crc32c_s'])} s",
            num(d["crc32c_extra_on_write_pct"], 1, sign=True, pct=True), f"{num(d['task_digests_s'])} s ({num(d['task_digests_pct_of_write'], 1)}%)",
            f"{num(d['verify_s_per_gb'])} s/GB, {num(d['verify_ms_per_chunk'], 3)} ms/chunk", f"{num(d['report_check_ms_per_chunk'], 3)} ms/chunk",
        ])
    header = ["chunks", "write (zstd)", "write (zstd + crc32c)", "crc32c on write", "task digests (% of the tasks' writes)",
              "`regulas verify`", "report's check (stat)"]
    return table(header, rows, "chunk_digests.json", "chunk_digests.small_chunks.json")


def splicing_ridge_batched(results: Path) -> str:
    d = load("splicing_ridge_batched.json", results)
    st = d["study"]
    rows = []
    for mode in ("nested", "outer"):
        m = d[mode]
        rows.append([mode, f"{num(m['batched_cpu_s'], 0)} s", f"{num(m['per_event_projected_cpu_s'], 0)} s",
                     f"{num(m['ratio'], 0)}x", f"{num(m['ratio_wall'], 0)}x", f"{m['max_abs_pred_diff']:.1e}",
                     num(m["same_chosen_alpha"])])
    header = ["selection", "batched CPU", "per-event CPU (projected)", "CPU ratio", "wall ratio", "max abs Δ prediction", "same alphas"]
    text = table(header, rows, "splicing_ridge_batched.json")
    return (f"{st['samples']:,} samples x {st['features']:,} features x {st['events']:,} events, {st['splits']} splits, "
            f"{st['alphas']} alphas, inner CV {st['inner_cv']}; per-event side timed on "
            f"{d['nested']['per_event_sampled_events']} events and scaled.\n\n" + text)


def splicing_generic_overhead(results: Path) -> str:
    d = load("splicing_generic_overhead.json", results)
    rows = []
    for name in ("StandardScaler+ElasticNet", "MinMaxScaler+SupportVectorMachine"):
        p = d[name]
        rows.append([name, f"{p['model_fits']:,}", f"{num(p['regulas_cpu_s'], 1)} s", f"{num(p['same_fits_cpu_s'], 1)} s",
                     num(p["overhead_pct"], 1, sign=True, pct=True), num(p["overhead_pct_min"], 1, sign=True, pct=True),
                     f"{num(p['pipeline_loop_over_regulas'], 1)}x", f"{num(p['gridsearchcv_over_regulas'], 1)}x",
                     num(p["max_abs_pred_diff_vs_gridsearchcv"], 1)])
    header = ["pipeline", "model fits", "regulas CPU", "same fits CPU", "overhead (median)", "overhead (fastest repeats)",
              "Pipeline per event / regulas", "GridSearchCV / regulas", "max abs Δ vs GridSearchCV"]
    text = table(header, rows, "splicing_generic_overhead.json")
    st, e = d["study"], d["e2e"]
    load_avg = ", ".join(num(x, 1) for x in d["load_average_1min"])
    return (f"{st['events']} GSE114922 events x {st['features']} RBPs, {st['samples']} samples, {st['splits']} outer splits, "
            f"{st['inner_cv']} inner folds; CPU time, median of {st['repeats']} alternated repeats.\n\n" + text
            + f"\nEnd to end (`regulas run`, {e['workers']} worker, {e['tasks']} tasks, {e['runs']} runs): "
            f"{num(e['in_task_outside_fits_pct'], 1)}% of the workers' task time is spent outside the fits; "
            f"max abs Δ between stored and in-process predictions {num(e['max_abs_pred_diff_stored_vs_in_process'], 1)}; "
            f"1-minute load average {load_avg}.\n")


def splicing_tcga_projection(results: Path) -> str:
    d = load("splicing_tcga_projection.json", results)
    m = d["model"]
    blocks = d["projection_by_block"]
    nodes = list(next(iter(blocks.values()))["wall_hours"])
    rows = []
    for block, b in blocks.items():
        wall = [f"{num(b['wall_hours'][n], 2)} h" for n in nodes]
        rows.append([f"{int(block):,}", str(b["tasks"]), f"{num(b['task_s'], 1)} s", num(b["core_hours"], 1),
                     f"{num(b['writer_hours'] * 60, 1)} min", *wall])
    header = ["events per task", "tasks", "task CPU", "core-hours", "writer", *(n.replace("_", " ") for n in nodes)]
    text = table(header, rows, "splicing_tcga_projection.json")
    return (f"Model fitted to real tasks at that size: a task costs {num(m['fixed_s_per_task'], 1)} s of CPU + "
            f"{num(m['per_event_s'], 3)} s per event; the writer {num(m['writer_fixed_s_per_task'], 2)} s + "
            f"{num(m['writer_per_event_s'] * 1000, 2)} ms per event; dispatch {num(m['dispatch_ms_per_task'], 1)} ms per task "
            f"({m['dispatch_source']}).\n\n" + text)


def splicing_tcga(results: Path) -> str:
    rows = []
    names = sorted(f.name for f in results.glob("splicing_tcga_*.json") if f.name != "splicing_tcga_projection.json"
                   and not f.name.endswith(".quick.json"))
    for name in names:
        d = load(name, results)
        st, m, b, ex, pl = d["study"], d["measured"], d["bound"], d["exactness"], d["planted"]
        disk = m["disk_gb"]["arrays"] + m["disk_gb"]["database"]
        rows.append([
            f"{st['events']:,}" + (" (SLURM)" if st.get("cluster") == "slurm" else ""),
            f"{num(st['missing_rate'] * 100, 0)}%", f"{num(m['wall_s'] / 60, 1)} min",
            f"{num(m['task_phase_s'] / 60, 1)} min", f"{m['tasks_done']} x {num(m['mean_task_s'], 1)} s",
            f"{num(m['task_sum_s'] / (st['events'] * st['splits']), 3)} s",
            f"{num(b['alpha_path']['wall_s'] / 60, 1)} / {num(b['direct']['wall_s'] / 60, 1)} min",
            f"{num(m['writer_share'] * 100, 1)}%",
            f"{num(m['driver_peak_gb'], 1)} / {num(m['worker_peak_gb'], 1)} GB", f"{num(disk, 1)} GB",
            num(ex["max_abs_diff"]), num(pl["precision_at_r"]), f"{num(d['load_average_1min'][0], 1)}, {num(d['load_average_1min'][1], 1)}",
        ])
    header = ["events", "PSI missing", "wall", "task phase", "tasks", "task time per event and split", "bound: α path / direct", "writer",
              "peak memory driver / worker", "disk", "max abs Δ vs GridSearchCV", "planted precision", "load"]
    notes = []
    for name in names:  # a run with missing PSI below full size: its per-event cost scaled to 50,000 events
        d = load(name, results)
        st, m = d["study"], d["measured"]
        if st["missing_rate"] and st["events"] < 50_000:
            per = m["task_sum_s"] / (st["events"] * st["splits"])
            hours = per * 50_000 * st["splits"] / st["workers"] / 3600
            notes.append(f"{num(st['missing_rate'] * 100, 0)}% missing, {st['events']:,} events: {num(per, 3)} s of task time per "
                         f"event and split, scaled linearly to 50,000 events x {st['splits']} splits on {st['workers']} workers: "
                         f"**{num(hours, 1)} h** (a projection from this run, not a run at that size: each event is "
                         f"solved on its own, so the task time is linear in the number of events).")
        if "compared" in d:  # the same study run elsewhere (SLURM against the local run)
            c = d["compared"]
            where = "SLURM" if st.get("cluster") == "slurm" else "this run"
            parts = [f"{label} {'equal' if c[k]['max_abs_diff'] == 0 else 'max abs Δ ' + num(c[k]['max_abs_diff'])}"
                     f" ({c[k]['nan_mismatches']} missing in one only)" for label, k in (("predictions", "pred"), ("coefficients", "importance"))]
            notes.append(f"{where}, {st['events']:,} events, against `{c['other_store']}`: {', '.join(parts)}.")
    return table(header, rows, *names) + "".join(f"\n{n}\n" for n in notes)


def splicing_sink(results: Path) -> str:
    d = load("splicing_sink.json", results)
    names = {"sink": "regulas `Sink` (schema 4: event index)", "raw_index": "plain `sqlite3` executemany, event index",
             "raw_name": "plain `sqlite3` executemany, event name in the key (schema 2)"}
    rows = [[names.get(k, k), f"{v['rows']:,}", f"{num(v['seconds'], 1)} s", num(v["rows_per_s"], 0), f"{num(v['mb'], 0)} MB"]
            for k, v in d["measured"].items()]
    text = table(["writer", "rows", "time", "rows/s", "database size"], rows, "splicing_sink.json")
    st, r = d["study"], d["ratios"]
    return (f"{st['events']:,} events x {st['models']} pipelines x {st['splits']} splits, top {st['top_k']} importances; "
            f"1-minute load average {num(d['load_average_1min'], 1)}.\n\n" + text
            + f"\nIndex over name: {num(r['raw_index_over_raw_name'], 1)}x faster, "
            f"{num(r['size_name_over_index'], 1)}x smaller.\n")


def regnet_accuracy(results: Path) -> str:
    d = load("regnet_accuracy.json", results)
    rows = []
    for noise, p in d["pooled_pearson"].items():
        cells = [c for c in d["cells"] if c["noise"] == noise]
        n = sum(c["n"] for c in cells)
        wins = sum(c["wins"] * c["n"] for c in cells) / n if n else float("nan")
        rows.append([noise, str(p["n"]), f"{p['ridge']:.3f}", f"{p['lmm']:.3f}", f"{p['diff']:+.3f} ± {p['se']:.3f}", f"{wins:.0%}"])
    header = ["noise Σ", "pairs", "ridge", "LMM", "LMM − ridge ± SE", "LMM better"]
    text = table(header, rows, "regnet_accuracy.json")
    v = d["verdict"]
    return (f"G = {d['genes']}, T = {d['motifs']}, {d['replicates']} replicates, M from `{d['motif_source']}`; "
            f"{d['fits']} fits in {num(d['elapsed_s'], 0)} s on {d['workers']} workers (load average {num(d['load_average'], 1)}). "
            f"Pearson correlation of β̂ with β, pooled over V and signal fraction.\n\n" + text
            + f"\nPublished finding reproduced: {num(v['reproduced'])} (LMM beats ridge under uncorrelated noise: "
            f"{num(v['lmm_beats_ridge_uncorrelated_noise'])}; no gain when the noise shares V: {num(v['no_gain_when_noise_shares_V'])}).\n")


def lmm_vs_kron2sum(results: Path) -> str:
    d = load("lmm_vs_kron2sum.json", results)
    rows = []
    for c in d["cells"]:
        k = c.get("kron2sum", {})
        ok = k.get("status") == "ok"
        rows.append([str(c["G"]), str(c["P"]), str(c["T"]), f"{num(c['regulas_rank1_s'], 3)} s",
                     f"{num(k['seconds'], 1)} s" if ok else k.get("status", "-"),
                     f"{num(c['time_ratio_rank1'], 1)}x" if ok else "-",
                     f"{c['loglik_diff_rank1']:+.1e}" if ok else "-", num(c.get("load_average_1min_regulas"), 1)])
    header = ["G", "P", "T", "regulas (rank-1 C0)", "Kron2Sum", "Kron2Sum / regulas", "log-lik regulas − Kron2Sum", "load"]
    text = table(header, rows, "lmm_vs_kron2sum.json")
    t = d["timing"]
    return text + (f"\nOne fit at G = {t['G']:,}, P = {t['P']}, T = {t['T']}: {num(t['median_s'], 2)} s median "
                   f"({num(t['min_s'], 2)} s min, setup {num(t['setup_median_s'], 2)} s, {t['n_iter']} iterations) at load "
                   f"{num(t['load_average_1min'], 1)} on {t['cpus']} CPUs; a 10⁴x tighter fit gains "
                   f"{t['tight_loglik_minus_default']:.0e}.\n")


def lmm_vs_kron2sum_quick(results: Path) -> str:
    t = load("lmm_vs_kron2sum.quick.json", results)["timing"]
    rows = [[f"{t['G']:,}", str(t["P"]), str(t["T"]), f"{num(t['median_s'], 3)} s", f"{num(t['min_s'], 3)} s",
             f"{num(t['setup_median_s'], 3)} s", str(t["n_iter"]), num(t["load_average_1min"], 1)]]
    return table(["G", "P", "T", "fit (median)", "fit (min)", "setup (median)", "iterations", "load"], rows, "lmm_vs_kron2sum.quick.json")


def lmm_tcga_scale(results: Path) -> str:
    full = load("lmm_tcga_scale.json", results)
    stages = {r["P"]: r for r in load("lmm_tcga_scale.stages.json", results)["rows"]}
    rows = []
    for r in full["rows"]:
        s = stages.get(r["P"], {})
        rows.append([f"{r['P']:,}", f"{num(r['fit_s'], 1)} s", str(r["n_iter"]), num(r["converged"]), f"{num(r['process_peak_rss_mb'], 0)} MB",
                     f"{num(s.get('eval_s'), 4)} s", f"{s['P3_share']:.0%}" if "P3_share" in s else "-",
                     f"{s['stage_coverage']:.0%}" if "stage_coverage" in s else "-"])
    header = ["P", "fit", "iterations", "converged", "peak RSS", "one evaluation (stages run)", "O(P³) share", "stages cover"]
    text = table(header, rows, "lmm_tcga_scale.json", "lmm_tcga_scale.stages.json")
    s = full["summary"]
    return f"G = {s['G']:,}, T = {s['T']}, signal {s['signal']}, noise {s['noise']}, {s['threads']} thread.\n\n" + text


def regnet_tcga(results: Path) -> str:
    d = load("regnet_tcga.json", results)
    rows = []
    for r in d["beta_recovery"]:
        rows.append([f"{r['conditions']:,}", r["noise"], r["lmm_method"], str(r["n"]), f"{r['ridge']:.3f}", f"{r['lmm']:.3f}",
                     f"{r['diff']:+.4f} ± {num(r['se'], 4)}", f"{r['d_condition']:+.4f} ± {num(r['se_condition'], 4)}",
                     f"{r['wins_condition']:.1%}"])
    header = ["P", "noise Σ", "LMM", "data sets", "Pearson ridge", "Pearson LMM", "LMM − ridge ± SE (data sets)",
              "per condition ± SE", "conditions LMM better"]
    text = table(header, rows, "regnet_tcga.json")
    runs = []
    for run in d["runs"]:
        t, f = run["tasks"], run["fits"]
        fit = t.get("regnet.fit_streamed", {})
        times = ", ".join(f"{m} {num(f[m]['fit_time_s']['median'], 1)} s" for m in ("ridge", "lmm", "lmm_factor") if m in f)
        mem = run.get("memory") or {}
        runs.append(f"P = {run['conditions']:,}: {t['tasks'].get('done', 0)} of {sum(t['tasks'].values())} tasks done, "
                    f"{num(t['wall_s'], 0)} s wall, {fit.get('n', 0)} fit tasks of "
                    f"{num(fit.get('mean_s'), 0)} s (median fit: {times}), Zarr {num(run['zarr_bytes'] / 1e9, 2)} GB"
                    + (f", peak {num(mem.get('peak_process_gb'), 1)} GB in one process" if mem else ""))
    return ("G = 20,000, T = 600, V = lowrank_4, signal fraction 0.1 and 0.3; Pearson of β̂ with β, paired on the same data "
            "set, pooled over f and replicates; the per-condition columns pool the Pearson of each column of β.\n\n"
            + text + "\n" + "; ".join(runs) + ".\n")


def scaling(results: Path) -> str:
    d = load("scaling.json", results)
    rows = []
    for backend in ("local", "slurm"):
        for r in d.get(backend, {}).get("runs", []):
            rows.append([backend, str(r["workers"]), str(r["tasks"]), f"{num(r['cluster_start_s'], 1)} s", f"{num(r['task_phase_s'], 1)} s",
                         f"{num(r['mean_task_s'], 3)} s", f"{num(r['overhead_ms_per_task'], 1)} ms", num(r["busy_cores"], 2),
                         f"{num(r['speedup'], 2)}x", num(r["contended"]), num(r["implausible"])])
    header = ["backend", "workers", "tasks", "cluster start", "task phase", "mean task", "overhead per task", "busy cores",
              "speed-up", "contended", "implausible"]
    text = table(header, rows, "scaling.json")
    return (f"{d['cpus']} CPUs, load average {num(d['load_avg_at_start'], 2)} at start and {num(d['load_avg_at_end'], 1)} at the end; "
            f"study: `{' '.join(d['study'])}`.\n\n" + text)


def cli_start(results: Path) -> str:
    d = load("cli_start.json", results)
    before, after = d["before"]["commands"], d["after"]["commands"]
    rows = [[f"`regulas {'--help' if name == 'help' else name}`", f"{num(before[name]['median_s'])} s", f"{num(after[name]['median_s'])} s",
             f"{num(after[name]['imports']['total_s'])} s"] for name in after if name in before]
    return table(["command", "before (median)", "after (median)", "imports after"], rows, "cli_start.json")


def regulas_migration(results: Path) -> str:
    d = load("regulas_migration.json", results)
    anchor = d["regulas_anchor_quoted"]
    rows = [["regulAS, one process per pickle (quoted, issue 15)", "20", "", f"{num(anchor['per_file_s_per_event'])} s", "1x"]]
    rows.append(["regulAS `--multirun` (quoted, derived)", "20", "", f"{num(anchor['multirun_s_per_event'])} s",
                 f"{num(anchor['per_file_s_per_event'] / anchor['multirun_s_per_event'], 1)}x"])
    pf = d["per_file"]
    rows.append(["regulas, one run per pickle", str(pf["runs"]), f"{num(pf['total_s'], 1)} s", f"{num(pf['s_per_event'])} s",
                 f"{num(anchor['per_file_s_per_event'] / pf['s_per_event'], 2)}x"])
    for run in d["runs"]:
        r = run["one_study"]
        rows.append([f"regulas, one study (rerun {num(r['rerun_wall_s'], 1)} s)", f"{r['events']:,}", f"{num(r['wall_s'], 1)} s",
                     f"{num(r['s_per_event'], 3)} s", f"{num(anchor['per_file_s_per_event'] / r['s_per_event'], 0)}x"])
    text = table(["workflow", "events", "wall", "per event", "vs regulAS per pickle"], rows, "regulas_migration.json")
    phases = [f"{r['one_study']['events']:,} events: task phase {num(r['one_study']['task_phase_s'], 1)} s, "
              f"waiting for the cluster after planning {num(r['one_study']['waited_for_cluster_after_planning_s'], 1)} s, "
              f"the rest {num(r['one_study']['outside_tasks_s'], 1)} s" for r in d["runs"]]
    cli = d["cli"]
    return (text + "\nOne study, where the wall time goes: " + "; ".join(phases) + ". `regulas show-config` "
            f"{num(cli['show_config_s'])} s, `regulas --help` {num(cli['help_s'])} s (medians of {cli['repeats']}); "
            f"load average at the start {num(d['machine']['load_average_at_start'][0], 2)}.\n")


TABLES: dict[str, Callable[[Path], str]] = {
    "overhead": overhead,
    "resume": resume,
    "chunk_digests": chunk_digests,
    "splicing_ridge_batched": splicing_ridge_batched,
    "splicing_generic_overhead": splicing_generic_overhead,
    "splicing_tcga_projection": splicing_tcga_projection,
    "splicing_tcga": splicing_tcga,
    "splicing_sink": splicing_sink,
    "regnet_accuracy": regnet_accuracy,
    "lmm_vs_kron2sum": lmm_vs_kron2sum,
    "lmm_vs_kron2sum_quick": lmm_vs_kron2sum_quick,
    "lmm_tcga_scale": lmm_tcga_scale,
    "regnet_tcga": regnet_tcga,
    "scaling": scaling,
    "cli_start": cli_start,
    "regulas_migration": regulas_migration,
}


def render(page: str, results: Path = RESULTS, *, require_all: bool = True) -> str:
    """``page`` with every marked table rebuilt; a marker naming no table is an error, and so is, with
    ``require_all`` (the page PAGE), a table without its marker."""
    seen: list[str] = []

    def rebuild(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in TABLES:
            raise KeyError(f"docs marker results:{name} names no table; known: {', '.join(TABLES)}")
        seen.append(name)
        return match.group(1) + TABLES[name](results) + match.group(4)

    out = MARKER.sub(rebuild, page)
    missing = [name for name in TABLES if name not in seen]
    if missing and require_all:
        raise KeyError(f"{PAGE.name} has no marker for: {', '.join(missing)}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 when the page differs")
    args = parser.parse_args(argv)
    status = 0
    for path in (PAGE, *EXTRA_PAGES):
        page = path.read_text()
        new = render(page, require_all=path == PAGE)
        if args.check:
            if new != page:
                print(f"{path} differs from benchmarks/results; run python benchmarks/docs_tables.py", file=sys.stderr)
                status = 1
        elif new != page:
            path.write_text(new)
            print(f"rewrote the tables of {path}")
    return status


if __name__ == "__main__":
    sys.exit(main())
