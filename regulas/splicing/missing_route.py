"""The block's events with their own missing-PSI pattern, StandardScaler → Ridge, in one call.

The batched ridge path fits a group of events that share their training rows from one SVD
per training set; with a missing pattern per event every event is its own group, so each
pays its own factorisations. When the pipeline and the selection are exactly what
:func:`regulas.splicing.missing_ridge.fit_missing_ridge` reproduces (GridSearchCV over
α > 0 of StandardScaler → Ridge with an intercept, an unshuffled KFold, a batch scoring)
and there are no more features than training rows (else the per-event SVDs are cheaper),
those events go through one call for the block instead, on the split's shared
factorisations (:func:`regulas.splicing.missing_ridge.factorize_shared`, computed once per
split by the engine); the fully observed events use the same factorisations
(:mod:`regulas.splicing.shared_ridge`). What is stored per event is what
:func:`regulas.splicing.ridge_batch.fit_batched_group` stores: prediction, chosen
candidate, Ridge's ``coef_`` (in standardised units, as the pipeline's Ridge holds it),
fit time, permutation importance when asked.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold
from sklearn.preprocessing import StandardScaler

from regulas.splicing.block import BlockWork
from regulas.splicing.importance import permutation_scores
from regulas.splicing.metrics import BATCH_SCORINGS
from regulas.splicing.missing_ridge import MissingRidgeFit, SharedSets, fit_missing_ridge
from regulas.splicing.pipelines import PipelineSpec
from regulas.splicing.ridge_batch import FittedLinear, RidgeSetup
from regulas.splicing.selection import inner_splits

#: Stopping bound on a prediction's change (fit_missing_ridge's ``tol``). Its default, 1e-10,
#: left a stored r2 3.5e-9 (relative) from scikit-learn's on a small study (48 samples, its
#: total sum of squares small); 1e-12 keeps the stored metrics within 1e-9 of it. Where that
#: is below the rounding floor (n close to p) the event goes direct: exact, as slow as before.
TOL = 1e-12


def shares_factorizations(spec: PipelineSpec, setup: RidgeSetup | None, *, nested: bool, cv: Any, scoring: str) -> bool:
    """True when the pipeline's fits of a split can share that split's factorisations
    (:func:`regulas.splicing.missing_ridge.factorize_shared`) exactly: nested GridSearchCV
    over α > 0 (at least 2 candidates) of StandardScaler → Ridge with an intercept, an
    unshuffled KFold, a batch scoring. It depends on the spec and the options only, so the
    driver can name a split's factorisations once for every block of events.

    ``setup`` is the batched path's (None: the pipeline is not in the ridge family).
    """
    if setup is None or setup.loo or not nested or len(setup.alphas) < 2 or scoring not in BATCH_SCORINGS:
        return False
    # KFold without shuffling: the inner folds depend only on the number of rows
    if type(cv) is not KFold or cv.shuffle:
        return False
    steps = spec.build().steps
    if len(steps) != 2:
        return False
    scaler, model = steps[0][1], steps[1][1]
    # exact classes: a subclass may change fit; spec.batched() already checked Ridge's solver,
    # positive=False and a grid over alpha > 0 only
    if type(scaler) is not StandardScaler or not (scaler.with_mean and scaler.with_std):
        return False
    return type(model) is Ridge and bool(model.fit_intercept) and bool(np.all(setup.alphas > 0))


def factorizations_pay(n_features: int, n_train: int, cv: Any) -> bool:
    """True when the shared p × p factorisations are the cheaper route and the training part
    can be split at all (else the per-group SVDs, which leave unsplittable events NaN)."""
    # The solver works on p x p Grams: with more features than training rows the per-event
    # SVDs (n x p) are cheaper (measured: 240 rows x 1,000 features, 7.1 s per-event vs 12.0 s
    # shared; 400 x 300: 5.9 s vs 2.8 s).
    return n_features <= n_train and inner_splits(cv, n_train) is not None


def missing_route_applies(b: BlockWork, setup: RidgeSetup | None, n_train: int) -> bool:
    """True when the block's events go through the split's shared factorisations: exactly
    GridSearchCV's result for this block's pipeline, and expected to be faster.

    ``n_train``: the outer training rows.
    """
    return shares_factorizations(b.spec, setup, nested=b.nested, cv=b.cv, scoring=b.scoring) and factorizations_pay(
        b.X.shape[1], n_train, b.cv
    )


def preconditioner_for(n_fold: int, n_features: int) -> str:
    """Woodbury's exact per-event correction costs k x p² per event and training set (k: the
    rows the event's set differs by, hundreds at TCGA size) and pays only where the event's
    system is far from the shared one, with about as many training rows as features; with
    many more rows the shared preconditioner's extra CG steps are cheaper. Measured (one
    outer split, 5% missing, one BLAS thread): 10,000 x 1,500, 32 events: 21.8 s shared
    against 107.9 s Woodbury; 1,000 x 200, 200 events: 3.2 s against 5.6 s; 500 x 300 (fold
    training rows ≈ features), 100 events: 3.4 s against 3.3 s."""
    return "shared" if n_fold >= 2 * n_features else "woodbury"


def fit_missing_events(
    b: BlockWork, setup: RidgeSetup, train: np.ndarray, events: np.ndarray, shared: SharedSets | None = None
) -> MissingRidgeFit:
    """Fit ``events`` (each on its observed rows of ``train``) by one fit_missing_ridge call
    on the split's factorisations ``shared`` (computed here when None).

    Events it leaves unfitted (too few rows to split) keep NaN outputs, as in the batched path.
    """
    t0 = time.perf_counter()
    X_train = b.X[train]
    n_fold = len(train) * (b.cv.get_n_splits() - 1) // b.cv.get_n_splits()
    res = fit_missing_ridge(
        X_train,
        b.Y[np.ix_(train, events)],
        b.X[b.test],
        setup.alphas,
        b.cv,
        scoring=b.scoring,
        shared=shared,
        tol=TOL,
        preconditioner=preconditioner_for(n_fold, b.X.shape[1]),
    )
    fitted = np.flatnonzero(res.best >= 0)
    for i in fitted.tolist():
        e = int(events[i])
        b.pred[0][:, e] = res.pred[:, i]
        # Ridge's coef_ acts on the event's own standardised features: original-space
        # coef times the event's own scale (1 on constant columns, where coef is 0)
        b.set_importance("coef", 0, e, res.coef[:, i] * res.scale[:, i])
        b.params[0][e] = dict(b.candidates[int(res.best[i])])
    # One shared computation: its time is split evenly over the fitted events, as in the batched path.
    if len(fitted):
        b.fit_time_s[0, events[fitted]] = (time.perf_counter() - t0) / len(fitted)
    options = b.permutation
    if options is not None:
        for i in fitted.tolist():
            e = int(events[i])
            obs = b.test_rows(e)
            if len(obs) >= 2:
                model = FittedLinear([], res.coef[:, i], float(res.intercept[i]))
                values = permutation_scores(
                    model, b.X[b.test[obs]], b.Y[b.test[obs], e], options, scoring=b.scoring, seed=b.seed
                )
                b.set_importance("permutation", 0, e, values)
    return res
