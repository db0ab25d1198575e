"""The container every loader returns: features X, PSI targets Y and sample annotations."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
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


def column_digests(values: np.ndarray) -> list[bytes]:
    """sha256 of each column of a (n_samples, k) block: its float64 values, NaN canonical.

    The data fingerprint hashes Y through these, one per event, so a table read block of
    events by block (:mod:`regulas.data.streamed`) gets the same fingerprint as one in memory.
    """
    columns = np.ascontiguousarray(np.asarray(values, dtype=np.float64).T)
    nan = np.isnan(columns)
    if nan.any():
        columns = np.where(nan, np.nan, columns)
    return [hashlib.sha256(c.tobytes()).digest() for c in columns]


#: events per block when the whole Y is hashed or written block by block
DIGEST_BLOCK = 1024


def data_fingerprint(
    X: pd.DataFrame, events: pd.Index, y_digests: list[bytes], meta: pd.DataFrame | None
) -> str:
    """sha256 (hex) over X's samples, features and values, the events and their column
    digests (:func:`column_digests`), and meta's columns and values when present."""
    h = hashlib.sha256()
    _hash_index(h, "samples", X.index)
    _hash_index(h, "features", X.columns)
    _hash_values(h, X.to_numpy())
    _hash_index(h, "events", events)
    h.update(b"Y by event:")
    h.update(b"".join(y_digests))
    if meta is not None:
        _hash_index(h, "meta", meta.columns)
        hashed = pd.util.hash_pandas_object(meta.astype(str), index=False)
        h.update(hashed.to_numpy().tobytes())
    return h.hexdigest()


class Dataset(ABC):
    """What a study reads of a dataset, its PSI in memory (:class:`SplicingData`) or in their
    file (:class:`regulas.data.streamed.StreamedData`): X, the events, the PSI block by block."""

    X: pd.DataFrame

    @property
    @abstractmethod
    def events(self) -> pd.Index:
        """The events, in the order of Y's columns."""

    @property
    def samples(self) -> pd.Index:
        return self.X.index

    @property
    def features(self) -> pd.Index:
        return self.X.columns

    @property
    def shape(self) -> tuple[int, int, int]:
        """(n_samples, n_features, n_events)."""
        return (self.X.shape[0], self.X.shape[1], len(self.events))

    @abstractmethod
    def missing_count(self) -> int:
        """Missing PSI values."""

    def summary(self) -> str:
        """One line: sizes and missing PSI share, for logs and the DB."""
        n, p, e = self.shape
        missing = self.missing_count() / (n * e) if n * e else 0.0
        return f"{n} samples x {p} features, {e} events ({missing:.1%} of PSI missing)"

    @abstractmethod
    def target_blocks(self, width: int) -> Iterator[tuple[int, np.ndarray]]:
        """Y as (first event, (n_samples, k) float64 block) of ``width`` events (the last fewer)."""


@dataclass(frozen=True)
class SplicingData(Dataset):
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
    def events(self) -> pd.Index:
        return self.Y.columns

    def fingerprint(self) -> str:
        """sha256 (hex) over the index, columns and values of X and Y, and of meta when present
        (:func:`data_fingerprint`; Y event by event).

        name, description and log are not part of it: two loaders that produce the same
        numbers produce the same fingerprint.
        """
        digests = [d for _, block in self.target_blocks(DIGEST_BLOCK) for d in column_digests(block)]
        return data_fingerprint(self.X, self.Y.columns, digests, self.meta)

    def target_blocks(self, width: int) -> Iterator[tuple[int, np.ndarray]]:
        """Y as (first event, (n_samples, k) float64 block) of ``width`` events (the last fewer)."""
        values = self.Y.to_numpy(dtype=np.float64)
        for start in range(0, values.shape[1], width):
            yield start, values[:, start : start + width]

    def missing_count(self) -> int:
        return int(np.isnan(self.Y.to_numpy()).sum())
