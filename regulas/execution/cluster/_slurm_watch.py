"""Watch the worker jobs of a SLURMCluster: fail fast on jobs that cannot start, replace lost ones.

dask-jobqueue submits a job per worker (group) and then only looks at the Dask scheduler:
a job that dies before its worker connects is never noticed (dask-jobqueue issue #620;
the client waits until its own timeout), and a job that ends later (``scancel``,
walltime, node failure, ``--lifetime``) stays in the cluster's plan, so adaptive scaling
does not replace it. This watcher runs on the cluster's event loop, asks ``squeue`` about
the jobs, and

* turns a job that ended (or is pending for good) before its worker connected into a
  :class:`~regulas.core.errors.ClusterError` with the job's state, exit code and the tail of
  its ``.err`` log, when no other worker can carry the study (or too many such jobs
  failed in a row, without a job in between whose worker connected);
* drops an ended job from the plan so that adaptive scaling submits a replacement.

Everything that touches the cluster runs on its loop; the driver thread only reads
:attr:`JobWatch.fatal`, :meth:`JobWatch.take_news` and :attr:`JobWatch.n_connected`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path
from typing import Any

from regulas.core.errors import ClusterError
from regulas.execution.cluster._slurm_jobs import (
    COMMAND_TIMEOUT_S,
    JobInfo,
    SlurmCommandError,
    job_exit_code,
    job_states,
    log_tail,
)

#: poll interval until the first worker has connected
STARTUP_POLL_S = 0.5


class JobWatch:
    """Polls ``squeue`` for the jobs of ``cluster`` (a running ``SLURMCluster``)."""

    def __init__(
        self,
        cluster: Any,
        *,
        job_name: str,
        log_directory: Path,
        poll_interval_s: float,
        max_start_failures: int,
        submit_errors: list[tuple[str, str]],
    ) -> None:
        self.cluster = cluster
        self.job_name = job_name
        self.log_directory = log_directory
        self.poll_interval_s = poll_interval_s
        self.max_start_failures = max_start_failures
        self.submit_errors = submit_errors  # (worker name, sbatch message), appended on the loop
        self.fatal: ClusterError | None = None
        self.start_failures = 0
        self.replaced = 0
        self.last_states: dict[str, JobInfo] = {}
        self._known: dict[str, str] = {}  # job id -> spec name, for every job ever seen
        self._connected_jobs: set[str] = set()
        self._handled: set[str] = set()
        self._news: list[str] = []
        self._lock = threading.Lock()
        self._stopped = False
        self._task: asyncio.Future[None] | None = None

    # --- driver thread -----------------------------------------------------------------

    def start(self) -> None:
        self.cluster.sync(self._begin)

    def stop(self) -> None:
        """Cancel the polling (and a running squeue) before the cluster's loop closes."""
        self._stopped = True
        if self._task is not None:
            with contextlib.suppress(TimeoutError):  # the loop is stuck: closing the cluster deals with it
                self.cluster.sync(self._end, callback_timeout=COMMAND_TIMEOUT_S)

    def job_ids(self) -> list[str]:
        """Every job this watch has seen submitted."""
        return list(self._known)

    @property
    def n_connected(self) -> int:
        return len(self.cluster.scheduler_info.get("workers", {}))

    def take_news(self) -> list[str]:
        with self._lock:
            news, self._news = self._news, []
        return news

    def describe_jobs(self) -> str:
        states = sorted(self.last_states.values(), key=lambda j: int(j.job_id) if j.job_id.isdigit() else 0)
        return "; ".join(j.describe() for j in states) if states else "no job seen in squeue"

    def err_log(self, job_id: str) -> Path:
        return self.log_directory / f"{self.job_name}-{job_id}.err"

    # --- cluster loop ------------------------------------------------------------------

    def _say(self, text: str) -> None:
        with self._lock:
            self._news.append(text)

    async def _begin(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _end(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopped and self.fatal is None:
            try:
                await self._poll()
            except SlurmCommandError as exc:  # a busy controller: try again next time
                self._say(f"SLURM job watch: {exc}")
            connected = bool(self._connected_jobs)
            await asyncio.sleep(self.poll_interval_s if connected else STARTUP_POLL_S)

    def _spec_names(self) -> dict[str, str]:
        """Dask worker name -> job (spec) name; jobs with several processes have suffixes."""
        names = {}
        for name, spec in self.cluster.worker_spec.items():
            for suffix in spec.get("group", [""]):
                names[f"{name}{suffix}"] = name
        return names

    async def _poll(self) -> None:
        cluster = self.cluster
        current = {name: job.job_id for name, job in list(cluster.workers.items()) if getattr(job, "job_id", None)}
        for name, job_id in current.items():
            self._known.setdefault(job_id, name)
        spec_of = self._spec_names()
        connected_specs = {spec_of.get(str(w.get("name"))) for w in cluster.scheduler_info.get("workers", {}).values()}
        connected = {job_id for name, job_id in current.items() if name in connected_specs}
        if connected - self._connected_jobs:
            self.start_failures = 0  # a job that works ends a streak of jobs that did not
        self._connected_jobs |= connected

        while self.submit_errors:
            name, message = self.submit_errors.pop(0)
            await self._start_failed(name, None, f"sbatch refused the job of worker {name}: {message}")

        states = await job_states(self.job_name)
        self.last_states = {k: v for k, v in states.items() if k in self._known}
        for job_id, name in list(self._known.items()):
            info = states.get(job_id)
            if job_id in self._handled or info is None:
                continue  # a job sbatch accepted is listed until MinJobAge after its end
            if info.ended or (info.hopeless and job_id not in self._connected_jobs):
                self._handled.add(job_id)
                await self._ended(name, info)
            if self.fatal is not None:
                return

    async def _ended(self, name: str, info: JobInfo) -> None:
        job_id = info.job_id
        if job_id not in self._connected_jobs:
            exit_code = await job_exit_code(job_id)
            log = self.err_log(job_id)
            what = "cannot start" if info.hopeless else "ended"
            message = (
                f"SLURM {info.describe()}"
                + (f", exit code {exit_code}" if exit_code else "")
                + f": the job of worker {name} {what} before its Dask worker connected. "
                f"Tail of {log}:\n{log_tail(log)}"
            )
            await self._start_failed(name, job_id, message)
            return
        self.replaced += 1
        self._say(f"SLURM {info.describe()}: worker {name} is gone; submitting a replacement job")
        await self._forget(name, job_id)

    async def _start_failed(self, name: str, job_id: str | None, message: str) -> None:
        self.start_failures += 1
        if self.n_connected == 0 or self.start_failures >= self.max_start_failures:
            reason = (
                "no Dask worker is connected"
                if self.n_connected == 0
                else f"{self.start_failures} worker jobs in a row failed to start"
            )
            self.fatal = ClusterError(f"{message}\n(stopping: {reason})")
            return
        self._say(message + "\n(other workers go on; submitting a replacement job)")
        await self._forget(name, job_id)

    async def _forget(self, name: str, job_id: str | None) -> None:
        """Drop the job from the cluster's plan; adaptive scaling then submits a new one
        (under a new name). Jobs that adaptive scaling already dropped are left alone."""
        job = self.cluster.workers.get(name)
        if name in self.cluster.worker_spec and job is not None and getattr(job, "job_id", None) == job_id:
            await self.cluster.scale_down([name])
