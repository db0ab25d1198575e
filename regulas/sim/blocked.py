"""regNet's simulation at large P, drawn block of conditions by block of conditions.

Same model as :mod:`regulas.sim.simulate`, Y (G x P) = M beta + E with rows of beta ~
N(0, sigma2_beta V) and rows of E ~ N(0, delta Sigma), but V and Sigma in factor form
(:mod:`regulas.sim.factor_covariance`), V = F F^T + diag(d_V), Sigma = H H^T + diag(d_S):

    beta = s (Z_beta F^T + W_beta * sqrt(d_V)),          Z_beta: T x k_V,  W_beta: T x P
    E    = sqrt(delta) (Z_E H^T + W_E * sqrt(d_S)),      Z_E: G x k_S,     W_E: G x P

The shared latents Z_beta, Z_E (small) come from the data set's seeds; the per-condition
normals W_beta, W_E of the conditions [j b, (j + 1) b) come from block j's own seeds
(:class:`BlockSeeds`). So any block of columns of Y and beta is a pure function of the
data set's seeds and its block's seeds: tasks that each own a block never need each
other, P x P matrices or all of Y.

**Scale.** delta = (1 - f) / ||Sigma||_2 as in the dense path. The dense path solves s so
that the realised R^2 is exactly f, which needs sums over every block; here s solves

    f = a s^2 / (a s^2 + c),   a = ||M_c Z_beta F^T||^2 + ||M_c||^2 sum(d_V),
                               c = delta (||Z_E,c H^T||^2 + (G - 1) sum(d_S))

(M_c, Z_E,c: columns centred over genes): the signal fraction exactly given the shared
low-rank draws (computed in O(G T k + P k^2)) and in expectation over the per-condition
normals, whose share of the realised sums fluctuates by O(1 / sqrt(G P)). The realised R^2
is computed when the data set is read back (:meth:`regulas.sim.streamed_setup.ConditionSetup.fraction`)
and stored as ``achieved_fraction``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from regulas.core.task import derive_seed
from regulas.sim.factor_covariance import FactorCovariance, noise_factor, signal_factor
from regulas.sim.simulate import Cell, SimulationSeeds


@dataclass(frozen=True)
class BlockSeeds:
    """Seeds of the per-condition draws of one block of conditions."""

    beta: int
    noise: int

    @classmethod
    def derive(cls, root_seed: int, cell: Cell, replicate: int, block: int, width: int) -> BlockSeeds:
        """Keyed like :class:`SimulationSeeds` (shared across V, Sigma and fractions) plus the block."""
        G, P, T, r = cell.genes, cell.conditions, cell.motifs, replicate
        where = {"block": block, "width": width, "replicate": r, "conditions": P}
        return cls(
            beta=derive_seed(root_seed, "regnet.beta.block", {**where, "motifs": T}),
            noise=derive_seed(root_seed, "regnet.noise.block", {**where, "genes": G}),
        )


def block_slices(conditions: int, width: int) -> list[slice]:
    """The condition blocks [j w, min((j + 1) w, P))."""
    return [slice(a, min(a + width, conditions)) for a in range(0, conditions, width)]


@dataclass(frozen=True)
class BlockedDesign:
    """The shared part of one data set; :meth:`block` draws any block of conditions from it.

    Attributes
    ----------
    M : (G, T) motif scores.
    V, Sigma : factor forms of the structures (trace 1).
    beta_latent : (T, k_V) Z_beta.  noise_latent : (G, k_S) Z_E.
    sigma2_beta, delta : the scales (C0 = sigma2_beta V, C1 = delta Sigma).
    """

    M: np.ndarray
    V: FactorCovariance
    Sigma: FactorCovariance
    beta_latent: np.ndarray
    noise_latent: np.ndarray
    sigma2_beta: float
    delta: float

    @classmethod
    def draw(cls, cell: Cell, seeds: SimulationSeeds, M: np.ndarray) -> BlockedDesign:
        """The structures, shared latents and scales of ``cell`` with motif scores ``M`` (G x T)."""
        G, P, T, f = cell.genes, cell.conditions, cell.motifs, cell.fraction
        V = signal_factor(cell.V, P, np.random.default_rng(seeds.V))
        Sigma = noise_factor(cell.Sigma, V, cell.noise_fraction, np.random.default_rng(seeds.Sigma))
        Zb = np.random.default_rng(seeds.beta).standard_normal((T, V.rank))
        Ze = np.random.default_rng(seeds.noise).standard_normal((G, Sigma.rank))
        delta = (1.0 - f) / Sigma.largest_eigenvalue()
        if f >= 1.0:
            return cls(M, V, Sigma, Zb, Ze, 1.0, 0.0)
        Mc = M - M.mean(axis=0)
        McZ = Mc @ Zb
        a = float(np.sum((McZ.T @ McZ) * (V.factor.T @ V.factor))) + float(np.sum(Mc**2)) * float(np.sum(V.diag))
        if a <= 0.0:
            raise ValueError("M beta is constant across genes: no signal fraction can be reached")
        Zc = Ze - Ze.mean(axis=0)
        c = delta * (float(np.sum((Zc.T @ Zc) * (Sigma.factor.T @ Sigma.factor))) + (G - 1) * float(np.sum(Sigma.diag)))
        return cls(M, V, Sigma, Zb, Ze, f / (1.0 - f) * c / a, delta)

    def block(self, cols: slice, seeds: BlockSeeds) -> tuple[np.ndarray, np.ndarray]:
        """(Y[:, cols] (G x b), beta[:, cols] (T x b)) of the conditions ``cols``."""
        G, T = self.M.shape
        b = cols.stop - cols.start
        W_beta = np.random.default_rng(seeds.beta).standard_normal((T, b))
        beta = np.sqrt(self.sigma2_beta) * self.V.draw(self.beta_latent, W_beta, cols)
        W_noise = np.random.default_rng(seeds.noise).standard_normal((G, b))
        E = np.sqrt(self.delta) * self.Sigma.draw(self.noise_latent, W_noise, cols)
        return self.M @ beta + E, beta

    def dense(self, blocks: list[tuple[slice, BlockSeeds]]) -> tuple[np.ndarray, np.ndarray]:
        """All of Y (G x P) and beta (T x P) in memory, block by block (for tests and small P)."""
        parts = [self.block(cols, s) for cols, s in blocks]
        return np.hstack([p[0] for p in parts]), np.hstack([p[1] for p in parts])
