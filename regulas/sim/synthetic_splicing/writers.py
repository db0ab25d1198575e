"""Write the PSI table block of events by block, in a format :func:`regulas.data.read_table` reads.

=========  ==================  ==================================================================
format     PSI layout          how blocks are written
=========  ==================  ==================================================================
hdf5       samples x events    ``values`` filled column block by block (chunks of a block's columns)
zarr       samples x events    the same, in a Zarr folder
parquet    events x samples    one row group per block (first column ``event``)
tsv.gz     events x samples    rows appended to one gzip stream (first column ``event``)
=========  ==================  ==================================================================

Text and Parquet are columnar or row-wise with a fixed set of columns, so a block of events
can only be appended as rows there: those tables are events x samples, read with
``targets_layout: events_x_samples``. HDF5 is the default: one file, which ``regulas run``
pins by its checksum (a Zarr folder cannot be pinned: ``regulas.store.inputs`` hashes files). The expression table is small and written whole,
samples x RBPs, by :func:`regulas.data.tables.write_table`.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

Format = Literal["hdf5", "zarr", "parquet", "tsv.gz"]
FORMATS: tuple[Format, ...] = ("hdf5", "zarr", "parquet", "tsv.gz")
LAYOUT: dict[Format, str] = {
    "hdf5": "samples_x_events",
    "zarr": "samples_x_events",
    "parquet": "events_x_samples",
    "tsv.gz": "events_x_samples",
}
#: At most this many rows per HDF5/Zarr chunk (whole columns of 10,000 samples would make 80 MB chunks).
CHUNK_ROWS = 4096


def chunk_rows(n_rows: int) -> int:
    """Rows per chunk: equal chunks of at most ``CHUNK_ROWS`` (4096 for 10,000 rows would pad the last by 23%)."""
    return max(1, -(-n_rows // -(-n_rows // CHUNK_ROWS)))


class PsiWriter(Protocol):
    def write(self, start: int, names: Sequence[str], block: np.ndarray) -> None:
        """Events ``start:start + k``: their names and the (N, k) PSI block."""

    def close(self) -> None: ...


class ZarrPsi:
    def __init__(self, path: Path, samples: Sequence[str], events: Sequence[str], block_events: int) -> None:
        from regulas.data.tables import ZarrColumnWriter

        self.writer = ZarrColumnWriter(path, samples, events, chunk_columns=block_events, chunk_rows=chunk_rows(len(samples)))

    def write(self, start: int, names: Sequence[str], block: np.ndarray) -> None:
        self.writer.write(start, block)

    def close(self) -> None:
        pass


class Hdf5Psi:
    def __init__(self, path: Path, samples: Sequence[str], events: Sequence[str], block_events: int) -> None:
        import h5py

        self.h5 = h5py.File(path, "w")
        shape = (len(samples), len(events))
        chunks = (chunk_rows(shape[0]), max(1, min(shape[1], block_events)))
        self.values = self.h5.create_dataset("values", shape=shape, dtype="f8", chunks=chunks, fillvalue=np.nan)
        text = h5py.string_dtype()
        self.h5.create_dataset("rows", data=np.array([str(s) for s in samples], dtype=object), dtype=text)
        self.h5.create_dataset("columns", data=np.array([str(e) for e in events], dtype=object), dtype=text)

    def write(self, start: int, names: Sequence[str], block: np.ndarray) -> None:
        self.values[:, start : start + block.shape[1]] = block

    def close(self) -> None:
        self.h5.close()


class ParquetPsi:
    def __init__(self, path: Path, samples: Sequence[str]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa = pa
        self.schema = pa.schema([("event", pa.string())] + [(str(s), pa.float64()) for s in samples])
        self.writer = pq.ParquetWriter(str(path), self.schema)

    def write(self, start: int, names: Sequence[str], block: np.ndarray) -> None:
        pa = self.pa
        arrays: list[Any] = [pa.array([str(n) for n in names], pa.string())]
        # NaN stays NaN in Parquet; the reader treats it as missing, as an empty text cell
        arrays.extend(pa.array(np.ascontiguousarray(row), pa.float64()) for row in block)
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))

    def close(self) -> None:
        self.writer.close()


class TsvPsi:
    def __init__(self, path: Path, samples: Sequence[str]) -> None:
        self.raw = open(path, "wb")
        # mtime=0: the same seed writes the same bytes
        self.gz = gzip.GzipFile(fileobj=self.raw, mode="wb", compresslevel=6, mtime=0)
        self.gz.write(("event\t" + "\t".join(str(s) for s in samples) + "\n").encode())

    def write(self, start: int, names: Sequence[str], block: np.ndarray) -> None:
        # "%.4g" is exact for values rounded to 4 decimals in [0, 1]; NaN becomes an empty cell
        text = np.char.mod("%.4g", block.T)
        text[np.isnan(block.T)] = ""
        lines = [f"{n}\t" + "\t".join(row) for n, row in zip(names, text.tolist())]
        self.gz.write(("\n".join(lines) + "\n").encode())

    def close(self) -> None:
        self.gz.close()
        self.raw.close()


def psi_writer(fmt: Format, path: Path, samples: Sequence[str], events: Sequence[str], block_events: int) -> PsiWriter:
    if fmt == "hdf5":
        return Hdf5Psi(path, samples, events, block_events)
    if fmt == "zarr":
        return ZarrPsi(path, samples, events, block_events)
    if fmt == "parquet":
        return ParquetPsi(path, samples)
    return TsvPsi(path, samples)


def suffix(fmt: Format) -> str:
    return {"hdf5": ".h5", "zarr": ".zarr", "parquet": ".parquet", "tsv.gz": ".tsv.gz"}[fmt]
