"""evaluate_block's shared route for events with missing PSI (StandardScaler → Ridge, nested)
against scikit-learn's GridSearchCV on each event's own rows."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.inspection import permutation_importance
from sklearn.model_selection import GridSearchCV, KFold
from threadpoolctl import threadpool_limits

from regulas.splicing import evaluate_block
from tests.test_splicing_engine import data, fits_seed, pipeline, split

ALPHAS = [0.01, 0.1, 1.0, 10.0, 100.0]
SCALER = {"sklearn.preprocessing.StandardScaler": {}}


@pytest.fixture(autouse=True)
def one_blas_thread():
    with threadpool_limits(1):
        yield


def gapped(n: int = 60, p: int = 8, e: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Y with its own missing rows per event (0-30 %); event 0 complete, event 1 nearly empty."""
    X, Y = data(n=n, p=p, e=e, seed=seed, informative=3)
    rng = np.random.default_rng(seed + 1)
    for j in range(2, e):
        Y[rng.random(n) < rng.uniform(0.0, 0.3), j] = np.nan
    Y[3:, 1] = np.nan  # at most 3 training rows: KFold(5) cannot split them
    return X, Y


def check_against_sklearn(spec, X, Y, train, test, inner, **kwargs):
    """Every event: chosen alpha, predictions (1e-8) and Ridge coef_ equal GridSearchCV on its rows."""
    fits = evaluate_block(X, Y, train, test, spec, inner_cv=inner, random_state=3, **kwargs)
    grid = {f"{spec.model_name}__alpha": spec.grid["alpha"]}
    fitted = {}
    for e in range(Y.shape[1]):
        tr, te = train[~np.isnan(Y[train, e])], test[~np.isnan(Y[test, e])]
        if len(tr) < 5:
            assert np.isnan(fits.pred[0, :, e]).all() and fits.params[0][e] == {}
            assert np.isnan(fits.importance["coef"][0, :, e]).all() and fits.fit_time_s[0, e] == 0
            continue
        gs = GridSearchCV(spec.build(), grid, cv=inner, scoring="neg_mean_squared_error").fit(X[tr], Y[tr, e])
        assert fits.params[0][e] == {"alpha": gs.best_params_[f"{spec.model_name}__alpha"]}, e
        np.testing.assert_allclose(fits.pred[0, np.isin(test, te), e], gs.predict(X[te]), rtol=0, atol=1e-8)
        assert np.isnan(fits.pred[0, ~np.isin(test, te), e]).all()
        coef = gs.best_estimator_.steps[-1][1].coef_
        np.testing.assert_allclose(fits.importance["coef"][0, :, e], coef, rtol=0, atol=1e-8 * max(1.0, np.abs(coef).max()))
        assert fits.fit_time_s[0, e] > 0
        fitted[e] = gs
    return fits, fitted


def test_events_with_gaps_take_the_shared_route_and_equal_gridsearchcv():
    X, Y = gapped()
    train, test = split(len(X))
    spec = pipeline("sklearn.linear_model.Ridge", transformations=SCALER, grid={"alpha": ALPHAS})
    fits, fitted = check_against_sklearn(spec, X, Y, train, test, KFold(5))
    gaps = (np.isnan(Y[train]).any(axis=0)).sum()
    assert gaps == Y.shape[1] - 1 and fits.path == "batched" and fits.missing_route == gaps
    # the gaps move every event's inner folds; the selection still differs between events
    assert len({f["alpha"] for f in fits.params[0] if f}) > 1
    assert len(fitted) == Y.shape[1] - 1


def test_integer_inner_cv_is_an_unshuffled_kfold_and_takes_the_route():
    X, Y = gapped(e=5, seed=2)
    train, test = split(len(X))
    spec = pipeline("sklearn.linear_model.Ridge", transformations=SCALER, grid={"alpha": ALPHAS})
    fits, _ = check_against_sklearn(spec, X, Y, train, test, 5)
    assert fits.missing_route == 4


@pytest.mark.parametrize(
    ("transformations", "inner", "reason"),
    [
        ({"sklearn.preprocessing.MinMaxScaler": {}}, KFold(5), "another scaler"),
        (SCALER, KFold(5, shuffle=True, random_state=4), "shuffled inner folds"),
        ({"sklearn.preprocessing.StandardScaler": {"with_mean": False}}, KFold(5), "scaler without centring"),
    ],
)
def test_pipelines_that_do_not_qualify_keep_the_per_group_path(transformations, inner, reason):
    X, Y = gapped(e=6, seed=5)
    train, test = split(len(X))
    spec = pipeline("sklearn.linear_model.Ridge", transformations=transformations, grid={"alpha": ALPHAS})
    fits, _ = check_against_sklearn(spec, X, Y, train, test, inner)
    assert fits.path == "batched" and fits.missing_route == 0, reason


def test_more_features_than_training_rows_keeps_the_per_group_path():
    X, Y = gapped(n=40, p=40, e=5, seed=9)  # 30 training rows
    train, test = split(len(X))
    spec = pipeline("sklearn.linear_model.Ridge", transformations=SCALER, grid={"alpha": ALPHAS})
    fits, _ = check_against_sklearn(spec, X, Y, train, test, KFold(5))
    assert fits.path == "batched" and fits.missing_route == 0


def test_too_few_training_rows_to_split_leave_every_event_unfitted():
    X, Y = gapped(n=8, p=3, e=3, seed=10)
    Y[0, :] = np.nan
    train, test = np.arange(4), np.arange(4, 8)  # 4 training rows: KFold(5) cannot split them
    spec = pipeline("sklearn.linear_model.Ridge", transformations=SCALER, grid={"alpha": ALPHAS})
    fits = evaluate_block(X, Y, train, test, spec, random_state=0)
    # nothing to share (no fold can be formed): the per-group path leaves them unfitted
    assert fits.missing_route == 0 and np.isnan(fits.pred).all() and fits.params[0] == [{}, {}, {}]


def test_single_alpha_and_no_intercept_keep_the_per_group_path():
    X, Y = gapped(e=4, seed=6)
    train, test = split(len(X))
    one = pipeline("sklearn.linear_model.Ridge", transformations=SCALER, grid={"alpha": [1.0]})
    assert evaluate_block(X, Y, train, test, one, random_state=0).missing_route == 0
    no_icpt = pipeline("sklearn.linear_model.Ridge", transformations=SCALER, fit_intercept=False, grid={"alpha": ALPHAS})
    assert evaluate_block(X, Y, train, test, no_icpt, random_state=0).missing_route == 0


def test_permutation_importance_on_the_route_equals_sklearn():
    X, Y = gapped(e=4, seed=7)
    train, test = split(len(X))
    spec = pipeline("sklearn.linear_model.Ridge", transformations=SCALER, grid={"alpha": ALPHAS})
    fits, fitted = check_against_sklearn(spec, X, Y, train, test, KFold(5), permutation={"n_repeats": 3})
    gapped_fitted = [e for e in fitted if np.isnan(Y[train, e]).any()]
    assert fits.missing_route == np.isnan(Y[train]).any(axis=0).sum() and len(gapped_fitted) >= 1
    for e, gs in fitted.items():
        te = test[~np.isnan(Y[test, e])]
        want = permutation_importance(
            gs.best_estimator_, X[te], Y[te, e], scoring="neg_mean_squared_error", n_repeats=3, random_state=fits_seed(3)
        )["importances_mean"]
        np.testing.assert_allclose(fits.importance["permutation"][0, :, e], want, rtol=1e-6, atol=1e-10)


def test_results_of_a_routed_event_do_not_depend_on_its_block():
    X, Y = gapped(seed=8)
    train, test = split(len(X))
    spec = pipeline("sklearn.linear_model.Ridge", transformations=SCALER, grid={"alpha": ALPHAS})
    whole = evaluate_block(X, Y, train, test, spec, random_state=3)
    part = evaluate_block(X, Y[:, 5:8], train, test, spec, random_state=3)
    assert part.missing_route == np.isnan(Y[train, 5:8]).any(axis=0).sum() > 0
    np.testing.assert_allclose(part.pred, whole.pred[:, :, 5:8], rtol=0, atol=1e-9)
    assert part.params[0] == whole.params[0][5:8]
