"""The Kronecker-sum LMM's likelihood for structured covariances, without any P x P matrix.

Model (G genes, T motifs, P conditions), as in :mod:`regulas.lmm.likelihood`::

    vec(Y) ~ N(vec(1 b^T), C0 (x) K + C1 (x) I_G),   K = M M^T / T = U diag(s) U^T,

with the structures

    C0 = F F^T + diag(a)      F: P x k (signal "lowrank_k", a = 0), or a: P ("diagonal",
                              "identity": a = a0 1, F empty)
    C1 = diag(d) + H H^T      d: P, H: P x q (noise "factor"; "diagonal" and "identity": H empty).

Rotating the genes by [U, U_perp] makes the rows independent: row i of U^T Y (i < r) has
covariance Sigma_i = s_i C0 + C1 and each of the G - r rows of U_perp^T Y has covariance C1.

* Low-rank signal: Sigma_i = diag(d) + Z_i Z_i^T with Z_i = [sqrt(s_i) F, H] = B J_i (B = [F, H],
  P x m, m = k + q), so by Woodbury and the determinant lemma every row needs only the m x m
  matrix S_i = I + J_i B^T diag(1/d) B J_i. The GLS information X^T Sigma^-1 X is diag(G / d)
  minus a rank-m term, so the intercept and REML are O(P m^2) too. Per evaluation:
  O(r P m + r m^3), plus, with factor noise, O(G P q) for U_perp^T Y's part (through
  Y^T (Y E) - (U^T Y)^T (U^T Y E)).
* Diagonal or identity signal with diagonal (or identity) noise: every Sigma_i is diagonal, O(r P).

The gradients with respect to C0 and C1 are P x P matrices of the form
diag(.) + E K E^T + alpha^T diag(w) alpha (alpha = Sigma^-1 residuals, r x P; E = diag(1/d) B);
they are never formed, only contracted with F, H or their diagonals taken.

Internal units as in :class:`~regulas.lmm.likelihood.KronSumProblem` (the same conversions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from regulas.lmm.likelihood import LOG2PI, DecomposedData, PrecomputedSetup
from regulas.lmm.validation import LMMInputError, check_design


@dataclass
class Covariances:
    """C0 = F F^T + diag(a), C1 = diag(d) + H H^T (internal or user units, as the caller says)."""

    F: np.ndarray  # P x k (k = 0 for a diagonal signal)
    a: np.ndarray  # P (zeros for a low-rank signal)
    d: np.ndarray  # P, > 0
    H: np.ndarray  # P x q (q = 0 for diagonal noise)

    def dense(self) -> tuple[np.ndarray, np.ndarray]:
        """(C0, C1) as P x P arrays (small P only: tests and the estimator's C0_, C1_)."""
        return self.F @ self.F.T + np.diag(self.a), np.diag(self.d) + self.H @ self.H.T


@dataclass
class StructuredEvaluation:
    """Log-likelihood (internal units), GLS intercept, alpha = Sigma^-1 residuals in the
    eigenbasis of K (r x P; formed for diagonal structures only, else alpha F) and the
    gradients with respect to F, a, d and H (same shapes)."""

    loglik: float
    intercept: np.ndarray
    alpha: np.ndarray | None  # diagonal structures only
    alpha_F: np.ndarray  # alpha F (r x k), low-rank signal
    gF: np.ndarray
    ga: np.ndarray
    gd: np.ndarray
    gH: np.ndarray
    #: per row i of U^T Y: F^T Sigma_i^-1 F (r x k x k), for the posterior variance
    FSF: np.ndarray
    #: V -> (d loglik / d C0) V for V: P x c, O(r P c) (low-rank signal only; the escape step)
    grad_C0_times: Callable[[np.ndarray], np.ndarray] | None = None


class StructuredProblem(DecomposedData):
    """Data of one structured fit, decomposed once: U^T Y (r x P) and per-condition summaries of
    the G - r null directions of K; with factor noise it keeps Y (internal units) as well.

    Parameters
    ----------
    M : (G, T) array, motif scores.
    Y : (G, P) array, responses.
    fit_intercept, reml, decomposition : as in :class:`~regulas.lmm.likelihood.KronSumProblem`.
    keep_y : keep Y (G x P, internal units: a copy) for the factor-noise term; otherwise no
        Y-sized array is allocated (Y is read by blocks) and only r x P and P-sized arrays
        outlive the constructor.
    setup : U^T Y, the column sums and sums of squares of Y and the SVD of M, computed elsewhere
        (:class:`~regulas.lmm.likelihood.PrecomputedSetup`): then Y is not read at all (it may be
        None) unless ``keep_y``, and M is not decomposed again.
    """

    def __init__(
        self, M: np.ndarray, Y: np.ndarray | None, *, fit_intercept: bool = True, reml: bool = False, decomposition: str = "auto",
        keep_y: bool = False, setup: PrecomputedSetup | None = None,
    ) -> None:
        Ys: np.ndarray | None = None
        if setup is None:
            if Y is None:
                raise LMMInputError("Y is needed unless a precomputed setup is given")
            M, Y = check_design(M, Y)
            Ys = self._decompose(M, Y, fit_intercept=fit_intercept, reml=reml, decomposition=decomposition, copy=keep_y)
        else:
            M = np.asarray(M, dtype=float)
            if M.ndim != 2:
                raise LMMInputError(f"M must be 2-D (G x T); got shape {M.shape}")
            self._decompose_setup(setup, M.shape[1], fit_intercept=fit_intercept, reml=reml)
            if keep_y:
                if Y is None:
                    raise LMMInputError("factor noise needs Y (its null-space term reads it) besides the precomputed setup")
                M, Y = check_design(M, Y)
                if Y.shape != (self.G, self.P):
                    raise LMMInputError(f"Y is {Y.shape}; the setup is for G = {self.G}, P = {self.P}")
                Ys = (Y - self.y_mean) / self.y_scale
        G = self.G
        col_ss = self.col_ss
        flat = np.flatnonzero(col_ss <= 1e-24 * G * self.P)
        if flat.size:
            raise LMMInputError(
                f"condition(s) {flat[:10].tolist()} of Y have zero variance{' after removing the intercept' if fit_intercept else ''}: "
                "their noise variance would start (and end) at 0, where the likelihood is unbounded; drop them"
            )
        Uy, u = self.Uy, self.u
        self.Uy_ss = np.einsum("ij,ij->j", Uy, Uy)  # per-condition sums of squares of U^T Y
        self.uUy = u @ Uy
        if self.r == G:  # K has no null directions
            self.N_diag, self.Ny1, self.n11 = np.zeros(self.P), np.zeros(self.P), 0.0
        else:
            # the per-condition sums of squares of U_perp^T Y (the diagonal of its Gram matrix)
            self.N_diag = np.clip(col_ss - self.Uy_ss, 0.0, None)
            self.Ny1 = (self.col_sum - self.uUy) if fit_intercept else np.zeros(self.P)
            self.n11 = (G - float(u @ u)) if fit_intercept else 0.0
        self.Ys: np.ndarray | None = Ys if keep_y else None

    # -- conversions --------------------------------------------------------------------
    def covariances_to_internal(self, cov: Covariances) -> Covariances:
        v = self.y_scale**2
        f0, f1 = np.sqrt(self.k_scale / v), 1.0 / np.sqrt(v)
        return Covariances(np.asarray(cov.F) * f0, np.asarray(cov.a) * f0**2, np.asarray(cov.d) * f1**2, np.asarray(cov.H) * f1)

    def covariances_to_user(self, cov: Covariances) -> Covariances:
        v = self.y_scale**2
        f0, f1 = np.sqrt(v / self.k_scale), np.sqrt(v)
        return Covariances(cov.F * f0, cov.a * f0**2, cov.d * f1**2, cov.H * f1)

    def log_likelihood(self, cov: Covariances) -> tuple[float, np.ndarray]:
        """(log-likelihood, GLS intercept) at user-unit covariances."""
        ev = self.evaluate(self.covariances_to_internal(cov))
        return self.user_loglik(ev.loglik), self.intercept_to_user(ev.intercept)

    def null_gram_times(self, X: np.ndarray) -> np.ndarray:
        """N_yy X (P x c) with N_yy = Y^T Y - (U^T Y)^T (U^T Y) the Gram matrix of U_perp^T Y:
        O(G P c), no P x P matrix."""
        if self.Ys is None:
            raise RuntimeError("this problem was built without keep_y=True; factor noise needs Y")
        if self.r == self.G:
            return np.zeros_like(X)
        # Ys^T (Ys X) by blocks of genes small enough to stay in cache between the two
        # products: Y is read from memory once per call, not twice (the evaluation is
        # memory-bound here); (Z^T B)^T rather than B^T Z reads the C-ordered block row-wise
        Ys, P = self.Ys, self.P
        out = np.zeros((X.shape[1], P))
        step = max(4, 2**17 // P)  # ~1 MB blocks (L2-sized: measured 3-4x faster than two passes)
        for lo in range(0, self.G, step):
            block = Ys[lo : lo + step]
            out += (block @ X).T @ block
        return np.asarray(out.T - ((self.Uy @ X).T @ self.Uy).T)

    # -- the likelihood -----------------------------------------------------------------
    def evaluate(self, cov: Covariances) -> StructuredEvaluation:
        """Exact (RE)ML log-likelihood and gradients at internal-unit covariances."""
        if np.any(cov.d <= 0) or not all(np.all(np.isfinite(x)) for x in (cov.F, cov.a, cov.d, cov.H)):
            raise FloatingPointError("noise variances must be positive and every parameter finite")
        if cov.F.shape[1]:
            if np.any(cov.a != 0):
                raise ValueError("a low-rank signal has no diagonal part here")
            return self._evaluate_factors(cov)
        if cov.H.shape[1]:
            raise ValueError("factor noise needs a low-rank signal on the structured path")
        return self._evaluate_diagonal(cov)

    def _evaluate_diagonal(self, cov: Covariances) -> StructuredEvaluation:
        """Diagonal C0 and C1: every row's covariance diag(s_i a + d) is diagonal."""
        a, d = cov.a, cov.d
        s, u, Uy = self.s, self.u, self.Uy
        if np.any(a < 0):
            raise FloatingPointError("signal variances must be non-negative")
        Delta = np.multiply.outer(s, a)
        Delta += d
        W = 1.0 / Delta  # r x P
        W0 = 1.0 / d
        n_null = self.G - self.r
        logdet = float(np.log(Delta).sum()) + n_null * float(np.log(d).sum())
        reml_w: np.ndarray | None = None
        if self.fit_intercept:
            omega = (u * u) @ W + self.n11 * W0  # 1^T Sigma_p^-1 1 per condition
            b = (u @ (W * Uy) + W0 * self.Ny1) / omega
            R = Uy - np.multiply.outer(u, b)
            N_diag = self.N_diag - 2.0 * self.Ny1 * b + self.n11 * b * b
            logdet_A = float(np.log(omega).sum())
            if self.reml:
                reml_w = 1.0 / omega
        else:
            b, R, N_diag, logdet_A = np.zeros(self.P), Uy, self.N_diag, 0.0
        alpha = W * R
        quad = float((alpha * R).sum()) + float(W0 @ N_diag)
        ll = self._loglik(logdet, quad, logdet_A)
        # d loglik / d Sigma_i = 1/2 (alpha_i alpha_i^T - Sigma_i^-1 [+ u_i^2 Sigma_i^-1 A^-1 Sigma_i^-1])
        row = alpha * alpha - W
        null = W0 * W0 * N_diag - n_null * W0
        if reml_w is not None:
            row += np.multiply.outer(u * u, reml_w) * W * W
            null += self.n11 * W0 * W0 * reml_w
        ga = 0.5 * (s @ row)
        gd = 0.5 * (row.sum(axis=0) + null)
        k = np.zeros((self.P, 0))
        # F^T Sigma_i^-1 F has no meaning here; the posterior variance reads W from a, d directly
        return StructuredEvaluation(ll, b, alpha, np.zeros((self.r, 0)), k, ga, gd, k, np.zeros((self.r, 0, 0)))

    def _loglik(self, logdet: float, quad: float, logdet_A: float) -> float:
        ll = -0.5 * (self.n_eff * LOG2PI + logdet + quad)
        if self.reml:
            # - 1/2 log|X^T Sigma^-1 X| + 1/2 log|X^T X|, X^T X = G I_P
            ll -= 0.5 * (logdet_A - self.P * np.log(self.G))
        return float(ll)

    def _evaluate_factors(self, cov: Covariances) -> StructuredEvaluation:
        """Low-rank C0 = F F^T with C1 = diag(d) (+ H H^T): Woodbury per row of U^T Y."""
        F, d, H = cov.F, cov.d, cov.H
        s, u, Uy = self.s, self.u, self.Uy
        P, G, r = self.P, self.G, self.r
        k, q = F.shape[1], H.shape[1]
        m = k + q
        n_null = G - r
        w = 1.0 / d
        B = np.hstack([F, H])  # P x m
        E = B * w[:, None]  # diag(1/d) B
        Gm = B.T @ E  # B^T diag(1/d) B, m x m
        # row i: Sigma_i = diag(d) + B J_i J_i B^T, J_i = diag(sqrt(s_i) 1_k, 1_q)
        j = np.ones((r, m))
        j[:, :k] = np.sqrt(s)[:, None]
        S = np.eye(m) + j[:, :, None] * Gm * j[:, None, :]  # r x m x m
        Ls = np.linalg.cholesky(S)
        logdet_S = 2.0 * float(np.log(np.diagonal(Ls, axis1=1, axis2=2)).sum())
        Sinv = np.linalg.inv(S)
        Q = j[:, :, None] * Sinv * j[:, None, :]  # Sigma_i^-1 = diag(w) - E Q_i E^T
        # the null rows: Sigma = C1 = diag(d) + H H^T, Sigma^-1 = diag(w) - E Q0 E^T
        S0h = np.eye(q) + Gm[k:, k:]
        Q0 = np.zeros((m, m))
        logdet_S0 = 0.0
        if q:
            Q0[k:, k:] = np.linalg.inv(S0h)
            logdet_S0 = float(np.linalg.slogdet(S0h)[1])
        logdet = G * float(np.log(d).sum()) + logdet_S + n_null * logdet_S0
        EY = Uy @ E  # r x m: the one O(r P m) product with the data

        Mb: np.ndarray | None = None
        c = 1.0
        if self.fit_intercept:
            # A = X^T Sigma^-1 X = c diag(w) - E R E^T, c = u^T u + n11 (= G)
            c = float(u @ u) + self.n11
            Rm = np.einsum("i,iab->ab", u * u, Q) + self.n11 * Q0
            I_RT = np.eye(m) - Rm @ Gm / c
            Mb = np.linalg.solve(I_RT, Rm)  # A^-1 = diag(d) / c + B Mb B^T / c^2
            yt1 = self.uUy + self.Ny1  # Y^T 1 (zero when Y was centred, kept for clarity)
            EN1 = E.T @ self.Ny1
            cb = w * yt1 - E @ (np.einsum("i,iab,ib->a", u, Q, EY) + Q0 @ EN1)
            b = d * cb / c + B @ (Mb @ (B.T @ cb)) / c**2
            logdet_A = float(np.log(c * w).sum()) + float(np.linalg.slogdet(I_RT)[1])
            Eb = E.T @ b
            ER = EY - np.multiply.outer(u, Eb)  # (U^T Y - u b^T) E
            N_diag = self.N_diag - 2.0 * self.Ny1 * b + self.n11 * b * b
        else:
            b, ER, N_diag, logdet_A, Eb, EN1 = np.zeros(P), EY, self.N_diag, 0.0, np.zeros(m), np.zeros(m)
        QER = np.einsum("iab,ib->ia", Q, ER)
        # alpha = R diag(w) - QER E^T (r x P, R the residual rows) is never formed: every use
        # goes through alpha B = R E - QER Gm (r x m), column norms of R and products with U^T Y
        R_ss = self.Uy_ss - 2.0 * b * self.uUy + b * b * float(u @ u)  # column sums of squares of R
        quad = float(w @ R_ss) - float((ER * QER).sum())
        aB = ER - QER @ Gm  # alpha B
        aF, aH = aB[:, :k], aB[:, k:]
        Z = np.hstack([s[:, None] * aF, aH, QER])  # r x (k + q + m)
        RZ = (Z.T @ Uy).T - np.multiply.outer(b, u @ Z)  # R^T Z: the second product with the data (Z^T Uy: 2x faster than Uy^T Z)
        QZ = QER.T @ Z

        def alpha_t(cols: slice) -> np.ndarray:  # alpha^T Z[:, cols]
            return np.asarray(w[:, None] * RZ[:, cols] - E @ QZ[:, cols])

        # diag(alpha^T alpha) = w^2 |R|^2 - 2 w diag(R^T QER E^T) + diag(E QER^T QER E^T)
        a_ss = w * w * R_ss - 2.0 * w * np.einsum("pa,pa->p", E, RZ[:, k + q :]) + _quadratic_diag(E, QZ[:, k + q :])

        # the null rows' residual Gram N enters through diag(N) and, with factor noise, N E_H
        EH = E[:, k:]
        NE = np.zeros((P, q))
        if q:
            NE = self.null_gram_times(EH)
            if self.fit_intercept:
                NE -= np.multiply.outer(self.Ny1, Eb[k:]) + np.multiply.outer(b, EN1[k:] - self.n11 * Eb[k:])
            quad += float(w @ N_diag) - float((Q0[k:, k:] * (EH.T @ NE)).sum())
        else:
            quad += float(w @ N_diag)
        ll = self._loglik(logdet, quad, logdet_A)

        # -- gradients: dL/dC0 = 1/2 [alpha^T diag(s) alpha - sum_i s_i Sigma_i^-1 + REML],
        #               dL/dC1 = 1/2 [alpha^T alpha + C1^-1 N C1^-1 - sum_rows Sigma^-1 + REML]
        Ks0 = np.einsum("i,iab->ab", s, Q)  # sum_i s_i Sigma_i^-1 = (sum s) diag(w) - E Ks0 E^T
        Ks1 = Q.sum(axis=0) + n_null * Q0
        cw0, cw1 = -float(s.sum()), -float(G)  # coefficients of diag(w)
        if self.reml and Mb is not None:
            # u_i^2 Sigma_i^-1 A^-1 Sigma_i^-1 = u_i^2 / c (diag(w) + E K_i E^T)
            Kr = _reml_blocks(Q, Gm, Mb, c)
            K0 = _reml_blocks(Q0[None], Gm, Mb, c)[0]
            uu = u * u / c
            Ks0 = Ks0 + np.einsum("i,iab->ab", s * uu, Kr)
            Ks1 = Ks1 + np.einsum("i,iab->ab", uu, Kr) + (self.n11 / c) * K0
            cw0 += float(s @ uu)
            cw1 += 1.0
        gF = alpha_t(slice(0, k)) + cw0 * (w[:, None] * F) + E @ (Ks0 @ Gm[:, :k])
        gd = 0.5 * (a_ss + cw1 * w + _quadratic_diag(E, Ks1))
        if q:
            Q0h = Q0[k:, k:]
            # C1^-1 N C1^-1 with C1^-1 = diag(w) - E_H Q0h E_H^T; C1^-1 H = E_H Q0h
            EQ = EH @ Q0h
            inner = Q0h @ (EH.T @ NE) @ Q0h
            gd += 0.5 * (w * w * N_diag - 2.0 * w * np.einsum("pa,pa->p", NE, EQ) + _quadratic_diag(EH, inner))
            NEs = NE @ Q0h
            null_H = w[:, None] * NEs - EQ @ (EH.T @ NEs)
            gH = alpha_t(slice(k, k + q)) + null_H + cw1 * (w[:, None] * H) + E @ (Ks1 @ Gm[:, k:])
        else:
            gd += 0.5 * w * w * N_diag
            gH = np.zeros((P, 0))
        # F^T Sigma_i^-1 F = F^T diag(w) F - (F^T E) Q_i (E^T F), for the posterior variance
        FE = Gm[:k, :]
        FSF = Gm[:k, :k][None] - (FE @ Q) @ FE.T

        def grad_C0_times(X: np.ndarray) -> np.ndarray:
            wX, EX = w[:, None] * X, E.T @ X
            aX = Uy @ wX - np.multiply.outer(u, b @ wX) - QER @ EX  # alpha X
            sa = s[:, None] * aX
            at = w[:, None] * ((sa.T @ Uy).T - np.multiply.outer(b, u @ sa)) - E @ (QER.T @ sa)  # alpha^T diag(s) alpha X
            return np.asarray(0.5 * (at + cw0 * wX + E @ (Ks0 @ EX)))

        return StructuredEvaluation(ll, b, None, aF, gF, np.zeros(P), gd, gH, FSF, grad_C0_times)

    # -- the posterior of beta ----------------------------------------------------------
    def posterior(self, cov: Covariances, ev: StructuredEvaluation) -> tuple[np.ndarray, np.ndarray]:
        """E[beta | Y] and per-entry Var[beta | Y] (T x P each, user units) at internal ``cov``.

        With alpha = Sigma^-1 residuals in the eigenbasis of K and M = U diag(sigma) V^T,
        E[beta | Y] = V diag(sigma) alpha C0 / T and
        Var[beta_tq | Y] = (C0_qq - sum_i s_i V_ti^2 (C0 Sigma_i^-1 C0)_qq) / T (internal units).
        """
        unit = self.y_scale / (self.k_scale * self.T)
        if cov.F.shape[1]:
            coef = (self.V @ (self.sqrt_sT[:, None] * ev.alpha_F)) @ cov.F.T
            c0 = np.einsum("pa,pa->p", cov.F, cov.F)
            r, k = ev.FSF.shape[:2]
            FF = (cov.F[:, :, None] * cov.F[:, None, :]).reshape(self.P, k * k)
            # sum_i s_i V_ti^2 (C0 Sigma_i^-1 C0)_qq = [(V^2 diag(s) FSF) (F (x) F)^T]_tq: T r k^2 + T k^2 P
            reduction = ((self.V**2) @ (self.s[:, None] * ev.FSF.reshape(r, k * k))) @ FF.T
        else:
            assert ev.alpha is not None
            coef = (self.V @ (self.sqrt_sT[:, None] * ev.alpha)) * cov.a
            c0 = cov.a
            quad = (cov.a * cov.a) / (np.multiply.outer(self.s, cov.a) + cov.d)  # (C0 Sigma_i^-1 C0)_qq
            reduction = (self.V**2) @ (self.s[:, None] * quad)
        var = np.clip(c0[None, :] - reduction, 0.0, None)
        return np.asarray(coef * unit), np.asarray(var * self.y_scale * unit)


def _quadratic_diag(E: np.ndarray, K: np.ndarray) -> np.ndarray:
    """diag(E K E^T) for E: P x m (a three-operand einsum is ~10x slower)."""
    return np.asarray(((E @ K) * E).sum(axis=1))


def _reml_blocks(Q: np.ndarray, Gm: np.ndarray, Mb: np.ndarray, c: float) -> np.ndarray:
    """K_i with c Sigma_i^-1 A^-1 Sigma_i^-1 = diag(w) + E K_i E^T (A = X^T Sigma^-1 X), for each
    Q_i in ``Q`` (n x m x m): K_i = -2 Q_i + Q_i Gm Q_i + (I - Q_i Gm) Mb (I - Gm Q_i) / c."""
    m = Gm.shape[0]
    QG = Q @ Gm
    IQG = np.eye(m) - QG
    return np.asarray(-2.0 * Q + QG @ Q + IQG @ Mb @ IQG.transpose(0, 2, 1) / c)
