"""Ridge regression for many targets sharing one design matrix, from one SVD; and the
multi-output estimator with the penalty chosen by efficient leave-one-out or GCV.

Model: Y = 1 b^T + X W + E (Y: n x m targets, X: n x p, W: p x m), fitted by minimising
||Y - 1 b^T - X W||_F^2 + alpha ||W||_F^2 with b unpenalised. One thin SVD of the
column-centred X serves every alpha and every target: with Xc = U diag(s) V^T (r kept
singular values), W(alpha) = V diag(s / (s^2 + alpha)) U^T Yc, and the hat matrix is
H = U diag(s^2 / (s^2 + alpha)) U^T + 1 1^T / n. :class:`SVDRidge` is that engine (used by
:class:`RidgeGCV` here and by the batched splicing path); for the motif model X = M
(G x T genes x motifs) and Y is G x P conditions.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import scipy.linalg
from sklearn.base import BaseEstimator, RegressorMixin

from regulas.lmm.linear import LinearPredictMixin
from regulas.lmm.validation import LMMInputError, check_choice, check_design


class SVDRidge:
    """Thin SVD of the centred X (n x p), shared by every target and every alpha.

    ``rcond``: singular values at or below ``rcond * s_max`` are dropped (0 keeps every non-zero
    one). ``lapack``: whose LAPACK computes the SVD, numpy's or scipy's (their wheels bundle
    different builds whose last bits can differ; each caller keeps the one it always used).
    """

    def __init__(self, X: np.ndarray, *, fit_intercept: bool, rcond: float = 0.0,
                 lapack: Literal["numpy", "scipy"] = "scipy") -> None:
        X = np.asarray(X, dtype=np.float64)
        self.fit_intercept = fit_intercept
        self.n = X.shape[0]
        self.x_mean = X.mean(axis=0) if fit_intercept else np.zeros(X.shape[1])
        Xc = X - self.x_mean
        if lapack == "numpy":
            U, s, Vt = np.linalg.svd(Xc, full_matrices=False)
        else:
            U, s, Vt = scipy.linalg.svd(Xc, full_matrices=False, lapack_driver="gesdd", check_finite=False)
        keep = s > rcond * s[0] if s.size and s[0] > 0 else np.zeros(s.shape, dtype=bool)
        self.U, self.s, self.Vt = U[:, keep], s[keep], Vt[keep]

    def project(self, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(U^T Yc: ``(r, m)``, y mean: ``(m,)``) for training targets Y ``(n, m)``."""
        y_mean = Y.mean(axis=0) if self.fit_intercept else np.zeros(Y.shape[1])
        return self.U.T @ (Y - y_mean), y_mean

    def shrink(self, alpha: float | np.ndarray) -> np.ndarray:
        """The spectral filter s / (s^2 + alpha) (1 / s for alpha = 0): ``(r,)`` for one alpha,
        ``(r, m)`` for one alpha per target given as ``(m,)``."""
        if np.ndim(alpha):
            s = self.s[:, None]
            return np.asarray(s / (s * s + np.asarray(alpha)[None, :]))
        return np.asarray(self.s / (self.s * self.s + alpha))

    def rotate(self, X_new: np.ndarray) -> np.ndarray:
        """(X' - x mean) V: ``(n_new, r)``, new rows in the singular basis."""
        return np.asarray((np.asarray(X_new, dtype=np.float64) - self.x_mean) @ self.Vt.T)

    def predict(self, X_new: np.ndarray, Y: np.ndarray, alphas: np.ndarray) -> np.ndarray:
        """Predictions ``(n_alphas, n_new, m)`` at X_new ``(n_new, p)`` of models fitted to Y ``(n, m)``."""
        UtY, y_mean = self.project(Y)
        A = self.rotate(X_new)
        out = np.empty((len(alphas), A.shape[0], Y.shape[1]))
        for i, alpha in enumerate(alphas):
            np.matmul(A, self.shrink(alpha)[:, None] * UtY, out=out[i])
            out[i] += y_mean
        return out

    def coef(self, Y: np.ndarray, alpha: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(W ``(p, m)``, intercepts ``(m,)``) at one alpha, or one alpha per target ``(m,)``."""
        UtY, y_mean = self.project(Y)
        filt = self.shrink(alpha)
        W = self.Vt.T @ ((filt if filt.ndim == 2 else filt[:, None]) * UtY)
        return W, y_mean - self.x_mean @ W

    def cv_errors(self, Y: np.ndarray, alphas: np.ndarray, criterion: str = "loo") -> np.ndarray:
        """Mean squared cross-validation error per alpha and target: ``(n_alphas, m)``.

        "loo": exact leave-one-out, e_i / (1 - H_ii) (what RidgeCV's efficient LOO computes);
        "gcv": generalised cross-validation, ||e||^2 / n / (1 - tr(H) / n)^2.
        """
        UtY, y_mean = self.project(Y)
        Yc = Y - y_mean
        U, n = self.U, self.n
        resid0 = Yc - U @ UtY  # part of Y outside the column space, the same for every alpha
        base_h = 1.0 / n if self.fit_intercept else 0.0
        d2 = self.s**2
        U2 = U**2
        crit = np.empty((len(alphas), Y.shape[1]))
        for k, a in enumerate(alphas):
            shrink = a / (d2 + a)  # residual factor in each singular direction
            E = resid0 + U @ (shrink[:, None] * UtY)
            if criterion == "loo":
                h = U2 @ (d2 / (d2 + a)) + base_h
                crit[k] = np.mean((E / (1.0 - h)[:, None]) ** 2, axis=0)
            else:
                trace = float(np.sum(d2 / (d2 + a))) + n * base_h
                crit[k] = np.mean(E**2, axis=0) / (1.0 - trace / n) ** 2
        return crit


class RidgeGCV(LinearPredictMixin, RegressorMixin, BaseEstimator):  # type: ignore[misc]
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
        alphas: Any = np.logspace(-3, 5, 33),  # noqa: B008 - an array default, never mutated
        fit_intercept: bool = True,
        alpha_per_target: bool = False,
        criterion: str = "loo",
    ) -> None:
        self.alphas = alphas
        self.fit_intercept = fit_intercept
        self.alpha_per_target = alpha_per_target
        self.criterion = criterion

    def fit(self, M: Any, Y: Any) -> RidgeGCV:
        """Fit on motif scores M (G x T) and responses Y (G x P, or G)."""
        check_choice("criterion", self.criterion, ("loo", "gcv"))
        alphas = np.atleast_1d(np.asarray(self.alphas, dtype=float))
        if alphas.ndim != 1 or alphas.size == 0 or not np.all(np.isfinite(alphas)) or np.any(alphas <= 0):
            raise LMMInputError(f"alphas must be a non-empty 1-D grid of positive finite numbers; got {self.alphas!r}")
        M, Y = check_design(M, Y)
        engine = SVDRidge(M, fit_intercept=self.fit_intercept, rcond=max(M.shape) * np.finfo(float).eps, lapack="numpy")
        crit = engine.cv_errors(Y, alphas, self.criterion)
        self.cv_values_ = crit
        if self.alpha_per_target:
            idx = np.argmin(crit, axis=0)
            alpha = alphas[idx]
            self.alpha_ = alpha
        else:
            idx = np.full(Y.shape[1], int(np.argmin(crit.mean(axis=1))))
            alpha = alphas[idx]
            self.alpha_ = float(alpha[0])
        coef, intercept = engine.coef(Y, alpha)
        self.coef_ = np.asarray(coef)
        self.intercept_ = np.asarray(intercept)
        self.n_features_in_ = M.shape[1]
        return self
