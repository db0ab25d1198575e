"""Stable hashes of plain values: task keys, config hashes, derived seeds.

Everything that identifies work is hashed from canonical JSON, so equal values (dicts in
any key order, tuples or lists) give equal hashes across processes and machines.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

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
