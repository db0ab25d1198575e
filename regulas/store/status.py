"""``regulas status``: read-only view of a store's studies, safe while a run writes."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from regulas.errors import StoreError
from regulas.store.schema import SCHEMA_VERSION


def _open_readonly(root: Path) -> sqlite3.Connection:
    db = root / "regulas.db" if root.is_dir() else root
    if not db.is_file():
        raise StoreError(f"no regulas database at {db} (expected STORE_ROOT/regulas.db)")
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        (found,) = conn.execute("SELECT value FROM regulas_meta WHERE key='schema_version'").fetchone()
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"{db} is not a regulas database: {exc}") from exc
    if int(found) > SCHEMA_VERSION:
        conn.close()
        raise StoreError(f"{db} has schema version {found}, newer than this regulas ({SCHEMA_VERSION}); upgrade regulas-hpc")
    return conn


def format_status(root: Path, study_name: str | None = None, max_failures: int = 10) -> str:
    conn = _open_readonly(root)
    try:
        query = "SELECT id, name, workload, status, started_at, resumed_at, finished_at, runs FROM study"
        params: tuple[object, ...] = ()
        if study_name:
            query += " WHERE name = ?"
            params = (study_name,)
        studies = conn.execute(query + " ORDER BY id", params).fetchall()
        if not studies:
            return f"no study{' named ' + repr(study_name) if study_name else ''} in {root}"
        out: list[str] = []
        for sid, name, workload, status, started, resumed, finished, runs in studies:
            counts = dict(conn.execute("SELECT status, count(*) FROM task WHERE study_id=? GROUP BY status", (sid,)).fetchall())
            total = sum(counts.values())
            done = counts.get("done", 0)
            line = (
                f"study {name!r} ({workload}): {status}, run {runs}; tasks {done}/{total} done, "
                f"{counts.get('running', 0)} running, {counts.get('pending', 0)} pending, {counts.get('failed', 0)} failed"
            )
            out.append(line)
            window = conn.execute(
                "SELECT count(*), min(finished_at), max(finished_at) FROM task "
                "WHERE study_id=? AND status='done' AND finished_at >= ?",
                (sid, resumed or started),
            ).fetchone()
            n, first, last = window
            if n and n > 1 and last > first:
                rate = (n - 1) / (last - first)
                remaining = total - done - counts.get("failed", 0)
                eta = f", ETA {remaining / rate:.0f} s" if status == "running" and remaining else ""
                out.append(f"  rate {rate:.1f} tasks/s in the latest run{eta}")
            elapsed_end = finished or time.time()
            out.append(f"  elapsed {elapsed_end - (resumed or started):.1f} s in the latest run")
            failed = conn.execute(
                "SELECT key, kind, block, attempts, error_type, error_message, traceback FROM task "
                "WHERE study_id=? AND status='failed' ORDER BY id LIMIT ?",
                (sid, max_failures),
            ).fetchall()
            for key, kind, block, attempts, etype, msg, tb in failed:
                out.append(f"  FAILED {key[:12]} {kind} {block} attempts={attempts}: {etype}: {msg}")
                if tb:
                    out.extend("    " + ln for ln in tb.rstrip().splitlines()[-6:])
        return "\n".join(out)
    finally:
        conn.close()


def require_finished_study(db: Path, study_name: str) -> None:
    """Refuse to report on a study that is missing or unfinished (failed tasks are allowed: reported as missing)."""
    conn = _open_readonly(db)
    try:
        row = conn.execute("SELECT id, status FROM study WHERE name = ?", (study_name,)).fetchone()
        if row is None:
            names = [n for (n,) in conn.execute("SELECT name FROM study ORDER BY id")]
            raise StoreError(
                f"no study named {study_name!r} in {db} (studies there: {', '.join(map(repr, names)) or 'none'}); "
                "run it first, or name the study whose results to report"
            )
        pending = conn.execute("SELECT count(*) FROM task WHERE study_id = ? AND status IN ('pending', 'running')", (row[0],)).fetchone()
        if pending[0]:
            raise StoreError(
                f"study {study_name!r} in {db} has {pending[0]} task(s) not run yet (status {row[1]}); rerun "
                "`regulas run` on its config to finish it before reporting"
            )
    finally:
        conn.close()
