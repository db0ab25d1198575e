"""How the LMM's solvers use the registered covariance structures (:mod:`regulas.lmm.structures`):
building the signal (C0) and noise (C1) structures by name, the noise factor L1, and the
preconditioned coordinates of the L-BFGS path.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from regulas.lmm.structures import Structure, make_structure


def make_signal(name: str, dim: int, *, rank: int | None = None, blocks: Sequence[object] | None = None) -> Structure:
    """The registered signal structure ``name`` (C0, P = ``dim``) with its options."""
    return make_structure("signal", name, dim, rank=rank, blocks=blocks)


def make_noise(name: str, dim: int, *, noise_rank: int | None = None) -> Structure:
    """The registered noise structure ``name`` (C1, P = ``dim``) with its options."""
    return make_structure("noise", name, dim, noise_rank=noise_rank)


def noise_factor(structure: Structure, theta: np.ndarray) -> np.ndarray:
    """Lower-triangular L1 with C1 = L1 L1^T for a noise structure."""
    factor = getattr(structure, "factor", None)
    if factor is None:
        raise TypeError(f"{structure.name} is not a noise structure")
    return np.asarray(factor(theta))


_DECLARED = ("name", "roles", "params", "congruence", "fisher_scoring", "scoring_screen", "escape_only_on_null_space")


class Preconditioned(Structure):
    """C = A C_w A^T with C_w from ``inner``: the same family when ``inner`` is closed under
    congruence by A (freeform, low rank: any A; diagonal: diagonal A). Optimising in the
    whitened coordinates C_w (A from the sample covariance) conditions L-BFGS far better when
    the conditions' scales differ by orders of magnitude (nearly singular noise).
    """

    def __init__(self, inner: Structure, A: np.ndarray) -> None:
        super().__init__(inner.dim)
        self.inner = inner
        for attr in _DECLARED:  # the inner structure's name and capabilities
            setattr(self, attr, getattr(inner, attr))
        self.A = A
        self.A_inv = np.linalg.inv(A)

    @property
    def n_params(self) -> int:
        return self.inner.n_params

    @property
    def scoring_rank(self) -> int | None:
        return self.inner.scoring_rank

    def cov(self, theta: np.ndarray) -> np.ndarray:
        return np.asarray(self.A @ self.inner.cov(theta) @ self.A.T)

    def factor(self, theta: np.ndarray) -> np.ndarray:
        return np.asarray(self.A @ noise_factor(self.inner, theta))

    def grad(self, theta: np.ndarray, dC: np.ndarray) -> np.ndarray:
        return self.inner.grad(theta, self.A.T @ dC @ self.A)

    def from_cov(self, C: np.ndarray) -> np.ndarray:
        return self.inner.from_cov(self.A_inv @ C @ self.A_inv.T)

    def ascent_candidates(self, theta: np.ndarray, dC: np.ndarray, steps: Sequence[float]) -> list[np.ndarray]:
        return self.inner.ascent_candidates(theta, self.A.T @ dC @ self.A, steps)


def preconditioner(signal: Structure, noise: Structure, S: np.ndarray) -> np.ndarray | None:
    """Lower-triangular A with A A^T ~ S that both structures are closed under, or None."""
    if signal.congruence == "any" and noise.congruence == "any":
        w, Q = np.linalg.eigh(S)
        if w[0] > 1e-12 * w[-1]:
            return np.asarray(np.linalg.cholesky(S))
    if signal.congruence in ("any", "diagonal") and noise.congruence in ("any", "diagonal"):
        d = np.diag(S)
        if np.all(d > 0):
            return np.diag(np.sqrt(d))
    return None
