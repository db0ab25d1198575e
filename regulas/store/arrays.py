"""Zarr v3 arrays of a study, with chunk ownership as a checked invariant.

Layout: ``<store.root>/arrays.zarr/<study name>/<array name>``; every array is also
listed in the ``zarr_array`` table of ``regulas.db``.

Measured here: with zarr 3, two processes that write parts of the same chunk lose
updates silently (the regions read back as the fill value, no error). So the store
API enforces two rules instead of trusting a convention:

1. :meth:`StudyArrays.check_ownership` (driver, before any task runs) refuses a plan in
   which a task's region is not made of whole write units (chunks, or shards when
   the array is sharded) or in which two tasks' regions share a unit;
2. :class:`RegionWriter` (worker) refuses a write outside the regions its task owns.

Every array is written with a ``crc32c`` codec after compression, so a flipped bit makes
its chunk fail to decode instead of decoding to other numbers; and after a task ran, its
worker records the size and sha256 of every chunk (shard) file the task owns
(:meth:`RegionWriter.chunk_digests`), which the driver commits with the task's rows
(``task_chunk``, checked by ``regulas verify``: :mod:`regulas.store.verify`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

from regulas.core.errors import OwnershipError, StoreError
from regulas.core.task import Region


@dataclass(frozen=True)
class ArraySpec:
    """An array a study writes: its shape, write unit and meaning.

    ``chunks`` is the chunk shape; with ``shards`` set, the shard is the write unit a
    task must own whole (several chunks per shard file).
    """

    name: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: str = "float64"
    dims: tuple[str, ...] = ()
    shards: tuple[int, ...] | None = None
    fill_value: Any = math.nan
    description: str = ""

    def __post_init__(self) -> None:
        if len(self.chunks) != len(self.shape) or (self.dims and len(self.dims) != len(self.shape)):
            raise StoreError(f"array {self.name!r}: shape {self.shape}, chunks {self.chunks} and dims {self.dims} disagree")
        if self.shards is not None and any(s % c for s, c in zip(self.shards, self.chunks)):
            raise StoreError(f"array {self.name!r}: shards {self.shards} must be multiples of chunks {self.chunks}")

    @property
    def unit(self) -> tuple[int, ...]:
        return self.shards if self.shards is not None else self.chunks


#: bytes-to-bytes codecs of every array: zarr's default compression, then a checksum
COMPRESSORS = (ZstdCodec(level=0), Crc32cCodec())


@dataclass(frozen=True)
class ChunkDigest:
    """A chunk (shard) file as its task left it: ``array``, its key in the array, size, sha256."""

    array: str
    chunk: str
    size: int
    sha256: str


def file_digest(path: Path) -> tuple[int, str]:
    """Size and sha256 (hex) of the file at ``path``."""
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
        return os.fstat(f.fileno()).st_size, digest


def _units(region: Region, unit: tuple[int, ...]) -> Iterable[tuple[int, ...]]:
    ranges = [range(a // u, math.ceil(b / u)) for a, b, u in zip(region.start, region.stop, unit)]
    return _product(ranges)


def _product(ranges: list[range]) -> Iterable[tuple[int, ...]]:
    grids = np.meshgrid(*[np.asarray(r) for r in ranges], indexing="ij")
    return zip(*(g.ravel().tolist() for g in grids))


def check_aligned(region: Region, spec: ArraySpec) -> None:
    if len(region.start) != len(spec.shape):
        raise OwnershipError(f"region {region} has {len(region.start)} dimensions, array {spec.name!r} {len(spec.shape)}")
    for dim, (a, b, u, n) in enumerate(zip(region.start, region.stop, spec.unit, spec.shape)):
        if not (0 <= a < b <= n):
            raise OwnershipError(f"region {region} is outside array {spec.name!r} of shape {spec.shape} (dim {dim})")
        if a % u or (b % u and b != n):
            raise OwnershipError(
                f"region {region} of array {spec.name!r} does not cover whole write units along dim {dim} "
                f"(unit {u}: start and stop must be multiples of {u}, or stop the end {n}); "
                "zarr loses updates when two processes write parts of one chunk"
            )


#: what zarr raises when an array's zarr.json is not valid metadata (not JSON, fields missing or of the wrong type)
_DAMAGED_METADATA = (
    json.JSONDecodeError,
    UnicodeDecodeError,
    KeyError,
    TypeError,
    AttributeError,
    zarr.errors.MetadataValidationError,
    zarr.errors.UnknownCodecError,
)


def open_study_array(store_path: str | Path, path: str, mode: Literal["r", "r+"]) -> zarr.Array:
    """``zarr.open_array``, with damaged metadata as one :class:`StoreError` naming the file and the fix."""
    try:
        return zarr.open_array(store=str(store_path), path=path, mode=mode)
    except _DAMAGED_METADATA as exc:
        meta = Path(store_path) / path / "zarr.json"
        raise StoreError(
            f"the metadata of Zarr array {path} cannot be read ({meta}: {type(exc).__name__}: {exc}); restore the file, "
            "or discard the study's results and run it again with: regulas run CONFIG --restart"
        ) from None


class StudyArrays:
    """The Zarr group of one study (driver side: create arrays, check the plan)."""

    def __init__(self, store_path: Path, study: str) -> None:
        self.store_path = Path(store_path)
        self.study = study
        self.specs: dict[str, ArraySpec] = {}
        self._encoders: dict[str, Any] = {}

    @property
    def group_path(self) -> Path:
        return self.store_path / self.study

    def create(self, spec: ArraySpec, data: np.ndarray | None = None) -> zarr.Array:
        """Create the array, or reopen it when a previous run made it with the same spec."""
        path = f"{self.study}/{spec.name}"
        try:
            existing = open_study_array(self.store_path, path, "r+")
        except (FileNotFoundError, zarr.errors.ArrayNotFoundError, zarr.errors.NodeTypeValidationError):
            existing = None
        if existing is not None:
            found = (tuple(existing.shape), tuple(existing.chunks), existing.shards, np.dtype(existing.dtype))
            wanted = (spec.shape, spec.chunks, spec.shards, np.dtype(spec.dtype))
            if found != wanted:
                raise StoreError(
                    f"Zarr array {path} exists with (shape, chunks, shards, dtype) {found}, but this study "
                    f"needs {wanted}; use another store.root"
                )
            arr = existing
        else:
            arr = zarr.create_array(
                store=str(self.store_path),
                name=path,
                shape=spec.shape,
                chunks=spec.chunks,
                shards=spec.shards,
                dtype=spec.dtype,
                fill_value=spec.fill_value,
                dimension_names=list(spec.dims) if spec.dims else None,
                attributes={"description": spec.description},
                compressors=COMPRESSORS,
            )
        if data is not None:
            arr[...] = data
        self.specs[spec.name] = spec
        return arr

    def open(self, name: str) -> zarr.Array:
        """An array of this study, read-only (for summaries and plots after a run)."""
        return open_study_array(self.store_path, f"{self.study}/{name}", "r")

    def check_ownership(self, owned: Iterable[tuple[str, Iterable[Region]]]) -> None:
        """Refuse a plan unless every region is whole units and no unit has two owners."""
        owners: dict[tuple[str, tuple[int, ...]], str] = {}
        for task_key, regions in owned:
            for region in regions:
                spec = self.specs.get(region.array)
                if spec is None:
                    raise OwnershipError(f"task {task_key} owns a region of unknown array {region.array!r}")
                check_aligned(region, spec)
                for unit in _units(region, spec.unit):
                    other = owners.setdefault((region.array, unit), task_key)
                    if other != task_key:
                        raise OwnershipError(
                            f"tasks {other} and {task_key} both own unit {unit} of array {region.array!r}; "
                            "each chunk (or shard) must have exactly one writer"
                        )

    def missing_units(
        self, owned: Iterable[tuple[str, Iterable[Region]]], sizes: Mapping[tuple[str, str], int] | None = None
    ) -> dict[str, set[str]]:
        """Task key -> the arrays in which one of its write units has no file on disk, or a
        file whose size differs from the one recorded when its task was committed.

        For a rerun that skips done tasks: their chunks (or shards) must exist. Workers
        write every unit they own, even one that is all fill value (see
        :meth:`RegionWriter.array`), so a missing file means lost data, and one of another
        size than ``sizes[(array, chunk key)]`` (``task_chunk``) a truncated or replaced one.
        One walk of each array's folder lists its files and their sizes; no file is opened
        (the full digest is ``regulas verify``'s job).
        """
        sizes = sizes or {}
        present: dict[str, dict[str, int]] = {}
        missing: dict[str, set[str]] = {}
        for task_key, regions in owned:
            for region in regions:
                spec = self.specs[region.array]
                files = present.get(region.array)
                if files is None:
                    files = present[region.array] = self._unit_files(region.array)
                encode = self._encoders.get(region.array)
                if encode is None:  # the array's key of a unit (the shard grid when sharded)
                    encode = self._encoders[region.array] = self.open(region.array).metadata.encode_chunk_key
                for unit in _units(region, spec.unit):
                    key = encode(unit)
                    size = files.get(key)
                    if size is None or sizes.get((region.array, key), size) != size:
                        missing.setdefault(task_key, set()).add(region.array)
                        break
        return missing

    def _unit_files(self, name: str) -> dict[str, int]:
        """The chunk (shard) keys of array ``name`` that have a file, e.g. ``c/0/1``, and their sizes."""
        folder = self.group_path / name
        out: dict[str, int] = {}
        stack = [(folder, "")]
        while stack:
            path, rel = stack.pop()
            try:
                entries = list(os.scandir(path))
            except FileNotFoundError:
                continue
            for entry in entries:
                key = f"{rel}{entry.name}"
                if entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), f"{key}/"))
                else:
                    out[key] = entry.stat().st_size
        return out

    def remove(self) -> bool:
        """Delete the study's Zarr group and everything in it; True when it existed."""
        if not self.group_path.exists():
            return False
        shutil.rmtree(self.group_path)
        return True

    def describe(self) -> list[dict[str, Any]]:
        return [
            {
                "name": s.name,
                "path": f"{self.study}/{s.name}",
                "shape": s.shape,
                "chunks": s.unit,
                "dtype": s.dtype,
                "dims": s.dims,
                "description": s.description,
            }
            for s in self.specs.values()
        ]


@dataclass
class RegionWriter:
    """Worker-side access to a study's arrays: reads anything, writes only owned regions."""

    store_path: str
    study: str
    owned: tuple[Region, ...] = ()
    _open: dict[str, zarr.Array] = field(default_factory=dict, repr=False)

    def array(self, name: str) -> zarr.Array:
        arr = self._open.get(name)
        if arr is None:
            # write a unit even when it is all fill value: a rerun checks that every unit a
            # done task owns has its file (StudyArrays.missing_units)
            arr = open_study_array(self.store_path, f"{self.study}/{name}", "r+").with_config({"write_empty_chunks": True})
            self._open[name] = arr
        return arr

    def chunk_digests(self) -> list[ChunkDigest]:
        """Size and sha256 of every chunk (shard) file of the regions this task owns, read
        back from disk after the task ran: what its commit records in ``task_chunk``."""
        out: list[ChunkDigest] = []
        for region in self.owned:
            arr = self.array(region.array)
            unit = tuple(arr.shards or arr.chunks)
            for coords in _units(region, unit):
                key = arr.metadata.encode_chunk_key(coords)
                path = Path(self.store_path, self.study, region.array, key)
                try:
                    size, digest = file_digest(path)
                except FileNotFoundError:
                    raise StoreError(
                        f"the task owns chunk {key} of array {region.array!r} but left no file {path}; "
                        "a task must write every unit of the regions it owns"
                    ) from None
                out.append(ChunkDigest(region.array, key, size, digest))
        return out

    def read(self, name: str, selection: Any = Ellipsis) -> np.ndarray:
        return np.asarray(self.array(name)[selection])

    def write(self, region: Region, data: np.ndarray) -> None:
        if not any(o.contains(region) for o in self.owned):
            raise OwnershipError(
                f"write to {region} refused: this task owns only {list(self.owned)}; "
                "declare the region in the task's plan so the driver can check its ownership"
            )
        arr = self.array(region.array)
        if tuple(np.shape(data)) != region.shape:
            raise StoreError(f"data of shape {np.shape(data)} does not fit region {region} of shape {region.shape}")
        arr[region.slices] = data
