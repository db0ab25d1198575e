"""Multi-output ridge regression with the penalty chosen by efficient leave-one-out or GCV.

Model: Y = 1 b^T + M beta + E (Y: G x P, M: G x T, beta: T x P), fitted by minimising
||Y - 1 b^T - M beta||_F^2 + alpha ||beta||_F^2 with b unpenalised. One thin SVD of the
column-centred M serves every alpha and every condition: with Mc = U diag(d) V^T,
beta(alpha) = V diag(d / (d^2 + alpha)) U^T Yc, and the hat matrix is
H = U diag(d^2 / (d^2 + alpha)) U^T + 1 1^T / G.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from regulas.lmm.validation import LMMInputError, check_choice, check_design, check_matrix


class RidgeGCV(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """Ridge regression for all P conditions at once, alpha picked on a grid.

    Parameters
    ----------
    alphas : grid of positive penalties.
    fit_intercept : unpenalised mean per condition.
    alpha_per_target : False (default): one alpha shared by all conditions, minimising the
        criterion summed over conditions (as RidgeCV); True: each condition its own alpha.
    criterion : "loo" (default): exact leave-one-out squared error, e_i / (1 - h_ii), the
        quantity sklearn.linear_model.RidgeCV minimises with cv=None; "gcv": generalised
        cross-validation, ||e||^2 / (1 - tr(H) / G)^2.

    Attributes
    ----------
    coef_ : (T, P) coefficients.
    intercept_ : (P,) intercepts.
    alpha_ : float (shared) or (P,) array (alpha_per_target=True).
    cv_values_ : (n_alphas, P) criterion per alpha and condition (mean squared error).
    """

    def __init__(
        self,
        alphas: Any = np.logspace(-3, 5, 33),
        fit_intercept: bool = True,
        alpha_per_target: bool = False,
        criterion: str = "loo",
    ) -> None:
        self.alphas = alphas
        self.fit_intercept = fit_intercept
        self.alpha_per_target = alpha_per_target
        self.criterion = criterion

    def fit(self, M: Any, Y: Any) -> "RidgeGCV":
        """Fit on motif scores M (G x T) and responses Y (G x P, or G)."""
        check_choice("criterion", self.criterion, ("loo", "gcv"))
        alphas = np.atleast_1d(np.asarray(self.alphas, dtype=float))
        if alphas.ndim != 1 or alphas.size == 0 or not np.all(np.isfinite(alphas)) or np.any(alphas <= 0):
            raise LMMInputError(f"alphas must be a non-empty 1-D grid of positive finite numbers; got {self.alphas!r}")
        M, Y = check_design(M, Y)
        G = M.shape[0]
        m_mean = M.mean(axis=0) if self.fit_intercept else np.zeros(M.shape[1])
        y_mean = Y.mean(axis=0) if self.fit_intercept else np.zeros(Y.shape[1])
        Mc, Yc = M - m_mean, Y - y_mean
        U, d, Vt = np.linalg.svd(Mc, full_matrices=False)
        keep = d > d[0] * max(Mc.shape) * np.finfo(float).eps if d.size and d[0] > 0 else np.zeros(d.size, bool)
        U, d, Vt = U[:, keep], d[keep], Vt[keep]
        UtY = U.T @ Yc  # r x P
        resid0 = Yc - U @ UtY  # part of Y outside the column space, the same for every alpha
        base_h = 1.0 / G if self.fit_intercept else 0.0
        d2 = d**2
        U2 = U**2
        crit = np.empty((alphas.size, Y.shape[1]))
        for k, a in enumerate(alphas):
            shrink = a / (d2 + a)  # residual factor in each singular direction
            E = resid0 + U @ (shrink[:, None] * UtY)
            if self.criterion == "loo":
                h = U2 @ (d2 / (d2 + a)) + base_h
                crit[k] = np.mean((E / (1.0 - h)[:, None]) ** 2, axis=0)
            else:
                trace = float(np.sum(d2 / (d2 + a))) + G * base_h
                crit[k] = np.mean(E**2, axis=0) / (1.0 - trace / G) ** 2
        self.cv_values_ = crit
        if self.alpha_per_target:
            idx = np.argmin(crit, axis=0)
            alpha = alphas[idx]
            self.alpha_ = alpha
        else:
            idx = np.full(Y.shape[1], int(np.argmin(crit.mean(axis=1))))
            alpha = alphas[idx]
            self.alpha_ = float(alpha[0])
        coef = Vt.T @ ((d[:, None] / (d2[:, None] + alpha[None, :])) * UtY)
        self.coef_ = np.asarray(coef)
        self.intercept_ = np.asarray(y_mean - m_mean @ coef)
        self.n_features_in_ = M.shape[1]
        return self

    def predict(self, M: Any) -> np.ndarray:
        """M coef_ + intercept_ (n x P)."""
        check_is_fitted(self, "coef_")
        M = check_matrix("M (genes x motifs)", M)
        if M.shape[1] != self.coef_.shape[0]:
            raise LMMInputError(f"M has {M.shape[1]} motif columns; the model was fitted with {self.coef_.shape[0]}")
        return np.asarray(M @ self.coef_ + self.intercept_)
