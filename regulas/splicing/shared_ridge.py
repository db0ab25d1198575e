"""StandardScaler → Ridge for the fully observed events of a block, from the split's shared
factorisations.

Every block of events of one outer split trains on the same rows, so the same training
sets: the outer training part (the refit) and the inner KFold folds over it.
:func:`regulas.splicing.missing_ridge.factorize_shared` standardises each set B once
(x̃ = (x - μ_B) / σ_B, columns constant on B zeroed) and eigendecomposes its Gram,
K_B = X̃_Bᵀ X̃_B = Q diag(λ) Qᵀ ``(p, p)``. For the events observed on every row of B (their
StandardScaler is B's), scikit-learn's Ridge(α) with an intercept is, for all events and
every α at once::

    Yc = Y_B - ȳ_B                                    (n_B × m)
    W(α) = Q diag(1 / (λ + α)) Qᵀ X̃_Bᵀ Yc             (p × m: Ridge's coef_ on x̃)
    Ŷ(x) = ȳ_B + (x̃ - m_B)ᵀ W(α)                      (m_B: mean of x̃ on B, ~0)

so a block pays two products per set (X̃_Bᵀ Yc, then Qᵀ), the inner folds' errors at every
α from one ``p × p`` product per fold (:class:`AlphaPath`) and the test predictions at the
chosen α; no factorisation (:func:`factorize_split` does those once per split). The Gram route solves the same normal equations as
scikit-learn's Ridge (its ``cholesky`` solver on dense X), so it is as exact as that
reference: predictions agree within 1e-8 (``tests/test_shared_ridge.py``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse

from regulas.splicing.block import BlockWork
from regulas.splicing.importance import permutation_scores
from regulas.splicing.metrics import validation_scores
from regulas.splicing.missing_ridge import SharedSet, SharedSets, factorize_shared
from regulas.splicing.ridge_batch import FittedLinear, RidgeSetup
from regulas.splicing.selection import best_candidate, inner_splits


class _Sums:
    """The training part's cross-products, from which every set's right-hand sides follow.

    X and Y are centred on the whole training part first (x̄, ȳ), so that a set's own
    centring is a small correction, not a cancellation: with R = training rows not in B,
    Xcᵀ_B Yc_B = S - Xc_Rᵀ Yc_R - (Σ_B xc)(Σ_B yc)ᵀ / n_B. One product with all training
    rows, then one with the k-th fold's validation rows per fold (instead of one with each
    fold's training rows).
    """

    def __init__(self, X_train: np.ndarray, Y_train: np.ndarray) -> None:
        self.x_mean = X_train.mean(axis=0)
        self.y_mean = Y_train.mean(axis=0)
        self.Xc = X_train - self.x_mean
        self.Yc = Y_train - self.y_mean
        self.S = self.Xc.T @ self.Yc  # (p, m)

    def without(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(X_Bᵀ (Y_B - ȳ_B) ``(p, m)``, ȳ_B ``(m,)``) for B = the training rows except ``rows``."""
        if len(rows) == 0:
            return self.S, self.y_mean
        n_b = len(self.Xc) - len(rows)
        Xr, Yr = self.Xc[rows], self.Yc[rows]
        sx, sy = -Xr.sum(axis=0), -Yr.sum(axis=0)  # sums over B: the whole part sums to 0
        return self.S - Xr.T @ Yr - np.outer(sx, sy / n_b), self.y_mean + sy / n_b


class _SetFit:
    """One shared set's solution for a group of events: ``filtered(α)``."""

    def __init__(self, s: SharedSet, XtY: np.ndarray, y_mean: np.ndarray) -> None:
        self.s = s
        self.y_mean = y_mean
        # x̃ = (x - μ_B) / σ_B: X̃_Bᵀ Yc = diag(1/σ_B) X_Bᵀ Yc (μ_B drops out: Σ Yc = 0), constants 0
        rhs = XtY / s.scale[:, None]
        rhs[s.constant] = 0.0
        self.Z = s.evecs.T @ rhs  # (p, m)

    def filtered(self, alpha: float, cols: np.ndarray | slice = slice(None)) -> np.ndarray:
        """diag(1 / (λ + α)) Qᵀ X̃ᵀ Yc for the events ``cols``: ``(p, m_cols)``."""
        return np.asarray(self.Z[:, cols] / (self.s.evals + alpha)[:, None])


def rotate(s: SharedSet, X_new: np.ndarray) -> np.ndarray:
    """x̃ Q for new rows ``(n_new, p)``, x̃ standardised on B: shared by every α and event
    (B's own mean of x̃ is 0 up to rounding, as the Ridge scikit-learn fits after
    StandardScaler takes it); x̃ Q = x (Q / σ_B) - (μ_B / σ_B) Q, constant columns left out."""
    Q = s.evecs / s.scale[:, None]
    Q[s.constant] = 0.0
    return np.asarray(X_new @ Q - s.mean @ Q)


#: Eigenvalue pairs closer than this, relative to λ + α_max, are summed directly in
#: :class:`AlphaPath` (the partial fractions would amplify rounding by (λ + α) / gap).
CLOSE_GAP = 1e-3
#: More close pairs than this many per feature: the fold's scores come from predictions.
MAX_CLOSE_PER_FEATURE = 32


@dataclass(frozen=True)
class AlphaPath:
    """A fold's validation error at every α without a prediction per α (squared error).

    With A = x̃ Q the validation rows in the fold's basis ``(n_val, p)``, λ its eigenvalues,
    z = Qᵀ X̃ᵀ yc and v = 1 / (λ + α), an event's validation residual is
    r(α) = y_v - ȳ - A (v ∘ z), so with G = AᵀA and b = Aᵀ (y_v - ȳ)::

        ‖r(α)‖² = ‖y_v - ȳ‖² - 2 Σ_r v_r b_r z_r + Σ_r G_rr v_r² z_r² + Σ_{r≠s} G_rs v_r v_s z_r z_s

    and, as v_r v_s = (v_r - v_s) / (λ_s - λ_r), the last sum is 2 Σ_r v_r z_r (H z)_r with
    H_rs = G_rs / (λ_s - λ_r): one ``p × p`` product per fold and block serves every α
    (instead of one ``n_val × p`` product per α). Pairs with close eigenvalues (where the
    division would amplify rounding) are left out of H and summed directly.

    gram_diag ``(p,)``; coupling H ``(p, p)``; close: G on the close pairs, both orders, as a
    sparse ``(p, p)`` matrix.
    """

    gram_diag: np.ndarray
    coupling: np.ndarray
    close: scipy.sparse.csr_array

    @property
    def n_close(self) -> int:
        """The close pairs summed directly (r < s)."""
        return int(self.close.nnz) // 2

    @classmethod
    def of(cls, A: np.ndarray, evals: np.ndarray, alpha_max: float) -> AlphaPath | None:
        G = A.T @ A
        gap = evals[None, :] - evals[:, None]  # λ_s - λ_r at [r, s]
        scale = np.maximum.outer(evals, evals) + alpha_max
        close = np.abs(gap) <= CLOSE_GAP * scale
        np.fill_diagonal(close, True)
        rows, cols = np.nonzero(np.triu(close, 1))
        if len(rows) > MAX_CLOSE_PER_FEATURE * len(evals):
            return None
        with np.errstate(divide="ignore", invalid="ignore"):
            H = np.where(close, 0.0, G / np.where(close, 1.0, gap))
        p = len(evals)
        both = (np.concatenate([G[rows, cols]] * 2), (np.concatenate([rows, cols]), np.concatenate([cols, rows])))
        return cls(np.diag(G).copy(), H, scipy.sparse.csr_array(both, shape=(p, p)))

    def sse(self, A: np.ndarray, Z: np.ndarray, Yc_val: np.ndarray, evals: np.ndarray, alphas: np.ndarray) -> np.ndarray:
        """Sum of squared validation residuals ``(n_alphas, m)`` for Z = Qᵀ X̃ᵀ yc ``(p, m)`` and
        the validation targets minus the training mean ``(n_val, m)``."""
        c = np.einsum("ij,ij->j", Yc_val, Yc_val)
        bz = (A.T @ Yc_val) * Z
        U = Z * (self.coupling @ Z)
        gz2 = self.gram_diag[:, None] * Z * Z
        out = np.empty((len(alphas), Z.shape[1]))
        for i, alpha in enumerate(alphas.tolist()):
            v = 1.0 / (evals + alpha)
            vz = v[:, None] * Z
            pairs = np.einsum("ij,ij->j", vz, self.close @ vz)  # Σ_{r≠s close} G_rs v_r z_r v_s z_s
            out[i] = c - 2.0 * (v @ bz) + (v * v) @ gz2 + 2.0 * (v @ U) + pairs
        return np.maximum(out, 0.0)


@dataclass(frozen=True)
class SplitFactors:
    """What every block of one outer split shares: the factorisations of its training sets
    and its rows rotated into their bases.

    sets: :func:`regulas.splicing.missing_ridge.factorize_shared` of the training part;
    val: per inner fold, x̃ Q of its validation rows ``(n_val_k, p)``; test: x̃ Q of the
    split's test rows under the refit set ``(n_test, p)``; paths: per inner fold, its
    :class:`AlphaPath` (None where its close eigenvalue pairs are too many).
    """

    sets: SharedSets
    val: list[np.ndarray]
    test: np.ndarray
    paths: list[AlphaPath | None]


def factorize_split(X_train: np.ndarray, X_test: np.ndarray, cv: Any, alphas: np.ndarray) -> SplitFactors:
    """The shared work of one outer split (training rows X_train ``(n, p)``, test rows
    X_test ``(n_test, p)``, inner splitter ``cv``, the grid's ``alphas``): one Gram, one
    ``p × p`` eigendecomposition and one rotation per training set, and each fold's α path."""
    sets = factorize_shared(X_train, cv)
    splits = inner_splits(cv, len(X_train))
    assert splits is not None  # factorize_shared raised otherwise
    val = [rotate(s, X_train[va]) for (_, va), s in zip(splits, sets.folds)]
    alpha_max = float(np.max(alphas))
    paths = [AlphaPath.of(A, s.evals, alpha_max) for A, s in zip(val, sets.folds)]
    return SplitFactors(sets, val, rotate(sets.refit, X_test), paths)


#: scorings the α path gives (from the sum of squared residuals)
SQUARED_SCORINGS = ("neg_mean_squared_error", "neg_root_mean_squared_error")


def fit_shared_group(b: BlockWork, setup: RidgeSetup, split: SplitFactors, train: np.ndarray, events: np.ndarray) -> None:
    """Fit the ``events`` observed on every row of ``train`` (the outer training part) by
    nested selection over ``setup.alphas``, from ``split`` (the split's factorisations)."""
    if len(events) == 0:
        return
    t0 = time.perf_counter()
    shared = split.sets
    X_train, Y_train = b.X[train], b.Y[np.ix_(train, events)]
    splits = inner_splits(b.cv, len(train))
    if (splits is None or len(splits) != len(shared.folds) or shared.n != len(train)
            or len(split.test) != len(b.test)):
        raise ValueError(f"the shared factorisations are of {shared.n} training rows, {len(shared.folds)} folds and "
                         f"{len(split.test)} test rows; this split has {len(train)} training and {len(b.test)} test rows")
    alphas = setup.alphas
    sums = _Sums(X_train, Y_train)
    fold_scores = np.empty((len(splits), len(alphas), len(events)))
    for k, ((_, va), s) in enumerate(zip(splits, shared.folds)):
        fit = _SetFit(s, *sums.without(va))
        A = split.val[k]
        Y_val = Y_train[va]
        path = split.paths[k]
        if path is not None and b.scoring in SQUARED_SCORINGS:
            mse = path.sse(A, fit.Z, Y_val - fit.y_mean, s.evals, alphas) / len(va)
            fold_scores[k] = -np.sqrt(mse) if b.scoring == "neg_root_mean_squared_error" else -mse
            continue
        for i, alpha in enumerate(alphas.tolist()):
            pred = A @ fit.filtered(alpha)
            pred += fit.y_mean
            fold_scores[k, i] = validation_scores(b.scoring, Y_val, pred[None])[0]
    best = best_candidate(fold_scores)
    s = shared.refit
    fit = _SetFit(s, *sums.without(np.zeros(0, dtype=np.intp)))
    A = split.test
    kept = []
    for c in np.unique(best).tolist():
        cols = np.flatnonzero(best == c)
        M = fit.filtered(float(alphas[c]), cols)
        b.pred[0][:, events[cols]] = A @ M + fit.y_mean[cols]
        W = s.evecs @ M  # Ridge's coef_ on the standardised features
        W[s.constant] = 0.0  # exactly (the eigenvectors mix them in at rounding level)
        b.set_importance("coef", 0, events[cols], W)
        for j in cols.tolist():
            b.params[0][int(events[j])] = dict(b.candidates[c])
        if b.permutation is not None:
            kept.append((cols, W))
    # One shared computation: its time is split evenly over the events, as in the batched path.
    b.fit_time_s[0, events] = (time.perf_counter() - t0) / len(events)
    options = b.permutation
    if options is None:
        return
    for cols, W in kept:
        coef = W / s.scale[:, None]  # on the raw features: x̃ W = x (W / σ) - μ (W / σ)
        intercept = fit.y_mean[cols] - s.mean @ coef
        for j, e in enumerate(events[cols].tolist()):
            obs = b.test_rows(e)
            if len(obs) >= 2:
                model = FittedLinear([], coef[:, j], float(intercept[j]))
                values = permutation_scores(
                    model, b.X[b.test[obs]], b.Y[b.test[obs], e], options, scoring=b.scoring, seed=b.seed
                )
                b.set_importance("permutation", 0, e, values)
