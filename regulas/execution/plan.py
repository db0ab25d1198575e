"""Tasks with deterministic keys and seeds derived from one root seed.

A task's key is a hash of everything that determines its result: the study, the task
kind, the part of the config it uses, a fingerprint of its input data, its block of
work and its seed. Same key, same result: a rerun skips the keys already done.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from regulas.store.arrays import Region

KEY_LENGTH = 32  # hex characters of SHA-256 kept in a key


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces, so equal values hash equally."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def stable_hash(*parts: Any, length: int = KEY_LENGTH) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(canonical_json(part).encode())
        digest.update(b"\x00")
    return digest.hexdigest()[:length]


def derive_seed(root_seed: int, kind: str, block: dict[str, Any]) -> int:
    """A 63-bit seed for one task from the study's root seed and the task's identity.

    Only the kind and block enter, not the config: changing a model parameter keeps
    the same random draws (splits, noise) for the same block of work.
    """
    digest = hashlib.sha256(f"{int(root_seed)}\x00{kind}\x00{canonical_json(block)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclass(frozen=True)
class Task:
    """One unit of work: ``kind`` on ``block``; owns ``regions`` of the study's arrays."""

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
