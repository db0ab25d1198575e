"""Missing PSI at scale: per-event StandardScaler → Ridge with nested α equals scikit-learn's
GridSearchCV on each event's own rows (regulas.splicing.missing_ridge)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from regulas.datasets import load_gse114922, load_rbp_list
from regulas.splicing import PipelineSpec, evaluate_block
from regulas.splicing.missing_ridge import factorize_shared, fit_missing_ridge

TOL = 1e-8
ALPHAS = np.logspace(-2, 4, 10)


def reference(X_train, y, X_test, alphas, cv, scoring="neg_mean_squared_error"):
    """scikit-learn on the event's own rows: (fold scores (n_folds, n_alphas), best index, test predictions)."""
    rows = ~np.isnan(y)
    pipe = Pipeline([("scale", StandardScaler()), ("ridge", Ridge())])
    g = GridSearchCV(pipe, {"ridge__alpha": list(alphas)}, cv=cv, scoring=scoring).fit(X_train[rows], y[rows])
    scores = np.array([g.cv_results_[f"split{k}_test_score"] for k in range(cv.get_n_splits())])
    return scores, g.best_index_, g.predict(X_test)


def check(X_train, Y_train, X_test, alphas=ALPHAS, cv=KFold(5), scoring="neg_mean_squared_error", **kwargs):  # noqa: B008
    fit = fit_missing_ridge(X_train, Y_train, X_test, alphas, cv, scoring=scoring, **kwargs)
    for j in range(Y_train.shape[1]):
        scores, best, pred = reference(X_train, Y_train[:, j], X_test, alphas, cv, scoring)
        assert fit.best[j] == best, j
        assert fit.alpha[j] == alphas[best]
        # the inner scores choose α: solved to select_tol where that settles the choice
        score_tol = max(TOL, 10 * fit.stats.get("select_tol", 0.0))
        np.testing.assert_allclose(fit.scores[:, :, j], scores, rtol=0, atol=score_tol, err_msg=f"event {j}")
        np.testing.assert_allclose(fit.pred[:, j], pred, rtol=0, atol=TOL, err_msg=f"event {j}")
        np.testing.assert_allclose(X_test @ fit.coef[:, j] + fit.intercept[j], pred, rtol=0, atol=TOL)
    return fit


def synthetic(n=260, p=30, m=9, n_test=40, seed=0):
    """Correlated features with offsets and unequal scales; PSI-like targets in (0, 1)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n + n_test, p)) @ rng.normal(size=(p, p)) * rng.uniform(0.2, 3, p) + rng.normal(0, 5, p)
    X = X / X.std(axis=0)
    beta = np.zeros((p, m))
    beta[:4] = rng.normal(size=(4, m))
    Y = 1 / (1 + np.exp(-(X @ beta + rng.normal(size=(n + n_test, m))) / 3))
    return X[:n], Y[:n], X[n:], rng


def punch(Y, rate, rng):
    """NaN at random, independently per event."""
    Y = Y.copy()
    Y[rng.random(Y.shape) < rate] = np.nan
    return Y


@pytest.mark.parametrize("preconditioner", ["woodbury", "shared"])
@pytest.mark.parametrize("rate", [0.0, 0.05, 0.3])
def test_random_patterns_equal_sklearn(rate, preconditioner):
    X, Y, X_test, rng = synthetic()
    fit = check(X, punch(Y, rate, rng), X_test, preconditioner=preconditioner)
    if rate == 0:
        assert set(fit.route) == {"shared"} and not fit.iterations.any()
    else:
        assert set(fit.route) == {"pcg"} and fit.iterations.max() > 0


def test_shared_patterns_and_scorings():
    """A few events share each pattern; the other batch scorings select the same way as scikit-learn."""
    X, Y, X_test, rng = synthetic(m=8, seed=1)
    patterns = rng.random((len(X), 3)) < 0.1
    Y[patterns[:, np.arange(8) % 3]] = np.nan
    check(X, Y, X_test)
    check(X, Y[:, :3], X_test, scoring="neg_mean_absolute_error")
    check(X, Y[:, :3], X_test, scoring="neg_root_mean_squared_error")


@pytest.mark.parametrize("preconditioner", ["woodbury", "shared"])
def test_constant_columns(preconditioner):
    """A column constant on the event's rows (StandardScaler's scale 1, Ridge's coefficient ~0)
    and one constant on every training row."""
    X, Y, X_test, rng = synthetic(m=3, seed=2)
    X[:, 0] = 3.0
    X_test[:, 0] = rng.normal(size=len(X_test))
    on = rng.random(len(X)) < 0.8
    X[~on, 1] = rng.normal(size=(~on).sum())
    X[on, 1] = 0.25
    Y[~on, 0] = np.nan  # event 0 sees column 1 constant; its test rows do not
    Y[rng.random(len(X)) < 0.1, 1] = np.nan
    fit = check(X, Y, X_test, preconditioner=preconditioner)
    assert fit.coef[0, 0] == 0.0 and fit.coef[1, 0] == 0.0
    assert fit.route[0] == "pcg"


def test_near_constant_column_goes_direct():
    """A column with tiny but non-zero variance on the event's rows: the direct route, still exact."""
    X, Y, X_test, rng = synthetic(m=2, seed=3)
    on = rng.random(len(X)) < 0.9
    X[on, 2] = 1.0 + 1e-5 * rng.normal(size=on.sum())
    Y[~on, 0] = np.nan
    Y[rng.random(len(X)) < 0.05, 1] = np.nan
    fit = check(X, Y, X_test)
    assert list(fit.route) == ["direct", "pcg"]


def test_too_few_rows_left_unfitted_as_the_batched_path():
    """KFold(5) cannot split 4 rows: scikit-learn raises, the event is left unfitted (NaN), as in evaluate_block."""
    X, Y, X_test, rng = synthetic(m=3, seed=4)
    Y[4:, 1] = np.nan
    Y[:, 2] = np.nan
    with pytest.raises(ValueError):
        reference(X, Y[:, 1], X_test, ALPHAS, KFold(5))
    fit = check(X, Y[:, :1], X_test)  # the fitted event still equals scikit-learn
    fit = fit_missing_ridge(X, Y, X_test, ALPHAS, KFold(5))
    assert list(fit.route) == ["pcg", "unfitted", "unfitted"] or list(fit.route) == ["shared", "unfitted", "unfitted"]
    assert list(fit.best[1:]) == [-1, -1] and np.isnan(fit.pred[:, 1:]).all() and np.isnan(fit.scores[..., 1:]).all()
    spec = PipelineSpec.from_config({
        "transformations": {"Z": {"_target_": "sklearn.preprocessing.StandardScaler"}},
        "model": {"Ridge": {"_target_": "sklearn.linear_model.Ridge", "_varargs_": {"alpha": list(ALPHAS)}}},
    })
    XY = np.vstack([X, X_test])
    Yall = np.vstack([Y, np.full((len(X_test), Y.shape[1]), 0.5)])
    batched = evaluate_block(XY, Yall, np.arange(len(X)), np.arange(len(X), len(XY)), spec, inner_cv=5, random_state=0)
    np.testing.assert_allclose(batched.pred[0], fit.pred, rtol=0, atol=TOL)  # NaN in the same places


def test_direct_method_shared_preconditioner_and_shared_factorizations_reused():
    X, Y, X_test, rng = synthetic(m=4, seed=5)
    Y = punch(Y, 0.1, rng)
    shared = factorize_shared(X, KFold(5))
    a = fit_missing_ridge(X, Y, X_test, ALPHAS, KFold(5), shared=shared)
    b = fit_missing_ridge(X, Y, X_test, ALPHAS, KFold(5), method="direct")
    c = fit_missing_ridge(X, Y, X_test, ALPHAS, KFold(5), shared=shared, preconditioner="shared")
    assert set(b.route) == {"direct"} and set(c.route) == {"pcg"}
    assert c.iterations.max() > a.iterations.max()  # the row change left to CG
    for other in (b, c):
        np.testing.assert_array_equal(a.best, other.best)
        np.testing.assert_allclose(a.pred, other.pred, rtol=0, atol=TOL)
        np.testing.assert_allclose(a.scores, other.scores, rtol=0, atol=1e-6)  # a and c: to select_tol
        np.testing.assert_allclose(a.coef, other.coef, rtol=1e-7, atol=TOL)
    for j in range(Y.shape[1]):  # each route's refit scale is StandardScaler's on the event's rows
        scale = StandardScaler().fit(X[~np.isnan(Y[:, j])]).scale_
        for fit in (a, b, c):
            np.testing.assert_allclose(fit.scale[:, j], scale, rtol=1e-12)


@pytest.mark.parametrize("n_rbps", [12, 60])
def test_gse114922_with_missing_psi(n_rbps):
    """Real data: log2(FPKM + 1) of RBPs and GSE114922 PSI with 5% and 30% of values punched out;
    60 RBPs is more features than the 25 rows of an inner training fold."""
    data = load_gse114922()
    rbps = set(load_rbp_list()["symbol"])
    expr = np.log2(data.fpkm.loc[:, [g for g in data.fpkm.columns if g in rbps]] + 1)
    expr = expr.loc[:, expr.var() > 0.01]
    X = expr.iloc[:, :n_rbps].to_numpy()
    psi = data.psi.loc[:, data.psi.var() > 1e-4].iloc[:, :6].to_numpy()
    rng = np.random.default_rng(6)
    Y = psi.copy()
    Y[:, :3] = punch(psi[:, :3], 0.05, rng)
    Y[:, 3:] = punch(psi[:, 3:], 0.3, rng)
    train, test = np.arange(32), np.arange(32, 40)
    check(X[train], Y[train], X[test], alphas=np.array([1.0, 10.0, 100.0, 1000.0, 10000.0]))


def test_alpha_choices_left_open_by_the_loose_inner_solve_are_solved_again():
    """With a select_tol so loose that no choice is settled, every event's inner folds are
    solved again to tol: the same choices and predictions as scikit-learn's; at the default
    most choices are settled by the first pass."""
    X, Y, X_test, rng = synthetic(m=6, seed=11)
    Y = punch(Y, 0.1, rng)
    loose = check(X, Y, X_test, select_tol=1e-1)
    assert loose.stats["choices_refined"] == 6 and loose.stats["select_tol"] == 1e-1
    default = check(X, Y, X_test)
    assert default.stats["choices_refined"] < 6 and default.stats["select_tol"] == 1e-7
    np.testing.assert_array_equal(default.best, loose.best)


def test_chunks_hold_a_bounded_number_of_differing_rows():
    """Events are solved in chunks of at most ``chunk`` events whose differing rows (k x p
    floats each) stay within the byte budget: events with many gaps go in smaller chunks."""
    from regulas.splicing import missing_ridge

    n, p = 10_000, 1_500
    budget_rows = missing_ridge._CHUNK_BYTES // (8 * p)
    few = {j: np.arange(n - 100) for j in range(300)}  # 100 gaps each
    many = {j: np.arange(n // 2) for j in range(300, 340)}  # half the rows missing
    rows = {**few, **many}
    chunks = missing_ridge._chunks(sorted(rows), n, p, rows, 128)
    assert [j for c in chunks for j in c] == sorted(rows)  # every event once, in order
    assert max(len(c) for c in chunks) == 128
    for c in chunks:
        assert len(c) == 1 or sum(n - len(rows[j]) + n // 50 for j in c) <= budget_rows
    assert max(len(c) for c in chunks if c[0] >= 300) < 128 // 2


def test_defect_is_the_shared_system_minus_the_event_system():
    """The iterations of the shared preconditioner use A d = (K_B + αI) d - defect(d): the two
    operators add up to K_B + αI exactly, for events with rows removed and added, their own
    scaling, and columns constant on their rows."""
    from regulas.splicing.missing_ridge import _apply, _defect, _event_on_set, _set_data

    X, _, _, rng = synthetic(n=300, p=20, seed=9)
    on = rng.random(len(X)) < 0.7
    X[on, 3] = 2.0  # constant on the rows of the first event only
    s = factorize_shared(X, KFold(5)).folds[1]
    Xt, col_sum, col_sq = _set_data(X, s)
    sets = [np.flatnonzero(on), np.sort(rng.choice(len(X), 250, replace=False)), s.rows]
    evs = [_event_on_set(X, Xt, col_sum, col_sq, s, T) for T in sets]
    assert evs[0].keep[3] == 0 and evs[1].keep.all() and evs[2].shared
    col_ev = np.repeat(np.arange(len(evs)), 4)
    alpha = np.tile([0.01, 1.0, 30.0, 1e4], len(evs))
    W = rng.normal(size=(X.shape[1], len(col_ev)))
    both = _apply(s, evs, col_ev, alpha, W) + _defect(s, evs, col_ev, alpha, W)
    np.testing.assert_allclose(both, s.gram @ W + alpha * W, rtol=1e-12, atol=1e-9 * np.abs(s.gram).max())
