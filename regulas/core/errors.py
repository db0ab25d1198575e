"""Exceptions with messages meant for the person who runs a study."""

from __future__ import annotations


class RegulasError(Exception):
    """Base class of every error regulas raises on purpose."""


class ConfigError(RegulasError):
    """A config is invalid: the message names the key or file, the value and what is allowed.

    The CLI turns it into exit code 2 before any work starts.
    """

    def __init__(self, message: str, *, key: str | None = None, source: str | None = None) -> None:
        where = []
        if source:
            where.append(source)
        if key:
            where.append(f"key '{key}'")
        prefix = ": ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.key = key
        self.source = source


class DataError(ConfigError):
    """An input data file is unusable: the message names the file, the row/column or value
    at fault and what was expected. Raised by :mod:`regulas.data` before any work starts."""


class StoreError(RegulasError):
    """The result store (SQLite database or Zarr arrays) cannot be used as asked."""


class OwnershipError(StoreError):
    """A Zarr write would touch a chunk the writing task does not own in full.

    zarr 3 silently loses updates when two processes write parts of one chunk, so the
    store refuses such plans and such writes instead of trusting a convention.
    """


class ClusterError(RegulasError):
    """The Dask cluster could not be started or reached."""
