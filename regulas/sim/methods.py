"""The estimators a regNet study compares, configured by name, imported only when used.

* ``ridge``: :class:`regulas.lmm.RidgeGCV`, multi-output ridge, alpha on a grid (``alphas``).
* ``lmm``: :class:`regulas.lmm.KronSumLMM` with structures ``signal`` (of C0) and ``noise`` (of C1).
* ``ols``: least squares with an intercept, no prior (needs T < G); a reference without shrinkage.

Every fit takes M (G x T) and Y (G x P) and yields beta_hat (T x P) and estimates of the
covariance between conditions of the signal (V_hat) and of the noise (Sigma_hat), P x P. For
the LMM these are C0_ and C1_; ridge and OLS have no covariance model, so, as regNet did,
their V_hat and Sigma_hat are the empirical covariances of the rows of beta_hat and of the
residuals.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from regulas.core.errors import ConfigError
from regulas.lmm.structures import structure_class, structure_names
from regulas.sim.fit_cost import (
    FIT_MEMORY_LIMIT,
    FIT_TIME_LIMIT_S,
    STRUCTURED_NOISES,
    STRUCTURED_SIGNALS,
    general_cost,
    is_structured,
    lmm_cost,
    ridge_cost,
)

METHOD_KINDS = ("ridge", "lmm", "ols")
DEFAULT_ALPHAS = [float(a) for a in np.logspace(-3, 5, 33)]
#: LMM noise structures of issue 12 item 1 that the config accepts before ``regulas.lmm`` registers them
#: (with the option each takes); a fit with one raises :class:`MissingStructure` until then
PENDING_LMM_NOISE = {"factor": "noise_rank"}
#: above this P a structured pair needs KronSumLMM's structured path (the general one takes days)
GENERAL_PATH_MAX_P = 2000
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
        known_noises = (*noises, *(n for n in PENDING_LMM_NOISE if n not in noises))
        if self.noise_structure not in known_noises:
            raise ConfigError(f"unknown LMM noise structure (given: {self.noise!r}); expected one of "
                              f"{', '.join(known_noises)}", key=f"{prefix}.noise", source=source)
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
        """Refuse a fit estimated (:mod:`regulas.sim.fit_cost`) beyond one worker's memory or a day."""
        if self.kind == "ridge":
            cost = ridge_cost(G, P, T, len(self.alphas or DEFAULT_ALPHAS))
            alternative = "fewer conditions per data set"
        elif self.kind == "lmm":
            cost = lmm_cost(self.signal_structure, self.noise_structure, G, P, T, self.rank, self.noise_rank)
            alt = lmm_cost("lowrank_k", "diagonal", G, P, T, self.rank or 4)
            alternative = (f"signal: lowrank_k (rank: {self.rank or 4}) with noise: diagonal or factor (noise_rank: ...), "
                           f"{alt.describe()}" if not is_structured(self.signal_structure, self.noise_structure)
                           else "fewer conditions")
        else:
            return
        if not cost.fits:
            raise ConfigError(
                f"cannot fit at G = {G}, P = {P}, T = {T}: estimated {cost.describe()}, beyond one worker's limits "
                f"({FIT_MEMORY_LIMIT / 2**30:g} GiB, {FIT_TIME_LIMIT_S / 3600:g} h); use {alternative}",
                key=f"{prefix}.{'signal' if self.kind == 'lmm' else 'kind'}", source=source,
            )


class MissingStructure(RuntimeError):
    """A configured LMM needs a piece ``regulas.lmm`` does not have yet (issue 12 item 1)."""


def structured_path_available() -> bool:
    """Whether KronSumLMM has issue 12's structured path (it comes with the ``factor`` noise structure)."""
    return "factor" in structure_names("noise")


@dataclass
class MethodFit:
    """beta_hat (T x P), V_hat and Sigma_hat (P x P, unnormalised) and fit diagnostics."""

    coef: np.ndarray
    V_hat: np.ndarray | None  # None: not formed (large P)
    Sigma_hat: np.ndarray | None
    log_likelihood: float
    converged: bool
    fit_time_s: float
    extra: dict[str, float] = field(default_factory=dict)


def _empirical(M: np.ndarray, Y: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    resid = Y - M @ coef - intercept
    return np.atleast_2d(np.cov(coef, rowvar=False)), np.atleast_2d(np.cov(resid, rowvar=False))


def _ols(M: np.ndarray, Y: np.ndarray, fit_intercept: bool) -> tuple[np.ndarray, np.ndarray]:
    if fit_intercept:
        mx, my = M.mean(axis=0), Y.mean(axis=0)
        coef = np.linalg.lstsq(M - mx, Y - my, rcond=None)[0]
        return coef, my - mx @ coef
    return np.linalg.lstsq(M, Y, rcond=None)[0], np.zeros(Y.shape[1])


def make_estimator(method: MethodConfig, random_state: int, conditions: int | None = None) -> Any:
    """The configured scikit-learn estimator (ridge or lmm; imported here so the package loads without them).

    Raises :class:`MissingStructure` for an LMM that ``regulas.lmm`` cannot fit here: a pending
    structure (``noise: factor``), or a structured pair at P > GENERAL_PATH_MAX_P without the
    structured path (the general path would take days; ``conditions`` = P).
    """
    if method.kind == "lmm":
        noise = method.noise_structure
        if noise in PENDING_LMM_NOISE and noise not in structure_names("noise"):
            raise MissingStructure(f"KronSumLMM here has no noise structure {noise!r} (issue 12 item 1, the structured "
                                   "Kronecker-sum path); this fit cannot run until it does")
        if conditions is not None and conditions > GENERAL_PATH_MAX_P and not structured_path_available():
            slow = general_cost(method.signal_structure, noise, 20000, conditions, 600, method.rank)
            raise MissingStructure(f"KronSumLMM here has no structured path (issue 12 item 1): at P = {conditions} its "
                                   f"general path needs {slow.describe()} (at G = 20,000, T = 600); the structured "
                                   f"pairs are signal {'/'.join(STRUCTURED_SIGNALS)} with noise {'/'.join(STRUCTURED_NOISES)}")
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
               block_width: int | None = None) -> MethodFit:
    """Fit ``method`` to M (G x T), Y (G x P); the time covers the whole fit (setup included).

    ``covariances=False``: leave V_hat and Sigma_hat as None (P x P each: not formed at large P).
    ``block_width``: ridge on blocks of that many conditions (:mod:`regulas.sim.blocked_ridge`, same result).
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
    est = make_estimator(method, random_state, Y.shape[1]).fit(M, Y)
    elapsed = time.perf_counter() - start
    coef = np.asarray(est.coef_, dtype=float)
    if method.kind == "ridge":
        V_hat, S_hat = _empirical(M, Y, coef, np.asarray(est.intercept_)) if covariances else (None, None)
        return MethodFit(coef, V_hat, S_hat, float("nan"), True, elapsed, {"alpha": float(np.mean(est.alpha_))})
    return MethodFit(
        coef,
        np.asarray(est.C0_, dtype=float) if covariances else None,
        np.asarray(est.C1_, dtype=float) if covariances else None,
        float(est.log_likelihood_),
        bool(est.converged_),
        elapsed,
        {"n_iter": float(est.n_iter_)},
    )
