"""A self-describing store root: ``<store.root>/regulas-store.json`` names its database and
its Zarr folder, so commands that take a store root (``status``, ``report``) find them
whatever ``store.db`` and ``store.arrays`` were.

Written by the driver when it first opens a root; a root made before the marker existed
(or by hand) is read with the default names.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regulas.core.errors import StoreError

MARKER = "regulas-store.json"
FORMAT = 1
DEFAULT_DB = "regulas.db"
DEFAULT_ARRAYS = "arrays.zarr"


@dataclass(frozen=True)
class StoreLayout:
    """Where a store's database and arrays are."""

    root: Path
    db: str = DEFAULT_DB
    arrays: str = DEFAULT_ARRAYS

    @property
    def db_path(self) -> Path:
        return self.root / self.db

    @property
    def arrays_path(self) -> Path:
        return self.root / self.arrays


def check_writable(folder: Path, what: str, fix: str) -> None:
    """Refuse a folder regulas cannot write, before anything is created in it.

    Tried for real (a temporary file in ``folder`` or, when it does not exist yet, in its
    nearest existing parent): permission bits say nothing to root, nor about a read-only
    mount or a full disk.
    """
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        fd, name = tempfile.mkstemp(prefix=".regulas-write-check-", dir=existing)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        where = folder if existing == folder else f"{folder} (in {existing})"
        raise StoreError(f"{what} {where} is not writable ({exc.strerror or exc}); {fix}") from None


def write_marker(layout: StoreLayout) -> None:
    """Record the layout in the root; refuse a root whose marker names another database."""
    path = layout.root / MARKER
    if path.is_file():
        found = read_marker(layout.root)
        if (found.db, found.arrays) != (layout.db, layout.arrays):
            raise StoreError(
                f"store root {layout.root} holds database {found.db!r} and arrays {found.arrays!r} ({MARKER}); "
                f"this config asks for {layout.db!r} and {layout.arrays!r}: use the same store.db and "
                "store.arrays, or another store.root"
            )
        return
    layout.root.mkdir(parents=True, exist_ok=True)
    # two drivers starting together each write their own temporary file
    write_json_atomically(path, {"format": FORMAT, "db": layout.db, "arrays": layout.arrays})


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    """``data`` as JSON at ``path``, replaced atomically: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


def read_marker(root: Path) -> StoreLayout:
    path = root / MARKER
    try:
        data = json.loads(path.read_text())
        return StoreLayout(root, db=str(data["db"]), arrays=str(data["arrays"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"{path} is not a regulas store marker ({exc}); expected JSON with 'db' and 'arrays'") from exc


def find_layout(path: Path) -> StoreLayout:
    """The layout of the store at ``path``: a store root (with or without a marker) or its database file."""
    path = Path(path).expanduser().resolve()
    if path.is_file():
        root = path.parent
        arrays = read_marker(root).arrays if (root / MARKER).is_file() else DEFAULT_ARRAYS
        return StoreLayout(root, db=path.name, arrays=arrays)
    if (path / MARKER).is_file():
        return read_marker(path)
    if path.is_dir() and (path / DEFAULT_DB).is_file():
        return StoreLayout(path)
    raise StoreError(
        f"no regulas store at {path} (expected a store.root folder holding {MARKER}, or a regulas database file)"
    )
