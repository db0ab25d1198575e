"""Ridge and least squares for many events at once from one SVD of the training matrix.

Every event j of a block shares the samples × features matrix X; only its target y_j
differs. Per event, scikit-learn's Ridge / LinearRegression fit::

    (b_j, w_j) = argmin_{b, w} ||y_j - b - X w||² + α ||w||²      (α = 0: least squares)

With an intercept, b is unpenalised, so X and y are centred on the training rows:
Xc = X - x̄ = U diag(s) Vᵀ (thin SVD, r = min(n, p) columns), Yc = Y - ȳ, and for all
events at once::

    W(α) = V diag(s / (s² + α)) Uᵀ Yc          (p × n_events)
    Ŷ(X') = (X' - x̄) W(α) + ȳ                  (n' × n_events)

so one SVD per training set serves every event and every α, and a prediction costs one
matrix product per α. For α = 0 the singular values at or below ``cond · s_max`` count as
zero, which is the minimum-norm least-squares solution of LAPACK ``gelsd`` as scipy's
``lstsq`` (and so LinearRegression) computes it. RidgeCV (leave-one-out) picks each
event's α from the same SVD through the exact leave-one-out residuals. The SVD engine is
:class:`regulas.lmm.ridge.SVDRidge`, shared with the motif-activity ridge.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import sklearn
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import LinearRegression, Ridge, RidgeCV

from regulas.lmm.ridge import SVDRidge
from regulas.splicing.block import BlockWork, fit_transformations
from regulas.splicing.importance import permutation_scores
from regulas.splicing.metrics import validation_scores
from regulas.splicing.pipelines import PipelineSpec
from regulas.splicing.selection import best_candidate, inner_splits


@dataclass(frozen=True)
class RidgeSetup:
    """What the batched path needs from a ridge-family spec: one α per candidate."""

    alphas: np.ndarray  # (n_candidates,), or RidgeCV's own alphas when ``loo``
    fit_intercept: bool
    cond: float  # relative singular-value cutoff (0 for Ridge, lstsq's for LinearRegression)
    loo: bool = False  # RidgeCV: α chosen per event by leave-one-out on the training part


def _lstsq_cond(model: LinearRegression) -> float:
    # scikit-learn >= 1.9 passes ``tol`` to scipy.linalg.lstsq as ``cond``; before, lstsq's
    # default (machine epsilon) applied.
    major, minor = (int(v) for v in sklearn.__version__.split(".")[:2])
    return float(model.tol) if (major, minor) >= (1, 9) else float(np.finfo(np.float64).eps)


def ridge_setup(spec: PipelineSpec, candidates: list[dict[str, Any]]) -> RidgeSetup:
    """α per candidate, intercept and rank cutoff of a spec for which ``spec.batched()`` holds."""
    model = spec.build().steps[-1][1]
    if isinstance(model, LinearRegression):
        return RidgeSetup(np.zeros(len(candidates)), bool(model.fit_intercept), _lstsq_cond(model))
    if isinstance(model, RidgeCV):
        return RidgeSetup(np.asarray(model.alphas, dtype=np.float64).ravel(), bool(model.fit_intercept), 0.0, loo=True)
    if isinstance(model, Ridge):
        alphas = np.array([float(c.get("alpha", model.alpha)) for c in candidates])
        return RidgeSetup(alphas, bool(model.fit_intercept), 0.0)
    raise TypeError(f"{type(model).__name__} has no batched path")


class FittedLinear(RegressorMixin, BaseEstimator):
    """A fitted linear model behind fitted transformations, for scikit-learn tools that
    need an estimator (permutation importance): ``predict(X) = T(X) @ coef + intercept``.

    transformations: fitted transformers applied in order; coef ``(n_features_out,)``.
    It is built from a batched fit and never refitted.
    """

    def __init__(self, transformations: list[Any], coef: np.ndarray, intercept: float) -> None:
        self.transformations = transformations
        self.coef = coef
        self.intercept = intercept

    def fit(self, X: np.ndarray, y: np.ndarray) -> FittedLinear:
        raise NotImplementedError("FittedLinear wraps a batched fit; it is not refitted")

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def predict(self, X: np.ndarray) -> np.ndarray:
        for t in self.transformations:
            X = t.transform(X)
        return np.asarray(X, dtype=np.float64) @ self.coef + self.intercept


def _choose_alphas(b: BlockWork, setup: RidgeSetup, X_train: np.ndarray, Y_train: np.ndarray) -> np.ndarray | None:
    """Per event, the index of the candidate GridSearchCV would choose (None: cannot split).

    One SVD per inner training fold serves every event and every α.
    """
    splits = inner_splits(b.cv, len(X_train))
    if splits is None:
        return None
    fold_scores = np.empty((len(splits), len(setup.alphas), Y_train.shape[1]))
    for k, (tr, va) in enumerate(splits):
        _, (X_fit, X_val) = fit_transformations(b.transformations(), X_train[tr], X_train[va])
        factor = SVDRidge(X_fit, fit_intercept=setup.fit_intercept, rcond=setup.cond)
        pred = factor.predict(X_val, Y_train[tr], setup.alphas)
        fold_scores[k] = validation_scores(b.scoring, Y_train[va], pred)
    return best_candidate(fold_scores)


def fit_batched_group(b: BlockWork, setup: RidgeSetup, rows: np.ndarray, events: np.ndarray) -> None:
    """Fit every event that shares the training rows ``rows`` at once (ridge family)."""
    if len(rows) < 2:
        return
    t0 = time.perf_counter()
    X_train, Y_train = b.X[rows], b.Y[np.ix_(rows, events)]
    best = np.zeros(len(events), dtype=np.intp)
    if b.nested and len(b.candidates) > 1:
        chosen = _choose_alphas(b, setup, X_train, Y_train)
        if chosen is None:
            return
        best = chosen
    fitted, (X_fit, X_test) = fit_transformations(b.transformations(), X_train, b.X[b.test])
    factor = SVDRidge(X_fit, fit_intercept=setup.fit_intercept, rcond=setup.cond)
    if setup.loo:  # RidgeCV: first α with the best leave-one-out score, as RidgeCV.fit
        best = best_candidate(-factor.cv_errors(Y_train, setup.alphas, "loo")[None])
    # (output slot, index into setup.alphas, events' columns within the group)
    jobs: list[tuple[int, int, np.ndarray]] = (
        [(0, c, np.flatnonzero(best == c)) for c in np.unique(best).tolist()]
        if b.nested or setup.loo
        else [(c, c, np.arange(len(events))) for c in range(len(b.candidates))]
    )
    UtY, y_mean = factor.project(Y_train)
    A = factor.rotate(X_test)
    n_features = b.X.shape[1]
    kept = []
    for out, c, cols in jobs:
        M = factor.shrink(setup.alphas[c])[:, None] * UtY[:, cols]  # diag(s/(s²+α)) Uᵀ Yc
        b.pred[out][:, events[cols]] = A @ M + y_mean[cols]
        W = factor.Vt.T @ M
        if W.shape[0] == n_features:
            b.set_importance("coef", out, events[cols], W)
        if b.permutation is not None:
            kept.append((out, cols, W, y_mean[cols] - factor.x_mean @ W))
        params = {"alpha_": float(setup.alphas[c])} if setup.loo else dict(b.candidates[c])
        for j in cols:
            b.params[out][events[j]] = dict(params)
    # One shared computation: its time is split evenly over the events and outputs.
    b.fit_time_s[:, events] = (time.perf_counter() - t0) / (len(events) * b.n_out)
    options = b.permutation
    if options is None:
        return
    for out, cols, W, intercept in kept:
        for j, e in enumerate(events[cols].tolist()):
            obs = b.test_rows(e)
            if len(obs) >= 2:
                model = FittedLinear(fitted, W[:, j], float(intercept[j]))
                values = permutation_scores(
                    model, b.X[b.test[obs]], b.Y[b.test[obs], e], options, scoring=b.scoring, seed=b.seed
                )
                b.set_importance("permutation", out, e, values)
