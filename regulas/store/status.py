"""``regulas status``: read-only view of a store's studies, safe while a run writes."""

from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import time
from pathlib import Path
from typing import cast

from regulas.core.errors import StoreError
from regulas.store.database import open_read
from regulas.store.lease import lease_path, read_holder, read_snapshot, snapshot_path
from regulas.store.root import find_layout


def format_status(root: Path, study_name: str | None = None, max_failures: int = 10) -> str:
    """Progress and failures of the studies of the store at ``root`` (a store root or its database)."""
    layout = find_layout(root)
    root_dir = layout.root
    engine = open_read(layout.db_path)
    raw = engine.raw_connection()
    conn = cast(sqlite3.Connection, raw.driver_connection)
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
            remote = _remote_snapshot(root_dir, name)
            if remote is not None:
                out.extend(remote)
                continue
            counts = dict(conn.execute("SELECT status, count(*) FROM task WHERE study_id=? GROUP BY status", (sid,)).fetchall())
            total = sum(counts.values())
            done = counts.get("done", 0)
            line = (
                f"study {name!r} ({workload}): {status}, run {runs}; tasks {done}/{total} done, "
                f"{counts.get('running', 0)} running, {counts.get('pending', 0)} pending, {counts.get('failed', 0)} failed"
            )
            out.append(line)
            driver_gone = status == "running" and _driver_gone(root_dir, name)
            if driver_gone:
                out.append(f"  driver gone ({driver_gone}); rerun the same command to resume")
            window = conn.execute(
                "SELECT count(*), min(finished_at), max(finished_at) FROM task "
                "WHERE study_id=? AND status='done' AND finished_at >= ?",
                (sid, resumed or started),
            ).fetchone()
            n, first, last = window
            # an interrupted run's rate says nothing about when it will end: none shown
            if status != "interrupted" and not driver_gone and n and n > 1 and last > first:
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
        raw.close()
        engine.dispose()


def _remote_snapshot(root: Path, study: str) -> list[str] | None:
    """Status lines from the driver's snapshot when this process cannot read the database
    as it is being written: the driver is alive on another host (SQLite's WAL index is
    shared memory of the writer's host) or this process cannot write the store's folder
    (no WAL index at all). None: read the database."""
    holder = read_holder(lease_path(root, study))
    if holder is None or holder.gone():
        return None
    here = socket.gethostname()
    if holder.host == here and os.access(root, os.W_OK):
        return None
    snap = read_snapshot(snapshot_path(root, study))
    why = f"the driver runs on {holder.host}" if holder.host != here else f"{root} is not writable here"
    if snap is None:
        return [f"study {study!r}: running ({holder.describe()}); no progress snapshot yet ({why})"]
    age = max(0.0, time.time() - float(snap.get("updated_at", 0)))
    done, total, failed = int(snap.get("done", 0)), int(snap.get("total", 0)), int(snap.get("failed", 0))
    lines = [
        f"study {study!r} ({snap.get('workload', '?')}): {snap.get('status', 'running')}; tasks {done}/{total} done, "
        f"{failed} failed (from the driver's snapshot, {age:.0f} s old: {why})"
    ]
    rate, eta = snap.get("rate") or 0.0, snap.get("eta_s")
    if rate:
        lines.append(f"  rate {rate:.1f} tasks/s in the latest run" + (f", ETA {eta:.0f} s" if eta else ""))
    lines.append(f"  driver: {holder.describe()}")
    return lines


def _driver_gone(root: Path, study: str) -> str:
    """Why the driver of a ``running`` study is gone ("" when its lease is alive)."""
    holder = read_holder(lease_path(root, study))
    if holder is None:
        return "no lease: no driver holds it"
    if holder.gone():
        return f"last heartbeat {holder.age_s:.0f} s ago"
    return ""


def require_finished_study(db: Path, study_name: str) -> int:
    """The id of study ``study_name`` in database ``db``; refuses a study that is missing or
    unfinished (failed tasks are allowed: reported as missing)."""
    engine = open_read(db)
    raw = engine.raw_connection()
    conn = cast(sqlite3.Connection, raw.driver_connection)
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
        return int(row[0])
    finally:
        raw.close()
        engine.dispose()


def results_stamp(db: Path, study_id: int) -> str:
    """A digest of what a study's results are now: its config hash and, for each task, its
    status, attempts and when it finished. It changes whenever any result does (a task
    recomputed after ``regulas verify`` finishes anew), so reports keyed by it are current."""
    engine = open_read(db)
    raw = engine.raw_connection()
    conn = cast(sqlite3.Connection, raw.driver_connection)
    try:
        digest = hashlib.sha256()
        (config_hash,) = conn.execute("SELECT config_hash FROM study WHERE id = ?", (study_id,)).fetchone()
        digest.update(str(config_hash).encode())
        rows = conn.execute(
            "SELECT key, status, attempts, finished_at FROM task WHERE study_id = ? ORDER BY key", (study_id,)
        )
        for key, status, attempts, finished in rows:
            digest.update(f"{key}|{status}|{attempts}|{finished!r}\n".encode())
        return digest.hexdigest()
    finally:
        raw.close()
        engine.dispose()
