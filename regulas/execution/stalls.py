"""Stalls: per-task time limits and worker heartbeats, checked by the driver while it waits.

What Dask already does, and what regulas configures or adds on top of it:

- **Worker heartbeats.** Each worker sends the scheduler a heartbeat every 0.5 s (up to 10
  workers; slower for larger clusters, :func:`distributed.scheduler.heartbeat_interval`),
  which also reports how long each of its executing tasks has been running. The scheduler
  keeps the time of the last one (``WorkerState.last_seen``).
- **Worker TTL.** Every ``distributed.scheduler.worker-ttl`` the scheduler restarts (through
  its nanny) or removes each worker that has not sent a heartbeat for that long, and the
  tasks it held are scheduled on other workers. Dask's default is 5 minutes; regulas sets
  it from ``cluster.worker_ttl_s`` (default 30 s) for the schedulers it starts (the local
  and SLURM backends; see :func:`scheduler_config`), so a frozen (SIGSTOP) or lost worker's
  task runs elsewhere after 30-60 s plus the nanny's kill (at most 24 s). A scheduler
  that regulas only connects to (``cluster=address``) keeps its own setting.
- **What Dask does not do**: it has no time limit per task, and a run whose only worker
  is frozen waits for ever (the frozen worker stays connected). :class:`StallWatch` adds
  both, from one small scheduler query per check (about every second):

  - a worker silent for :data:`UNRESPONSIVE_AFTER_S` is reported in one line (and when it
    answers again); when no worker has answered for ``cluster.startup_timeout_s`` the run
    stops with a :class:`~regulas.core.errors.ClusterError` naming the workers and what
    to check;
  - a task executing longer than its limit (:class:`TaskLimits`) is reported in one line;
    the runner cancels it, restarts its worker when the task held the worker's only
    thread (a thread cannot be stopped, only its process), and starts it again on
    another worker or records it failed once it used ``execution.max_attempts``.
"""

from __future__ import annotations

import logging
import statistics
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from time import monotonic, sleep, time
from typing import Any

from distributed import Client

from regulas.core.errors import ClusterError

log = logging.getLogger(__name__)

#: a worker whose last heartbeat is older than this (and 3 heartbeat intervals) is unresponsive
UNRESPONSIVE_AFTER_S = 10.0
#: the automatic time limit of a kind of task: AUTO_FACTOR x the median duration of its
#: finished tasks, once AUTO_MIN_FINISHED of them finished (no limit before)
AUTO_FACTOR = 10.0
AUTO_MIN_FINISHED = 5
#: ... and never less than this: 10 x a median of milliseconds is within the jitter of a loaded
#: machine (a first call's imports, a busy core), and each cancellation costs a worker restart
AUTO_FLOOR_S = 60.0
#: a worker restarted by regulas (its nanny kills it and starts a new one) is killed after 0.8 x this
#: (a worker whose thread hangs never closes by itself)
RESTART_TIMEOUT_S = 2.0
#: what the lines about unresponsive workers tell the user to check
WHAT_TO_CHECK = (
    "check that its process is not stopped (SIGSTOP, Ctrl-Z, a debugger), swapping or out of memory, "
    "and that its host is up and reachable"
)


def scheduler_config(worker_ttl_s: float) -> dict[str, str]:
    """Dask settings for a scheduler regulas starts (``dask.config.set(...)`` around its start)."""
    return {"distributed.scheduler.worker-ttl": f"{worker_ttl_s:g}s"}


class TaskLimits:
    """The time limit of each kind of task (``Task.kind``).

    ``explicit``: ``execution.task_timeout_s``. A positive number is the limit of every task;
    0 means no limit; None (the default) means automatic: :data:`AUTO_FACTOR` times the median
    duration of the tasks of the same kind that finished (done) in this run, once
    :data:`AUTO_MIN_FINISHED` have, but at least :data:`AUTO_FLOOR_S`; no limit before.
    """

    def __init__(self, explicit: float | None) -> None:
        self.explicit = explicit
        self._durations: dict[str, list[float]] = defaultdict(list)

    def finished(self, kind: str, seconds: float) -> None:
        self._durations[kind].append(seconds)

    def limit(self, kind: str) -> float | None:
        if self.explicit is not None:
            return self.explicit or None
        durations = self._durations.get(kind, [])
        if len(durations) < AUTO_MIN_FINISHED:
            return None
        return max(AUTO_FLOOR_S, AUTO_FACTOR * statistics.median(durations))

    def describe(self, kind: str) -> str:
        """Where the limit of ``kind`` comes from, for messages."""
        limit = self.limit(kind)
        if self.explicit:
            return f"execution.task_timeout_s={self.explicit:g} s"
        durations = self._durations.get(kind, [])
        return (
            f"{limit:.3g} s, {AUTO_FACTOR:g} x the median {statistics.median(durations):.3g} s of the "
            f"{len(durations)} finished {kind} tasks, at least {AUTO_FLOOR_S:g} s (execution.task_timeout_s: null)"
        )


@dataclass(frozen=True)
class WorkerView:
    """One worker as the scheduler sees it now."""

    address: str
    host: str
    pid: int
    name: str
    nthreads: int
    nanny: bool
    silent_s: float  # seconds since its last heartbeat
    executing: dict[str, float] = field(default_factory=dict)  # task key -> seconds it has been running

    @property
    def label(self) -> str:
        return f"{self.address} (host {self.host}, pid {self.pid})"


def _scheduler_view(dask_scheduler: Any, prefix: str) -> list[dict[str, Any]]:  # runs in the scheduler
    now = time()
    return [
        {
            "address": ws.address, "host": ws.host, "pid": ws.pid, "name": str(ws.name), "nthreads": ws.nthreads,
            "nanny": bool(ws.nanny), "silent_s": now - ws.last_seen,
            "executing": {str(ts.key): d for ts, d in ws.executing.items() if str(ts.key).startswith(prefix)},
        }
        for ws in dask_scheduler.workers.values()
    ]


def workers_now(client: Client, prefix: str) -> list[WorkerView] | None:
    """The connected workers with their heartbeat age and executing tasks whose key starts
    with ``prefix``; None when the scheduler cannot be asked (then nothing is concluded)."""
    try:
        rows = client.run_on_scheduler(_scheduler_view, prefix=prefix)
    except Exception as exc:  # noqa: BLE001 - a slow or refusing scheduler: skip this check
        log.debug("could not ask the scheduler about its workers: %s", exc)
        return None
    return [WorkerView(**row) for row in rows]


@dataclass(frozen=True)
class OverLimit:
    """A task executing for longer than its limit."""

    future_key: str
    worker: WorkerView
    ran_s: float
    limit_s: float


class StallWatch:
    """The driver's periodic check of worker heartbeats and task durations (see the module doc)."""

    def __init__(
        self,
        client: Client,
        limits: TaskLimits,
        *,
        stall_timeout_s: float,
        message: Callable[[str], None],
        owns_workers: bool = True,
        prefix: str = "regulas-",
        unresponsive_after_s: float = UNRESPONSIVE_AFTER_S,
    ) -> None:
        self.client = client
        self.limits = limits
        self.stall_timeout_s = stall_timeout_s
        self.message = message
        self.prefix = prefix
        self.unresponsive_after_s = unresponsive_after_s
        self.owns_workers = owns_workers
        self._silent: set[str] = set()  # workers reported unresponsive
        self._no_live_worker_since: float | None = None
        self._views: list[WorkerView] | None = None
        self._restarts: list[threading.Thread] = []
        self._workers_before_restart = 0

    def unresponsive(self, view: WorkerView, n_workers: int) -> bool:
        from distributed.scheduler import heartbeat_interval

        return view.silent_s > max(self.unresponsive_after_s, 3 * heartbeat_interval(n_workers))

    def poll(self) -> list[WorkerView] | None:
        """Ask the scheduler; one line per worker that went silent (or answers again)."""
        views = self._views = workers_now(self.client, self.prefix)
        if views is None:
            return None
        silent = {v.address for v in views if self.unresponsive(v, len(views))}
        for v in views:
            if v.address in silent and v.address not in self._silent:
                tasks = (f"; its {len(v.executing)} running task(s) are rescheduled once Dask's worker TTL drops it"
                         if v.executing else "")
                self.message(f"worker {v.label} is unresponsive: no heartbeat for {v.silent_s:.0f} s{tasks}")
            elif v.address in self._silent and v.address not in silent:
                self.message(f"worker {v.label} answers again")
        for address in sorted(self._silent - {v.address for v in views}):
            self.message(f"unresponsive worker {address} is gone (restarted or removed by Dask); its tasks run on other workers")
        self._silent = silent
        return views

    def over_limit(self, kinds: Mapping[str, str]) -> list[OverLimit]:
        """The tasks of ``kinds`` (future key -> task kind) that run for longer than their limit,
        on workers that still answer (a silent worker's tasks are Dask's to move)."""
        out = []
        for v in self._views or []:
            if v.address in self._silent:
                continue
            for key, ran in v.executing.items():
                kind = kinds.get(key)
                limit = self.limits.limit(kind) if kind is not None else None
                if limit is not None and ran > limit:
                    out.append(OverLimit(key, v, ran, limit))
        return out

    def check_alive(self, connected: int, waiting: int, now: float, state: Callable[[], str] | None = None) -> None:
        """Raise once no worker has answered for ``stall_timeout_s``: none connected, or every
        connected one silent. ``now``: time.monotonic(); ``state``: what the cluster's resource
        manager says (asked only for the error)."""
        views = self._views
        answering = connected and (views is None or any(v.address not in self._silent for v in views))
        if answering:
            self._no_live_worker_since = None
            return
        silent = [v for v in views or [] if v.address in self._silent]
        if self._no_live_worker_since is None:
            self._no_live_worker_since = now
            what = "no Dask worker answers" if silent else "no Dask worker is connected"
            self.message(f"{what}; waiting up to {self.stall_timeout_s:g} s for one")
            return
        if now - self._no_live_worker_since <= self.stall_timeout_s:
            return
        extra = state() if state is not None else ""
        if silent:
            if self.owns_workers:
                # the run stops and closes its cluster, which waits on the silent workers (tens
                # of seconds each): let their nannies kill them now, Dask's way
                self._restart([v.address for v in silent], wait=True)
            names = ", ".join(f"{v.label}, no heartbeat for {v.silent_s:.0f} s" for v in silent)
            raise ClusterError(
                f"no Dask worker has answered for {self.stall_timeout_s:g} s (cluster.startup_timeout_s) while "
                f"{waiting} task(s) wait: worker(s) {names}; {WHAT_TO_CHECK}"
                + (f"; {extra}" if extra else "")
                + "; the done tasks are stored: rerun the same command to resume"
            )
        raise ClusterError(
            f"no Dask worker connected for {self.stall_timeout_s:g} s (cluster.startup_timeout_s) while "
            f"{waiting} task(s) wait" + (f"; {extra}" if extra else "")
            + "; the done tasks are stored: rerun the same command to resume"
        )

    def restart(self, view: WorkerView) -> bool:
        """Restart ``view``'s worker process through its nanny, in the background (a task over its
        limit holds the worker's only thread, which nothing else frees); False without a nanny
        or with other threads (whose tasks would be lost) to keep."""
        if not view.nanny or view.nthreads != 1:
            return False
        self._restart([view.address], wait=False)
        return True

    def _restart(self, addresses: list[str], *, wait: bool) -> None:
        def restart() -> None:
            try:  # Client.restart_workers would also wait for the new workers, and log an error when they are slow
                self.client.sync(
                    self.client.scheduler.restart_workers, workers=addresses, timeout=RESTART_TIMEOUT_S,
                    wait_for_workers=False, on_error="return", stimulus_id=f"regulas-restart-{time()}",
                )
            except Exception as exc:  # noqa: BLE001 - the worker may already be gone
                log.debug("could not restart workers %s: %s", addresses, exc)

        if wait:
            restart()
            return
        self._workers_before_restart = max(self._workers_before_restart, len(self._views or []))
        thread = threading.Thread(target=restart, name="regulas-restart-workers", daemon=True)
        thread.start()
        self._restarts.append(thread)

    def settle(self, timeout_s: float = 10.0) -> None:
        """Wait (at most ``timeout_s``) for the workers restarted in the background to be back:
        closing the cluster while one is joining makes it print a traceback."""
        deadline = monotonic() + timeout_s
        for thread in self._restarts:
            thread.join(max(0.0, deadline - monotonic()))
        while self._restarts and len(self.client.nthreads()) < self._workers_before_restart and monotonic() < deadline:
            sleep(0.1)
        sleep(0.5 if self._restarts else 0.0)  # let the last one that joined finish its start-up
