"""The registry of LMM covariance structures for the signal (C0) and noise (C1), P x P.

Adding a structure is one class: subclass :class:`Structure`, declare its ``name``, ``roles``,
``params`` and solver capabilities, implement the parametrisation and decorate it with
:func:`register`. Everything else (``KronSumLMM``, regNet's config checks, error messages)
looks structures up here by name.

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
from collections.abc import Sequence
from typing import Any, Literal, TypeVar

import numpy as np

from regulas.lmm.validation import LMMInputError, check_choice

Role = Literal["signal", "noise"]
ROLES: tuple[Role, ...] = ("signal", "noise")
Congruence = Literal["any", "diagonal"] | None
_S = TypeVar("_S", bound=type["Structure"])
_REGISTRY: dict[Role, dict[str, type[Structure]]] = {role: {} for role in ROLES}
#: the (signal, noise) pairs the structured path (:mod:`regulas.lmm.structured`) fits without
#: any P x P matrix; every other pair needs the general path's O(P^3) evaluations
STRUCTURED_PAIRS: frozenset[tuple[str, str]] = frozenset(
    [(s, n) for s in ("lowrank_k", "diagonal", "identity") for n in ("diagonal", "identity")] + [("lowrank_k", "factor")]
)


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
    """A family of P x P covariances indexed by an unconstrained parameter vector.

    Subclasses declare, as class attributes, what the registry and the solvers need to know;
    :func:`register` adds one under ``name`` for each of its ``roles``.
    """

    #: the name a user gives (``KronSumLMM(signal=name)``, ``regnet.methods[].signal``)
    name: str = ""
    #: which covariance it can be: "signal" (C0, PSD, may be singular), "noise" (C1, PD;
    #: the class then has ``factor(theta)``, a lower-triangular L1 with C1 = L1 L1^T)
    roles: tuple[Role, ...] = ()
    #: the keyword options :meth:`build` needs, e.g. ("rank",)
    params: tuple[str, ...] = ()
    #: the matrices A for which C -> A C A^T stays in the family ("any", "diagonal" or None);
    #: decides which preconditioner the L-BFGS path may use (:func:`regulas.lmm.covariance.preconditioner`)
    congruence: Congruence = None
    #: covariance-space Fisher scoring (:mod:`regulas.lmm.scoring`) fits this structure: as C0,
    #: any PSD matrix of rank <= ``scoring_rank``; as C1, any PD matrix. The LMM uses that solver
    #: when both structures allow it, L-BFGS-B on ``theta`` otherwise
    fisher_scoring: bool = False
    #: C0 under Fisher scoring: a start's screening run stops below this gain (log-likelihood
    #: units) or after this many steps
    scoring_screen: tuple[float, int] = (0.0, 0)
    #: L-BFGS path: collapsed directions of ``theta`` are null directions of C, so the escape
    #: step is tried only when the gradient points into C's null space
    escape_only_on_null_space: bool = True

    def __init__(self, dim: int) -> None:
        self.dim = int(dim)

    @classmethod
    def build(cls, dim: int, **params: Any) -> Structure:
        """The structure at P = ``dim`` from the user's options (only those in ``params``)."""
        return cls(dim)

    @property
    def scoring_rank(self) -> int | None:
        """Largest rank of C0 under Fisher scoring (None: P)."""
        return None

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


def register(cls: _S) -> _S:
    """Class decorator: make ``cls`` available under ``cls.name`` for each of ``cls.roles``."""
    if not cls.name or not cls.roles or any(role not in ROLES for role in cls.roles):
        raise TypeError(f"{cls.__name__} must declare a name and roles out of {ROLES}")
    for role in cls.roles:
        known = _REGISTRY[role].get(cls.name)
        if known is not None and known is not cls:
            raise TypeError(f"{role} structure {cls.name!r} is already registered ({known.__name__})")
        _REGISTRY[role][cls.name] = cls
    return cls


def structure_names(role: Role) -> tuple[str, ...]:
    """Names of the structures that can play ``role``, in registration order."""
    return tuple(_REGISTRY[role])


def structure_class(role: Role, name: str) -> type[Structure]:
    """The class registered as ``name`` for ``role``; LMMInputError naming the allowed set."""
    check_choice(f"{role} structure", name, structure_names(role))
    return _REGISTRY[role][name]


def make_structure(role: Role, name: str, dim: int, **options: Any) -> Structure:
    """The structure ``name`` for ``role`` at P = ``dim``; ``options`` it does not declare are ignored."""
    cls = structure_class(role, name)
    return cls.build(dim, **{key: options.get(key) for key in cls.params})


class _Factored(Structure):
    """Shared ascent step for structures of the form C = L L^T."""

    def ascent_candidates(self, theta: np.ndarray, dC: np.ndarray, steps: Sequence[float]) -> list[np.ndarray]:
        w, Q = np.linalg.eigh(dC)
        if w[-1] <= 0:
            return []
        v = Q[:, -1]
        C = self.cov(theta)
        return [self.from_cov(C + t * np.outer(v, v)) for t in steps]


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



@register
class FreeformSignal(_Factored):
    """C = L L^T, L lower triangular with a free (signed) diagonal: any PSD matrix, singular allowed."""

    name = "freeform"
    roles = ("signal",)
    congruence = "any"
    fisher_scoring = True
    # screens run longer: the screened point's rank picks the face the polish works on
    scoring_screen = (1e-2, 10)

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


@register
class LowRankSignal(_Factored):
    """C = L L^T with L a free P x k matrix: PSD of rank at most k."""

    name = "lowrank_k"
    roles = ("signal",)
    params = ("rank",)
    congruence = "any"
    fisher_scoring = True
    scoring_screen = (1e-1, 3)

    def __init__(self, dim: int, rank: int) -> None:
        super().__init__(dim)
        self.rank = int(rank)

    @classmethod
    def build(cls, dim: int, **params: Any) -> Structure:
        rank = params.get("rank")
        if rank is None:
            raise LMMInputError("signal='lowrank_k' needs rank=k (1 <= k <= number of conditions)")
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 1 <= rank <= dim:
            raise LMMInputError(
                f"rank must be an integer with 1 <= rank <= number of conditions P = {dim}; got {rank!r}"
            )
        return cls(dim, int(rank))

    @property
    def n_params(self) -> int:
        return self.dim * self.rank

    @property
    def scoring_rank(self) -> int | None:
        return self.rank

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


@register
class FreeformNoise(Structure):
    """C = L L^T, L lower triangular with a positive diagonal exp(theta_d): positive definite."""

    name = "freeform"
    roles = ("noise",)
    congruence = "any"
    fisher_scoring = True

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


@register
class DiagonalCov(Structure):
    """C = diag(exp(theta)): independent conditions with their own variances."""

    name = "diagonal"
    roles = ("signal", "noise")
    congruence = "diagonal"

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


@register
class IdentityCov(Structure):
    """C = exp(theta) I: one shared variance."""

    name = "identity"
    roles = ("signal", "noise")

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


@register
class BlockSignal(Structure):
    """C = Z B Z^T + exp(tau) I: block-constant covariance plus a shared nugget.

    Z is the P x k indicator of the condition groups; B = L_B L_B^T (k x k, lower-triangular
    L_B with a free diagonal) is the covariance between and within groups. Off-diagonal
    entries are constant within each pair of groups, diagonal entries within each group.
    """

    name = "block"
    roles = ("signal",)
    params = ("blocks",)
    # the nugget keeps C0 regular while B collapses: try the ascent step at every optimum
    escape_only_on_null_space = False

    def __init__(self, dim: int, labels: np.ndarray) -> None:
        super().__init__(dim)
        _, codes = np.unique(labels, return_inverse=True)
        self.n_blocks = int(codes.max()) + 1
        self.Z = np.zeros((dim, self.n_blocks))
        self.Z[np.arange(dim), codes] = 1.0
        self._tril = np.tril_indices(self.n_blocks)
        self._m = len(self._tril[0])

    @classmethod
    def build(cls, dim: int, **params: Any) -> Structure:
        blocks = params.get("blocks")
        if blocks is None:
            raise LMMInputError("signal='block' needs blocks= (P group labels or group sizes summing to P)")
        return cls(dim, block_labels(blocks, dim))

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


@register
class FactorNoise(Structure):
    """C = diag(exp(theta_d)) + H H^T with H a free P x q matrix (q = ``noise_rank``): a factor
    model of the conditions, positive definite. theta = [theta_d (P), vec(H) (P q, row-major)]."""

    name = "factor"
    roles = ("noise",)
    params = ("noise_rank",)
    congruence = "diagonal"

    def __init__(self, dim: int, noise_rank: int) -> None:
        super().__init__(dim)
        self.noise_rank = int(noise_rank)

    @classmethod
    def build(cls, dim: int, **params: Any) -> Structure:
        return cls(dim, check_noise_rank(params.get("noise_rank"), dim))

    @property
    def n_params(self) -> int:
        return self.dim * (1 + self.noise_rank)

    def split(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(d, H): the diagonal (P) and the factor (P x q)."""
        return np.exp(theta[: self.dim]), theta[self.dim :].reshape(self.dim, self.noise_rank)

    def cov(self, theta: np.ndarray) -> np.ndarray:
        d, H = self.split(theta)
        return np.diag(d) + H @ H.T

    def factor(self, theta: np.ndarray) -> np.ndarray:
        return np.asarray(np.linalg.cholesky(self.cov(theta)))

    def grad(self, theta: np.ndarray, dC: np.ndarray) -> np.ndarray:
        d, H = self.split(theta)
        return np.concatenate([np.diag(dC) * d, (2.0 * dC @ H).ravel()])

    def from_cov(self, C: np.ndarray) -> np.ndarray:
        # principal-factor start: the top q eigen-directions above the mean of the others
        w, Q = np.linalg.eigh((C + C.T) / 2)
        q = self.noise_rank
        rest = float(np.mean(w[:-q])) if w.size > q else 0.0
        H = Q[:, -q:] * np.sqrt(np.clip(w[-q:] - rest, 0.0, None))
        d = np.diag(C) - (H**2).sum(axis=1)
        floor = 1e-3 * max(float(np.mean(np.abs(np.diag(C)))), np.finfo(float).tiny)  # start value only
        return np.concatenate([np.log(np.maximum(d, floor)), H.ravel()])


def check_noise_rank(noise_rank: Any, dim: int) -> int:
    """``noise_rank`` as an int with 1 <= q < P (None: 1), or LMMInputError naming the value."""
    if noise_rank is None:
        return 1  # one common factor unless told otherwise
    if isinstance(noise_rank, bool) or not isinstance(noise_rank, (int, np.integer)) or not 1 <= noise_rank < dim:
        raise LMMInputError(
            f"noise_rank must be an integer with 1 <= noise_rank < number of conditions P = {dim}; got {noise_rank!r}"
        )
    return int(noise_rank)
