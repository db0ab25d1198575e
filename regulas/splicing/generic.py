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
            pipe = clone(proto).fit(X[tr], y[tr])
            scores[k, c, 0] = score(pipe, X[va], y[va])
    return int(best_candidate(scores)[0])


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
        y = b.Y[rows, e]
        t0 = time.perf_counter()
        chosen = [_select(b, protos, splits, X_train, y)] if search and splits is not None else (
            [0] if b.nested else list(range(len(protos)))
        )
        search_time = time.perf_counter() - t0
        for out, c in enumerate(chosen):
            t1 = time.perf_counter()
            pipe = clone(protos[c]).fit(X_train, y)
            b.pred[out, :, e] = pipe.predict(X_test)
            b.fit_time_s[out, e] = time.perf_counter() - t1 + search_time
            b.params[out][e] = dict(b.candidates[c])
            for kind, values in model_importances(pipe, n_features).items():
                b.set_importance(kind, out, int(e), values)
            if b.permutation is not None:
                obs = b.test_rows(e)
                if len(obs) >= 2:
                    values = permutation_scores(
                        pipe, X_test[obs], b.Y[b.test[obs], e], b.permutation, scoring=b.scoring, seed=b.seed
                    )
                    b.set_importance("permutation", out, int(e), values)
