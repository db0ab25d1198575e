"""Many input files, one study: file lists, globs and comma lists, and the union of their samples.

regulAS users keep one pickle per splicing event (``<out>/<gene>/<gene>_<setup>.pkl``) and
swept over them with ``--multirun dataset.path_to_file=a.pkl,b.pkl``. Here such a spelling
names the files of one study:

- :func:`expand_files` turns a path, a glob (``**`` allowed), a comma list or a YAML list of
  paths/globs into a sorted list of files, checked before any work starts;
- :class:`RowUnion` and :func:`stack_events` build the union of the files' samples and put
  each file's events in it (NaN where a file has no row for a sample); the pickle loader and
  the table loader's ``targets`` share them;
- :func:`read_event_pickles` reads regulAS's per-event pickles in batches, in a process pool
  above :data:`PARALLEL_MIN_FILES` files, and merges them as they arrive: one copy of the
  features X (files with identical X are recognised by a digest) plus each file's PSI column.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import multiprocessing
import os
import pickle
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from regulas.core.errors import ConfigError, DataError
from regulas.data.checks import check_finite, check_psi, duplicate_samples, few
from regulas.data.tables import as_float, check_exists

logger = logging.getLogger("regulas.data")

GLOB_CHARS = frozenset("*?[")
#: below this many files the pickles are read in the driver: starting a pool and shipping the
#: results costs more than it saves (measured: 2 processes win from ~500 files of 40 x 870)
PARALLEL_MIN_FILES = 256
#: files per task of the pool: small enough to stream, large enough to amortise the task cost
BATCH_FILES = 32


@dataclass(frozen=True)
class FileList:
    """The files a path argument names, in reading order (sorted by absolute path).

    ``single`` is True when the argument was one literal path (no glob, list or comma):
    loaders then keep their one-file behaviour (e.g. event names from the columns).
    """

    files: tuple[str, ...]
    single: bool
    given: str  # the argument as written, for messages

    def describe(self) -> str:
        return self.files[0] if self.single else f"{len(self.files)} files from {self.given}"


def _is_glob(text: str) -> bool:
    return any(c in GLOB_CHARS for c in text)


def _exists(text: str, table: bool) -> bool:
    path = Path(text).expanduser()
    return path.is_file() or (table and path.suffix == ".zarr" and path.is_dir())


def _literal(text: str, key: str, table: bool) -> str:
    """One existing file (a table of a known format when ``table``), as an absolute path."""
    path = Path(text).expanduser()
    if table:
        check_exists(text, key=key)  # also the format; "file.h5#group" names a group inside file.h5
        return text if "#" in text else os.path.abspath(path)
    if not path.is_file():
        raise ConfigError(
            f"file not found (given: {text!r}, resolved to {path.resolve()}); expected an existing file", key=key
        )
    return os.path.abspath(path)


def _matches(pattern: str, key: str, table: bool) -> list[str]:
    expanded = os.path.expanduser(pattern)
    found = [os.path.abspath(p) for p in glob.glob(expanded, recursive=True) if _exists(p, table)]
    if not found:
        where = "" if os.path.isabs(expanded) else f" (relative to {os.getcwd()})"
        raise ConfigError(f"no file matches the pattern {pattern!r}{where}; expected a glob matching at least one file", key=key)
    if table:
        for path in found:
            check_exists(path, key=key)  # a known table format
    return found


def _items(value: Any, key: str, table: bool) -> tuple[list[str], bool]:
    """The spellings to expand, and whether ``value`` is one literal path."""
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value).strip()
        if not text:
            raise ConfigError(f"expected a file path, a glob or a comma list (given: {value!r})", key=key)
        if ("," not in text and not _is_glob(text)) or _exists(text, table):
            return [text], True  # an existing file named with a comma or "[" is taken as written
        items = [t.strip() for t in text.split(",")]
    elif isinstance(value, (list, tuple)) and value:
        items = []
        for i, item in enumerate(value):
            if not isinstance(item, (str, os.PathLike)) or not os.fspath(item).strip():
                raise ConfigError(f"item {i} of the list: expected a file path or a glob (given: {item!r})", key=key)
            items.append(os.fspath(item).strip())
        return items, False
    else:
        raise ConfigError(
            f"expected a file path, a glob, a comma list or a list of paths (given: {value!r})", key=key
        )
    if not all(items):
        raise ConfigError(f"empty name in the comma list {text!r}; expected paths or globs separated by commas", key=key)
    return items, False


def expand_files(value: Any, key: str, *, table: bool) -> FileList:
    """Check and expand a path argument: one path, a glob, a comma list or a list of both.

    Every file must exist (``table``: in a known table format), a glob must match at least
    one file and no file may be named twice (after resolving links); the files are sorted
    by absolute path, so every spelling of the same files gives the same order.
    """
    items, single = _items(value, key, table)
    if single:  # as before: the path as written, with ~ expanded
        _literal(items[0], key, table)
        text = items[0]
        return FileList((text if "#" in text else str(Path(text).expanduser()),), True, text)
    named: dict[str, tuple[str, str]] = {}  # resolved path -> (path, how it was named)
    for item in items:
        found = [_literal(item, key, table)] if not _is_glob(item) or _exists(item, table) else _matches(item, key, table)
        for path in found:
            spelling = item if item == path or not _is_glob(item) else f"{path} (from {item!r})"
            resolved = os.path.realpath(path)
            if resolved in named:
                raise ConfigError(
                    f"the file {resolved} is named twice: as {named[resolved][1]!r} and as {spelling!r}; expected each file once",
                    key=key,
                )
            named[resolved] = (path, spelling)
    files = sorted(p for p, _ in named.values())
    return FileList(tuple(files), False, value if isinstance(value, str) else ", ".join(items))


def file_labels(files: Sequence[str]) -> list[str]:
    """Unique short names of files: the name without its last suffix, and where two files
    share it the shortest tail of their paths that differs (``CAST/CAST_SE_1``, then
    ``a/CAST/CAST_SE_1``, ...)."""
    parts = [Path(f).parent.parts + (Path(f).stem,) for f in files]
    depth = [1] * len(files)
    while True:
        labels = ["/".join(p[-d:]) for p, d in zip(parts, depth)]
        seen: dict[str, list[int]] = {}
        for i, label in enumerate(labels):
            seen.setdefault(label, []).append(i)
        clashes = [i for group in seen.values() if len(group) > 1 for i in group]
        if not clashes:
            return labels
        for i in clashes:
            depth[i] += 1


class RowUnion:
    """The union of the sample IDs of several files, in order of first appearance."""

    def __init__(self) -> None:
        self.position: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.position)

    def add(self, rows: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Positions of ``rows`` in the union (new ones appended) and which of them were new."""
        new = np.array([r not in self.position for r in rows], dtype=bool)
        for r in np.asarray(rows, dtype=object)[new]:
            self.position[r] = len(self.position)
        return np.fromiter((self.position[r] for r in rows), dtype=np.intp, count=len(rows)), new

    @property
    def index(self) -> pd.Index:
        return pd.Index(list(self.position))


@dataclass
class EventBlock:
    """One file's events: values at ``positions`` of the row union, columns ``names``."""

    source: str
    positions: np.ndarray
    names: list[str]
    values: np.ndarray  # (len(positions), len(names))


def stack_events(blocks: Sequence[EventBlock], n_rows: int, index: pd.Index, key: str) -> pd.DataFrame:
    """All files' events side by side over the row union, NaN where a file has no row.

    Event names must be unique across files; a clash names both files.
    """
    owner: dict[str, str] = {}
    for block in blocks:
        for name in block.names:
            if name in owner:
                raise DataError(
                    f"event {name!r} is in two files: {owner[name]} and {block.source}; expected unique event names across files",
                    key=key,
                    source=block.source,
                )
            owner[name] = block.source
    Y = np.full((n_rows, len(owner)), np.nan)
    j = 0
    for block in blocks:
        k = len(block.names)
        Y[block.positions, j : j + k] = block.values
        j += k
    return pd.DataFrame(Y, index=index, columns=pd.Index(list(owner)))


# ------------------------------------------------------------------ regulAS's per-event pickles


@dataclass
class EventPickle:
    """One regulAS pickle as arrays: features X and target columns Y over its rows."""

    source: str
    rows: list[str]
    columns: list[str]  # feature columns
    targets: list[str]
    X: np.ndarray  # (rows, columns) float64
    Y: np.ndarray  # (rows, targets) float64

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        index = pd.Index(self.rows)
        return (
            pd.DataFrame(self.X, index=index, columns=pd.Index(self.columns)),
            pd.DataFrame(self.Y, index=index, columns=pd.Index(self.targets)),
        )


def read_event_pickle(source: str, objective: str | list[str] | None, key: str, objective_key: str) -> EventPickle:
    """Read and check one regulAS pickle: a DataFrame, samples as rows, numeric cells.

    Y holds the ``objective`` column(s) (default: the last column), X all the others.
    Labels become strings. Works on plain arrays: 10,000 files make pandas' per-call
    overhead the largest cost.
    """
    try:
        frame = pd.read_pickle(source)
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, AttributeError, ImportError, TypeError) as exc:
        raise DataError(f"cannot unpickle: {exc}; expected a pickled pandas DataFrame", key=key, source=source) from exc
    if not isinstance(frame, pd.DataFrame):
        raise DataError(
            f"the pickle holds a {type(frame).__name__}; expected a pandas DataFrame (samples x columns)", key=key, source=source
        )
    if frame.shape[1] < 2 or frame.shape[0] == 0:
        raise DataError(
            f"empty data: {frame.shape[0]} samples x {frame.shape[1]} columns; expected samples as rows and "
            "at least one feature column besides the objective",
            key=key,
            source=source,
        )
    columns = frame.columns.astype(str).tolist()
    if len(set(columns)) < len(columns):
        repeated = pd.Index(columns)
        raise DataError(
            f"duplicate column names: {few(repeated[repeated.duplicated()].unique())}; expected unique feature and objective columns",
            key=key,
            source=source,
        )
    targets = [objective] if isinstance(objective, str) else objective or [columns[-1]]
    missing = [t for t in targets if t not in columns]
    if missing:
        raise DataError(
            f"objective column {missing[0]!r} not found (columns end with {columns[-5:]}); expected the name of the PSI column",
            key=objective_key,
            source=source,
        )
    rows = frame.index.astype(str).tolist()
    values = frame.to_numpy()
    if values.dtype.kind in "fiu":  # the usual case: one numeric block, no per-column work
        values = values.astype(np.float64, copy=False)
    else:  # names the first non-numeric cell
        values = as_float(frame.set_axis(columns, axis=1).set_axis(rows, axis=0), source=source, key=key).to_numpy()
    where = [columns.index(t) for t in targets]
    is_target = np.zeros(len(columns), dtype=bool)
    is_target[where] = True
    features = list(columns)
    for j in sorted(set(where), reverse=True):
        del features[j]
    return EventPickle(source, rows, features, list(targets), values[:, ~is_target], values[:, where])


@dataclass
class XBlock:
    """Features of one or more files with identical X (same digest)."""

    digest: str
    source: str  # the first file with this X
    rows: list[str]
    columns: list[str]
    values: np.ndarray


@dataclass
class FileY:
    source: str
    block: int  # index into the batch's X blocks
    targets: list[str]
    values: np.ndarray


@dataclass
class Batch:
    blocks: list[XBlock] = field(default_factory=list)
    files: list[FileY] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    error: tuple[str, str | None, str | None] | None = None  # (message, key, source) of the first bad file


def x_digest(rows: Sequence[str], columns: Sequence[str], values: np.ndarray) -> str:
    h = hashlib.sha256()  # the fastest hashlib digest with CPU support
    for labels in (rows, columns):
        h.update("\0".join(labels).encode())
        h.update(b"\1")
    h.update(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return h.hexdigest()


def read_batch(paths: Sequence[str], objective: str | list[str] | None, policy: str, key: str, objective_key: str) -> Batch:
    """Read, check and compact a batch of pickles (runs in a pool worker or in the driver).

    Errors come back as data, not exceptions: the driver raises the first one in file order.
    """
    out = Batch()
    by_digest: dict[str, int] = {}
    for path in paths:
        try:
            read = read_event_pickle(path, objective, key, objective_key)
            y, x = read.Y, read.X
            if ((y < 0) | (y > 1) | np.isinf(y)).any() or np.isinf(x).any():
                X, Y = read.frames()
                check_psi(Y, path, key)
                check_finite(X, path, key)
            if len(set(read.rows)) < len(read.rows):
                index = pd.Index(read.rows)
                duplicate_samples(pd.DataFrame(index=index), policy, "the file", path, key, out.log)
                first = ~index.duplicated()
                read = EventPickle(path, list(index[first]), read.columns, read.targets, x[first], y[first])
        except DataError as exc:
            out.error = (exc.message, exc.key, exc.source)
            return out
        digest = x_digest(read.rows, read.columns, read.X)
        if digest not in by_digest:
            by_digest[digest] = len(out.blocks)
            out.blocks.append(XBlock(digest, path, read.rows, read.columns, read.X))
        out.files.append(FileY(path, by_digest[digest], read.targets, read.Y))
    return out


class FeatureUnion:
    """One X over the union of the files' samples; checks that files agree on features.

    Files share the first file's feature columns (in any order) and, for a sample they
    share, the same values; a file whose digest was seen before is not compared again.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        self.rows = RowUnion()
        self.columns: list[str] = []
        self.first = ""
        self.values = np.empty((0, 0))
        self.owner: list[str] = []  # the file each union row came from, for messages
        self.known: dict[str, np.ndarray] = {}  # digest -> positions of its rows

    def _check_columns(self, block: XBlock) -> list[str] | None:
        """None when the block's columns are the first file's in the same order, else the
        first file's order (a permutation); a different set stops the run."""
        if block.columns == self.columns:
            return None
        have, want = set(block.columns), set(self.columns)
        if have != want:
            missing = [c for c in self.columns if c not in have]
            extra = [c for c in block.columns if c not in want]
            raise DataError(
                f"feature columns differ from those of {self.first}: missing {few(missing) or 'none'}; extra {few(extra) or 'none'}; "
                "expected the same feature columns in every file (all columns but the objective)",
                key=self.key,
                source=block.source,
            )
        return self.columns

    def add(self, block: XBlock) -> np.ndarray:
        """Positions of the block's rows in the union, after checking it against it."""
        if block.digest in self.known:
            return self.known[block.digest]
        if not self.columns:
            self.columns, self.first = list(block.columns), block.source
            self.values = np.empty((max(64, 2 * len(block.rows)), len(self.columns)))
        order = self._check_columns(block)
        values = block.values if order is None else pd.DataFrame(block.values, columns=block.columns)[order].to_numpy()
        positions, new = self.rows.add(block.rows)
        old = ~new
        if old.any():
            stored, given = self.values[positions[old]], values[old]
            differ = ~((stored == given) | (np.isnan(stored) & np.isnan(given)))
            if differ.any():
                i, j = np.argwhere(differ)[0]
                sample = np.asarray(block.rows, dtype=object)[old][i]
                raise DataError(
                    f"sample {sample!r} has other feature values than in {self.owner[positions[old][i]]}: feature "
                    f"{self.columns[j]!r} is {float(given[i, j])!r} here and {float(stored[i, j])!r} there ({int(differ.any(axis=1).sum())} "
                    "samples differ); expected the files of one data set to share each sample's features",
                    key=self.key,
                    source=block.source,
                )
        if new.any():
            need = len(self.rows)
            if need > len(self.values):
                grown = np.empty((max(need, 2 * len(self.values)), len(self.columns)))
                grown[: len(self.owner)] = self.values[: len(self.owner)]
                self.values = grown
            self.values[positions[new]] = values[new]
            self.owner.extend([block.source] * int(new.sum()))
        self.known[block.digest] = positions
        return positions

    def frame(self) -> pd.DataFrame:
        n = len(self.rows)
        return pd.DataFrame(self.values[:n].copy(), index=self.rows.index, columns=pd.Index(self.columns))


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _batches(
    chunks: list[list[str]], n: int, objective: str | list[str] | None, policy: str, key: str, objective_key: str
) -> Iterator[Batch]:
    """The batches in file order, read by ``n`` processes (1: in this process)."""
    if n <= 1:
        for chunk in chunks:
            yield read_batch(chunk, objective, policy, key, objective_key)
        return
    with ProcessPoolExecutor(max_workers=n, mp_context=_context()) as pool:
        pending: list[tuple[list[str], Future[Batch]]] = []
        todo = iter(chunks)
        try:
            while True:
                # a bounded window of batches in flight keeps the driver's memory small
                while len(pending) < 2 * n and (more := next(todo, None)) is not None:
                    pending.append((more, pool.submit(read_batch, more, objective, policy, key, objective_key)))
                if not pending:
                    return
                chunk, future = pending.pop(0)
                try:
                    batch = future.result()
                except BrokenProcessPool as exc:
                    # e.g. a worker killed, or a main module that starts work on import under spawn
                    logger.warning("the pool reading the event files broke (%s); reading the rest in this process", exc)
                    for rest in [chunk, *(c for c, _ in pending), *todo]:
                        yield read_batch(rest, objective, policy, key, objective_key)
                    return
                yield batch
        finally:
            for _, f in pending:
                f.cancel()


def _context() -> BaseContext:
    """fork when this process runs one thread (fastest, and no re-import of ``__main__``); with
    more (e.g. a Dask cluster's), forkserver, as fork copies only the calling thread's state."""
    methods = multiprocessing.get_all_start_methods()
    if threading.active_count() == 1 and "fork" in methods:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


@dataclass
class EventFiles:
    """What :func:`read_event_pickles` returns: X over the samples' union, the events' PSI."""

    X: pd.DataFrame
    Y: pd.DataFrame
    log: list[str]


def read_event_pickles(
    files: Sequence[str],
    objective: str | list[str] | None,
    *,
    policy: str = "fail",
    key: str = "dataset.path_to_file",
    objective_key: str = "dataset.objective",
    workers: int | None = None,
) -> EventFiles:
    """One study from many regulAS pickles: one event per file and target column.

    X is the union of the files' samples x their shared feature columns, Y one column per
    file and target, NaN where a file has no row for a sample. Event names are
    :func:`file_labels` of the files, with ``:column`` appended when ``objective`` lists
    several columns. ``workers``: processes to read with (None: a pool of one per CPU from
    :data:`PARALLEL_MIN_FILES` files on, else the driver alone; 1: the driver alone).
    """
    labels = dict(zip(files, file_labels(files)))
    several = isinstance(objective, list) and len(objective) > 1
    union = FeatureUnion(key)
    events: list[EventBlock] = []
    log: list[str] = []
    chunks = [list(files[i : i + BATCH_FILES]) for i in range(0, len(files), BATCH_FILES)]
    if workers is None:
        workers = 1 if len(files) < PARALLEL_MIN_FILES else _cpus()
    n = max(1, min(workers, len(chunks)))
    for batch in _batches(chunks, n, objective, policy, key, objective_key):
        log.extend(batch.log)
        positions = [union.add(block) for block in batch.blocks]
        for f in batch.files:
            names = [f"{labels[f.source]}:{t}" if several else labels[f.source] for t in f.targets]
            events.append(EventBlock(f.source, positions[f.block], names, f.values))
        if batch.error is not None:
            message, err_key, source = batch.error
            raise DataError(message, key=err_key, source=source)
    Y = stack_events(events, len(union.rows), union.rows.index, key)
    X = union.frame()
    log.append(
        f"read {len(files)} event files: {X.shape[0]} samples (union) x {X.shape[1]} features, {Y.shape[1]} events "
        f"with {n} process{'es' if n > 1 else ''}"
    )
    return EventFiles(X, Y, log)
