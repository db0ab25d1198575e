"""Fisher scoring for the Kronecker-sum LMM with freeform C1: in covariance space and on factors.

In the rotated coordinates of :mod:`regulas.lmm.likelihood` (C1 -> I, C0 -> diag(lam)) the
expected information of the covariance entries is block diagonal over condition pairs:

    E[-d^2 loglik] = 1/2 sum_pq [dC0'_pq, dC1'_pq] Omega_pq [dC0'_pq, dC1'_pq]^T,
    Omega_pq = sum_i W_ip W_iq [[s_i^2, s_i], [s_i, 1]]  (+ (G - r) in the C1 C1 entry),

so a scoring step in covariance space solves P^2 2 x 2 systems: O(r P^2 + P^3) like one
gradient. Its steps are projected onto the feasible set (C0 PSD, C1 positive definite) and
accepted only when the likelihood rises. That reaches the optimum's neighbourhood in a few
evaluations from any start, but where the optimum is singular (C0 on the boundary of the PSD
cone, common with nearly singular noise) the projection stalls it.

:func:`factor_scoring` then works on the face: C0 = L L^T with L of P x k (k = the rank of C0),
C1 free. With C1 eliminated entry-wise (a Schur complement of each Omega_pq) the step for L is
one (P k) x (P k) Gauss-Newton system; it converges quadratically to rank-k optima, where L-BFGS
on Cholesky factors needed hundreds of iterations. It is also the solver for signal="lowrank_k".

Both stop on the Fisher-predicted gain (1/2 g^T I^-1 g, in log-likelihood units) and evaluate
line-search trials without gradients. :func:`null_ascent` checks the remaining optimality
condition, that no PSD direction outside C0's range raises the likelihood.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from scipy.linalg import solve_triangular
from scipy.linalg.lapack import dposv, dpotrf, dsyevd

from regulas.lmm.likelihood import Evaluation, KronSumProblem

_HALVINGS = 12  # line-search halvings before a step counts as failed
_E = TypeVar("_E")


@dataclass
class ScoringResult:
    C0: np.ndarray
    C1: np.ndarray
    ev: Evaluation
    n_iter: int
    predicted_gain: float  # of the last step, log-likelihood units
    converged: bool  # predicted gain below tol with no active constraint
    projected: bool  # the PSD projection truncated the last step (covariance scoring only)


def _project_psd(C: np.ndarray, rank: int | None = None) -> tuple[np.ndarray, bool]:
    """Nearest PSD matrix of rank <= ``rank`` (Frobenius), and whether anything was cut."""
    w, Q, info = dsyevd(C, lower=1)  # direct LAPACK: numpy's wrapper costs more than the work at small P
    if info != 0:
        raise np.linalg.LinAlgError("eigendecomposition failed")
    cut = bool(w[0] < 0)
    w = np.clip(w, 0.0, None)
    if rank is not None and rank < w.size:
        cut = cut or bool(np.any(w[: w.size - rank] > 0))
        w[: w.size - rank] = 0.0  # eigh sorts ascending: keep the top `rank`
    return np.asarray((Q * w) @ Q.T), cut


def _remaining(pred: float, gain: float, last_gain: float, tol: float) -> float:
    """Estimated log-likelihood still to gain: the Fisher prediction, or, where scoring converges
    only linearly (expected and observed information differ), the geometric tail of the gains."""
    rate = gain / last_gain if last_gain > 0 else 0.0
    if gain < 1e-3 * tol:
        tail = 0.0
    elif rate < 0.95:
        tail = gain * rate / (1.0 - rate)
    else:
        tail = np.inf
    return max(pred, tail)


def _cholesky(C: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a symmetric C (lower triangle read); LinAlgError if not PD."""
    L, info = dpotrf(C, lower=1, clean=1)
    if info != 0:
        raise np.linalg.LinAlgError("matrix is not positive definite")
    return np.asarray(L)


def _try(problem: KronSumProblem, C0: np.ndarray, C1: np.ndarray) -> tuple[Evaluation, np.ndarray] | None:
    C1 = (C1 + C1.T) / 2
    try:
        return problem.evaluate(C0, _cholesky(C1), gradient=False), C1
    except (np.linalg.LinAlgError, FloatingPointError):
        return None


def _line_search(
    problem: KronSumProblem, loglik: float, point: Callable[[float], tuple[np.ndarray, np.ndarray, _E]]
) -> tuple[tuple[Evaluation, np.ndarray] | None, _E]:
    """The first of the steps 1, 1/2, 1/4, ... whose point (C0, C1) raises the likelihood above
    ``loglik``: its (evaluation without gradient, C1), or None when every halving failed; and the
    ``extra`` that ``point`` returned with the last point tried."""
    step = 1.0
    for _ in range(_HALVINGS):
        C0, C1, extra = point(step)
        trial = _try(problem, C0, C1)
        if trial is not None and trial[0].loglik > loglik:
            return trial, extra
        step /= 2
    return None, extra


def fisher_scoring(
    problem: KronSumProblem,
    C0: np.ndarray,
    C1: np.ndarray,
    *,
    rank: int | None = None,
    max_iter: int = 200,
    tol: float = 1e-6,
    min_gain: float = 0.0,
) -> ScoringResult:
    """Maximise the likelihood over PSD C0 (rank <= ``rank``) and PD C1 from (C0, C1), internal units.

    Stops when the predicted gain of the unconstrained step falls below ``tol`` (log-likelihood
    units) with the projection inactive, when an accepted step gains less than ``min_gain``
    (screening), when no halved step raises the likelihood, or after ``max_iter`` steps.
    """
    C0, _ = _project_psd(C0, rank)
    C1 = (C1 + C1.T) / 2
    ev = problem.evaluate(C0, _cholesky(C1))
    it, pred, cut, converged, last_gain = 0, np.inf, False, False, np.inf
    for it in range(1, max_iter + 1):
        o00, o01, o11 = ev.information()
        g0, g1 = ev.rotated_gradients()
        det = o00 * o11 - o01**2
        # Levenberg-style damping only where the 2 x 2 information is numerically singular
        det = np.where(det > 1e-12 * (o00 * o11 + 1e-300), det, o00 * o11 * 1e-12 + 1e-300)
        d0 = 2.0 * (o11 * g0 - o01 * g1) / det
        d1 = 2.0 * (o00 * g1 - o01 * g0) / det
        pred = 0.5 * float((g0 * d0).sum() + (g1 * d1).sum())
        Tinv = ev.Tc_inv
        D0 = Tinv @ d0 @ Tinv.T
        D1 = Tinv @ d1 @ Tinv.T

        def point(t: float) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, bool]]:
            C0t, cut_t = _project_psd(C0 + t * D0, rank)
            return C0t, C1 + t * D1, (C0t, cut_t)

        new, (C0n, cut) = _line_search(problem, ev.loglik, point)
        if new is None:
            converged = pred < tol
            break
        gain = new[0].loglik - ev.loglik
        C0, C1, ev = C0n, new[1], new[0]
        if not cut and _remaining(pred, gain, last_gain, tol) < tol:
            converged = True
            break
        if gain < min_gain:
            break
        last_gain = gain
    return ScoringResult(C0, C1, ev, it, pred, converged, cut)


def factor_scoring(
    problem: KronSumProblem,
    L: np.ndarray,
    C1: np.ndarray,
    *,
    max_iter: int = 200,
    tol: float = 1e-6,
    min_gain: float = 0.0,
) -> ScoringResult:
    """Gauss-Newton (Fisher scoring) over C0 = L L^T (L: P x k) and freeform PD C1, internal units.

    The quadratic model in rotated entries a = dC0', b = dC1' is
    sum_pq g0 a + g1 b - 1/4 [a b] Omega_pq [a b]^T; maximising over b entry-wise leaves
    sum_pq g~ a - 1/4 o~ a^2 with g~ = g0 - o01 g1 / o11 and o~ = det Omega_pq / o11, and
    a = sum_j x_j D_j is linear in the step x of L. Stops like :func:`fisher_scoring`.
    """
    P, k = L.shape
    C1 = (C1 + C1.T) / 2
    ev = problem.evaluate(L @ L.T, _cholesky(C1))
    it, pred, converged, last_gain = 0, np.inf, False, np.inf
    for it in range(1, max_iter + 1):
        o00, o01, o11 = ev.information()
        g0, g1 = ev.rotated_gradients()
        gt = g0 - o01 * g1 / o11
        ot = np.clip(o00 - o01**2 / o11, 0.0, None)
        Tc = ev.Tc
        Mm = Tc @ L  # P x k
        H = _face_information(Tc, Mm, ot)
        h = (2.0 * (Tc.T @ gt @ Mm)).ravel()
        x = _solve_pd(H, h)
        X = x.reshape(P, k)
        a = (Tc @ X) @ Mm.T
        a += a.T
        b = (2.0 * g1 - o01 * a) / o11
        pred = 0.5 * float(h @ x) + float((g1 * g1 / o11).sum())
        D1 = ev.Tc_inv @ b @ ev.Tc_inv.T

        def point(t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            Lt = L + t * X
            return Lt @ Lt.T, C1 + t * D1, Lt

        new, Ln = _line_search(problem, ev.loglik, point)
        if new is None:
            converged = pred < tol
            break
        gain = new[0].loglik - ev.loglik
        L, C1, ev = Ln, new[1], new[0]
        if _remaining(pred, gain, last_gain, tol) < tol:
            converged = True
            break
        if gain < min_gain:
            break
        last_gain = gain
    return ScoringResult(L @ L.T, C1, ev, it, pred, converged, False)


def _face_information(Tc: np.ndarray, Mm: np.ndarray, ot: np.ndarray) -> np.ndarray:
    """H = 1/2 sum_pq o~_pq D_ic,pq D_jd,pq for D_ic = t_i m_c^T + m_c t_i^T, as (P k) x (P k).

    Expanding the product (o~ symmetric) leaves two terms, each a few small matrix products
    instead of one (P k) x P^2 x (P k) product:
    A[i,c,j,d] = sum_p t_pi t_pj sum_q o~_pq m_qc m_qd, B[i,c,j,d] = sum_pq t_pi m_pd o~_pq m_qc t_qj.
    """
    P, k = Mm.shape
    Bp = ot @ (Mm[:, :, None] * Mm[:, None, :]).reshape(P, k * k)  # Bp[p, (c, d)]
    TT = (Tc[:, :, None] * Tc[:, None, :]).reshape(P, P * P)
    A = (TT.T @ Bp).reshape(P, P, k, k).transpose(0, 2, 1, 3)
    X = (Tc[:, :, None] * Mm[:, None, :]).reshape(P, P * k)  # X[p, (i, d)] = t_pi m_pd
    B = (X.T @ ot @ X).reshape(P, k, P, k).transpose(0, 3, 2, 1)
    H = (A + B).reshape(P * k, P * k)
    return 0.5 * (H + H.T)


def _solve_pd(H: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Solve H x = h for a PSD H (singular along rotations L -> L R): ridge-regularised Cholesky."""
    n = h.size
    ridge = 1e-10 * float(np.trace(H)) / n + 1e-300
    for _ in range(6):
        Hr = H.copy()
        Hr.reshape(-1)[:: n + 1] += ridge
        _, x, info = dposv(Hr, h, lower=1)
        if info == 0:
            return np.asarray(x)
        ridge *= 1e3
    return np.asarray(np.linalg.lstsq(H, h, rcond=None)[0])


def factor_of(C0: np.ndarray, rank: int | None = None, rel: float = 1e-9) -> np.ndarray:
    """P x k factor L of PSD C0 (L L^T = C0 up to eigenvalues below rel * max), k = its numerical
    rank, at most ``rank``; k >= 1."""
    w, Q = np.linalg.eigh((C0 + C0.T) / 2)
    w, Q = w[::-1], Q[:, ::-1]
    keep = max(1, int(np.sum(w > rel * max(float(w[0]), 1e-300))))
    if rank is not None:
        keep = min(keep, rank)
    return np.asarray(Q[:, :keep] * np.sqrt(np.clip(w[:keep], 0.0, None)))


def null_ascent(problem: KronSumProblem, C0: np.ndarray, C1: np.ndarray, ev: Evaluation, *, rel: float = 1e-9) -> np.ndarray | None:
    """A better C0 + t v v^T, v in C0's null space, when the gradient points there; else None.

    At a rank-deficient C0 the likelihood's directional derivative along v v^T is v^T g v; at an
    optimum it is <= 0 for every v with C0 v = 0. Steps t of a few sizes relative to the mean
    noise variance are tried (log-likelihood only).
    """
    w, Q = np.linalg.eigh((C0 + C0.T) / 2)
    N = Q[:, w <= rel * max(float(w[-1]), 1e-300)]
    if N.shape[1] == 0:
        return None
    S = N.T @ ev.grad_C0 @ N
    sw, sQ = np.linalg.eigh((S + S.T) / 2)
    if sw[-1] <= 0:
        return None
    v = N @ sQ[:, -1]
    scale = float(np.trace(C1)) / problem.P
    best, best_ll = None, ev.loglik
    L1 = np.linalg.cholesky(C1)
    for t in (1e-4, 1e-3, 1e-2, 1e-1, 1.0):
        cand = C0 + t * scale * np.outer(v, v)
        try:
            ll = problem.evaluate(cand, L1, gradient=False).loglik
        except (np.linalg.LinAlgError, FloatingPointError):
            continue
        if ll > best_ll:
            best, best_ll = cand, ll
    return best


def _pair_derivatives(Tc: np.ndarray, F: np.ndarray) -> np.ndarray:
    """Rotated derivatives of C = F F^T along each entry F[i, c]: t_i m_c^T + m_c t_i^T with
    t_i = Tc[:, i], m_c = (Tc F)[:, c]; shape (P, k, P * P)."""
    P, k = F.shape
    Mm = Tc @ F
    D = Tc.T[:, None, :, None] * Mm.T[None, :, None, :]
    return (D + D.transpose(0, 1, 3, 2)).reshape(P, k, P * P)


def whitened_lbfgs(
    problem: KronSumProblem,
    L: np.ndarray,
    C1: np.ndarray,
    *,
    max_iter: int = 500,
    tol: float = 1e-6,
) -> ScoringResult:
    """L-BFGS over (L, log-Cholesky factor of C1) in coordinates whitened by the Fisher information.

    Fisher scoring converges only linearly where the expected information differs from the
    observed one (a misspecified rank, e.g. rank-1 C0 on full-rank data); L-BFGS corrects for
    that, and whitening once by the expected information at the start makes its problem well
    conditioned. Stops when 1/2 g^T I^-1 g (I at the start) falls below ``tol``.
    """
    P, k = L.shape
    tril = np.tril_indices(P)
    diag_pos = np.flatnonzero(tril[0] == tril[1])
    n0 = P * k
    L1 = np.linalg.cholesky((C1 + C1.T) / 2)
    t1 = L1[tril].copy()
    t1[diag_pos] = np.log(t1[diag_pos])
    theta0 = np.concatenate([L.ravel(), t1])

    def unpack(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Lc = theta[:n0].reshape(P, k)
        F = np.zeros((P, P))
        vals = theta[n0:].copy()
        vals[diag_pos] = np.exp(vals[diag_pos])
        F[tril] = vals
        return Lc, F

    # the expected information in theta at the start
    ev = problem.evaluate(L @ L.T, L1)
    o00, o01, o11 = ev.information()
    D0 = _pair_derivatives(ev.Tc, L).reshape(n0, P * P)
    D1 = _pair_derivatives(ev.Tc, L1)[tril[0], tril[1]]
    D1[diag_pos] *= np.diag(L1)[:, None]
    o00f, o01f, o11f = o00.ravel(), o01.ravel(), o11.ravel()
    H = np.empty((theta0.size, theta0.size))
    H[:n0, :n0] = (D0 * o00f) @ D0.T
    H[:n0, n0:] = (D0 * o01f) @ D1.T
    H[n0:, :n0] = H[:n0, n0:].T
    H[n0:, n0:] = (D1 * o11f) @ D1.T
    H *= 0.5
    # rotations L -> L R leave C0 unchanged: a small ridge keeps the metric definite
    H[np.diag_indices_from(H)] += 1e-8 * float(np.trace(H)) / H.shape[0] + 1e-300
    R = np.linalg.cholesky(H).T  # H = R^T R; x = R theta
    diag_rows = tril[0][diag_pos]

    def at(x: np.ndarray) -> tuple[Evaluation, np.ndarray, np.ndarray] | None:
        Lc, F = unpack(solve_triangular(R, x, check_finite=False))
        try:
            return problem.evaluate(Lc @ Lc.T, F, gradient=False), Lc, F
        except (np.linalg.LinAlgError, FloatingPointError):
            return None

    def ascent(point: tuple[Evaluation, np.ndarray, np.ndarray]) -> np.ndarray:
        e, Lc, F = point
        g1t = (2.0 * e.grad_C1 @ F)[tril]
        g1t[diag_pos] *= F[diag_rows, diag_rows]
        g = np.concatenate([(2.0 * e.grad_C0 @ Lc).ravel(), g1t])
        return np.asarray(solve_triangular(R, g, trans="T", check_finite=False))

    # L-BFGS (two-loop recursion, backtracking Armijo search) maximising the log-likelihood in x;
    # written out because scipy's wrapper costs more than the few iterations needed here
    x = R @ theta0
    point = (ev, L, L1)
    g = ascent(point)
    pred = 0.5 * float(g @ g)
    pairs: list[tuple[np.ndarray, np.ndarray, float]] = []
    it = 0
    while pred >= tol and it < max_iter:
        it += 1
        q = g.copy()
        alphas = []
        for sv, yv, rho in reversed(pairs):
            alpha = rho * float(sv @ q)
            q -= alpha * yv
            alphas.append(alpha)
        if pairs:
            sv, yv, _ = pairs[-1]
            q *= float(sv @ yv) / float(yv @ yv)
        for (sv, yv, rho), alpha in zip(pairs, reversed(alphas)):
            q += (alpha - rho * float(yv @ q)) * sv
        slope = float(g @ q)
        if slope <= 0:  # not an ascent direction: forget the curvature pairs
            q, slope, pairs = g.copy(), float(g @ g), []
        step, new = 1.0, None
        for _ in range(_HALVINGS + 8):
            cand = at(x + step * q)
            if cand is not None and cand[0].loglik >= point[0].loglik + 1e-4 * step * slope:
                new = cand
                break
            step /= 2
        if new is None:
            break
        g_new = ascent(new)
        sv, yv = step * q, g - g_new  # curvature of -loglik
        if float(sv @ yv) > 1e-12 * float(sv @ sv):
            pairs.append((sv, yv, 1.0 / float(sv @ yv)))
            if len(pairs) > 30:
                pairs.pop(0)
        x, point, g = x + step * q, new, g_new
        pred = 0.5 * float(g @ g)
    ev, Lc, F = point
    return ScoringResult(Lc @ Lc.T, F @ F.T, ev, it, pred, pred < tol, False)
