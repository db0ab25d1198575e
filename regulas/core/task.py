"""Tasks: deterministic keys and seeds from one root seed, and the array regions they own.

A task's key is a hash of everything that determines its result: the study, the task
kind, the part of the config it uses, a fingerprint of its input data, its block of
work and its seed. Same key, same result: a rerun skips the keys already done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from regulas.core.hashing import derive_seed, stable_hash


@dataclass(frozen=True)
class Region:
    """A box ``[start, stop)`` of one array that one task owns."""

    array: str
    start: tuple[int, ...]
    stop: tuple[int, ...]

    @classmethod
    def of(cls, array: str, *bounds: slice | int) -> Region:
        start, stop = [], []
        for b in bounds:
            if isinstance(b, slice):
                start.append(int(b.start or 0))
                stop.append(int(b.stop))
            else:
                start.append(int(b))
                stop.append(int(b) + 1)
        return cls(array, tuple(start), tuple(stop))

    @property
    def slices(self) -> tuple[slice, ...]:
        return tuple(slice(a, b) for a, b in zip(self.start, self.stop))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(b - a for a, b in zip(self.start, self.stop))

    def contains(self, other: Region) -> bool:
        return (
            self.array == other.array
            and len(self.start) == len(other.start)
            and all(a <= c and d <= b for a, b, c, d in zip(self.start, self.stop, other.start, other.stop))
        )


@dataclass(frozen=True)
class Task:
    """One unit of work: ``kind`` on ``block``; owns ``regions`` of the study's arrays.

    ``block`` is plain JSON (it is hashed into the key and stored in ``task.block``); a
    workload that wants types reads it back through its own block dataclass
    (:meth:`regulas.core.workload.Block.of`).
    """

    key: str
    kind: str
    block: dict[str, Any]
    seed: int
    regions: tuple[Region, ...] = ()


def make_task(
    *,
    study: str,
    kind: str,
    block: dict[str, Any],
    root_seed: int,
    config: Any,
    data_fingerprint: str,
    regions: tuple[Region, ...] = (),
) -> Task:
    seed = derive_seed(root_seed, kind, block)
    key = stable_hash(study, kind, config, data_fingerprint, block, seed)
    return Task(key=key, kind=kind, block=block, seed=seed, regions=regions)
