"""SLURM through dask-jobqueue: every worker (group) is a batch job; the scheduler runs in the driver.

Jobs come and go with adaptive scaling between ``min_jobs`` and ``max_jobs``. Each job
runs ``processes`` worker processes of ``cores / processes`` threads, with BLAS pools
pinned to ``blas_threads``. Workers retire ``retire_before_walltime_s`` before the
walltime (``dask worker --lifetime``) so SLURM does not kill them inside a task; lost
and retired jobs are replaced, and jobs that cannot start stop the run with their log
(see :mod:`regulas.execution.cluster._slurm_watch`).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regulas.core.config.typed import positive
from regulas.core.errors import ClusterError, ConfigError
from regulas.execution.cluster._slurm_jobs import COMMAND_TIMEOUT_S, walltime_seconds
from regulas.execution.cluster._slurm_watch import JobWatch
from regulas.execution.cluster.base import (
    KEEP_LOST_WORKERS,
    ClusterBackend,
    ClusterConfigBase,
    blas_env,
    close_bounded,
    memory_bytes,
)

# Dask and dask-jobqueue are imported where a cluster starts: validating a config (the
# backend's config_class) needs neither
if TYPE_CHECKING:
    from dask_jobqueue import SLURMCluster
    from distributed import Client

log = logging.getLogger(__name__)

#: placeholders in a job script printed without a running scheduler
SCRIPT_SCHEDULER = "tcp://SCHEDULER-ADDRESS:PORT"
SCRIPT_WORKER_NAME = "WORKER-NAME"


@dataclass(frozen=True)
class SlurmClusterConfig(ClusterConfigBase):
    backend: str = "slurm"
    queue: str | None = None
    account: str | None = None
    cores: int = 1
    processes: int = 1
    memory: str = "4GiB"
    walltime: str | int = "01:00:00"  # int only to explain: YAML reads unquoted 1:30 as 90
    job_name: str = "regulas-worker"
    job_extra_directives: list[str] = field(default_factory=list)
    job_script_prologue: list[str] = field(default_factory=list)
    worker_extra_args: list[str] = field(default_factory=list)
    local_directory: str | None = "/tmp/regulas-dask-$USER"
    log_directory: str = "slurm-logs"
    interface: str | None = None
    python: str | None = None
    min_jobs: int = 1
    max_jobs: int = 4
    retire_before_walltime_s: float | None = 300.0
    poll_interval_s: float = 5.0
    dashboard_address: str | None = ":8787"
    blas_threads: int = 1
    startup_timeout_s: float = 600.0

    def check(self, prefix: str, source: str | None) -> None:
        for key in ("cores", "processes", "min_jobs", "max_jobs", "blas_threads", "poll_interval_s", "startup_timeout_s",
                    "worker_ttl_s"):
            positive(getattr(self, key), f"{prefix}.{key}", source)
        if self.cores % self.processes:
            raise ConfigError(
                f"{self.cores} cores cannot be split evenly into {self.processes} worker processes; "
                "expected cores to be a multiple of processes",
                key=f"{prefix}.processes",
                source=source,
            )
        if self.min_jobs > self.max_jobs:
            raise ConfigError(
                f"min_jobs ({self.min_jobs}) is larger than max_jobs ({self.max_jobs})", key=f"{prefix}.min_jobs", source=source
            )
        memory_bytes(self.memory, f"{prefix}.memory", source, workers=self.processes)  # per job, split between its workers
        if not isinstance(self.walltime, str):
            raise ConfigError(
                f"expected the time limit as a quoted string (given the number {self.walltime!r}: YAML reads an "
                "unquoted 1:30 as 90); write walltime: \"1:30:00\", or cluster.walltime=\"'1:30:00'\" on the command line",
                key=f"{prefix}.walltime",
                source=source,
            )
        try:
            seconds = walltime_seconds(self.walltime)
        except ValueError:
            raise ConfigError(
                f"not a SLURM time limit (given: {self.walltime!r}); expected M, M:S, H:M:S, D-H, D-H:M or D-H:M:S",
                key=f"{prefix}.walltime",
                source=source,
            ) from None
        margin = self.retire_before_walltime_s
        if margin is not None:
            positive(margin, f"{prefix}.retire_before_walltime_s", source)
            if margin >= seconds:
                raise ConfigError(
                    f"out of range (given: {margin!r}); must be shorter than the walltime ({self.walltime} = {seconds} s), "
                    "or null to let SLURM end workers at the walltime",
                    key=f"{prefix}.retire_before_walltime_s",
                    source=source,
                )

    @property
    def lifetime_s(self) -> int | None:
        """Seconds a worker lives before it retires itself (None: until SLURM ends it)."""
        if self.retire_before_walltime_s is None:
            return None
        return max(1, int(walltime_seconds(str(self.walltime)) - self.retire_before_walltime_s))


class SlurmBackend(ClusterBackend):
    name = "slurm"
    config_class = SlurmClusterConfig
    config: SlurmClusterConfig
    launch_early = False  # no job is submitted for data that fails its checks

    def __init__(self, config: SlurmClusterConfig) -> None:
        super().__init__(config)
        self.cluster: SLURMCluster | None = None
        self.watch: JobWatch | None = None
        self.startup_s: float | None = None
        self._t0 = time.monotonic()

    @property
    def log_directory(self) -> Path:
        return Path(self.config.log_directory).expanduser().resolve()

    def job_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``SLURMJob``/``SLURMCluster`` for this config."""
        cfg = self.config
        logs = self.log_directory
        # regulas owns the log paths (%x = job name, %j = job id) so the watcher can read them
        directives = [f"--output={logs}/%x-%j.out", f"--error={logs}/%x-%j.err", *cfg.job_extra_directives]
        prologue = [f"export {k}={v}" for k, v in blas_env(cfg.blas_threads).items()] + list(cfg.job_script_prologue)
        worker_args = list(cfg.worker_extra_args)
        if cfg.lifetime_s is not None and cfg.retire_before_walltime_s is not None:
            # staggered (+-), so that jobs started together do not all leave at once; the
            # latest still leaves 3/4 of the margin before the walltime
            stagger = int(min(cfg.retire_before_walltime_s, cfg.lifetime_s) / 4)
            worker_args += ["--lifetime", f"{cfg.lifetime_s}s", "--lifetime-stagger", f"{stagger}s"]
        return {
            "queue": cfg.queue,
            "account": cfg.account,
            "cores": cfg.cores,
            "processes": cfg.processes,
            "memory": cfg.memory,
            "walltime": str(cfg.walltime),
            "job_name": cfg.job_name,
            "job_extra_directives": directives,
            "job_script_prologue": prologue,
            "worker_extra_args": worker_args,
            "local_directory": cfg.local_directory,
            "interface": cfg.interface,
            "python": cfg.python or sys.executable,
        }

    def job_script(self) -> str:
        from dask_jobqueue.slurm import SLURMJob

        job = SLURMJob(scheduler=SCRIPT_SCHEDULER, name=SCRIPT_WORKER_NAME, **self.job_kwargs())
        script: str = job.job_script()
        return script

    def planned_threads(self) -> int:
        return self.config.max_jobs * self.config.cores

    def launch(self) -> None:
        from dask_jobqueue import SLURMCluster
        from distributed import Client

        from regulas.execution.cluster._slurm_job import RecordingSLURMJob

        cfg = self.config
        self._t0 = time.monotonic()
        submit_errors: list[tuple[str, str]] = []
        # SpecCluster closes a job 15 s after its worker left and may resubmit it under the
        # same name, racing the watcher, which replaces ended jobs by what squeue says.
        self.hold_dask_config(KEEP_LOST_WORKERS)
        with self._closed_on_failure():
            self.log_directory.mkdir(parents=True, exist_ok=True)
            self.cluster = SLURMCluster(
                job_cls=RecordingSLURMJob,  # type: ignore[arg-type]  # dask-jobqueue annotates a class as "Job"
                submit_errors=submit_errors,
                scheduler_options=self._scheduler_options(),
                silence_logs=50,  # sbatch failures are reported by the watcher, with their message
                **self.job_kwargs(),
            )
            self.watch = JobWatch(
                self.cluster,
                job_name=cfg.job_name,
                log_directory=self.log_directory,
                poll_interval_s=cfg.poll_interval_s,
                max_start_failures=2 * cfg.max_jobs,
                submit_errors=submit_errors,
            )
            self.cluster.adapt(minimum_jobs=cfg.min_jobs, maximum_jobs=cfg.max_jobs, interval="1s")
            self.client = Client(self.cluster, timeout=cfg.startup_timeout_s)
            self.watch.start()

    def wait_ready(self) -> Client:
        if self.cluster is None:
            self.launch()
        assert self.client is not None
        with self._closed_on_failure():
            self._wait_for_a_worker(self._t0 + self.config.startup_timeout_s)
        self.startup_s = time.monotonic() - self._t0
        return self.client

    @contextmanager
    def _closed_on_failure(self) -> Iterator[None]:
        try:
            yield
        except (OSError, ValueError, RuntimeError, TimeoutError) as exc:
            self.close()
            raise ClusterError(f"could not start a SLURMCluster: {exc}") from exc
        except ClusterError:
            self.close()
            raise

    def _scheduler_options(self) -> dict[str, Any]:
        if self.config.dashboard_address is None:
            # the scheduler's HTTP server runs anyway: a free port, without the dashboard pages
            return {"dashboard": False, "dashboard_address": ":0"}
        return {"dashboard_address": self.config.dashboard_address}

    def _wait_for_a_worker(self, deadline: float) -> None:
        assert self.watch is not None
        while self.watch.n_connected == 0:
            if self.watch.fatal is not None:  # news wait for the run's progress log
                raise self.watch.fatal
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"no Dask worker connected within cluster.startup_timeout_s={self.config.startup_timeout_s:g} s; "
                    + self.describe_state()
                )
            time.sleep(0.2)

    def check(self) -> list[str]:
        if self.watch is None:
            return []
        if self.watch.fatal is not None:
            raise self.watch.fatal
        return self.watch.take_news()

    def describe_state(self) -> str:
        jobs = self.watch.describe_jobs() if self.watch is not None else "no job submitted"
        return f"SLURM says: {jobs}; job logs in {self.log_directory}"

    def dashboard_link(self) -> str | None:
        # the scheduler's HTTP server runs even with the dashboard off: ask the config
        return super().dashboard_link() if self.config.dashboard_address is not None else None

    def describe(self) -> str:
        cfg = self.config
        threads = cfg.cores // cfg.processes
        where = f" on partition {cfg.queue}" if cfg.queue else ""
        return (
            f"SLURMCluster{where}: {cfg.min_jobs}-{cfg.max_jobs} jobs x {cfg.processes} worker process(es) x "
            f"{threads} thread(s), {cfg.memory} and walltime {cfg.walltime} per job; logs in {self.log_directory}"
        )

    def close(self) -> None:
        if self.watch is not None:
            self.watch.stop()
        super().close()
        if self.cluster is not None:
            # closing cancels the jobs it submitted; if it cannot, cancel them ourselves
            if not close_bounded("the SLURMCluster", self.cluster.close, self.close_timeout_s) and self.watch is not None:
                self._cancel_jobs(self.watch.job_ids())
            self.cluster = None
        self.release_dask_config()

    @staticmethod
    def _cancel_jobs(job_ids: list[str]) -> None:
        if not job_ids:
            return
        try:
            subprocess.run(["scancel", *job_ids], capture_output=True, timeout=COMMAND_TIMEOUT_S, check=True)
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("could not cancel the worker jobs %s: %s; cancel them with scancel", " ".join(job_ids), exc)
