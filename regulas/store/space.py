"""A full disk (or quota) under the store: recognised wherever it surfaces, so that the run
stops with one message instead of recording every remaining task as failed.

It surfaces as an ``OSError`` (ENOSPC, EDQUOT) from a Zarr chunk write or a file the
driver writes, or as SQLite's ``SQLITE_FULL`` ("database or disk is full") from a commit,
wrapped by SQLAlchemy.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from pathlib import Path

from regulas.core.errors import StoreFull

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
SQLITE_FULL = 13  # sqlite3.Error.sqlite_errorcode of "database or disk is full"


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or an exception it wraps) says the disk or quota is full."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, StoreFull) or (isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS):
            return True
        if isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL:
            return True
        wrapped = getattr(exc, "orig", None)  # sqlalchemy.exc.DBAPIError
        exc = wrapped if isinstance(wrapped, BaseException) else (exc.__cause__ or exc.__context__)
    return False


def store_full(root: Path, detail: str) -> StoreFull:
    """The one message for a full disk under ``root``: where, how much is free, what to do."""
    try:
        free = f"{shutil.disk_usage(root).free / 2**20:,.1f} MiB free"
    except OSError:
        free = "free space unknown"
    return StoreFull(
        f"no space left for the store at {root} ({free}; {detail}); the finished tasks are saved: free some "
        "space (or move store.root) and rerun the same command to resume"
    )


class DiskReserve:
    """A few MiB held on the store's disk while a run lasts, given back when the disk fills.

    When the disk fills, SQLite cannot commit anything, not even the finished tasks still
    buffered or the study's ``interrupted`` mark. Deleting this file first leaves room for
    both (they are small), so the run ends cleanly. Written with real bytes: a sparse file
    would hold no blocks.
    """

    def __init__(self, path: Path, size: int = 2 * 2**20) -> None:
        self.path = path
        self.size = size

    def hold(self) -> None:
        try:
            with open(self.path, "wb") as f:
                f.write(b"\0" * self.size)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            self.release()
            if exc.errno in DISK_FULL_ERRNOS:
                raise store_full(self.path.parent, f"{self.size // 2**20} MiB could not be set aside for the run") from None
            raise

    def release(self) -> None:
        self.path.unlink(missing_ok=True)
