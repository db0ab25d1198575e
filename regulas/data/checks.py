"""Vectorised checks of raw tables; each failure is one DataError naming the file and the cells.

Every function takes a labelled table and the file it came from (``source``) plus the config
key naming that file, so the message tells the user exactly where to look.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from regulas.core.errors import DataError


def few(labels: pd.Index | list[object] | np.ndarray, n: int = 5) -> str:
    """First n labels for a message, with the total when there are more."""
    items = list(labels)
    shown = ", ".join(repr(str(v)) for v in items[:n])
    return f"{shown}, ... ({len(items)} in all)" if len(items) > n else shown


def first_cell(frame: pd.DataFrame, mask: np.ndarray) -> tuple[str, str, float]:
    """(row ID, column ID, value) of the first True cell of mask, in row-major order."""
    i, j = np.argwhere(mask)[0]
    return str(frame.index[i]), str(frame.columns[j]), float(frame.iat[i, j])


def check_not_empty(frame: pd.DataFrame | tuple[int, int], what: str, source: str, key: str | None) -> None:
    """A table (or its shape) with at least one sample and one column."""
    n_rows, n_cols = frame if isinstance(frame, tuple) else frame.shape
    if n_rows == 0 or n_cols == 0:
        raise DataError(
            f"no data: {what} has {n_rows} samples x {n_cols} columns; expected at least one of each",
            key=key,
            source=source,
        )


class PsiRange:
    """The PSI range check, accumulated over blocks of events (all samples of each event).

    :func:`check_psi` is one block; a streamed table adds its blocks in event order and
    raises once at the end, with the same message as for the whole table.
    """

    def __init__(self) -> None:
        self.n_bad = 0
        self.first: tuple[int, int, float] | None = None  # (row, column, value), row-major
        self.finite_min = np.inf
        self.finite_max = -np.inf

    def add(self, v: np.ndarray, start: int = 0) -> None:
        """A (n_samples, k) block: the columns ``start:start + k`` of the table."""
        bad = (v < 0) | (v > 1) | np.isinf(v)
        finite = v[np.isfinite(v)]
        if finite.size:
            self.finite_min = min(self.finite_min, float(finite.min()))
            self.finite_max = max(self.finite_max, float(finite.max()))
        if not bad.any():
            return
        self.n_bad += int(bad.sum())
        i, j = np.argwhere(bad)[0]
        if self.first is None or (int(i), start + int(j)) < self.first[:2]:
            self.first = (int(i), start + int(j), float(v[i, j]))

    def check(self, samples: pd.Index, events: pd.Index, source: str, key: str | None) -> None:
        if self.first is None:
            return
        i, j, value = self.first
        hint = ""
        if self.finite_max > -np.inf and 1 < self.finite_max <= 100 and self.finite_min >= 0:
            hint = " (values up to 100 look like percentages: divide them by 100)"
        raise DataError(
            f"PSI out of range at event {str(events[j])!r}, sample {str(samples[i])!r}: {value!r} ({self.n_bad} values "
            f"outside [0, 1]){hint}; expected PSI in [0, 1] or empty for missing",
            key=key,
            source=source,
        )


def check_psi(Y: pd.DataFrame, source: str, key: str | None) -> None:
    """PSI values must be NaN or lie in [0, 1]; names the event and sample of the first outlier."""
    check = PsiRange()
    check.add(Y.to_numpy())
    check.check(Y.index, Y.columns, source, key)


def check_finite(X: pd.DataFrame, source: str, key: str | None) -> None:
    bad = np.isinf(X.to_numpy())
    if bad.any():
        sample, gene, value = first_cell(X, bad)
        raise DataError(
            f"infinite value at sample {sample!r}, feature {gene!r}: {value!r} ({int(bad.sum())} in all); "
            "expected finite numbers",
            key=key,
            source=source,
        )


def unique_columns(frame: pd.DataFrame | pd.Index, what: str, source: str, key: str | None) -> None:
    """The columns of a table (or those labels) are unique."""
    columns = frame if isinstance(frame, pd.Index) else frame.columns
    if not columns.is_unique:
        dup = columns[columns.duplicated()].unique()
        raise DataError(f"duplicate {what} IDs: {few(dup)}; expected unique IDs", key=key, source=source)


def duplicate_samples(
    frame: pd.DataFrame, policy: str, what: str, source: str, key: str | None, log: list[str]
) -> pd.DataFrame:
    """Apply the duplicate_samples policy ("fail" or "keep_first") to the rows of frame."""
    dup = frame.index.duplicated()
    if not dup.any():
        return frame
    ids = frame.index[dup].unique()
    if policy == "fail":
        raise DataError(
            f"duplicate sample IDs in {what}: {few(ids)}; expected each sample once "
            "(or set duplicate_samples: keep_first)",
            key=key,
            source=source,
        )
    log.append(f"{what}: dropped {int(dup.sum())} repeated rows of duplicate sample IDs ({few(ids, 3)}), kept the first")
    return frame.loc[~dup]


def transposed_hint(frame: pd.DataFrame | tuple[pd.Index, pd.Index], other: pd.Index, layout_key: str) -> str:
    """A hint when frame's columns, rather than its rows, carry the other file's sample IDs
    (``frame`` may be its (rows, columns) labels)."""
    rows, columns = frame if isinstance(frame, tuple) else (frame.index, frame.columns)
    by_rows = len(rows.intersection(other))
    by_cols = len(columns.intersection(other))
    if by_cols > by_rows:
        return f" The columns of this file match {by_cols} sample IDs: is it transposed? Check {layout_key}."
    return ""
