"""How well a fit recovers the simulated beta (T x P) and the covariance structures (P x P)."""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import pearsonr, spearmanr


def kl_gaussian(S_true: np.ndarray, S_est: np.ndarray) -> float:
    """KL(N(0, S_true) || N(0, S_est)) = 1/2 [tr(S_est^-1 S_true) - P + ln det S_est - ln det S_true].

    ``inf`` when S_est is singular (no Gaussian density), e.g. a rank-deficient C0 fit.
    """
    P = S_true.shape[0]
    try:
        L = np.linalg.cholesky((S_est + S_est.T) / 2)
    except np.linalg.LinAlgError:
        return float("inf")
    logdet_est = 2.0 * float(np.sum(np.log(np.diag(L))))
    sign, logdet_true = np.linalg.slogdet(S_true)
    if sign <= 0:
        return float("nan")
    X = np.linalg.solve(L, S_true)
    trace = float(np.trace(np.linalg.solve(L.T, X)))
    return 0.5 * (trace - P + logdet_est - float(logdet_true))


def structure(C: np.ndarray) -> np.ndarray:
    """C / tr(C): the shape of a covariance without its scale (the simulated V, Sigma have trace 1)."""
    t = float(np.trace(C))
    return C / t if t > 0 else np.full_like(C, np.nan)


def _corr(fn: object, a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")  # undefined for a constant vector
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(a, b)[0])  # type: ignore[operator]


def beta_metrics(beta_hat: np.ndarray, beta: np.ndarray) -> dict[str, float]:
    """Pearson, Spearman (overall and per condition ``_c<j>``), R^2 and RMSE of beta_hat vs beta (T x P)."""
    x, y = beta.ravel(), beta_hat.ravel()
    resid = np.sum((y - x) ** 2)
    out = {
        "pearson": _corr(pearsonr, x, y),
        "spearman": _corr(spearmanr, x, y),
        "r2_beta": float(1.0 - resid / np.sum((x - x.mean()) ** 2)),
        "rmse_beta": float(np.sqrt(resid / x.size)),
    }
    for j in range(beta.shape[1]):
        out[f"pearson_c{j}"] = _corr(pearsonr, beta[:, j], beta_hat[:, j])
        out[f"spearman_c{j}"] = _corr(spearmanr, beta[:, j], beta_hat[:, j])
    return out


def covariance_metrics(V: np.ndarray, V_hat: np.ndarray, Sigma: np.ndarray, Sigma_hat: np.ndarray) -> dict[str, float]:
    """KL of N(0, V_hat) from N(0, V) and of Sigma_hat from Sigma, after scaling each estimate to trace 1."""
    return {"kl_V": kl_gaussian(V, structure(V_hat)), "kl_Sigma": kl_gaussian(Sigma, structure(Sigma_hat))}


def kl_gaussian_factor(F: np.ndarray, d: np.ndarray, F_hat: np.ndarray, d_hat: np.ndarray) -> float:
    """:func:`kl_gaussian` for S_true = F F^T + diag(d) and S_est = F_hat F_hat^T + diag(d_hat) given as
    factors (P x k, P), exactly and without any P x P matrix: O(P (k + k_hat)^2) by Woodbury and the
    matrix determinant lemma. ``inf`` when some d_hat <= 0 (S_est singular: e.g. a low-rank C0 fit,
    as the dense function says); ``nan`` when some d <= 0."""
    F, d, F_hat, d_hat = (np.asarray(x, dtype=float) for x in (F, d, F_hat, d_hat))
    if np.any(d_hat <= 0):
        return float("inf")
    if np.any(d <= 0):
        return float("nan")
    w = 1.0 / d_hat
    E = F_hat * w[:, None]  # diag(1/d_hat) F_hat
    A = np.eye(F_hat.shape[1]) + F_hat.T @ E  # S_est^-1 = diag(w) - E A^-1 E^T
    LA = np.linalg.cholesky(A)
    # tr(S_est^-1 S_true) = tr(S_est^-1 diag(d)) + tr(F^T S_est^-1 F)
    EA = np.linalg.solve(LA, E.T)  # LA^-1 E^T: tr(E A^-1 E^T X) = tr(EA X EA^T)
    EF = EA @ F
    trace = float(w @ d) - float(np.sum(EA * EA * d)) + float(np.sum(F * F * w[:, None])) - float(np.sum(EF * EF))
    logdet_est = float(np.sum(np.log(d_hat))) + 2.0 * float(np.sum(np.log(np.diag(LA))))
    B = np.eye(F.shape[1]) + F.T @ (F / d[:, None])
    logdet_true = float(np.sum(np.log(d))) + float(np.linalg.slogdet(B)[1])
    return 0.5 * (trace - d.size + logdet_est - logdet_true)


def factor_structure(F: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`structure` (C / tr(C)) of C = F F^T + diag(d), as factors."""
    t = float(np.sum(F * F) + np.sum(d))
    if t <= 0:
        return np.full_like(F, np.nan), np.full_like(d, np.nan)
    return F / np.sqrt(t), d / t
