"""The estimators a regNet study compares, configured by name, imported only when used.

* ``ridge``: :class:`regulas.lmm.RidgeGCV`, multi-output ridge, alpha on a grid (``alphas``).
* ``lmm``: :class:`regulas.lmm.KronSumLMM` with structures ``signal`` (of C0) and ``noise`` (of C1).
* ``ols``: least squares with an intercept, no prior (needs T < G); a reference without shrinkage.

Every fit takes M (G x T) and Y (G x P) and yields beta_hat (T x P) and estimates of the
covariance between conditions of the signal (V_hat) and of the noise (Sigma_hat), P x P. For
the LMM these are built from its factor attributes (``C0_factor_``, ``C0_diag_``, ``C1_diag_``,
``C1_factor_``), which :class:`MethodFit` also keeps (``V_factors``, ``Sigma_factors``) so that
covariance metrics at large P need no P x P matrix; ridge and OLS have no covariance model, so,
as regNet did, their V_hat and Sigma_hat are the empirical covariances of the rows of beta_hat
and of the residuals (P x P: small P only).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from regulas.core.errors import ConfigError
from regulas.lmm.cost import DENSE_MAX_P
from regulas.lmm.structures import structure_class, structure_names
from regulas.sim.fit_cost import FIT_MEMORY_LIMIT, FIT_TIME_LIMIT_S, method_cost

if TYPE_CHECKING:  # SciPy: imported by the fits, not by reading a config's methods
    from regulas.lmm.likelihood import PrecomputedSetup

METHOD_KINDS = ("ridge", "lmm", "ols")
DEFAULT_ALPHAS = [float(a) for a in np.logspace(-3, 5, 33)]
_KIND_KEYS = {
    "ridge": ("alphas",),
    "lmm": ("signal", "noise", "rank", "noise_rank", "blocks", "reml", "n_restarts"),
    "ols": (),
}


@dataclass(frozen=True)
class MethodConfig:
    """One entry of ``regnet.methods``; keys that do not apply to ``kind`` must stay unset."""

    name: str
    kind: Literal["ridge", "lmm", "ols"]
    fit_intercept: bool = True
    alphas: list[float] | None = None  # ridge
    signal: str | None = None  # lmm, default "freeform"
    noise: str | None = None  # lmm, default "freeform"
    rank: int | None = None  # lmm with signal lowrank_k
    noise_rank: int | None = None  # lmm with noise factor (diagonal + rank noise_rank)
    blocks: list[int] | None = None  # lmm with signal block: group sizes (sum P) or P labels
    reml: bool | None = None  # lmm
    n_restarts: int | None = None  # lmm: random starts besides the deterministic ones

    def check(self, prefix: str, source: str | None) -> None:
        for kind, keys in _KIND_KEYS.items():
            stray = [k for k in keys if kind != self.kind and getattr(self, k) is not None]
            if stray:
                raise ConfigError(f"only for methods of kind {kind!r} (this one is {self.kind!r}); remove it",
                                  key=f"{prefix}.{stray[0]}", source=source)
        if self.kind == "ridge" and self.alphas is not None:
            if not self.alphas or any(not np.isfinite(a) or a <= 0 for a in self.alphas):
                raise ConfigError(f"expected a non-empty list of positive penalties (given: {self.alphas!r})",
                                  key=f"{prefix}.alphas", source=source)
        if self.kind == "lmm":
            self._check_lmm(prefix, source)

    def _check_lmm(self, prefix: str, source: str | None) -> None:
        signals, noises = structure_names("signal"), structure_names("noise")
        if self.signal_structure not in signals:
            raise ConfigError(f"unknown LMM signal structure (given: {self.signal!r}); expected one of "
                              f"{', '.join(signals)}", key=f"{prefix}.signal", source=source)
        if self.noise_structure not in noises:
            raise ConfigError(f"unknown LMM noise structure (given: {self.noise!r}); expected one of "
                              f"{', '.join(noises)}", key=f"{prefix}.noise", source=source)
        if (self.noise_rank is not None) != (self.noise_structure == "factor"):
            raise ConfigError(f"noise_rank is required with noise 'factor' and only then (given: noise_rank={self.noise_rank!r}, "
                              f"noise={self.noise_structure!r})", key=f"{prefix}.noise_rank", source=source)
        if self.noise_rank is not None and self.noise_rank < 1:
            raise ConfigError(f"out of range (given: {self.noise_rank}); expected noise_rank >= 1",
                              key=f"{prefix}.noise_rank", source=source)
        self._check_option("rank", prefix, source)
        if self.rank is not None and self.rank < 1:
            raise ConfigError(f"out of range (given: {self.rank}); expected rank >= 1", key=f"{prefix}.rank", source=source)
        self._check_option("blocks", prefix, source)
        if self.n_restarts is not None and self.n_restarts < 0:
            raise ConfigError(f"out of range (given: {self.n_restarts}); expected >= 0",
                              key=f"{prefix}.n_restarts", source=source)
        if self.reml and not self.fit_intercept:
            raise ConfigError("reml: true needs fit_intercept: true (REML integrates out the intercept)",
                              key=f"{prefix}.reml", source=source)

    def _check_option(self, key: str, prefix: str, source: str | None) -> None:
        """``key`` (rank, blocks) is set exactly when the signal structure takes it."""
        value = getattr(self, key)
        if (value is not None) != (key in structure_class("signal", self.signal_structure).params):
            takers = " or ".join(repr(n) for n in structure_names("signal") if key in structure_class("signal", n).params)
            raise ConfigError(f"{key} is required with signal {takers} and only then (given: {key}={value!r}, "
                              f"signal={self.signal_structure!r})", key=f"{prefix}.{key}", source=source)

    @property
    def signal_structure(self) -> str:
        return self.signal or "freeform"

    @property
    def noise_structure(self) -> str:
        return self.noise or "freeform"

    def check_cell(self, genes: int, conditions: int, motifs: int, prefix: str, source: str | None) -> None:
        """Refuse a grid cell this method cannot fit (known before any work)."""
        if self.kind == "lmm" and self.rank is not None and self.rank > conditions:
            raise ConfigError(f"rank k = {self.rank} > P = {conditions} conditions in the grid; expected k <= P",
                              key=f"{prefix}.rank", source=source)
        if self.kind == "lmm" and self.noise_rank is not None and self.noise_rank >= conditions:
            raise ConfigError(f"noise_rank = {self.noise_rank} >= P = {conditions} conditions in the grid; expected < P",
                              key=f"{prefix}.noise_rank", source=source)
        self._check_cost(genes, conditions, motifs, prefix, source)
        if self.kind == "lmm" and self.blocks is not None:
            b = self.blocks
            if not (len(b) == conditions or (sum(b) == conditions and all(x > 0 for x in b))):
                raise ConfigError(f"blocks {b!r} fit neither as P = {conditions} labels nor as sizes summing to P",
                                  key=f"{prefix}.blocks", source=source)
        if self.kind == "ols" and motifs >= genes - int(self.fit_intercept):
            raise ConfigError(
                f"least squares without a prior needs T < G{' - 1 (intercept)' if self.fit_intercept else ''}, "
                f"but the grid has T = {motifs} motifs and G = {genes} genes; use ridge or lmm (they have a prior) "
                "or fewer motifs", key=f"{prefix}.kind", source=source,
            )

    def _check_cost(self, G: int, P: int, T: int, prefix: str, source: str | None) -> None:
        """Refuse a fit estimated (:func:`regulas.sim.fit_cost.method_cost`) beyond one worker's memory or a day."""
        cost = method_cost(self.kind, G, P, T, signal=self.signal_structure, noise=self.noise_structure, rank=self.rank,
                           noise_rank=self.noise_rank, n_alphas=len(self.alphas or DEFAULT_ALPHAS))
        if cost is None or cost.fits:
            return
        alternative = cost.alternative or "fewer conditions per data set"
        raise ConfigError(
            f"cannot fit at G = {G}, P = {P}, T = {T}: estimated {cost.describe()}, beyond one worker's limits "
            f"({FIT_MEMORY_LIMIT / 2**30:g} GiB, {FIT_TIME_LIMIT_S / 3600:g} h); use {alternative}",
            key=f"{prefix}.{'signal' if self.kind == 'lmm' else 'kind'}", source=source,
        )


@dataclass
class MethodFit:
    """beta_hat (T x P), V_hat and Sigma_hat (P x P, unnormalised) and fit diagnostics; for the LMM
    also its covariances as factors (F, d) with C = F F^T + diag(d), at any P."""

    coef: np.ndarray
    V_hat: np.ndarray | None  # None: not formed (large P)
    Sigma_hat: np.ndarray | None
    log_likelihood: float
    converged: bool
    fit_time_s: float
    extra: dict[str, float] = field(default_factory=dict)
    V_factors: tuple[np.ndarray, np.ndarray] | None = None  # LMM: (C0_factor_, C0_diag_)
    Sigma_factors: tuple[np.ndarray, np.ndarray] | None = None  # LMM: (C1_factor_, C1_diag_)


def _empirical(M: np.ndarray, Y: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    resid = Y - M @ coef - intercept
    return np.atleast_2d(np.cov(coef, rowvar=False)), np.atleast_2d(np.cov(resid, rowvar=False))


def _ols(M: np.ndarray, Y: np.ndarray, fit_intercept: bool) -> tuple[np.ndarray, np.ndarray]:
    if fit_intercept:
        mx, my = M.mean(axis=0), Y.mean(axis=0)
        coef = np.linalg.lstsq(M - mx, Y - my, rcond=None)[0]
        return coef, my - mx @ coef
    return np.linalg.lstsq(M, Y, rcond=None)[0], np.zeros(Y.shape[1])


def make_estimator(method: MethodConfig, random_state: int) -> Any:
    """The configured scikit-learn estimator (ridge or lmm; imported here so the package loads without them)."""
    if method.kind == "ridge":
        from regulas.lmm import RidgeGCV

        return RidgeGCV(alphas=method.alphas or DEFAULT_ALPHAS, fit_intercept=method.fit_intercept)
    from regulas.lmm import KronSumLMM

    options: dict[str, Any] = {"signal": method.signal_structure, "noise": method.noise_structure,
                               "fit_intercept": method.fit_intercept, "random_state": random_state}
    for key in ("rank", "noise_rank", "blocks", "reml", "n_restarts"):
        if getattr(method, key) is not None:
            options[key] = getattr(method, key)
    return KronSumLMM(**options)


def fit_method(method: MethodConfig, M: np.ndarray, Y: np.ndarray, random_state: int, covariances: bool = True,
               block_width: int | None = None, setup: PrecomputedSetup | None = None) -> MethodFit:
    """Fit ``method`` to M (G x T), Y (G x P); the time covers the whole fit (setup included).

    ``covariances=False``: leave V_hat and Sigma_hat as None (P x P each: not formed at large P; above
    :data:`regulas.lmm.cost.DENSE_MAX_P` they are None anyway, and the LMM's ``V_factors`` /
    ``Sigma_factors`` are what is left).
    ``block_width``: ridge on blocks of that many conditions (:mod:`regulas.sim.blocked_ridge`, same result).
    ``setup``: U^T Y, column sums and sums of squares of Y and the SVD of M already computed (e.g. the
    streamed :class:`regulas.sim.streamed_setup.ConditionSetup`): an LMM on the structured path fits
    from it without its own pass over Y (the same fit up to rounding); other fits ignore it.
    """
    start = time.perf_counter()
    if method.kind == "ridge" and block_width is not None:
        from regulas.sim.blocked_ridge import ridge_by_condition_blocks

        alphas = np.asarray(method.alphas or DEFAULT_ALPHAS)
        coef, intercept, alpha = ridge_by_condition_blocks(M, Y, alphas, method.fit_intercept, block_width)
        elapsed = time.perf_counter() - start
        V_hat, S_hat = _empirical(M, Y, coef, intercept) if covariances else (None, None)
        return MethodFit(coef, V_hat, S_hat, float("nan"), True, elapsed, {"alpha": alpha})
    if method.kind == "ols":
        coef, intercept = _ols(M, Y, method.fit_intercept)
        elapsed = time.perf_counter() - start
        V_hat, S_hat = _empirical(M, Y, coef, intercept) if covariances else (None, None)
        return MethodFit(coef, V_hat, S_hat, float("nan"), True, elapsed)
    est = make_estimator(method, random_state)
    if method.kind == "lmm" and setup is not None and est.structured_fit_possible(Y.shape[1]):
        est.fit(M, Y if method.noise_structure == "factor" else None, setup=setup)
    else:
        est.fit(M, Y)
    elapsed = time.perf_counter() - start
    coef = np.asarray(est.coef_, dtype=float)
    if method.kind == "ridge":
        V_hat, S_hat = _empirical(M, Y, coef, np.asarray(est.intercept_)) if covariances else (None, None)
        return MethodFit(coef, V_hat, S_hat, float("nan"), True, elapsed, {"alpha": float(np.mean(est.alpha_))})
    V_factors = (np.asarray(est.C0_factor_, dtype=float), np.asarray(est.C0_diag_, dtype=float))
    Sigma_factors = (np.asarray(est.C1_factor_, dtype=float), np.asarray(est.C1_diag_, dtype=float))
    dense = covariances and Y.shape[1] <= DENSE_MAX_P  # C0_ and C1_ are refused above it
    return MethodFit(
        coef,
        np.asarray(est.C0_, dtype=float) if dense else None,
        np.asarray(est.C1_, dtype=float) if dense else None,
        float(est.log_likelihood_),
        bool(est.converged_),
        elapsed,
        {"n_iter": float(est.n_iter_)},
        V_factors,
        Sigma_factors,
    )
