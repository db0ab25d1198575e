"""Fully observed events from the split's shared factorisations (StandardScaler → Ridge,
nested): equal to scikit-learn's GridSearchCV per event, and the same whether the
factorisations are computed by the block or handed in (as the engine does, once per split)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.inspection import permutation_importance
from sklearn.model_selection import KFold
from threadpoolctl import threadpool_limits

from regulas.splicing import evaluate_block, shared_ridge
from regulas.splicing.shared_ridge import factorize_split
from tests.test_missing_route import ALPHAS, SCALER, check_against_sklearn, gapped
from tests.test_splicing_engine import data, fits_seed, pipeline, split


@pytest.fixture(autouse=True)
def one_blas_thread():
    with threadpool_limits(1):
        yield


def ridge():
    return pipeline("sklearn.linear_model.Ridge", transformations=SCALER, grid={"alpha": ALPHAS})


def test_complete_events_equal_gridsearchcv_and_choose_different_alphas():
    X, Y = data(n=80, p=10, e=15, seed=21, informative=3)
    X[:, 4] = 2.5  # a constant RBP: StandardScaler's scale 1, Ridge's coefficient 0
    train, test = split(len(X))
    fits, fitted = check_against_sklearn(ridge(), X, Y, train, test, KFold(5))
    assert len(fitted) == Y.shape[1] and fits.missing_route == 0
    assert np.all(fits.importance["coef"][0, 4] == 0.0)
    assert len({f["alpha"] for f in fits.params[0]}) > 1  # each event its own choice


def test_handed_in_factorisations_give_the_same_results_bit_for_bit():
    X, Y = gapped(n=70, p=9, e=10, seed=22)  # complete events and events with gaps
    train, test = split(len(X))
    alone = evaluate_block(X, Y, train, test, ridge(), inner_cv=KFold(5), random_state=1)
    shared = factorize_split(X[train], X[test], KFold(5), np.array(ALPHAS))
    handed = evaluate_block(X, Y, train, test, ridge(), inner_cv=KFold(5), random_state=1, shared=shared)
    np.testing.assert_array_equal(alone.pred, handed.pred)
    np.testing.assert_array_equal(alone.importance["coef"], handed.importance["coef"])
    assert alone.params == handed.params and handed.missing_route == alone.missing_route > 0


def test_an_event_does_not_depend_on_its_block():
    X, Y = data(n=60, p=8, e=12, seed=23, informative=2)
    train, test = split(len(X))
    whole = evaluate_block(X, Y, train, test, ridge(), inner_cv=KFold(5), random_state=0)
    part = evaluate_block(X, Y[:, 5:9], train, test, ridge(), inner_cv=KFold(5), random_state=0)
    np.testing.assert_allclose(part.pred[0], whole.pred[0][:, 5:9], rtol=0, atol=1e-12)
    assert part.params[0] == whole.params[0][5:9]


def test_permutation_importance_equals_sklearns_on_the_fitted_pipeline():
    X, Y = data(n=60, p=6, e=4, seed=24, informative=2)
    train, test = split(len(X))
    fits, fitted = check_against_sklearn(ridge(), X, Y, train, test, KFold(5), permutation={"n_repeats": 3})
    assert len(fitted) == Y.shape[1] and fits.missing_route == 0
    for e, gs in fitted.items():
        want = permutation_importance(
            gs.best_estimator_, X[test], Y[test, e], scoring="neg_mean_squared_error", n_repeats=3, random_state=fits_seed(3)
        )["importances_mean"]
        np.testing.assert_allclose(fits.importance["permutation"][0, :, e], want, rtol=1e-6, atol=1e-10)


def test_factorisations_of_another_split_are_refused():
    X, Y = data(n=60, p=8, e=3, seed=25, informative=2)
    train, test = split(len(X))
    wrong = factorize_split(X[train[:-5]], X[test], KFold(5), np.array(ALPHAS))
    with pytest.raises(ValueError, match="shared factorisations are of"):
        evaluate_block(X, Y, train, test, ridge(), inner_cv=KFold(5), random_state=0, shared=wrong)


def test_the_alpha_path_gives_the_squared_errors_of_the_predictions():
    """AlphaPath.sse (partial fractions, one p x p product for every alpha) against the
    residuals of explicit predictions at each alpha."""
    X, Y = data(n=200, p=30, e=7, seed=26, informative=4)
    train, test = split(len(X))
    alphas = np.logspace(-2, 4, 9)
    factors = factorize_split(X[train], X[test], KFold(5), alphas)
    (_, va) = next(KFold(5).split(X[train]))
    s, A, path = factors.sets.folds[0], factors.val[0], factors.paths[0]
    # some pairs by partial fractions, the close ones (small λ next to α up to 1e4) directly
    assert path is not None and 0 < path.n_close < 30 * 29 / 2 and np.count_nonzero(path.coupling) > 0
    Xt = (X[train][s.rows] - s.mean) / s.scale
    y_mean = Y[train][s.rows].mean(axis=0)
    Z = s.evecs.T @ (Xt.T @ (Y[train][s.rows] - y_mean))
    got = path.sse(A, Z, Y[train][va] - y_mean, s.evals, alphas)
    for i, alpha in enumerate(alphas):
        resid = Y[train][va] - y_mean - A @ (Z / (s.evals + alpha)[:, None])
        np.testing.assert_allclose(got[i], (resid * resid).sum(axis=0), rtol=1e-10)


def test_too_many_close_eigenvalues_fall_back_to_predictions_and_still_equal_gridsearchcv(monkeypatch):
    monkeypatch.setattr(shared_ridge, "CLOSE_GAP", 10.0)  # every pair close ...
    monkeypatch.setattr(shared_ridge, "MAX_CLOSE_PER_FEATURE", 1)  # ... more than the cap
    X, Y = data(n=80, p=8, e=6, seed=27, informative=2)
    train, test = split(len(X))
    assert factorize_split(X[train], X[test], KFold(5), np.array(ALPHAS)).paths == [None] * 5
    check_against_sklearn(ridge(), X, Y, train, test, KFold(5))
