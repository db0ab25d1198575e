"""Hyper-parameter selection with GridSearchCV's semantics.

GridSearchCV scores every candidate on every inner fold, averages over folds without
weights (``mean_test_score``), ranks with ``rankdata(-mean, method="min")`` and takes the
first candidate of the best rank: the first maximum, in ParameterGrid order. A NaN mean
ranks last. The inner splits depend only on the number of training samples of an event
(KFold, ShuffleSplit, RepeatedKFold, ...), so they are computed once per set of training
rows and shared by every event with those rows; splitters that need ``y`` or ``groups``
are not supported.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.metrics import get_scorer
from sklearn.model_selection import BaseCrossValidator, KFold

from regulas.core.errors import ConfigError

Splits = list[tuple[np.ndarray, np.ndarray]]


def seed32(random_state: int, stream: int = 0) -> int:
    """A 32-bit seed (what scikit-learn accepts) drawn from a study seed of any size."""
    return int(np.random.SeedSequence([int(random_state), stream]).generate_state(1)[0])


def resolve_inner_cv(inner_cv: Any, random_state: int) -> Any:
    """An int ``k`` means KFold(k) without shuffling, as GridSearchCV's ``cv=k`` for a regressor.

    A splitter that shuffles with ``random_state=None`` gets a seed from ``random_state`` so
    the inner splits are reproducible.
    """
    if isinstance(inner_cv, bool):
        raise ConfigError(f"inner_cv must be an integer >= 2 or a scikit-learn splitter, got {inner_cv!r}", key="inner_cv")
    if isinstance(inner_cv, (int, np.integer)):
        if inner_cv < 2:
            raise ConfigError(f"inner_cv must be an integer >= 2 or a scikit-learn splitter, got {inner_cv!r}", key="inner_cv")
        return KFold(int(inner_cv))
    if not (callable(getattr(inner_cv, "split", None)) and callable(getattr(inner_cv, "get_n_splits", None))):
        raise ConfigError(
            f"inner_cv must be an integer >= 2 or a scikit-learn splitter (with split and get_n_splits), got {inner_cv!r}",
            key="inner_cv",
        )
    params = inner_cv.get_params() if hasattr(inner_cv, "get_params") else {}
    if "random_state" in params and params["random_state"] is None and params.get("shuffle", True):
        inner_cv = clone(inner_cv).set_params(random_state=seed32(random_state, 1))
    return inner_cv


def inner_splits(cv: BaseCrossValidator, n_samples: int) -> Splits | None:
    """The inner (train, validation) index pairs for ``n_samples`` training samples.

    None when the splitter cannot split that few samples (the event is then left unfitted).
    """
    if n_samples < 2:
        return None
    try:
        return [(np.asarray(tr), np.asarray(va)) for tr, va in cv.split(np.zeros((n_samples, 1)))]
    except ValueError:
        return None


def check_scoring(scoring: str) -> str:
    """Fail early on a scoring name scikit-learn does not know."""
    try:
        get_scorer(scoring)
    except (ValueError, TypeError):
        raise ConfigError(
            f"unknown scoring {scoring!r}; expected a scikit-learn scorer name such as neg_mean_squared_error",
            key="scoring",
        ) from None
    return scoring


def best_candidate(fold_scores: np.ndarray) -> np.ndarray:
    """Index of the chosen candidate per event from ``(n_folds, n_candidates, n_events)`` scores.

    Mean over folds, NaN ranked last, first maximum wins (GridSearchCV's ``best_index_``).
    """
    means = np.mean(fold_scores, axis=0)
    means = np.where(np.isnan(means), -np.inf, means)
    return np.argmax(means, axis=0)
