"""Keep third-party chatter off the console: Dask, distributed, bokeh, tornado and asyncio log records
and warnings go to ``<store.root>/logs/driver.log`` while a study runs.

The console keeps regulas's own lines (progress, one line per problem); what the libraries
say (e.g. "Port 8787 is already in use", heartbeat errors while a cluster shuts down) is in
the log file for whoever needs it.
"""

from __future__ import annotations

import logging
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


@contextmanager
def third_party_logs_to_file(store_root: Path) -> Iterator[Path]:
    """Within the block, route third-party log records and warnings to ``store_root/logs/driver.log``."""
    path = store_root / LOG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(fmt)
    # its own handler: distributed's silence_logs may raise the level of the handlers above
    warn_handler = logging.FileHandler(path, encoding="utf-8")
    warn_handler.setFormatter(fmt)
    saved: list[tuple[logging.Logger, list[logging.Handler], bool]] = []
    for name in THIRD_PARTY:
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
            yield path
        finally:
            for logger, handlers, propagate in saved:
                logger.removeHandler(handler)
                for h in handlers:
                    logger.addHandler(h)
                logger.propagate = propagate
            warn_log.removeHandler(warn_handler)
            handler.close()
            warn_handler.close()


def port_of(address: Any) -> int | None:
    """The port of ``":8787"``, ``"host:8787"`` or ``"http://host:8787/status"``; None if none."""
    if not isinstance(address, str):
        return None
    tail = address.rsplit(":", 1)[-1].split("/", 1)[0]
    return int(tail) if tail.isdigit() else None
