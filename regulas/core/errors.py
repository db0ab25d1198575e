"""Exceptions with messages meant for the person who runs a study."""

from __future__ import annotations

import difflib
import signal
from collections.abc import Iterable


class RegulasError(Exception):
    """Base class of every error regulas raises on purpose."""


class ConfigError(RegulasError):
    """A config is invalid: the message names the key or file, the value and what is allowed.

    The CLI turns it into exit code 2 before any work starts.

    ``source`` is where the value came from: a file (with ``line`` when known, shown as
    ``file:line``) or a command-line override.
    """

    def __init__(
        self, message: str, *, key: str | None = None, source: str | None = None, line: int | None = None
    ) -> None:
        self.message = message
        self.key = key
        self.source = source
        self.line = line
        super().__init__(self._text())

    def _text(self) -> str:
        where = []
        if self.source:
            where.append(f"{self.source}:{self.line}" if self.line is not None else self.source)
        if self.key:
            where.append(f"key '{self.key}'")
        prefix = ": ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message

    def relocate(self, source: str, line: int | None = None) -> None:
        """Blame another source (and line) for the error, in place (keeps the class)."""
        self.source = source
        self.line = line
        self.args = (self._text(),)


def did_you_mean(given: object, options: Iterable[str], *, prefix: str = "") -> str:
    """``"did you mean 'x'?"`` for the option closest to ``given`` (``prefix`` + the option
    is shown), or ``""`` when none is close (:func:`difflib.get_close_matches`)."""
    if not isinstance(given, str) or not given:
        return ""
    found = difflib.get_close_matches(given, list(options), n=1, cutoff=0.6)
    return f"did you mean '{prefix}{found[0]}'?" if found else ""


class DataError(ConfigError):
    """An input data file is unusable: the message names the file, the row/column or value
    at fault and what was expected. Raised by :mod:`regulas.data` before any work starts."""


class StoreError(RegulasError):
    """The result store (SQLite database or Zarr arrays) cannot be used as asked."""


class StoreFull(StoreError):
    """The disk (or quota) holding the store is full: the run stops, the study is ``interrupted``."""


class LeaseLost(RegulasError):
    """Another driver took over this driver's study (its lease went stale while it was frozen
    or cut off): this driver stops without writing. Not a :class:`StoreError`, which a task's
    rows can provoke: nothing here is the fault of the tasks being committed."""


class OwnershipError(StoreError):
    """A Zarr write would touch a chunk the writing task does not own in full.

    zarr 3 silently loses updates when two processes write parts of one chunk, so the
    store refuses such plans and such writes instead of trusting a convention.
    """


class ClusterError(RegulasError):
    """The Dask cluster could not be started or reached."""


class Terminated(KeyboardInterrupt):
    """The driver was asked to stop by a signal other than Ctrl-C (SIGTERM, SIGHUP).

    A :class:`KeyboardInterrupt`, so the interrupt path does the work (commit the finished
    tasks, mark the study ``interrupted``); ``signum`` gives the CLI its exit code (128 + signum).
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signame = signal.Signals(signum).name
        super().__init__(self.signame)
