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
from scipy.linalg.blas import dsyrk
from scipy.linalg.lapack import dsyevd, dtrtri

from regulas.lmm.validation import LMMInputError, check_design

LOG2PI = float(np.log(2.0 * np.pi))
# (Tc, Tc^-1, lam, log|C1|, Tc N_y1, Tc N_yy Tc^T): the conditions' rotation, see KronSumProblem.rotate
Rotation = tuple[np.ndarray, np.ndarray, np.ndarray, float, np.ndarray, np.ndarray]


class Evaluation:
    """Everything one evaluation produces (internal units).

    The gradient and the expected information are computed on first access: line-search
    trials only need the log-likelihood.
    """

    __slots__ = ("loglik", "Tc", "Tc_inv", "lam", "W", "Zhat", "intercept", "_problem", "_Nrr", "_den", "_grad", "_info")

    def __init__(self, problem: KronSumProblem, loglik: float, Tc: np.ndarray, Tc_inv: np.ndarray, lam: np.ndarray,
                 W: np.ndarray, Zhat: np.ndarray, intercept: np.ndarray, Nrr: np.ndarray, den: np.ndarray | None) -> None:
        self.loglik = loglik
        self.Tc = Tc  # P x P rotation of the conditions
        self.Tc_inv = Tc_inv  # its inverse, L1 Q
        self.lam = lam  # P eigenvalues of C1^-1/2 C0 C1^-1/2
        self.W = W  # r x P, 1 / (lam s + 1)
        self.Zhat = Zhat  # r x P, W * (rotated residual in the eigenbasis of K)
        self.intercept = intercept  # P, GLS intercept (internal units)
        self._problem, self._Nrr, self._den = problem, Nrr, den
        self._grad: tuple[np.ndarray, ...] | None = None
        self._info: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def grad_C0(self) -> np.ndarray:
        """d loglik / d C0, symmetric P x P."""
        return self._gradients()[0]

    @property
    def grad_C1(self) -> np.ndarray:
        """d loglik / d C1, symmetric P x P."""
        return self._gradients()[1]

    def rotated_gradients(self) -> tuple[np.ndarray, np.ndarray]:
        """The gradients in the rotated coordinates (C1 -> I, C0 -> diag(lam)): Tc^-T dC Tc^-1."""
        _, _, inner0, inner1 = self._gradients()
        return inner0, inner1

    def _gradients(self) -> tuple[np.ndarray, ...]:
        if self._grad is None:
            inner0, inner1 = self.inner_gradients()
            self._grad = (*self.rotate_back(inner0, inner1), inner0, inner1)
        return self._grad

    def rotate_back(self, inner0: np.ndarray, inner1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rotated gradients back to the conditions' coordinates: the O(P^3) part of the gradient."""
        Tc = self.Tc
        g0 = Tc.T @ inner0 @ Tc
        g1 = Tc.T @ inner1 @ Tc
        return 0.5 * (g0 + g0.T), 0.5 * (g1 + g1.T)

    def inner_gradients(self) -> tuple[np.ndarray, np.ndarray]:
        """The rotated gradients, uncached: the O(r P^2) part of the gradient."""
        pr, W, Zhat, s = self._problem, self.W, self.Zhat, self._problem.s
        a = s @ W  # tr over genes of K (lam K + I)^-1, per rotated condition
        c = W.sum(axis=0) + (pr.G - pr.r)
        Zs = Zhat * s[:, None]
        inner0 = Zs.T @ Zhat
        inner1 = Zhat.T @ Zhat + self._Nrr
        diag0, diag1 = -a, -c
        if pr.reml:
            # derivative of -1/2 log|X^T V^-1 X|
            Wu2 = (W * pr.u[:, None]) ** 2
            diag0 = diag0 + (s @ Wu2) / self._den
            diag1 = diag1 + (Wu2.sum(axis=0) + pr.n11) / self._den
        # both inner matrices are symmetric by construction (Z^T D Z); halve them in place
        inner0 *= 0.5
        inner1 *= 0.5
        inner0.reshape(-1)[:: pr.P + 1] += 0.5 * diag0
        inner1.reshape(-1)[:: pr.P + 1] += 0.5 * diag1
        return inner0, inner1

    def information(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Blocks (o00, o01, o11) of Omega_pq, the expected information of the rotated covariance
        entries (see :mod:`regulas.lmm.scoring`); each P x P."""
        if self._info is None:
            pr, W, s = self._problem, self.W, self._problem.s
            Ws = W * s[:, None]
            o01 = Ws.T @ W
            self._info = (Ws.T @ Ws, o01, W.T @ W + (pr.G - pr.r))
        return self._info


@dataclass
class PrecomputedSetup:
    """What a fit needs from Y, computed elsewhere, e.g. accumulated over blocks of conditions read
    from Zarr (:class:`regulas.sim.streamed_setup.ConditionSetup` extends it): with the thin SVD of the
    (uncentred) motif scores M = U diag(s) Wt (U: G x r, s: r, Wt: r x T), ``UtY`` = U^T Y (r x P),
    ``col_sum`` = 1^T Y and ``col_sumsq`` the column sums of squares of Y (P each). Singular values
    at or below s[0] max(G, T) eps are dropped, as the fit's own SVD does."""

    U: np.ndarray
    s: np.ndarray
    Wt: np.ndarray
    UtY: np.ndarray
    col_sum: np.ndarray
    col_sumsq: np.ndarray


class DecomposedData:
    """What every evaluation of the Kronecker-sum likelihood shares: Y in internal units (centred
    when ``fit_intercept``, divided by one scalar), K's nonzero spectrum and U^T Y, and the
    conversions between internal and user units. Subclasses add their own summaries of the
    G - r null directions of K."""

    G: int
    T: int
    P: int
    n_eff: int

    def _decompose(
        self, M: np.ndarray, Y: np.ndarray, *, fit_intercept: bool, reml: bool, decomposition: str, copy: bool = True
    ) -> np.ndarray | None:
        """Set the shared attributes; returns Y in internal units (G x P, a new array), or, with
        ``copy=False``, None: then Y is read by blocks of genes for its column statistics
        (``col_ss``, ``col_sum`` in internal units) and U^T Y is centred and scaled afterwards
        (it is linear in Y), so that nothing Y-sized is allocated."""
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
        Ys: np.ndarray | None = None
        if copy:
            Ys = Y - self.y_mean
            col_ss = np.einsum("ij,ij->j", Ys, Ys)
        else:
            col_ss, col_sum = np.zeros(P), np.zeros(P)
            step = max(1, 2**22 // P)  # blocks of ~32 MB
            for lo in range(0, G, step):
                block = Y[lo : lo + step] - self.y_mean
                col_ss += np.einsum("ij,ij->j", block, block)
                col_sum += block.sum(axis=0)
        ss = float(col_ss.sum())
        if not ss > 0:
            raise LMMInputError("Y is constant in every condition (after removing the intercept); nothing to fit")
        self.y_scale = float(np.sqrt(ss / (G * P)))
        self.col_ss = col_ss / self.y_scale**2
        if Ys is not None:
            Ys /= self.y_scale
            self.col_sum = Ys.sum(axis=0)
            s_raw, V, Uy, u = _spectrum(M, Ys, decomposition)
        else:
            self.col_sum = col_sum / self.y_scale
            s_raw, V, Uy, u = _spectrum(M, Y, decomposition)
            Uy -= np.multiply.outer(u, self.y_mean)
            Uy /= self.y_scale
        self._set_spectrum(s_raw, V, Uy, u)
        return Ys

    def _decompose_setup(self, setup: PrecomputedSetup, T: int, *, fit_intercept: bool, reml: bool) -> None:
        """Set the shared attributes from a precomputed setup instead of Y (see :class:`PrecomputedSetup`):
        the same numbers as ``_decompose(..., decomposition="svd", copy=False)`` up to rounding, with
        no pass over Y and no decomposition of M."""
        if reml and not fit_intercept:
            raise LMMInputError("reml=True needs fit_intercept=True (REML integrates out the intercept)")
        U, sig, Wt, UtY = (np.asarray(getattr(setup, k), dtype=float) for k in ("U", "s", "Wt", "UtY"))
        col_sum, col_sumsq = np.asarray(setup.col_sum, dtype=float), np.asarray(setup.col_sumsq, dtype=float)
        G, P = U.shape[0], UtY.shape[1]
        if Wt.shape[1] != T or UtY.shape[0] != sig.size or U.shape[1] != sig.size or col_sum.shape != (P,) or col_sumsq.shape != (P,):
            raise LMMInputError(f"the setup's shapes do not fit M (G = {G}, T = {T}): U {U.shape}, s {sig.shape}, Wt {Wt.shape}, "
                                f"UtY {UtY.shape}, col_sum {col_sum.shape}, col_sumsq {col_sumsq.shape}")
        if not all(np.all(np.isfinite(x)) for x in (UtY, col_sum, col_sumsq)):
            raise LMMInputError("the setup has non-finite values (Y has NaN or inf)")
        self.G, self.T, self.P = G, T, P
        self.fit_intercept = bool(fit_intercept)
        self.reml = bool(reml)
        self.y_mean = col_sum / G if fit_intercept else np.zeros(P)
        col_ss = np.clip(col_sumsq - col_sum * self.y_mean, 0.0, None)  # sum (y - mean)^2 = sum y^2 - (sum y)^2 / G
        ss = float(col_ss.sum())
        if not ss > 0:
            raise LMMInputError("Y is constant in every condition (after removing the intercept); nothing to fit")
        self.y_scale = float(np.sqrt(ss / (G * P)))
        self.col_ss = col_ss / self.y_scale**2
        self.col_sum = (col_sum - G * self.y_mean) / self.y_scale
        keep = sig > sig[0] * max(G, T) * np.finfo(float).eps if sig.size else np.zeros(0, dtype=bool)
        u = U[:, keep].sum(axis=0)
        Uy = UtY[keep] - np.multiply.outer(u, self.y_mean)
        Uy /= self.y_scale
        self._set_spectrum(sig[keep] ** 2 / T, Wt[keep].T, Uy, u)

    def _set_spectrum(self, s_raw: np.ndarray, V: np.ndarray, Uy: np.ndarray, u: np.ndarray) -> None:
        G, T = self.G, self.T
        if s_raw.size == 0:
            raise LMMInputError("M is zero (K = M M^T / T has rank 0); the signal term is not identifiable")
        self.k_scale = float(s_raw.sum()) / G  # mean eigenvalue of K over all G directions
        self.s = s_raw / self.k_scale
        self.sqrt_sT = np.sqrt(s_raw * T)  # singular values of M
        self.V = V  # T x r right singular vectors of M
        self.r = self.s.size
        self.s_max = float(self.s.max())
        self.Uy = Uy  # r x P, U^T Y (internal units)
        self.u = u if self.fit_intercept else np.zeros(self.r)  # U^T 1
        self.n_eff = G * self.P - (self.P if self.reml else 0)  # dimension the density lives on

    # -- unit conversions -------------------------------------------------------------
    def to_internal(self, C0: np.ndarray, C1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v = self.y_scale**2
        return np.asarray(C0) * self.k_scale / v, np.asarray(C1) / v

    def to_user(self, C0i: np.ndarray, C1i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v = self.y_scale**2
        return C0i * v / self.k_scale, C1i * v

    def intercept_to_user(self, bi: np.ndarray) -> np.ndarray:
        return np.asarray(self.y_mean + self.y_scale * bi)

    def user_loglik(self, internal: float) -> float:
        return internal - self.n_eff * np.log(self.y_scale)


class KronSumProblem(DecomposedData):
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
        G, P = Y.shape
        Ys = self._decompose(M, Y, fit_intercept=fit_intercept, reml=reml, decomposition=decomposition)
        assert Ys is not None  # the default copy=True returns it
        Uy = self.Uy
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

    def log_likelihood(self, C0: np.ndarray, C1: np.ndarray) -> tuple[float, np.ndarray]:
        """(log-likelihood, GLS intercept) at user-unit C0 (PSD) and C1 (PD), P x P each."""
        C0i, C1i = self.to_internal(C0, C1)
        try:
            L1 = np.linalg.cholesky((C1i + C1i.T) / 2)
        except np.linalg.LinAlgError:
            raise LMMInputError("C1 must be positive definite") from None
        ev = self.evaluate(C0i, L1, gradient=False)
        return self.user_loglik(ev.loglik), self.intercept_to_user(ev.intercept)

    # -- the core ---------------------------------------------------------------------
    def evaluate(self, C0: np.ndarray, L1: np.ndarray, *, gradient: bool = True) -> Evaluation:
        """Log-likelihood (internal units) at C0 (P x P) and C1 = L1 L1^T (L1 lower triangular).

        ``gradient`` is kept for callers' clarity only: gradients are computed on first access.
        """
        return self.reduce(self.rotate(C0, L1))

    def rotate(self, C0: np.ndarray, L1: np.ndarray) -> Rotation:
        """The O(P^3) part of an evaluation: Tc with Tc C1 Tc^T = I and Tc C0 Tc^T = diag(lam),
        its inverse, log|C1| and the rotated null-space Gram matrices."""
        # direct LAPACK calls: at small P the wrappers' overhead would dominate an evaluation
        L1inv, info = dtrtri(L1, lower=1)
        if info != 0:
            raise np.linalg.LinAlgError("C1 is singular")
        Ct = L1inv @ C0 @ L1inv.T
        lam, Q, info = dsyevd(Ct, lower=1)
        if info != 0:
            raise np.linalg.LinAlgError("eigendecomposition failed")
        if not (lam[0] * self.s_max > -1.0 and np.isfinite(lam[-1])):  # W = 1 / (lam s + 1) > 0
            raise FloatingPointError("C0 is not positive semi-definite relative to C1")
        Tc = Q.T @ L1inv
        logdet_C1 = 2.0 * float(np.log(np.abs(L1.diagonal())).sum())
        return Tc, L1 @ Q, lam, logdet_C1, Tc @ self.Ny1, Tc @ self.Nyy @ Tc.T

    def reduce(self, rotated: Rotation) -> Evaluation:
        """The O(r P^2) part of an evaluation, from :meth:`rotate`'s output."""
        Tc, Tc_inv, lam, logdet_C1, Ny1, Nyy = rotated
        P, G, s, u = self.P, self.G, self.s, self.u
        Yr = self.Uy @ Tc.T  # r x P
        W = np.multiply.outer(s, lam)
        W += 1.0
        np.reciprocal(W, out=W)  # r x P, 1 / (lam s + 1)
        den: np.ndarray | None = None
        if self.fit_intercept:
            Wu = W * u[:, None]
            den = u @ Wu + self.n11  # 1^T (lam_p K + I)^-1 1, per rotated condition
            d = ((Wu * Yr).sum(axis=0) + Ny1) / den
            R = Yr - np.multiply.outer(u, d)
            dN = np.multiply.outer(Ny1, d)
            Nrr = Nyy - dN - dN.T + self.n11 * np.multiply.outer(d, d)
        else:
            d = np.zeros(P)
            R, Nrr = Yr, Nyy
        Zhat = W * R
        quad = float((Zhat * R).sum()) + float(np.trace(Nrr))
        logdet = G * logdet_C1 - float(np.log(W).sum())
        ll = -0.5 * (self.n_eff * LOG2PI + logdet + quad)
        if self.reml:
            # log|X^T V^-1 X| = sum log den - log|C1|; log|X^T X| = P log G
            assert den is not None  # REML needs the intercept (checked when the problem is built)
            ll -= 0.5 * (float(np.log(den).sum()) - logdet_C1 - P * np.log(G))
        intercept = Tc_inv @ d if self.fit_intercept else d
        return Evaluation(self, ll, Tc, Tc_inv, lam, W, Zhat, intercept, Nrr, den)

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
            # symmetric rank-G product (half the flops of M.T @ M), divide-and-conquer eigensolver
            e, V = eigh(_gram(M.T, T), lower=False, check_finite=False, driver="evd")
            e, V = e[::-1], V[:, ::-1]
            keep = e > e[0] * max(G, T) * eps * 10
            e, V = e[keep], V[:, keep]
            sig = np.sqrt(e * T)
            Uy = (V.T @ (M.T @ Ys)) / sig[:, None]
            u = (V.T @ M.sum(axis=0)) / sig
        else:
            e, U = eigh(_gram(M, T), lower=False, check_finite=False, driver="evd")
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


def _gram(A: np.ndarray, T: int) -> np.ndarray:
    """A A^T / T, upper triangle only (BLAS syrk)."""
    return np.asarray(dsyrk(1.0 / T, A, trans=0, lower=0))
