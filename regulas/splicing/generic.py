"""The generic per-event path: any scikit-learn pipeline, fitted event by event.

Per event this does what GridSearchCV(pipeline, grid, cv=inner splits, scoring) then
``predict`` does (nested mode), or fits every candidate on the outer training part (outer
mode), with plain clone / fit / predict so the cost is the estimator's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.metrics import get_scorer

from regulas.splicing.block import BlockWork
from regulas.splicing.importance import model_importances, permutation_scores
from regulas.splicing.selection import Splits, best_candidate, inner_splits


class SearchFailed(ValueError):
    """Every candidate of an event's inner search failed (GridSearchCV would raise)."""


def _neg_mse(pipe: Any, X: np.ndarray, y: np.ndarray) -> float:
    resid = y - pipe.predict(X)
    return -float(np.mean(resid * resid))


def scorer_for(scoring: str) -> Callable[[Any, np.ndarray, np.ndarray], float]:
    """scikit-learn's scorer, or a direct computation of the same value for the default."""
    return _neg_mse if scoring == "neg_mean_squared_error" else get_scorer(scoring)


def _select(b: BlockWork, protos: list[Any], splits: Splits, X: np.ndarray, y: np.ndarray) -> int:
    """Index of the candidate GridSearchCV would choose for one event."""
    score = scorer_for(b.scoring)
    scores = np.empty((len(splits), len(protos), 1))
    for c, proto in enumerate(protos):
        for k, (tr, va) in enumerate(splits):
            try:
                pipe = clone(proto).fit(X[tr], y[tr])
                scores[k, c, 0] = score(pipe, X[va], y[va])
            except Exception:  # noqa: BLE001 - GridSearchCV's error_score=nan: the candidate scores NaN
                scores[k, c, 0] = np.nan
    if np.isnan(scores).all():
        raise SearchFailed(f"every candidate failed to fit in every inner fold ({len(protos)} candidates)")
    return int(best_candidate(scores)[0])


def chosen_params(pipe: Any, candidate: dict[str, Any]) -> dict[str, Any]:
    """The candidate, plus ``alpha_`` when the model chose it itself (RidgeCV, LassoCV, ...)."""
    alpha = getattr(pipe.steps[-1][1], "alpha_", None)
    if isinstance(alpha, (int, float, np.number)):
        return {**candidate, "alpha_": float(alpha)}
    return dict(candidate)


def fit_generic_group(b: BlockWork, rows: np.ndarray, events: np.ndarray) -> None:
    """Fit the events that share the training rows ``rows`` one by one."""
    protos = [b.spec.build(c, random_state=b.seed) for c in b.candidates]
    search = b.nested and len(protos) > 1
    splits = inner_splits(b.cv, len(rows)) if search else None
    if len(rows) < 2 or (search and splits is None):
        return  # too few samples to fit (or to split): the events stay NaN
    X_train, X_test = b.X[rows], b.X[b.test]
    n_features = b.X.shape[1]
    for e in events:
        try:
            _fit_event(b, protos, splits, search, X_train, X_test, rows, int(e), n_features)
        except SearchFailed as exc:  # GridSearchCV would raise for this event
            # the event stays NaN and its params say why; the other events of the block go on
            for out in range(b.n_out):
                b.pred[out, :, e] = np.nan
                b.params[out][e] = {"error": f"{type(exc).__name__}: {exc}"}


def _fit_event(
    b: BlockWork,
    protos: list[Any],
    splits: Splits | None,
    search: bool,
    X_train: np.ndarray,
    X_test: np.ndarray,
    rows: np.ndarray,
    e: int,
    n_features: int,
) -> None:
    """Select (nested), fit, predict and score the importances of one event."""
    y = b.Y[rows, e]
    t0 = time.perf_counter()
    chosen = [_select(b, protos, splits, X_train, y)] if search and splits is not None else (
        [0] if b.nested else list(range(len(protos)))
    )
    search_time = time.perf_counter() - t0
    for out, c in enumerate(chosen):
        try:
            _fit_candidate(b, protos[c], b.candidates[c], out, X_train, X_test, y, e, n_features, search_time)
        except Exception as exc:  # noqa: BLE001 - this candidate of this event stays NaN; the rest go on
            b.pred[out, :, e] = np.nan
            b.params[out][e] = {**b.candidates[c], "error": f"{type(exc).__name__}: {exc}"}


def _fit_candidate(
    b: BlockWork,
    proto: Any,
    candidate: dict[str, Any],
    out: int,
    X_train: np.ndarray,
    X_test: np.ndarray,
    y: np.ndarray,
    e: int,
    n_features: int,
    search_time: float,
) -> None:
    t1 = time.perf_counter()
    pipe = clone(proto).fit(X_train, y)
    b.pred[out, :, e] = pipe.predict(X_test)
    b.fit_time_s[out, e] = time.perf_counter() - t1 + search_time
    b.params[out][e] = chosen_params(pipe, candidate)
    for kind, values in model_importances(pipe, n_features).items():
        b.set_importance(kind, out, e, values)
    if b.permutation is not None:
        obs = b.test_rows(e)
        if len(obs) >= 2:
            values = permutation_scores(
                pipe, X_test[obs], b.Y[b.test[obs], e], b.permutation, scoring=b.scoring, seed=b.seed
            )
            b.set_importance("permutation", out, e, values)
