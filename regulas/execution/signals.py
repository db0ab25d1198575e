"""SIGTERM and SIGHUP stop the driver like Ctrl-C does.

SLURM sends SIGTERM at the walltime or on ``scancel`` (then SIGKILL some 30 s later); a
closed terminal or SSH session sends SIGHUP. Python's default for both ends the process at
once, without committing the finished tasks or marking the study. :func:`stop_on_signals`
turns them into a :class:`~regulas.core.errors.Terminated` (a ``KeyboardInterrupt``) raised
in the main thread, so the interrupt path of the runner does the work.

Only the CLI installs these handlers, around a run; importing regulas installs none.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing import resource_tracker
from types import FrameType

from regulas.core.errors import Terminated

#: the signals that stop a run like Ctrl-C
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """While inside: SIGTERM/SIGHUP raise :class:`Terminated` in the main thread (the first
    one; later ones are ignored, so the cleanup they started is not cut short)."""
    stopping = False

    def handler(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise Terminated(signum)

    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    # multiprocessing's resource tracker (shared by the Dask workers) ignores SIGINT and
    # SIGTERM but dies of a SIGHUP sent to the process group, and its replacement prints a
    # traceback for every semaphore it never saw: start it now, ignoring SIGHUP (inherited)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    resource_tracker.ensure_running()
    for s in STOP_SIGNALS:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
