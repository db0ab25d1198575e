"""Feature importances of fitted pipelines: coef_, feature_importances_, permutation.

All are vectors over the input features (``n_features``). ``coef_`` and
``feature_importances_`` are the final estimator's, in the space the transformations
produce; they are kept only when that space has one column per input feature (a
per-feature scaler), since otherwise they would not name input features.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.inspection import permutation_importance
from sklearn.pipeline import Pipeline

from regulas.core.errors import ConfigError

PERMUTATION_DEFAULTS: dict[str, Any] = {"n_repeats": 5, "scoring": None, "max_samples": 1.0}


def check_permutation(options: dict[str, Any] | None, *, key: str = "importance.permutation") -> dict[str, Any] | None:
    """Validated permutation-importance options (None: not asked for)."""
    if options is None:
        return None
    if not isinstance(options, dict):
        raise ConfigError(f"expected a mapping with keys {sorted(PERMUTATION_DEFAULTS)}, got {options!r}", key=key)
    unknown = sorted(set(options) - set(PERMUTATION_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown keys {unknown}; allowed: {sorted(PERMUTATION_DEFAULTS)}", key=f"{key}.{unknown[0]}")
    out = {**PERMUTATION_DEFAULTS, **options}
    n_repeats = out["n_repeats"]
    if isinstance(n_repeats, bool) or not isinstance(n_repeats, int) or n_repeats < 1:
        raise ConfigError(f"n_repeats must be a positive integer, got {n_repeats!r}", key=f"{key}.n_repeats")
    if out["scoring"] is not None and not isinstance(out["scoring"], str):
        raise ConfigError(f"scoring must be a scikit-learn scorer name, got {out['scoring']!r}", key=f"{key}.scoring")
    return out


def model_importances(pipe: Pipeline, n_features: int) -> dict[str, np.ndarray]:
    """``coef`` / ``feature_importances`` of the final estimator, ``(n_features,)`` each."""
    model = pipe.steps[-1][1]
    out: dict[str, np.ndarray] = {}
    for kind, attr in (("coef", "coef_"), ("feature_importances", "feature_importances_")):
        value = getattr(model, attr, None)
        if value is None:
            continue
        value = np.asarray(value, dtype=np.float64).ravel()
        if value.size == n_features:
            out[kind] = value
    return out


def permutation_scores(
    estimator: Any, X: np.ndarray, y: np.ndarray, options: dict[str, Any], *, scoring: str, seed: int
) -> np.ndarray:
    """Mean drop in score when one feature is shuffled (sklearn.inspection semantics): ``(n_features,)``."""
    result = permutation_importance(
        estimator,
        X,
        y,
        scoring=options["scoring"] or scoring,
        n_repeats=options["n_repeats"],
        max_samples=options["max_samples"],
        random_state=seed,
    )
    return np.asarray(result["importances_mean"], dtype=np.float64)
