"""Arithmetic estimates of what a regNet fit or simulation costs at G genes, T motifs, P conditions.

Used by the config check to refuse, before any work, what cannot run within a worker
(:data:`FIT_MEMORY_LIMIT`, :data:`FIT_TIME_LIMIT_S`). Rough on purpose (a factor of a few),
anchored on ``benchmarks/results/lmm_tcga_scale.json`` (G = 20,000, T = 600, lowrank_4 /
diagonal, one thread: 1,128 s at P = 1,000, 90% of it the O(P^3) rotation of the
conditions) and on the structured-path figures of issue 12 (3 s at P = 1,000, k = 4;
15 s at P = 10,000, k = 8; 60 s with factor noise).

* **General path** (any structure pair): memory 8 bytes x (n_params^2 for the information
  matrix + 10 P^2 + 3 G P + G T); time 1,128 s x (P / 1,000)^3 (or the O(T P^2) part where
  larger).
* **Structured path** (signal ``lowrank_k``/``diagonal``/``identity`` with noise
  ``diagonal``/``identity``/``factor``; issue 12 item 1): memory 8 bytes x (2 G P + G T +
  T P + P k); time = the setup U^T Y (2 G T P flops at 5 GFLOP/s) + 100 evaluations of
  O(T P k) (+ O(G P k_noise) with factor noise).
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 2**30
#: the most one fit (or one simulation task) may need; more is refused when the config is checked
FIT_MEMORY_LIMIT = 16 * GIB
#: the longest one fit may take, estimated; more is refused when the config is checked
FIT_TIME_LIMIT_S = 24 * 3600.0
#: measured general-path fit at P = 1,000 (G = 20,000, T = 600, lowrank_4 / diagonal, one thread)
GENERAL_FIT_S_AT_P1000 = 1128.0
#: sustained one-thread rate assumed for BLAS-bound work (measured ~5-10 GFLOP/s on this machine)
FLOPS = 5e9
STRUCTURED_SIGNALS = ("lowrank_k", "diagonal", "identity")
STRUCTURED_NOISES = ("diagonal", "identity", "factor")
#: evaluations of a structured fit (issue 12: 52-67 from a moment start)
STRUCTURED_EVALS = 100


@dataclass(frozen=True)
class Cost:
    """Estimated peak memory (bytes) and time (s) of one fit, and which path it assumes."""

    memory: float
    seconds: float
    path: str

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


def is_structured(signal: str, noise: str) -> bool:
    return signal in STRUCTURED_SIGNALS and noise in STRUCTURED_NOISES


def _n_params(structure: str, P: int, rank: int | None) -> int:
    if structure == "freeform":
        return P * (P + 1) // 2
    if structure == "lowrank_k":
        return P * (rank or 1)
    if structure in ("diagonal", "factor"):
        return P * (1 + (rank or 0))
    return P  # identity (1) and block (a few) are bounded by P


def general_cost(signal: str, noise: str, G: int, P: int, T: int, rank: int | None = None,
                 noise_rank: int | None = None) -> Cost:
    """The general (dense in P) path of :class:`regulas.lmm.KronSumLMM`."""
    n = _n_params(signal, P, rank) + _n_params(noise, P, noise_rank)
    memory = 8.0 * (n * n + 10 * P * P + 3 * G * P + G * T)
    seconds = max(GENERAL_FIT_S_AT_P1000 * (P / 1000.0) ** 3, 100 * 2.0 * T * P * P / FLOPS)
    return Cost(memory, seconds, "general")


def structured_cost(signal: str, noise: str, G: int, P: int, T: int, rank: int | None = None,
                    noise_rank: int | None = None) -> Cost:
    """The structured path of issue 12 (low-rank/diagonal signal, diagonal/factor noise)."""
    k = rank or 1
    memory = 8.0 * (2 * G * P + G * T + T * P + P * (k + (noise_rank or 0)))
    per_eval = 4.0 * T * P * k + (4.0 * G * P * (noise_rank or 0) if noise == "factor" else 0.0)
    seconds = 2.0 * G * T * P / FLOPS + STRUCTURED_EVALS * per_eval / FLOPS
    return Cost(memory, seconds, "structured")


def lmm_cost(signal: str, noise: str, G: int, P: int, T: int, rank: int | None = None,
             noise_rank: int | None = None) -> Cost:
    """The cheaper of the paths that can fit the pair."""
    general = general_cost(signal, noise, G, P, T, rank, noise_rank)
    if not is_structured(signal, noise):
        return general
    structured = structured_cost(signal, noise, G, P, T, rank, noise_rank)
    return structured if structured.seconds < general.seconds else general


def ridge_cost(G: int, P: int, T: int, n_alphas: int) -> Cost:
    """RidgeGCV: one SVD of M, then per penalty the residuals U (shrink U^T Y) (2 G T P flops) and
    the leave-one-out criterion; about five G x P arrays (measured 35-77 s at G = 20,000, T = 600,
    P = 1,000, 33 penalties, one thread on a loaded machine)."""
    memory = 8.0 * (5 * G * P + 2 * G * T)
    seconds = (4.0 * G * T * T + n_alphas * (2.0 * G * T * P + 6.0 * G * P)) / FLOPS
    return Cost(memory, seconds, "ridge")


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
