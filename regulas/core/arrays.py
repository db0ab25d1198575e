"""What the core needs to know of a study's arrays: the protocols the store's Zarr classes
satisfy (:class:`regulas.store.arrays.StudyArrays`, :class:`regulas.store.arrays.RegionWriter`).
The core does not import the store; workloads get these objects from the engine."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from regulas.core.task import Region

if TYPE_CHECKING:
    import zarr


class ArraySpecLike(Protocol):
    """What :class:`regulas.store.arrays.ArraySpec` provides (the core does not import the store)."""

    name: str
    shape: tuple[int, ...]


class StudyArraysLike(Protocol):
    """Driver-side access to a study's Zarr arrays (:class:`regulas.store.arrays.StudyArrays`)."""

    store_path: Path
    study: str
    specs: dict[str, Any]  # name -> ArraySpec of the arrays created so far

    def create(self, spec: Any, data: np.ndarray | None = None) -> zarr.Array: ...

    def open(self, name: str) -> zarr.Array: ...


class RegionWriterLike(Protocol):
    """Worker-side access: read any array, write only owned regions (:class:`regulas.store.arrays.RegionWriter`)."""

    store_path: str
    study: str

    def array(self, name: str) -> zarr.Array: ...

    def read(self, name: str, selection: Any = ...) -> np.ndarray: ...

    def write(self, region: Region, data: np.ndarray) -> None: ...
