"""One draw of regNet's generative model, scaled exactly to a signal fraction.

Model (G genes, T motifs, P conditions)::

    Y = M beta + E,            Y: G x P,  M: G x T,  beta: T x P,  E: G x P
    rows of beta ~ N(0, sigma2_beta V),   rows of E ~ N(0, delta Sigma),

with V and Sigma of trace 1 (:mod:`regulas.sim.covariance`) and delta = (1 - f) / ||Sigma||_2
as in regNet. The signal fraction is the realised

    R^2 = 1 - ||E||_F^2 / ||Y - Ybar||_F^2        (Ybar: the column means of Y),

and instead of regNet's bisection on sigma2_beta (to within +-0.01), the scale is solved
exactly: with beta = s B0 (rows of B0 ~ N(0, V)), A = M B0 and column-centred Ac, Ec,
R^2 = f  <=>  ||Ac||^2 s^2 + 2 <Ac, Ec> s + ||Ec||^2 - ||E||^2 / (1 - f) = 0, a quadratic
with exactly one positive root for 0 < f < 1 (its constant term is negative). At f = 1
there is no noise (delta = 0) and sigma2_beta = 1.

The true covariances in the model's own units are C0 = sigma2_beta V (of the rows of beta)
and C1 = delta Sigma (of the rows of E). Note: :class:`regulas.lmm.KronSumLMM` puts the
prior on beta as N(0, C0 / T) (K = M M^T / T), so its ``C0_`` estimates T * C0.

Every random draw has its own seed (:class:`SimulationSeeds`), keyed by only the settings
it depends on, so cells that share settings share draws (common random numbers: the same
M for every structure of a replicate, the same standard-normal beta and noise directions
across signal fractions), and a task can regenerate its data exactly from the seeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from regulas.core.task import derive_seed
from regulas.sim.covariance import is_factor_only_noise, noise_covariance, signal_covariance
from regulas.sim.factor_covariance import FactorCovariance, noise_factor
from regulas.sim.motifs import draw_motif_matrix, synthetic_motif_matrix

#: the method name of the simulation's own rows in a study's results (e.g. its achieved
#: signal fraction), beside those of the methods fitted to it
SIMULATION = "simulation"


@dataclass(frozen=True)
class Cell:
    """One point of the simulation grid."""

    genes: int  # G
    conditions: int  # P
    motifs: int  # T
    V: str  # signal structure
    Sigma: str  # noise structure
    noise_fraction: float  # f_N (0 for structures that do not mix in V)
    fraction: float  # signal fraction f

    @property
    def shape_key(self) -> str:
        """Cells with equal (G, P, T) share arrays."""
        return f"G{self.genes}_P{self.conditions}_T{self.motifs}"

    @property
    def label(self) -> str:
        return f"{self.shape_key}_V{self.V}_S{self.Sigma}_N{self.noise_fraction!r}_f{self.fraction!r}"


@dataclass(frozen=True)
class SimulationSeeds:
    """Seeds of the independent draws of one (cell, replicate)."""

    motifs: int
    V: int
    Sigma: int
    beta: int
    noise: int

    @classmethod
    def derive(cls, root_seed: int, cell: Cell, replicate: int) -> SimulationSeeds:
        G, P, T, r = cell.genes, cell.conditions, cell.motifs, replicate
        sigma_base = cell.Sigma.removesuffix("V") if cell.Sigma in ("randomV", "identityV") else cell.Sigma
        return cls(
            motifs=derive_seed(root_seed, "regnet.motifs", {"genes": G, "motifs": T, "replicate": r}),
            V=derive_seed(root_seed, "regnet.V", {"conditions": P, "V": cell.V, "replicate": r}),
            Sigma=derive_seed(root_seed, "regnet.Sigma", {"conditions": P, "Sigma": sigma_base, "replicate": r}),
            beta=derive_seed(root_seed, "regnet.beta", {"motifs": T, "conditions": P, "replicate": r}),
            noise=derive_seed(root_seed, "regnet.noise", {"genes": G, "conditions": P, "replicate": r}),
        )


@dataclass(frozen=True)
class Simulation:
    """A simulated data set and its true parameters.

    Attributes
    ----------
    M : (G, T) motif scores.
    beta : (T, P) true motif activities.
    Y : (G, P) expression, M beta + E.
    E : (G, P) noise.
    V, Sigma : (P, P) structures, trace 1.
    C0, C1 : (P, P) true covariances of the rows of beta and of E (sigma2_beta V, delta Sigma).
    sigma2_beta, delta : the scales.
    achieved_fraction : the realised R^2 of the draw (equals the target up to round-off).
    """

    M: np.ndarray
    beta: np.ndarray
    Y: np.ndarray
    E: np.ndarray
    V: np.ndarray
    Sigma: np.ndarray
    C0: np.ndarray
    C1: np.ndarray
    sigma2_beta: float
    delta: float
    achieved_fraction: float


def psd_sqrt(C: np.ndarray) -> np.ndarray:
    """The symmetric square root of a PSD matrix (negative round-off eigenvalues clipped)."""
    w, Q = np.linalg.eigh((C + C.T) / 2)
    return np.asarray((Q * np.sqrt(np.clip(w, 0.0, None))) @ Q.T)


def realised_fraction(Y: np.ndarray, E: np.ndarray) -> float:
    """R^2 = 1 - ||E||_F^2 / ||Y - column means||_F^2."""
    Yc = Y - Y.mean(axis=0)
    return float(1.0 - np.sum(E**2) / np.sum(Yc**2))


def signal_scale(A: np.ndarray, E: np.ndarray, fraction: float) -> float:
    """The s > 0 with realised_fraction(s A + E, E) = fraction (0 < fraction < 1).

    A = M B0 (G x P), E (G x P). Solves a s^2 + b s + c = 0 for its positive root, in the
    form that avoids cancellation.
    """
    Ac = A - A.mean(axis=0)
    Ec = E - E.mean(axis=0)
    a = float(np.sum(Ac**2))
    if a <= 0.0:
        raise ValueError("M beta is constant across genes: no signal fraction can be reached")
    b = 2.0 * float(np.sum(Ac * Ec))
    c = float(np.sum(Ec**2)) - float(np.sum(E**2)) / (1.0 - fraction)  # < 0
    root = np.sqrt(b * b - 4.0 * a * c)
    return float(2.0 * -c / (b + root)) if b > 0 else float((-b + root) / (2.0 * a))


def simulate(
    cell: Cell,
    seeds: SimulationSeeds,
    motif_source: np.ndarray | None = None,
    custom: Mapping[str, np.ndarray] | None = None,
    M: np.ndarray | None = None,
) -> Simulation:
    """Draw one data set of ``cell``.

    ``motif_source``: min-max scaled scores (rows x motifs) to draw M from; None = synthetic M.
    ``M``: the motif scores (G x T) to use instead of drawing them (e.g. from a calibrated copula).
    ``custom``: user-given covariances by name (used in place of the named structures).
    """
    G, P, T, f = cell.genes, cell.conditions, cell.motifs, cell.fraction
    if M is None:
        rng_m = np.random.default_rng(seeds.motifs)
        M = synthetic_motif_matrix(G, T, rng_m) if motif_source is None else draw_motif_matrix(motif_source, G, T, rng_m)
    V = signal_covariance(cell.V, P, np.random.default_rng(seeds.V), custom)
    if is_factor_only_noise(cell.Sigma) and cell.Sigma not in (custom or {}):  # defined in factor form only
        unit = FactorCovariance(np.zeros((P, 0)), np.full(P, 1.0 / P))
        Sigma = noise_factor(cell.Sigma, unit, 0.0, np.random.default_rng(seeds.Sigma)).dense()
    else:
        Sigma = noise_covariance(cell.Sigma, V, cell.noise_fraction, np.random.default_rng(seeds.Sigma), custom)
    B0 = np.random.default_rng(seeds.beta).standard_normal((T, P)) @ psd_sqrt(V)  # rows ~ N(0, V)
    delta = (1.0 - f) / float(np.linalg.eigvalsh(Sigma)[-1])
    E = np.sqrt(delta) * np.random.default_rng(seeds.noise).standard_normal((G, P)) @ psd_sqrt(Sigma)
    s = 1.0 if f >= 1.0 else signal_scale(M @ B0, E, f)
    beta = s * B0
    Y = M @ beta + E
    sigma2 = s * s
    return Simulation(
        M=M,
        beta=beta,
        Y=Y,
        E=E,
        V=V,
        Sigma=Sigma,
        C0=sigma2 * V,
        C1=delta * Sigma,
        sigma2_beta=sigma2,
        delta=delta,
        achieved_fraction=realised_fraction(Y, E),
    )
