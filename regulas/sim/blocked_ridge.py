"""Ridge for many conditions, block of conditions by block: what :class:`regulas.lmm.RidgeGCV` computes,
with O(G b) working memory instead of several G x P arrays.

RidgeGCV's leave-one-out criterion is a mean over genes per condition, and its coefficients
are per condition, so both can be computed on column blocks of Y (G x b) with one SVD of the
centred M (:class:`regulas.lmm.ridge.SVDRidge`) shared by all blocks; the one alpha is then the
minimiser of the criterion averaged over all P conditions, as in RidgeGCV. At P = 10,000 the
whole-Y path holds about five G x P arrays (8 GB at G = 20,000); this one holds Y and a few blocks.
"""

from __future__ import annotations

import numpy as np

from regulas.lmm.ridge import SVDRidge
from regulas.sim.blocked import block_slices


def ridge_by_condition_blocks(M: np.ndarray, Y: np.ndarray, alphas: np.ndarray, fit_intercept: bool,
                              width: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(coef (T, P), intercept (P,), alpha): RidgeGCV(alphas, fit_intercept).fit(M, Y) with one shared alpha,
    computed on blocks of ``width`` conditions (M: G x T, Y: G x P)."""
    alphas = np.asarray(alphas, dtype=float)
    if not np.isfinite(Y).all():
        raise ValueError("Y has non-finite values")
    engine = SVDRidge(M, fit_intercept=fit_intercept, rcond=max(M.shape) * np.finfo(float).eps, lapack="numpy")
    P = Y.shape[1]
    blocks = block_slices(P, width)
    crit = np.empty((len(alphas), P))
    for cols in blocks:
        crit[:, cols] = engine.cv_errors(Y[:, cols], alphas, "loo")
    alpha = float(alphas[int(np.argmin(crit.mean(axis=1)))])
    coef, intercept = np.empty((M.shape[1], P)), np.empty(P)
    for cols in blocks:
        coef[:, cols], intercept[cols] = engine.coef(Y[:, cols], alpha)
    return coef, intercept, alpha
