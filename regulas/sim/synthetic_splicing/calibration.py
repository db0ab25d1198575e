"""Statistics of the real GSE114922 data that the synthetic data set reproduces.

Estimated once per generation from the packaged tables (well under a second): nothing here
is stored, so the calibration always matches the shipped data.

RBP expression: log2(FPKM + 1) of the Sebestyén et al. 2016 RBPs present in the FPKM table,
on the samples whose FPKM table is complete (at least half the genes non-zero: 14 of 40; the
other 26 keep only a few hundred highly expressed genes, an artefact of the source object,
see ``regulas/datasets/data/gse114922/SOURCE.md``). Per RBP: mean, standard deviation and a
row of loadings of a rank-``FACTORS`` model of the correlation matrix (top principal
components of the standardized matrix), so no dense P x P sample covariance from 14 samples.

PSI: per real event, the fraction of samples at exactly 0 and exactly 1, and the mean and
standard deviation of logit(PSI) over its values strictly inside (0, 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Rank of the factor model of the RBP correlation (the 14 complete samples allow at most 13).
FACTORS = 5
#: Floor of an RBP's own (idiosyncratic) share of its variance in the factor model.
MIN_UNIQUENESS = 0.05
#: A sample's FPKM row counts as complete when at least this share of genes is non-zero.
COMPLETE_SAMPLE_SHARE = 0.5
#: Events with fewer interior (0 < PSI < 1) values than this take the median logit spread.
MIN_INTERIOR = 3


@dataclass(frozen=True)
class Calibration:
    """Targets estimated from GSE114922 (R real RBPs, Q real events, K = ``FACTORS``).

    Attributes:
        rbp_names: (R,) RBP symbols, in the FPKM table's order.
        splicing_factor: (R,) bool, Sebestyén's splicing-factor flag.
        rbp_mean: (R,) mean of log2(FPKM + 1) over the complete samples.
        rbp_sd: (R,) standard deviation (ddof=1) of the same.
        loadings: (R, K) loadings of the correlation factor model; corr = L L^T + diag(uniqueness).
        uniqueness: (R,) 1 - row sum of squared loadings, at least ``MIN_UNIQUENESS``.
        event_type: (Q,) rMATS event type of each real event (SE, MXE, RI, A3SS, A5SS).
        zero_rate: (Q,) fraction of samples with PSI exactly 0.
        one_rate: (Q,) fraction of samples with PSI exactly 1.
        logit_mean: (Q,) mean of logit(PSI) over interior values.
        logit_sd: (Q,) standard deviation (ddof=0) of logit(PSI) over interior values.
        n_samples_expression: samples the expression targets were estimated on.
        n_samples_psi: samples the PSI targets were estimated on.
    """

    rbp_names: np.ndarray
    splicing_factor: np.ndarray
    rbp_mean: np.ndarray
    rbp_sd: np.ndarray
    loadings: np.ndarray
    uniqueness: np.ndarray
    event_type: np.ndarray
    zero_rate: np.ndarray
    one_rate: np.ndarray
    logit_mean: np.ndarray
    logit_sd: np.ndarray
    n_samples_expression: int
    n_samples_psi: int

    def summary(self) -> dict[str, float | int | list[float]]:
        """The headline figures, for the data set's README and ``generation.json``."""
        return {
            "rbps": int(self.rbp_names.size),
            "splicing_factors": int(self.splicing_factor.sum()),
            "expression_samples": self.n_samples_expression,
            "events": int(self.zero_rate.size),
            "psi_samples": self.n_samples_psi,
            "psi_zero_fraction": float(self.zero_rate.mean()),
            "psi_one_fraction": float(self.one_rate.mean()),
            "events_with_a_zero": float((self.zero_rate > 0).mean()),
            "events_with_a_one": float((self.one_rate > 0).mean()),
            "event_zero_rate_quantiles_50_75_90_99": [float(q) for q in np.quantile(self.zero_rate, [0.5, 0.75, 0.9, 0.99])],
            "event_one_rate_quantiles_50_75_90_99": [float(q) for q in np.quantile(self.one_rate, [0.5, 0.75, 0.9, 0.99])],
            "median_logit_mean": float(np.median(self.logit_mean)),
            "median_logit_sd": float(np.median(self.logit_sd)),
            "factor_rank": int(self.loadings.shape[1]),
            "mean_communality": float((self.loadings**2).sum(axis=1).mean()),
        }


def logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def expression_model(log_expr: np.ndarray, factors: int = FACTORS) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, sd, loadings and uniqueness of a (n, R) log-expression matrix.

    The loadings are the top ``factors`` principal axes of the standardized matrix scaled by
    their singular values / sqrt(n - 1): L L^T is then the best rank-K approximation of the
    sample correlation matrix.
    """
    n = log_expr.shape[0]
    mean = log_expr.mean(axis=0)
    sd = log_expr.std(axis=0, ddof=1)
    z = (log_expr - mean) / sd
    _, s, vt = np.linalg.svd(z, full_matrices=False)
    k = min(factors, n - 1)
    loadings = vt[:k].T * (s[:k] / np.sqrt(n - 1))
    communality = (loadings**2).sum(axis=1)
    # keep every RBP partly its own: shrink rows whose factors would explain nearly all of it
    cap = 1.0 - MIN_UNIQUENESS
    loadings *= np.sqrt(np.minimum(1.0, cap / np.maximum(communality, 1e-300)))[:, None]
    uniqueness = 1.0 - (loadings**2).sum(axis=1)
    return mean, sd, loadings, uniqueness


def psi_model(psi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per event of a complete (n, Q) PSI matrix: rates of 0 and 1, logit mean and sd inside (0, 1)."""
    zero_rate = (psi == 0).mean(axis=0)
    one_rate = (psi == 1).mean(axis=0)
    interior = (psi > 0) & (psi < 1)
    count = interior.sum(axis=0)
    lg = np.where(interior, logit(np.clip(psi, 1e-6, 1 - 1e-6)), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = lg.sum(axis=0) / count
        var = (np.where(interior, lg, 0.0) ** 2).sum(axis=0) / count - mean**2
    sd = np.sqrt(np.maximum(var, 0.0))
    few = count < MIN_INTERIOR
    sd[few] = np.median(sd[~few])
    # an event with no interior value: the logit of its mean (0s and 1s only) stands in
    mean[count == 0] = logit(np.clip(psi[:, count == 0].mean(axis=0), 0.01, 0.99))
    return zero_rate, one_rate, mean, sd


def calibrate() -> Calibration:
    """Estimate every target from the packaged GSE114922 tables and the RBP list."""
    from regulas import datasets

    gse = datasets.load_gse114922()
    rbps = datasets.load_rbp_list()
    fpkm = gse.fpkm
    complete = (fpkm.to_numpy() > 0).mean(axis=1) >= COMPLETE_SAMPLE_SHARE
    flags = dict(zip(rbps["symbol"].astype(str), rbps["is_splicing_factor"].astype(bool)))
    names = np.array([c for c in fpkm.columns if c in flags], dtype=object)
    log_expr = np.log2(fpkm.loc[complete, list(names)].to_numpy(dtype=np.float64) + 1.0)
    keep = log_expr.std(axis=0, ddof=1) > 0  # a constant RBP has no correlation to model
    names, log_expr = names[keep], log_expr[:, keep]
    mean, sd, loadings, uniqueness = expression_model(log_expr)
    psi = gse.psi.to_numpy(dtype=np.float64)
    zero_rate, one_rate, logit_mean, logit_sd = psi_model(psi)
    event_type = np.array([str(c).split(":")[1] if ":" in str(c) else "NA" for c in gse.psi.columns], dtype=object)
    return Calibration(
        rbp_names=names,
        splicing_factor=np.array([flags[n] for n in names], dtype=bool),
        rbp_mean=mean,
        rbp_sd=sd,
        loadings=loadings,
        uniqueness=uniqueness,
        event_type=event_type,
        zero_rate=zero_rate,
        one_rate=one_rate,
        logit_mean=logit_mean,
        logit_sd=logit_sd,
        n_samples_expression=int(complete.sum()),
        n_samples_psi=int(psi.shape[0]),
    )
