"""The thin base of cluster backends: a config dataclass and a ``start`` that yields a client.

Each backend is one small module (``local``, ``address``, ``slurm``) that turns
its config section into a running :class:`distributed.Client`.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from regulas.core.config.sections import ClusterConfigBase
from regulas.core.errors import ConfigError

# the backends import Dask where a cluster starts: validating their config needs none of it
if TYPE_CHECKING:
    import dask.config
    from distributed import Client

log = logging.getLogger(__name__)

#: seconds a client or cluster may take to close before regulas gives up on it
CLOSE_TIMEOUT_S = 60.0
#: the same after Ctrl-C or a termination signal: the user (or SLURM's walltime) is waiting,
#: the finished tasks are committed already, and what hangs then is a Dask event loop that
#: the interrupt left stuck, which more time does not unstick
HURRIED_CLOSE_S = 10.0

#: SpecCluster closes a worker (its nanny, or its batch job) whose worker process left the
#: scheduler and is not back within ``distributed.deploy.lost-worker-timeout`` (15 s by
#: default) and never starts it again. A worker that crashed is restarted by its nanny, and
#: a lost batch job is replaced by regulas's watcher; a restart slower than the timeout (a
#: loaded machine, a worker importing scikit-learn as it starts) lost the worker for good.
KEEP_LOST_WORKERS = {"distributed.deploy.lost-worker-timeout": "3650d"}

#: below this a Dask worker process (Python, numpy, scikit-learn loaded: ~150 MB resident)
#: is paused or restarted by its nanny before its first task
MIN_WORKER_MEMORY = 256 * 2**20

BLAS_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def memory_bytes(value: object, key: str, source: str | None, *, workers: int = 1) -> int:
    """``value`` (e.g. "4GiB", "500MB" or a number of bytes) in bytes, each of ``workers``
    sharing it getting at least :data:`MIN_WORKER_MEMORY`; a :class:`ConfigError` otherwise."""
    from dask.utils import format_bytes, parse_bytes  # dask without distributed: ~0.1 s, only for a size given

    try:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValueError(value)
        size = parse_bytes(value)
        if size <= 0:
            raise ValueError(value)
    except ValueError:
        raise ConfigError(f"not a memory size (given: {value!r}); expected e.g. '4GiB' or '500MB'", key=key, source=source) from None
    if size // workers < MIN_WORKER_MEMORY:
        share = f" shared by {workers} worker processes" if workers > 1 else ""
        raise ConfigError(
            f"too little memory for a Dask worker (given: {value!r} = {format_bytes(size)}{share}); expected at least "
            f"{format_bytes(MIN_WORKER_MEMORY)} per worker process, e.g. '4GiB'",
            key=key,
            source=source,
        )
    return size


def blas_env(threads: int) -> dict[str, str]:
    """Environment that pins BLAS/OpenMP pools in worker processes to ``threads``."""
    return {name: str(threads) for name in BLAS_ENV_VARS}


class ClusterBackend(ABC):
    """Starts (or connects to) a Dask cluster and closes what it started."""

    name: ClassVar[str]
    config_class: ClassVar[type[ClusterConfigBase]]
    #: whether the workers are this run's own (started, and stopped at the end, by it)
    owns_workers: ClassVar[bool] = True
    #: whether a run launches the cluster before it reads and checks its input data, so that
    #: the workers start meanwhile: yes for a private local cluster (stopping it costs
    #: nothing if the data is bad); batch jobs on a shared cluster wait for checked data
    launch_early: ClassVar[bool] = True

    def __init__(self, config: Any) -> None:
        self.config = config
        self.client: Client | None = None
        #: modules each worker process imports as it starts (backends that start workers)
        self.preload: tuple[str, ...] = ()
        #: where the worker processes write distributed's log records (backends whose workers
        #: share the driver's console); None: where distributed puts them
        self.worker_log: Path | None = None
        #: set before :meth:`close` when the run was interrupted: waits are bounded by
        #: :data:`HURRIED_CLOSE_S` instead of :data:`CLOSE_TIMEOUT_S`
        self.hurry = False
        self._held_config: dask.config.set | None = None

    def hold_dask_config(self, settings: dict[str, Any]) -> None:
        """Keep ``settings`` in Dask's config until :meth:`close` (read while the cluster runs)."""
        import dask.config

        self.release_dask_config()
        self._held_config = dask.config.set(settings)

    def release_dask_config(self) -> None:
        if self._held_config is not None:
            self._held_config.__exit__(None, None, None)  # restores what was set before
            self._held_config = None

    def start(self) -> Client:
        """Return a connected client with at least one worker: :meth:`launch`, then :meth:`wait_ready`."""
        self.launch()
        return self.wait_ready()

    def launch(self) -> None:  # noqa: B027 - an optional hook
        """Begin starting the cluster without waiting for workers (scheduler up, worker
        processes or jobs on their way), so the driver can load and plan meanwhile.
        Default: nothing; :meth:`wait_ready` does it all."""

    @abstractmethod
    def wait_ready(self) -> Client:
        """Return a connected client with at least one worker (after :meth:`launch`)."""

    @abstractmethod
    def describe(self) -> str:
        """One line for the progress header: what runs where."""

    def check(self) -> list[str]:
        """Raise :class:`~regulas.core.errors.ClusterError` when the cluster can no longer run tasks.

        Called by the driver while it waits for results; returns news worth a line in
        the progress log (e.g. a lost batch job was replaced). Default: nothing to say.
        """
        return []

    def describe_state(self) -> str:
        """What the cluster's resource manager says about its workers (for error messages)."""
        return ""

    def planned_threads(self) -> int | None:
        """Worker threads an adaptive cluster may grow to; None: count the connected ones."""
        return None

    def dashboard_link(self) -> str | None:
        """Where the Dask dashboard of the started cluster is, if it has one."""
        return self.client.dashboard_link if self.client is not None else None

    def job_script(self) -> str | None:
        """The batch script of one worker job, for backends that submit jobs; else None."""
        return None

    def close(self) -> None:
        """Close the client (subclasses: then what they started; then :meth:`release_dask_config`)."""
        if self.client is not None:
            close_bounded("the Dask client", self.client.close, self.close_timeout_s)
            self.client = None

    @property
    def close_timeout_s(self) -> float:
        """How long a client or cluster may take to close (shorter after an interrupt)."""
        return HURRIED_CLOSE_S if self.hurry else CLOSE_TIMEOUT_S

    def __enter__(self) -> Client:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def close_bounded(what: str, close: Callable[..., object], timeout_s: float = CLOSE_TIMEOUT_S) -> bool:
    """``close(timeout=timeout_s)``; False (and a warning) when it fails or hangs: closing
    runs in ``finally`` blocks and must neither block forever nor hide the run's own error."""
    try:
        close(timeout=timeout_s)
    except (TimeoutError, OSError, RuntimeError) as exc:
        log.warning("could not close %s within %g s: %s", what, timeout_s, exc or type(exc).__name__)
        return False
    return True


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
