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


def check_not_empty(frame: pd.DataFrame, what: str, source: str, key: str | None) -> None:
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise DataError(
            f"no data: {what} has {frame.shape[0]} samples x {frame.shape[1]} columns; expected at least one of each",
            key=key,
            source=source,
        )


def check_psi(Y: pd.DataFrame, source: str, key: str | None) -> None:
    """PSI values must be NaN or lie in [0, 1]; names the event and sample of the first outlier."""
    v = Y.to_numpy()
    bad = (v < 0) | (v > 1) | np.isinf(v)
    if not bad.any():
        return
    sample, event, value = first_cell(Y, bad)
    finite = v[np.isfinite(v)]
    hint = ""
    if finite.size and 1 < finite.max() <= 100 and finite.min() >= 0:
        hint = " (values up to 100 look like percentages: divide them by 100)"
    raise DataError(
        f"PSI out of range at event {event!r}, sample {sample!r}: {value!r} ({int(bad.sum())} values outside [0, 1])"
        f"{hint}; expected PSI in [0, 1] or empty for missing",
        key=key,
        source=source,
    )


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


def unique_columns(frame: pd.DataFrame, what: str, source: str, key: str | None) -> None:
    if not frame.columns.is_unique:
        dup = frame.columns[frame.columns.duplicated()].unique()
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


def transposed_hint(frame: pd.DataFrame, other: pd.Index, layout_key: str) -> str:
    """A hint when frame's columns, rather than its rows, carry the other file's sample IDs."""
    by_rows = len(frame.index.intersection(other))
    by_cols = len(frame.columns.intersection(other))
    if by_cols > by_rows:
        return f" The columns of this file match {by_cols} sample IDs: is it transposed? Check {layout_key}."
    return ""
