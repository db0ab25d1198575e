"""A dataset whose PSI targets stay in their file: checked block by block, written to a study block by block.

:func:`prepare_streamed` does what :func:`regulas.data.prepare.prepare` does, with the same
checks, messages, log lines and result, but reads the targets through a
:class:`~regulas.data.streams.TargetStream` in blocks of events, twice:

1. here (``regulas run`` calls it before it touches the store): every block is checked
   (PSI range, counts of values, constant events) and each event's values hashed; the
   filters then run on the counts, so a bad cell in the last block stops the run before any
   task, and the data fingerprint is known;
2. in :meth:`StreamedData.target_blocks`, when the study writes its Zarr ``Y``: the kept
   events are read again, block by block, and each is checked against its hash (a file
   changed in between is an error, not other data).

Only X (and the metadata) are held whole; memory for Y is a few blocks of
:data:`READ_VALUES` values. ``most_variable_events`` needs every event's variance before it
can choose, so a loader reads such a dataset whole (:meth:`regulas.data.TableLoader.load_for_study`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from regulas.core.errors import DataError
from regulas.data.checks import PsiRange, check_finite, check_not_empty, duplicate_samples, unique_columns
from regulas.data.dataset import Dataset, column_digests, data_fingerprint
from regulas.data.options import LoadOptions
from regulas.data.prepare import EventStats, Part, RawData, aligned_samples, filter_events, prepare_x
from regulas.data.streams import TargetStream, Unstreamable

logger = logging.getLogger("regulas.data")

#: values (samples x events) per block read from a targets file: 64 MB of float64
READ_VALUES = 8_000_000


def read_width(stream: TargetStream) -> int:
    """Events per block read: about :data:`READ_VALUES` values, in whole chunks of the file
    up to 4 times that (a compressed chunk read in parts is decompressed once per part); a
    larger chunk is read in parts, memory first."""
    width = max(1, READ_VALUES // max(1, len(stream.samples)))
    chunk = stream.natural_width
    if chunk <= width:
        return width // chunk * chunk
    return chunk if chunk <= 4 * width else width


@dataclass(frozen=True)
class StreamedData(Dataset):
    """A checked dataset like :class:`~regulas.data.dataset.SplicingData`, Y left in its file.

    Attributes:
        X, meta, name, description, log: as in SplicingData.
        event_ids: the events kept, in file order (:attr:`events`).
        stream: the targets file.
        rows: positions of the kept samples among the file's samples (None: all of them, in order).
        columns: positions of the kept events among the file's events.
        digests: sha256 of each kept event's values (:func:`~regulas.data.dataset.column_digests`).
        n_missing: missing PSI values among the kept samples and events.
        key: config key naming the targets file (for messages).
    """

    X: pd.DataFrame
    meta: pd.DataFrame | None
    event_ids: pd.Index
    stream: TargetStream
    rows: np.ndarray | None
    columns: np.ndarray
    digests: tuple[bytes, ...]
    n_missing: int
    key: str | None = None
    name: str = ""
    description: str = ""
    log: tuple[str, ...] = ()

    @property
    def events(self) -> pd.Index:
        return self.event_ids

    def fingerprint(self) -> str:
        """The fingerprint :meth:`SplicingData.fingerprint` gives for the same data."""
        return data_fingerprint(self.X, self.events, list(self.digests), self.meta)

    def missing_count(self) -> int:
        return self.n_missing

    def target_blocks(self, width: int) -> Iterator[tuple[int, np.ndarray]]:
        """The kept Y as (first event, (n_samples, k) float64 block) of ``width`` events (the last
        fewer), read again from the file; an event whose values changed since they were
        checked is a DataError."""
        try:
            yield from self._kept_blocks(width)
        except Unstreamable:  # it parsed when it was checked
            self._changed("it no longer parses")

    def _kept_blocks(self, width: int) -> Iterator[tuple[int, np.ndarray]]:
        cols = self.columns
        pending: list[np.ndarray] = []
        held = done = 0
        for start, block in self.stream.blocks(read_width(self.stream)):
            lo, hi = np.searchsorted(cols, [start, start + block.shape[1]])
            if hi > lo:
                rows = slice(None) if self.rows is None else self.rows
                pending.append(block[rows][:, cols[lo:hi] - start])
                held += hi - lo
            while held >= width or (held and hi == len(cols)):
                merged = np.hstack(pending) if len(pending) > 1 else pending[0]
                k = min(width, held)
                out = np.ascontiguousarray(merged[:, :k])
                self._check(done, out)
                yield done, out
                done, held = done + k, held - k
                pending = [merged[:, k:]] if held else []
        if done != len(cols):
            self._changed(f"it has {done} of the {len(cols)} events checked")

    def _check(self, start: int, block: np.ndarray) -> None:
        for j, digest in enumerate(column_digests(block)):
            if digest != self.digests[start + j]:
                self._changed(f"the values of event {str(self.events[start + j])!r} differ")

    def _changed(self, what: str) -> None:
        raise DataError(
            f"the targets changed while the study was being prepared: {what}; expected the file unchanged "
            "from the check of its values to the end of their copy into the study",
            key=self.key,
            source=self.stream.source,
        )


def prepare_streamed(
    X: Part, stream: TargetStream, meta: Part | None, opts: LoadOptions, *, y_key: str, y_layout_key: str | None = None,
    log: list[str] | None = None, name: str = "", description: str = "",
) -> StreamedData:
    """Check, align and filter like :func:`~regulas.data.prepare.prepare`, Y read in blocks.

    The checks that need only labels (and X) run first, so they fail before Y is read;
    then one pass over Y checks every value, and the filters run on its counts.
    """
    log = list(log or [])
    source = stream.source
    # Y as its labels only: the label checks, duplicate samples and alignment need no values
    labels = pd.DataFrame(index=stream.samples)
    raw = RawData(X=X, Y=Part(labels, source, y_key, y_layout_key), meta=meta, log=log)
    check_not_empty(X.frame, "features", X.source, X.key)
    unique_columns(X.frame, "feature", X.source, X.key)
    check_not_empty((len(stream.samples), len(stream.events)), "targets", source, y_key)
    unique_columns(stream.events, "event", source, y_key)
    check_finite(X.frame, X.source, X.key)
    for part, what in [(X, "features"), (raw.Y, "targets")] + ([(meta, "metadata")] if meta is not None else []):
        part.frame = duplicate_samples(part.frame, opts.duplicate_samples, what, part.source, part.key, log)
    common, meta_frame = aligned_samples(raw, (raw.Y.frame.index, stream.events), opts, log)
    x = X.frame if X.frame.index.equals(common) else X.frame.loc[common]
    x = prepare_x(x, opts, raw, log)
    rows = _rows(stream.samples, common)
    psi, parts, digests = PsiRange(), [], []
    for start, block in stream.blocks(read_width(stream)):
        psi.add(block, start)
        v = block if rows is None else block[rows]
        parts.append(EventStats.of(v, start))
        digests += column_digests(v)
    psi.check(stream.samples, stream.events, source, y_key)
    stats = EventStats.concat(parts)
    keep = filter_events(stats, common, stream.events, opts, raw.Y, log)
    columns = np.flatnonzero(keep)
    data = StreamedData(
        X=x.rename_axis(index=None, columns=None),
        meta=None if meta_frame is None else meta_frame.rename_axis(index=None, columns=None),
        event_ids=stream.events[keep].rename(None),
        stream=stream,
        rows=rows,
        columns=columns,
        digests=tuple(digests[j] for j in columns),
        n_missing=int((stats.n_samples - stats.counts[keep]).sum()),
        key=y_key,
        name=name,
        description=description,
        log=tuple(log),
    )
    logger.info("loaded %s: %s", name or source, data.summary())
    return data


def _rows(samples: pd.Index, common: pd.Index) -> np.ndarray | None:
    """Positions in the file of the samples kept (first occurrences), None when all are, in order."""
    first = np.flatnonzero(~samples.duplicated())
    rows = first[samples[first].get_indexer(common)]
    if len(rows) == len(samples) and np.array_equal(rows, np.arange(len(samples))):
        return None
    return rows
