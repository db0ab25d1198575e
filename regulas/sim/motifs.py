"""Motif-score matrices M (genes x motifs) for the regNet simulation.

Two sources:

* a file of real motif scores (rows = genes or regions, columns = motifs; TSV/CSV,
  optionally gzipped, first column = row names), each column min-max scaled to [0, 1]
  as regNet does. A grid cell draws T motif columns **without replacement** (regNet drew
  with replacement: T = 600 of 623 gave only ~385 distinct columns) and G rows: a random
  subset when G <= rows, otherwise the rows tiled (every row ceil(G / rows) times at most).
* synthetic scores, Unif(0, 1) then min-max scaled per column, for tests and for grids
  larger than any file.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regulas.core.errors import ConfigError


@dataclass(frozen=True)
class MotifScores:
    """A min-max scaled motif-score matrix ``values`` (rows x motifs) with its labels."""

    values: np.ndarray
    rows: tuple[str, ...]
    motifs: tuple[str, ...]

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.values.shape[0]), int(self.values.shape[1]))


def minmax_columns(X: np.ndarray) -> np.ndarray:
    """Scale each column of ``X`` (n x m) to [0, 1]; a constant column becomes all zeros."""
    lo = X.min(axis=0)
    span = X.max(axis=0) - lo
    return np.divide(X - lo, span, out=np.zeros_like(X, dtype=float), where=span > 0)


@functools.lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int) -> MotifScores:
    import pandas as pd

    try:
        frame = pd.read_csv(path, sep="," if ".csv" in Path(path).name else "\t", index_col=0)
    except (OSError, ValueError, UnicodeDecodeError, EOFError) as exc:
        raise ConfigError(f"cannot read motif scores: {exc}", source=path) from exc
    if frame.shape[0] < 2 or frame.shape[1] < 1:
        raise ConfigError(
            f"motif scores must have at least 2 rows and 1 motif column (found {frame.shape[0]} x {frame.shape[1]})",
            source=path,
        )
    bad_columns = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad_columns:
        raise ConfigError(f"motif column {bad_columns[0]!r} is not numeric; expected numbers in every column", source=path)
    values = frame.to_numpy(dtype=float)
    missing = np.argwhere(~np.isfinite(values))
    if missing.size:
        i, j = missing[0]
        raise ConfigError(
            f"{len(missing)} missing or non-finite motif score(s), first at row {frame.index[i]!r}, "
            f"motif {frame.columns[j]!r} (value {values[i, j]!r}); expected finite numbers (fill or drop them first)",
            source=path,
        )
    return MotifScores(minmax_columns(values), tuple(map(str, frame.index)), tuple(map(str, frame.columns)))


def load_motif_scores(path: str | Path) -> MotifScores:
    """Read and min-max scale a motif-score file (cached per path and modification time).

    Raises :class:`ConfigError` naming the file for unreadable, non-numeric or non-finite input.
    """
    p = Path(path).expanduser()
    try:
        mtime = p.stat().st_mtime_ns
    except OSError as exc:
        raise ConfigError(f"motif score file not found ({exc.strerror})", source=str(path)) from exc
    return _load(str(p), mtime)


def draw_rows(n_rows: int, genes: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices for G genes: a random subset when G <= n_rows, else the rows tiled.

    Tiled: a fresh permutation of all rows per pass, so each row occurs floor(G / n) or
    ceil(G / n) times.
    """
    passes = math.ceil(genes / n_rows)
    return np.concatenate([rng.permutation(n_rows) for _ in range(passes)])[:genes]


def draw_motif_matrix(source: np.ndarray, genes: int, motifs: int, rng: np.random.Generator) -> np.ndarray:
    """M (G x T): G rows (subset or tiled) and T distinct columns of ``source`` (rows x motifs)."""
    n_rows, n_motifs = source.shape
    if motifs > n_motifs:
        raise ConfigError(f"cannot draw {motifs} distinct motifs from {n_motifs} columns (drawn without replacement)")
    cols = np.sort(rng.choice(n_motifs, size=motifs, replace=False))
    rows = draw_rows(n_rows, genes, rng)
    return np.ascontiguousarray(source[np.ix_(rows, cols)], dtype=float)


def synthetic_motif_matrix(genes: int, motifs: int, rng: np.random.Generator) -> np.ndarray:
    """M (G x T) with Unif(0, 1) entries, min-max scaled per column like real scores."""
    return minmax_columns(rng.random((genes, motifs)))
