"""A dask LocalCluster: one worker process per core, one thread each, BLAS pinned."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import resource_tracker
from typing import TYPE_CHECKING, Any

from regulas.core.config.typed import positive
from regulas.core.errors import ClusterError, ConfigError
from regulas.execution.cluster.base import (
    KEEP_LOST_WORKERS,
    ClusterBackend,
    ClusterConfigBase,
    blas_env,
    close_bounded,
    default_workers,
    memory_bytes,
)
from regulas.execution.worker_process import LOG_ENV, NICE_ENV

if TYPE_CHECKING:  # imported where the cluster starts: validating the config needs no Dask
    from distributed import Client, LocalCluster

log = logging.getLogger(__name__)

#: seconds a worker process gets to exit after it was asked to close, before it is killed
KILL_AFTER_S = 0.3


async def _block_sigint() -> None:
    """Block SIGINT in the thread running this coroutine (the cluster's event loop).

    Ctrl-C in a terminal signals the whole foreground process group, and each worker
    process answered it with a ``KeyboardInterrupt`` traceback of its own. Worker processes
    are spawned from threads the event loop starts; those threads and the processes they
    spawn inherit the blocked signal (the mask survives fork and exec), so only the driver
    sees Ctrl-C: it records the study as interrupted and closes the cluster, which stops
    the workers with SIGTERM.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


@dataclass(frozen=True)
class LocalClusterConfig(ClusterConfigBase):
    backend: str = "local"
    n_workers: int | None = None
    threads_per_worker: int = 1
    memory_limit: str | int | None = "auto"
    dashboard_address: str | None = ":8787"
    blas_threads: int = 1
    #: added to each worker process's nice value: the driver (scheduler, database writer) first
    worker_nice: int = 10

    def check(self, prefix: str, source: str | None) -> None:
        for key in ("n_workers", "threads_per_worker", "blas_threads", "startup_timeout_s", "worker_ttl_s"):
            positive(getattr(self, key), f"{prefix}.{key}", source)
        positive(self.worker_nice, f"{prefix}.worker_nice", source, allow_zero=True)
        if self.worker_nice > 19:
            raise ConfigError(f"out of range (given: {self.worker_nice!r}); expected a nice increment from 0 to 19",
                              key=f"{prefix}.worker_nice", source=source)
        if self.memory_limit not in (None, "auto"):  # per worker process
            memory_bytes(self.memory_limit, f"{prefix}.memory_limit", source)


class LocalBackend(ClusterBackend):
    name = "local"
    config_class = LocalClusterConfig

    def __init__(self, config: LocalClusterConfig) -> None:
        super().__init__(config)
        self.cluster: LocalCluster | None = None
        #: every nanny the cluster created, from the moment it is created (the cluster lists
        #: a worker only once it has started): what close() stops
        self.nannies: list[Any] = []

    @property
    def n_workers(self) -> int:
        return self.config.n_workers or default_workers()

    def launch(self) -> None:
        from distributed import LocalCluster, Nanny
        from distributed.worker_memory import parse_memory_limit

        nannies = self.nannies

        class TrackedNanny(Nanny):  # type: ignore[misc]  # distributed is untyped here
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                nannies.append(self)

        cfg = self.config
        kwargs: dict[str, Any] = {}
        # dask's own choice for n_workers (this cluster starts with none, see below)
        kwargs["memory_limit"] = (
            cfg.memory_limit if cfg.memory_limit is not None else parse_memory_limit("auto", 1, self.n_workers, logger=log)
        )
        if cfg.dashboard_address is None:
            # without a dashboard the scheduler still serves HTTP (health, metrics) on
            # 8787 and warns when another cluster holds that port: any free port will do
            kwargs["scheduler_kwargs"] = {"dashboard_address": "127.0.0.1:0"}
        self.hold_dask_config(KEEP_LOST_WORKERS)  # a crashed worker's nanny restarts it
        with self._closed_on_failure():
            # start multiprocessing's resource tracker here: starting it later, on the event
            # loop, would unblock SIGINT there again (Python 3.11 ends with SIG_UNBLOCK)
            resource_tracker.ensure_running()
            self.cluster = LocalCluster(
                n_workers=0,  # started below, once the event loop blocks Ctrl-C
                threads_per_worker=cfg.threads_per_worker,
                processes=True,
                worker_class=TrackedNanny,
                dashboard_address=cfg.dashboard_address,
                env=self._worker_env(),
                silence_logs=40,
                # imported by each worker process as it starts, while the driver loads the
                # data: the first task of each worker does not pay for them
                preload=["regulas.execution.worker_process", *self.preload],
                **kwargs,
            )
            self.cluster.sync(_block_sigint)
            self.cluster.scale(self.n_workers)  # returns at once: the processes start meanwhile

    def _worker_env(self) -> dict[str, str]:
        # read by regulas.execution.worker_process, preloaded in each worker process
        env = {**blas_env(self.config.blas_threads), NICE_ENV: str(self.config.worker_nice)}
        if self.worker_log is not None:
            env[LOG_ENV] = str(self.worker_log)
        return env

    def wait_ready(self) -> Client:
        from distributed import Client

        if self.cluster is None:
            self.launch()
        assert self.cluster is not None
        cfg = self.config
        with self._closed_on_failure():
            self.client = Client(self.cluster, timeout=cfg.startup_timeout_s)
            self.client.wait_for_workers(1, timeout=cfg.startup_timeout_s)
        return self.client

    @contextmanager
    def _closed_on_failure(self) -> Iterator[None]:
        try:
            yield
        except (OSError, TimeoutError) as exc:
            self.close()
            raise ClusterError(f"could not start a LocalCluster of {self.n_workers} workers: {exc}") from exc
        except BaseException:  # Ctrl-C while starting: stop what did start, keep the interrupt
            try:
                self.close()
            except Exception:  # noqa: BLE001 - distributed may fail to close a half-started cluster
                log.debug("could not close the half-started LocalCluster", exc_info=True)
            raise

    def dashboard_link(self) -> str | None:
        # the scheduler's HTTP server runs even with the dashboard off: ask the config
        return super().dashboard_link() if self.config.dashboard_address is not None else None

    def describe(self) -> str:
        return f"LocalCluster: {self.n_workers} worker processes x {self.config.threads_per_worker} thread"

    def close(self) -> None:
        # The workers' results are all in the driver by now: a worker process need not finish
        # its interpreter's teardown (scikit-learn, SciPy, Zarr loaded: ~1 s) nor, when the
        # run ends before it was needed, its start (a nanny waits for a starting worker to be
        # up before it stops it). Asked to close, each gets KILL_AFTER_S, then it is killed.
        nannies = self.nannies
        super().close()
        if self.cluster is not None:
            cluster, self.cluster = self.cluster, None
            limit = self.close_timeout_s
            closing = threading.Thread(
                target=close_bounded, args=("the LocalCluster", cluster.close, limit), name="regulas-close-cluster",
                daemon=True,
            )
            deadline = time.monotonic() + limit + 1.0
            with _killed_at_close_quiet():
                closing.start()
                closing.join(KILL_AFTER_S)
                while closing.is_alive():
                    _no_restart(nannies)
                    kill_children(_worker_pids(nannies))  # a starting worker's process may appear only now
                    if time.monotonic() > deadline:  # its workers are killed: leave the daemon thread
                        log.warning("could not close the LocalCluster within %g s; its worker processes are killed", limit)
                        break
                    closing.join(0.1)
        self.release_dask_config()


class _KilledAtClose(logging.Filter):
    """Drops what distributed logs about the workers killed here while the cluster closes: the
    error for a worker killed while it was starting, and the warning of a nanny restarting its
    killed worker (a nanny that became ``running`` between :func:`_no_restart` and the kill:
    the cluster's event loop runs in another thread, so that race cannot be closed from here;
    the restarted process is killed in turn)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "distributed.nanny" and record.getMessage().startswith("Restarting worker"):
            return False
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if "failed to start" in str(exc):
                return False
            exc = exc.__cause__
        return "failed to start" not in record.getMessage()


@contextmanager
def _killed_at_close_quiet() -> Iterator[None]:
    quiet = _KilledAtClose()
    loggers = [logging.getLogger(n) for n in ("tornado.application", "distributed.deploy.spec", "distributed.nanny")]
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)


def _no_restart(nannies: list[Any]) -> None:
    """Tell each running nanny that its worker's exit is expected.

    A nanny restarts a worker that exits while the nanny is running (with a warning in the
    log); the cluster's close reaches the nannies only after the scheduler's, so a worker
    killed first would be restarted. A nanny closing gracefully closes itself instead.
    """
    from distributed.core import Status

    for nanny in nannies:
        if nanny.status == Status.running:
            nanny.status = Status.closing_gracefully


def _worker_pids(nannies: list[Any]) -> list[int]:
    """The process IDs of the worker processes of ``nannies`` (the nannies run here)."""
    pids = (getattr(nanny, "pid", None) for nanny in nannies)
    return [pid for pid in pids if isinstance(pid, int)]


def kill_children(pids: list[int]) -> None:
    """SIGKILL each of ``pids`` that is still a child process of this one (never a
    process that took over a reused PID)."""
    import psutil  # a dependency of distributed

    me = os.getpid()
    for pid in pids:
        try:
            if psutil.Process(pid).ppid() == me:
                os.kill(pid, signal.SIGKILL)
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue  # gone already
