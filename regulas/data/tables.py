"""Read and write labelled 2-D tables in the formats regulas accepts, chosen by file suffix.

=================================  ==========================================================
suffix                             format
=================================  ==========================================================
``.tsv`` ``.txt`` ``.tab`` (+gz)   tab-separated text; one column (``index_col``) holds row IDs
``.csv`` (+ ``.gz``)               comma-separated text, same
``.parquet`` ``.pq``               Apache Parquet (pyarrow): the stored pandas index, else ``index_col``
``.h5`` ``.hdf5`` ``.hdf``         HDF5 (h5py), layout below
``.zarr`` (a folder)               a Zarr group with the same layout as HDF5
=================================  ==========================================================

HDF5 / Zarr layout (one table per file, or per group with ``path#group``):

- ``values``: 2-D float array (n_rows, n_columns);
- ``rows``: 1-D string array (n_rows,) of row IDs;
- ``columns``: 1-D string array (n_columns,) of column IDs.

Pickles are never read by suffix: unpickling runs code, so only the explicitly named
:class:`regulas.data.PickleLoader` reads them.

Numeric tables are parsed by the pandas C parser; every column must come out float64
(integers are widened). A non-numeric cell is reported by row, column and value, found with
vectorised code (no Python loop over cells).
"""

from __future__ import annotations

import bz2
import csv
import gzip
import lzma
import warnings
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import pandas as pd

from regulas.core.errors import ConfigError, DataError

Format = Literal["tsv", "csv", "parquet", "hdf5", "zarr"]

_TEXT_SEP = {"tsv": "\t", "csv": ","}
TEXT_SEP = _TEXT_SEP
_SUFFIXES: dict[str, Format] = {
    ".tsv": "tsv",
    ".txt": "tsv",
    ".tab": "tsv",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
    ".hdf": "hdf5",
    ".zarr": "zarr",
}
_COMPRESSED: dict[str, Callable[..., IO[Any]]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
_PICKLE = (".pkl", ".pickle", ".pck")
SUPPORTED = ".tsv/.txt/.tab/.csv (optionally .gz/.bz2/.xz), .parquet, .h5/.hdf5, .zarr"


def split_group(path: str | Path) -> tuple[Path, str | None]:
    """``file.h5#group`` -> (file.h5, "group"); other paths have no group."""
    text = str(path)
    if "#" in text:
        base, group = text.split("#", 1)
        return Path(base).expanduser(), group or None
    return Path(text).expanduser(), None


def detect_format(path: str | Path, *, key: str | None = None) -> Format:
    """The format named by the file suffix, or a ConfigError naming the suffixes allowed."""
    file, _ = split_group(path)
    suffixes = [s.lower() for s in file.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSED:
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last in _PICKLE:
        raise ConfigError(
            f"{file} is a pickle; regulas never unpickles by file suffix because unpickling runs code. "
            "Name the pickle loader explicitly (_target_: regulas.data.PickleLoader, or regulAS.utils.PickleLoader) "
            "if you trust this file",
            key=key,
            source=str(file),
        )
    fmt = _SUFFIXES.get(last)
    if fmt is None:
        raise ConfigError(
            f"unknown table format (suffix {last or 'none'!r}); expected one of {SUPPORTED}", key=key, source=str(file)
        )
    if fmt not in _TEXT_SEP and file.suffixes and file.suffixes[-1].lower() in _COMPRESSED:
        raise ConfigError(
            f"only text tables may be compressed; expected {SUPPORTED}", key=key, source=str(file)
        )
    return fmt


def check_exists(path: str | Path, *, key: str | None = None) -> Format:
    """Fail early with one message when the file is missing or its format unknown."""
    fmt = detect_format(path, key=key)
    file, _ = split_group(path)
    ok = file.is_dir() if fmt == "zarr" else file.is_file()
    if not ok:
        what = "Zarr folder" if fmt == "zarr" else "file"
        raise ConfigError(
            f"{what} not found (resolved to {file.resolve()}); expected an existing {what}", key=key, source=str(file)
        )
    return fmt


def _open_text(file: Path) -> IO[str]:
    opener = _COMPRESSED.get(file.suffix.lower())
    if opener is None:
        return open(file, encoding="utf-8", newline="")
    return opener(file, "rt", encoding="utf-8", newline="")  # type: ignore[no-any-return]


def _read_header(file: Path, sep: str, key: str | None) -> list[str]:
    try:
        with _open_text(file) as fh:
            header = next(csv.reader(fh, delimiter=sep), None)
    except (OSError, UnicodeDecodeError, EOFError, lzma.LZMAError) as exc:
        raise DataError(f"cannot read the header line: {exc}", key=key, source=str(file)) from exc
    if not header:
        raise DataError("the file is empty; expected a header line and at least one data row", key=key, source=str(file))
    return header


def _duplicates(labels: pd.Index | list[str]) -> list[str]:
    index = pd.Index(labels)
    return [str(v) for v in index[index.duplicated()].unique()[:5]]


def text_columns(file: Path, fmt: Format, index_col: int | str, key: str | None) -> tuple[list[str], int, list[str]]:
    """A text table's header, the position of its row-ID column and its data columns (checked unique)."""
    sep = _TEXT_SEP[fmt]
    header = _read_header(file, sep, key)
    if isinstance(index_col, str):
        if index_col not in header:
            raise DataError(
                f"index column {index_col!r} not in the header (first columns: {header[:5]}); "
                "expected index_col to name the column of row IDs",
                key=key,
                source=str(file),
            )
        pos = header.index(index_col)
    else:
        if not 0 <= index_col < len(header):
            raise DataError(
                f"index_col {index_col} out of range; the header has {len(header)} columns", key=key, source=str(file)
            )
        pos = index_col
    data_names = header[:pos] + header[pos + 1 :]
    dup = _duplicates(data_names)
    if dup:
        raise DataError(f"duplicate column names in the header: {dup}; expected unique IDs", key=key, source=str(file))
    return header, pos, data_names


def _read_text(
    file: Path, fmt: Format, index_col: int | str, numeric: bool, key: str | None, columns: Collection[str] | None = None
) -> pd.DataFrame:
    sep = _TEXT_SEP[fmt]
    header, pos, data_names = text_columns(file, fmt, index_col, key)
    # Own column names (unique by construction) so pandas never mangles or guesses them.
    names = [f"c{i}" for i in range(len(header))]
    usecols = None
    if columns is not None:
        # Only the wanted columns are parsed (a Xena matrix has ~19,000 samples).
        wanted = set(columns)
        keep = [i for i, h in enumerate(header) if i == pos or (h in wanted)]
        usecols = [names[i] for i in keep]
        data_names = [header[i] for i in keep if i != pos]

    def parse(dtype: Any) -> pd.DataFrame:
        with warnings.catch_warnings():
            # the converter keeps row IDs as text ("007" stays "007"); it overrides dtype there
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            return pd.read_csv(
                file,
                sep=sep,
                header=None,
                skiprows=1,
                names=names,
                index_col=names[pos],
                usecols=usecols,
                engine="c",
                dtype=dtype,
                converters={names[pos]: str},
                low_memory=False,
            )

    try:
        try:
            # Fast path: the C parser writes float64 directly.
            frame = parse(np.float64 if numeric else None)
        except ValueError:
            # Some cell is not a number: parse without dtypes so as_float can name it.
            frame = parse(None)
    except (ValueError, pd.errors.ParserError, OSError, UnicodeDecodeError, EOFError) as exc:
        raise DataError(f"cannot parse as {fmt.upper()}: {exc}", key=key, source=str(file)) from exc
    frame.columns = pd.Index(data_names)
    frame.index = pd.Index(frame.index.astype(str)).rename(header[pos] or None)
    return frame


def _read_parquet(file: Path, index_col: int | str, key: str | None) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(file)
    except (ImportError, ValueError, OSError) as exc:
        raise DataError(f"cannot read as Parquet: {exc}", key=key, source=str(file)) from exc
    if isinstance(frame.index, pd.RangeIndex) and frame.index.name is None:
        col = frame.columns[index_col] if isinstance(index_col, int) else index_col
        if col not in frame.columns:
            raise DataError(
                f"index column {index_col!r} not found (columns start {list(frame.columns[:5])})",
                key=key,
                source=str(file),
            )
        frame = frame.set_index(col)
    frame.columns = frame.columns.astype(str)
    frame.index = frame.index.astype(str)
    return frame


@contextmanager
def layout_group(file: Path, group: str | None, fmt: Format) -> Iterator[Any]:
    """The group of an HDF5 file or Zarr folder that holds a table (the HDF5 file is closed on exit)."""
    if fmt == "hdf5":
        import h5py

        with h5py.File(file, "r") as h5:
            yield h5[group] if group else h5
    else:
        import zarr

        node = zarr.open_group(str(file), mode="r")
        yield node[group] if group else node


def _read_arrays(file: Path, group: str | None, fmt: Format, key: str | None) -> pd.DataFrame:
    where = f"{file}#{group}" if group else str(file)
    layout = "datasets 'values' (2-D), 'rows' and 'columns' (1-D strings)"
    try:
        with layout_group(file, group, fmt) as node:
            values, rows, cols = _layout_arrays(node, where, layout, key)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise DataError(f"cannot read as {fmt}: {exc}; expected {layout}", key=key, source=where) from exc
    _check_layout(values.shape, rows, cols, where, key)
    return pd.DataFrame(values, index=pd.Index(rows), columns=pd.Index(cols))


def _layout_arrays(node: Any, where: str, layout: str, key: str | None) -> tuple[np.ndarray, list[str], list[str]]:
    missing = [n for n in ("values", "rows", "columns") if n not in node]
    if missing:
        raise DataError(
            f"wrong layout: missing {missing}; found {sorted(node.keys())}; expected {layout}", key=key, source=where
        )
    return np.asarray(node["values"][...]), _labels(node, "rows"), _labels(node, "columns")


def _labels(node: Any, name: str) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(node[name][...]).ravel()]


def layout_labels(node: Any, where: str, key: str | None, shape: tuple[int, ...]) -> tuple[list[str], list[str]]:
    """The row and column IDs of an HDF5/Zarr table whose ``values`` have ``shape``, checked
    as :func:`read_table` checks them (without reading the values)."""
    rows, cols = _labels(node, "rows"), _labels(node, "columns")
    _check_layout(shape, rows, cols, where, key)
    return rows, cols


def _check_layout(shape: tuple[int, ...], rows: list[str], cols: list[str], where: str, key: str | None) -> None:
    if len(shape) != 2 or tuple(shape) != (len(rows), len(cols)):
        raise DataError(
            f"wrong layout: 'values' has shape {tuple(shape)}, 'rows' {len(rows)} and 'columns' {len(cols)} entries; "
            f"expected values of shape (len(rows), len(columns))",
            key=key,
            source=where,
        )
    dup = _duplicates(list(cols))
    if dup:
        raise DataError(f"duplicate column names: {dup}; expected unique IDs", key=key, source=where)


def read_table(
    path: str | Path,
    *,
    index_col: int | str = 0,
    numeric: bool = True,
    key: str | None = None,
    columns: Collection[str] | None = None,
) -> pd.DataFrame:
    """Read one table; rows and columns as stored (no transposition), row IDs as strings.

    With ``numeric=True`` every cell must be a number: the result is float64 and a non-numeric
    cell raises :class:`DataError` naming the file, row, column and value. ``columns`` keeps
    only the named columns (text files: the others are not even parsed).
    """
    fmt = check_exists(path, key=key)
    file, group = split_group(path)
    if fmt in _TEXT_SEP:
        frame = _read_text(file, fmt, index_col, numeric, key, columns)
    else:
        frame = _read_parquet(file, index_col, key) if fmt == "parquet" else _read_arrays(file, group, fmt, key)
        if columns is not None:
            frame = frame.loc[:, frame.columns.isin(list(columns))]
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise DataError(
            f"empty table ({frame.shape[0]} rows x {frame.shape[1]} columns); expected at least one row and one column",
            key=key,
            source=str(path),
        )
    return as_float(frame, source=str(path), key=key) if numeric else frame


def read_columns(path: str | Path, *, key: str | None = None) -> pd.DataFrame:
    """A small table of text columns (e.g. a gene list), all cells as strings, no index."""
    fmt = check_exists(path, key=key)
    file, _ = split_group(path)
    try:
        if fmt in _TEXT_SEP:
            frame = pd.read_csv(file, sep=_TEXT_SEP[fmt], dtype=str, keep_default_na=False)
        elif fmt == "parquet":
            frame = pd.read_parquet(file).astype(str)
        else:
            raise DataError(f"expected a text or Parquet table, not {fmt}", key=key, source=str(file))
    except (ValueError, pd.errors.ParserError, OSError, UnicodeDecodeError, EOFError) as exc:
        raise DataError(f"cannot read: {exc}", key=key, source=str(file)) from exc
    return frame


def as_float(frame: pd.DataFrame, *, source: str, key: str | None) -> pd.DataFrame:
    """The same table as one float64 block, or a DataError naming the first non-numeric cell.

    Parsers return one block per column; a single 2-D block makes every later step
    (alignment, filters, ``to_numpy``) a plain array operation.
    """
    kinds = np.array([d.kind for d in frame.dtypes])
    if np.isin(kinds, ["f", "i", "u"]).all() or frame.shape[1] == 0:
        values = frame.to_numpy(dtype=np.float64)
    else:
        columns = []
        for j in range(frame.shape[1]):
            original = frame.iloc[:, j]
            if kinds[j] in ("f", "i", "u"):
                columns.append(original.to_numpy(dtype=np.float64))
                continue
            col = frame.columns[j]
            if kinds[j] == "b":
                raise DataError(f"column {col!r} holds true/false values; expected numbers", key=key, source=source)
            coerced = pd.to_numeric(original, errors="coerce")
            bad = coerced.isna().to_numpy() & original.notna().to_numpy()
            if bad.any():
                first = int(np.argmax(bad))
                raise DataError(
                    f"non-numeric cell at row {frame.index[first]!r}, column {col!r}: {original.iloc[first]!r} "
                    f"({int(bad.sum())} such cells in this column); expected a number or an empty cell",
                    key=key,
                    source=source,
                )
            columns.append(coerced.to_numpy(dtype=np.float64))
        values = np.column_stack(columns)
    return pd.DataFrame(values, index=frame.index, columns=frame.columns)


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` (row IDs in the index) in the format of the suffix of ``path``.

    The inverse of :func:`read_table` for numeric tables; used to convert data (e.g. a pickle
    into Parquet) and by the tests.
    """
    fmt = detect_format(path)
    file, group = split_group(path)
    if fmt in _TEXT_SEP:
        frame.to_csv(file, sep=_TEXT_SEP[fmt])
    elif fmt == "parquet":
        frame.to_parquet(file)
    else:
        values = frame.to_numpy(dtype=np.float64)
        rows = np.array(frame.index.astype(str), dtype=object)
        cols = np.array(frame.columns.astype(str), dtype=object)
        if fmt == "hdf5":
            import h5py

            with h5py.File(file, "a") as h5:
                node = h5.require_group(group) if group else h5
                str_dt = h5py.string_dtype()
                node.create_dataset("values", data=values)
                node.create_dataset("rows", data=rows, dtype=str_dt)
                node.create_dataset("columns", data=cols, dtype=str_dt)
        else:
            import zarr

            root = zarr.open_group(str(file), mode="a")
            znode = root.require_group(group) if group else root
            znode.create_array("values", data=values)
            for label, ids in (("rows", rows), ("columns", cols)):
                # variable-length UTF-8: the string type with a Zarr v3 specification
                znode.create_array(label, shape=ids.shape, dtype=str)[:] = ids
    return file


class ZarrColumnWriter:
    """A Zarr table in :func:`read_table`'s layout, written one block of columns at a time.

    For tables larger than memory (e.g. a synthetic PSI table of 10,000 samples x 50,000
    events): the labels are written at creation, then each :meth:`write` fills columns
    ``start:start + block.shape[1]`` of ``values``, so memory is bounded by a block. Blocks
    aligned to ``chunk_columns`` write whole chunks; unwritten cells read as NaN.
    """

    def __init__(
        self, path: str | Path, rows: Collection[str], columns: Collection[str], *, chunk_columns: int, chunk_rows: int | None = None
    ) -> None:
        import zarr

        file, group = split_group(path)
        if detect_format(path) != "zarr":
            raise ConfigError(f"expected a path ending in .zarr (given: {file})", source=str(file))
        root = zarr.open_group(str(file), mode="a")
        node = root.require_group(group) if group else root
        row_ids = np.array([str(r) for r in rows], dtype=object)
        col_ids = np.array([str(c) for c in columns], dtype=object)
        shape = (row_ids.size, col_ids.size)
        chunks = (max(1, min(shape[0], chunk_rows or shape[0])), max(1, min(shape[1], chunk_columns)))
        self.values = node.create_array("values", shape=shape, dtype=np.float64, chunks=chunks, fill_value=np.nan)
        for label, ids in (("rows", row_ids), ("columns", col_ids)):
            node.create_array(label, shape=ids.shape, dtype=str)[:] = ids
        self.file = file

    def write(self, start: int, block: np.ndarray) -> None:
        """Columns ``start:start + block.shape[1]`` (all rows) from a (n_rows, k) array."""
        n_rows, n_cols = self.values.shape
        if block.ndim != 2 or block.shape[0] != n_rows or not 0 <= start <= n_cols - block.shape[1]:
            raise ValueError(f"block of shape {block.shape} at column {start} does not fit a table of shape {(n_rows, n_cols)}")
        self.values[:, start : start + block.shape[1]] = block
