"""The generative model: RBP expression, then PSI tile by tile of ``TILE`` events.

Every random draw comes from a stream keyed by (root seed, stream, tile): the data do not
depend on how tiles are grouped into blocks when written, the first E events of a larger
data set are the E-event data set (same samples and RBPs), and the PSI values do not depend
on the missing rate (only the mask does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import expit, ndtr, ndtri

from regulas.sim.synthetic_splicing.calibration import MIN_UNIQUENESS, Calibration

#: Events per random stream: the unit of generation (writing blocks are whole tiles).
TILE = 250
#: Random streams (the second entry of a SeedSequence spawn key).
STREAM_FEATURES, STREAM_EXPRESSION, STREAM_SAMPLES, STREAM_EVENTS, STREAM_MISSING, STREAM_SOURCES, STREAM_NOISE = range(7)
#: Spread of the missingness score: per-sample depth, per-event coverage, per cell.
DEPTH_SD, COVERAGE_SD, CELL_SD = 0.5, 1.0, 0.5
#: No event loses more than this share of its samples (a real pipeline would drop it).
MAX_MISSING = 0.5
#: PSI and expression are written rounded to this many decimals (rMATS reports 3 to 4).
DECIMALS = 4
#: Jitter of a resampled RBP column (P above the real RBPs): log2 mean, log sd, loadings.
JITTER_MEAN, JITTER_LOG_SD, JITTER_LOADING = 0.25, 0.15, 0.15
#: Jitter of a resampled event's logit mean and log logit-sd.
JITTER_LOGIT_MEAN, JITTER_LOGIT_LOG_SD = 0.1, 0.1
#: Splicing factors are this many times more likely to be drawn as regulators.
SPLICING_FACTOR_WEIGHT = 4.0

MissingPattern = Literal["coverage", "uniform"]


def stream(seed: int, kind: int, tile: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(kind, tile)))


@dataclass(frozen=True)
class Settings:
    """What the data set plants beyond the calibration (validated by :func:`check_settings`)."""

    missing_rate: float = 0.0
    missing_pattern: MissingPattern = "coverage"
    regulated_fraction: float = 0.7
    regulators_per_event: float = 3.0
    max_regulators: int = 10
    signal: float = 0.3


@dataclass(frozen=True)
class FeatureModel:
    """The P RBP columns (K = factor rank).

    Attributes:
        names: (P,) column names: real symbols, ``SYMBOL_synK`` for resampled copies.
        source: (P,) index of the real RBP each column was drawn from.
        mean, sd: (P,) log2(FPKM + 1) mean and standard deviation.
        loadings: (P, K) correlation loadings; corr = L L^T + diag(uniqueness).
        uniqueness: (P,) idiosyncratic share of the variance.
        weight: (P,) probability of being drawn as a regulator (sums to 1).
    """

    names: np.ndarray
    source: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    loadings: np.ndarray
    uniqueness: np.ndarray
    weight: np.ndarray

    def correlation(self, cols: np.ndarray) -> np.ndarray:
        """(k, k) model correlation of a few columns."""
        L = self.loadings[cols]
        return L @ L.T + np.diag(self.uniqueness[cols])


def feature_model(cal: Calibration, n_rbps: int, seed: int) -> FeatureModel:
    """P columns from the R real RBPs: a random subset if P <= R, else all R plus P - R
    columns resampled with replacement, each with jittered mean, sd and loadings."""
    rng = stream(seed, STREAM_FEATURES)
    R = cal.rbp_names.size
    if n_rbps <= R:
        source = np.sort(rng.choice(R, size=n_rbps, replace=False))
        extra = np.empty(0, dtype=np.int64)
    else:
        source = np.arange(R)
        extra = rng.integers(0, R, size=n_rbps - R)
    mean, sd, L = cal.rbp_mean[source], cal.rbp_sd[source], cal.loadings[source]
    names = list(cal.rbp_names[source])
    if extra.size:
        k = L.shape[1]
        mean = np.concatenate([mean, cal.rbp_mean[extra] + rng.normal(0.0, JITTER_MEAN, extra.size)])
        sd = np.concatenate([sd, cal.rbp_sd[extra] * np.exp(rng.normal(0.0, JITTER_LOG_SD, extra.size))])
        L_extra = cal.loadings[extra] + rng.normal(0.0, JITTER_LOADING / np.sqrt(k), (extra.size, k))
        communality = (L_extra**2).sum(axis=1)
        L_extra *= np.sqrt(np.minimum(1.0, (1.0 - MIN_UNIQUENESS) / communality))[:, None]
        L = np.vstack([L, L_extra])
        copies: dict[int, int] = {}
        for j in extra:
            copies[int(j)] = copies.get(int(j), 0) + 1
            names.append(f"{cal.rbp_names[j]}_syn{copies[int(j)]}")
        source = np.concatenate([source, extra])
    mean = np.maximum(mean, 0.0)
    weight = np.exp(rng.normal(0.0, 1.0, n_rbps)) * np.where(cal.splicing_factor[source], SPLICING_FACTOR_WEIGHT, 1.0)
    return FeatureModel(
        names=np.array(names, dtype=object),
        source=source,
        mean=mean,
        sd=sd,
        loadings=L,
        uniqueness=1.0 - (L**2).sum(axis=1),
        weight=weight / weight.sum(),
    )


def draw_expression(fm: FeatureModel, n_samples: int, seed: int) -> np.ndarray:
    """(N, P) log2(FPKM + 1): mean + sd * (F L^T + sqrt(uniqueness) * E), F (N, K) and E
    (N, P) standard normal; clipped at 0 (log2(FPKM + 1) cannot be negative) and rounded."""
    rng = stream(seed, STREAM_EXPRESSION)
    F = rng.standard_normal((n_samples, fm.loadings.shape[1]))
    Z = F @ fm.loadings.T
    Z += rng.standard_normal(Z.shape) * np.sqrt(fm.uniqueness)
    X = fm.mean + fm.sd * Z
    np.maximum(X, 0.0, out=X)
    return np.round(X, DECIMALS)


def draw_depth(n_samples: int, seed: int) -> np.ndarray:
    """(N,) per-sample sequencing depth factor (log scale) of the missingness model."""
    return stream(seed, STREAM_SAMPLES).normal(0.0, DEPTH_SD, n_samples)


@dataclass(frozen=True)
class EventTile:
    """Events ``start:start + t`` of the data set.

    Attributes:
        start: index of the first event.
        names: (t,) event IDs.
        psi: (N, t) PSI in [0, 1], NaN where missing.
        events: per-event truth columns, each (t,).
        regulators: (m,) event position within the tile, (m,) RBP column, (m,) effect.
    """

    start: int
    names: np.ndarray
    psi: np.ndarray
    events: dict[str, np.ndarray]
    regulators: tuple[np.ndarray, np.ndarray, np.ndarray]


def truncated_moments(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sd of a standard normal restricted to (a, b); a = -inf and b = inf allowed."""
    mass = np.maximum(ndtr(b) - ndtr(a), 1e-300)
    pa = np.exp(-0.5 * np.where(np.isfinite(a), a, 0.0) ** 2) / np.sqrt(2 * np.pi) * np.isfinite(a)
    pb = np.exp(-0.5 * np.where(np.isfinite(b), b, 0.0) ** 2) / np.sqrt(2 * np.pi) * np.isfinite(b)
    apa = np.where(np.isfinite(a), a, 0.0) * pa
    bpb = np.where(np.isfinite(b), b, 0.0) * pb
    mu = (pa - pb) / mass
    var = 1.0 + (apa - bpb) / mass - mu**2
    return mu, np.sqrt(np.maximum(var, 1e-12))


def tile_events(cal: Calibration, seed: int, tile: int, n_events: int) -> tuple[np.ndarray, np.ndarray]:
    """The real event each event of a tile resamples (t,), and the events' IDs (t,).

    A stream of their own, so the IDs are known without drawing any PSI.
    """
    start = tile * TILE
    t = min(TILE, n_events - start)
    src = stream(seed, STREAM_SOURCES, tile).integers(0, cal.zero_rate.size, size=TILE)[:t]
    names = np.array([f"E{start + j:06d}:{cal.event_type[s]}" for j, s in enumerate(src)], dtype=object)
    return src, names


def _event_parameters(
    cal: Calibration, fm: FeatureModel, settings: Settings, src: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Each draw is of a whole tile, then cut to the tile's t events: event j gets the same
    numbers whatever the number of events (the last tile is the only short one)."""
    t = src.size

    def cut(values: np.ndarray) -> np.ndarray:
        return values[:t]

    regulated = cut(rng.random(TILE)) < settings.regulated_fraction
    extra = cut(rng.poisson(max(settings.regulators_per_event - 1.0, 0.0), size=TILE))
    n_reg = np.where(regulated, np.minimum(1 + extra, min(settings.max_regulators, fm.names.size)), 0)
    concentration = 4.0
    h = cut(rng.beta(concentration * settings.signal, concentration * (1.0 - settings.signal), size=TILE)) * regulated
    return {
        "source_event": src,
        "zero_rate": cal.zero_rate[src],
        "one_rate": cal.one_rate[src],
        "logit_mean": cal.logit_mean[src] + cut(rng.normal(0.0, JITTER_LOGIT_MEAN, TILE)),
        "logit_sd": cal.logit_sd[src] * np.exp(cut(rng.normal(0.0, JITTER_LOGIT_LOG_SD, TILE))),
        "n_regulators": n_reg,
        "signal_fraction": h,
        "coverage": cut(rng.normal(0.0, COVERAGE_SD, TILE)),
    }


def draw_tile(
    cal: Calibration,
    fm: FeatureModel,
    Xs: np.ndarray,
    depth: np.ndarray,
    settings: Settings,
    seed: int,
    tile: int,
    n_events: int,
) -> EventTile:
    """Events ``tile * TILE`` to ``min((tile + 1) * TILE, n_events)``; ``Xs`` is the (N, P)
    expression standardized by the model's mean and sd, ``depth`` the (N,) depth factors."""
    src, names = tile_events(cal, seed, tile, n_events)
    t, N = src.size, Xs.shape[0]
    rng = stream(seed, STREAM_EVENTS, tile)
    ev = _event_parameters(cal, fm, settings, src, rng)
    # regulators, effects and each event's regulator signal g (N,) with unit model variance
    G = np.zeros((N, t))
    reg_event, reg_rbp, reg_effect = [], [], []
    for j in np.flatnonzero(ev["n_regulators"]):
        cols = rng.choice(fm.names.size, size=int(ev["n_regulators"][j]), replace=False, p=fm.weight)
        beta = rng.choice([-1.0, 1.0], size=cols.size) * rng.uniform(0.5, 1.0, size=cols.size)
        beta /= np.sqrt(beta @ fm.correlation(cols) @ beta)
        G[:, j] = Xs[:, cols] @ beta
        effect = np.sqrt(ev["signal_fraction"][j]) * beta  # on the latent z, per model sd of the RBP
        reg_event.extend([j] * cols.size)
        reg_rbp.extend(cols.tolist())
        reg_effect.extend(effect.tolist())
    h = ev["signal_fraction"]
    z = np.sqrt(h) * G + np.sqrt(1.0 - h) * stream(seed, STREAM_NOISE, tile).standard_normal((N, TILE))[:, :t]
    # point masses: the latent's tails, at the resampled event's rates of 0 and 1
    lo, hi = ndtri(ev["zero_rate"]), ndtri(1.0 - ev["one_rate"])
    mu, sd = truncated_moments(lo, hi)
    psi = np.round(expit(ev["logit_mean"] + ev["logit_sd"] * (z - mu) / sd), DECIMALS)
    np.clip(psi, 10.0**-DECIMALS, 1.0 - 10.0**-DECIMALS, out=psi)
    # ones first: an event that is all 0 has lo = inf and hi = -inf, so zeros must win
    psi[z >= hi] = 1.0
    psi[z <= lo] = 0.0
    missing = missing_mask(depth, ev["coverage"], settings, stream(seed, STREAM_MISSING, tile))
    psi[missing] = np.nan
    ev["missing_rate"] = missing.mean(axis=0)
    ev["event_type"] = cal.event_type[src]
    regs = (np.array(reg_event, dtype=np.int64), np.array(reg_rbp, dtype=np.int64), np.array(reg_effect))
    return EventTile(start=tile * TILE, names=names, psi=psi, events=ev, regulators=regs)


def missing_threshold(rate: float) -> float:
    """Score threshold t at which the expected missing share is ``rate``, with the cap.

    Given its coverage c, an event's expected missing share is Phi((t - c) / s) with s the
    sd of depth + cell noise, capped at ``MAX_MISSING``; t solves E_c[that] = rate (c ~
    N(0, COVERAGE_SD^2) by Gauss-Hermite quadrature, t by bisection). Without the cap t would
    be the rate's normal quantile times the sd of the whole score.
    """
    if rate <= 0:
        return -np.inf
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    weights = weights / weights.sum()
    c = COVERAGE_SD * nodes
    s = float(np.sqrt(DEPTH_SD**2 + CELL_SD**2))

    def share(t: float) -> float:
        return float(weights @ np.minimum(ndtr((t - c) / s), MAX_MISSING))

    lo, hi = -20.0, 20.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if share(mid) < rate else (lo, mid)
    return 0.5 * (lo + hi)


def missing_mask(depth: np.ndarray, coverage: np.ndarray, settings: Settings, rng: np.random.Generator) -> np.ndarray:
    """(N, t) True where PSI is missing.

    ``coverage``: a cell is missing when depth_i + coverage_e + CELL_SD * noise falls below
    the threshold of the rate: low-depth samples and low-coverage events lose the most,
    and every event gets its own pattern. ``uniform``: exactly round(rate * N) samples
    per event, at random. At most ``MAX_MISSING`` of an event's samples are missing.
    The noise is drawn whatever the rate, so PSI values do not depend on it.
    """
    N, t = depth.size, coverage.size
    noise = rng.standard_normal((N, TILE))[:, :t]  # a whole tile: see _event_parameters
    cap = int(np.floor(MAX_MISSING * N))
    if settings.missing_rate <= 0 or cap == 0:
        return np.zeros((N, t), dtype=bool)
    if settings.missing_pattern == "uniform":
        k = min(int(round(settings.missing_rate * N)), cap)
        return lowest(noise, k)
    score = depth[:, None] + coverage[None, :] + CELL_SD * noise
    mask = score < missing_threshold(settings.missing_rate)
    over = mask.sum(axis=0) > cap
    if over.any():
        mask[:, over] = lowest(score[:, over], cap)
    return mask


def lowest(score: np.ndarray, k: int) -> np.ndarray:
    """(N, t) mask of the k lowest scores of each column."""
    mask = np.zeros(score.shape, dtype=bool)
    if k > 0:
        rows = np.argpartition(score, k - 1, axis=0)[:k]
        np.put_along_axis(mask, rows, True, axis=0)
    return mask
