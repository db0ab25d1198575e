"""The generic per-event path: any scikit-learn pipeline, fitted event by event.

Per event this does what GridSearchCV(pipeline, grid, cv=inner splits, scoring) then
``predict`` does (nested mode), or fits every candidate on the outer training part (outer
mode), with plain clone / fit / predict so the cost is the estimator's own. When the
transformations are per-feature affine scalers (fitted on X alone), the events of a group
share one scaler fit per (inner) training set and only the models are fitted per event:
the same numbers as one Pipeline per event, without refitting the same scaler each time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sklearn
from sklearn.base import clone
from sklearn.metrics import get_scorer
from sklearn.pipeline import Pipeline

from regulas.splicing.block import BlockWork, fit_transformations
from regulas.splicing.importance import model_importances, permutation_scores
from regulas.splicing.pipelines import PipelineSpec, affine_scalers, issubclass_exact
from regulas.splicing.selection import Splits, best_candidate, inner_splits


class SearchFailed(ValueError):
    """Every candidate of an event's inner search failed (GridSearchCV would raise)."""


def _neg_mse(pipe: Any, X: np.ndarray, y: np.ndarray) -> float:
    resid = y - pipe.predict(X)
    return -float(np.mean(resid * resid))


def scorer_for(scoring: str) -> Callable[[Any, np.ndarray, np.ndarray], float]:
    """scikit-learn's scorer, or a direct computation of the same value for the default."""
    return _neg_mse if scoring == "neg_mean_squared_error" else get_scorer(scoring)


def _select(b: BlockWork, protos: list[Any], folds: list[Fold], y: np.ndarray) -> int:
    """Index of the candidate GridSearchCV would choose for one event."""
    score = scorer_for(b.scoring)
    scores = np.empty((len(folds), len(protos), 1))
    for c, proto in enumerate(protos):
        for k, fold in enumerate(folds):
            try:
                est = clone(proto).fit(fold.X_fit, y[fold.fit])
                scores[k, c, 0] = score(est, fold.X_val, y[fold.val])
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


@dataclass(frozen=True)
class Fold:
    """One inner fold: the (transformed) rows to fit and to validate on, and their positions."""

    X_fit: np.ndarray
    X_val: np.ndarray
    fit: np.ndarray
    val: np.ndarray


@dataclass(frozen=True)
class Prepared:
    """What every event of a group shares: the estimators to clone and the matrices they see.

    With shared transformations ``protos`` are the bare models and the matrices are already
    transformed (``steps`` rebuilds a whole pipeline from the fitted transformations);
    otherwise ``protos`` are whole pipelines fitted on the raw rows.
    """

    protos: list[Any]
    X_train: np.ndarray
    X_test: np.ndarray
    folds: list[Fold]
    steps: list[tuple[str, Any]] | None


def shares_transformations(spec: PipelineSpec) -> bool:
    """True when every transformation is a per-feature affine scaler (or there is none).

    Such a scaler is fitted on X alone and deterministically, so one fit per training set is
    exactly what each event's own Pipeline.fit would compute: the group fits it once.
    """
    return all(issubclass_exact(cls, affine_scalers()) for cls in spec.classes()[:-1])


def prepare_group(b: BlockWork, rows: np.ndarray, splits: Splits | None) -> Prepared:
    pipes = [b.spec.build(c, random_state=b.seed) for c in b.candidates]
    X_train, X_test = b.X[rows], b.X[b.test]
    if not shares_transformations(b.spec):
        folds = [Fold(X_train[tr], X_train[va], tr, va) for tr, va in splits or []]
        return Prepared(pipes, X_train, X_test, folds, None)
    transformers = b.transformations()
    folds = []
    for tr, va in splits or []:
        _, (X_fit, X_val) = fit_transformations(transformers, X_train[tr], X_train[va])
        folds.append(Fold(X_fit, X_val, tr, va))
    fitted, (X_train_t, X_test_t) = fit_transformations(transformers, X_train, X_test)
    names = [name for name, _ in pipes[0].steps[:-1]]
    return Prepared([p.steps[-1][1] for p in pipes], X_train_t, X_test_t, folds, list(zip(names, fitted)))


def fit_generic_group(b: BlockWork, rows: np.ndarray, events: np.ndarray) -> None:
    """Fit the events that share the training rows ``rows`` one by one."""
    search = b.nested and len(b.candidates) > 1
    splits = inner_splits(b.cv, len(rows)) if search else None
    if len(rows) < 2 or (search and splits is None):
        return  # too few samples to fit (or to split): the events stay NaN
    prep = prepare_group(b, rows, splits)
    # PipelineSpec checked every fixed and grid value before any work: scikit-learn need
    # not validate the same parameters again in each of the thousands of fits
    with sklearn.config_context(skip_parameter_validation=True):
        _fit_events(b, prep, search, rows, events)


def _fit_events(b: BlockWork, prep: Prepared, search: bool, rows: np.ndarray, events: np.ndarray) -> None:
    for e in events:
        try:
            _fit_event(b, prep, search, rows, int(e))
        except SearchFailed as exc:  # GridSearchCV would raise for this event
            # the event stays NaN and its params say why; the other events of the block go on
            for out in range(b.n_out):
                b.pred[out, :, e] = np.nan
                b.params[out][e] = {"error": f"{type(exc).__name__}: {exc}"}


def _fit_event(b: BlockWork, prep: Prepared, search: bool, rows: np.ndarray, e: int) -> None:
    """Select (nested), fit, predict and score the importances of one event."""
    y = b.Y[rows, e]
    t0 = time.perf_counter()
    chosen = [_select(b, prep.protos, prep.folds, y)] if search else ([0] if b.nested else list(range(len(prep.protos))))
    search_time = time.perf_counter() - t0
    for out, c in enumerate(chosen):
        try:
            _fit_candidate(b, prep, c, out, y, e, search_time)
        except Exception as exc:  # noqa: BLE001 - this candidate of this event stays NaN; the rest go on
            b.pred[out, :, e] = np.nan
            b.params[out][e] = {**b.candidates[c], "error": f"{type(exc).__name__}: {exc}"}


def _fit_candidate(b: BlockWork, prep: Prepared, c: int, out: int, y: np.ndarray, e: int, search_time: float) -> None:
    t1 = time.perf_counter()
    est = clone(prep.protos[c]).fit(prep.X_train, y)
    b.pred[out, :, e] = est.predict(prep.X_test)
    b.fit_time_s[out, e] = time.perf_counter() - t1 + search_time
    # the whole fitted pipeline, for its parameters and importances on the raw features
    pipe = est if prep.steps is None else Pipeline([*prep.steps, (b.spec.model_name, est)])
    b.params[out][e] = chosen_params(pipe, b.candidates[c])
    for kind, values in model_importances(pipe, b.X.shape[1]).items():
        b.set_importance(kind, out, e, values)
    if b.permutation is not None:
        obs = b.test_rows(e)
        if len(obs) >= 2:
            values = permutation_scores(
                pipe, b.X[b.test[obs]], b.Y[b.test[obs], e], b.permutation, scoring=b.scoring, seed=b.seed
            )
            b.set_importance("permutation", out, e, values)
