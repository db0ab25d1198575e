"""A PSI table read block of events by block, without the whole table in memory.

:func:`open_targets` opens a targets file the way :func:`regulas.data.tables.read_table`
reads it, with the same checks of its labels and the same messages, and returns a
:class:`TargetStream`: the table's labels (samples x events, as ``targets_layout`` orients
it) and its values as blocks of whole events. It returns None where a file cannot stream
exactly as it would read in memory; the loader then reads it whole:

=======================  ==========================  ===========================================
format                   streams                     read whole (the in-memory path)
=======================  ==========================  ===========================================
HDF5, Zarr               both layouts                values not numeric (the whole read names the cell)
Parquet                  both layouts                a non-numeric column, a multi-level or unnamed
                                                     range index, repeated or null labels
TSV/CSV (+ gz, bz2, xz)  ``events_x_samples``        ``samples_x_events`` (an event is a column of
                                                     every line)
=======================  ==========================  ===========================================

A text file whose cells do not parse as numbers while streaming raises :class:`Unstreamable`
mid-way; the loader then reads it whole, which names the cell.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from regulas.core.errors import DataError
from regulas.data.tables import TEXT_SEP, Format, check_exists, layout_group, layout_labels, split_group, text_columns

#: the layouts whose rows are samples (the others are transposed)
SAMPLE_ROWS = "samples_x_events"


class Unstreamable(Exception):
    """The file is not read block by block after all (see the module doc); read it whole."""


class TargetStream(ABC):
    """A targets table's labels, oriented samples x events, and its values block by block.

    ``samples`` and ``events`` are the labels as :func:`~regulas.data.tables.read_table`
    would give them (strings; samples may repeat: the loader's duplicate_samples policy
    decides). :meth:`blocks` yields every event once, in order.
    """

    def __init__(self, source: str, samples: pd.Index, events: pd.Index) -> None:
        self.source = source
        self.samples = samples
        self.events = events

    @property
    def natural_width(self) -> int:
        """Events per block the file is stored in (its chunk width); 1 when it does not matter."""
        return 1

    @abstractmethod
    def blocks(self, width: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first event, (n_samples, k) float64 C-ordered block) of about ``width`` events each."""


def _ends(n: int, width: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, width):
        yield start, min(start + width, n)


class ArrayStream(TargetStream):
    """HDF5 or Zarr in ``read_table``'s layout (``values``, ``rows``, ``columns``)."""

    def __init__(self, path: str, fmt: Format, samples_as_rows: bool, key: str | None) -> None:
        self.file, self.group = split_group(path)
        self.fmt = fmt
        self.samples_as_rows = samples_as_rows
        where = f"{self.file}#{self.group}" if self.group else str(self.file)
        with layout_group(self.file, self.group, self.fmt) as node:
            if any(name not in node for name in ("values", "rows", "columns")):
                raise Unstreamable(where)  # the whole read names what is missing
            values = node["values"]
            if np.dtype(values.dtype).kind not in "fiu":
                raise Unstreamable(where)  # not numbers: the whole read names the cell
            rows, cols = layout_labels(node, where, key, values.shape)
            chunks = getattr(values, "chunks", None)  # None: a contiguous HDF5 dataset, read in any blocks
        if not rows or not cols:
            raise DataError(
                f"empty table ({len(rows)} rows x {len(cols)} columns); expected at least one row and one column",
                key=key,
                source=path,
            )
        self._event_chunk = 1 if chunks is None else int(chunks[1] if samples_as_rows else chunks[0])
        samples, events = (rows, cols) if samples_as_rows else (cols, rows)
        super().__init__(path, pd.Index(samples), pd.Index(events))  # as the whole read names it

    @property
    def natural_width(self) -> int:
        return self._event_chunk

    def blocks(self, width: int) -> Iterator[tuple[int, np.ndarray]]:
        with layout_group(self.file, self.group, self.fmt) as node:
            values = node["values"]
            for start, stop in _ends(len(self.events), width):
                if self.samples_as_rows:
                    block = np.asarray(values[:, start:stop], dtype=np.float64)
                else:
                    block = np.asarray(values[start:stop, :], dtype=np.float64).T
                yield start, np.ascontiguousarray(block)


class ParquetStream(TargetStream):
    """Apache Parquet: events as rows read batch by batch, or as columns read a few at a time."""

    def __init__(self, path: str, samples_as_rows: bool, index_col: int | str, key: str | None) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.file = split_group(path)[0]
        self.samples_as_rows = samples_as_rows
        try:
            self.pf = pq.ParquetFile(self.file)
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise Unstreamable(str(self.file)) from exc
        schema = self.pf.schema_arrow
        names = list(schema.names)
        index = _parquet_index(schema, names, index_col)
        self.columns = [n for n in names if n != index]
        numeric = all(pa.types.is_floating(schema.field(n).type) or pa.types.is_integer(schema.field(n).type)
                      for n in self.columns)
        index_type = schema.field(index).type
        if not numeric or not (pa.types.is_string(index_type) or pa.types.is_large_string(index_type)
                               or pa.types.is_integer(index_type)) or len(set(names)) < len(names):
            raise Unstreamable(str(self.file))
        ids = self.pf.read(columns=[index]).column(0)
        if ids.null_count:
            raise Unstreamable(str(self.file))
        labels = pd.Index([str(v) for v in ids.to_pylist()])
        self.n_rows = len(labels)
        if self.n_rows == 0 or not self.columns:
            raise DataError(
                f"empty table ({self.n_rows} rows x {len(self.columns)} columns); expected at least one row and one column",
                key=key,
                source=str(path),
            )
        samples, events = (labels, pd.Index(self.columns)) if samples_as_rows else (pd.Index(self.columns), labels)
        super().__init__(str(path), samples, events)

    @property
    def natural_width(self) -> int:
        if self.samples_as_rows or self.pf.metadata.num_row_groups == 0:
            return 1
        return max(1, self.pf.metadata.row_group(0).num_rows)

    def blocks(self, width: int) -> Iterator[tuple[int, np.ndarray]]:
        if self.samples_as_rows:
            for start, stop in _ends(len(self.columns), width):
                table = self.pf.read(columns=self.columns[start:stop])
                yield start, np.column_stack([_floats(c) for c in table.columns])
            return
        start = 0
        for batch in self.pf.iter_batches(batch_size=width, columns=self.columns):
            if batch.num_rows == 0:
                continue
            # a batch is events x samples: one column per sample, stacked as the block's rows
            yield start, np.vstack([_floats(c) for c in batch.columns])
            start += batch.num_rows


def _floats(column: Any) -> np.ndarray:
    # nulls (and NaN) are missing values, as pandas reads them
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)


def _parquet_index(schema: Any, names: list[str], index_col: int | str) -> str:
    """The column of row IDs, as ``pandas.read_parquet`` then ``read_table`` choose it."""
    meta = schema.pandas_metadata or {}
    stored = meta.get("index_columns", [])
    if len(stored) == 1 and isinstance(stored[0], str) and stored[0] in names:
        return str(stored[0])  # the pandas index stored with the table
    if any(not (isinstance(c, dict) and c.get("kind") == "range" and c.get("name") is None) for c in stored):
        raise Unstreamable("a multi-level or named range index")
    if isinstance(index_col, int):
        if index_col >= len(names):
            raise Unstreamable("index_col out of range")
        return names[index_col]
    if index_col not in names:
        raise Unstreamable("index column not found")
    return index_col


class TextStream(TargetStream):
    """A TSV/CSV file of events as rows, parsed a batch of lines at a time by the C parser."""

    def __init__(self, path: str, fmt: Format, index_col: int | str, key: str | None) -> None:
        self.file = split_group(path)[0]
        self.sep = TEXT_SEP[fmt]
        self.key = key
        self.header, self.pos, samples = text_columns(self.file, fmt, index_col, key)
        self.names = [f"c{i}" for i in range(len(self.header))]
        events = pd.Index(list(self._parse(None, usecols=[self.names[self.pos]]).index))
        if len(events) == 0 or not samples:
            raise DataError(
                f"empty table ({len(events)} rows x {len(samples)} columns); expected at least one row and one column",
                key=key,
                source=str(path),
            )
        super().__init__(str(path), pd.Index(samples), events)

    def _parse(self, chunksize: int | None, usecols: list[str] | None = None) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pd.errors.ParserWarning)  # the converter overrides dtype for row IDs
            try:
                return pd.read_csv(
                    self.file, sep=self.sep, header=None, skiprows=1, names=self.names, index_col=self.names[self.pos],
                    usecols=usecols, engine="c", dtype=np.float64, converters={self.names[self.pos]: str},
                    chunksize=chunksize, low_memory=False,
                )
            except (ValueError, pd.errors.ParserError, OSError, UnicodeDecodeError, EOFError) as exc:
                raise Unstreamable(str(self.file)) from exc

    def blocks(self, width: int) -> Iterator[tuple[int, np.ndarray]]:
        start = 0
        reader = self._parse(width)
        with reader:
            while True:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", pd.errors.ParserWarning)
                        chunk = next(reader)
                except StopIteration:
                    return
                except (ValueError, pd.errors.ParserError, OSError, UnicodeDecodeError, EOFError) as exc:
                    raise Unstreamable(str(self.file)) from exc
                yield start, np.ascontiguousarray(chunk.to_numpy(dtype=np.float64).T)
                start += chunk.shape[0]


def open_targets(path: str, layout: str, index_col: int | str, key: str | None) -> TargetStream | None:
    """The targets file as a :class:`TargetStream`, or None where it reads whole (module doc).

    Raises the :class:`DataError` ``read_table`` raises for a missing file, an unknown format,
    a wrong HDF5/Zarr layout, repeated column names or an empty table.
    """
    fmt = check_exists(path, key=key)
    samples_as_rows = layout == SAMPLE_ROWS
    try:
        if fmt in ("hdf5", "zarr"):
            try:
                return ArrayStream(path, fmt, samples_as_rows, key)
            except (OSError, KeyError, ValueError, TypeError) as exc:  # not readable as such: the whole read says why
                raise Unstreamable(path) from exc
        if fmt == "parquet":
            return ParquetStream(path, samples_as_rows, index_col, key)
        if not samples_as_rows:
            return TextStream(path, fmt, index_col, key)
    except Unstreamable:
        return None
    return None
