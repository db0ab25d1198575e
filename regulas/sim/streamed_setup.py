"""What every fit of one simulated data set needs from Y, accumulated block of conditions by block.

With M = U diag(s) W^T (thin SVD, U: G x r, r = rank M <= T), the Kronecker-sum LMM's
likelihood needs U^T Y (r x P) and the column sums of squares of Y (and ridge's criterion
needs the same); both are sums over genes, so they can be accumulated over column blocks
of Y read one at a time from Zarr, and one :class:`ConditionSetup` serves every method
fitted to the same data set.

The seam with the fits is :func:`regulas.sim.methods.fit_method`'s ``setup``: a
:class:`ConditionSetup` is a :class:`regulas.lmm.likelihood.PrecomputedSetup`, so a
:class:`regulas.lmm.KronSumLMM` on its structured path fits from it (``fit(M, Y, setup=...)``)
without decomposing M again or passing over Y (with ``noise="diagonal"``/``"identity"`` Y is not
read at all; ``noise="factor"`` still reads Y for its null-space term). Ridge does not use it: its
SVD is of the column-centred M (:mod:`regulas.sim.blocked_ridge`), and the fit task still
assembles Y (G x P) once for ridge and factor noise. The setup also gives the quantities no
estimator returns (the realised signal fraction, without E).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from regulas.lmm.likelihood import PrecomputedSetup


@dataclass
class ConditionSetup(PrecomputedSetup):
    """Sums over genes of Y (G x P) for M = U diag(s) W^T (G x T), filled block of conditions by block.

    Attributes
    ----------
    U : (G, r), s : (r,), Wt : (r, T) the thin SVD of M (r = numerical rank).
    UtY : (r, P) U^T Y.   col_sum : (P,) 1^T Y.   col_sumsq : (P,) the column sums of squares.
    filled : (P,) which conditions have been added.
    """

    filled: np.ndarray = field(repr=False)

    @classmethod
    def start(cls, M: np.ndarray, conditions: int) -> ConditionSetup:
        """An empty setup for M (G x T) and P conditions (one thin SVD of M)."""
        U, s, Wt = np.linalg.svd(M, full_matrices=False)
        r = int(np.sum(s > s[0] * max(M.shape) * np.finfo(float).eps)) if s.size else 0
        P = conditions
        return cls(U[:, :r], s[:r], Wt[:r], np.zeros((r, P)), np.zeros(P), np.zeros(P), np.zeros(P, dtype=bool))

    def add(self, cols: slice, Y_block: np.ndarray) -> None:
        """Add the columns ``cols`` of Y (Y_block: G x b)."""
        if self.filled[cols].any():
            raise ValueError(f"conditions {cols.start}..{cols.stop - 1} were already added")
        if not np.isfinite(Y_block).all():
            raise ValueError(f"Y has non-finite values in conditions {cols.start}..{cols.stop - 1}")
        self.UtY[:, cols] = self.U.T @ Y_block
        self.col_sum[cols] = Y_block.sum(axis=0)
        self.col_sumsq[cols] = np.einsum("ij,ij->j", Y_block, Y_block)
        self.filled[cols] = True

    @property
    def complete(self) -> bool:
        return bool(self.filled.all())

    @property
    def genes(self) -> int:
        return int(self.U.shape[0])

    def MtY(self) -> np.ndarray:
        """M^T Y (T x P) = W diag(s) U^T Y."""
        return self.Wt.T @ (self.s[:, None] * self.UtY)

    def residual_sumsq(self, beta: np.ndarray) -> float:
        """||Y - M beta||_F^2 = ||Y||^2 - 2 <M^T Y, beta> + ||diag(s) W^T beta||^2, without Y (beta: T x P)."""
        SWb = self.s[:, None] * (self.Wt @ beta)
        return float(np.sum(self.col_sumsq) - 2.0 * np.sum(self.MtY() * beta) + np.sum(SWb**2))

    def centred_sumsq(self) -> float:
        """||Y - column means||_F^2."""
        return float(np.sum(self.col_sumsq - self.col_sum**2 / self.genes))

    def fraction(self, beta: np.ndarray) -> float:
        """The realised signal fraction R^2 = 1 - ||Y - M beta||^2 / ||Y - column means||^2."""
        return 1.0 - self.residual_sumsq(beta) / self.centred_sumsq()
