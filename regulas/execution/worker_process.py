"""In a worker process of a LocalCluster regulas started: distributed's log records go to the
run's log file (``<store.root>/logs/driver.log``), not to the console.

The worker processes of a LocalCluster share the driver's stderr. Left alone, a worker whose
heartbeat meets a scheduler that has just closed prints an ERROR with two tracebacks after
the study's last progress line, although nothing went wrong. The driver's own third-party
records already go to the log file (:mod:`regulas.execution.logs`); each worker process
runs this module as it starts (a Dask preload, :func:`dask_setup`), and it sends its records
to the same file.

The store folder is created only once the data has been checked: until then a worker's
records are dropped rather than creating it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

#: the environment variable naming the log file (set by the backend that starts the workers)
ENV = "REGULAS_WORKER_LOG"


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


def route(path: str | None) -> bool:
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


def dask_setup(worker: object) -> None:
    """Dask's preload hook, called in each worker process as its worker starts."""
    route(os.environ.get(ENV))
