"""Per-event regression metrics, vectorised over events, in float64.

Inputs are ``(n_samples, n_events)`` arrays; a NaN in ``y_true`` marks a sample without a
PSI value for that event and is left out of that event's metrics. The values equal
scikit-learn's ``mean_squared_error``, ``mean_absolute_error``, ``r2_score`` and SciPy's
``pearsonr`` / ``spearmanr`` on each event's observed samples, with two conventions:
an event with fewer than ``min_samples`` observed values gets NaN for every metric, and
a constant ``y_true`` (or constant prediction, for the correlations) gives NaN r2 /
Pearson / Spearman rather than scikit-learn's forced-finite 0 or 1.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

METRICS: tuple[str, ...] = ("mse", "mae", "r2", "pearson", "spearman")

#: Inner-CV scorings the batched path computes itself (scikit-learn scorer names; greater is better).
BATCH_SCORINGS: tuple[str, ...] = ("neg_mean_squared_error", "neg_mean_absolute_error", "neg_root_mean_squared_error")


def _as_2d(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a[:, None] if a.ndim == 1 else a


def _pearson(a: np.ndarray, b: np.ndarray, mask: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Pearson r per column over the rows in ``mask`` (a, b already zero outside it)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        da = np.where(mask, a - a.sum(axis=0) / n, 0.0)
        db = np.where(mask, b - b.sum(axis=0) / n, 0.0)
        # Normalise first, as SciPy does, so the products stay in range.
        na = np.sqrt((da * da).sum(axis=0))
        nb = np.sqrt((db * db).sum(axis=0))
        r = ((da / na) * (db / nb)).sum(axis=0)
    r = np.clip(r, -1.0, 1.0)
    r[(na == 0) | (nb == 0)] = np.nan
    return r


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray, *, min_samples: int = 2) -> dict[str, np.ndarray]:
    """MSE, MAE, R², Pearson r and Spearman ρ per event.

    y_true, y_pred: ``(n_samples, n_events)`` (or 1-D for one event); NaN in ``y_true`` = missing.
    A NaN prediction where ``y_true`` is observed makes that event's metrics NaN.
    Returns ``{metric: (n_events,) float64}`` for each name in :data:`METRICS`.
    """
    yt, yp = _as_2d(y_true), _as_2d(y_pred)
    if yt.shape != yp.shape:
        raise ValueError(f"y_true has shape {yt.shape} but y_pred has shape {yp.shape}")
    mask = ~np.isnan(yt)
    n = mask.sum(axis=0).astype(np.float64)
    t = np.where(mask, yt, 0.0)
    p = np.where(mask, yp, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        resid = t - p
        ss_res = (resid * resid).sum(axis=0)
        mse = ss_res / n
        mae = np.abs(resid).sum(axis=0) / n
        dt = np.where(mask, t - t.sum(axis=0) / n, 0.0)
        ss_tot = (dt * dt).sum(axis=0)
        r2 = 1.0 - ss_res / ss_tot
    r2[ss_tot == 0] = np.nan
    pearson = _pearson(t, p, mask, n)
    # Average ranks over each event's observed samples (scipy.stats.spearmanr's ties).
    rt = rankdata(np.where(mask, yt, np.nan), axis=0, nan_policy="omit")
    rp = rankdata(np.where(mask, yp, np.nan), axis=0, nan_policy="omit")
    bad_pred = (np.isnan(yp) & mask).any(axis=0)
    spearman = _pearson(np.where(mask, rt, 0.0), np.where(mask, np.nan_to_num(rp), 0.0), mask, n)
    spearman[bad_pred] = np.nan
    out = {"mse": mse, "mae": mae, "r2": r2, "pearson": pearson, "spearman": spearman}
    few = n < min_samples
    for values in out.values():
        values[few] = np.nan
    return out


def validation_scores(scoring: str, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Inner-CV score (greater is better) per candidate and event, as scikit-learn's scorer.

    y_true: ``(n_val, n_events)``; y_pred: ``(n_candidates, n_val, n_events)``.
    Returns ``(n_candidates, n_events)``. ``scoring`` is one of :data:`BATCH_SCORINGS`.
    """
    resid = y_pred - y_true[None]
    if scoring == "neg_mean_squared_error":
        return -np.mean(resid * resid, axis=1)
    if scoring == "neg_root_mean_squared_error":
        return -np.sqrt(np.mean(resid * resid, axis=1))
    if scoring == "neg_mean_absolute_error":
        return -np.mean(np.abs(resid), axis=1)
    raise ValueError(f"scoring {scoring!r} is not computed in batch; expected one of {BATCH_SCORINGS}")
