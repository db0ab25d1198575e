"""What one KronSumLMM fit will cost, before any data exist: for config checks.

Imports only numpy and the structure registry (no scipy.optimize, no scikit-learn), so that a
config check can call :func:`estimate_fit_cost` or :func:`check_fit_cost` cheaply. The figures
are order-of-magnitude estimates calibrated on one thread of this project's benchmark machine
(``benchmarks/lmm_tcga_scale.py``); they are meant to refuse a fit that cannot run (a freeform
noise at P = 10,000 needs terabytes), not to schedule one to the second.
"""

from __future__ import annotations

from typing import NamedTuple

from regulas.lmm.structures import STRUCTURED_PAIRS, structure_names
from regulas.lmm.validation import LMMInputError, check_choice

#: solver="auto" takes the structured path from this many conditions on: below it the general
#: path's O(P^3) evaluation is cheap and its several starts and escape steps are the safer fit
#: (its P^3 stages dominate an evaluation from P ~ 128-256, benchmarks/results/lmm_tcga_scale.stages.json)
AUTO_STRUCTURED_FROM_P = 128
#: KronSumLMM builds C0_ and C1_ as dense P x P arrays only up to this P: at 4,096 each is 128 MiB;
#: at P = 10,000 each would be 800 MB, and nothing downstream needs them dense (use the factors)
DENSE_MAX_P = 4096

# one-thread throughput (flop/s) and evaluation counts, measured on this machine under load
# (benchmarks/results/lmm_tcga_scale.json and lmm_tcga_scale.structured.json)
_GEMM_FLOPS = 1.5e10  # large matrix products (the setup's M^T Y, factor noise's Y^T (Y E))
_EIG_FLOPS = 6.0e9  # P x P eigendecompositions and products of the general path
_STRUCT_FLOPS = 1.0e10  # the structured evaluation's products with U^T Y
_GENERAL_EVALS_PER_START = 150
_STRUCTURED_EVALS = {"diagonal": 60, "identity": 60, "factor": 200}  # factor noise converges slower


class FitCost(NamedTuple):
    """Estimated peak memory (bytes) and one-thread wall time (seconds) of one fit, and, when the
    fit would take the general path, the structured pair to use instead (None otherwise)."""

    bytes: int
    seconds: float
    structured_alternative: str | None


def _path(signal: str, noise: str, P: int, rank: int) -> str:
    structured = (signal, noise) in STRUCTURED_PAIRS and (signal != "lowrank_k" or rank < P)
    return "structured" if structured and P >= AUTO_STRUCTURED_FROM_P else "general"


def _alternative(signal: str, noise: str, rank: int, noise_rank: int) -> tuple[str, str, str]:
    """(signal, noise, text) of the structured pair closest to a general one."""
    sig = signal if signal in ("diagonal", "identity") and noise in ("diagonal", "identity") else "lowrank_k"
    noi = noise if noise in ("diagonal", "identity") else "factor"
    text = f"signal='{sig}'" + (f" (rank={rank})" if sig == "lowrank_k" else "") + f", noise='{noi}'"
    return sig, noi, text + (f" (noise_rank={noise_rank})" if noi == "factor" else "")


def estimate_fit_cost(
    signal: str,
    noise: str,
    G: int,
    T: int,
    P: int,
    rank: int | None = None,
    noise_rank: int | None = None,
    *,
    n_restarts: int = 1,
) -> FitCost:
    """Peak memory and one-thread time of ``KronSumLMM(signal, noise, rank, noise_rank).fit(M, Y)``
    with M: G x T and Y: G x P (solver="auto"), and the structured alternative when the fit would
    take the general path.

    Memory counts Y (8 G P bytes) and its internal copy where the path makes one (general
    path, factor noise), U^T Y-sized arrays (r x P, r = min(G, T)) and, on the general path,
    ~12 P x P arrays, plus, where it fits by Fisher scoring (freeform noise with freeform or
    low-rank signal), its P x P^2 and (P k)^2 temporaries. Time is the setup (2 G T P flops
    for M^T Y) plus the evaluations: ~150 per start of O(P^3) on the general path
    (3 + ``n_restarts`` starts); on the structured one ~60 of O(r P k) with diagonal noise,
    ~200 of O(r P (k + q) + G P q) with factor noise.

    Parameters
    ----------
    signal, noise : structure names (:func:`regulas.lmm.structures.structure_names`).
    G, T, P : genes, motifs, conditions.
    rank : k of signal="lowrank_k" (default 4, also the rank the alternative suggests).
    noise_rank : q of noise="factor" (default 1).
    n_restarts : KronSumLMM's random starts.

    Returns
    -------
    FitCost(bytes, seconds, structured_alternative): a tuple.
    """
    check_choice("signal structure", signal, structure_names("signal"))
    check_choice("noise structure", noise, structure_names("noise"))
    k = int(rank) if rank is not None else 4
    q = int(noise_rank) if noise_rank is not None else 1
    r = min(G, T)
    setup = (2.0 * G * T * P + G * T * T) / _GEMM_FLOPS
    if _path(signal, noise, P, k) == "structured":
        factor = noise == "factor"
        m = (k if signal == "lowrank_k" else 0) + (q if factor else 0)
        per_eval = 12.0 * r * P * max(m, 1) / _STRUCT_FLOPS + (4.0 * G * P * q / _GEMM_FLOPS if factor else 0.0)
        evals = _STRUCTURED_EVALS[noise] * (1 + 0.3 * n_restarts)
        # Y is not copied with diagonal noise (read by blocks); factor noise keeps a scaled copy
        nbytes = 8 * G * P * (2 if factor else 1) + 8 * G * T + 10 * 8 * r * P + 16 * 8 * P * max(m, 1)
        return FitCost(int(nbytes), float(setup + evals * per_eval), None)
    # the general path: P x P eigendecompositions (~10 P^3) and r x P^2 products per evaluation
    flops = 10.0 * P**3 + 8.0 * r * P**2
    evals = _GENERAL_EVALS_PER_START * (3 + n_restarts)
    nbytes = 2 * 8 * G * P + 8 * G * T + 8 * 4 * r * P + 12 * 8 * P * P
    if noise == "freeform" and signal in ("freeform", "lowrank_k"):
        kf = P if signal == "freeform" else k
        nbytes += 8 * (P**3 + 2 * (P * kf) ** 2)
    sig, noi, text = _alternative(signal, noise, k, q)
    alt = estimate_fit_cost(sig, noi, G, T, max(P, AUTO_STRUCTURED_FROM_P), k, q, n_restarts=n_restarts)
    return FitCost(int(nbytes), float(setup + evals * flops / _EIG_FLOPS), f"{text}: ~{_gb(alt.bytes)}, ~{_s(alt.seconds)}")


def _s(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:,.0f} s"


def _gb(n: float) -> str:
    return f"{n / 1e9:,.1f} GB" if n >= 1e8 else f"{n / 1e6:,.0f} MB"


def check_fit_cost(
    signal: str, noise: str, G: int, T: int, P: int, rank: int | None = None, noise_rank: int | None = None,
    *, memory_limit: float, time_limit: float | None = None, where: str = "lmm",
) -> FitCost:
    """:func:`estimate_fit_cost`, raising LMMInputError when the fit would need more than
    ``memory_limit`` bytes (or ``time_limit`` seconds), with the estimate and the structured
    alternative; ``where`` names the config entry in the message."""
    cost = estimate_fit_cost(signal, noise, G, T, P, rank, noise_rank)
    over = cost.bytes > memory_limit or (time_limit is not None and cost.seconds > time_limit)
    if over:
        limits = f"memory limit {_gb(memory_limit)}" + (f", time limit {_s(time_limit)}" if time_limit is not None else "")
        alt = f"; use {cost.structured_alternative}" if cost.structured_alternative else ""
        raise LMMInputError(
            f"{where}: signal={signal!r}, noise={noise!r} at G={G:,}, T={T:,}, P={P:,} cannot be fitted within the {limits}: "
            f"estimated ~{_gb(cost.bytes)} and ~{_s(cost.seconds)} on one thread{alt}"
        )
    return cost
