"""StandardScaler → Ridge for the fully observed events of a block, from the split's shared
factorisations.

Every block of events of one outer split trains on the same rows, so the same training
sets: the outer training part (the refit) and the inner KFold folds over it.
:func:`regulas.splicing.missing_ridge.factorize_shared` standardises each set B once
(x̃ = (x - μ_B) / σ_B, columns constant on B zeroed) and eigendecomposes its Gram,
K_B = X̃_Bᵀ X̃_B = Q diag(λ) Qᵀ ``(p, p)``. For the events observed on every row of B (their
StandardScaler is B's), scikit-learn's Ridge(α) with an intercept is, for all events and
every α at once::

    Yc = Y_B - ȳ_B                                    (n_B × m)
    W(α) = Q diag(1 / (λ + α)) Qᵀ X̃_Bᵀ Yc             (p × m: Ridge's coef_ on x̃)
    Ŷ(x) = ȳ_B + (x̃ - m_B)ᵀ W(α)                      (m_B: mean of x̃ on B, ~0)

so a block pays two products per set (X̃_Bᵀ Yc, then Qᵀ) and one per α for the validation
or test predictions; no factorisation. The Gram route solves the same normal equations as
scikit-learn's Ridge (its ``cholesky`` solver on dense X), so it is as exact as that
reference: predictions agree within 1e-8 (``tests/test_shared_ridge.py``).
"""

from __future__ import annotations

import time

import numpy as np

from regulas.splicing.block import BlockWork
from regulas.splicing.importance import permutation_scores
from regulas.splicing.metrics import validation_scores
from regulas.splicing.missing_ridge import SharedSet, SharedSets
from regulas.splicing.ridge_batch import FittedLinear, RidgeSetup
from regulas.splicing.selection import best_candidate, inner_splits


class _SetFit:
    """One shared set's solution for a group of events: ``coef(α)`` and predictions."""

    def __init__(self, s: SharedSet, X_set: np.ndarray, Y_set: np.ndarray) -> None:
        self.s = s
        Xt = standardized(X_set, s)
        self.x_mean = Xt.mean(axis=0)
        self.y_mean = Y_set.mean(axis=0)
        # Qᵀ X̃ᵀ (Y - ȳ): the centring of X drops out, Σ (y - ȳ) = 0
        self.Z = s.evecs.T @ (Xt.T @ (Y_set - self.y_mean))

    def filtered(self, alpha: float, cols: np.ndarray | slice = slice(None)) -> np.ndarray:
        """diag(1 / (λ + α)) Qᵀ X̃ᵀ Yc for the events ``cols``: ``(p, m_cols)``."""
        return np.asarray(self.Z[:, cols] / (self.s.evals + alpha)[:, None])

    def rotate(self, X_new: np.ndarray) -> np.ndarray:
        """(x̃ - m_B) Q for new rows: ``(n_new, p)``, shared by every α and event."""
        return np.asarray((standardized(X_new, self.s) - self.x_mean) @ self.s.evecs)


def standardized(X: np.ndarray, s: SharedSet) -> np.ndarray:
    """x̃ = (x - μ_B) / σ_B ``(n, p)``, columns constant on B zeroed (Ridge's coefficient there is 0)."""
    Xt = (X - s.mean) / s.scale
    Xt[:, s.constant] = 0.0
    return np.asarray(Xt)


def fit_shared_group(b: BlockWork, setup: RidgeSetup, shared: SharedSets, train: np.ndarray, events: np.ndarray) -> None:
    """Fit the ``events`` observed on every row of ``train`` (the outer training part) by
    nested selection over ``setup.alphas``, from ``shared`` (the split's factorisations)."""
    if len(events) == 0:
        return
    t0 = time.perf_counter()
    X_train, Y_train = b.X[train], b.Y[np.ix_(train, events)]
    splits = inner_splits(b.cv, len(train))
    if splits is None or len(splits) != len(shared.folds) or shared.n != len(train):
        raise ValueError(f"the shared factorisations are of {shared.n} rows and {len(shared.folds)} folds; "
                         f"this split has {len(train)} training rows")
    alphas = setup.alphas
    fold_scores = np.empty((len(splits), len(alphas), len(events)))
    for k, ((tr, va), s) in enumerate(zip(splits, shared.folds)):
        fit = _SetFit(s, X_train[tr], Y_train[tr])
        A = fit.rotate(X_train[va])
        pred = np.empty((len(alphas), len(va), len(events)))
        for i, alpha in enumerate(alphas.tolist()):
            np.matmul(A, fit.filtered(alpha), out=pred[i])
            pred[i] += fit.y_mean
        fold_scores[k] = validation_scores(b.scoring, Y_train[va], pred)
    best = best_candidate(fold_scores)
    s = shared.refit
    fit = _SetFit(s, X_train, Y_train)
    A = fit.rotate(b.X[b.test])
    kept = []
    for c in np.unique(best).tolist():
        cols = np.flatnonzero(best == c)
        M = fit.filtered(float(alphas[c]), cols)
        b.pred[0][:, events[cols]] = A @ M + fit.y_mean[cols]
        W = s.evecs @ M  # Ridge's coef_ on the standardised features
        W[s.constant] = 0.0  # exactly (the eigenvectors mix them in at rounding level)
        b.set_importance("coef", 0, events[cols], W)
        for j in cols.tolist():
            b.params[0][int(events[j])] = dict(b.candidates[c])
        if b.permutation is not None:
            kept.append((cols, W))
    # One shared computation: its time is split evenly over the events, as in the batched path.
    b.fit_time_s[0, events] = (time.perf_counter() - t0) / len(events)
    options = b.permutation
    if options is None:
        return
    for cols, W in kept:
        coef = W / s.scale[:, None]  # on the raw features: x̃ W = x (W / σ) - μ (W / σ)
        intercept = fit.y_mean[cols] - fit.x_mean @ W - s.mean @ coef
        for j, e in enumerate(events[cols].tolist()):
            obs = b.test_rows(e)
            if len(obs) >= 2:
                model = FittedLinear([], coef[:, j], float(intercept[j]))
                values = permutation_scores(
                    model, b.X[b.test[obs]], b.Y[b.test[obs], e], options, scoring=b.scoring, seed=b.seed
                )
                b.set_importance("permutation", 0, e, values)
