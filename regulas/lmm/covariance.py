"""Parametrised P x P covariance structures for the signal (C0) and noise (C1) of the LMM.

Every structure maps an unconstrained vector ``theta`` to a covariance and maps the
gradient of the log-likelihood with respect to the covariance (a symmetric P x P matrix
``dC``, where d loglik = tr(dC . dCov)) back to ``theta``. Positivity comes from the
parametrisation (Cholesky factors, logs), never from adding a jitter.

Signal structures may be singular (C0 = L L^T with a free-sign diagonal); noise structures
are positive definite and expose their lower-triangular factor L1 (C1 = L1 L1^T), which the
likelihood uses directly to whiten the conditions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np

from regulas.lmm.validation import LMMInputError


def _lower_from_psd(C: np.ndarray) -> np.ndarray:
    """A lower-triangular L with L L^T = C for a PSD (possibly singular) C, without a jitter.

    C = F F^T with F = Q sqrt(max(eig, 0)); the QR factorisation F^T = Q' R gives C = R^T R.
    """
    w, Q = np.linalg.eigh((C + C.T) / 2)
    F = Q * np.sqrt(np.clip(w, 0.0, None))
    R = np.asarray(np.linalg.qr(F.T, mode="r"))
    return np.asarray(R.T)


def _psd_part(C: np.ndarray) -> np.ndarray:
    w, Q = np.linalg.eigh((C + C.T) / 2)
    return np.asarray((Q * np.clip(w, 0.0, None)) @ Q.T)


class Structure(ABC):
    """A family of P x P covariances indexed by an unconstrained parameter vector."""

    name: str = ""

    def __init__(self, dim: int) -> None:
        self.dim = int(dim)

    @property
    @abstractmethod
    def n_params(self) -> int: ...

    @abstractmethod
    def cov(self, theta: np.ndarray) -> np.ndarray:
        """The P x P covariance at ``theta``."""

    @abstractmethod
    def grad(self, theta: np.ndarray, dC: np.ndarray) -> np.ndarray:
        """Chain rule: the gradient with respect to ``theta`` given the symmetric gradient ``dC``."""

    @abstractmethod
    def from_cov(self, C: np.ndarray) -> np.ndarray:
        """Parameters whose covariance is the structure's approximation of ``C`` (for starts)."""

    def ascent_candidates(self, theta: np.ndarray, dC: np.ndarray, steps: Sequence[float]) -> list[np.ndarray]:
        """Parameters of C + t v v^T (v: steepest PSD ascent direction of dC) for each step t.

        With C = L L^T a collapsed direction (a zero column of L) is a stationary point in
        ``theta`` although the likelihood still rises along v v^T in covariance space; these
        candidates let the optimiser step out. Structures without the problem return [].
        """
        return []


class _Factored(Structure):
    """Shared ascent step for structures of the form C = L L^T."""

    def ascent_candidates(self, theta: np.ndarray, dC: np.ndarray, steps: Sequence[float]) -> list[np.ndarray]:
        w, Q = np.linalg.eigh(dC)
        if w[-1] <= 0:
            return []
        v = Q[:, -1]
        C = self.cov(theta)
        return [self.from_cov(C + t * np.outer(v, v)) for t in steps]


class FreeformSignal(_Factored):
    """C = L L^T, L lower triangular with a free (signed) diagonal: any PSD matrix, singular allowed."""

    name = "freeform"

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self._tril = np.tril_indices(dim)

    @property
    def n_params(self) -> int:
        return self.dim * (self.dim + 1) // 2

    def factor(self, theta: np.ndarray) -> np.ndarray:
        L = np.zeros((self.dim, self.dim))
        L[self._tril] = theta
        return L

    def cov(self, theta: np.ndarray) -> np.ndarray:
        L = self.factor(theta)
        return L @ L.T

    def grad(self, theta: np.ndarray, dC: np.ndarray) -> np.ndarray:
        return np.asarray((2.0 * dC @ self.factor(theta))[self._tril])

    def from_cov(self, C: np.ndarray) -> np.ndarray:
        return _lower_from_psd(C)[self._tril]


class LowRankSignal(_Factored):
    """C = L L^T with L a free P x k matrix: PSD of rank at most k."""

    name = "lowrank_k"

    def __init__(self, dim: int, rank: int) -> None:
        super().__init__(dim)
        self.rank = int(rank)

    @property
    def n_params(self) -> int:
        return self.dim * self.rank

    def factor(self, theta: np.ndarray) -> np.ndarray:
        return theta.reshape(self.dim, self.rank)

    def cov(self, theta: np.ndarray) -> np.ndarray:
        L = self.factor(theta)
        return L @ L.T

    def grad(self, theta: np.ndarray, dC: np.ndarray) -> np.ndarray:
        return np.asarray((2.0 * dC @ self.factor(theta)).ravel())

    def from_cov(self, C: np.ndarray) -> np.ndarray:
        # best rank-k PSD approximation (Eckart-Young on the PSD part)
        w, Q = np.linalg.eigh((C + C.T) / 2)
        top = np.argsort(w)[::-1][: self.rank]
        return np.asarray((Q[:, top] * np.sqrt(np.clip(w[top], 0.0, None))).ravel())


class DiagonalCov(Structure):
    """C = diag(exp(theta)): independent conditions with their own variances."""

    name = "diagonal"

    @property
    def n_params(self) -> int:
        return self.dim

    def cov(self, theta: np.ndarray) -> np.ndarray:
        return np.diag(np.exp(theta))

    def factor(self, theta: np.ndarray) -> np.ndarray:
        return np.diag(np.exp(theta / 2))

    def grad(self, theta: np.ndarray, dC: np.ndarray) -> np.ndarray:
        return np.asarray(np.diag(dC) * np.exp(theta))

    def from_cov(self, C: np.ndarray) -> np.ndarray:
        d = np.diag(C).copy()
        floor = max(float(np.mean(np.abs(d))), np.finfo(float).tiny) * 1e-6  # start value only
        return np.asarray(np.log(np.maximum(d, floor)))


class IdentityCov(Structure):
    """C = exp(theta) I: one shared variance."""

    name = "identity"

    @property
    def n_params(self) -> int:
        return 1

    def cov(self, theta: np.ndarray) -> np.ndarray:
        return float(np.exp(theta[0])) * np.eye(self.dim)

    def factor(self, theta: np.ndarray) -> np.ndarray:
        return float(np.exp(theta[0] / 2)) * np.eye(self.dim)

    def grad(self, theta: np.ndarray, dC: np.ndarray) -> np.ndarray:
        return np.array([np.trace(dC) * np.exp(theta[0])])

    def from_cov(self, C: np.ndarray) -> np.ndarray:
        m = float(np.trace(C)) / self.dim
        return np.array([np.log(m if m > 0 else 1.0)])


class BlockSignal(Structure):
    """C = Z B Z^T + exp(tau) I: block-constant covariance plus a shared nugget.

    Z is the P x k indicator of the condition groups; B = L_B L_B^T (k x k, lower-triangular
    L_B with a free diagonal) is the covariance between and within groups. Off-diagonal
    entries are constant within each pair of groups, diagonal entries within each group.
    """

    name = "block"

    def __init__(self, dim: int, labels: np.ndarray) -> None:
        super().__init__(dim)
        _, codes = np.unique(labels, return_inverse=True)
        self.n_blocks = int(codes.max()) + 1
        self.Z = np.zeros((dim, self.n_blocks))
        self.Z[np.arange(dim), codes] = 1.0
        self._tril = np.tril_indices(self.n_blocks)
        self._m = len(self._tril[0])

    @property
    def n_params(self) -> int:
        return self._m + 1

    def _LB(self, theta: np.ndarray) -> np.ndarray:
        L = np.zeros((self.n_blocks, self.n_blocks))
        L[self._tril] = theta[: self._m]
        return L

    def cov(self, theta: np.ndarray) -> np.ndarray:
        ZL = self.Z @ self._LB(theta)
        return ZL @ ZL.T + float(np.exp(theta[-1])) * np.eye(self.dim)

    def grad(self, theta: np.ndarray, dC: np.ndarray) -> np.ndarray:
        gB = self.Z.T @ dC @ self.Z
        g = np.empty(self.n_params)
        g[: self._m] = (2.0 * gB @ self._LB(theta))[self._tril]
        g[-1] = np.trace(dC) * np.exp(theta[-1])
        return g

    def _block_means(self, C: np.ndarray) -> tuple[np.ndarray, float]:
        n = self.Z.sum(0)
        off = C - np.diag(np.diag(C))
        pairs = np.outer(n, n) - np.diag(n)
        sums = self.Z.T @ off @ self.Z
        B = np.where(pairs > 0, sums / np.maximum(pairs, 1), 0.0)
        diag_mean = (self.Z.T @ np.diag(C)) / n
        single = n == 1  # a group of one has no off-diagonal pair: put its variance in B
        B[single, single] = diag_mean[single]
        nugget = float(np.mean(np.diag(C) - np.diag(self.Z @ B @ self.Z.T)))
        return B, nugget

    def from_cov(self, C: np.ndarray) -> np.ndarray:
        B, nugget = self._block_means(C)
        floor = 1e-3 * max(float(np.trace(C)) / self.dim, np.finfo(float).tiny)  # start value only
        theta = np.empty(self.n_params)
        theta[: self._m] = _lower_from_psd(_psd_part(B))[self._tril]
        theta[-1] = np.log(max(nugget, floor))
        return theta

    def ascent_candidates(self, theta: np.ndarray, dC: np.ndarray, steps: Sequence[float]) -> list[np.ndarray]:
        gB = self.Z.T @ dC @ self.Z
        w, Q = np.linalg.eigh(gB)
        if w[-1] <= 0:
            return []
        v = Q[:, -1]
        LB = self._LB(theta)
        out = []
        for t in steps:
            new = theta.copy()
            new[: self._m] = _lower_from_psd(LB @ LB.T + t * np.outer(v, v))[self._tril]
            out.append(new)
        return out


class FreeformNoise(Structure):
    """C = L L^T, L lower triangular with a positive diagonal exp(theta_d): positive definite."""

    name = "freeform"

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self._tril = np.tril_indices(dim)
        self._diag_pos = np.flatnonzero(self._tril[0] == self._tril[1])

    @property
    def n_params(self) -> int:
        return self.dim * (self.dim + 1) // 2

    def factor(self, theta: np.ndarray) -> np.ndarray:
        L = np.zeros((self.dim, self.dim))
        vals = theta.copy()
        vals[self._diag_pos] = np.exp(theta[self._diag_pos])
        L[self._tril] = vals
        return L

    def cov(self, theta: np.ndarray) -> np.ndarray:
        L = self.factor(theta)
        return L @ L.T

    def grad(self, theta: np.ndarray, dC: np.ndarray) -> np.ndarray:
        g = np.asarray((2.0 * dC @ self.factor(theta))[self._tril])
        g[self._diag_pos] *= np.exp(theta[self._diag_pos])
        return g

    def from_cov(self, C: np.ndarray) -> np.ndarray:
        w, Q = np.linalg.eigh((C + C.T) / 2)
        floor = 1e-6 * max(float(np.mean(np.abs(w))), np.finfo(float).tiny)  # start value only
        L = np.linalg.cholesky((Q * np.maximum(w, floor)) @ Q.T)
        theta = L[self._tril].copy()
        theta[self._diag_pos] = np.log(theta[self._diag_pos])
        return np.asarray(theta)


SIGNAL_STRUCTURES = ("freeform", "lowrank_k", "diagonal", "identity", "block")
NOISE_STRUCTURES = ("freeform", "diagonal", "identity")


def block_labels(blocks: Sequence[object], dim: int) -> np.ndarray:
    """Group label per condition from ``blocks``: P labels, or group sizes summing to P."""
    b = list(blocks)
    if len(b) == dim:
        return np.asarray([str(x) for x in b])
    sizes = [int(x) for x in b if isinstance(x, (int, np.integer)) and not isinstance(x, bool) and x > 0]
    if b and len(sizes) == len(b) and sum(sizes) == dim:
        return np.repeat(np.arange(len(sizes)), sizes).astype(str)
    raise LMMInputError(
        f"blocks must be {dim} group labels (one per condition) or positive group sizes summing to {dim}; got {b!r}"
    )


def make_signal(name: str, dim: int, *, rank: int | None = None, blocks: Sequence[object] | None = None) -> Structure:
    if name == "freeform":
        return FreeformSignal(dim)
    if name == "lowrank_k":
        if rank is None:
            raise LMMInputError("signal='lowrank_k' needs rank=k (1 <= k <= number of conditions)")
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 1 <= rank <= dim:
            raise LMMInputError(
                f"rank must be an integer with 1 <= rank <= number of conditions P = {dim}; got {rank!r}"
            )
        return LowRankSignal(dim, int(rank))
    if name == "diagonal":
        return DiagonalCov(dim)
    if name == "identity":
        return IdentityCov(dim)
    if name == "block":
        if blocks is None:
            raise LMMInputError("signal='block' needs blocks= (P group labels or group sizes summing to P)")
        return BlockSignal(dim, block_labels(blocks, dim))
    raise LMMInputError(f"unknown signal structure {name!r}; expected one of {SIGNAL_STRUCTURES}")


def make_noise(name: str, dim: int) -> Structure:
    if name == "freeform":
        return FreeformNoise(dim)
    if name == "diagonal":
        return DiagonalCov(dim)
    if name == "identity":
        return IdentityCov(dim)
    raise LMMInputError(f"unknown noise structure {name!r}; expected one of {NOISE_STRUCTURES}")


def noise_factor(structure: Structure, theta: np.ndarray) -> np.ndarray:
    """Lower-triangular L1 with C1 = L1 L1^T for a noise structure."""
    factor = getattr(structure, "factor", None)
    if factor is None:
        raise TypeError(f"{structure.name} is not a noise structure")
    return np.asarray(factor(theta))


class Preconditioned(Structure):
    """C = A C_w A^T with C_w from ``inner``: the same family when ``inner`` is closed under
    congruence by A (freeform, low rank: any A; diagonal: diagonal A). Optimising in the
    whitened coordinates C_w (A from the sample covariance) conditions L-BFGS far better when
    the conditions' scales differ by orders of magnitude (nearly singular noise).
    """

    def __init__(self, inner: Structure, A: np.ndarray) -> None:
        super().__init__(inner.dim)
        self.inner = inner
        self.name = inner.name
        self.A = A
        self.A_inv = np.linalg.inv(A)

    @property
    def n_params(self) -> int:
        return self.inner.n_params

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
    congruent = {"freeform", "lowrank_k"}
    if signal.name in congruent and noise.name == "freeform":
        w, Q = np.linalg.eigh(S)
        if w[0] > 1e-12 * w[-1]:
            return np.asarray(np.linalg.cholesky(S))
    if signal.name in congruent | {"diagonal"} and noise.name in {"freeform", "diagonal"}:
        d = np.diag(S)
        if np.all(d > 0):
            return np.diag(np.sqrt(d))
    return None
