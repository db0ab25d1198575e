"""Digest of a study store, to show that a change leaves a study's results as they were.

Prints JSON: a hash and count of the task rows (study, key, kind, block, seed, status), of
every table and view of results (timings, task ids and the metric ``fit_time_s`` left
out; column names left out too, so a renamed NaN flag compares equal) and of every Zarr
array's bytes. Two stores of the same study compare with ``diff``:

    python benchmarks/store_digest.py /tmp/before/demo > before.json
    python benchmarks/store_digest.py /tmp/after/demo > after.json && diff before.json after.json

Empty tables are left out (a store now holds only its workload's tables).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import numpy as np
import zarr

TIMING = {"fit_time_s", "started_at", "finished_at", "duration_s", "worker", "submitted_at", "attempts", "task_id"}


def _digest(rows: list[tuple[Any, ...]]) -> list[Any]:
    h = hashlib.sha256()
    for r in sorted(rows, key=repr):
        h.update(repr(r).encode())
    return [h.hexdigest()[:16], len(rows)]


def digest(root: Path) -> dict[str, Any]:
    db = next(p for p in root.iterdir() if p.suffix == ".db")
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    out: dict[str, Any] = {
        "tasks": _digest(conn.execute(
            "SELECT s.name, t.key, t.kind, t.block, t.seed, t.status FROM task t JOIN study s ON s.id = t.study_id"
        ).fetchall())
    }
    for name, kind in conn.execute("SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name"):
        # task_chunk: digests of the chunk files, whose arrays are compared below (its ids and
        # verify times differ between two stores of the same results)
        if name in ("study", "task", "regulas_meta", "task_chunk") or name.startswith("sqlite"):
            continue
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info({name})") if r[1] not in TIMING]
        rows = conn.execute(f"SELECT {', '.join(chr(34) + c + chr(34) for c in cols)} FROM {name}").fetchall()
        if "metric" in cols:
            at = cols.index("metric")
            rows = [r for r in rows if r[at] != "fit_time_s"]
        if rows:
            out[f"{kind}:{name}"] = _digest(rows)

    def walk(group: zarr.Group, prefix: str) -> None:
        for key, node in sorted(group.members()):
            if isinstance(node, zarr.Array):
                a = np.ascontiguousarray(np.asarray(node[...]))
                out[f"zarr:{prefix}{key}"] = [hashlib.sha256(a.tobytes()).hexdigest()[:16], list(a.shape), str(a.dtype)]
            else:
                walk(node, f"{prefix}{key}/")

    walk(zarr.open_group(str(next(p for p in root.iterdir() if p.suffix == ".zarr")), mode="r"), "")
    return out


if __name__ == "__main__":
    json.dump(digest(Path(sys.argv[1])), sys.stdout, indent=1, sort_keys=True)
    print()
