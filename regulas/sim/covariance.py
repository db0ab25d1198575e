"""Covariances between conditions for the regNet simulation (all P x P, trace 1).

Signal structures V (rows of beta ~ N(0, sigma2_beta V)):

* ``id``: I / P.
* ``lowrank_<k>`` (k = 1..P) and ``lowrank_half`` (k = P // 2): block-constant, as in
  regNet: ones on k diagonal blocks of random sizes, -0.01 off the blocks, + 1e-4 I.
  In the basis of normalised block indicators it is 1.01 diag(n) - 0.01 s s^T
  (n = block sizes, s = sqrt(n)), positive definite iff 0.01 k / 1.01 < 1, i.e. k <= 100;
  its numerical rank is k (the other P - k eigenvalues are 1e-4 before normalising).
* ``freeform``: (I + U)(I + U)^T with U_ij ~ Unif(0, 1) (regNet's "random").

Noise structures Sigma (rows of E ~ N(0, delta Sigma)):

* ``random``: S0^T S0 with S0 a P x P matrix of N(0, 1) (can be nearly singular);
* ``identity``: I / P;
* ``randomV`` / ``identityV``: gamma V + Sigma_base with gamma = f_N / (1 - f_N) tr(Sigma_base) / tr(V),
  so after normalising, a share f_N (the noise fraction) of the noise trace has V's structure.

Both lists also accept names of user-given matrices (``covariances`` in the study config).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

# the simulation's true-covariance vocabulary (not the LMM's fitted structures: regulas.lmm.structures)
SIM_SIGNAL_STRUCTURES = ("id", "lowrank_<k>", "lowrank_half", "freeform")
SIM_NOISE_STRUCTURES = ("random", "identity", "randomV", "identityV")
#: noise structures defined in factor form (:mod:`regulas.sim.factor_covariance`), usable at any P
FACTOR_ONLY_NOISE_STRUCTURES = ("diagonal", "factor_<k>")
#: the most blocks for which regNet's block-constant matrix (-0.01 off the blocks) is PSD
MAX_LOWRANK_BLOCKS = 100
LOWRANK_NUGGET = 1e-4
OFF_BLOCK = -0.01

_LOWRANK = re.compile(r"^lowrank_(\d+|half)$")
_FACTOR = re.compile(r"^factor_(\d+)$")


class StructureError(ValueError):
    """A structure name or matrix that cannot be used; the config layer adds the key."""


def lowrank_blocks(name: str, conditions: int) -> int | None:
    """The number of blocks k of a ``lowrank_*`` name at P conditions (None: not low rank)."""
    m = _LOWRANK.match(name)
    if m is None:
        return None
    k = max(1, conditions // 2) if m.group(1) == "half" else int(m.group(1))
    if not 1 <= k <= conditions:
        raise StructureError(f"{name!r} asks for k = {k} blocks but there are {conditions} conditions; expected 1 <= k <= P")
    if k > MAX_LOWRANK_BLOCKS:
        raise StructureError(
            f"{name!r} with k = {k} blocks is not positive semi-definite (off-block value {OFF_BLOCK}: "
            f"needs k <= {MAX_LOWRANK_BLOCKS})"
        )
    return k


def factor_rank(name: str) -> int | None:
    """k of a ``factor_<k>`` noise name (None: another name)."""
    m = _FACTOR.match(name)
    return None if m is None else int(m.group(1))


def is_factor_only_noise(name: str) -> bool:
    """Whether the noise structure exists only in factor form (``diagonal``, ``factor_<k>``)."""
    return name == "diagonal" or factor_rank(name) is not None


def check_custom(name: str, matrix: np.ndarray) -> None:
    """Refuse a user-given covariance that is not square, symmetric, finite, PSD with trace > 0."""
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise StructureError(f"covariance {name!r} has shape {matrix.shape}; expected a square P x P matrix")
    if not np.isfinite(matrix).all():
        raise StructureError(f"covariance {name!r} has non-finite entries")
    scale = float(np.abs(matrix).max()) or 1.0
    if not np.allclose(matrix, matrix.T, rtol=0, atol=1e-12 * scale):
        raise StructureError(f"covariance {name!r} is not symmetric")
    low = float(np.linalg.eigvalsh(matrix)[0])
    if low < -1e-10 * scale:
        raise StructureError(f"covariance {name!r} is not positive semi-definite (smallest eigenvalue {low:.3g})")
    if np.trace(matrix) <= 0:
        raise StructureError(f"covariance {name!r} has trace {np.trace(matrix):.3g}; expected > 0")


def check_signal_name(name: str, conditions: int, custom: Mapping[str, np.ndarray]) -> None:
    if name in custom:
        _check_custom_size(name, custom[name], conditions)
    elif name not in ("id", "freeform") and lowrank_blocks(name, conditions) is None:
        raise StructureError(f"unknown signal structure {name!r}; expected one of {', '.join(SIM_SIGNAL_STRUCTURES)} "
                             f"or a name under 'covariances' ({', '.join(sorted(custom)) or 'none given'})")


def check_noise_name(name: str, conditions: int, custom: Mapping[str, np.ndarray]) -> None:
    if name in custom:
        _check_custom_size(name, custom[name], conditions)
    elif factor_rank(name) is not None:
        k = factor_rank(name)
        if not 1 <= k < conditions:  # type: ignore[operator]
            raise StructureError(f"{name!r} asks for a rank-{k} noise factor but there are {conditions} conditions; "
                                 "expected 1 <= k < P")
    elif name not in (*SIM_NOISE_STRUCTURES, "diagonal"):
        names = ", ".join((*SIM_NOISE_STRUCTURES, *FACTOR_ONLY_NOISE_STRUCTURES))
        raise StructureError(f"unknown noise structure {name!r}; expected one of {names} "
                             f"or a name under 'covariances' ({', '.join(sorted(custom)) or 'none given'})")


def _check_custom_size(name: str, matrix: np.ndarray, conditions: int) -> None:
    if matrix.shape != (conditions, conditions):
        raise StructureError(f"covariance {name!r} is {matrix.shape[0]} x {matrix.shape[1]} but the grid has "
                             f"P = {conditions} conditions; expected {conditions} x {conditions}")


def normalise_trace(C: np.ndarray) -> np.ndarray:
    return C / np.trace(C)


def random_block_sizes(conditions: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """k positive block sizes summing to P, from k - 1 distinct random cut points."""
    cuts = np.sort(rng.choice(np.arange(1, conditions), size=k - 1, replace=False)) if k > 1 else np.array([], int)
    return np.diff(np.concatenate([[0], cuts, [conditions]])).astype(int)


def block_constant(sizes: np.ndarray) -> np.ndarray:
    """regNet's low-rank V before normalising: 1 on the blocks, -0.01 off them, + 1e-4 I."""
    labels = np.repeat(np.arange(len(sizes)), sizes)
    same = labels[:, None] == labels[None, :]
    return np.where(same, 1.0, OFF_BLOCK) + LOWRANK_NUGGET * np.eye(len(labels))


def signal_covariance(
    name: str, conditions: int, rng: np.random.Generator, custom: Mapping[str, np.ndarray] | None = None
) -> np.ndarray:
    """V (P x P, trace 1) of the named structure, drawn with ``rng`` where it is random."""
    custom = custom or {}
    P = conditions
    if name in custom:
        return normalise_trace(np.asarray(custom[name], dtype=float))
    if name == "id":
        return np.eye(P) / P
    if name == "freeform":
        A = np.eye(P) + rng.random((P, P))
        return normalise_trace(A @ A.T)
    k = lowrank_blocks(name, P)
    if k is None:
        raise StructureError(f"unknown signal structure {name!r}; expected one of {', '.join(SIM_SIGNAL_STRUCTURES)}")
    return normalise_trace(block_constant(random_block_sizes(P, k, rng)))


def noise_covariance(
    name: str,
    V: np.ndarray,
    noise_fraction: float,
    rng: np.random.Generator,
    custom: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Sigma (P x P, trace 1): the named base structure, mixed with V for ``randomV`` / ``identityV``."""
    custom = custom or {}
    P = V.shape[0]
    if name in custom:
        return normalise_trace(np.asarray(custom[name], dtype=float))
    base = name.removesuffix("V") if name in ("randomV", "identityV") else name
    if base == "random":
        S0 = rng.standard_normal((P, P))
        S = S0.T @ S0
    elif base == "identity":
        S = np.eye(P)
    else:
        raise StructureError(f"unknown noise structure {name!r}; expected one of {', '.join(SIM_NOISE_STRUCTURES)}")
    if name.endswith("V"):
        if not 0.0 <= noise_fraction < 1.0:
            raise StructureError(f"noise fraction {noise_fraction!r} outside [0, 1)")
        gamma = noise_fraction / (1.0 - noise_fraction) * np.trace(S) / np.trace(V)
        S = gamma * V + S
    return normalise_trace(S)


def uses_noise_fraction(name: str) -> bool:
    """Whether the noise structure mixes in V (the noise fraction matters only then)."""
    return name in ("randomV", "identityV")
