"""Arithmetic estimates of what a regNet fit or simulation costs at G genes, T motifs, P conditions.

Used by the config check to refuse, before any work, what cannot run within a worker
(:data:`FIT_MEMORY_LIMIT`, :data:`FIT_TIME_LIMIT_S`). :func:`method_cost` is the one function
the check calls: an LMM's cost is :func:`regulas.lmm.cost.estimate_fit_cost` (the estimator's own
estimate, general or structured path as ``solver="auto"`` would choose, with the structured
alternative when there is one); ridge's is :func:`ridge_cost` here (the regnet workload's ridge
by blocks of conditions, :mod:`regulas.sim.blocked_ridge`).
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 2**30
#: the most one fit (or one simulation task) may need; more is refused when the config is checked
FIT_MEMORY_LIMIT = 16 * GIB
#: the longest one fit may take, estimated; more is refused when the config is checked
FIT_TIME_LIMIT_S = 24 * 3600.0
#: sustained one-thread rate assumed for BLAS-bound work (measured ~10-25 GFLOP/s on this machine)
FLOPS = 1e10


@dataclass(frozen=True)
class Cost:
    """Estimated peak memory (bytes) and time (s) of one fit, and which path it assumes."""

    memory: float
    seconds: float
    path: str
    #: what to use instead (the LMM's structured pair), when known
    alternative: str | None = None

    def describe(self) -> str:
        return f"~{_bytes(self.memory)} and ~{_duration(self.seconds)} per fit ({self.path} path)"

    @property
    def fits(self) -> bool:
        return self.memory <= FIT_MEMORY_LIMIT and self.seconds <= FIT_TIME_LIMIT_S


def _bytes(n: float) -> str:
    return f"{n / GIB:.3g} GiB" if n >= GIB / 10 else f"{n / 2**20:.3g} MiB"


def _duration(s: float) -> str:
    for unit, size in (("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if s >= size:
            return f"{s / size:.3g} {unit}"
    return f"{s:.2g} s"


def ridge_cost(G: int, P: int, T: int, n_alphas: int) -> Cost:
    """Ridge by blocks of conditions (:func:`regulas.sim.blocked_ridge.ridge_by_condition_blocks`): one
    SVD of M (~4 G T^2 flops), the accumulation of U^T Yc and Yc (U^T Yc)^T (4 G T P flops), then
    per penalty a G x T x T triangular product (G T^2 flops); Y, M, U and two G x T arrays resident
    (measured 20 s at G = 20,000, T = 600, P = 1,000, 33 penalties, one thread, load average 8)."""
    r = min(G, T)
    memory = 8.0 * (G * P + 5 * G * r + 2 * r * P)
    seconds = (4.0 * G * T * r + 4.0 * G * r * P + n_alphas * G * r * r) / FLOPS
    return Cost(memory, seconds, "ridge")


def method_cost(kind: str, G: int, P: int, T: int, *, signal: str = "freeform", noise: str = "freeform",
                rank: int | None = None, noise_rank: int | None = None, n_alphas: int = 33) -> Cost | None:
    """The estimated cost of one fit of a ``regnet.methods`` entry of ``kind`` (None for ``ols``: cheap)."""
    if kind == "ridge":
        return ridge_cost(G, P, T, n_alphas)
    if kind != "lmm":
        return None
    from regulas.lmm.cost import estimate_fit_cost

    est = estimate_fit_cost(signal, noise, G, T, P, rank, noise_rank)
    path = "general" if est.structured_alternative else "structured"
    return Cost(float(est.bytes), est.seconds, path, est.structured_alternative)


def dense_simulation_memory(G: int, P: int, T: int) -> float:
    """Bytes of the one-task simulation (P x P structures and their square roots, Y, E, M beta, M)."""
    return 8.0 * (8 * P * P + 4 * G * P + G * T + 2 * T * P)


def blocked_simulation_memory(G: int, P: int, T: int, width: int) -> float:
    """Bytes of one block task of the blocked simulation (M, a few G x b blocks, factors)."""
    b = min(width, P)
    return 8.0 * (2 * G * T + 4 * G * b + 2 * T * b + 64 * P)


def zarr_bytes(G: int, P: int, T: int, methods: int) -> float:
    """Uncompressed bytes one simulated data set stores in blocked mode (Y, beta, beta_hat per method)."""
    return 8.0 * (G * P + T * P * (1 + methods))
