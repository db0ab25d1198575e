"""Chunk digests: ``regulas verify`` (read every recorded chunk file) and the cheap check
that reports run (every recorded chunk file exists with its recorded size).

When a task is committed, ``task_chunk`` records the size and sha256 of each chunk (shard)
file it wrote (:meth:`regulas.store.arrays.RegionWriter.chunk_digests`). Three checks use
those rows, from cheapest to dearest:

- a rerun (:meth:`regulas.store.arrays.StudyArrays.missing_units`) lists each array's folder
  and recomputes the done tasks whose files are missing or of another size;
- a report (:func:`check_study_arrays`) stats every recorded file of the study and refuses
  when one is missing or of another size, or when ``verify`` found damage not repaired yet;
- :func:`verify_store` reads every recorded file of the done tasks and compares its sha256.
  A file that differs is tried through Zarr: ``undecodable`` when its codecs refuse it (the
  ``crc32c`` checksum of every array written since schema 6), else ``mismatch`` (other bytes
  that decode, e.g. an array written without the checksum codec). The tasks that wrote a
  missing or damaged file are set back to pending with their result rows deleted, so the
  next ``regulas run`` recomputes exactly them; the problem stays recorded on the chunk's
  row until that run commits the task again.

Done tasks of a store upgraded from schema 5 or older that finished before the upgrade have
no digests: ``verify`` counts them as unverified, not as damaged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zarr
from sqlalchemy import Engine
from zarr.core.metadata import ArrayV3Metadata

from regulas.core.errors import StoreError
from regulas.store.arrays import file_digest
from regulas.store.database import DIGESTS_SINCE, open_read, open_write, reopen_tasks_in
from regulas.store.lease import acquire_lease
from regulas.store.root import StoreLayout, find_layout

#: how zarr's ``crc32c`` codec starts its error (a ValueError) for a chunk whose bytes changed
CHECKSUM_MESSAGE = "Stored and computed checksum do not match"

#: damaged chunks named per array in one message before "and N more"
SHOWN_PER_ARRAY = 5


@dataclass(frozen=True)
class BadChunk:
    """A recorded chunk file that is missing or whose bytes differ from its digest."""

    array: str
    chunk: str
    problem: str  # one of schema.CHUNK_PROBLEMS
    task_key: str
    task_kind: str
    task_block: str
    detail: str = ""


@dataclass
class StudyCheck:
    """What :func:`verify_store` found in one study."""

    study: str
    tasks: int = 0  # done tasks whose chunks were read
    chunks: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    bad: list[BadChunk] = field(default_factory=list)
    reopened: int = 0  # tasks set back to pending now
    unverified: int = 0  # done tasks finished before digests were recorded
    waiting: int = 0  # chunks found damaged before, whose tasks the next run recomputes

    @property
    def damaged(self) -> bool:
        return bool(self.bad or self.waiting)


def _chunk_path(arrays_root: Path, array_path: str | None, study: str, array: str, chunk: str) -> Path:
    return arrays_root / (array_path or f"{study}/{array}") / chunk


def _decodes(arr: zarr.Array, chunk: str) -> str:
    """"" when the unit at key ``chunk`` of ``arr`` decodes, else why not."""
    meta = arr.metadata
    if not isinstance(meta, ArrayV3Metadata):
        return f"not a Zarr v3 array ({type(meta).__name__})"
    encoding = meta.chunk_key_encoding
    parts = chunk.split(getattr(encoding, "separator", "/"))
    # zarr 3.1's decode_chunk_key of the default encoding keeps the separator after "c"
    coords = tuple(int(p) for p in (parts[1:] if encoding.name == "default" else parts))
    unit = tuple(arr.shards or arr.chunks)
    selection = tuple(slice(c * u, min((c + 1) * u, n)) for c, u, n in zip(coords, unit, arr.shape))
    try:
        arr[selection]
    except Exception as exc:  # noqa: BLE001 - any codec error means the bytes cannot be decoded
        return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:200]
    return ""


def is_checksum_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the ``crc32c`` codec refusing a chunk whose bytes changed."""
    return isinstance(exc, ValueError) and str(exc).startswith(CHECKSUM_MESSAGE)


def _verify_study(engine: Engine, layout: StoreLayout, study_id: int, name: str) -> StudyCheck:
    started = time.monotonic()
    check = StudyCheck(name)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT c.id, c.array, c.chunk, c.size, c.sha256, t.key, t.kind, t.block, a.path "
            "FROM task_chunk c JOIN task t ON t.id = c.task_id "
            "LEFT JOIN zarr_array a ON a.study_id = c.study_id AND a.name = c.array "
            "WHERE c.study_id = ? AND t.status = 'done' ORDER BY c.array, c.chunk",
            (study_id,),
        ).all()
        since = conn.exec_driver_sql("SELECT value FROM regulas_meta WHERE key = ?", (DIGESTS_SINCE,)).scalar()
        if since is not None:
            check.unverified = conn.exec_driver_sql(
                "SELECT count(*) FROM task t WHERE t.study_id = ? AND t.status = 'done' AND t.finished_at < ? "
                "AND NOT EXISTS (SELECT 1 FROM task_chunk c WHERE c.task_id = t.id)",
                (study_id, float(since)),
            ).scalar_one()
    opened: dict[str, zarr.Array] = {}
    results: list[tuple[str | None, float, int]] = []
    now = time.time()
    for cid, array, chunk, size, sha256, key, kind, block, array_path in rows:
        path = _chunk_path(layout.arrays_path, array_path, name, array, chunk)
        problem, detail = None, ""
        try:
            found_size, found = file_digest(path)
        except FileNotFoundError:
            problem, detail = "missing", str(path)
        else:
            check.bytes_read += found_size
            if (found_size, found) != (size, sha256):
                arr = opened.get(array)
                if arr is None:
                    arr = opened[array] = zarr.open_array(store=str(layout.arrays_path), path=array_path or f"{name}/{array}", mode="r")
                why = _decodes(arr, chunk)
                problem = "undecodable" if why else "mismatch"
                detail = why or f"size {found_size} (recorded {size}), sha256 {found[:12]} (recorded {sha256[:12]})"
        results.append((problem, now, cid))
        if problem is not None:
            check.bad.append(BadChunk(array, chunk, problem, key, kind, block, detail))
    check.chunks = len(rows)
    check.tasks = len({r[5] for r in rows})
    with engine.begin() as conn:  # the findings and the tasks set back to pending, together
        if results:
            conn.exec_driver_sql("UPDATE task_chunk SET problem = ?, checked_at = ? WHERE id = ?", results)
        check.reopened = reopen_tasks_in(conn, study_id, {b.task_key for b in check.bad})
    with engine.connect() as conn:
        check.waiting = conn.exec_driver_sql(
            "SELECT count(*) FROM task_chunk c JOIN task t ON t.id = c.task_id "
            "WHERE c.study_id = ? AND c.problem IS NOT NULL AND t.status != 'done'",
            (study_id,),
        ).scalar_one() - len(check.bad)
    check.seconds = time.monotonic() - started
    return check


def verify_store(root: Path, study: str | None = None, *, log: Callable[[str], None] = lambda _line: None) -> list[StudyCheck]:
    """Read every recorded chunk file of the done tasks of each study (or of ``study``) in
    the store at ``root``; record what is wrong on the chunks' rows and set the tasks that
    wrote them back to pending (see the module's doc).

    Opens the database for writing (a store of an older schema is upgraded in place) and
    takes each study's lease while it checks it: a study that a driver runs is refused.
    """
    layout = find_layout(root)
    engine = open_write(layout.db_path)
    try:
        with engine.connect() as conn:
            studies = [(int(i), str(n)) for i, n in conn.exec_driver_sql("SELECT id, name FROM study ORDER BY id")]
        if study is not None:
            names = [n for _i, n in studies]
            studies = [(i, n) for i, n in studies if n == study]
            if not studies:
                raise StoreError(f"no study named {study!r} in {layout.db_path} (studies there: {', '.join(map(repr, names)) or 'none'})")
        out = []
        for study_id, name in studies:
            lease = acquire_lease(layout.root, name, log=log)
            try:
                out.append(_verify_study(engine, layout, study_id, name))
            finally:
                lease.release()
        return out
    finally:
        engine.dispose()


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError(n)


def format_checks(checks: list[StudyCheck]) -> str:
    """What ``regulas verify`` prints: a line per study, then one per damaged chunk."""
    if not checks:
        return "no study in this store"
    out: list[str] = []
    for c in checks:
        rate = f", {_size(c.bytes_read / c.seconds)}/s" if c.seconds > 0 and c.bytes_read else ""
        line = (
            f"study {c.study!r}: {c.chunks} chunk file(s) of {c.tasks} done task(s) read "
            f"({_size(c.bytes_read)} in {c.seconds:.2f} s{rate}): "
        )
        line += f"{len(c.bad)} damaged" if c.bad else ("all match their digests" if c.chunks else "no chunk digests recorded")
        out.append(line)
        for b in c.bad:
            out.append(
                f"  {b.problem:<11} array {b.array!r} chunk {b.chunk} (task {b.task_key[:12]} {b.task_kind} {b.task_block})"
                + (f": {b.detail}" if b.detail else "")
            )
        if c.reopened:
            out.append(
                f"  {c.reopened} task(s) set back to pending: rerun `regulas run` on the study's config "
                "to recompute exactly them"
            )
        if c.waiting:
            out.append(
                f"  {c.waiting} chunk(s) found damaged by an earlier verify wait for `regulas run` to recompute their tasks"
            )
        if c.unverified:
            out.append(
                f"  unverified: {c.unverified} done task(s) finished before this store recorded chunk digests "
                "(written by regulas with store schema 5 or older); their chunks cannot be checked, "
                "and are not counted as damaged"
            )
    return "\n".join(out)


def _name_chunks(bad: dict[str, list[str]]) -> str:
    parts = []
    for array, chunks in sorted(bad.items()):
        shown = ", ".join(chunks[:SHOWN_PER_ARRAY])
        more = f" and {len(chunks) - SHOWN_PER_ARRAY} more" if len(chunks) > SHOWN_PER_ARRAY else ""
        parts.append(f"{array!r} ({shown}{more})")
    return "; ".join(parts)


def check_study_arrays(layout: StoreLayout, study: str) -> None:
    """Refuse to report on ``study`` when one of its arrays fails its digests: a chunk that
    ``regulas verify`` found damaged and no run has recomputed yet, or a recorded chunk file
    of a done task that is missing or not of its recorded size (one ``stat`` per file: the
    full sha256 is ``verify``'s job, too costly for every report at TCGA scale)."""
    engine = open_read(layout.db_path)
    try:
        with engine.connect() as conn:
            study_id = conn.exec_driver_sql("SELECT id FROM study WHERE name = ?", (study,)).scalar()
            if study_id is None:
                return  # the caller says which studies there are
            rows: list[Any] = list(conn.exec_driver_sql(
                "SELECT c.array, c.chunk, c.size, c.problem, t.status, a.path FROM task_chunk c "
                "JOIN task t ON t.id = c.task_id LEFT JOIN zarr_array a ON a.study_id = c.study_id AND a.name = c.array "
                "WHERE c.study_id = ? AND (t.status = 'done' OR c.problem IS NOT NULL) ORDER BY c.array, c.chunk",
                (study_id,),
            ))
    finally:
        engine.dispose()
    bad: dict[str, list[str]] = {}
    for array, chunk, size, problem, status, array_path in rows:
        if problem is not None and status != "done":
            bad.setdefault(array, []).append(f"{chunk} {problem}")
            continue
        try:
            found = _chunk_path(layout.arrays_path, array_path, study, array, chunk).stat().st_size
        except FileNotFoundError:
            bad.setdefault(array, []).append(f"{chunk} missing")
            continue
        if found != size:
            bad.setdefault(array, []).append(f"{chunk} of {found} bytes, recorded {size}")
    if bad:
        n = sum(map(len, bad.values()))
        raise StoreError(
            f"study {study!r}: {n} chunk(s) of its arrays fail their digests: {_name_chunks(bad)}; "
            "rerun `regulas run` on the study's config to recompute the tasks that wrote them, then report again"
        )


__all__ = ["BadChunk", "StudyCheck", "check_study_arrays", "format_checks", "verify_store"]
