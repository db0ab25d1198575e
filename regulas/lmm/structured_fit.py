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

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

from regulas.lmm.structured import Covariances, StructuredEvaluation, StructuredProblem

_SCREEN_ITER = 30  # L-BFGS iterations of a start's screening run when there are several starts
_POWER_ITER = 4  # subspace iterations of the randomized start directions


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
    a0 = np.maximum(c0, 0.1 * max(float(np.mean(np.clip(c0, 0.0, None))), 0.1 * total))
    pack = Packing(signal, noise, P, rank, noise_rank, d0)
    rng = np.random.default_rng(0)  # the start is deterministic
    root = np.sqrt(d0)
    F = np.zeros((P, 0))
    a = a0 if signal == "diagonal" else np.full(P, float(np.mean(a0)))
    if pack.k:
        a = np.zeros(P)
        A = np.sqrt(np.clip(s - t1 / G, 0.0, None))[:, None] * (Uy / root)  # r x P
        Vk = _top_directions(lambda X: A.T @ (A @ X), P, pack.k, rng)
        # the moment estimate of C0 (whitened) along each direction, diagonal part of N only
        UV = (Uy / root) @ Vk
        lam = ((G * s - t1) @ (UV * UV) - t1 * ((problem.N_diag / d0) @ (Vk * Vk))) / (G * t2 - t1 * t1)
        lam = np.maximum(lam, 0.1 * float(np.mean(np.clip(c0 / d0, 0.0, None))) + 1e-3)
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


def _top_directions(apply: object, P: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """P x k orthonormal top eigenvectors of a symmetric PSD operator (randomized subspace iteration)."""
    X = rng.standard_normal((P, min(P, k + 8)))
    for _ in range(_POWER_ITER):
        X = np.linalg.qr(apply(X))[0]  # type: ignore[operator]
    Z = apply(X)  # type: ignore[operator]
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
    res = minimize(f, theta, jac=True, method="L-BFGS-B", options={"maxiter": iters, "ftol": ftol, "gtol": gtol, "maxcor": 20})
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
        run = optimise(problem, pack, starts[0][1], starts[0][0], tol=tol, max_iter=max_iter)
        return run, [run]
    screened = sorted(
        (optimise(problem, pack, c, name, tol=tol, max_iter=max_iter, loose=True) for name, c in starts), key=lambda run: -run.loglik
    )
    best = optimise(problem, pack, screened[0].cov, screened[0].start, tol=tol, max_iter=max_iter)
    best.n_iter += screened[0].n_iter
    best.n_eval += sum(run.n_eval for run in screened)
    best.history = [screened[0].start, "polish"]
    return best, [best] + screened[1:]
