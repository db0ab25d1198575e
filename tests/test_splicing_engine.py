"""The per-event ML engine against independent scikit-learn / SciPy computations.

Every expected value here comes from scikit-learn fitted event by event (GridSearchCV,
clone/fit/predict, permutation_importance) or from SciPy, never from regulas itself.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from omegaconf import OmegaConf
from sklearn.base import clone
from sklearn.inspection import permutation_importance
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import GridSearchCV, KFold, ShuffleSplit
from threadpoolctl import threadpool_limits

from regulas.core.errors import ConfigError
from regulas.lmm.ridge import SVDRidge
from regulas.splicing import BlockInputError, PipelineSpec, evaluate_block, regression_metrics
from tests.conftest import DATASETS

TOL = 1e-8


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Small matrices: BLAS threads only fight over the shared cores (as in a worker)."""
    with threadpool_limits(1):
        yield


def pipeline(model: str, *, transformations: dict | None = None, grid: dict | None = None, **kwargs) -> PipelineSpec:
    name = model.rsplit(".", 1)[1]
    node = {"_target_": model, **kwargs}
    if grid:
        node["_varargs_"] = grid
    trans = {k.rsplit(".", 1)[1]: {"_target_": k, **v} for k, v in (transformations or {}).items()}
    return PipelineSpec.from_config({"transformations": trans or None, "model": {name: node}})


def data(n: int = 36, p: int = 60, e: int = 12, seed: int = 0, informative: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Correlated features (like expression), PSI-like targets in [0, 1] driven by a few features."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 8))
    X = np.exp(latent @ rng.normal(size=(8, p)) * 0.3 + rng.normal(size=(n, p)) * 0.5)
    W = np.zeros((p, e))
    W[rng.integers(0, p, size=(informative, e)), np.arange(e)] = rng.normal(size=(informative, e))
    Y = 1 / (1 + np.exp(-(X - X.mean(0)) / X.std(0) @ W * 0.5 - rng.normal(size=(n, e)) * 0.3))
    return X, Y


def split(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    return next(ShuffleSplit(n_splits=1, test_size=0.25, random_state=seed).split(np.zeros(n)))


def grid_search(spec: PipelineSpec, X, y, cv, scoring="neg_mean_squared_error") -> GridSearchCV:
    grid = {f"{spec.model_name}__{k}": v for k, v in spec.grid.items()}
    return GridSearchCV(spec.build(), grid, cv=cv, scoring=scoring).fit(X, y)


def check_nested(spec: PipelineSpec, X, Y, *, scoring="neg_mean_squared_error", inner=KFold(4), tol=TOL, path=None):  # noqa: B008
    """evaluate_block(nested) == GridSearchCV per event: chosen params, predictions, metrics, coef."""
    train, test = split(len(X))
    fits = evaluate_block(X, Y, train, test, spec, inner_cv=inner, scoring=scoring, random_state=7)
    if path:
        assert fits.path == path
    assert fits.pred.shape == (1, len(test), Y.shape[1])
    for e in range(Y.shape[1]):
        obs_tr, obs_te = train[~np.isnan(Y[train, e])], test[~np.isnan(Y[test, e])]
        gs = grid_search(spec, X[obs_tr], Y[obs_tr, e], inner, scoring)
        chosen = {k.split("__", 1)[1]: v for k, v in gs.best_params_.items()}
        assert fits.params[0][e] == chosen, e
        want = gs.predict(X[obs_te])
        got = fits.pred[0, np.isin(test, obs_te), e]
        np.testing.assert_allclose(got, want, rtol=0, atol=tol)
        assert np.isnan(fits.pred[0, ~np.isin(test, obs_te), e]).all()
        assert fits.metrics["mse"][0, e] == pytest.approx(mean_squared_error(Y[obs_te, e], want), rel=1e-6, abs=tol)
        model = gs.best_estimator_.steps[-1][1]
        if hasattr(model, "coef_"):
            coef = model.coef_.ravel()
            np.testing.assert_allclose(
                fits.importance["coef"][0, :, e], coef, rtol=0, atol=max(tol, 1e-6 * np.abs(coef).max())
            )
        else:
            assert "coef" not in fits.importance
    return fits


# -- batched ridge path ------------------------------------------------------------------------


def test_batched_ridge_nested_equals_gridsearchcv_with_standard_scaler():
    X, Y = data(p=80, e=15)  # more features than samples, as in splicing
    spec = pipeline(
        "sklearn.linear_model.Ridge",
        transformations={"sklearn.preprocessing.StandardScaler": {}},
        grid={"alpha": [0.3, 3.0, 30.0, 300.0]},
    )
    fits = check_nested(spec, X, Y, path="batched")
    # The data make different events prefer different alphas, so selection is really per event.
    assert len({f["alpha"] for f in fits.params[0]}) > 1


def test_batched_ridge_outer_equals_per_candidate_fits_with_minmax_scaler():
    X, Y = data(p=50, e=10, seed=3)
    spec = pipeline(
        "sklearn.linear_model.Ridge",
        transformations={"sklearn.preprocessing.MinMaxScaler": {}},
        grid={"alpha": [0.1, 1.0, 10.0]},
    )
    train, test = split(len(X))
    fits = evaluate_block(X, Y, train, test, spec, selection="outer", random_state=0)
    assert fits.path == "batched" and fits.pred.shape == (3, len(test), 10)
    for c, cand in enumerate(spec.candidates()):
        for e in range(10):
            model = spec.build(cand).fit(X[train], Y[train, e])
            np.testing.assert_allclose(fits.pred[c, :, e], model.predict(X[test]), rtol=0, atol=TOL)
            assert fits.params[c][e] == cand
            np.testing.assert_allclose(fits.importance["coef"][c, :, e], model.steps[-1][1].coef_, atol=1e-6)


@pytest.mark.parametrize("n, p", [(30, 80), (60, 12)], ids=["rank-deficient", "full-rank"])
def test_batched_linear_regression_equals_sklearn_lstsq(n, p):
    X, Y = data(n=n, p=p, e=8, seed=5)
    spec = pipeline("sklearn.linear_model.LinearRegression", transformations={"sklearn.preprocessing.StandardScaler": {}})
    assert spec.batched()
    train, test = split(n)
    fits = evaluate_block(X, Y, train, test, spec, random_state=0)
    assert fits.path == "batched"
    for e in range(8):
        model = spec.build().fit(X[train], Y[train, e])
        np.testing.assert_allclose(fits.pred[0, :, e], model.predict(X[test]), rtol=0, atol=TOL)


@pytest.mark.parametrize(
    "transformations, kwargs",
    [
        ({}, {"fit_intercept": False, "alpha": 2.0}),
        ({"sklearn.preprocessing.RobustScaler": {}, "sklearn.preprocessing.MaxAbsScaler": {}}, {"solver": "svd"}),
    ],
    ids=["no-scaler-no-intercept", "robust+maxabs-svd"],
)
def test_batched_ridge_variants_equal_sklearn(transformations, kwargs):
    X, Y = data(p=40, e=6, seed=2)
    spec = pipeline("sklearn.linear_model.Ridge", transformations=transformations, **kwargs)
    check_nested(spec, X, Y, path="batched")


@pytest.mark.parametrize("n, p", [(36, 80), (60, 15)], ids=["p>n", "n>p"])
def test_batched_ridgecv_leave_one_out_equals_sklearn(n, p):
    X, Y = data(n=n, p=p, e=10, seed=15)
    Y[::7, 2] = np.nan
    alphas = [0.1, 1.0, 10.0, 100.0, 1000.0]
    spec = pipeline("sklearn.linear_model.RidgeCV", transformations={"sklearn.preprocessing.StandardScaler": {}}, alphas=alphas)
    assert spec.batched()
    train, test = split(n)
    for selection in ("nested", "outer"):
        fits = evaluate_block(X, Y, train, test, spec, selection=selection, random_state=0)
        assert fits.path == "batched" and fits.pred.shape == (1, len(test), 10)
        for e in range(10):
            obs = train[~np.isnan(Y[train, e])]
            model = spec.build().fit(X[obs], Y[obs, e])
            assert fits.params[0][e] == {"alpha_": model.steps[-1][1].alpha_}
            seen = ~np.isnan(Y[test, e])
            np.testing.assert_allclose(fits.pred[0, seen, e], model.predict(X[test[seen]]), rtol=0, atol=TOL)
    assert len({f["alpha_"] for f in fits.params[0]}) > 1
    # RidgeCV with k-fold inside goes through the generic path and still reports its alpha_.
    kfold = pipeline("sklearn.linear_model.RidgeCV", alphas=alphas, cv=3)
    assert not kfold.batched()
    fits = evaluate_block(X, Y, train, test, kfold, random_state=0)
    model = kfold.build().fit(X[train], Y[train, 0])
    assert fits.path == "generic" and fits.params[0][0] == {"alpha_": model.steps[-1][1].alpha_}


def test_batched_nested_with_mae_scoring_and_shuffled_inner_cv():
    X, Y = data(p=50, e=10, seed=4)
    spec = pipeline("sklearn.linear_model.Ridge", transformations={"sklearn.preprocessing.StandardScaler": {}}, grid={"alpha": [0.5, 5.0, 50.0]})
    check_nested(spec, X, Y, scoring="neg_mean_absolute_error", inner=ShuffleSplit(3, test_size=0.3, random_state=11), path="batched")


def test_missing_psi_events_are_fitted_on_their_own_rows_in_both_paths():
    X, Y = data(n=40, p=30, e=9, seed=6)
    rng = np.random.default_rng(0)
    Y[rng.random(Y.shape) < 0.15] = np.nan
    Y[:, 0] = Y[:, 1]  # two events with identical rows share one group
    ridge = pipeline("sklearn.linear_model.Ridge", transformations={"sklearn.preprocessing.StandardScaler": {}}, grid={"alpha": [1.0, 10.0]})
    fits = check_nested(ridge, X, Y, inner=KFold(3), path="batched")
    train, test = split(len(X))
    np.testing.assert_array_equal(fits.n_train, (~np.isnan(Y[train])).sum(0))
    np.testing.assert_array_equal(fits.n_test, (~np.isnan(Y[test])).sum(0))
    enet = pipeline("sklearn.linear_model.ElasticNet", transformations={"sklearn.preprocessing.StandardScaler": {}}, l1_ratio=0.2, grid={"alpha": [0.01, 0.1]})
    check_nested(enet, X, Y, inner=KFold(3), path="generic")


def test_event_too_small_to_fit_and_constant_test_psi_give_nan_not_errors():
    X, Y = data(n=30, p=20, e=3, seed=8)
    train, test = split(30)
    Y[train[2:], 0] = np.nan  # two training samples: KFold(5) cannot split them
    Y[test, 1] = 0.5  # constant test PSI
    spec = pipeline("sklearn.linear_model.Ridge", grid={"alpha": [1.0, 2.0]})
    fits = evaluate_block(X, Y, train, test, spec, random_state=0)
    assert np.isnan(fits.pred[0, :, 0]).all() and np.isnan(fits.metrics["mse"][0, 0])
    assert np.isfinite(fits.metrics["mse"][0, 1])
    for name in ("r2", "pearson", "spearman"):
        assert np.isnan(fits.metrics[name][0, 1])
    assert np.isfinite(fits.metrics["r2"][0, 2])


def test_results_of_an_event_do_not_depend_on_its_block():
    X, Y = data(p=30, e=8, seed=9)
    Y[::5, 3] = np.nan
    train, test = split(len(X))
    spec = pipeline("sklearn.linear_model.Ridge", grid={"alpha": [0.1, 1.0, 10.0]})
    whole = evaluate_block(X, Y, train, test, spec, random_state=3)
    part = evaluate_block(X, Y[:, 2:5], train, test, spec, random_state=3)
    np.testing.assert_allclose(part.pred, whole.pred[:, :, 2:5], rtol=0, atol=1e-12)  # BLAS blocking aside
    assert part.params[0] == whole.params[0][2:5]


# -- generic path ------------------------------------------------------------------------------


def test_regulas_sample_elasticnet_through_generic_path_equals_gridsearchcv():
    X, Y = data(p=40, e=6, seed=10)
    spec = pipeline(
        "sklearn.linear_model.ElasticNet",
        transformations={"sklearn.preprocessing.StandardScaler": {}},
        l1_ratio=0.2,
        grid={"alpha": [0.1, 0.5, 1.0]},
    )
    assert not spec.batched()
    check_nested(spec, X, Y, path="generic")


def test_failing_candidates_score_nan_as_in_gridsearchcv_and_events_fail_alone():
    """KNN with more neighbours than an inner fold's samples: GridSearchCV's error_score=nan."""
    import warnings

    X, Y = data(n=12, p=5, e=4, seed=3)
    spec = pipeline("sklearn.neighbors.KNeighborsRegressor", grid={"n_neighbors": [2, 6]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GridSearchCV's FitFailedWarning
        check_nested(spec, X, Y, inner=KFold(3), path="generic")  # 6 > 4-6 inner training samples: NaN, 2 wins
    # an event whose every candidate fails (6 neighbours, 6 training samples minus a fold) is NaN on its own
    Y2 = Y.copy()
    train, test = split(len(X))
    Y2[train[:4], 0] = np.nan  # event 0 keeps 5 training samples: KFold(3) folds train on 3-4 < 6
    only6 = pipeline("sklearn.neighbors.KNeighborsRegressor", grid={"n_neighbors": [6, 7]})
    fits = evaluate_block(X, Y2, train, test, only6, inner_cv=KFold(3), random_state=1)
    assert np.isnan(fits.pred[0, :, 0]).all() and "error" in fits.params[0][0]
    assert np.isfinite(fits.pred[0, :, 1:]).all()  # the other events of the block are fitted


def test_regulas_sample_linear_svr_nested_and_outer_equal_sklearn():
    X, Y = data(p=30, e=5, seed=11)
    spec = pipeline(
        "sklearn.svm.SVR", transformations={"sklearn.preprocessing.MinMaxScaler": {}}, kernel="linear", grid={"C": [0.1, 0.5, 1.0]}
    )
    check_nested(spec, X, Y, path="generic")
    train, test = split(len(X))
    outer = evaluate_block(X, Y, train, test, spec, selection="outer", random_state=0)
    assert outer.pred.shape == (3, len(test), 5)
    for c, cand in enumerate(spec.candidates()):
        for e in range(5):
            want = clone(spec.build(cand)).fit(X[train], Y[train, e]).predict(X[test])
            np.testing.assert_allclose(outer.pred[c, :, e], want, rtol=0, atol=TOL)
            assert outer.metrics["r2"][c, e] == pytest.approx(r2_score(Y[test, e], want), abs=1e-10)


def test_ridge_with_r2_scoring_goes_generic_and_equals_gridsearchcv():
    X, Y = data(p=30, e=4, seed=12)
    spec = pipeline("sklearn.linear_model.Ridge", grid={"alpha": [0.1, 10.0]})
    check_nested(spec, X, Y, scoring="r2", path="generic")


def test_feature_importances_from_tree_model():
    X, Y = data(p=15, e=3, seed=13)
    spec = pipeline("sklearn.ensemble.RandomForestRegressor", n_estimators=5)
    train, test = split(len(X))
    fits = evaluate_block(X, Y, train, test, spec, random_state=2)
    model = spec.build(random_state=fits_seed(2)).fit(X[train], Y[train, 1])
    np.testing.assert_allclose(fits.importance["feature_importances"][0, :, 1], model.steps[-1][1].feature_importances_)
    np.testing.assert_allclose(fits.pred[0, :, 1], model.predict(X[test]))
    assert "coef" not in fits.importance


def fits_seed(random_state: int) -> int:
    from regulas.splicing.selection import seed32

    return seed32(random_state)


@pytest.mark.parametrize("model", ["sklearn.linear_model.Ridge", "sklearn.linear_model.Lasso"])
def test_permutation_importance_equals_sklearn(model):
    X, Y = data(p=12, e=3, seed=14)
    kwargs = {"alpha": 0.01} if model.endswith("Lasso") else {"alpha": 1.0}
    spec = pipeline(model, transformations={"sklearn.preprocessing.StandardScaler": {}}, **kwargs)
    train, test = split(len(X))
    fits = evaluate_block(X, Y, train, test, spec, permutation={"n_repeats": 3}, random_state=5)
    for e in range(3):
        fitted = spec.build().fit(X[train], Y[train, e])
        want = permutation_importance(
            fitted, X[test], Y[test, e], scoring="neg_mean_squared_error", n_repeats=3, random_state=fits_seed(5)
        )["importances_mean"]
        np.testing.assert_allclose(fits.importance["permutation"][0, :, e], want, rtol=1e-6, atol=1e-10)


# -- metrics -----------------------------------------------------------------------------------


def test_metrics_equal_sklearn_and_scipy_per_event_with_missing_values():
    rng = np.random.default_rng(20)
    y_true = rng.random((25, 7))
    y_pred = y_true + rng.normal(scale=0.2, size=y_true.shape)
    y_pred[:, 6] = np.round(y_pred[:, 6], 1)  # ties for Spearman
    y_true[rng.random(y_true.shape) < 0.2] = np.nan
    y_true[:, 4] = np.nan
    y_true[:2, 4] = [0.1, 0.3]  # two observed values: still computed
    y_true[1:, 5] = np.nan  # one observed value: NaN
    m = regression_metrics(y_true, y_pred)
    for e in range(7):
        obs = ~np.isnan(y_true[:, e])
        if obs.sum() < 2:
            assert all(np.isnan(m[k][e]) for k in m)
            continue
        t, p = y_true[obs, e], y_pred[obs, e]
        assert m["mse"][e] == pytest.approx(mean_squared_error(t, p), rel=1e-12)
        assert m["mae"][e] == pytest.approx(mean_absolute_error(t, p), rel=1e-12)
        assert m["r2"][e] == pytest.approx(r2_score(t, p), rel=1e-12)
        assert m["pearson"][e] == pytest.approx(scipy.stats.pearsonr(t, p)[0], rel=1e-10)
        assert m["spearman"][e] == pytest.approx(scipy.stats.spearmanr(t, p)[0], rel=1e-10)
    assert all(v.dtype == np.float64 for v in m.values())


def test_metrics_conventions_for_constant_values_and_nan_predictions():
    y_true = np.array([[0.2, 0.5, 0.1], [0.4, 0.5, 0.2], [0.9, 0.5, 0.3]])
    y_pred = np.array([[0.3, 0.4, 0.1], [0.3, 0.6, np.nan], [0.3, 0.5, 0.3]])
    m = regression_metrics(y_true, y_pred)
    assert np.isnan(m["pearson"][0]) and np.isnan(m["spearman"][0])  # constant prediction
    assert m["r2"][0] == pytest.approx(r2_score(y_true[:, 0], y_pred[:, 0]))
    assert np.isnan(m["r2"][1]) and np.isfinite(m["mse"][1])  # constant truth
    assert all(np.isnan(m[k][2]) for k in m)  # NaN prediction of an observed value


def test_ridge_factor_equals_closed_form_normal_equations():
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(20, 7)), rng.normal(size=(20, 4))
    f = SVDRidge(X, fit_intercept=True)
    W, b = f.coef(Y, 2.5)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    want = np.linalg.solve(Xc.T @ Xc + 2.5 * np.eye(7), Xc.T @ Yc)
    np.testing.assert_allclose(W, want, atol=1e-12)
    np.testing.assert_allclose(b, Y.mean(0) - X.mean(0) @ want, atol=1e-12)


# -- specs and bad input -----------------------------------------------------------------------


SAMPLE = {
    "transformations": {"StandardScaler": {"_target_": "sklearn.preprocessing.StandardScaler"}},
    "model": {"ElasticNet": {"_target_": "sklearn.linear_model.ElasticNet", "l1_ratio": 0.2, "_varargs_": {"alpha": [0.1, 0.5, 1.0]}}},
}


def test_spec_from_regulas_item_and_identity_includes_transformations():
    spec = PipelineSpec.from_config(SAMPLE, "experiment.pipelines[0]")
    assert spec.name == "StandardScaler+ElasticNet"
    assert spec.candidates() == [{"alpha": 0.1}, {"alpha": 0.5}, {"alpha": 1.0}]
    assert spec.identity == PipelineSpec.from_config(SAMPLE).identity
    assert PipelineSpec.from_config(OmegaConf.create(SAMPLE)) == spec
    other = {**SAMPLE, "transformations": {"StandardScaler": {"_target_": "sklearn.preprocessing.MinMaxScaler"}}}
    assert PipelineSpec.from_config(other).identity != spec.identity
    bare = {"model": SAMPLE["model"]}
    assert PipelineSpec.from_config(bare).identity != spec.identity
    described = spec.describe({"alpha": 0.5})
    assert [d["class"] for d in described] == ["sklearn.preprocessing.StandardScaler", "sklearn.linear_model.ElasticNet"]
    assert described[1]["params"]["alpha"] == 0.5 and described[1]["params"]["l1_ratio"] == 0.2
    assert described[1]["version"] is not None
    assert json.loads(json.dumps(described)) == described


@pytest.mark.parametrize(
    "model, transformations, batched",
    [
        ({"_target_": "sklearn.linear_model.Ridge", "_varargs_": {"alpha": [1, 2]}}, None, True),
        ({"_target_": "sklearn.linear_model.Ridge", "positive": True}, None, False),
        ({"_target_": "sklearn.linear_model.Ridge", "solver": "sag"}, None, False),
        ({"_target_": "sklearn.linear_model.Ridge", "_varargs_": {"alpha": [0, 1]}}, None, False),
        ({"_target_": "sklearn.linear_model.Ridge", "_varargs_": {"fit_intercept": [True, False]}}, None, False),
        ({"_target_": "sklearn.linear_model.Lasso"}, None, False),
        ({"_target_": "sklearn.linear_model.Ridge"}, {"PCA": {"_target_": "sklearn.decomposition.PCA"}}, False),
    ],
)
def test_batched_only_for_the_exact_ridge_family(model, transformations, batched):
    item = {"transformations": transformations, "model": {"M": model}}
    assert PipelineSpec.from_config(item).batched() is batched


def _bad(**changes):
    item = copy.deepcopy(SAMPLE)
    for path, value in changes.items():
        node = item
        *parents, last = path.split("/")
        for part in parents:
            node = node[part]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return item


@pytest.mark.parametrize(
    "item, key, message",
    [
        (_bad(**{"model/ElasticNet/_target_": "sklearn.linear_model.NoSuchModel"}), "pipelines[1].model.ElasticNet._target_", "cannot import"),
        (_bad(**{"model/ElasticNet/l1_ration": 0.3}), "pipelines[1].model.ElasticNet.l1_ration", "has no parameter 'l1_ration'"),
        (_bad(**{"model/ElasticNet/_varargs_": {"alpha": []}}), "pipelines[1].model.ElasticNet._varargs_.alpha", "non-empty list"),
        (_bad(**{"model/SVR": {"_target_": "sklearn.svm.SVR"}}), "pipelines[1].model", "exactly one model, found 2"),
        (_bad(**{"model": None}), "pipelines[1].model", "exactly one model, found 0"),
        (_bad(**{"model/ElasticNet/_varargs_": {"C": [1.0]}}), "pipelines[1].model.ElasticNet._varargs_.C", "has no parameter 'C'"),
        (_bad(**{"model/ElasticNet/_varargs_": {"alpha": [0.1, -1.0]}}), "pipelines[1].model.ElasticNet._varargs_.alpha", "invalid value"),
        (_bad(**{"transformations/StandardScaler/_varargs_": {"with_mean": [True, False]}}), "pipelines[1].transformations.StandardScaler._varargs_", "model only"),
        (_bad(**{"transformations/StandardScaler/_target_": "sklearn.linear_model.Ridge"}), "pipelines[1].transformations.StandardScaler._target_", "no transform method"),
        (_bad(**{"extra": 1}), "pipelines[1].extra", "unknown pipeline keys"),
        (_bad(**{"model/ElasticNet/l1_ratio": 2.0}), "pipelines[1].model.ElasticNet", "invalid value"),
        (_bad(**{"transformations/StandardScaler/with_mean": "yes"}), "pipelines[1].transformations.StandardScaler", "invalid value"),
    ],
    ids=[
        "unknown-target", "unknown-kwarg", "empty-grid", "two-models", "no-model", "grid-unknown-param", "grid-bad-value",
        "grid-on-transformation", "not-a-transformer", "unknown-key", "bad-fixed-value", "bad-transformation-value",
    ],
)
def test_bad_pipeline_configs_name_the_key(item, key, message):
    with pytest.raises(ConfigError) as err:
        PipelineSpec.from_config(item, "pipelines[1]", "exp.yaml")
    assert err.value.key == key
    assert message in str(err.value) and "exp.yaml" in str(err.value)


def test_bad_evaluate_arguments():
    X, Y = data(n=20, p=5, e=2)
    spec = pipeline("sklearn.linear_model.Ridge")
    train, test = np.arange(15), np.arange(15, 20)
    with pytest.raises(ConfigError, match="selection must be 'nested' or 'outer'"):
        evaluate_block(X, Y, train, test, spec, selection="best", random_state=0)
    with pytest.raises(ConfigError, match="unknown scoring 'mse'"):
        evaluate_block(X, Y, train, test, spec, scoring="mse", random_state=0)
    with pytest.raises(ConfigError, match="unknown keys \\['repeats'\\]"):
        evaluate_block(X, Y, train, test, spec, permutation={"repeats": 3}, random_state=0)
    with pytest.raises(ConfigError, match="inner_cv must be an integer >= 2"):
        evaluate_block(X, Y, train, test, spec, inner_cv=1, random_state=0)
    with pytest.raises(BlockInputError, match="X has 20 samples but Y has 19"):
        evaluate_block(X, Y[:19], train, test, spec, random_state=0)
    with pytest.raises(BlockInputError, match="test indices must lie in \\[0, 20\\)"):
        evaluate_block(X, Y, train, np.array([3, 20]), spec, random_state=0)


# -- real data ---------------------------------------------------------------------------------

GSE = DATASETS / "gse114922"


def test_real_gse114922_rbps_batched_ridge_equals_gridsearchcv():
    """40 samples x RBP expression (many zero columns), 12 real events."""
    rbps = pd.read_csv(DATASETS / "rbp" / "sebestyen2016_rbps.tsv", sep="\t")["symbol"]
    expr = pd.read_csv(GSE / "expression_fpkm.tsv.gz", sep="\t", index_col=0)
    psi = pd.read_csv(GSE / "psi.tsv.gz", sep="\t", index_col=0).iloc[:, :12]
    X = np.log2(expr.loc[psi.index, expr.columns.intersection(rbps)].to_numpy() + 1)
    assert X.shape[0] == 40 and X.shape[1] > 500
    spec = pipeline(
        "sklearn.linear_model.Ridge", transformations={"sklearn.preprocessing.StandardScaler": {}}, grid={"alpha": [1.0, 10.0, 100.0, 1000.0]}
    )
    check_nested(spec, X, psi.to_numpy(), path="batched")
