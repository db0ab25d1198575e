"""The Kronecker-sum LMM estimator (maximum likelihood or REML), scikit-learn API.

Model, for G genes, T motifs and P conditions::

    Y = 1 b^T + M beta + E,                       Y: G x P, M: G x T, b: P
    rows of beta ~ N(0, C0 / T)  (beta: T x P),    rows of E ~ N(0, C1)
    =>  vec(Y) ~ N(vec(1 b^T), C0 (x) K + C1 (x) I_G),   K = M M^T / T.

This is glimix-core's Kron2Sum with G = M / sqrt(T), X = a column of ones and A = I, so
``log_likelihood_`` equals ``Kron2Sum.lml()`` at the same (C0, C1). Note the prior scale: a
simulation drawing rows of beta from N(0, sigma^2 V) has C0 = T sigma^2 V here.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import ThreadpoolController

from regulas.lmm.cost import AUTO_STRUCTURED_FROM_P, DENSE_MAX_P
from regulas.lmm.covariance import Preconditioned, make_noise, make_signal, noise_factor, preconditioner
from regulas.lmm.likelihood import Evaluation, KronSumProblem, PrecomputedSetup
from regulas.lmm.linear import LinearPredictMixin
from regulas.lmm.scoring import ScoringResult, factor_of, factor_scoring, fisher_scoring, null_ascent, whitened_lbfgs
from regulas.lmm.structured import Covariances, StructuredProblem
from regulas.lmm.structured_fit import fit_structured
from regulas.lmm.structures import STRUCTURED_PAIRS, FactorNoise, LowRankSignal, Structure, structure_class
from regulas.lmm.validation import LMMInputError, check_design

_ESCAPE_STEPS = (1e-3, 1e-2, 1e-1, 1.0, 10.0)  # multiples of the mean variance, internal units
_SCREEN_TOL, _SCREEN_ITER = 1e-6, 30  # L-BFGS screening runs of every start (relative ftol, iterations)
_POLISH_WITHIN = 0.1  # screened starts this close to the best (loglik units) are polished if distinct
_WHITEN_EVERY = 15  # L-BFGS iterations between re-whitenings by the Fisher information
# with a misspecified rank the expected information overstates the curvature, so the predicted
# gain understates the remaining one (by ~10x measured): stop at a smaller predicted gain
_FISHER_SLACK = 1e-2
_FACE_ROUNDS = 4  # rank increases of C0 tried after a converged face
SOLVERS = ("auto", "structured", "general")
_controller: ThreadpoolController | None = None


def _single_threaded() -> Any:
    """Limit BLAS to one thread (a context manager); a no-op when it already is (cheap check)."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    if all(lib.get("num_threads", 1) == 1 for lib in _controller.info()):
        return contextlib.nullcontext()
    return _controller.limit(limits=1)


@dataclass
class _Run:
    theta: np.ndarray
    loglik: float  # internal units
    converged: bool
    n_iter: int
    start: str
    history: list[str] = field(default_factory=list)
    covs: tuple[np.ndarray, np.ndarray] | None = None  # (C0, C1) when the solver works in covariance space


class KronSumLMM(LinearPredictMixin, RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """Multi-condition linear mixed model with a Kronecker-sum covariance, fitted exactly.

    vec(Y) ~ N(vec(1 b^T), C0 (x) K + C1 (x) I_G) with K = M M^T / T (see the module docstring
    for shapes). One decomposition of M up front; each likelihood and gradient evaluation then
    costs O(r P^2 + P^3) with r = rank(M) <= min(G, T), independent of G.

    Parameters
    ----------
    signal : structure of C0: "freeform" (any PSD), "lowrank_k" (rank <= ``rank``),
        "diagonal", "identity" (scalar * I) or "block" (block-constant over ``blocks`` plus a
        shared nugget: C0 = Z B Z^T + tau I).
    noise : structure of C1: "freeform" (any PD), "diagonal", "identity" or "factor"
        (diagonal plus rank ``noise_rank``: C1 = diag(d) + H H^T, H: P x q).
        Both name structures registered in :mod:`regulas.lmm.structures`.
    rank : k for signal="lowrank_k", 1 <= k <= P (k < P on the structured path).
    noise_rank : q for noise="factor", 1 <= q < P (default 1); only valid with noise="factor".
    blocks : for signal="block": P group labels, or group sizes summing to P (a list whose
        length is P is read as labels).
    fit_intercept : estimate one mean per condition (profiled out by GLS).
    reml : maximise the restricted likelihood instead (needs fit_intercept).
    n_restarts : random Wishart starts in addition to the three deterministic ones (moment
        estimate, moment shrunk toward isotropic, isotropic).
    random_state : seed or numpy Generator for the random starts.
    max_iter : iterations per start and solver stage.
    tol : convergence threshold in log-likelihood units. With freeform C1 and freeform or
        low-rank C0 the fit stops when the Fisher-predicted remaining gain 1/2 g^T I^-1 g falls
        below it (on the face of C0's rank where the optimum is singular); other structures use
        L-BFGS-B, stopping when an iteration gains less than tol / 100.
    decomposition : "auto" | "gram" | "svd", see :class:`KronSumProblem`.
    solver : "auto" | "structured" | "general". The structured path
        (:mod:`regulas.lmm.structured`) covers signal "lowrank_k" (k < P), "diagonal" or
        "identity" with noise "diagonal" or "identity", and signal "lowrank_k" with noise
        "factor": it never forms a P x P matrix (O(r P (k + q)) per evaluation, plus O(G P q)
        with factor noise) and fits by L-BFGS on the factors from a moment start (plus
        ``n_restarts`` random ones). The general path works on P x P matrices (O(r P^2 + P^3)
        per evaluation) with several starts and escape steps. "auto" takes the structured path
        when the structures allow it and P >= AUTO_STRUCTURED_FROM_P (128).

    Attributes
    ----------
    coef_ : (T, P) posterior mean E[beta | Y] at the fitted C0, C1 and intercept.
    coef_var_ : (T, P) posterior variance of each entry of beta.
    intercept_ : (P,) GLS intercept b.
    C0_factor_, C0_diag_ : (P, k) and (P,) with C0 = C0_factor_ C0_factor_^T + diag(C0_diag_)
        (k = 0 for a diagonal signal; for the general path's freeform or block C0 an
        eigen-factor of C0 and zeros).
    C1_diag_, C1_factor_ : (P,) and (P, q) with C1 = diag(C1_diag_) + C1_factor_ C1_factor_^T
        (q = 0 for diagonal noise; for freeform C1 the Cholesky factor and zeros).
    C0_, C1_ : (P, P) fitted signal and noise covariances as dense arrays, built on access from
        the factors; refused (LMMInputError) above P = DENSE_MAX_P (4,096) conditions.
    solver_ : the path that fitted: "structured" or "general".
    n_evaluations_, fit_seconds_ : structured path only: likelihood evaluations, and wall
        seconds of the setup (decomposition of M, U^T Y), the optimisation and the posterior.
    log_likelihood_ : maximised (restricted) log-likelihood, same quantity as Kron2Sum.lml().
    converged_ : whether the best run met the stopping rule (rather than max_iter or a stalled step).
    n_iter_ : solver iterations summed over all starts, stages and escape steps.
    start_log_likelihoods_ : dict start name -> log-likelihood reached from it.
    """

    def __init__(
        self,
        signal: str = "freeform",
        noise: str = "freeform",
        rank: int | None = None,
        blocks: Sequence[object] | None = None,
        fit_intercept: bool = True,
        reml: bool = False,
        n_restarts: int = 1,
        random_state: int | np.random.Generator | None = None,
        max_iter: int = 2000,
        tol: float = 1e-6,
        decomposition: str = "auto",
        noise_rank: int | None = None,
        solver: str = "auto",
    ) -> None:
        self.signal = signal
        self.noise = noise
        self.rank = rank
        self.noise_rank = noise_rank
        self.solver = solver
        self.blocks = blocks
        self.fit_intercept = fit_intercept
        self.reml = reml
        self.n_restarts = n_restarts
        self.random_state = random_state
        self.max_iter = max_iter
        self.tol = tol
        self.decomposition = decomposition

    # -- public API ---------------------------------------------------------------------
    def fit(self, M: Any, Y: Any, *, setup: PrecomputedSetup | None = None) -> KronSumLMM:
        """Maximise the likelihood of Y (G x P) given motif scores M (G x T).

        ``setup``: U^T Y, the column sums and sums of squares of Y and the SVD of M computed
        elsewhere (:class:`~regulas.lmm.likelihood.PrecomputedSetup`, e.g. accumulated over blocks
        of conditions read from Zarr). Structured path only; the fit then skips its own
        decomposition and pass over Y, and Y may be None unless ``noise="factor"`` (whose
        null-space term reads Y). The same fit as from Y with ``decomposition="svd"``, up to rounding.
        """
        if setup is not None:
            return self._fit_from_setup(M, Y, setup)
        structure_class("signal", self.signal)  # unknown names fail before the data are checked
        structure_class("noise", self.noise)
        if self.solver not in SOLVERS:
            raise LMMInputError(f"unknown solver {self.solver!r}; expected one of {', '.join(map(repr, SOLVERS))}")
        if self.noise_rank is not None and self.noise != "factor":
            raise LMMInputError(f"noise_rank={self.noise_rank!r} applies to noise='factor' only; got noise={self.noise!r}")
        M, Y = check_design(M, Y)
        P = Y.shape[1]
        sig = make_signal(self.signal, P, rank=self.rank, blocks=self.blocks)
        noi = make_noise(self.noise, P, noise_rank=self.noise_rank)
        if isinstance(self.n_restarts, bool) or not isinstance(self.n_restarts, (int, np.integer)) or self.n_restarts < 0:
            raise LMMInputError(f"n_restarts must be a non-negative integer; got {self.n_restarts!r}")
        if not (isinstance(self.max_iter, (int, np.integer)) and self.max_iter > 0):
            raise LMMInputError(f"max_iter must be a positive integer; got {self.max_iter!r}")
        if not (isinstance(self.tol, (int, float)) and self.tol > 0):
            raise LMMInputError(f"tol must be a positive number; got {self.tol!r}")
        self._C0_dense: np.ndarray | None = None
        self._C1_dense: np.ndarray | None = None
        if self._use_structured(sig, noi, P):
            return self._fit_structured(M, Y, sig, noi)
        self.solver_ = "general"
        problem = KronSumProblem(M, Y, fit_intercept=self.fit_intercept, reml=self.reml, decomposition=self.decomposition)
        rng = np.random.default_rng(self.random_state)
        covs = self._starts(problem, rng)

        # evaluations work on r x P and P x P arrays: BLAS threads only add overhead below P ~ 64
        with _single_threaded() if P < 64 else contextlib.nullcontext():
            if sig.fisher_scoring and noi.fisher_scoring:
                best, runs, n_iter = self._fit_scoring(problem, sig, noi, covs)
            else:
                A = preconditioner(sig, noi, (problem.Uy.T @ problem.Uy + problem.Nyy) / problem.G)
                if A is not None:
                    sig, noi = Preconditioned(sig, A), Preconditioned(noi, A)
                best, runs, n_iter = self._fit_lbfgs(problem, sig, noi, covs)

        if best.covs is not None:
            C0i, L1 = best.covs[0], np.linalg.cholesky(best.covs[1])
        else:
            n0 = sig.n_params
            C0i, L1 = sig.cov(best.theta[:n0]), noise_factor(noi, best.theta[n0:])
        ev = problem.evaluate(C0i, L1, gradient=False)
        self._C0_dense, self._C1_dense = problem.to_user(C0i, L1 @ L1.T)
        self._set_factors(sig, noi, best.theta if best.covs is None else None, problem.y_scale**2)
        self.intercept_ = problem.intercept_to_user(ev.intercept)
        self.log_likelihood_ = problem.user_loglik(ev.loglik)
        self.coef_, self.coef_var_ = _posterior(problem, C0i, ev)
        self.converged_ = bool(best.converged)
        self.n_iter_ = int(n_iter)
        self.start_log_likelihoods_ = {r.start: problem.user_loglik(r.loglik) for r in runs}
        self.optimisation_path_ = best.history
        self.n_features_in_ = M.shape[1]
        return self

    # -- the fitted covariances ----------------------------------------------------------
    @property
    def C0_(self) -> np.ndarray:
        """(P, P) fitted signal covariance, built on access (refused above DENSE_MAX_P conditions)."""
        return self._dense("C0")

    @property
    def C1_(self) -> np.ndarray:
        """(P, P) fitted noise covariance, built on access (refused above DENSE_MAX_P conditions)."""
        return self._dense("C1")

    def _dense(self, which: str) -> np.ndarray:
        check_is_fitted(self, "coef_")
        cached = self._C0_dense if which == "C0" else self._C1_dense
        if cached is not None:
            return cached
        P = self.C1_diag_.size
        if P > DENSE_MAX_P:
            raise LMMInputError(
                f"{which}_ would be a dense {P:,} x {P:,} array ({8 * P * P / 1e6:,.0f} MB); dense covariances are built only up "
                f"to P = {DENSE_MAX_P:,} conditions. Use the factors: C0 = C0_factor_ @ C0_factor_.T + diag(C0_diag_), "
                "C1 = diag(C1_diag_) + C1_factor_ @ C1_factor_.T"
            )
        cov = Covariances(self.C0_factor_, self.C0_diag_, self.C1_diag_, self.C1_factor_)
        return cov.dense()[0 if which == "C0" else 1]

    def _set_factors(self, sig: Structure, noi: Structure, theta: np.ndarray | None, unit: float) -> None:
        """Factor attributes from the general path's dense C0_, C1_ (and, for factor noise, the
        internal-unit theta; ``unit`` converts its variances to user units)."""
        assert self._C0_dense is not None and self._C1_dense is not None
        C0, C1 = self._C0_dense, self._C1_dense
        P = C0.shape[0]
        if self.signal in ("diagonal", "identity"):
            self.C0_factor_, self.C0_diag_ = np.zeros((P, 0)), np.diag(C0).copy()
        else:
            self.C0_factor_, self.C0_diag_ = factor_of(C0, getattr(sig, "rank", None)), np.zeros(P)
        if self.noise in ("diagonal", "identity"):
            self.C1_diag_, self.C1_factor_ = np.diag(C1).copy(), np.zeros((P, 0))
        elif isinstance(noi, FactorNoise) or (isinstance(noi, Preconditioned) and isinstance(noi.inner, FactorNoise)):
            # d and H from the fitted parameters (the factor model is not identified from C1 alone)
            inner = noi.inner if isinstance(noi, Preconditioned) else noi
            assert theta is not None and isinstance(inner, FactorNoise)
            A = noi.A if isinstance(noi, Preconditioned) else np.eye(P)
            d, H = inner.split(theta[sig.n_params :])
            self.C1_diag_, self.C1_factor_ = np.diag(A) ** 2 * d * unit, (A @ H) * np.sqrt(unit)
        else:
            self.C1_diag_, self.C1_factor_ = np.zeros(P), np.linalg.cholesky(C1)

    # -- the structured path --------------------------------------------------------------
    def _use_structured(self, sig: Structure, noi: Structure, P: int) -> bool:
        pair = (self.signal, self.noise)
        rank = sig.rank if isinstance(sig, LowRankSignal) else 0
        ok = pair in STRUCTURED_PAIRS and rank < P
        if self.solver == "structured" and not ok:
            if pair in STRUCTURED_PAIRS:
                raise LMMInputError(
                    f"rank={rank} >= number of conditions P = {P}: a rank-P signal is signal='freeform', which the structured "
                    "solver does not fit; lower the rank or use solver='general'"
                )
            pairs = ", ".join(f"({s!r}, {n!r})" for s, n in sorted(STRUCTURED_PAIRS))
            raise LMMInputError(f"solver='structured' fits (signal, noise) in {pairs}; got ({self.signal!r}, {self.noise!r})")
        return ok and (self.solver == "structured" or (self.solver == "auto" and P >= AUTO_STRUCTURED_FROM_P))

    def structured_fit_possible(self, P: int) -> bool:
        """Whether ``fit`` with P conditions takes the structured path (so that it can use a ``setup``)."""
        sig = make_signal(self.signal, P, rank=self.rank, blocks=self.blocks)
        noi = make_noise(self.noise, P, noise_rank=self.noise_rank)
        return self.solver != "general" and self._use_structured(sig, noi, P)

    def _fit_from_setup(self, M: Any, Y: Any, setup: PrecomputedSetup) -> KronSumLMM:
        structure_class("signal", self.signal)
        structure_class("noise", self.noise)
        if self.noise_rank is not None and self.noise != "factor":
            raise LMMInputError(f"noise_rank={self.noise_rank!r} applies to noise='factor' only; got noise={self.noise!r}")
        P = int(np.shape(setup.UtY)[1])
        sig = make_signal(self.signal, P, rank=self.rank, blocks=self.blocks)
        noi = make_noise(self.noise, P, noise_rank=self.noise_rank)
        if self.solver == "general" or not self._use_structured(sig, noi, max(P, AUTO_STRUCTURED_FROM_P) if self.solver == "auto" else P):
            raise LMMInputError(f"a precomputed setup is used by the structured path only: (signal, noise) = ({self.signal!r}, "
                                f"{self.noise!r}) with solver={self.solver!r} at P = {P}; fit from Y instead")
        self._C0_dense = None
        self._C1_dense = None
        return self._fit_structured(np.asarray(M, dtype=float), None if Y is None else np.asarray(Y, dtype=float), sig, noi, setup)

    def _fit_structured(self, M: np.ndarray, Y: np.ndarray | None, sig: Structure, noi: Structure,
                        setup: PrecomputedSetup | None = None) -> KronSumLMM:
        clock = [time.perf_counter()]
        problem = StructuredProblem(
            M, Y, fit_intercept=self.fit_intercept, reml=self.reml, decomposition=self.decomposition, keep_y=self.noise == "factor",
            setup=setup,
        )
        clock.append(time.perf_counter())
        rank = sig.rank if isinstance(sig, LowRankSignal) else 0
        q = noi.noise_rank if isinstance(noi, FactorNoise) else 0
        rng = np.random.default_rng(self.random_state)
        with _single_threaded() if problem.P < 64 else contextlib.nullcontext():
            best, runs = fit_structured(
                problem, self.signal, self.noise, rank, q, n_restarts=int(self.n_restarts), rng=rng, tol=float(self.tol), max_iter=int(self.max_iter)
            )
            clock.append(time.perf_counter())
            ev = problem.evaluate(best.cov)
            self.coef_, self.coef_var_ = problem.posterior(best.cov, ev)
            clock.append(time.perf_counter())
        self.fit_seconds_ = dict(zip(("setup", "optimise", "posterior"), np.round(np.diff(clock), 4).tolist()))
        user = problem.covariances_to_user(best.cov)
        self.C0_factor_, self.C0_diag_, self.C1_diag_, self.C1_factor_ = user.F, user.a, user.d, user.H
        self.intercept_ = problem.intercept_to_user(ev.intercept)
        self.log_likelihood_ = problem.user_loglik(ev.loglik)
        self.converged_ = bool(best.converged)
        self.n_iter_ = int(sum(run.n_iter for run in runs))
        self.n_evaluations_ = int(sum(run.n_eval for run in runs))
        self.start_log_likelihoods_ = {run.start: problem.user_loglik(run.loglik) for run in runs}
        self.optimisation_path_ = best.history
        self.n_features_in_ = M.shape[1]
        self.solver_ = "structured"
        return self

    # -- optimisation -------------------------------------------------------------------
    def _starts(self, problem: KronSumProblem, rng: np.random.Generator) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(name, C0, C1) start values in internal units."""
        P = problem.P
        C0m, C1m = problem.moments()
        w0, Q0 = np.linalg.eigh((C0m + C0m.T) / 2)
        C0p = (Q0 * np.clip(w0, 0.0, None)) @ Q0.T
        w1, Q1 = np.linalg.eigh((C1m + C1m.T) / 2)
        total = max(float(np.trace(C0p) + np.trace(C1m)) / P, 1e-3)
        # start values only: keep the moment noise comfortably positive definite
        C1p = (Q1 * np.clip(w1, 0.05 * total, None)) @ Q1.T
        v0 = max(float(np.trace(C0p)) / P, 0.1 * total)
        v1 = float(np.trace(C1p)) / P
        iso0, iso1 = v0 * np.eye(P), v1 * np.eye(P)
        # a collapsed direction of C0 = L L^T is stationary, so no start sits on one
        C0p = C0p + 0.1 * v0 * np.eye(P)
        covs: list[tuple[str, np.ndarray, np.ndarray]] = [
            ("moment", C0p, C1p),
            ("moment_shrunk", 0.5 * (C0p + iso0), 0.5 * (C1p + iso1)),
            ("isotropic", iso0, iso1),
        ]
        for i in range(int(self.n_restarts)):
            X0 = rng.standard_normal((P, P))
            X1 = rng.standard_normal((P, P))
            W0, W1 = X0 @ X0.T / P, X1 @ X1.T / P
            covs.append((f"wishart{i}", W0 * v0, 0.5 * (W1 * v1 + C1p)))
        return covs

    def _fit_scoring(
        self, problem: KronSumProblem, sig: Structure, noi: Structure, covs: list[tuple[str, np.ndarray, np.ndarray]]
    ) -> tuple[_Run, list[_Run], int]:
        """Structures Fisher scoring fits (freeform C1; freeform or low-rank C0): scoring screens
        every start, the best (and distinct ones nearly as good) are polished; no L-BFGS on
        Cholesky factors."""
        rank = sig.scoring_rank
        tol, max_iter = float(self.tol), int(self.max_iter)
        screened = []
        min_gain, steps = sig.scoring_screen
        for name, C0, C1 in covs:
            r = fisher_scoring(problem, C0, C1, rank=rank, max_iter=steps, tol=tol, min_gain=min_gain)
            screened.append((r, name))
        screened.sort(key=lambda item: -item[0].ev.loglik)
        chosen: list[tuple[ScoringResult, str]] = []
        for r, name in screened:
            if r.ev.loglik < screened[0][0].ev.loglik - _POLISH_WITHIN:
                break
            if all(np.linalg.norm(r.C0 - c.C0) > 0.05 * np.linalg.norm(c.C0) for c, _ in chosen):
                chosen.append((r, name))
        n_iter = sum(r.n_iter for r, _ in screened)
        runs: list[_Run] = []
        for r, name in chosen:
            final, history, used = self._polish(problem, r, rank, tol, max_iter)
            n_iter += used
            theta = np.concatenate([sig.from_cov(final.C0), noi.from_cov(final.C1)])
            runs.append(_Run(theta, final.ev.loglik, final.converged, used + r.n_iter, name, [name] + history, (final.C0, final.C1)))
        best = max(runs, key=lambda run: run.loglik)
        done = {run.start for run in runs}
        runs += [
            _Run(np.concatenate([sig.from_cov(r.C0), noi.from_cov(r.C1)]), r.ev.loglik, False, r.n_iter, name, [name])
            for r, name in screened
            if name not in done
        ]
        return best, runs, n_iter

    def _polish(
        self, problem: KronSumProblem, r: ScoringResult, rank: int | None, tol: float, max_iter: int
    ) -> tuple[ScoringResult, list[str], int]:
        """Converge a screened scoring run; returns the result, the solver path and iterations."""
        history: list[str] = []
        used = 0
        if rank is None:
            r = fisher_scoring(problem, r.C0, r.C1, max_iter=max_iter, tol=tol, min_gain=1e-3)
            used += r.n_iter
            history.append("scoring")
            if r.converged:  # interior optimum: Newton-like convergence, nothing left to do
                return r, history, used
        for _ in range(_FACE_ROUNDS):
            L = factor_of(r.C0, rank)
            if rank is None:
                # a singular optimum: converge on the face of rank-k matrices, k = rank of C0
                f = factor_scoring(problem, L, r.C1, max_iter=max_iter, tol=tol)
                history.append(f"face{L.shape[1]}")
            else:
                # a misspecified rank: expected and observed information differ, use quasi-Newton,
                # re-whitened every few iterations (the metric at a far start goes stale)
                # a round that converges at once under a fresh metric ends it
                f = whitened_lbfgs(problem, L, r.C1, max_iter=_WHITEN_EVERY, tol=_FISHER_SLACK * tol)
                while used + f.n_iter < max_iter:
                    if (f.converged and f.n_iter <= 2) or (not f.converged and f.n_iter < _WHITEN_EVERY):
                        break
                    used += f.n_iter
                    f = whitened_lbfgs(problem, factor_of(f.C0, rank), f.C1, max_iter=_WHITEN_EVERY, tol=_FISHER_SLACK * tol)
                history.append(f"rank{L.shape[1]}")
            used += f.n_iter
            if f.ev.loglik < r.ev.loglik:
                f = ScoringResult(r.C0, r.C1, r.ev, f.n_iter, f.predicted_gain, False, False)
            r = f
            if rank is not None and L.shape[1] >= rank:
                break
            up = null_ascent(problem, r.C0, r.C1, r.ev)
            if up is None:
                break
            history.append("null_ascent")
            r = ScoringResult(up, r.C1, problem.evaluate(up, np.linalg.cholesky(r.C1)), 0, np.inf, False, False)
        return r, history, used

    def _fit_lbfgs(
        self, problem: KronSumProblem, sig: Structure, noi: Structure, covs: list[tuple[str, np.ndarray, np.ndarray]]
    ) -> tuple[_Run, list[_Run], int]:
        """Other structures: L-BFGS-B screens every start loosely, polishes the best one(s)."""
        thetas = [(name, np.concatenate([sig.from_cov(c0), noi.from_cov(c1)])) for name, c0, c1 in covs]
        screened = [self._optimise(problem, sig, noi, theta, name, loose=True) for name, theta in thetas]
        screened.sort(key=lambda run: -run.loglik)
        top = [run for run in screened if run.loglik >= screened[0].loglik - _POLISH_WITHIN]
        chosen: list[_Run] = []
        for run in top:
            if all(np.linalg.norm(run.theta - c.theta) > 0.05 * np.linalg.norm(c.theta) for c in chosen):
                chosen.append(run)
        polished = [self._optimise(problem, sig, noi, run.theta, run.start) for run in chosen]
        best = max(polished, key=lambda run: run.loglik)
        best, escape_iter = self._escape(problem, sig, noi, best)
        names = {run.start for run in polished}
        runs = polished + [run for run in screened if run.start not in names]
        return best, runs, sum(r.n_iter for r in screened + polished) + escape_iter

    def _objective(self, problem: KronSumProblem, sig: Structure, noi: Structure, start_loglik: float):  # type: ignore[no-untyped-def]
        n0 = sig.n_params
        # scale by the likelihood's magnitude at the start, so that ftol is relative to |loglik|
        # (a fixed 1 / n_eff made it absolute and stopped short on data with loglik near 0)
        scale = 1.0 / max(abs(start_loglik), 1.0)

        def f(theta: np.ndarray) -> tuple[float, np.ndarray]:
            t0, t1 = theta[:n0], theta[n0:]
            try:
                ev = problem.evaluate(sig.cov(t0), noise_factor(noi, t1))
            except (FloatingPointError, np.linalg.LinAlgError):
                return np.inf, np.zeros_like(theta)
            g = np.concatenate([sig.grad(t0, ev.grad_C0), noi.grad(t1, ev.grad_C1)])
            return -ev.loglik * scale, -g * scale

        return f

    def _optimise(
        self, problem: KronSumProblem, sig: Structure, noi: Structure, theta: np.ndarray, name: str, *, loose: bool = False
    ) -> _Run:
        """L-BFGS-B from ``theta``; ``loose``: a cheap screening run."""
        n0 = sig.n_params
        start = problem.evaluate(sig.cov(theta[:n0]), noise_factor(noi, theta[n0:]), gradient=False).loglik
        f = self._objective(problem, sig, noi, start)
        scale = 1.0 / max(abs(start), 1.0)
        if loose:
            ftol, gtol, max_iter = _SCREEN_TOL, _SCREEN_TOL * 10, min(int(self.max_iter), _SCREEN_ITER)
        else:
            # an iteration gaining < tol / 100 log-likelihood units ends the run (but no less than
            # 1e-13 relative: below that |loglik|'s round-off decides)
            ftol, gtol, max_iter = max(1e-2 * float(self.tol) * scale, 1e-13), 1e-4 * float(self.tol), int(self.max_iter)
        res = minimize(f, theta, jac=True, method="L-BFGS-B", options={"maxiter": max_iter, "ftol": ftol, "gtol": gtol, "maxcor": 20})
        loglik = problem.evaluate(sig.cov(res.x[:n0]), noise_factor(noi, res.x[n0:]), gradient=False).loglik
        return _Run(np.asarray(res.x), loglik, bool(res.success), int(res.nit), name, [name])

    def _escape(self, problem: KronSumProblem, sig: Structure, noi: Structure, run: _Run) -> tuple[_Run, int]:
        """Step out of collapsed directions of C0 = L L^T along the covariance-space gradient.

        Returns the best run and the L-BFGS-B iterations the escape runs took.
        """
        n0, extra = sig.n_params, 0
        for _ in range(5):
            t0, t1 = run.theta[:n0], run.theta[n0:]
            L1 = noise_factor(noi, t1)
            ev: Evaluation = problem.evaluate(sig.cov(t0), L1)
            if sig.escape_only_on_null_space and not _points_into_null_space(sig.cov(t0), ev.grad_C0):
                return run, extra
            scale = float(np.trace(L1 @ L1.T)) / problem.P
            cands = sig.ascent_candidates(t0, ev.grad_C0, [t * scale for t in _ESCAPE_STEPS])
            best_val, best_theta = run.loglik, None
            for c in cands:
                try:
                    val = problem.evaluate(sig.cov(c), L1, gradient=False).loglik
                except (FloatingPointError, np.linalg.LinAlgError):
                    continue
                if val > best_val:
                    best_val, best_theta = val, c
            if best_theta is None or best_val - run.loglik < 1e-9 * problem.n_eff:
                return run, extra
            new = self._optimise(problem, sig, noi, np.concatenate([best_theta, t1]), "escape")
            extra += new.n_iter
            if new.loglik <= run.loglik:
                return run, extra
            new.history = run.history + ["escape"]
            run = new
        return run, extra


def _points_into_null_space(C0: np.ndarray, grad: np.ndarray, rel: float = 1e-8) -> bool:
    """Whether C0 has (near-)zero eigenvalues and the gradient rises along some v v^T in their span."""
    w, Q = np.linalg.eigh((C0 + C0.T) / 2)
    N = Q[:, w <= rel * max(float(w[-1]), 1e-300)]
    return bool(N.shape[1] and np.linalg.eigvalsh(N.T @ grad @ N)[-1] > 0)


def _posterior(problem: KronSumProblem, C0i: np.ndarray, ev: Evaluation) -> tuple[np.ndarray, np.ndarray]:
    """E[beta | Y] and per-entry Var[beta | Y] (T x P each, user units) at the fitted parameters.

    With A = Sigma^-1 (vec(Y) - mean) reshaped to G x P, E[beta | Y] = M^T A C0 / T, and
    Var[beta_tq | Y] = C0_qq / T - sum_p (C0 Tc^T)_qp^2 sum_i W_ip s_i V_ti^2 / T (internal units).
    """
    V, s, T = problem.V, problem.s, problem.T
    unit = problem.y_scale**2 / (problem.k_scale * T)
    C0Tt = C0i @ ev.Tc.T
    coef = (V @ (problem.sqrt_sT[:, None] * ev.Zhat)) @ C0Tt.T
    coef *= problem.y_scale / (problem.k_scale * T)
    reduction = (V**2) @ (s[:, None] * ev.W) @ (C0Tt**2).T
    var = np.clip(np.diag(C0i)[None, :] - reduction, 0.0, None) * unit
    return np.asarray(coef), np.asarray(var)
