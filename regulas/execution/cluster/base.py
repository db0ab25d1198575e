"""The thin base of cluster backends: a config dataclass and a ``start`` that yields a client.

Each backend is one small module (``local``, ``address``, ``slurm``) that turns
its config section into a running :class:`distributed.Client`.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from distributed import Client

from regulas.core.config.sections import ClusterConfigBase

log = logging.getLogger(__name__)

#: seconds a client or cluster may take to close before regulas gives up on it
CLOSE_TIMEOUT_S = 60.0

BLAS_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def blas_env(threads: int) -> dict[str, str]:
    """Environment that pins BLAS/OpenMP pools in worker processes to ``threads``."""
    return {name: str(threads) for name in BLAS_ENV_VARS}


class ClusterBackend(ABC):
    """Starts (or connects to) a Dask cluster and closes what it started."""

    name: ClassVar[str]
    config_class: ClassVar[type[ClusterConfigBase]]
    #: whether the workers are this run's own (started, and stopped at the end, by it)
    owns_workers: ClassVar[bool] = True

    def __init__(self, config: Any) -> None:
        self.config = config
        self.client: Client | None = None

    @abstractmethod
    def start(self) -> Client:
        """Return a connected client with at least one worker."""

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
        if self.client is not None:
            close_bounded("the Dask client", self.client.close)
            self.client = None

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
