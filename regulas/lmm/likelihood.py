"""Exact log-likelihood and analytic gradients of the Kronecker-sum LMM in O(r P^2 + P^3).

Model (G genes, T motifs, P conditions)::

    vec(Y) ~ N(vec(1 b^T), C0 (x) K + C1 (x) I_G),   K = M M^T / T,

with Y: G x P, M: G x T, b: P (intercept, profiled out by GLS), C0, C1: P x P and vec
stacking columns (so Cov(Y[:, p], Y[:, q]) = C0[p, q] K + C1[p, q] I).

Speed comes from two rotations. Genes: K = U diag(s) U^T with U: G x r (r = rank K <= min(G, T)),
computed once; the G - r null directions of K enter only through Gram matrices such as
Y^T Y - (U^T Y)^T (U^T Y). Conditions: with C1 = L1 L1^T and L1^-1 C0 L1^-T = Q diag(lam) Q^T,
the map Tc = Q^T L1^-1 turns C1 into I and C0 into diag(lam), so the covariance becomes
diagonal, 1 / W[i, p] = lam[p] s[i] + 1, and every evaluation touches only r x P and P x P arrays.

All work happens in internal units (Y centred and divided by a scalar, K divided by its mean
eigenvalue) for conditioning; :meth:`KronSumProblem.log_likelihood` converts exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import eigh
from scipy.linalg.lapack import dtrtri

from regulas.lmm.validation import LMMInputError, check_design

LOG2PI = float(np.log(2.0 * np.pi))


@dataclass
class Evaluation:
    """Everything one evaluation produces (internal units)."""

    loglik: float
    grad_C0: np.ndarray  # d loglik / d C0, symmetric P x P
    grad_C1: np.ndarray  # d loglik / d C1, symmetric P x P
    Tc: np.ndarray  # P x P rotation of the conditions
    Tc_inv: np.ndarray  # its inverse, L1 Q
    lam: np.ndarray  # P eigenvalues of C1^-1/2 C0 C1^-1/2
    W: np.ndarray  # r x P, 1 / (lam s + 1)
    Zhat: np.ndarray  # r x P, W * (rotated residual in the eigenbasis of K)
    intercept: np.ndarray  # P, GLS intercept (internal units)


class KronSumProblem:
    """Data of one fit, decomposed once; evaluates the exact (RE)ML log-likelihood.

    Parameters
    ----------
    M : (G, T) array, motif scores.
    Y : (G, P) array, responses.
    fit_intercept : profile out one mean per condition by GLS (Kron2Sum with X = 1, A = I).
    reml : restricted likelihood (only with fit_intercept).
    decomposition : "auto" | "gram" | "svd". How K's spectrum is obtained: "gram" from the
        eigendecomposition of M^T M (or M M^T when G < T), ~5x cheaper than "svd" (LAPACK
        gesdd); "auto" uses "gram" unless the kept spectrum is ill-conditioned (ratio below
        1e-8), where the explicit SVD keeps U^T Y accurate.
    """

    def __init__(
        self,
        M: np.ndarray,
        Y: np.ndarray,
        *,
        fit_intercept: bool = True,
        reml: bool = False,
        decomposition: str = "auto",
    ) -> None:
        M, Y = check_design(M, Y)
        if reml and not fit_intercept:
            raise LMMInputError("reml=True needs fit_intercept=True (REML integrates out the intercept)")
        if decomposition not in ("auto", "gram", "svd"):
            raise LMMInputError(f"unknown decomposition {decomposition!r}; expected 'auto', 'gram' or 'svd'")
        G, T = M.shape
        P = Y.shape[1]
        self.G, self.T, self.P = G, T, P
        self.fit_intercept = bool(fit_intercept)
        self.reml = bool(reml)

        self.y_mean = Y.mean(axis=0) if fit_intercept else np.zeros(P)
        Yc = Y - self.y_mean
        ss = float(np.einsum("ij,ij->", Yc, Yc))
        if not ss > 0:
            raise LMMInputError("Y is constant in every condition (after removing the intercept); nothing to fit")
        self.y_scale = float(np.sqrt(ss / (G * P)))
        Ys = Yc / self.y_scale

        s_raw, V, Uy, u = _spectrum(M, Ys, decomposition)
        if s_raw.size == 0:
            raise LMMInputError("M is zero (K = M M^T / T has rank 0); the signal term is not identifiable")
        self.k_scale = float(s_raw.sum()) / G  # mean eigenvalue of K over all G directions
        self.s = s_raw / self.k_scale
        self.sqrt_sT = np.sqrt(s_raw * T)  # singular values of M
        self.V = V  # T x r right singular vectors of M
        self.r = self.s.size
        self.Uy = Uy  # r x P, U^T Y (internal units)
        self.u = u if fit_intercept else np.zeros(self.r)  # U^T 1
        ones = np.ones(G)
        # Gram matrices over the G - r null directions of K (exactly zero when r = G)
        if self.r == G:
            self.Nyy = np.zeros((P, P))
            self.Ny1 = np.zeros(P)
            self.n11 = 0.0
        else:
            self.Nyy = Ys.T @ Ys - Uy.T @ Uy
            self.Nyy = (self.Nyy + self.Nyy.T) / 2
            self.Ny1 = (Ys.T @ ones - Uy.T @ self.u) if fit_intercept else np.zeros(P)
            self.n11 = (G - float(self.u @ self.u)) if fit_intercept else 0.0
        self.n_eff = G * P - (P if reml else 0)  # dimension the density lives on

    # -- unit conversions -------------------------------------------------------------
    def to_internal(self, C0: np.ndarray, C1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v = self.y_scale**2
        return np.asarray(C0) * self.k_scale / v, np.asarray(C1) / v

    def to_user(self, C0i: np.ndarray, C1i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v = self.y_scale**2
        return C0i * v / self.k_scale, C1i * v

    def intercept_to_user(self, bi: np.ndarray) -> np.ndarray:
        return np.asarray(self.y_mean + self.y_scale * bi)

    def log_likelihood(self, C0: np.ndarray, C1: np.ndarray) -> tuple[float, np.ndarray]:
        """(log-likelihood, GLS intercept) at user-unit C0 (PSD) and C1 (PD), P x P each."""
        C0i, C1i = self.to_internal(C0, C1)
        try:
            L1 = np.linalg.cholesky((C1i + C1i.T) / 2)
        except np.linalg.LinAlgError:
            raise LMMInputError("C1 must be positive definite") from None
        ev = self.evaluate(C0i, L1, gradient=False)
        return self.user_loglik(ev.loglik), self.intercept_to_user(ev.intercept)

    def user_loglik(self, internal: float) -> float:
        return internal - self.n_eff * np.log(self.y_scale)

    # -- the core ---------------------------------------------------------------------
    def evaluate(self, C0: np.ndarray, L1: np.ndarray, *, gradient: bool = True) -> Evaluation:
        """Log-likelihood (internal units) at C0 (P x P) and C1 = L1 L1^T (L1 lower triangular)."""
        P, G, s, u = self.P, self.G, self.s, self.u
        # rotate the conditions: Tc C1 Tc^T = I, Tc C0 Tc^T = diag(lam)
        # direct LAPACK calls: at small P the wrappers' overhead would dominate an evaluation
        L1inv, info = dtrtri(L1, lower=1)
        if info != 0:
            raise np.linalg.LinAlgError("C1 is singular")
        Ct = L1inv @ C0 @ L1inv.T
        lam, Q = np.linalg.eigh((Ct + Ct.T) / 2)
        Tc = Q.T @ L1inv
        logdet_C1 = 2.0 * float(np.sum(np.log(np.abs(np.diag(L1)))))

        Yr = self.Uy @ Tc.T  # r x P
        Ny1 = Tc @ self.Ny1
        Nyy = Tc @ self.Nyy @ Tc.T
        W = 1.0 / (s[:, None] * lam[None, :] + 1.0)  # r x P
        if np.any(W <= 0) or not np.all(np.isfinite(W)):
            raise FloatingPointError("C0 is not positive semi-definite relative to C1")

        if self.fit_intercept:
            Wu = W * u[:, None]
            den = u @ Wu + self.n11  # 1^T (lam_p K + I)^-1 1, per rotated condition
            num = np.einsum("ip,ip->p", Wu, Yr) + Ny1
            d = num / den
            R = Yr - np.outer(u, d)
            Nrr = Nyy - np.outer(Ny1, d) - np.outer(d, Ny1) + self.n11 * np.outer(d, d)
        else:
            d = np.zeros(P)
            R, Nrr = Yr, Nyy
        Zhat = W * R
        quad = float(np.einsum("ip,ip->", Zhat, R)) + float(np.trace(Nrr))
        logdet = G * logdet_C1 - float(np.sum(np.log(W)))
        ll = -0.5 * (self.n_eff * LOG2PI + logdet + quad)
        if self.reml:
            # log|X^T V^-1 X| = sum log den - log|C1|; log|X^T X| = P log G
            ll -= 0.5 * (float(np.sum(np.log(den))) - logdet_C1 - P * np.log(G))

        gC0 = gC1 = np.zeros((P, P))
        if gradient:
            a = s @ W  # tr over genes of K (lam K + I)^-1, per rotated condition
            c = W.sum(axis=0) + (G - self.r)
            ZKZ = (Zhat * s[:, None]).T @ Zhat
            ZZ = Zhat.T @ Zhat + Nrr
            inner0 = ZKZ - np.diag(a)
            inner1 = ZZ - np.diag(c)
            if self.reml:
                # derivative of -1/2 log|X^T V^-1 X|
                Wu2 = (W * u[:, None]) ** 2
                inner0 = inner0 + np.diag((s @ Wu2) / den)
                inner1 = inner1 + np.diag((Wu2.sum(axis=0) + self.n11) / den)
            gC0 = 0.5 * Tc.T @ inner0 @ Tc
            gC1 = 0.5 * Tc.T @ inner1 @ Tc
            gC0 = (gC0 + gC0.T) / 2
            gC1 = (gC1 + gC1.T) / 2
        Tc_inv = L1 @ Q
        intercept = Tc_inv @ d if self.fit_intercept else np.zeros(P)
        return Evaluation(ll, gC0, gC1, Tc, Tc_inv, lam, W, Zhat, intercept)

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Method-of-moments (Haseman-Elston) C0, C1 in internal units, not yet PSD-projected.

        Solves E[Y^T Y] = tr(K) C0 + G C1 and E[Y^T K Y] = tr(K^2) C0 + tr(K) C1 entrywise.
        """
        s = self.s
        S1 = self.Uy.T @ self.Uy + self.Nyy
        S2 = (self.Uy * s[:, None]).T @ self.Uy
        t1, t2 = float(s.sum()), float(s @ s)
        det = t1 * t1 - self.G * t2
        if abs(det) < 1e-12 * self.G * t2:
            return S1 / (2 * t1), S1 / (2 * self.G)  # K proportional to I: split evenly
        C0 = (t1 * S1 - self.G * S2) / det
        C1 = (t1 * S2 - t2 * S1) / det
        return C0, C1


def _spectrum(M: np.ndarray, Ys: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Nonzero eigenvalues s of K = M M^T / T, right singular vectors V of M, U^T Ys and U^T 1."""
    G, T = M.shape
    eps = np.finfo(float).eps
    if how in ("auto", "gram"):
        if G >= T:
            e, V = eigh(M.T @ M / T, check_finite=False)
            e, V = e[::-1], V[:, ::-1]
            keep = e > e[0] * max(G, T) * eps * 10
            e, V = e[keep], V[:, keep]
            sig = np.sqrt(e * T)
            Uy = (V.T @ (M.T @ Ys)) / sig[:, None]
            u = (V.T @ M.sum(axis=0)) / sig
        else:
            e, U = eigh(M @ M.T / T, check_finite=False)
            e, U = e[::-1], U[:, ::-1]
            keep = e > e[0] * max(G, T) * eps * 10
            e, U = e[keep], U[:, keep]
            sig = np.sqrt(e * T)
            V = (M.T @ U) / sig
            Uy = U.T @ Ys
            u = U.sum(axis=0)
        if how == "gram" or e.size == 0 or e[-1] >= 1e-8 * e[0]:
            return e, V, Uy, u
    Uf, sig, Vt = np.linalg.svd(M, full_matrices=False)
    keep = sig > sig[0] * max(G, T) * eps
    Uf, sig, Vt = Uf[:, keep], sig[keep], Vt[keep]
    return sig**2 / T, Vt.T, Uf.T @ Ys, Uf.sum(axis=0)
