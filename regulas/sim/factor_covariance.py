"""Covariances between P conditions in factor form, F F^T + diag(d), never P x P.

The regNet simulation at TCGA scale (P up to 10,000) cannot form P x P matrices
(800 MB each at P = 10,000). Every structure it uses is held as a factor ``F`` (P x k)
and a diagonal ``d`` (P,), and rows are drawn block of conditions by block:

    x = z F^T + w * sqrt(d),     z ~ N(0, I_k) (shared by all blocks),  w ~ N(0, I_P),

so x ~ N(0, F F^T + diag(d)) and a block of columns needs only the rows of F and the
entries of d of those conditions, plus the shared z.

Signal structures V (trace 1):

* ``id``: F empty, d = 1 / P.
* ``lowrank_<k>``: regNet's block-constant matrix of :mod:`regulas.sim.covariance` exactly,
  1 on k blocks, -0.01 off them, + 1e-4 I, written as B C^1/2 (B C^1/2)^T + 1e-4 I with B
  the P x k block indicators and C = 1.01 I_k - 0.01 1 1^T (positive definite for k <= 100).
  Drawn with the same block sizes as the dense form for the same generator.

Noise structures Sigma (trace 1):

* ``identity``: F empty, d = 1 / P.
* ``diagonal``: d_j = exp(0.5 z_j), z_j ~ N(0, 1) (per-condition noise variances, log-normal).
* ``factor_<k>``: half the trace in a diagonal as ``diagonal``, half in H H^T with H (P x k)
  of N(0, 1) entries (a k-dimensional shared noise, e.g. batch or purity).
* ``random``: in factor form defined as ``factor_8`` (``factor_<P-1>`` below 9 conditions) (regNet's S0^T S0, S0 P x P Gaussian, is a
  dense P x P matrix; only the dense path keeps it).
* ``identityV`` / ``randomV``: gamma V + Sigma_base as in the dense path; in factor form the
  factors are stacked, [sqrt(gamma) F_V, F_base], and the diagonals added.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from regulas.sim.covariance import (
    LOWRANK_NUGGET,
    OFF_BLOCK,
    StructureError,
    factor_rank,
    lowrank_blocks,
    random_block_sizes,
)

#: rank of the factor that stands for regNet's ``random`` noise at large P
RANDOM_FACTOR_RANK = 8
#: standard deviation of log d for the ``diagonal`` noise (and the diagonal of ``factor_<k>``)
DIAGONAL_LOG_SD = 0.5
#: the largest P for which :meth:`FactorCovariance.dense` forms the P x P matrix
DENSE_LIMIT = 4000

FACTOR_SIGNAL_STRUCTURES = ("id", "lowrank_<k>")
FACTOR_NOISE_STRUCTURES = ("identity", "diagonal", "factor_<k>", "random", "identityV", "randomV")


@dataclass(frozen=True)
class FactorCovariance:
    """C = F F^T + diag(d): ``factor`` F (P, k), ``diag`` d (P,), d >= 0."""

    factor: np.ndarray
    diag: np.ndarray

    @property
    def conditions(self) -> int:
        return int(self.diag.shape[0])

    @property
    def rank(self) -> int:
        return int(self.factor.shape[1])

    @property
    def trace(self) -> float:
        return float(np.sum(self.factor**2) + np.sum(self.diag))

    def scaled(self, c: float) -> FactorCovariance:
        """c C (c >= 0)."""
        return FactorCovariance(np.sqrt(c) * self.factor, c * self.diag)

    def normalised(self) -> FactorCovariance:
        """C / tr(C)."""
        return self.scaled(1.0 / self.trace)

    def dense(self) -> np.ndarray:
        """The P x P matrix (refused above :data:`DENSE_LIMIT` conditions)."""
        if self.conditions > DENSE_LIMIT:
            raise StructureError(f"refusing to form a {self.conditions} x {self.conditions} covariance "
                                 f"(limit {DENSE_LIMIT}); use its factor and diagonal")
        return self.factor @ self.factor.T + np.diag(self.diag)

    def largest_eigenvalue(self) -> float:
        """||C||_2 by Lanczos on v -> F (F^T v) + d v (O(P k) per product, v0 = ones: deterministic)."""
        P = self.conditions
        if self.rank == 0:
            return float(self.diag.max())
        if P <= 2 * self.rank + 2:
            return float(np.linalg.eigvalsh(self.dense())[-1])
        from scipy.sparse.linalg import LinearOperator, eigsh

        F, d = self.factor, self.diag
        op = LinearOperator((P, P), matvec=lambda v: F @ (F.T @ v) + d * v, dtype=float)
        return float(eigsh(op, k=1, which="LA", v0=np.ones(P), tol=1e-12, return_eigenvectors=False)[0])

    def draw(self, shared: np.ndarray, columns: np.ndarray, cols: slice) -> np.ndarray:
        """Rows x (n, len(cols)) of conditions ``cols``: shared z (n, k) F[cols]^T + w sqrt(d[cols]).

        ``columns``: the per-condition standard normals w (n, len(cols)) of those conditions.
        """
        out = columns * np.sqrt(self.diag[cols])
        if self.rank:
            out += shared @ self.factor[cols].T
        return out

    def stacked(self, other: FactorCovariance) -> FactorCovariance:
        """self + other, factors side by side."""
        return FactorCovariance(np.hstack([self.factor, other.factor]), self.diag + other.diag)


def signal_factor(name: str, conditions: int, rng: np.random.Generator) -> FactorCovariance:
    """V (trace 1) of the named structure in factor form; ``lowrank_<k>`` draws its block sizes from ``rng``
    as :func:`regulas.sim.covariance.signal_covariance` does."""
    P = conditions
    if name == "id":
        return FactorCovariance(np.zeros((P, 0)), np.full(P, 1.0 / P))
    k = lowrank_blocks(name, P)
    if k is None:
        raise StructureError(f"signal structure {name!r} has no factor form; expected one of "
                             f"{', '.join(FACTOR_SIGNAL_STRUCTURES)} (freeform and custom matrices are P x P)")
    sizes = random_block_sizes(P, k, rng)
    core = (1.0 - OFF_BLOCK) * np.eye(k) + OFF_BLOCK * np.ones((k, k))  # PD for k <= MAX_LOWRANK_BLOCKS
    w, Q = np.linalg.eigh(core)
    root = (Q * np.sqrt(w)) @ Q.T
    factor = root[np.repeat(np.arange(k), sizes)]  # row j = C^1/2 row of j's block: B C^1/2
    return FactorCovariance(factor, np.full(P, LOWRANK_NUGGET)).normalised()


def _diagonal(P: int, rng: np.random.Generator) -> np.ndarray:
    return np.exp(DIAGONAL_LOG_SD * rng.standard_normal(P))


def noise_factor(name: str, V: FactorCovariance, noise_fraction: float, rng: np.random.Generator) -> FactorCovariance:
    """Sigma (trace 1) of the named structure in factor form, mixed with V for ``identityV`` / ``randomV``."""
    P = V.conditions
    base = name.removesuffix("V") if name in ("randomV", "identityV") else name
    k = min(RANDOM_FACTOR_RANK, P - 1) if base == "random" else factor_rank(base)
    if base == "identity":
        S = FactorCovariance(np.zeros((P, 0)), np.ones(P))
    elif base == "diagonal":
        S = FactorCovariance(np.zeros((P, 0)), _diagonal(P, rng))
    elif k is not None:
        if not 1 <= k < P:
            raise StructureError(f"{name!r} needs a rank-{k} factor, but there are {P} conditions; expected k < P")
        d = _diagonal(P, rng)
        H = rng.standard_normal((P, k))
        S = FactorCovariance(H * np.sqrt(0.5 / np.sum(H**2)), 0.5 * d / np.sum(d))
    else:
        raise StructureError(f"noise structure {name!r} has no factor form; expected one of "
                             f"{', '.join(FACTOR_NOISE_STRUCTURES)} (custom matrices are P x P)")
    if name.endswith("V"):
        if not 0.0 <= noise_fraction < 1.0:
            raise StructureError(f"noise fraction {noise_fraction!r} outside [0, 1)")
        gamma = noise_fraction / (1.0 - noise_fraction) * S.trace / V.trace
        S = V.scaled(gamma).stacked(S)
    return S.normalised()
