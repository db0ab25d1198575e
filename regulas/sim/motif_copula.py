"""Synthetic motif scores M (G x T) at any G, calibrated on a real score table.

The shipped table has 400 regions; tiling its rows (:func:`regulas.sim.motifs.draw_motif_matrix`)
gives M of rank <= 400, which at T = 600 motifs is no longer a regression with a full-rank
design. Here M is drawn from a **Gaussian copula whose correlation is a factor model** fitted
to the real table:

1. each real column j is turned into normal scores, z = Phi^-1((rank - 1/2) / n) (ties
   averaged), and R = their correlation (m x m, rank <= n - 1, so singular at m > n);
2. R is approximated by L L^T + diag(psi) with L (m x q) = the top q eigenvectors times the
   square roots of their eigenvalues and psi = 1 - diag(L L^T) (unit latent variances);
3. a gene's latent row is z = f L^T + e sqrt(psi), f ~ N(0, I_q), e ~ N(0, I_m), and
   its score in motif j is Q_j(Phi(z_j)), Q_j the real column's empirical quantile function
   (the order statistic floor(u n): a draw from the real column's values).

So each synthetic column has exactly the real column's distribution (its mean, variance and
values in [0, 1]) and the columns have the real table's rank correlation up to the q factors kept;
no G x G or G x T x T object is formed (O(G T q) per draw).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: latent factors kept by default (the top eigenvalues of the shipped table's normal-score correlation)
DEFAULT_MOTIF_FACTORS = 40
#: smallest unique variance kept (a column almost spanned by the factors keeps some noise of its own)
MIN_UNIQUENESS = 0.05


@dataclass(frozen=True)
class MotifCopula:
    """A fitted copula: ``loadings`` L (m, q), ``uniqueness`` psi (m,), ``sorted_scores`` (n, m) per column."""

    loadings: np.ndarray
    uniqueness: np.ndarray
    sorted_scores: np.ndarray

    @property
    def motifs(self) -> int:
        return int(self.loadings.shape[0])

    @classmethod
    def fit(cls, source: np.ndarray, factors: int = DEFAULT_MOTIF_FACTORS) -> MotifCopula:
        """Fit to ``source`` (n rows x m motifs); ``factors`` q is capped at min(n - 1, m)."""
        # SciPy here and in draw: a regNet config names DEFAULT_MOTIF_FACTORS without fitting
        from scipy.special import ndtri
        from scipy.stats import rankdata

        n, m = source.shape
        q = max(1, min(factors, n - 1, m))
        z = ndtri((rankdata(source, axis=0) - 0.5) / n)
        R = np.corrcoef(z, rowvar=False) if m > 1 else np.ones((1, 1))
        R = np.nan_to_num(R)  # a constant column: no correlation with anything
        np.fill_diagonal(R, 1.0)
        w, Q = np.linalg.eigh(R)
        w, Q = w[::-1][:q], Q[:, ::-1][:, :q]
        Q = Q * np.sign(Q[np.argmax(np.abs(Q), axis=0), np.arange(q)])  # a fixed sign per eigenvector
        L = Q * np.sqrt(np.clip(w, 0.0, None))
        common = np.sum(L**2, axis=1)
        shrink = np.sqrt(np.minimum(1.0, (1.0 - MIN_UNIQUENESS) / np.maximum(common, 1e-300)))
        L = L * shrink[:, None]
        return cls(L, 1.0 - np.sum(L**2, axis=1), np.sort(source, axis=0))

    def draw(self, genes: int, motifs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """M (G, len(motifs)) for the motif columns ``motifs`` (indices into the fitted table)."""
        from scipy.special import ndtr

        L, psi = self.loadings[motifs], self.uniqueness[motifs]
        f = rng.standard_normal((genes, L.shape[1]))
        z = f @ L.T + rng.standard_normal((genes, len(motifs))) * np.sqrt(psi)
        n = self.sorted_scores.shape[0]
        # Q_j(u) = the order statistic floor(u n): exactly the real column's distribution (interpolating
        # between order statistics would thin the tails of skewed columns and shrink their variance)
        rank = np.minimum((ndtr(z) * n).astype(np.intp), n - 1)
        return np.take_along_axis(self.sorted_scores[:, motifs], rank, axis=0)


def copula_motif_matrix(copula: MotifCopula, genes: int, motifs: int, rng: np.random.Generator) -> np.ndarray:
    """M (G x T): T distinct motif columns of the fitted table, drawn from ``rng``, then G synthetic rows."""
    if motifs > copula.motifs:
        raise ValueError(f"cannot draw {motifs} distinct motifs from {copula.motifs} columns (drawn without replacement)")
    cols = np.sort(rng.choice(copula.motifs, size=motifs, replace=False))
    return copula.draw(genes, cols, rng)
