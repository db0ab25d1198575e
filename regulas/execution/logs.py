"""Keep third-party chatter off the console: Dask, distributed, bokeh, tornado and asyncio log records
and warnings go to ``<store.root>/logs/driver.log`` while a study runs.

The console keeps regulas's own lines (progress, one line per problem); what the libraries
say (e.g. "Port 8787 is already in use", heartbeat errors while a cluster shuts down) is in
the log file for whoever needs it.
"""

from __future__ import annotations

import logging
import logging.handlers
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

#: loggers (and the packages whose warnings) that go to the log file
THIRD_PARTY = ("distributed", "dask", "bokeh", "tornado", "asyncio")
LOG_FILE = Path("logs") / "driver.log"


def _third_party(filename: str) -> bool:
    parts = Path(filename).parts
    return any(name in parts for name in THIRD_PARTY)


class ThirdPartyLog:
    """Where third-party records go during a run: held in memory until the store folder is
    known to be writable (:meth:`to_file`), then written to ``<store.root>/logs/driver.log``.

    A run launches its cluster before it reads its data, and a run with bad data must not
    create the store folder; what distributed said meanwhile is written with the rest.
    """

    def __init__(self, store_root: Path) -> None:
        self.path = store_root / LOG_FILE
        fmt = logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s")
        self._fmt = fmt
        # never flushed on its own: it only flushes into the file once there is one
        self.held = logging.handlers.MemoryHandler(capacity=10_000, flushLevel=logging.CRITICAL + 1, target=None)
        self.held.setFormatter(fmt)
        self._file: logging.FileHandler | None = None
        self._size_before = 0  # the file is appended to: what earlier runs wrote is not news

    def to_file(self) -> Path:
        """From now on (and for what was held) write to :attr:`path`."""
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._size_before = self.path.stat().st_size if self.path.is_file() else 0
            self._file = logging.FileHandler(self.path, encoding="utf-8")
            self._file.setFormatter(self._fmt)
            self.held.setTarget(self._file)
            self.held.flush()
        return self.path

    @property
    def written(self) -> bool:
        """Whether this run wrote anything into the log file."""
        self.held.flush()
        return self._file is not None and self.path.is_file() and self.path.stat().st_size > self._size_before

    def close(self) -> None:
        self.held.flush()
        self.held.close()
        if self._file is not None:
            self._file.close()


@contextmanager
def third_party_logs(store_root: Path) -> Iterator[ThirdPartyLog]:
    """Within the block, route third-party log records and warnings to a :class:`ThirdPartyLog`
    (``store_root/logs/driver.log`` once its ``to_file`` is called)."""
    sink = ThirdPartyLog(store_root)
    # one handler object for the loggers and one for the warnings; warnings and errors only:
    # the INFO chatter of a scheduler's and its workers' life is not worth a file per run
    handler = _Forward(sink.held, logging.WARNING)
    warn_handler = _Forward(sink.held, logging.WARNING)
    saved: list[tuple[logging.Logger, list[logging.Handler], bool]] = []
    # the packages' loggers, and those of their modules that have handlers of their own
    # (distributed gives distributed.client and tornado.application their own stderr handler)
    names = [*THIRD_PARTY, *(n for n, lg in list(logging.root.manager.loggerDict.items())
                             if isinstance(lg, logging.Logger) and lg.handlers and n.split(".")[0] in THIRD_PARTY
                             and n not in THIRD_PARTY)]
    for name in names:
        logger = logging.getLogger(name)
        saved.append((logger, list(logger.handlers), logger.propagate))
        for h in list(logger.handlers):
            logger.removeHandler(h)
        logger.addHandler(handler)
        logger.propagate = False
    warn_log = logging.getLogger("regulas.warnings")
    warn_log.addHandler(warn_handler)
    warn_log.propagate = False

    with warnings.catch_warnings():
        shown = warnings.showwarning

        def showwarning(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: TextIO | None = None,
            line: str | None = None,
        ) -> None:
            if _third_party(filename):
                warn_log.warning("%s:%s: %s: %s", filename, lineno, category.__name__, message)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = showwarning
        try:
            yield sink
        finally:
            for logger, handlers, propagate in saved:
                logger.removeHandler(handler)
                for h in handlers:
                    logger.addHandler(h)
                logger.propagate = propagate
            warn_log.removeHandler(warn_handler)
            sink.close()


class _Forward(logging.Handler):
    """Hands the records of its level and above to ``target``. Not a ``StreamHandler``, so
    distributed's ``silence_logs`` leaves its level alone."""

    def __init__(self, target: logging.Handler, level: int) -> None:
        super().__init__(level)
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        self.target.handle(record)


def port_of(address: Any) -> int | None:
    """The port of ``":8787"``, ``"host:8787"`` or ``"http://host:8787/status"``; None if none."""
    if not isinstance(address, str):
        return None
    tail = address.rsplit(":", 1)[-1].split("/", 1)[0]
    return int(tail) if tail.isdigit() else None
