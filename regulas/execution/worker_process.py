"""What each worker process of a LocalCluster regulas started does as it starts (a Dask
preload, :func:`dask_setup`): its log records go to the run's log file, and it lowers its
own scheduling priority.

**Log records.** The worker processes of a LocalCluster share the driver's stderr. Left
alone, a worker whose heartbeat meets a scheduler that has just closed prints an ERROR with
two tracebacks after the study's last progress line, although nothing went wrong. The
driver's own third-party records already go to ``<store.root>/logs/driver.log``
(:mod:`regulas.execution.logs`); a worker's go to the same file. The store folder is created
only once the data has been checked: until then a worker's records are dropped rather than
creating it.

**Priority.** The driver process holds Dask's scheduler and the study's single database
writer; with one busy worker per core it waits for a core whenever it has work, and a
commit that needs 15 s of CPU took 50 s of wall time at TCGA scale. Workers at a higher
nice value (``cluster.worker_nice``) leave the driver a core the moment it needs one; their
own share of the machine is unchanged while the driver idles, which is most of the time.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

#: the environment variables naming the log file and the niceness (set by the backend)
LOG_ENV = "REGULAS_WORKER_LOG"
NICE_ENV = "REGULAS_WORKER_NICE"


class AppendWhileThere(logging.Handler):
    """Appends each record to ``path`` if its folder exists; drops it otherwise."""

    def __init__(self, path: Path, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self.path = path
        self.setFormatter(logging.Formatter("%(asctime)s worker pid %(process)d %(name)s %(levelname)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if not self.path.parent.is_dir():
            return
        try:
            # opened per record: records are rare, and several processes append to one file
            with self.path.open("a", encoding="utf-8") as out:
                out.write(self.format(record) + "\n")
        except OSError:
            pass  # a full disk must not also break the worker's logging


def route_logs(path: str | None) -> bool:
    """Replace the console handlers of distributed's logger by an :class:`AppendWhileThere`
    of ``path``. Returns whether it did (nothing without a path)."""
    if not path:
        return False
    logger = logging.getLogger("distributed")
    for handler in list(logger.handlers):
        if isinstance(handler, logging.StreamHandler):
            logger.removeHandler(handler)
    logger.addHandler(AppendWhileThere(Path(path)))
    logger.propagate = False
    return True


def lower_priority(increment: str | None) -> int:
    """Add ``increment`` to this process's nice value; returns the new one."""
    step = int(increment) if increment else 0
    return os.nice(step) if step > 0 else os.nice(0)


def dask_setup(worker: object) -> None:
    """Dask's preload hook, called in each worker process as its worker starts."""
    route_logs(os.environ.get(LOG_ENV))
    lower_priority(os.environ.get(NICE_ENV))
