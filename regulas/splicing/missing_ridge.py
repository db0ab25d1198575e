"""StandardScaler → Ridge with nested α selection for events with missing PSI, exactly,
without a factorization per event.

Per event j (a column of Y ``(n, m)``, NaN = missing) and training set T (the event's
observed training rows, or one of its inner KFold training folds over those rows),
scikit-learn's ``Pipeline([StandardScaler(), Ridge(α)])`` fits, with the event's own column
means μ_T and scales σ_T (1 where a column is constant on T)::

    Z = (X_T - 1 μ_Tᵀ) diag(1/σ_T)                      (n_T × p)
    (ZᵀZ + α I) w = Zᵀ (y_T - ȳ_T)                      (p,)
    ŷ(x) = ȳ_T + ((x - μ_T) / σ_T)ᵀ w

GridSearchCV scores every α on the event's own inner folds (KFold over its n_j rows, so
the fold boundaries move with its missing pattern), picks the first best mean score and
refits on all n_j rows.

How it is solved. Every training set T of an event is compared with a *shared* one B (all
training rows for the refit; fold k of the same splitter over all n training rows for inner
fold k). B is standardised once (μ_B, σ_B), its Gram K_B = X_Bᵀ X_B (standardised) is
eigendecomposed once, K_B = Q diag(λ) Qᵀ, and that serves every event. In B's coordinates
(x̃ = (x - μ_B) / σ_B) the event's Gram is a low-rank update of K_B::

    X̃_Tᵀ X̃_T = K_B - X̃_Rᵀ X̃_R + X̃_Aᵀ X̃_A             (R = B \\ T removed, A = T \\ B added)
    C_T = X̃_Tᵀ X̃_T - n_T m mᵀ                          (m: mean of x̃ on T)

With S = diag(σ_B / σ_T), Z = (X̃_T - 1 mᵀ) S, and w = S⁻¹ v the event's system becomes::

    (C_T + α S⁻²) v = X̃_Tᵀ (y_T - ȳ_T)                ŷ(x) = ȳ_T + (x̃ - m)ᵀ v

so the event's own scaling only reweights the penalty (S⁻² ≈ I): put on ZᵀZ instead, it
would perturb the ill-conditioned Gram itself and cost many more iterations. Columns
constant on T get v = 0 (StandardScaler's scale 1, Ridge's coefficient 0). The system is
solved by preconditioned conjugate gradients, one column per (event, α), the columns of a
chunk of events in lockstep so the products with K_B and Q are matrix-matrix; the removed
and added rows enter as ``(k, p)`` products per event. Preconditioners:

* ``"woodbury"`` (default): (C_T + αI)⁻¹ exactly, the shared Q diag(1/(λ + α)) Qᵀ with the
  event's k rows and mean term put back by Woodbury (G = [X̃_Δ; √n_T m] Q once per event,
  a (k + 1)² capacitance per column). The preconditioned matrix is I + O(‖S⁻² - I‖), so
  3–6 iterations whatever the conditioning (also when n_T ≈ p).
* ``"shared"``: (K_B + αI)⁻¹ = Q diag(1/(λ + α)) Qᵀ alone, applied through one Cholesky
  factor of K_B + αI per α and set (two triangular solves per column, half the flops of two
  products with Q): no set-up per event but more iterations (the row change is left to
  CG), and many more when n_T is close to p. Its iterations never multiply by K_B: the
  product of P = K_B + αI with the search direction follows by recurrence (P z = r), and
  the event's matrix is P minus its row change and rescaled penalty (:func:`_defect`), so
  an iteration costs the preconditioner (2p² per column) and the event's rows (4kp), read
  in cache-sized blocks.

Stopping rule (checked, not assumed). The preconditioned residual z = P⁻¹ r estimates the
error of v, so a column stops when max_x |(x̃ - m)ᵀ z| ≤ ``tol`` over the rows whose
predictions it serves (the validation rows of the chunk, or the test rows) — first through
the bound ‖z‖ (max ‖x̃‖ + ‖m‖), then, within 100 × ``tol``, on the rows themselves; the
residual is then recomputed from scratch and the test repeated (the recurrence residual
drifts). Measured (``benchmarks/splicing_missing.py``): the error of predictions and inner
scores against the direct solve stayed below ``tol`` in every case (up to 0.8 × tol, at
n = 400, 2,000 and 8,000 rows × 150–1,500 features), so the default 1e-10 leaves about two
orders of magnitude to the 1e-8 target; a tolerance below the rounding floor (1e-12 at
n ≈ p) is never met and those events go direct. Columns not converged within
``max_iter``, and events with a column of near-zero but non-zero variance on their rows
(where the Gram route loses precision), are fitted directly: one StandardScaler and one SVD
per training set (:class:`regulas.lmm.ridge.SVDRidge`), the per-event factorisation this
module avoids. A training set identical to the shared one (fully observed events) is solved
from the eigendecomposition directly, with no iteration.

Choosing α needs less. The inner-fold columns are first solved to ``select_tol`` (1e-7 by
default, about half the iterations of 1e-12); an event whose best α leads every other by
more than the scores' error bound (:func:`_choice_certain`, with the stopping estimate taken
ten times over) keeps that choice, and the others are solved again to ``tol``. The chosen
α is then GridSearchCV's, and the refit and its predictions are solved to ``tol``; only the
inner scores reported in :class:`MissingRidgeFit` are as precise as ``select_tol`` for the
events settled in the first pass.

Events with too few rows to split (``inner_splits`` returns None) are left unfitted: NaN
predictions and scores, ``best = -1``, as the batched path of
:mod:`regulas.splicing.ridge_batch` leaves them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg
from sklearn.preprocessing import StandardScaler

from regulas.lmm.ridge import SVDRidge
from regulas.splicing.metrics import validation_scores
from regulas.splicing.selection import best_candidate, inner_splits

#: A column whose variance on the event's rows is below this fraction of the shared one is
#: checked for being constant (scale 1, coefficient 0); if it is not, the event goes direct.
_NEAR_CONSTANT = 1e-6


@dataclass(frozen=True)
class SharedSet:
    """One shared training set B and its factorisation (reused by every event of a split).

    rows ``(n_B,)``: positions in X_train; mean, scale ``(p,)``: StandardScaler on X_B (scale 1
    where constant); constant ``(p,)``: columns constant on B (zeroed in x̃); gram ``(p, p)``:
    K_B, the standardised Gram; evals ``(p,)``, evecs ``(p, p)``: K_B = Q diag(λ) Qᵀ.
    """

    rows: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    constant: np.ndarray
    gram: np.ndarray
    evals: np.ndarray
    evecs: np.ndarray


@dataclass(frozen=True)
class SharedSets:
    """The shared factorisations of one outer training set: ``refit`` (all rows) and one per inner fold."""

    n: int
    refit: SharedSet
    folds: list[SharedSet]


def _shared_set(X: np.ndarray, rows: np.ndarray) -> SharedSet:
    scaler = StandardScaler().fit(X[rows])
    Xt = scaler.transform(X[rows])
    constant = X[rows].min(axis=0) == X[rows].max(axis=0)
    Xt[:, constant] = 0.0  # StandardScaler leaves mean-rounding noise there; Ridge's coefficient is ~0
    gram = Xt.T @ Xt
    evals, evecs = scipy.linalg.eigh(gram, driver="evd", check_finite=False)
    return SharedSet(rows, scaler.mean_, np.asarray(scaler.scale_), constant, gram, np.maximum(evals, 0.0), evecs)


def factorize_shared(X_train: np.ndarray, cv: Any) -> SharedSets:
    """Factorise the refit set (all n rows of X_train ``(n, p)``) and the inner folds of ``cv`` over them.

    This is the per-split work every block of events shares (one Gram and one ``p × p``
    eigendecomposition per training set).
    """
    X = np.asarray(X_train, dtype=np.float64)
    n = X.shape[0]
    splits = inner_splits(cv, n)
    if splits is None:
        raise ValueError(f"the inner splitter {cv!r} cannot split {n} training rows")
    return SharedSets(n, _shared_set(X, np.arange(n)), [_shared_set(X, tr) for tr, _ in splits])


@dataclass
class MissingRidgeFit:
    """Per-event results of :func:`fit_missing_ridge` for m events, n_folds inner folds, n_alphas α.

    scores ``(n_folds, n_alphas, m)``: inner validation score (greater is better; solved
    to ``select_tol`` where that settled the choice of α, see ``stats["choices_refined"]``);
    best ``(m,)``: index of the chosen α (-1: unfitted); alpha ``(m,)`` (NaN: unfitted);
    coef ``(p, m)`` and intercept ``(m,)`` of the refit in the original feature space;
    scale ``(p, m)``: the refit's StandardScaler ``scale_`` (Ridge's ``coef_`` is coef × scale);
    pred ``(n_test, m)`` at X_test; route ``(m,)``: "pcg", "shared" (fully observed),
    "direct" or "unfitted"; iterations ``(1 + n_folds, m)``: most PCG iterations over the
    event's columns of each training set (refit first).
    """

    scores: np.ndarray
    best: np.ndarray
    alpha: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    scale: np.ndarray
    pred: np.ndarray
    route: np.ndarray
    iterations: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Event:
    """One event on one training set, in the shared set's coordinates."""

    rows: np.ndarray  # (n_T,) training rows (positions in X_train)
    delta: np.ndarray  # (k,) rows removed from / added to the shared set
    sign: np.ndarray  # (k,) -1 removed, +1 added
    y_mean: float
    m: np.ndarray  # (p,) mean of x̃ over T
    keep: np.ndarray  # (p,) 1.0, or 0.0 on a column constant on T (its coefficient is 0)
    s2: np.ndarray  # (p,) (σ_T / σ_B)², 1 on columns constant on T
    shared: bool  # T is the shared set itself
    D: np.ndarray  # (k, p) x̃ at the rows in delta, gathered once for every iteration
    direct: bool = False  # needs the direct route


def _event_on_set(X: np.ndarray, Xt: np.ndarray, col_sum: np.ndarray, col_sq: np.ndarray, s: SharedSet, T: np.ndarray) -> _Event:
    in_B = np.zeros(len(Xt), dtype=bool)
    in_B[s.rows] = True
    in_T = np.zeros(len(Xt), dtype=bool)
    in_T[T] = True
    removed, added = np.flatnonzero(in_B & ~in_T), np.flatnonzero(in_T & ~in_B)
    p = Xt.shape[1]
    if len(removed) == 0 and len(added) == 0:
        return _Event(T, removed, np.zeros(0), 0.0, np.zeros(p), np.ones(p), np.ones(p), shared=True, D=np.zeros((0, p)))
    delta = np.concatenate([removed, added])
    sign = np.concatenate([-np.ones(len(removed)), np.ones(len(added))])
    D = Xt[delta]
    n_T = len(T)
    # sums over T = sums over B - removed + added; x̃ is centred on B so the mean is small
    m = (col_sum + sign @ D) / n_T
    var = (col_sq + sign @ (D * D)) / n_T - m * m
    base_var = col_sq / len(s.rows)
    ok = var > _NEAR_CONSTANT * np.where(base_var > 0, base_var, 1.0)
    ev = _Event(T, delta, sign, 0.0, m, ok.astype(np.float64), np.where(ok, var, 1.0), shared=False, D=D)
    low = np.flatnonzero(~ok)
    if len(low):
        XT = X[np.ix_(T, low)]
        # a column constant on T: StandardScaler gives it scale 1 and Ridge a zero coefficient
        if not np.all(XT.min(axis=0) == XT.max(axis=0)):
            ev.direct = True
    return ev


def _precondition(s: SharedSet, R: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """(K_B + αI)⁻¹ R for columns R ``(p, c)`` with one α per column ``(c,)``."""
    return np.asarray(s.evecs @ ((s.evecs.T @ R) / (s.evals[:, None] + alpha[None, :])))


#: Rows of an event's differing rows D per block in :func:`_rows_gram`: the block stays in
#: cache between its two products, so D is read from memory once per product with D, not
#: twice. With the ten or fewer columns of one event the products are bound by memory; at
#: 1,500 features, 330 and 3,000 rows, one BLAS thread: 2.3x and 3.1x faster than D.T @ (D @ U)
#: (36 and 31 against 16 and 10 GFLOP/s); blocks of 128 rows no longer fit and lose it.
_ROW_BLOCK = 64


def _rows_gram(D: np.ndarray, sign: np.ndarray, U: np.ndarray) -> np.ndarray:
    """Dᵀ diag(sign) D U for D ``(k, p)``, sign ``(k,)``, U ``(p, c)``, in row blocks of :data:`_ROW_BLOCK`."""
    out = np.zeros((D.shape[1], U.shape[1]))
    for i in range(0, len(D), _ROW_BLOCK):
        Di = D[i : i + _ROW_BLOCK]
        out += Di.T @ (sign[i : i + _ROW_BLOCK, None] * (Di @ U))
    return out


def _row_change(evs: list[_Event], col_ev: np.ndarray, U: np.ndarray) -> np.ndarray:
    """Δ U per column, Δ = X̃_Aᵀ X̃_A - X̃_Rᵀ X̃_R - n_T m mᵀ (its event's rows added and removed, and mean term)."""
    out = np.zeros_like(U)
    for e in np.unique(col_ev).tolist():
        cols = np.flatnonzero(col_ev == e)
        ev = evs[e]
        Ue = U[:, cols]
        out[:, cols] = _rows_gram(ev.D, ev.sign, Ue) - len(ev.rows) * np.outer(ev.m, ev.m @ Ue)
    return out


def _apply(s: SharedSet, evs: list[_Event], col_ev: np.ndarray, alpha: np.ndarray, W: np.ndarray) -> np.ndarray:
    """(C_T + α diag(σ_T / σ_B)²) V for each column (its event's C_T, see the module docstring), V ``(p, c)``."""
    keep = np.stack([evs[e].keep for e in col_ev], axis=1)
    U = keep * W
    HU = s.gram @ U + _row_change(evs, col_ev, U)
    return np.asarray(keep * HU + alpha[None, :] * np.stack([evs[e].s2 for e in col_ev], axis=1) * W)


def _defect(s: SharedSet, evs: list[_Event], col_ev: np.ndarray, alpha: np.ndarray, W: np.ndarray) -> np.ndarray:
    """(K_B + αI) W - A W per column (A: :func:`_apply`): what the shared preconditioner leaves
    out, without a product with K_B (on an event's constant columns J only its rows and columns J)."""
    keep = np.stack([evs[e].keep for e in col_ev], axis=1)
    U = keep * W
    s2 = np.stack([evs[e].s2 for e in col_ev], axis=1)
    out = alpha[None, :] * (1.0 - s2) * W - keep * _row_change(evs, col_ev, U)
    for e in np.unique(col_ev).tolist():
        J = np.flatnonzero(evs[e].keep == 0)
        if len(J):
            # K_B W - keep (K_B U) = K_B (W - U) + (1 - keep) (K_B U); W - U lives on J
            cols = np.flatnonzero(col_ev == e)
            out[:, cols] += s.gram[:, J] @ W[np.ix_(J, cols)]
            out[np.ix_(J, cols)] += s.gram[J, :] @ U[:, cols]
    return np.asarray(out)


Precond = Callable[[np.ndarray, np.ndarray], np.ndarray]


class _Cholesky:
    """Cholesky factors of K_B + αI, one per α, made on first use and kept for every chunk
    of events on the set: applying (K_B + αI)⁻¹ then takes two triangular solves (p² flops
    each per column) instead of two products with Q (2p² each)."""

    def __init__(self, s: SharedSet) -> None:
        self.gram = s.gram
        self.factors: dict[float, tuple[np.ndarray, bool]] = {}

    def solve(self, alpha: float, R: np.ndarray) -> np.ndarray:
        f = self.factors.get(alpha)
        if f is None:
            shifted = self.gram + alpha * np.eye(len(self.gram))
            f = self.factors[alpha] = scipy.linalg.cho_factor(shifted, lower=True, check_finite=False)
        return np.asarray(scipy.linalg.cho_solve(f, R, check_finite=False))


def _shared_preconditioner(chol: _Cholesky, alpha: np.ndarray) -> Precond:
    """(K_B + αI)⁻¹ for columns ``idx`` of R: the shared system alone."""

    def apply(idx: np.ndarray, R: np.ndarray) -> np.ndarray:
        out = np.empty_like(R)
        col_alpha = alpha[idx]
        for a in np.unique(col_alpha).tolist():
            cols = np.flatnonzero(col_alpha == a)
            out[:, cols] = chol.solve(a, R[:, cols])
        return out

    return apply


def _woodbury_preconditioner(s: SharedSet, evs: list[_Event], col_ev: np.ndarray, alpha: np.ndarray) -> Precond:
    """(K_B + Uᵀ Σ U + αI)⁻¹ per column: the shared system with the event's removed/added rows and
    mean term (U ``(k + 1, p)``, signs Σ) put back exactly by Woodbury; only σ_B / σ_T ≈ 1 is left to CG.

    With G = U Q (once per event) and Λ_α = diag(λ + α): P⁻¹ r = Q (a - Λ_α⁻¹ Gᵀ C⁻¹ G a), a = Λ_α⁻¹ Qᵀ r,
    C = Σ + G Λ_α⁻¹ Gᵀ ``(k + 1, k + 1)`` factorised once per column.
    """
    lam = s.evals
    G: dict[int, np.ndarray] = {}
    sign: dict[int, np.ndarray] = {}
    for e in np.unique(col_ev).tolist():
        ev = evs[e]
        G[e] = np.vstack([ev.D, np.sqrt(len(ev.rows)) * ev.m]) @ s.evecs
        sign[e] = np.append(ev.sign, -1.0)
    lus = [scipy.linalg.lu_factor(np.diag(sign[e]) + (G[e] / (lam + a)) @ G[e].T, check_finite=False)
           for e, a in zip(col_ev.tolist(), alpha.tolist())]

    def apply(idx: np.ndarray, R: np.ndarray) -> np.ndarray:
        V = (s.evecs.T @ R) / (lam[:, None] + alpha[idx][None, :])
        for e in np.unique(col_ev[idx]).tolist():
            cols = np.flatnonzero(col_ev[idx] == e)
            T = G[e] @ V[:, cols]
            for i, c in enumerate(cols.tolist()):
                T[:, i] = scipy.linalg.lu_solve(lus[idx[c]], T[:, i], check_finite=False)
            V[:, cols] -= (G[e].T @ T) / (lam[:, None] + alpha[idx[cols]][None, :])
        return np.asarray(s.evecs @ V)

    return apply


def _pcg(
    s: SharedSet, evs: list[_Event], col_ev: np.ndarray, alpha: np.ndarray, B: np.ndarray,
    rows: np.ndarray, tol: float, max_iter: int, precond: Precond, shared_precond: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Solve (Z_eᵀZ_e + αI) w = b per column by preconditioned CG; columns run in lockstep.

    Returns (W ``(p, c)``, iterations ``(c,)``, converged ``(c,)``). A column has converged when
    its preconditioned residual z (≈ its error) changes no prediction (x̃ - m)ᵀ v by more than
    ``tol`` on ``rows`` ``(r, p)`` (x̃ of the rows whose predictions the solution serves): first
    by the bound ‖z‖ (max ‖x̃‖ + ‖m‖), and where that is within 100 × ``tol``, on the rows themselves.

    ``shared_precond``: ``precond`` is (K_B + αI)⁻¹. Then no iteration multiplies by K_B: with
    P = K_B + αI, the search direction d = z + β d' has P d = r + β P d' (as P z = r), and
    A d = P d - (P - A) d, where P - A (:func:`_defect`) is the event's row change and scaling
    alone. The residual is recomputed with A itself before a column is accepted.
    """
    c = B.shape[1]
    M = np.stack([evs[e].m for e in col_ev], axis=1)
    m_norm = np.linalg.norm(M, axis=0)
    row_norm = float(np.sqrt(np.einsum("ij,ij->i", rows, rows).max())) if len(rows) else 0.0

    def converged(cols: np.ndarray, Zr: np.ndarray) -> np.ndarray:
        bound = np.linalg.norm(Zr, axis=0) * (row_norm + m_norm[cols])
        ok = bound <= tol
        near = np.flatnonzero(~ok & (bound <= 1e2 * tol))
        if len(near):
            change = rows @ Zr[:, near] - np.einsum("ij,ij->j", M[:, cols[near]], Zr[:, near])
            ok[near] = np.abs(change).max(axis=0) <= tol
        return ok

    every = np.arange(c)
    W = precond(every, B)  # the preconditioner's solution: exact when the event matches it
    iters = np.zeros(c, dtype=np.intp)
    done = np.zeros(c, dtype=bool)
    for restart in range(3):  # recompute the true residual after the recurrence says done
        todo = np.flatnonzero(~done)
        if len(todo) == 0 or iters[todo].min() >= max_iter:
            break
        estimated = restart == 0 and shared_precond
        if estimated:
            # W = P⁻¹ B: B - A W = B - P W + (P - A) W, and B - P W is rounding
            R = _defect(s, evs, col_ev[todo], alpha[todo], W[:, todo])
        else:
            R = B[:, todo] - _apply(s, evs, col_ev[todo], alpha[todo], W[:, todo])
        Zr = precond(todo, R)
        ok = converged(todo, Zr)
        if not estimated:  # a column is accepted on its true residual only
            done[todo[ok]] = True
        act = ~ok
        idx, R, Zr = todo[act], R[:, act], Zr[:, act]
        P = Zr.copy()
        PP = R.copy()  # P_α times the direction (used with shared_precond)
        rz = np.einsum("ij,ij->j", R, Zr)
        while len(idx) and iters[idx].min() < max_iter:
            if shared_precond:
                AP = PP - _defect(s, evs, col_ev[idx], alpha[idx], P)
            else:
                AP = _apply(s, evs, col_ev[idx], alpha[idx], P)
            step = rz / np.einsum("ij,ij->j", P, AP)
            W[:, idx] += step * P
            R -= step * AP
            Zr = precond(idx, R)
            iters[idx] += 1
            conv = converged(idx, Zr)
            keep = ~conv & (iters[idx] < max_iter)
            rz_new = np.einsum("ij,ij->j", R, Zr)
            beta = rz_new / rz
            P = Zr + beta * P
            PP = R + beta * PP
            idx, R, P, PP, rz = idx[keep], R[:, keep], P[:, keep], PP[:, keep], rz_new[keep]
    return W, iters, done


def _direct_event(
    X: np.ndarray, y: np.ndarray, rows: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]], X_test: np.ndarray,
    alphas: np.ndarray, scoring: str,
) -> tuple[np.ndarray, int, np.ndarray, float, np.ndarray, np.ndarray]:
    """The per-event factorisation: StandardScaler + one SVD per training set.

    Returns (scores ``(n_folds, n_alphas)``, best, coef ``(p,)``, intercept, pred ``(n_test,)``,
    the refit's scale ``(p,)``).
    """
    scores = np.empty((len(splits), len(alphas)))
    for k, (tr, va) in enumerate(splits):
        scaler = StandardScaler().fit(X[rows[tr]])
        f = SVDRidge(scaler.transform(X[rows[tr]]), fit_intercept=True)
        pred = f.predict(scaler.transform(X[rows[va]]), y[rows[tr], None], alphas)
        scores[k] = _scores_one(pred[:, :, 0], y[rows[va]], scoring)
    best = int(best_candidate(scores[:, :, None])[0])
    scaler = StandardScaler().fit(X[rows])
    f = SVDRidge(scaler.transform(X[rows]), fit_intercept=True)
    w, b = f.coef(y[rows, None], float(alphas[best]))
    coef = w[:, 0] / scaler.scale_
    pred = scaler.transform(X_test) @ w[:, 0] + b[0]
    return scores, best, coef, float(b[0] - scaler.mean_ @ coef), pred, np.asarray(scaler.scale_)


#: The stopping rule's estimate of a prediction's error (the preconditioned residual) is not a
#: bound; where it only settles the choice of α, the error is taken as this many times it.
_SELECT_SAFETY = 10.0


def _choice_certain(scores: np.ndarray, scoring: str, delta: float) -> bool:
    """Whether the best α of ``scores`` ``(n_folds, n_alphas)`` stays the best when every
    validation prediction may be off by up to ``delta``.

    Bounds per fold score: the mean absolute and root mean squared errors move by at most
    δ; the mean squared error by at most 2δ mean|r| + δ² ≤ δ (2 √MSE + δ).
    """
    if scoring == "neg_mean_squared_error":
        err = delta * (2.0 * np.sqrt(np.maximum(-scores, 0.0)) + delta)
    else:
        err = np.full(scores.shape, delta)
    mean, bound = scores.mean(axis=0), err.mean(axis=0)
    if not np.all(np.isfinite(mean)):
        return False
    best = int(np.argmax(mean))
    others = np.arange(len(mean)) != best
    return bool(np.all(mean[others] + bound[others] < mean[best] - bound[best]))


def _scores_one(pred: np.ndarray, y_val: np.ndarray, scoring: str) -> np.ndarray:
    """Scores ``(n_alphas,)`` of one event's predictions ``(n_alphas, n_val)`` against y_val ``(n_val,)``."""
    return validation_scores(scoring, y_val[:, None], pred[:, :, None])[:, 0]


def fit_missing_ridge(
    X_train: np.ndarray,
    Y_train: np.ndarray,
    X_test: np.ndarray,
    alphas: np.ndarray,
    cv: Any,
    *,
    scoring: str = "neg_mean_squared_error",
    shared: SharedSets | None = None,
    tol: float = 1e-10,
    max_iter: int = 100,
    preconditioner: str = "woodbury",
    chunk: int = 128,
    method: str = "pcg",
    select_tol: float = 1e-7,
) -> MissingRidgeFit:
    """GridSearchCV(Pipeline([StandardScaler(), Ridge()]), {alpha: alphas}, cv=cv) per event on its own rows.

    X_train ``(n, p)`` complete; Y_train ``(n, m)`` PSI, NaN = missing; X_test ``(n_test, p)``;
    alphas ``(n_alphas,)`` > 0 in ParameterGrid order; cv: a splitter whose splits depend
    only on the number of samples (``KFold(5)``, as GridSearchCV's ``cv=5``); scoring: one of
    :data:`regulas.splicing.metrics.BATCH_SCORINGS`. ``shared``: the factorisations of
    :func:`factorize_shared` (computed here when None). ``tol``: the stopping bound on a
    prediction's change (see the module docstring); ``chunk``: events solved together;
    ``method="direct"`` fits every event by its own factorisations (the reference route).
    ``select_tol``: the inner folds' first, looser tolerance (see the module docstring;
    ``select_tol <= tol`` solves them to ``tol`` at once).
    """
    X = np.asarray(X_train, dtype=np.float64)
    Y = np.asarray(Y_train, dtype=np.float64)
    X_test = np.asarray(X_test, dtype=np.float64)
    alphas = np.asarray(alphas, dtype=np.float64).ravel()
    if method not in ("pcg", "direct"):
        raise ValueError(f"method must be 'pcg' or 'direct', got {method!r}")
    if preconditioner not in ("woodbury", "shared"):
        raise ValueError(f"preconditioner must be 'woodbury' or 'shared', got {preconditioner!r}")
    if np.any(alphas <= 0) or not np.all(np.isfinite(alphas)):
        raise ValueError("alphas must be positive and finite (α = 0 needs LinearRegression's route)")
    n, p = X.shape
    m = Y.shape[1]
    n_alpha = len(alphas)
    shared_splits = inner_splits(cv, n)
    n_folds = len(shared_splits) if shared_splits is not None else cv.get_n_splits()
    res = MissingRidgeFit(
        scores=np.full((n_folds, n_alpha, m), np.nan),
        best=np.full(m, -1, dtype=np.intp),
        alpha=np.full(m, np.nan),
        coef=np.full((p, m), np.nan),
        intercept=np.full(m, np.nan),
        scale=np.full((p, m), np.nan),
        pred=np.full((len(X_test), m), np.nan),
        route=np.full(m, "unfitted", dtype=object),
        iterations=np.zeros((1 + n_folds, m), dtype=np.intp),
    )
    observed = ~np.isnan(Y)
    event_rows: dict[int, np.ndarray] = {}
    event_splits: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for j in range(m):
        rows = np.flatnonzero(observed[:, j])
        sp = inner_splits(cv, len(rows))
        if sp is None or len(sp) != n_folds:
            continue
        event_rows[j], event_splits[j] = rows, sp
    fitted = sorted(event_rows)
    direct = set(fitted) if method == "direct" or shared_splits is None else set()
    if method == "pcg" and shared_splits is not None and fitted:
        if shared is None:
            shared = factorize_shared(X, cv)
        woodbury = preconditioner == "woodbury"
        direct |= _fit_pcg(
            res, X, Y, X_test, alphas, scoring, shared, event_rows, event_splits, tol, max_iter, chunk, woodbury, select_tol
        )
    for j in sorted(direct):
        sc, best, coef, icpt, pred, scale = _direct_event(X, Y[:, j], event_rows[j], event_splits[j], X_test, alphas, scoring)
        res.scores[:, :, j], res.best[j], res.coef[:, j], res.intercept[j], res.pred[:, j] = sc, best, coef, icpt, pred
        res.scale[:, j] = scale
        res.route[j] = "direct"
        res.iterations[:, j] = 0
    res.alpha[res.best >= 0] = alphas[res.best[res.best >= 0]]
    return res


def _set_data(X: np.ndarray, s: SharedSet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x̃ = (X - μ_B) / σ_B ``(n, p)`` (columns constant on B zeroed), its sums and squares over B."""
    Xt = (X - s.mean) / s.scale
    Xt[:, s.constant] = 0.0
    XB = Xt[s.rows]
    return Xt, XB.sum(axis=0), np.einsum("ij,ij->j", XB, XB)


#: Bytes of the removed and added rows (``_Event.D``, k × p each) a chunk of events may hold:
#: with many gaps per event, a chunk of ``chunk`` events would otherwise hold gigabytes.
_CHUNK_BYTES = 512 * 2**20


def _chunks(events: list[int], n: int, p: int, event_rows: dict[int, np.ndarray], most: int) -> list[list[int]]:
    """``events`` in consecutive chunks of at most ``most`` events whose differing rows
    (estimated as each event's gaps among the n training rows, plus a fold boundary's
    worth) fit in :data:`_CHUNK_BYTES`."""
    budget = max(1, _CHUNK_BYTES // (8 * p))
    chunks: list[list[int]] = []
    rows = 0
    for j in events:
        k = n - len(event_rows[j]) + n // 50
        if chunks and len(chunks[-1]) < most and rows + k <= budget:
            chunks[-1].append(j)
            rows += k
        else:
            chunks.append([j])
            rows = k
    return chunks


def _fit_pcg(
    res: MissingRidgeFit, X: np.ndarray, Y: np.ndarray, X_test: np.ndarray, alphas: np.ndarray, scoring: str, shared: SharedSets,
    event_rows: dict[int, np.ndarray], event_splits: dict[int, list[tuple[np.ndarray, np.ndarray]]], tol: float, max_iter: int,
    chunk: int, woodbury: bool, select_tol: float,
) -> set[int]:
    """Fill ``res`` for the fitted events by PCG; return the events that need the direct route."""
    fitted = sorted(event_rows)
    n_alpha = len(alphas)
    n, p = X.shape
    need_direct: set[int] = set()

    def fold_scores(events: list[int], tol_k: float) -> None:
        """Inner-fold scores of ``events``: every (event, α) column, solved to ``tol_k``."""
        for k, s in enumerate(shared.folds):
            Xt, col_sum, col_sq = _set_data(X, s)
            chol = None if woodbury else _Cholesky(s)  # the set's factors, for all its chunks
            for part in _chunks(events, n, p, event_rows, chunk):
                js = [j for j in part if j not in need_direct]
                if not js:
                    continue
                evs = []
                for j in js:
                    tr = event_rows[j][event_splits[j][k][0]]
                    ev = _event_on_set(X, Xt, col_sum, col_sq, s, tr)
                    ev.y_mean = float(Y[tr, j].mean())
                    evs.append(ev)
                col_ev = np.repeat(np.arange(len(js)), n_alpha)
                col_alpha = np.tile(alphas, len(js))
                # validation predictions: one product over the rows spanned by the chunk's folds
                vals = [event_rows[j][event_splits[j][k][1]] for j in js]
                lo, hi = min(int(v.min()) for v in vals), max(int(v.max()) for v in vals) + 1
                W = _solve(s, Xt, evs, js, Y, col_ev, col_alpha, Xt[lo:hi], tol_k, max_iter, res.iterations[1 + k], need_direct, chol)
                P = Xt[lo:hi] @ W
                M = np.stack([evs[e].m for e in col_ev], axis=1)
                shift = np.array([evs[e].y_mean for e in col_ev]) - np.einsum("ij,ij->j", M, W)
                for e, j in enumerate(js):
                    if j in need_direct:
                        continue
                    cols = slice(e * n_alpha, (e + 1) * n_alpha)
                    pred = P[vals[e] - lo, cols].T + shift[cols, None]
                    res.scores[k, :, j] = _scores_one(pred, Y[vals[e], j], scoring)

    # The inner scores only choose α: solved to select_tol first, they settle the choice of
    # every event whose best α leads the others by more than their scores' error bound; the
    # rest are solved again to tol (the choice is then GridSearchCV's, as with tol throughout).
    loose = max(tol, select_tol)
    fold_scores(fitted, loose)
    refined = []
    if loose > tol:
        delta = _SELECT_SAFETY * loose
        refined = [j for j in fitted if j not in need_direct and not _choice_certain(res.scores[:, :, j], scoring, delta)]
        if refined:
            fold_scores(refined, tol)
    res.stats["select_tol"] = loose
    res.stats["choices_refined"] = len(refined)
    for j in fitted:
        if j not in need_direct:
            res.best[j] = int(best_candidate(res.scores[:, :, j][:, :, None])[0])
    # refit: one column per event at its chosen α
    s = shared.refit
    Xt, col_sum, col_sq = _set_data(X, s)
    chol = None if woodbury else _Cholesky(s)
    Xt_test = (X_test - s.mean) / s.scale
    Xt_test[:, s.constant] = 0.0
    todo = [j for j in fitted if j not in need_direct]
    for js in _chunks(todo, n, p, event_rows, chunk):
        evs = []
        for j in js:
            ev = _event_on_set(X, Xt, col_sum, col_sq, s, event_rows[j])
            ev.y_mean = float(Y[event_rows[j], j].mean())
            evs.append(ev)
        col_ev = np.arange(len(js))
        col_alpha = alphas[res.best[js]]
        W = _solve(s, Xt, evs, js, Y, col_ev, col_alpha, Xt_test, tol, max_iter, res.iterations[0], need_direct, chol)
        for e, j in enumerate(js):
            if j in need_direct:
                continue
            ev = evs[e]
            w = W[:, e]  # coefficients on x̃ - m
            res.pred[:, j] = ev.y_mean + (Xt_test - ev.m) @ w
            coef = w / s.scale
            res.coef[:, j] = coef
            res.intercept[j] = ev.y_mean - (s.mean + s.scale * ev.m) @ coef
            # the event's own scale: σ_B √s2 (s2 = (σ_T / σ_B)²), 1 where constant on its rows
            res.scale[:, j] = np.where(ev.keep > 0, s.scale * np.sqrt(ev.s2), 1.0)
            res.route[j] = "shared" if all(res.iterations[:, j] == 0) and ev.shared else "pcg"
    return need_direct


def _solve(
    s: SharedSet, Xt: np.ndarray, evs: list[_Event], js: list[int], Y: np.ndarray, col_ev: np.ndarray, col_alpha: np.ndarray,
    rows: np.ndarray, tol: float, max_iter: int, iterations: np.ndarray, need_direct: set[int],
    chol: _Cholesky | None,
) -> np.ndarray:
    """Right-hand sides, then the shared solution for events equal to the shared set and PCG for the rest.

    Records the most iterations per event in ``iterations`` and adds unconverged events to ``need_direct``.
    """
    n = Xt.shape[0]
    Yc = np.zeros((n, len(js)))
    for e, (ev, j) in enumerate(zip(evs, js)):
        Yc[ev.rows, e] = Y[ev.rows, j] - ev.y_mean
    keep = np.stack([evs[e].keep for e in col_ev], axis=1)
    B = keep * (Xt.T @ Yc)[:, col_ev]  # X̃_Tᵀ (y - ȳ): the mean m drops out as Σ (y - ȳ) = 0
    W = np.zeros_like(B)
    is_shared = np.array([evs[e].shared for e in col_ev])
    if is_shared.any():
        W[:, is_shared] = _precondition(s, B[:, is_shared], col_alpha[is_shared])
    iterative = np.flatnonzero(~is_shared & ~np.array([evs[e].direct for e in col_ev]))
    for e, j in enumerate(js):
        if evs[e].direct:
            need_direct.add(j)
    if len(iterative):
        ce, ca = col_ev[iterative], col_alpha[iterative]
        precond = _woodbury_preconditioner(s, evs, ce, ca) if chol is None else _shared_preconditioner(chol, ca)
        Wi, it, ok = _pcg(s, evs, ce, ca, B[:, iterative], rows, tol, max_iter, precond, shared_precond=chol is not None)
        W[:, iterative] = keep[:, iterative] * Wi  # exactly 0 on columns constant on T
        for e in np.unique(col_ev[iterative]).tolist():
            sel = col_ev[iterative] == e
            iterations[js[e]] = max(int(iterations[js[e]]), int(it[sel].max()))
            if not ok[sel].all():
                need_direct.add(js[e])
    return W
