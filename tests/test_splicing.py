"""The splicing (regulAS) workload end to end: real files, real LocalCluster, real SQLite and Zarr.

Every stored metric and prediction is checked against an independent scikit-learn
computation on the stored outer splits (GridSearchCV for the nested search).
"""

from __future__ import annotations

import json
import os
import pickle
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
import zarr
from scipy.stats import pearsonr, spearmanr
from sklearn.inspection import permutation_importance
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import GridSearchCV, KFold, ShuffleSplit
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.svm import SVR
from sklearn.tree import DecisionTreeRegressor

from conftest import QUIET, SUMMARY, query, run_cli

N_SAMPLES, N_GENES, N_EVENTS = 48, 10, 24


def write_dataset(folder: Path, *, missing: bool = True, seed: int = 3) -> tuple[Path, Path]:
    """Expression (samples x genes) and PSI (samples x events) TSVs with a known signal."""
    rng = np.random.default_rng(seed)
    samples = [f"S{i:03d}" for i in range(N_SAMPLES)]
    genes = [f"RBP{j}" for j in range(N_GENES)]
    X = rng.gamma(2.0, 2.0, size=(N_SAMPLES, N_GENES))
    W = rng.standard_normal((N_GENES, N_EVENTS)) * (rng.random((N_GENES, N_EVENTS)) < 0.3)
    logit = (X - X.mean(0)) / X.std(0) @ W * 0.5 + 0.3 * rng.standard_normal((N_SAMPLES, N_EVENTS))
    psi = np.round(1 / (1 + np.exp(-logit)), 4)
    if missing:
        psi[rng.random(psi.shape) < 0.05] = np.nan
    folder.mkdir(parents=True, exist_ok=True)
    expr = folder / "expression.tsv"
    targets = folder / "psi.tsv.gz"
    pd.DataFrame(X, index=pd.Index(samples, name="sample"), columns=genes).to_csv(expr, sep="\t")
    pd.DataFrame(psi, index=pd.Index(samples, name="sample"), columns=[f"EV{k:03d}" for k in range(N_EVENTS)]).to_csv(
        targets, sep="\t"
    )
    return expr, targets


def study_config(folder: Path, expr: Path, psi: Path, *, selection: str = "nested", extra: str = "") -> Path:
    config = folder / "study.yaml"
    config.write_text(textwrap.dedent(f"""\
        seed: 7
        study: {{name: small, workload: splicing}}
        store: {{root: {folder / 'out'}}}
        experiment:
          name: small
          dataset:
            _target_: regulas.data.TableLoader
            features: {expr}
            targets: {psi}
          split:
            _target_: sklearn.model_selection.ShuffleSplit
            n_splits: 3
            test_size: 0.25
            random_state: 11
          pipelines:
            - transformations:
                ZScore: {{_target_: sklearn.preprocessing.StandardScaler}}
              model:
                Ridge:
                  _target_: sklearn.linear_model.Ridge
                  _varargs_: {{alpha: [0.5, 5.0, 50.0]}}
            - transformations:
                MinMax: {{_target_: sklearn.preprocessing.MinMaxScaler}}
              model:
                SupportVectorMachine:
                  _target_: sklearn.svm.SVR
                  kernel: linear
                  _varargs_: {{C: [0.1, 1.0]}}
          block_size: 10
          selection: {selection}
          inner_cv: 3
        """) + textwrap.indent(textwrap.dedent(extra), "  "))
    return config


def reference_pipeline(p: int) -> tuple[Pipeline, dict[str, list[float]]]:
    if p == 0:
        return Pipeline([("ZScore", StandardScaler()), ("Ridge", Ridge())]), {"Ridge__alpha": [0.5, 5.0, 50.0]}
    return Pipeline([("MinMax", MinMaxScaler()), ("SupportVectorMachine", SVR(kernel="linear"))]), {
        "SupportVectorMachine__C": [0.1, 1.0]
    }


def load_arrays(root: Path, study: str) -> dict[str, np.ndarray]:
    names = ("X", "Y", "train_index", "test_index", "pred", "importance")
    return {n: zarr.open_array(str(root / "arrays.zarr"), path=f"{study}/{n}", mode="r")[...] for n in names}


@pytest.fixture(scope="module")
def nested_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    folder = tmp_path_factory.mktemp("nested")
    expr, psi = write_dataset(folder)
    config = study_config(folder, expr, psi)
    proc = run_cli(["run", str(config), "cluster.n_workers=2", *QUIET])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return folder, proc


def test_nested_study_equals_gridsearchcv_on_the_stored_splits(nested_run: tuple[Path, object]) -> None:
    folder, _ = nested_run
    root = folder / "out"
    db = root / "regulas.db"
    a = load_arrays(root, "small")
    events = zarr.open_array(str(root / "arrays.zarr"), path="small/Y", mode="r").attrs["events"]
    # results name their event by its index on the Zarr event axis
    assert query(db, "SELECT event, name FROM splice_event ORDER BY event") == list(enumerate(events))
    assert query(db, "SELECT count(*) FROM splice_score") == [(N_EVENTS * 2 * 3,)]
    assert query(db, "SELECT model, label, candidate FROM splice_model ORDER BY model") == [
        (0, "ZScore+Ridge", -1), (1, "MinMax+SupportVectorMachine", -1)
    ]
    rows = {
        (e, m, s): (mse, mae, r2, r, rho, json.loads(params), n_test)
        for e, m, s, mse, mae, r2, r, rho, params, n_test in query(
            db, "SELECT e.name, r.model, r.split, r.mse, r.mae, r.r2, r.pearson, r.spearman, r.params, r.n_test "
            "FROM splice_score r JOIN splice_event e USING (study_id, event)"
        )
    }
    X, Y = a["X"], a["Y"]
    checked = 0
    for s in range(3):
        train = a["train_index"][s][a["train_index"][s] >= 0]
        test = a["test_index"][s][a["test_index"][s] >= 0]
        for j in (0, 5, 13, 23):
            for m in (0, 1):
                pipe, grid = reference_pipeline(m)
                tr = train[~np.isnan(Y[train, j])]
                te_mask = ~np.isnan(Y[test, j])
                te = test[te_mask]
                search = GridSearchCV(pipe, grid, cv=KFold(3), scoring="neg_mean_squared_error").fit(X[tr], Y[tr, j])
                pred = search.predict(X[te])
                stored = a["pred"][m, s, : len(test), j]
                np.testing.assert_allclose(stored[te_mask], pred, rtol=0, atol=1e-8)
                assert np.isnan(stored[~te_mask]).all()
                mse, mae, r2, r, rho, params, n_test = rows[(events[j], m, s)]
                assert n_test == len(te)
                assert {k.split("__")[1]: v for k, v in search.best_params_.items()} == params
                assert mse == pytest.approx(mean_squared_error(Y[te, j], pred), rel=1e-9, abs=1e-12)
                assert mae == pytest.approx(mean_absolute_error(Y[te, j], pred), rel=1e-9, abs=1e-12)
                assert r2 == pytest.approx(r2_score(Y[te, j], pred), rel=1e-9, abs=1e-12)
                assert r == pytest.approx(pearsonr(Y[te, j], pred)[0], rel=1e-9, abs=1e-12)
                assert rho == pytest.approx(spearmanr(Y[te, j], pred)[0], rel=1e-9, abs=1e-12)
                checked += 1
    assert checked == 24


def test_stored_outer_splits_are_the_configured_splitters(nested_run: tuple[Path, object]) -> None:
    folder, _ = nested_run
    a = load_arrays(folder / "out", "small")
    want = list(ShuffleSplit(n_splits=3, test_size=0.25, random_state=11).split(np.zeros(N_SAMPLES)))
    assert a["train_index"].shape[0] == a["test_index"].shape[0] == len(want)
    for s, (train, test) in enumerate(want):
        np.testing.assert_array_equal(a["train_index"][s][a["train_index"][s] >= 0], train)
        np.testing.assert_array_equal(a["test_index"][s][a["test_index"][s] >= 0], test)


def test_views_importances_and_reports(nested_run: tuple[Path, object]) -> None:
    folder, proc = nested_run
    db = folder / "out" / "regulas.db"
    assert query(db, "SELECT count(*) FROM performance") == [(N_EVENTS * 2 * 3 * 5,)]
    assert query(db, "SELECT DISTINCT metric FROM performance ORDER BY metric") == [
        ("mae",), ("mse",), ("pearson",), ("r2",), ("spearman",)
    ]
    # the ridge pipeline has coef_; top-k is min(20, n_features) per (event, model, split)
    assert query(db, "SELECT count(*) FROM splice_importance WHERE model = 0 AND kind = 'coef'") == [
        (N_EVENTS * 3 * N_GENES,)
    ]
    a = load_arrays(folder / "out", "small")
    top = query(
        db, "SELECT i.feature, i.score FROM splice_importance i JOIN splice_event e USING (study_id, event) "
        "WHERE e.name = 'EV000' AND i.model = 0 AND i.split = 0 AND i.rank = 1"
    )
    full = a["importance"][0, 0, :, 0]
    features = zarr.open_array(str(folder / "out" / "arrays.zarr"), path="small/X", mode="r").attrs["features"]
    assert top == [(features[int(np.argmax(np.abs(full)))], pytest.approx(full[np.argmax(np.abs(full))]))]
    ranking = query(db, "SELECT count(DISTINCT event), min(rank) FROM feature_ranking WHERE pipeline = 'ZScore+Ridge'")
    assert ranking == [(N_EVENTS, 1)]
    steps = json.loads(query(db, "SELECT steps FROM splice_model WHERE model = 1")[0][0])
    assert [s["class"] for s in steps] == ["sklearn.preprocessing.MinMaxScaler", "sklearn.svm.SVR"]
    assert steps[1]["params"]["kernel"] == "linear" and steps[1]["version"]
    pngs = sorted((folder / "out" / "reports" / "small").glob("*.png"))
    assert pngs and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
    assert "ZScore+Ridge" in proc.stdout  # the summary table


def test_report_command_reruns_reports_without_refitting(nested_run: tuple[Path, object]) -> None:
    folder, _ = nested_run
    db = folder / "out" / "regulas.db"
    tasks_before = query(db, "SELECT key, finished_at FROM task ORDER BY key")
    config = folder / "study.yaml"
    proc = run_cli(["report", str(config)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert query(db, "SELECT key, finished_at FROM task ORDER BY key") == tasks_before
    assert "report file(s)" in proc.stdout


def test_permutation_importance_and_the_seeds_actually_used(tmp_path: Path) -> None:
    """experiment.permutation stores every kind's full vector; stored get_params() rebuild the fits."""
    expr, psi = write_dataset(tmp_path, missing=False)
    config = tmp_path / "perm.yaml"
    config.write_text(textwrap.dedent(f"""\
        seed: 5
        study: {{name: perm, workload: splicing}}
        store: {{root: {tmp_path / 'out'}}}
        experiment:
          name: perm
          dataset: {{_target_: regulas.data.TableLoader, features: {expr}, targets: {psi}}}
          split: {{_target_: sklearn.model_selection.ShuffleSplit, n_splits: 2, test_size: 0.25, random_state: 11}}
          pipelines:
            - transformations: {{ZScore: {{_target_: sklearn.preprocessing.StandardScaler}}}}
              model: {{Ridge: {{_target_: sklearn.linear_model.Ridge, _varargs_: {{alpha: [0.5, 50.0]}}}}}}
            - model:
                Tree:
                  _target_: sklearn.tree.DecisionTreeRegressor
                  max_features: 0.5
                  _varargs_: {{max_depth: [2, 3]}}
          block_size: 8
          inner_cv: 3
          permutation: {{n_repeats: 3}}
        """))
    proc = run_cli(["run", str(config), "cluster.n_workers=2", *QUIET])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    db = tmp_path / "out" / "regulas.db"
    store = str(tmp_path / "out" / "arrays.zarr")
    a = load_arrays(tmp_path / "out", "perm")
    perm = zarr.open_array(store, path="perm/permutation_importance", mode="r")[...]
    events = zarr.open_array(store, path="perm/Y", mode="r").attrs["events"]
    steps = [json.loads(r[0]) for r in query(db, "SELECT steps FROM splice_model ORDER BY model")]
    # the seeds derived for the steps left at random_state=None (Ridge has one too), one per pipeline
    seeds = [steps[0][1]["params"]["random_state"], steps[1][0]["params"]["random_state"]]
    assert all(isinstance(v, int) for v in seeds) and seeds[0] != seeds[1]
    X, Y = a["X"], a["Y"]
    tree = DecisionTreeRegressor(max_features=0.5, random_state=seeds[1])
    references = [reference_pipeline(0), (Pipeline([("Tree", tree)]), {"Tree__max_depth": [2, 3]})]
    for s in range(2):
        train, test = a["train_index"][s][a["train_index"][s] >= 0], a["test_index"][s][a["test_index"][s] >= 0]
        for m, (pipe, grid) in enumerate(references):
            if m == 0:
                grid = {"Ridge__alpha": [0.5, 50.0]}
            for j in (0, 7, 8, 23):  # events of the first, second and last block
                best = GridSearchCV(pipe, grid, cv=KFold(3), scoring="neg_mean_squared_error").fit(X[train], Y[train, j])
                ((mse,),) = query(db, "SELECT r.mse FROM splice_score r JOIN splice_event e USING (study_id, event) "
                                  "WHERE e.name = ? AND r.model = ? AND r.split = ?",
                                  (events[j], m, s))
                assert mse == pytest.approx(mean_squared_error(Y[test, j], best.predict(X[test])), rel=1e-9, abs=1e-12)
                want = permutation_importance(best.best_estimator_, X[test], Y[test, j], scoring="neg_mean_squared_error",
                                              n_repeats=3, random_state=seeds[m])["importances_mean"]
                assert np.abs(want).max() > 0
                np.testing.assert_allclose(perm[m, s, :, j], want, rtol=1e-7, atol=1e-10)
                own = best.best_estimator_.steps[-1][1]
                own = own.coef_ if m == 0 else own.feature_importances_
                np.testing.assert_allclose(a["importance"][m, s, :, j], own, rtol=1e-7, atol=1e-10)
    kinds = dict(query(db, "SELECT model, group_concat(DISTINCT kind) FROM splice_importance GROUP BY model"))
    assert sorted(kinds[0].split(",")) == ["coef", "permutation"]
    assert sorted(kinds[1].split(",")) == ["feature_importances", "permutation"]


def test_outer_selection_scores_every_grid_point(tmp_path: Path) -> None:
    expr, psi = write_dataset(tmp_path, missing=False)
    config = study_config(tmp_path, expr, psi, selection="outer")
    proc = run_cli(["run", str(config), "cluster.n_workers=1", *QUIET])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    db = tmp_path / "out" / "regulas.db"
    labels = [r[0] for r in query(db, "SELECT label FROM splice_model ORDER BY model")]
    assert labels == [
        'ZScore+Ridge {"alpha": 0.5}', 'ZScore+Ridge {"alpha": 5.0}', 'ZScore+Ridge {"alpha": 50.0}',
        'MinMax+SupportVectorMachine {"C": 0.1}', 'MinMax+SupportVectorMachine {"C": 1.0}',
    ]
    assert query(db, "SELECT count(*) FROM splice_score") == [(N_EVENTS * 5 * 3,)]
    a = load_arrays(tmp_path / "out", "small")
    train = a["train_index"][1][a["train_index"][1] >= 0]
    test = a["test_index"][1][a["test_index"][1] >= 0]
    ref = Pipeline([("s", MinMaxScaler()), ("m", SVR(kernel="linear", C=0.1))]).fit(a["X"][train], a["Y"][train, 7])
    np.testing.assert_allclose(a["pred"][3, 1, : len(test), 7], ref.predict(a["X"][test]), rtol=0, atol=1e-8)
    assert "optimistic" in proc.stdout


REGULAS_EXPERIMENT = """\
name: lr_svr_tmr

dataset:
  _target_: regulAS.utils.PickleLoader
  name: RNA-Seq
  meta: some fancy description
  path_to_file: ???
  objective: psi

split:
  _target_: sklearn.model_selection.ShuffleSplit
  n_splits: 5
  test_size: 0.2
  train_size: null
  random_state: ${random_state}

pipelines:
  - transformations:
      ZScore:
        _target_: sklearn.preprocessing.StandardScaler
    model:
      LinearRegression:
        _target_: sklearn.linear_model.ElasticNet
        l1_ratio: 0.2
        _varargs_:
          alpha: [0.1, 0.5, 1.0]

  - transformations:
      MinMax:
        _target_: sklearn.preprocessing.MinMaxScaler
    model:
      SupportVectorMachine:
        _target_: sklearn.svm.SVR
        kernel: linear
        _varargs_:
          C: [0.1, 0.5, 1.0]

reports: null
"""

REGULAS_REPORTS = """\
name: lr_svr_tmr

dataset: null
split: null
pipelines: null

reports:
  MSE:
    _target_: regulAS.reports.ModelPerformanceReport
    experiment_name: ${experiment.name}
    loss_fn: sklearn.metrics.mean_squared_error

  PearsonR:
    _target_: regulAS.reports.ModelPerformanceReport
    experiment_name: ${experiment.name}
    score_fn: scipy.stats.pearsonr

  FeatureRanking:
    _depends_on_: ["MSE"]
    _target_: regulAS.reports.FeatureRankingReport
    experiment_name: ${experiment.name}
    sort_by: "${experiment.reports.MSE.loss_fn}:test:mean"
    sort_ascending: true
    top_k_models: 3
    top_k_features: null

  PerformanceCSV:
    _depends_on_: ["MSE", "PearsonR"]
    _target_: regulAS.reports.ExportCSV
    output_dir: reports
    sep: ";"

  RankingCSV:
    _depends_on_: ["FeatureRanking"]
    _target_: regulAS.reports.ExportCSV
    output_dir: reports
    sep: ";"
"""


def regulas_pickle(path: Path, seed: int) -> pd.DataFrame:
    """A pickle in regulAS's format: 40 samples x 6 genes, then the event's PSI as column ``psi``."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.standard_normal((40, 6)), columns=[f"G{i}" for i in range(6)],
                     index=[f"s{i}" for i in range(40)])
    frame = X.assign(psi=1 / (1 + np.exp(-(X["G0"] - X[f"G{seed % 5 + 1}"] + 0.2 * rng.standard_normal(40)))))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        pickle.dump(frame, fh)
    return frame


def regulas_outer_mse(frame: pd.DataFrame) -> dict[tuple[str, str, int], float]:
    """Test MSE of every grid point of REGULAS_EXPERIMENT's pipelines on every outer split, by
    scikit-learn alone: (pipeline, params as stored, split) -> MSE."""
    from sklearn.linear_model import ElasticNet

    X, y = frame.drop(columns="psi").to_numpy(), frame["psi"].to_numpy()
    grids = {
        "ZScore+LinearRegression": [({"alpha": a}, Pipeline([("z", StandardScaler()), ("m", ElasticNet(l1_ratio=0.2, alpha=a))]))
                                    for a in (0.1, 0.5, 1.0)],
        "MinMax+SupportVectorMachine": [({"C": c}, Pipeline([("s", MinMaxScaler()), ("m", SVR(kernel="linear", C=c))]))
                                        for c in (0.1, 0.5, 1.0)],
    }
    out = {}
    for s, (train, test) in enumerate(ShuffleSplit(n_splits=5, test_size=0.2, random_state=42).split(X)):
        for pipeline, points in grids.items():
            for params, model in points:
                pred = model.fit(X[train], y[train]).predict(X[test])
                out[(pipeline, json.dumps(params, sort_keys=True), s)] = mean_squared_error(y[test], pred)
    return out


def test_regulas_files_run_with_regulas_semantics_one_study_per_data_set(tmp_path: Path) -> None:
    """regulAS's sample experiment as written: regulAS's selection (every grid point scored on the
    outer splits) equal to scikit-learn; two pickles into one store are two studies of one
    experiment name (a rerun resumes its own); regulAS's report file covers both."""
    from regulas.study import load_study
    from regulas.workloads.splicing.workload import OUTER_NOTICE

    frames = {name: regulas_pickle(tmp_path / "data" / f"{name}.pkl", seed) for name, seed in (("a", 0), ("b", 1))}
    (tmp_path / "experiments").mkdir()
    experiment = tmp_path / "experiments" / "experiment_tasks.yaml"
    experiment.write_text(REGULAS_EXPERIMENT)
    reports = tmp_path / "experiments" / "report_tasks.yaml"
    reports.write_text(REGULAS_REPORTS)
    store = f"store.root={tmp_path / 'out'}"
    db = tmp_path / "out" / "regulas.db"

    def data(name: str) -> str:
        return f"dataset.path_to_file={tmp_path / 'data' / f'{name}.pkl'}"

    # regulAS's selection unless the config says otherwise (regulAS's spelling or regulas's)
    assert load_study(experiment, [data("a"), "random_state=42"]).workload.config.selection == "outer"
    for override in ("selection=nested", "experiment.selection=nested"):
        assert load_study(experiment, [data("a"), "random_state=42", override]).workload.config.selection == "nested"

    runs = {}
    for name in ("a", "b", "a"):
        proc = run_cli(["run", str(experiment), data(name), "random_state=42", store, "cluster.n_workers=1", *QUIET],
                       cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stderr.count(OUTER_NOTICE) == 1, proc.stderr
        (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("study 'lr_svr_tmr-")]
        runs.setdefault(name, []).append(line)
    studies = dict(query(db, "SELECT name, status FROM study ORDER BY id"))
    assert len(studies) == 2 and set(studies.values()) == {"done"}
    names = {name: lines[0].split("'")[1] for name, lines in runs.items()}
    assert list(studies) == [names["a"], names["b"]] and all(n.startswith("lr_svr_tmr-") for n in studies)
    assert "10 were already done, 0 done now" in runs["a"][1]  # the rerun on the first pickle resumed its study

    # every grid point of every pipeline on every outer split: regulAS's numbers, by scikit-learn alone
    rows = query(db, "SELECT s.name, m.pipeline, m.params, r.split, r.mse FROM splice_score r "
                     "JOIN splice_model m USING (study_id, model) JOIN study s ON s.id = r.study_id")
    assert len(rows) == 2 * 6 * 5  # studies x grid points x splits
    expected = {name: regulas_outer_mse(frame) for name, frame in frames.items()}
    for study, pipeline, params, split, mse in rows:
        want = expected["a" if study == names["a"] else "b"][(pipeline, params, split)]
        assert mse == pytest.approx(want, rel=1e-10, abs=1e-14)
    for name in ("a", "b"):  # the best grid point of each pipeline by test mean, as regulAS picks it
        means = pd.Series(expected[name]).groupby(level=[0, 1]).mean()
        stored = pd.DataFrame([r for r in rows if r[0] == names[name]], columns=["s", "pipeline", "params", "split", "mse"])
        got = stored.groupby(["pipeline", "params"])["mse"].mean()
        assert {p: got[p].idxmin() for p in got.index.levels[0]} == {p: means[p].idxmin() for p in means.index.levels[0]}

    # regulAS's report file: every study of the experiment name, each pipeline on its own predictions
    rep = run_cli(["run", str(reports), store], cwd=tmp_path)  # as written: the report file has no random_state
    assert rep.returncode == 0, rep.stdout + rep.stderr
    folder = tmp_path / "out" / "reports" / "lr_svr_tmr" / "reports"
    assert sorted(p.name for p in folder.glob("*.csv")) == ["FeatureRanking.csv", "MSE.csv", "PearsonR.csv"]
    assert "regulAS's selection" in (folder / "MSE.csv").read_text().splitlines()[0]
    mse = pd.read_csv(folder / "MSE.csv", sep=";", comment="#")
    column = "sklearn.metrics.mean_squared_error:test:mean"
    assert len(mse) == 2 * 6 and set(mse["study"]) == set(studies) and set(mse["selection"]) == {"outer"}
    for study, label, value in zip(mse["study"], mse["pipeline"], mse[column]):
        pipeline, _, params = label.partition(" ")
        name = "a" if study == names["a"] else "b"
        assert value == pytest.approx(np.mean([expected[name][(pipeline, params, s)] for s in range(5)]), rel=1e-10)
    assert list(mse.columns[:4]) == ["study", "event", "pipeline", column]
    ranking = pd.read_csv(folder / "FeatureRanking.csv", sep=";", comment="#")
    assert set(ranking["study"]) == set(studies) and set(ranking["feature"]) <= {f"G{i}" for i in range(6)}
    assert (tmp_path / "out" / "reports" / "lr_svr_tmr" / "score_distribution.png").stat().st_size > 10_000
    page = (tmp_path / "out" / "reports" / "lr_svr_tmr" / "index.html").read_text()
    assert "<h1>lr_svr_tmr</h1>" in page and all(n in page for n in studies) and "regulAS&#x27;s selection" in page


def test_study_named_after_its_data_and_config(tmp_path: Path) -> None:
    """study.name_from_data: the name covers the data and the result config, not where the
    store is; the stored config carries it; a workload without a data fingerprint refuses it."""
    from regulas.core.errors import ConfigError
    from regulas.study import load_study

    expr, psi = write_dataset(tmp_path / "data")
    config = study_config(tmp_path, expr, psi)

    def name(*overrides: str) -> str:
        return load_study(config, ["study.name_from_data=true", *overrides]).named_by_data().study.name

    first = name()
    assert first.startswith("small-") and len(first) == len("small-") + 10
    assert name("store.root=" + str(tmp_path / "elsewhere"), "cluster.n_workers=1") == first  # where and how: not who
    assert name("experiment.selection=outer") != first and name("seed=8") != first
    other_expr, other_psi = write_dataset(tmp_path / "other", seed=4)
    assert name(f"experiment.dataset.features={other_expr}", f"experiment.dataset.targets={other_psi}") != first
    spec = load_study(config, ["study.name_from_data=true"]).named_by_data()
    assert spec.named_by_data() is spec  # named once
    assert yaml.safe_load(spec.yaml)["study"]["name"] == first and spec.workload.config.name == "small"
    assert load_study(config).named_by_data().study.name == "small"  # a native study keeps its name
    with pytest.raises(ConfigError, match="study.name_from_data.*no data fingerprint"):
        load_study(Path(__file__).resolve().parents[1] / "configs" / "demo.yaml",
                   ["study.name_from_data=true"]).named_by_data()


def run_shipped(name: str, root: Path, record_property: Callable[[str, object], None] | None = None) -> Path:
    """Run a config of configs/ into ``root``; return its database.

    With ``record_property``, the run's wall time goes to the end of the pytest output.
    """
    config = Path(__file__).resolve().parents[1] / "configs" / name
    t0 = time.perf_counter()
    proc = run_cli(["run", str(config), f"store.root={root}", *QUIET], timeout=1500)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout + proc.stderr
    print(proc.stdout.strip().splitlines()[-8:])  # the summary, kept by pytest -rA for the CI log
    if record_property is not None:
        study = next(line for line in proc.stdout.splitlines() if line.startswith("study ") and "result rows" in line)
        record_property(SUMMARY, f"regulas run configs/{name}: {wall:.0f} s wall on {os.cpu_count()} cores "
                                 f"(load average {os.getloadavg()[0]:.1f}); {study}")
    return root / "regulas.db"


def test_gse114922_all_events_end_to_end(tmp_path: Path, record_property: Callable[[str, object], None]) -> None:
    db = run_shipped("splicing_gse114922.yaml", tmp_path, record_property)
    n_models = query(db, "SELECT count(*) FROM splice_model")[0][0]
    kept = zarr.open_array(str(tmp_path / "arrays.zarr"), path="gse114922/Y", mode="r").attrs["events"]
    assert len(kept) >= 9900  # all 9,990 events but those the config's filters drop (constant PSI)
    assert query(db, "SELECT count(DISTINCT event) FROM splice_score") == [(len(kept),)]
    assert [name for (name,) in query(db, "SELECT name FROM splice_event ORDER BY event")] == kept
    assert query(db, "SELECT count(*) FROM splice_score") == [(len(kept) * n_models * 5,)]
    assert query(db, "SELECT count(*) FROM task WHERE status != 'done'") == [(0,)]


def test_shalek2013_missing_psi_kept_per_event(tmp_path: Path) -> None:
    db = run_shipped("splicing_shalek2013.yaml", tmp_path)
    a = load_arrays(tmp_path, "shalek2013")
    Y, X = a["Y"], a["X"]
    assert np.isnan(Y).mean() > 0.2  # missing PSI kept, not imputed
    assert ((~np.isnan(Y)).sum(axis=0) >= 10).all()  # min_samples_per_event
    events = zarr.open_array(str(tmp_path / "arrays.zarr"), path="shalek2013/Y", mode="r").attrs["events"]
    # each event is fitted and scored on its own measured cells: check by hand the events with
    # the most gaps among those the 3-fold inner search can fit and the test part can score
    s = 0
    train = a["train_index"][s][a["train_index"][s] >= 0]
    test = a["test_index"][s][a["test_index"][s] >= 0]
    observed = ~np.isnan(Y)
    fittable = (observed[train].sum(axis=0) >= 3) & (observed[test].sum(axis=0) >= 2)
    gaps = np.where(fittable, (~observed).sum(axis=0), -1)
    picked = np.argsort(-gaps, kind="stable")[:3]
    assert fittable[picked].all() and (gaps[picked] > 0).all()
    for j in picked:
        tr, te = train[observed[train, j]], test[observed[test, j]]
        ((n_train, n_test, mse),) = query(
            db, "SELECT r.n_train, r.n_test, r.mse FROM splice_score r JOIN splice_event e USING (study_id, event) "
            "WHERE e.name = ? AND r.model = 0 AND r.split = 0", (events[j],)
        )
        assert (n_train, n_test) == (len(tr), len(te))
        search = GridSearchCV(
            Pipeline([("z", StandardScaler()), ("r", Ridge())]), {"r__alpha": [1.0, 10.0, 100.0]},
            cv=KFold(3), scoring="neg_mean_squared_error",
        ).fit(X[tr], Y[tr, j])
        assert mse == pytest.approx(mean_squared_error(Y[te, j], search.predict(X[te])), rel=1e-9, abs=1e-12)
    n_models = query(db, "SELECT count(*) FROM splice_model")[0][0]
    assert query(db, "SELECT count(*) FROM splice_score") == [(len(events) * n_models * 4,)]


def test_changed_input_file_stops_the_rerun_until_restart(tmp_path: Path) -> None:
    """Edit one PSI value of a finished study's input: the rerun (same config, so same config
    hash) is refused before it writes anything; ``--restart`` discards the old results and the
    study then equals a clean run on the new data."""
    expr, psi = write_dataset(tmp_path)
    config = study_config(tmp_path, expr, psi, selection="outer")
    args = ["run", str(config), "cluster.n_workers=2", *QUIET]
    first = run_cli(args)
    assert first.returncode == 0, first.stdout + first.stderr
    root = tmp_path / "out"
    db = root / "regulas.db"
    pinned = query(db, "SELECT kind, path FROM study_input ORDER BY kind, path")
    assert pinned == [("data", ""), ("file", str(expr)), ("file", str(psi))]

    os.utime(expr)  # touched, same content: trusted after hashing, the rerun resumes
    touched = run_cli(args)
    assert touched.returncode == 0 and "18 already done, 0 to run" in touched.stderr, touched.stderr

    table = pd.read_csv(psi, sep="\t", index_col=0)
    table.iloc[0, 0] = 0.1234 if table.iloc[0, 0] != 0.1234 else 0.4321
    table.to_csv(psi, sep="\t")
    before_db = query(db, "SELECT key, status, attempts FROM task ORDER BY key")
    before_runs = query(db, "SELECT runs, status FROM study")
    y_path = root / "arrays.zarr" / "small" / "Y"
    before_y = {p: p.stat().st_mtime_ns for p in y_path.rglob("*") if p.is_file()}
    refused = run_cli(args)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    (line,) = [ln for ln in refused.stderr.splitlines() if ln.startswith("regulas: error:")]
    assert str(psi) in line and str(expr) not in line and "bytes" in line and "modified" in line
    assert "study.name or store.root" in line and f"regulas run {config} --restart" in line
    # nothing was written: the same tasks and study row, Zarr untouched
    assert query(db, "SELECT key, status, attempts FROM task ORDER BY key") == before_db
    assert query(db, "SELECT runs, status FROM study") == before_runs
    assert {p: p.stat().st_mtime_ns for p in y_path.rglob("*") if p.is_file()} == before_y

    restarted = run_cli([*args, "--restart"])
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert "its results are discarded (--restart)" in restarted.stderr
    clean = run_cli([*args, f"store.root={tmp_path / 'clean'}"])
    assert clean.returncode == 0, clean.stdout + clean.stderr
    a, b = load_arrays(root, "small"), load_arrays(tmp_path / "clean", "small")
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert query(db, "SELECT runs, status FROM study") == [(1, "done")]
    keys = "SELECT key, status FROM task ORDER BY key"
    assert query(db, keys) == query(tmp_path / "clean" / "regulas.db", keys)
    scores = "SELECT event, model, split, mse FROM splice_score ORDER BY event, model, split"
    got, want = (np.array(query(d, scores), dtype=float) for d in (db, tmp_path / "clean" / "regulas.db"))
    assert got.shape == want.shape == (N_EVENTS * 5 * 3, 4)
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)
