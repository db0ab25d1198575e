"""The structured path's solver: L-BFGS on the factors with exact gradients, from a moment start.

Parameters (internal units, see :mod:`regulas.lmm.structured`) are packed into one vector
theta, preconditioned by the moment estimate d0 of the noise variances (so that conditions
of very different scales look alike to the optimiser):

    low-rank signal:  F = sqrt(d0) * X        (theta holds X, P x k)
    diagonal signal:  a = d0 * exp(t)          (identity: a = mean(d0) exp(t0) 1)
    diagonal noise:   d = d0 * exp(t)          (identity: d = mean(d0) exp(t0) 1)
    factor noise:     d = d0 * exp(t), H = sqrt(d0) * X   (X: P x q)

One evaluation costs O(r P (k + q)) (plus O(G P q) with factor noise); memory stays O(r P).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

from regulas.lmm.structured import Covariances, StructuredEvaluation, StructuredProblem

_SCREEN_ITER = 30  # L-BFGS iterations of a start's screening run when there are several starts
_POWER_ITER = 4  # subspace iterations of the randomized start directions
_ESCAPE_STEPS = (1e-3, 1e-2, 1e-1, 1.0)  # of the mean noise variance: sizes of the escape step
_ESCAPE_ROUNDS = 3
_MAXCOR = 50  # L-BFGS memory: 50 pairs took ~15% fewer evaluations than 20 with factor noise (n = P (k + q + 1) parameters)


class Packing:
    """theta <-> :class:`Covariances` for one (signal, noise) pair; see the module docstring."""

    def __init__(self, signal: str, noise: str, P: int, rank: int, noise_rank: int, d0: np.ndarray) -> None:
        self.signal, self.noise, self.P = signal, noise, P
        self.k = rank if signal == "lowrank_k" else 0
        self.q = noise_rank if noise == "factor" else 0
        self.d0, self.root = d0, np.sqrt(d0)
        self.n0 = {"lowrank_k": P * self.k, "diagonal": P, "identity": 1}[signal]
        self.n1 = {"diagonal": P, "identity": 1, "factor": P}[noise] + P * self.q

    @property
    def n_params(self) -> int:
        return self.n0 + self.n1

    def _var(self, t: np.ndarray) -> np.ndarray:
        """Variances from log-parameters: one per condition, or one shared."""
        if t.size == 1:
            return np.full(self.P, float(np.mean(self.d0)) * float(np.exp(t[0])))
        return np.asarray(self.d0 * np.exp(t))

    def _log(self, v: np.ndarray, shared: bool) -> np.ndarray:
        if shared:
            return np.array([np.log(float(np.mean(v)) / float(np.mean(self.d0)))])
        return np.asarray(np.log(v / self.d0))

    def unpack(self, theta: np.ndarray) -> Covariances:
        P, k, q = self.P, self.k, self.q
        t0, t1 = theta[: self.n0], theta[self.n0 :]
        if k:
            F, a = self.root[:, None] * t0.reshape(P, k), np.zeros(P)
        else:
            F, a = np.zeros((P, 0)), self._var(t0)
        nd = t1.size - P * q
        d = self._var(t1[:nd])
        H = self.root[:, None] * t1[nd:].reshape(P, q)
        return Covariances(F, a, d, H)

    def pack(self, cov: Covariances) -> np.ndarray:
        t0 = (cov.F / self.root[:, None]).ravel() if self.k else self._log(cov.a, self.signal == "identity")
        t1 = self._log(cov.d, self.noise == "identity")
        return np.concatenate([t0, t1, (cov.H / self.root[:, None]).ravel()])

    def gradient(self, cov: Covariances, ev: StructuredEvaluation) -> np.ndarray:
        """d loglik / d theta from the gradients with respect to F, a, d, H."""
        if self.k:
            g0 = (self.root[:, None] * ev.gF).ravel()
        else:
            g0 = ev.ga * cov.a
            g0 = np.array([g0.sum()]) if self.signal == "identity" else g0
        g1 = ev.gd * cov.d
        g1 = np.array([g1.sum()]) if self.noise == "identity" else g1
        return np.concatenate([g0, g1, (self.root[:, None] * ev.gH).ravel()])


def moment_start(problem: StructuredProblem, signal: str, noise: str, rank: int, noise_rank: int) -> tuple[Packing, Covariances]:
    """Method-of-moments (Haseman-Elston) start, internal units, without a P x P matrix.

    Per condition, E[y_p^T y_p] = tr(K) C0_pp + G C1_pp and E[y_p^T K y_p] = tr(K^2) C0_pp +
    tr(K) C1_pp give the diagonals. The directions of a low-rank C0 are the top right singular
    vectors of diag(sqrt(max(s - mean s, 0))) U^T Y D0^-1/2 (the part of Y's variance that grows
    with K), those of H the top eigenvectors of the null-space Gram matrix D0^-1/2 N D0^-1/2,
    whose expectation is (G - r) D0^-1/2 C1 D0^-1/2; both by randomized subspace iteration.
    """
    s, G, P, Uy = problem.s, problem.G, problem.P, problem.Uy
    S1 = np.einsum("ij,ij->j", Uy, Uy) + problem.N_diag
    S2 = np.einsum("i,ij,ij->j", s, Uy, Uy)
    t1, t2 = float(s.sum()), float(s @ s)
    det = t1 * t1 - G * t2
    if abs(det) < 1e-12 * G * t2:  # K proportional to I: split evenly
        c0, c1 = S1 / (2 * t1), S1 / (2 * G)
    else:
        c0, c1 = (t1 * S1 - G * S2) / det, (t1 * S2 - t2 * S1) / det
    total = max(float(np.mean(np.clip(c0, 0.0, None) + c1)), 1e-3)
    d0 = np.maximum(c1, 0.05 * total)  # start values only: comfortably positive
    pack = Packing(signal, noise, P, rank, noise_rank, d0)
    rng = np.random.default_rng(0)  # the start is deterministic
    root = np.sqrt(d0)
    F, a = np.zeros((P, 0)), np.zeros(P)
    if signal in ("diagonal", "identity"):
        lam = _grid_variances(s, (Uy / root) ** 2, shared=signal == "identity")
        a = d0 * np.maximum(lam, 1e-2 * float(lam.max()))  # log-parametrised: keep away from 0
    if pack.k:
        a = np.zeros(P)
        A = np.sqrt(np.clip(s - t1 / G, 0.0, None))[:, None] * (Uy / root)  # r x P
        Vk = _top_directions(lambda X: A.T @ (A @ X), P, pack.k, rng)
        # the moment estimate of C0 (whitened) along each direction, diagonal part of N only
        lam = _grid_variances(s, ((Uy / root) @ Vk) ** 2)
        # no start direction may sit near collapse (a zero column of F is stationary)
        lam = np.maximum(lam, 0.1 * max(float(lam.max()), 1e-2))
        F = root[:, None] * (Vk * np.sqrt(lam))
    H = np.zeros((P, 0))
    d = d0
    if pack.q:
        n_null = G - problem.r
        if n_null > 0:
            Vq = _top_directions(lambda X: problem.null_gram_times(X / root[:, None]) / root[:, None], P, pack.q, rng)
            NV = problem.null_gram_times(Vq / root[:, None]) / root[:, None]
            lam_h = np.maximum((Vq * NV).sum(axis=0) / n_null - 1.0, 0.1)
        else:
            Vq, lam_h = np.linalg.qr(rng.standard_normal((P, pack.q)))[0], np.full(pack.q, 0.1)
        H = root[:, None] * (Vq * np.sqrt(lam_h))
        d = np.maximum(d0 - (H * H).sum(axis=1), 0.05 * d0)
    return pack, Covariances(F, a, d, H)


def _grid_variances(s: np.ndarray, Z2: np.ndarray, *, shared: bool = False) -> np.ndarray:
    """Per column c of Z2 (r x n, squared whitened projections of U^T Y), the lam on a log grid
    maximising the 1-D likelihood of rows with variances s_i lam + 1 (``shared``: one lam for
    all columns, repeated). The moment estimate is ruled by the largest s_i (usually the
    intercept's direction, which centring empties) and came out far too small; this does not."""
    grid = np.logspace(-4, 4, 97)
    inv = 1.0 / (np.multiply.outer(grid, s) + 1.0)  # n_grid x r
    ll = np.log(inv).sum(axis=1)[:, None] - inv @ Z2  # n_grid x n
    if shared:
        return np.full(Z2.shape[1], grid[np.argmax(ll.sum(axis=1))])
    return np.asarray(grid[np.argmax(ll, axis=0)])


def _top_directions(apply: Callable[[np.ndarray], np.ndarray], P: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """P x k orthonormal top eigenvectors of a symmetric PSD operator (randomized subspace iteration)."""
    X = rng.standard_normal((P, min(P, k + 8)))
    for _ in range(_POWER_ITER):
        X = np.linalg.qr(apply(X))[0]
    Z = apply(X)
    w, Qs = np.linalg.eigh(X.T @ Z)
    return np.asarray(X @ Qs[:, ::-1][:, :k])


@dataclass
class StructuredRun:
    cov: Covariances
    loglik: float  # internal units
    converged: bool
    n_iter: int
    n_eval: int
    start: str
    history: list[str] = field(default_factory=list)


def _objective(problem: StructuredProblem, pack: Packing, scale: float):  # type: ignore[no-untyped-def]
    counter = [0]

    def f(theta: np.ndarray) -> tuple[float, np.ndarray]:
        counter[0] += 1
        cov = pack.unpack(theta)
        try:
            ev = problem.evaluate(cov)
        except (FloatingPointError, np.linalg.LinAlgError):
            return np.inf, np.zeros_like(theta)
        return -ev.loglik * scale, -pack.gradient(cov, ev) * scale

    return f, counter


def optimise(
    problem: StructuredProblem, pack: Packing, cov: Covariances, name: str, *, tol: float, max_iter: int, loose: bool = False
) -> StructuredRun:
    """L-BFGS-B on theta from ``cov``; stops when an iteration gains less than tol / 100
    log-likelihood units (no less than 1e-13 relative), or the gradient vanishes."""
    theta = pack.pack(cov)
    start = problem.evaluate(cov).loglik
    scale = 1.0 / max(abs(start), 1.0)
    f, counter = _objective(problem, pack, scale)
    if loose:
        ftol, gtol, iters = 1e-6, 1e-5, min(max_iter, _SCREEN_ITER)
    else:
        ftol, gtol, iters = max(1e-2 * tol * scale, 1e-13), 1e-4 * tol, max_iter
    res = minimize(f, theta, jac=True, method="L-BFGS-B", options={"maxiter": iters, "ftol": ftol, "gtol": gtol, "maxcor": _MAXCOR})
    out = pack.unpack(np.asarray(res.x))
    return StructuredRun(out, problem.evaluate(out).loglik, bool(res.success), int(res.nit), counter[0], name, [name])


def random_start(pack: Packing, cov: Covariances, rng: np.random.Generator) -> Covariances:
    """The moment start with its factors' directions (or the diagonals) drawn at random, same sizes."""
    P = pack.P

    def redraw(X: np.ndarray) -> np.ndarray:
        Z = rng.standard_normal(X.shape)
        return Z * np.sqrt((X * X).sum() / max(float((Z * Z).sum()), 1e-300))

    a = cov.a * np.exp(0.5 * rng.standard_normal(P)) if pack.signal == "diagonal" else cov.a
    return Covariances(redraw(cov.F), a, cov.d * np.exp(0.3 * rng.standard_normal(P)) if pack.noise != "identity" else cov.d, redraw(cov.H))


def _operator(times: Callable[[np.ndarray], np.ndarray], P: int) -> LinearOperator:
    return LinearOperator((P, P), matvec=lambda x: times(x.reshape(P, 1)).ravel(), dtype=float)  # type: ignore[misc]


def escape(problem: StructuredProblem, pack: Packing, run: StructuredRun, *, tol: float, max_iter: int) -> StructuredRun:
    """Leave a collapsed direction of C0 = F F^T: where the gradient with respect to C0 has a
    positive eigenvalue (direction v), try the best rank-k approximation of F F^T + t v v^T for a
    few t and re-optimise from the best; repeat while that gains (as the general path's escape)."""
    for _ in range(_ESCAPE_ROUNDS):
        ev = problem.evaluate(run.cov)
        if ev.grad_C0_times is None:
            return run
        P = pack.P
        try:
            # only the sign and a rough direction matter: a loose, bounded Lanczos run
            lam, vec = eigsh(_operator(ev.grad_C0_times, P), k=1, which="LA", tol=1e-4, ncv=min(P, 20), maxiter=50, v0=np.ones(P))
        except ArpackNoConvergence:
            return run
        if lam[0] <= 0:
            return run
        v = vec[:, 0]
        scale = float(np.mean(run.cov.d))
        best, best_ll = None, run.loglik
        for t in _ESCAPE_STEPS:
            Fe = np.hstack([run.cov.F, np.sqrt(t * scale) * v[:, None]])
            Uf, sf, _ = np.linalg.svd(Fe, full_matrices=False)  # best rank-k part of Fe Fe^T
            cand = Covariances(Uf[:, : pack.k] * sf[: pack.k], run.cov.a, run.cov.d, run.cov.H)
            try:
                ll = problem.evaluate(cand).loglik
            except (FloatingPointError, np.linalg.LinAlgError):
                continue
            if ll > best_ll:
                best, best_ll = cand, ll
        if best is None:
            return run
        new = optimise(problem, pack, best, "escape", tol=tol, max_iter=max_iter)
        if new.loglik <= run.loglik + 1e-9 * problem.n_eff:
            return run
        new.n_iter += run.n_iter
        new.n_eval += run.n_eval
        new.history = run.history + ["escape"]
        new.start = run.start
        run = new
    return run


def fit_structured(
    problem: StructuredProblem,
    signal: str,
    noise: str,
    rank: int,
    noise_rank: int,
    *,
    n_restarts: int,
    rng: np.random.Generator,
    tol: float,
    max_iter: int,
    starts: list[tuple[str, Covariances]] | None = None,
) -> tuple[StructuredRun, list[StructuredRun]]:
    """Best run and all runs: one start (the moment one, unless ``starts`` are given) is optimised
    directly; several are screened by short L-BFGS runs and the best is polished."""
    pack, moment = moment_start(problem, signal, noise, rank, noise_rank)
    if starts is None:
        starts = [("moment", moment)] + [(f"random{i}", random_start(pack, moment, rng)) for i in range(n_restarts)]
    if len(starts) == 1:
        run = escape(problem, pack, optimise(problem, pack, starts[0][1], starts[0][0], tol=tol, max_iter=max_iter), tol=tol, max_iter=max_iter)
        return run, [run]
    screened = sorted(
        (optimise(problem, pack, c, name, tol=tol, max_iter=max_iter, loose=True) for name, c in starts), key=lambda run: -run.loglik
    )
    best = optimise(problem, pack, screened[0].cov, screened[0].start, tol=tol, max_iter=max_iter)
    best.n_iter += screened[0].n_iter
    best.n_eval += sum(run.n_eval for run in screened)
    best.history = [screened[0].start, "polish"]
    best = escape(problem, pack, best, tol=tol, max_iter=max_iter)
    return best, [best] + screened[1:]
