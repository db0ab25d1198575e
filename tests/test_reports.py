"""Reports of splicing studies, on a real small study store fitted here with scikit-learn.

The store is real: SQLite through regulas.store.database and the single-writer Sink,
Zarr through StudyArrays, with the layout the splicing workload writes. Every number a
report gives is compared with an independent numpy / scikit-learn / scipy computation
on the fits made in this file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import yaml
from omegaconf import DictConfig, OmegaConf
from sklearn.base import clone
from sklearn.linear_model import Lasso, Ridge
from sklearn.metrics import (
    explained_variance_score,
    mean_absolute_error,
    mean_squared_error,
    median_absolute_error,
    r2_score,
)
from sklearn.model_selection import ShuffleSplit
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from conftest import open_all
from regulas.core.errors import ConfigError, StoreError
from regulas.core.task import make_task
from regulas.store.arrays import ArraySpec, StudyArrays
from regulas.store.database import open_study, register_tasks, write_study_rows
from regulas.store.sink import Columns, Sink, TaskOutcome
from regulas.workloads.splicing.reports import (
    ExportCSV,
    FeatureRankingReport,
    ModelPerformanceReport,
    StudyResults,
    check_reports,
    run_reports,
)
from regulas.workloads.splicing.reports.config import plan_reports
from regulas.workloads.splicing.reports.performance import per_split_from_arrays

N_SAMPLES, N_FEATURES, N_EVENTS, N_SPLITS = 30, 6, 8, 3
TOP_K_STORED = 4  # importances kept in SQLite per (event, model, split), as the workload's importance.top_k
FEATURES = [f"RBP{i}" for i in range(N_FEATURES)]
# not in sorted order, so report order must follow the study's event axis
EVENTS = [f"SE_{i}" for i in (5, 12, 0, 7, 3, 10, 1, 9)]
MISSING_EVENT = 2  # this event has missing PSI in some samples
EXPERIMENT = "lr_svr_tmr"

MSE = "sklearn.metrics.mean_squared_error"
PEARSON = "scipy.stats.pearsonr"


@dataclass
class Fitted:
    """What the test fitted: the reference every report is checked against."""

    name: str
    labels: list[str]
    y: np.ndarray  # (sample, event)
    test: list[np.ndarray]  # per split: test sample rows
    pred: np.ndarray  # (model, split, n_test, event), NaN where PSI is missing
    coef: np.ndarray  # (model, split, feature, event)

    def per_split(self, fn: Callable[[np.ndarray, np.ndarray], Any]) -> np.ndarray:
        """fn(y_true, y_pred) per (model, split, event) on the samples with a PSI value."""
        out = np.full((len(self.labels), N_SPLITS, N_EVENTS), np.nan)
        for m in range(len(self.labels)):
            for s, rows in enumerate(self.test):
                for e in range(N_EVENTS):
                    y_true = self.y[rows, e]
                    keep = np.isfinite(y_true)
                    value = fn(y_true[keep], self.pred[m, s, keep, e])
                    out[m, s, e] = getattr(value, "statistic", value)
        return out

    def expected(self, fn: Callable[[np.ndarray, np.ndarray], Any]) -> pd.DataFrame:
        values = self.per_split(fn)
        return pd.DataFrame(
            [
                (EVENTS[e], label, values[m, :, e].mean(), values[m, :, e].std())
                for m, label in enumerate(self.labels)
                for e in range(N_EVENTS)
            ],
            columns=["event", "pipeline", "mean", "std"],
        )


Store = tuple[Path, "Fitted", "Fitted"]  # root, nested-selection study, outer-selection study


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(N_SAMPLES, N_FEATURES))
    beta = rng.normal(size=(N_FEATURES, N_EVENTS)) * (rng.random((N_FEATURES, N_EVENTS)) < 0.6)
    noise = rng.normal(scale=np.linspace(0.2, 2.0, N_EVENTS), size=(N_SAMPLES, N_EVENTS))
    y = 1.0 / (1.0 + np.exp(-(x @ beta + noise)))
    y[[1, 4, 9, 17, 22], MISSING_EVENT] = np.nan
    return x, y


def _model_rows(labels: list[str], pipelines: list[str], candidates: list[int], params: list[dict]) -> dict:
    n = len(labels)
    return {
        "model": list(range(n)),
        "pipeline": pipelines,
        "candidate": candidates,
        "params": [json.dumps(p) for p in params],
        "label": labels,
        "identity": [f"{i:064d}" for i in range(n)],
        "steps": ["[]"] * n,
        "grid": ["{}"] * n,
    }


def build_study(
    root: Path, name: str, models: list[tuple[str, str, int, dict, Pipeline]], config: dict
) -> Fitted:
    """Fit every (model, split, event) with scikit-learn and store it as the splicing workload does.

    ``models``: (label, pipeline name, candidate, params, unfitted sklearn pipeline).
    """
    x, y = _data()
    splits = list(ShuffleSplit(n_splits=N_SPLITS, test_size=0.3, random_state=0).split(x))
    n_test = len(splits[0][1])
    labels = [m[0] for m in models]
    pred = np.full((len(models), N_SPLITS, n_test, N_EVENTS), np.nan)
    coef = np.full((len(models), N_SPLITS, N_FEATURES, N_EVENTS), np.nan)
    for m, (_, _, _, _, estimator) in enumerate(models):
        for s, (train, test) in enumerate(splits):
            for e in range(N_EVENTS):
                tr = train[np.isfinite(y[train, e])]
                fitted = clone(estimator).fit(x[tr], y[tr, e])
                keep = np.isfinite(y[test, e])
                pred[m, s, keep, e] = fitted.predict(x[test][keep])
                coef[m, s, :, e] = fitted[-1].coef_

    db = root / "regulas.db"
    engine = open_all(db)
    record = open_study(
        engine,
        name=name,
        workload="splicing",
        config_yaml=yaml.safe_dump(config),
        config_hash=name.ljust(64, "0"),
        root_seed=0,
        package_versions={},
    )
    write_study_rows(
        engine,
        record.id,
        {"splice_event": {"event": list(range(N_EVENTS)), "name": EVENTS},
         "splice_model": _model_rows(labels, [m[1] for m in models], [m[2] for m in models], [m[3] for m in models])},
    )
    arrays = StudyArrays(root / "arrays.zarr", name)
    samples = [f"S{i}" for i in range(N_SAMPLES)]
    arrays.create(ArraySpec("X", x.shape, x.shape), x).attrs.update({"samples": samples, "features": FEATURES})
    arrays.create(ArraySpec("Y", y.shape, y.shape), y).attrs.update({"events": EVENTS})
    arrays.create(
        ArraySpec("test_index", (N_SPLITS, n_test + 2), (1, n_test + 2), dtype="int64", fill_value=-1),
        np.pad(np.stack([t for _, t in splits]), ((0, 0), (0, 2)), constant_values=-1),  # padded as the workload pads
    )
    arrays.create(
        ArraySpec("pred", (len(models), N_SPLITS, n_test + 2, N_EVENTS), (1, 1, n_test + 2, 4)),
        np.pad(pred, ((0, 0), (0, 0), (0, 2), (0, 0)), constant_values=np.nan),
    )
    arrays.create(ArraySpec("importance", coef.shape, (1, 1, N_FEATURES, 4)), coef)

    tasks = [
        make_task(study=name, kind="fit", block={"model": m, "split": s}, root_seed=0, config={}, data_fingerprint="d")
        for m in range(len(models))
        for s in range(N_SPLITS)
    ]
    ids = register_tasks(engine, record.id, tasks)
    sink = Sink(engine, record.id, {k: v[0] for k, v in ids.items()}, commit_every_s=3600, commit_every_rows=10**9)
    for task in tasks:
        m, s = task.block["model"], task.block["split"]
        test = splits[s][1]
        metrics: dict[str, list[float]] = {k: [] for k in ("mse", "mae", "r2", "pearson", "spearman")}
        columns = ("event", "model", "split", "kind", "rank", "feature", "score")
        importance: dict[str, list[Any]] = {k: [] for k in columns}
        for e in range(N_EVENTS):
            keep = np.isfinite(y[test, e])
            t, p = y[test, e][keep], pred[m, s, keep, e]
            metrics["mse"].append(mean_squared_error(t, p))
            metrics["mae"].append(mean_absolute_error(t, p))
            metrics["r2"].append(r2_score(t, p))
            metrics["pearson"].append(scipy.stats.pearsonr(t, p).statistic)
            metrics["spearman"].append(scipy.stats.spearmanr(t, p).statistic)
            order = np.argsort(-np.abs(coef[m, s, :, e]), kind="stable")[:TOP_K_STORED]
            for rank, f in enumerate(order, start=1):
                for col, value in (("event", e), ("model", m), ("split", s), ("kind", "coef"),
                                   ("rank", rank), ("feature", FEATURES[f]), ("score", coef[m, s, f, e])):
                    importance[col].append(value)
        rows: dict[str, Columns] = {
            "splice_score": {
                "event": list(range(N_EVENTS)), "model": [m] * N_EVENTS, "split": [s] * N_EVENTS,
                "n_train": [21] * N_EVENTS, "n_test": [int(np.isfinite(y[test, e]).sum()) for e in range(N_EVENTS)],
                **metrics, "params": ["{}"] * N_EVENTS, "fit_time_s": [0.001] * N_EVENTS,
            },
            "splice_importance": importance,
        }
        sink.add(TaskOutcome(key=task.key, status="done", started_at=0.0, finished_at=0.1, worker="w", rows=rows))
    sink.close()
    engine.dispose()
    return Fitted(name, labels, y, [t for _, t in splits], pred, coef)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Fitted, Fitted]:
    root = tmp_path_factory.mktemp("store")
    nested = build_study(
        root,
        "splice_nested",
        [
            ("ZScore+Ridge", "ZScore+Ridge", -1, {}, make_pipeline(StandardScaler(), Ridge(alpha=1.0))),
            ("MinMax+Lasso", "MinMax+Lasso", -1, {}, make_pipeline(MinMaxScaler(), Lasso(alpha=0.01))),
        ],
        {"experiment": {"name": EXPERIMENT, "selection": "nested"}},
    )
    outer = build_study(
        root,
        "splice_outer",
        [
            (f"ZScore+Ridge{{alpha={a}}}", "ZScore+Ridge", i, {"alpha": a}, make_pipeline(StandardScaler(), Ridge(a)))
            for i, a in enumerate([0.1, 30.0])
        ],
        {"experiment": {"name": "outer_run", "selection": "outer"}},
    )
    return root, nested, outer


def results_of(root: Path, study: str) -> StudyResults:
    return StudyResults(root / "regulas.db", root / "arrays.zarr", study)


def run(root: Path, study: str, reports: Any, out: Path) -> list[Path]:
    return run_reports(reports, db_path=root / "regulas.db", arrays_path=root / "arrays.zarr", study=study, out_dir=out)


def _compare(frame: pd.DataFrame, expected: pd.DataFrame, path: str) -> None:
    got = frame.set_index(["event", "pipeline"]).loc[expected.set_index(["event", "pipeline"]).index]
    np.testing.assert_allclose(got[f"{path}:test:mean"], expected["mean"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got[f"{path}:test:std"], expected["std"], rtol=1e-9, atol=1e-15)


# ------------------------------------------------------------------ ModelPerformanceReport


def test_mse_and_pearson_reports_equal_independent_computation(store: Store, tmp_path: Path) -> None:
    root, nested, _ = store
    results = results_of(root, nested.name)
    mse = ModelPerformanceReport(loss_fn=MSE).generate(results, {}, tmp_path).frame
    assert mse is not None and len(mse) == N_EVENTS * 2
    _compare(mse, nested.expected(mean_squared_error), MSE)
    assert (mse["n_splits"] == N_SPLITS).all() and (mse["selection"] == "nested").all()
    # rows follow the study's event axis, best (lowest loss) first within an event
    assert list(dict.fromkeys(mse["event"])) == EVENTS
    for _, group in mse.groupby("event", sort=False):
        assert group[f"{MSE}:test:mean"].is_monotonic_increasing

    pearson = ModelPerformanceReport(score_fn=PEARSON).generate(results, {}, tmp_path).frame
    assert pearson is not None
    _compare(pearson, nested.expected(scipy.stats.pearsonr), PEARSON)
    for _, group in pearson.groupby("event", sort=False):
        assert group[f"{PEARSON}:test:mean"].is_monotonic_decreasing  # a score: highest first


def test_custom_functions_are_computed_from_zarr(store: Store, tmp_path: Path) -> None:
    root, nested, _ = store
    results = results_of(root, nested.name)
    for kwargs, fn in (
        ({"loss_fn": "sklearn.metrics.median_absolute_error"}, median_absolute_error),
        ({"score_fn": "sklearn.metrics.explained_variance_score"}, explained_variance_score),
    ):
        report = ModelPerformanceReport(**kwargs)
        frame = report.generate(results, {}, tmp_path).frame
        assert frame is not None
        _compare(frame, nested.expected(fn), report.metric_path)
    # the Zarr path and the stored metrics agree on the same function
    from_zarr = per_split_from_arrays(results, mean_squared_error, MSE)
    stored = results.performance("mse")
    merged = from_zarr.merge(stored, on=["event", "pipeline", "split"], suffixes=("_zarr", "_db"))
    assert len(merged) == len(stored) == N_EVENTS * 2 * N_SPLITS
    np.testing.assert_allclose(merged["value_zarr"], merged["value_db"], rtol=1e-12)


# ------------------------------------------------------------------ FeatureRankingReport


def _expected_ranking(fitted: Fitted, m: int, e: int) -> pd.Series:
    """Mean over splits of |coef|, counting 0 for a feature outside a split's stored top-k."""
    total = np.zeros(N_FEATURES)
    for s in range(N_SPLITS):
        c = np.abs(fitted.coef[m, s, :, e])
        top = np.argsort(-c, kind="stable")[:TOP_K_STORED]
        total[top] += c[top]
    return pd.Series(total / N_SPLITS, index=FEATURES).sort_values(ascending=False, kind="stable")


def test_feature_ranking_equals_the_sql_view(store: Store) -> None:
    root, nested, _ = store
    results = results_of(root, nested.name)
    keys = ["event", "pipeline", "kind", "rank"]
    ours = results.feature_ranking().sort_values(keys).reset_index(drop=True)
    view = results.feature_ranking_view().sort_values(keys).reset_index(drop=True)
    assert len(ours) == len(view) > N_EVENTS * 2 * TOP_K_STORED
    pd.testing.assert_frame_equal(ours[keys[:-1] + ["feature"]], view[keys[:-1] + ["feature"]], check_dtype=False)
    np.testing.assert_allclose(ours["score"], view["score"], rtol=1e-12)
    subset = results.feature_ranking(EVENTS[2:5]).sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(subset, ours[ours["event"].isin(EVENTS[2:5])].reset_index(drop=True))
    assert results.models_with_importance() == nested.labels


def test_feature_ranking_takes_the_top_models_and_features(store: Store, tmp_path: Path) -> None:
    root, nested, _ = store
    results = results_of(root, nested.name)
    mse = ModelPerformanceReport(loss_fn=MSE).generate(results, {}, tmp_path).frame
    assert mse is not None
    expected_mse = nested.expected(mean_squared_error)
    column = f"{MSE}:test:mean"

    best = FeatureRankingReport(sort_by=column, top_k_models=1, top_k_features=3)
    frame = best.generate(results, {"MSE": mse}, tmp_path).frame
    assert frame is not None
    assert list(frame.columns) == ["event", "pipeline", "model_rank", column, "kind", "feature", "rank", "score"]
    assert list(dict.fromkeys(frame["event"])) == EVENTS
    for e, event in enumerate(EVENTS):
        rows = frame[frame["event"] == event]
        candidates = expected_mse[expected_mse["event"] == event].set_index("pipeline")["mean"]
        assert set(rows["pipeline"]) == {candidates.idxmin()}  # lowest test MSE
        assert list(rows["rank"]) == [1, 2, 3]
        reference = _expected_ranking(nested, nested.labels.index(candidates.idxmin()), e).head(3)
        assert list(rows["feature"]) == list(reference.index)
        np.testing.assert_allclose(rows["score"], reference.to_numpy(), rtol=1e-12)

    worst_first = FeatureRankingReport(sort_by=column, sort_ascending=False, top_k_models=2, top_k_features=1)
    frame = worst_first.generate(results, {"MSE": mse}, tmp_path).frame
    assert frame is not None
    for event in EVENTS:
        rows = frame[frame["event"] == event]
        assert list(rows["model_rank"]) == [1, 2]
        assert rows[column].is_monotonic_decreasing and rows[column].iloc[0] > rows[column].iloc[1]
        assert (rows["rank"] == 1).all()

    # no pipeline has permutation importances: none is chosen, the table is empty
    none = FeatureRankingReport(sort_by=column, kind="permutation").generate(results, {"MSE": mse}, tmp_path).frame
    assert none is not None and none.empty and "feature" in none.columns


# ------------------------------------------------------------------ run_reports: export, order, sample config

def _sample_reports_tree() -> DictConfig:
    """regulAS's sample report file (the one tests/test_splicing.py runs as written), in its experiment scope."""
    from test_splicing import REGULAS_REPORTS

    return OmegaConf.create({"random_state": 42, "experiment": yaml.safe_load(REGULAS_REPORTS)})


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, f"{path} is not a real PNG ({len(data)} bytes)"


def test_regulas_sample_report_config_checks_and_runs(store: Store, tmp_path: Path) -> None:
    root, nested, _ = store
    cfg = _sample_reports_tree()
    tree: Any = OmegaConf.to_container(cfg, resolve=True)
    reports = tree["experiment"]["reports"]
    assert reports["FeatureRanking"]["sort_by"] == f"{MSE}:test:mean"
    check_reports(reports)
    check_reports(cfg.experiment.reports)  # an unresolved DictConfig section works too

    files = run(root, nested.name, reports, tmp_path)
    names = sorted(p.relative_to(tmp_path).as_posix() for p in files)
    assert names == [
        "predicted_vs_true.png", "reports/FeatureRanking.csv", "reports/MSE.csv", "reports/PearsonR.csv",
        "score_distribution.png", "top_regulators.png",
    ]
    mse = pd.read_csv(tmp_path / "reports" / "MSE.csv", sep=";", comment="#")
    assert (tmp_path / "reports" / "MSE.csv").read_text().splitlines()[0].startswith("event;pipeline;")
    _compare(mse, nested.expected(mean_squared_error), MSE)
    ranking = pd.read_csv(tmp_path / "reports" / "FeatureRanking.csv", sep=";")
    # top_k_models 3 of 2 pipelines: both kept; top_k_features null: every stored feature
    stored = {
        (e, m, f)
        for m in range(2)
        for s in range(N_SPLITS)
        for e in range(N_EVENTS)
        for f in np.argsort(-np.abs(nested.coef[m, s, :, e]), kind="stable")[:TOP_K_STORED]
    }
    assert len(ranking) == len(stored)
    for png in ("score_distribution.png", "top_regulators.png", "predicted_vs_true.png"):
        _assert_png(tmp_path / png)


def test_reports_run_in_dependency_order_and_chain_outputs(store: Store, tmp_path: Path) -> None:
    root, nested, _ = store
    column = f"{MSE}:test:mean"
    reports = {  # listed consumers first: the order must come from _depends_on_
        "Export": {
            "_target_": "regulas.workloads.splicing.reports.ExportCSV",
            "_depends_on_": ["Ranking", "Listing"],
            "output_dir": str(tmp_path / "abs"),
        },
        "Listing": {"_target_": "regulas.workloads.splicing.reports.ExportCSV", "_depends_on_": ["Ranking"], "sep": "\t"},
        "Ranking": {"_target_": "regulas.workloads.splicing.reports.FeatureRankingReport", "_depends_on_": ["Loss"], "sort_by": column,
                    "top_k_models": 1, "top_k_features": 2},
        "Loss": {"_target_": "regulas.workloads.splicing.reports.ModelPerformanceReport", "loss_fn": MSE},
    }
    assert [p.name for p in plan_reports(reports)] == ["Loss", "Ranking", "Listing", "Export"]
    files = run(root, nested.name, reports, tmp_path / "out")
    listing = tmp_path / "out" / "reports" / "Ranking.csv"  # relative output_dir is under out_dir
    exported = tmp_path / "abs" / "Ranking.csv"  # an absolute one is used as is
    assert listing in files and exported in files and tmp_path / "abs" / "Listing.csv" in files
    assert listing.read_text().splitlines()[0] == "\t".join(
        ["event", "pipeline", "model_rank", column, "kind", "feature", "rank", "score"]
    )
    ranking = pd.read_csv(exported)
    assert len(ranking) == N_EVENTS * 2 and set(ranking["rank"]) == {1, 2}
    chained = pd.read_csv(tmp_path / "abs" / "Listing.csv")  # an export of an export: the files it wrote
    assert list(chained["report"]) == ["Ranking"] and Path(chained["path"][0]) == listing


def test_outer_selection_is_marked_optimistic(store: Store, tmp_path: Path) -> None:
    root, _, outer = store
    results = results_of(root, outer.name)
    assert results.selection == "outer" and "optimistic" in results.note
    reports = {
        "MSE": {"_target_": "regulAS.reports.ModelPerformanceReport", "loss_fn": MSE, "experiment_name": "outer_run"},
        "CSV": {"_target_": "regulAS.reports.ExportCSV", "_depends_on_": ["MSE"]},
    }
    run(root, outer.name, reports, tmp_path)
    lines = (tmp_path / "reports" / "MSE.csv").read_text().splitlines()
    assert lines[0].startswith("# selection 'outer'") and "optimistic" in lines[0]
    frame = pd.read_csv(tmp_path / "reports" / "MSE.csv", comment="#")
    assert (frame["selection"] == "outer").all()
    assert set(frame["pipeline"]) == set(outer.labels)
    _compare(frame, outer.expected(mean_squared_error), MSE)
    for png in ("score_distribution.png", "top_regulators.png", "predicted_vs_true.png"):
        _assert_png(tmp_path / png)
    nested = ModelPerformanceReport(loss_fn=MSE).generate(results_of(root, "splice_nested"), {}, tmp_path).frame
    assert nested is not None and nested.attrs["note"] == ""


# ------------------------------------------------------------------ bad input, before any work


def _perf(**extra: Any) -> dict[str, Any]:
    return {"_target_": "regulAS.reports.ModelPerformanceReport", "loss_fn": MSE, **extra}


def _ranking(**extra: Any) -> dict[str, Any]:
    target = "regulAS.reports.FeatureRankingReport"
    return {"_target_": target, "_depends_on_": ["MSE"], "sort_by": f"{MSE}:test:mean", **extra}


BAD_REPORTS: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "cycle",
        {"A": _ranking(_depends_on_=["B"]), "B": _ranking(_depends_on_=["A"]), "MSE": _perf()},
        "experiment.reports.A._depends_on_",
        "cycle: A -> B -> A",
    ),
    ("self dependency", {"MSE": _perf(_depends_on_=["MSE"])}, "experiment.reports.MSE._depends_on_", "itself"),
    (
        "unknown dependency",
        {"MSE": _perf(), "Rank": _ranking(_depends_on_=["MSE", "RMSE"])},
        "experiment.reports.Rank._depends_on_",
        "unknown report 'RMSE'; reports defined: MSE, Rank",
    ),
    (
        "sort_by names no dependency column",
        {"MSE": _perf(), "Rank": _ranking(sort_by="mean_squared_error:test:mean")},
        "experiment.reports.Rank.sort_by",
        f"produces column 'mean_squared_error:test:mean'; their sortable columns: {MSE}:test:mean, {MSE}:test:std",
    ),
    (
        "sort_by without dependency",
        {"Rank": _ranking(_depends_on_=[])},
        "experiment.reports.Rank.sort_by",
        "depends on no other report",
    ),
    (
        "unimportable loss_fn",
        {"MSE": _perf(loss_fn="sklearn.metrics.mean_squared_eror")},
        "experiment.reports.MSE.loss_fn",
        "cannot import 'sklearn.metrics.mean_squared_eror'",
    ),
    (
        "loss_fn not a function",
        {"MSE": _perf(loss_fn="sklearn.linear_model.Ridge")},
        "experiment.reports.MSE.loss_fn",
        "not a function",
    ),
    (
        "both loss_fn and score_fn",
        {"MSE": _perf(score_fn=PEARSON)},
        "experiment.reports.MSE.loss_fn",
        "exactly one of loss_fn",
    ),
    ("unknown kwarg", {"MSE": _perf(los_fn=MSE)}, "experiment.reports.MSE.los_fn", "has no argument 'los_fn'"),
    (
        "unknown _target_",
        {"MSE": {"_target_": "regulAS.reports.ModelPerformance", "loss_fn": MSE}},
        "experiment.reports.MSE._target_",
        "cannot import _target_ 'regulAS.reports.ModelPerformance'",
    ),
    (
        "_target_ not a report",
        {"MSE": {"_target_": "sklearn.linear_model.Ridge"}},
        "experiment.reports.MSE._target_",
        "is not a report class",
    ),
    (
        "top_k_models zero",
        {"MSE": _perf(), "Rank": _ranking(top_k_models=0)},
        "experiment.reports.Rank.top_k_models",
        "positive integer",
    ),
    (
        "missing sort_by",
        {"MSE": _perf(), "Rank": {"_target_": "regulAS.reports.FeatureRankingReport", "_depends_on_": ["MSE"]}},
        "experiment.reports.Rank.sort_by",
        "needs argument(s) sort_by",
    ),
    (
        "export without dependency",
        {"CSV": {"_target_": "regulAS.reports.ExportCSV"}},
        "experiment.reports.CSV._depends_on_",
        "name them in _depends_on_",
    ),
    (
        "bad separator",
        {"MSE": _perf(), "CSV": {"_target_": "regulAS.reports.ExportCSV", "_depends_on_": ["MSE"], "sep": ";;"}},
        "experiment.reports.CSV.sep",
        "one separator character",
    ),
]


@pytest.mark.parametrize(("case", "reports", "key", "message"), BAD_REPORTS, ids=[c[0] for c in BAD_REPORTS])
def test_bad_report_configs_are_refused_before_any_work(
    case: str, reports: dict[str, Any], key: str, message: str, store: Store, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as info:
        check_reports(reports, source="report.yaml")
    assert info.value.key == key and message in str(info.value), str(info.value)
    assert str(info.value).startswith(f"report.yaml: key '{key}': ")
    root, nested, _ = store
    with pytest.raises(ConfigError, match="report.yaml"):
        run_reports(reports, db_path=root / "regulas.db", arrays_path=root / "arrays.zarr", study=nested.name,
                    out_dir=tmp_path / "out", source="report.yaml")
    assert not (tmp_path / "out").exists()


def test_wrong_experiment_or_study_is_refused_before_writing(store: Store, tmp_path: Path) -> None:
    root, nested, _ = store
    expected = r"key 'experiment.reports.MSE.experiment_name'.*'other'.*study 'splice_nested'"
    with pytest.raises(ConfigError, match=expected):
        run(root, nested.name, {"MSE": _perf(experiment_name="other")}, tmp_path / "out")
    with pytest.raises(StoreError, match="no study named 'nope'.*studies there: splice_nested, splice_outer"):
        run(root, "nope", None, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # the study name itself is accepted as experiment_name, as is the experiment's `name`
    check = plan_reports({"MSE": _perf(experiment_name="splice_nested")})
    assert check[0].report.experiment_name == "splice_nested"


def test_no_reports_still_writes_the_default_figures(store: Store, tmp_path: Path) -> None:
    root, nested, _ = store
    check_reports(None)
    files = run(root, nested.name, None, tmp_path)
    assert [p.name for p in files] == ["score_distribution.png", "top_regulators.png", "predicted_vs_true.png"]
    for path in files:
        _assert_png(path)


def test_export_refuses_names_that_are_not_file_names() -> None:
    with pytest.raises(ConfigError, match="cannot be file names"):
        check_reports({"../x": _perf(), "CSV": {"_target_": "regulas.workloads.splicing.reports.ExportCSV", "_depends_on_": ["../x"]}})
    assert ExportCSV(output_dir="out", sep="\t").sep == "\t"


def test_inconsistent_or_missing_arrays_are_refused(store: Store, tmp_path: Path) -> None:
    import shutil

    import zarr

    root, nested, _ = store
    copy = tmp_path / "store"
    shutil.copytree(root, copy)
    y = zarr.open_array(store=str(copy / "arrays.zarr"), path=f"{nested.name}/Y", mode="r+")
    y.attrs["events"] = [f"other{i}" for i in range(N_EVENTS)]
    with pytest.raises(StoreError, match=r"events \['SE_0', 'SE_1'.*not on the event axis of Zarr array Y"):
        report = ModelPerformanceReport(loss_fn="sklearn.metrics.max_error")
        report.generate(results_of(copy, nested.name), {}, tmp_path)
    engine = open_all(copy / "regulas.db")
    empty = open_study(engine, name="empty", workload="splicing", config_yaml="{}", config_hash="e" * 64,
                       root_seed=0, package_versions={})
    with pytest.raises(StoreError, match="study 'empty' .* has no splicing models"):
        results_of(copy, "empty")
    write_study_rows(engine, empty.id, {"splice_model": _model_rows(["A"], ["A"], [-1], [{}])})
    engine.dispose()
    with pytest.raises(StoreError, match="study 'empty' .* has no finished results yet"):
        results_of(copy, "empty")
    shutil.rmtree(copy / "arrays.zarr")
    with pytest.raises(StoreError, match=r"Zarr array 'Y' of study 'splice_nested' not found"):
        run(copy, nested.name, None, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_pipelines_without_importances_do_not_count_toward_top_k(store: Store, tmp_path: Path) -> None:
    import shutil
    import sqlite3

    root, nested, _ = store
    copy = tmp_path / "store"
    shutil.copytree(root, copy)
    results = results_of(copy, nested.name)
    mse = ModelPerformanceReport(loss_fn=MSE).generate(results, {}, tmp_path).frame
    assert mse is not None
    best = mse.drop_duplicates("event").set_index("event")["pipeline"]  # rows are best first per event
    event = EVENTS[0]
    conn = sqlite3.connect(copy / "regulas.db")
    with conn:  # the best pipeline of one event has no importances (as an SVR with an RBF kernel)
        model = nested.labels.index(best[event])
        conn.execute("DELETE FROM splice_importance WHERE event = ? AND model = ?", (EVENTS.index(event), model))
    conn.close()
    report = FeatureRankingReport(sort_by=f"{MSE}:test:mean", top_k_models=1, top_k_features=1)
    frame = report.generate(results_of(copy, nested.name), {"MSE": mse}, tmp_path).frame
    assert frame is not None
    chosen = frame.set_index("event")["pipeline"]
    assert chosen[event] != best[event] and chosen[event] in nested.labels
    assert (chosen.drop(event) == best.drop(event)).all()


def test_top_regulators_only_for_events_predicted_better_than_the_mean(store: Store, tmp_path: Path) -> None:
    from regulas.workloads.splicing.reports.figures import mean_scores, regulator_events, top_regulators

    root, nested, _ = store
    results = results_of(root, nested.name)
    r2 = mean_scores(results, "sklearn.metrics.r2_score", score=True)
    # half the events predicted no better than their mean (R² exactly 0 included), whatever the fits gave
    worse = set(EVENTS[::2])
    r2 = r2.assign(mean=np.where(r2["event"].isin(worse), np.where(r2["event"] == EVENTS[0], 0.0, -0.5),
                                 np.abs(r2["mean"]) + 0.01))
    best, ranking = regulator_events(results, r2)
    assert not best.empty and set(best["event"]).isdisjoint(worse)
    assert set(best["event"]) == set(EVENTS) - worse  # every positive event with importances is there
    assert (best["mean"] > 0).all() and set(ranking["event"]) <= set(best["event"]) | worse
    assert list(best["mean"]) == sorted(best["mean"], reverse=True)
    # no event better than its mean: an explicit message figure, no heatmap of noise
    path = top_regulators(results, r2.assign(mean=-r2["mean"].abs()), tmp_path / "top_regulators.png")
    _assert_png(path)
    assert regulator_events(results, r2.assign(mean=-r2["mean"].abs()))[0].empty
