"""One driver per study: a lease file ``<store.root>/leases/<study>.lease``.

The driver creates it atomically (``O_CREAT | O_EXCL``) before it touches the study's
tables or arrays; its content (JSON) names the holder: host, pid, SLURM job id when set,
start time, the timeout it was taken with and a random token. Its modification time is the
heartbeat, refreshed every :data:`HEARTBEAT_S` seconds by a daemon thread of the driver.
A second driver on the same study is refused (:class:`StoreError`, naming the holder and
since when). A lease is stale when its heartbeat is older than its timeout
(``execution.lease_timeout_s``) or its pid is gone on this host; a stale lease is taken
over (renamed away, checked to be the one judged stale, then created anew). A holder
whose SLURM job has ended (``squeue`` no longer lists it running) is gone as well.

The driver also records its lease in the database (``study_lease``, see
:func:`regulas.store.database.record_lease`), where its token fences every commit: a driver
whose lease was taken over while it was frozen cannot write any more.

While it holds the lease the driver writes a snapshot of its progress beside it
(``<study>.status.json``, every :data:`SNAPSHOT_S` seconds, replaced atomically): SQLite's
WAL needs every reader on the writer's host, so ``regulas status`` on another host (a login
node while the driver runs on a compute node) or in a folder it cannot write reads that
instead of the database.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regulas.core.errors import StoreError
from regulas.store.root import write_json_atomically

LEASE_DIR = "leases"
#: seconds between two heartbeats of a running driver
HEARTBEAT_S = 10.0
#: a lease whose heartbeat is older than this is stale (``execution.lease_timeout_s``)
DEFAULT_TIMEOUT_S = 60.0
#: seconds between two progress snapshots of a running driver
SNAPSHOT_S = 2.0


def lease_path(root: Path, study: str) -> Path:
    return Path(root) / LEASE_DIR / f"{study}.lease"


def snapshot_path(root: Path, study: str) -> Path:
    return Path(root) / LEASE_DIR / f"{study}.status.json"


def heartbeat_for(timeout_s: float) -> float:
    """Heartbeat interval of a lease with this timeout: several beats fit in one timeout."""
    return min(HEARTBEAT_S, timeout_s / 4)


def read_snapshot(path: Path) -> dict[str, Any] | None:
    """The progress snapshot at ``path``; None when there is none (or it cannot be read)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _slurm_job_ended(job_id: str) -> bool:
    """Whether SLURM says job ``job_id`` is no longer running; False when it cannot tell."""
    if shutil.which("squeue") is None:
        return False
    try:
        proc = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    if proc.returncode != 0:
        # an unknown job id: the job ended long enough ago to be purged (MinJobAge)
        return "Invalid job id" in proc.stderr
    state = proc.stdout.strip()
    return state not in ("RUNNING", "COMPLETING", "PENDING", "CONFIGURING", "SUSPENDED", "REQUEUED", "RESIZING", "SIGNALING", "STOPPED")


@dataclass(frozen=True)
class Holder:
    """Who holds a lease, as its file says."""

    host: str
    pid: int
    slurm_job_id: str | None
    started_at: float
    timeout_s: float
    token: str
    heartbeat_at: float  # the file's modification time

    @property
    def age_s(self) -> float:
        """Seconds since the last heartbeat."""
        return max(0.0, time.time() - self.heartbeat_at)

    def gone(self) -> bool:
        """Whether the holder is gone: heartbeat too old, its pid dead on this host, or its
        SLURM job ended (e.g. the driver job of a resubmitted study, seen from its new host)."""
        if self.age_s > self.timeout_s:
            return True
        if self.host == socket.gethostname():
            return not _pid_alive(self.pid)
        return self.slurm_job_id is not None and _slurm_job_ended(self.slurm_job_id)

    def describe(self) -> str:
        job = f" (SLURM job {self.slurm_job_id})" if self.slurm_job_id else ""
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_at))
        return f"pid {self.pid} on {self.host}{job} since {since} (last heartbeat {self.age_s:.0f} s ago)"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def read_holder(path: Path, *, tries: int = 5) -> Holder | None:
    """The holder of the lease at ``path``; None when there is no lease file.

    A file being written right now (empty or half JSON) is read again a few times; if it
    stays unreadable its holder is unknown (pid 0), judged by its heartbeat alone.
    """
    data: dict[str, Any] = {}
    for attempt in range(tries):
        try:
            mtime = path.stat().st_mtime
            data = json.loads(path.read_text() or "null") or {}
            break
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            if attempt + 1 < tries:
                time.sleep(0.05)
    else:
        data = {}
    return Holder(
        host=str(data.get("host", "?")),
        pid=int(data.get("pid", 0)),
        slurm_job_id=data.get("slurm_job_id"),
        started_at=float(data.get("started_at", mtime)),
        timeout_s=float(data.get("timeout_s", DEFAULT_TIMEOUT_S)),
        token=str(data.get("token", "")),
        heartbeat_at=mtime,
    )


class Lease:
    """The lease of one study, held by this process; :meth:`release` it when the run ends.

    ``snapshot``, when set, returns the driver's progress; it is written beside the lease
    every :data:`SNAPSHOT_S` seconds.
    """

    def __init__(self, path: Path, holder: Holder, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.path = path
        self.holder = holder
        self.heartbeat_s = heartbeat_s
        self.snapshot: Callable[[], dict[str, Any]] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"regulas-lease-{path.stem}", daemon=True)
        self._thread.start()

    @property
    def token(self) -> str:
        return self.holder.token

    @property
    def snapshot_path(self) -> Path:
        return self.path.with_name(f"{self.path.stem}.status.json")

    def write_snapshot(self) -> None:
        if self.snapshot is None:
            return
        data = {**self.snapshot(), "host": self.holder.host, "pid": self.holder.pid,
                "slurm_job_id": self.holder.slurm_job_id, "updated_at": time.time()}
        try:
            write_json_atomically(self.snapshot_path, data)
        except OSError:
            pass  # a status snapshot is a courtesy: a full disk or lost mount stops nothing here

    def _beat(self) -> None:
        last_beat = time.monotonic()
        while not self._stop.wait(min(SNAPSHOT_S, self.heartbeat_s)):
            self.write_snapshot()
            if time.monotonic() - last_beat < self.heartbeat_s:
                continue
            try:
                os.utime(self.path)
            except OSError:
                return  # the lease is gone (removed by hand): nothing left to refresh
            last_beat = time.monotonic()

    def release(self) -> None:
        """Stop the heartbeat and remove the lease file and the snapshot if they are still this
        driver's (once no driver holds the study, ``regulas status`` reads the database)."""
        self._stop.set()
        self._thread.join(timeout=5)
        holder = read_holder(self.path, tries=1)
        if holder is not None and holder.token == self.token:
            self.snapshot_path.unlink(missing_ok=True)
            self.path.unlink(missing_ok=True)


def _create(path: Path, timeout_s: float) -> Holder | None:
    """Create the lease file; its holder (this process), or None when it exists already."""
    holder = Holder(
        host=socket.gethostname(),
        pid=os.getpid(),
        slurm_job_id=os.environ.get("SLURM_JOB_ID"),
        started_at=time.time(),
        timeout_s=timeout_s,
        token=secrets.token_hex(8),
        heartbeat_at=time.time(),
    )
    content = {k: getattr(holder, k) for k in ("host", "pid", "slurm_job_id", "started_at", "timeout_s", "token")}
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return None
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(content, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return holder


def _take_over(path: Path, stale: Holder) -> bool:
    """Move the stale lease out of the way; False when what moved was not that lease (another
    driver took it over first: its lease is put back)."""
    aside = path.with_name(f"{path.name}.stale-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return True  # already gone: try to create it
    moved = read_holder(aside, tries=1)
    if moved is not None and moved.token == stale.token and moved.pid == stale.pid:
        aside.unlink()
        return True
    try:
        os.link(aside, path)  # put the other driver's fresh lease back (never over a new one)
    except FileExistsError:
        pass
    aside.unlink()
    return False


def acquire_lease(
    root: Path,
    study: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    log: Callable[[str], None] = lambda _line: None,
    heartbeat_s: float | None = None,
) -> Lease:
    """Take the lease of ``study`` in the store at ``root``, taking over a stale one (``log``
    says so); raises :class:`StoreError` naming the holder when a live driver has it."""
    path = lease_path(root, study)
    path.parent.mkdir(parents=True, exist_ok=True)
    heartbeat_s = heartbeat_s if heartbeat_s is not None else heartbeat_for(timeout_s)
    for _ in range(3):
        mine = _create(path, timeout_s)
        if mine is not None:
            return Lease(path, mine, heartbeat_s)
        holder = read_holder(path)
        if holder is None:
            continue  # released meanwhile
        if not holder.gone():
            raise StoreError(
                f"study {study!r} is being run by another driver: {holder.describe()}; lease {path}. "
                "Wait for that run to end or stop it; a lease is taken over once its heartbeat is "
                f"older than {holder.timeout_s:g} s (execution.lease_timeout_s) or its process is gone"
            )
        if holder.age_s > holder.timeout_s:
            why = f"last heartbeat {holder.age_s:.0f} s ago, more than {holder.timeout_s:g} s"
        elif holder.host == socket.gethostname():
            why = f"pid {holder.pid} is gone on {holder.host}"
        else:
            why = f"SLURM job {holder.slurm_job_id} has ended"
        if _take_over(path, holder):
            log(f"taking over the stale lease of study {study!r} held by {holder.describe()}: {why}")
    holder = read_holder(path)
    raise StoreError(
        f"study {study!r}: could not take its lease {path}"
        + (f", held by {holder.describe()}" if holder is not None else "")
    )
