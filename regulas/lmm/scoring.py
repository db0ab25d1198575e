"""Fisher scoring in covariance space for freeform (or low-rank) C0 with freeform C1.

In the rotated coordinates of :mod:`regulas.lmm.likelihood` (C1 -> I, C0 -> diag(lam)) the
expected information of the covariance entries is block diagonal over condition pairs:

    E[-d^2 loglik] = 1/2 sum_pq [dC0'_pq, dC1'_pq] Omega_pq [dC0'_pq, dC1'_pq]^T,
    Omega_pq = sum_i W_ip W_iq [[s_i^2, s_i], [s_i, 1]]  (+ (G - r) in the C1 C1 entry),

so a scoring step solves P^2 2 x 2 systems: O(r P^2 + P^3) like one gradient. Steps are
projected onto the feasible set (C0 PSD of rank <= k, C1 positive definite) and accepted
only when the likelihood rises. Unlike L-BFGS on Cholesky factors, scoring in covariance
space is not slowed by nearly singular C0 (where C0 = L L^T makes the problem degenerate),
so it reaches the optimum in tens of evaluations; the result seeds the L-BFGS polish.
"""

from __future__ import annotations

import numpy as np

from regulas.lmm.likelihood import KronSumProblem


def _project_psd(C: np.ndarray, rank: int | None) -> np.ndarray:
    w, Q = np.linalg.eigh((C + C.T) / 2)
    w = np.clip(w, 0.0, None)
    if rank is not None and rank < w.size:
        w[: w.size - rank] = 0.0  # eigh sorts ascending: keep the top `rank`
    return np.asarray((Q * w) @ Q.T)


def fisher_scoring(
    problem: KronSumProblem,
    C0: np.ndarray,
    C1: np.ndarray,
    *,
    rank: int | None = None,
    max_iter: int = 200,
    tol: float = 1e-10,
) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Maximise the likelihood over PSD C0 (rank <= ``rank``) and PD C1 from (C0, C1), internal units.

    Returns (C0, C1, loglik, iterations). ``tol``: stop when a step gains less than
    tol * n_eff in log-likelihood.
    """
    s, G, r = problem.s, problem.G, problem.r
    C0 = _project_psd(C0, rank)
    L1 = np.linalg.cholesky(C1)
    ev = problem.evaluate(C0, L1)
    it = 0
    for it in range(1, max_iter + 1):
        W = ev.W
        o00 = (W * s[:, None] ** 2).T @ W
        o01 = (W * s[:, None]).T @ W
        o11 = W.T @ W + (G - r)
        Tinv = ev.Tc_inv
        g0 = Tinv.T @ ev.grad_C0 @ Tinv  # gradient in the rotated coordinates
        g1 = Tinv.T @ ev.grad_C1 @ Tinv
        det = o00 * o11 - o01**2
        # Levenberg-style damping only where the 2 x 2 information is numerically singular
        det = np.where(det > 1e-12 * (o00 * o11 + 1e-300), det, o00 * o11 * 1e-12 + 1e-300)
        d0 = 2.0 * (o11 * g0 - o01 * g1) / det
        d1 = 2.0 * (o00 * g1 - o01 * g0) / det
        D0 = Tinv @ d0 @ Tinv.T
        D1 = Tinv @ d1 @ Tinv.T
        step, accepted = 1.0, False
        while step > 1e-3:  # a few halvings; a stalled projection is left to L-BFGS
            C0n = _project_psd(C0 + step * D0, rank)
            C1n = C1 + step * D1
            C1n = (C1n + C1n.T) / 2
            try:
                L1n = np.linalg.cholesky(C1n)
                evn = problem.evaluate(C0n, L1n)
            except (np.linalg.LinAlgError, FloatingPointError):
                step /= 2
                continue
            if evn.loglik > ev.loglik:
                accepted = True
                break
            step /= 2
        if not accepted:
            break
        gain = evn.loglik - ev.loglik
        C0, C1, L1, ev = C0n, C1n, L1n, evn
        if gain < tol * problem.n_eff:
            break
    return C0, C1, float(ev.loglik), it
