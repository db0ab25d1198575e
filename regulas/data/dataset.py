"""The container every loader returns: features X, PSI targets Y and sample annotations."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd


def _hash_index(h: hashlib._Hash, label: str, index: pd.Index) -> None:
    h.update(f"{label}:{len(index)}\0".encode())
    h.update("\0".join(map(str, index)).encode())
    h.update(b"\1")


def _hash_values(h: hashlib._Hash, values: np.ndarray) -> None:
    # One canonical NaN bit pattern, so equal data gives an equal fingerprint.
    v = np.ascontiguousarray(values, dtype=np.float64)
    nan = np.isnan(v)
    if nan.any():
        v = np.where(nan, np.nan, v)
    h.update(v.tobytes())


@dataclass(frozen=True)
class SplicingData:
    """One splicing-regulome dataset, samples aligned across its parts.

    Attributes:
        X: (n_samples, n_features) float64, no NaN: features such as RBP expression.
        Y: (n_samples, n_events) float64 PSI in [0, 1]; NaN marks a missing value.
        meta: (n_samples, n_annotations) or None: sample annotations (tissue, condition, ...),
            same index as X and Y.
        name: dataset name (regulAS ``name``).
        description: free text (regulAS ``meta``).
        log: what loading and preprocessing did, in order (e.g. "dropped 3 all-NaN events").

    X, Y (and meta) share one index of unique sample IDs in the same order; the constructor
    checks it, so a SplicingData is always consistent.
    """

    X: pd.DataFrame
    Y: pd.DataFrame
    meta: pd.DataFrame | None = None
    name: str = ""
    description: str = ""
    log: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.X.index.equals(self.Y.index):
            raise ValueError("SplicingData: X and Y must have the same sample index in the same order")
        if self.meta is not None and not self.meta.index.equals(self.X.index):
            raise ValueError("SplicingData: meta must have the same sample index as X and Y")
        if not self.X.index.is_unique:
            raise ValueError("SplicingData: sample IDs must be unique")
        for label, frame in (("X", self.X), ("Y", self.Y)):
            if not all(dt == np.float64 for dt in frame.dtypes.unique()):
                raise ValueError(f"SplicingData: {label} must be float64")
        if np.isnan(self.X.to_numpy()).any():
            raise ValueError("SplicingData: X must not contain NaN")
        y = self.Y.to_numpy()
        if ((y < 0) | (y > 1)).any():
            raise ValueError("SplicingData: Y (PSI) must lie in [0, 1]")

    @property
    def samples(self) -> pd.Index:
        return self.X.index

    @property
    def features(self) -> pd.Index:
        return self.X.columns

    @property
    def events(self) -> pd.Index:
        return self.Y.columns

    @property
    def shape(self) -> tuple[int, int, int]:
        """(n_samples, n_features, n_events)."""
        return (self.X.shape[0], self.X.shape[1], self.Y.shape[1])

    def fingerprint(self) -> str:
        """sha256 (hex) over the index, columns and values of X and Y, and of meta when present.

        name, description and log are not part of it: two loaders that produce the same
        numbers produce the same fingerprint.
        """
        h = hashlib.sha256()
        _hash_index(h, "samples", self.X.index)
        _hash_index(h, "features", self.X.columns)
        _hash_values(h, self.X.to_numpy())
        _hash_index(h, "events", self.Y.columns)
        _hash_values(h, self.Y.to_numpy())
        if self.meta is not None:
            _hash_index(h, "meta", self.meta.columns)
            hashed = pd.util.hash_pandas_object(self.meta.astype(str), index=False)
            h.update(hashed.to_numpy().tobytes())
        return h.hexdigest()

    def summary(self) -> str:
        """One line: sizes and missing PSI share, for logs and the DB."""
        n, p, e = self.shape
        missing = float(np.isnan(self.Y.to_numpy()).mean()) if n * e else 0.0
        return f"{n} samples x {p} features, {e} events ({missing:.1%} of PSI missing)"
