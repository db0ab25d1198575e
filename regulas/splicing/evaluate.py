"""Evaluate one pipeline on a block of events for one outer split.

Model, per event j (a column of Y): y_j ≈ f_j(X) with f_j a pipeline fitted on the
event's observed training samples. Selection modes:

* ``nested`` (default): GridSearchCV semantics on the training part (inner splits of the
  event's training samples, ``scoring``, mean over folds, ties to the first candidate in
  ParameterGrid order), refit with the chosen candidate on the whole training part, then
  predict the test part. One output per event.
* ``outer`` (regulAS's behaviour): every candidate is fitted on the training part and
  scored on the test part; picking the best by test score later is optimistic.

Events are grouped by the set of training samples they observe (no NaN PSI): each group
shares its factorisations. The ridge family (``spec.batched()``) fits a whole group from
one SVD per training set; every other estimator goes event by event through scikit-learn.
With nested StandardScaler → Ridge selection over α (unshuffled KFold, a batch scoring,
no more features than training rows) no block factorises anything: the outer split's
training sets (its training part and the inner folds) are standardised and
eigendecomposed once (:func:`regulas.splicing.shared_ridge.factorize_split`, handed in
as ``shared`` by the engine, once per split for all its blocks). The fully observed events
are fitted from them by a few matrix products (:mod:`regulas.splicing.shared_ridge`), the
events with missing training PSI by one exact call on them
(:mod:`regulas.splicing.missing_route`).
Results for an event depend only on its data, the spec, the options and ``random_state``,
not on which other events share its block (on the shared missing-PSI route, to within its
stopping tolerance, 1e-12 on predictions: events are iterated in chunks).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from sklearn.model_selection import BaseCrossValidator

from regulas.core.errors import ConfigError, RegulasError
from regulas.splicing.block import BlockWork
from regulas.splicing.generic import fit_generic_group
from regulas.splicing.importance import check_permutation
from regulas.splicing.metrics import BATCH_SCORINGS, regression_metrics
from regulas.splicing.missing_route import fit_missing_events, missing_route_applies
from regulas.splicing.pipelines import PipelineSpec
from regulas.splicing.ridge_batch import fit_batched_group, ridge_setup
from regulas.splicing.selection import check_scoring, resolve_inner_cv, seed32
from regulas.splicing.shared_ridge import SplitFactors, factorize_split, fit_shared_group

log = logging.getLogger(__name__)


class BlockInputError(RegulasError):
    """The arrays handed to :func:`evaluate_block` do not fit together."""


@dataclass
class EventFits:
    """Results of one (event block, pipeline, outer split).

    pred: ``(n_candidates_out, n_test, n_events)`` test predictions, NaN where PSI is missing
    (or where the event had too few samples to fit); params: ``[candidate_out][event]``
    hyper-parameters used; metrics: ``{"mse","mae","r2","pearson","spearman"}`` ->
    ``(n_candidates_out, n_events)``; n_train, n_test: ``(n_events,)`` samples with a PSI
    value; fit_time_s: ``(n_candidates_out, n_events)`` (the batched path shares one
    computation and reports its time split evenly); importance: kind (``coef``,
    ``feature_importances``, ``permutation``) -> ``(n_candidates_out, n_features, n_events)``;
    path: ``"batched"`` or ``"generic"``; missing_route: events with missing training PSI
    fitted by the shared missing-PSI solver (:mod:`regulas.splicing.missing_route`; 0 when
    it does not apply), the rest of a batched block by per-group SVDs.
    """

    pred: np.ndarray
    params: list[list[dict[str, Any]]]
    metrics: dict[str, np.ndarray]
    n_train: np.ndarray
    n_test: np.ndarray
    fit_time_s: np.ndarray
    importance: dict[str, np.ndarray]
    path: str = "generic"
    missing_route: int = 0


def _check_arrays(X: np.ndarray, Y: np.ndarray, train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, ...]:
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2:
        raise BlockInputError(f"X and Y must be 2-D (samples x features, samples x events); got {X.shape} and {Y.shape}")
    if X.shape[0] != Y.shape[0]:
        raise BlockInputError(f"X has {X.shape[0]} samples but Y has {Y.shape[0]}")
    if not np.isfinite(X).all():
        raise BlockInputError("X contains NaN or infinite values; features must be complete")
    idx = []
    for name, a in (("train", train), ("test", test)):
        a = np.asarray(a)
        if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer) or len(a) == 0:
            raise BlockInputError(f"{name} must be a non-empty 1-D array of sample indices, got {a!r}")
        if a.min() < 0 or a.max() >= X.shape[0]:
            raise BlockInputError(f"{name} indices must lie in [0, {X.shape[0]}), got {a.min()}..{a.max()}")
        idx.append(a.astype(np.intp))
    return X, Y, idx[0], idx[1]


def training_groups(observed: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(training-row positions, event indices) for events with the same observed rows.

    observed: ``(n_train, n_events)`` booleans; each event's training rows are its observed ones.
    """
    if observed.shape[1] == 0:
        return
    keys = np.packbits(observed, axis=0).T
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    for g in np.argsort(first):
        events = np.flatnonzero(inverse == g)
        yield np.flatnonzero(observed[:, events[0]]), events


def evaluate_block(
    X: np.ndarray,
    Y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    spec: PipelineSpec,
    *,
    selection: Literal["nested", "outer"] = "nested",
    inner_cv: BaseCrossValidator | int = 5,
    scoring: str = "neg_mean_squared_error",
    permutation: dict[str, Any] | None = None,
    random_state: int,
    shared: SplitFactors | None = None,
) -> EventFits:
    """Fit ``spec`` for every event (column of Y) on ``train`` and predict ``test``.

    X: ``(n_samples, n_features)`` float, complete; Y: ``(n_samples, n_events)`` PSI with
    NaN = missing (each event drops its own missing samples); train, test: sample indices
    of the outer split. Nested StandardScaler → Ridge over α with an unshuffled KFold, a
    batch scoring and no more features than training rows fits the fully observed events
    from the split's shared factorisations and the events with missing training PSI
    through one shared solver call on them (exact to ~1e-12 on predictions;
    ``missing_route`` counts them); other pipelines fit one SVD per group of identical
    training rows. ``permutation`` ({n_repeats, scoring, max_samples}) asks for permutation
    importance on the test part. ``random_state`` seeds the inner splitter (when it
    shuffles without a seed), randomised estimators and permutation importance.
    ``shared``: the split's factorisations (:func:`regulas.splicing.shared_ridge.factorize_split`
    of ``X[train]``, ``X[test]`` and the inner cv), which every block of the split reuses;
    computed here when the shared route applies and it is None.
    """
    if selection not in ("nested", "outer"):
        raise ConfigError(f"selection must be 'nested' or 'outer', got {selection!r}", key="selection")
    check_scoring(scoring)
    perm = check_permutation(permutation)
    X, Y, train, test = _check_arrays(X, Y, train, test)
    candidates = spec.candidates()
    nested = selection == "nested"
    b = BlockWork(
        X=X,
        Y=Y,
        test=test,
        spec=spec,
        candidates=candidates,
        nested=nested,
        cv=resolve_inner_cv(inner_cv, random_state) if nested else None,
        scoring=scoring,
        permutation=perm,
        seed=seed32(random_state),
    )
    batched = spec.batched() and (not nested or len(candidates) == 1 or scoring in BATCH_SCORINGS)
    setup = ridge_setup(spec, candidates) if batched else None
    shared_route = missing_route_applies(b, setup, len(train))
    observed = ~np.isnan(Y)
    with_gaps: list[np.ndarray] = []  # events whose training rows are not all of train
    complete = np.zeros(0, dtype=np.intp)  # events observed on every training row (shared route)
    for rows, events in training_groups(observed[train]):
        if shared_route and len(rows) < len(train):
            with_gaps.append(events)
        elif shared_route:
            complete = events
        elif setup is not None:
            fit_batched_group(b, setup, train[rows], events)
        else:
            fit_generic_group(b, train[rows], events)
    if shared_route and (len(complete) or with_gaps):
        assert setup is not None
        if shared is None:
            shared = factorize_split(X[train], X[test], b.cv, setup.alphas)
        fit_shared_group(b, setup, shared, train, complete)
    n_route = 0
    if setup is not None and with_gaps:
        routed = np.sort(np.concatenate(with_gaps))
        res = fit_missing_events(b, setup, train, routed, shared.sets if shared is not None else None)
        n_route = len(routed)
        routes = Counter(res.route.tolist())
        log.debug("%s: %d events with missing training PSI by the shared solver: %s", spec.name, n_route, routes)
    unfitted = int(np.isnan(b.pred).all(axis=(0, 1)).sum())
    if unfitted:
        log.info("%s: %d of %d events had too few training samples to fit", spec.name, unfitted, Y.shape[1])
    missing_test = ~observed[test]
    b.pred[:, missing_test] = np.nan
    per_out = [regression_metrics(Y[test], b.pred[i]) for i in range(b.n_out)]
    metrics = {name: np.stack([m[name] for m in per_out]) for name in per_out[0]}
    return EventFits(
        pred=b.pred,
        params=b.params,
        metrics=metrics,
        n_train=observed[train].sum(axis=0),
        n_test=observed[test].sum(axis=0),
        fit_time_s=b.fit_time_s,
        importance=b.importance,
        path="batched" if batched else "generic",
        missing_route=n_route,
    )
