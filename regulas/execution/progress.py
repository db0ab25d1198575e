"""Progress of a run: done/total, rate, ETA and failures, as a live bar or log lines."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def _fmt_eta(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}"


class RunProgress:
    """Reports progress of the tasks run now; tasks done earlier count as done.

    ``mode``: ``bar`` (rich, for a terminal), ``log`` (one line every ``every_s``
    seconds, for batch logs), ``none``, or ``auto`` (bar when stderr is a terminal).
    """

    def __init__(self, mode: str = "auto", every_s: float = 10.0, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if self.stream.isatty() else "log"
        self.mode = mode
        self.every_s = every_s
        self.console = Console(file=self.stream, highlight=False, soft_wrap=True)
        self.total = 0
        self.done = 0
        self.failed = 0
        self.ran = 0
        self._first: float | None = None  # first completion: the rate excludes cluster start-up
        self._last_line = 0.0
        self._bar: Progress | None = None
        self._bar_task: TaskID | None = None

    def message(self, text: str) -> None:
        if self.mode != "none":
            self.console.print(text)

    def start(self, *, total: int, already_done: int) -> None:
        self.total, self.done = total, already_done
        if self.mode == "bar":
            self._bar = Progress(
                TextColumn("[bold]tasks"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TimeElapsedColumn(),
                TextColumn("[red]{task.fields[failed]} failed"),
                console=self.console,
                transient=False,
            )
            self._bar.start()
            self._bar_task = self._bar.add_task("tasks", total=total, completed=already_done, rate="", failed=0)

    def rate(self) -> float:
        if self._first is None or self.ran < 2:
            return 0.0
        elapsed = time.monotonic() - self._first
        return (self.ran - 1) / elapsed if elapsed > 0 else 0.0

    def eta(self) -> float:
        rate = self.rate()
        remaining = self.total - self.done - self.failed
        return remaining / rate if rate > 0 else float("inf")

    def update(self, ok: bool) -> None:
        self.ran += 1
        if self._first is None:
            self._first = time.monotonic()
        if ok:
            self.done += 1
        else:
            self.failed += 1
        if self._bar is not None and self._bar_task is not None:
            self._bar.update(
                self._bar_task, completed=self.done + self.failed, rate=f"{self.rate():.1f} tasks/s", failed=self.failed
            )
        elif self.mode == "log" and time.monotonic() - self._last_line >= self.every_s:
            self.log_line()

    def log_line(self) -> None:
        self._last_line = time.monotonic()
        self.message(
            f"tasks {self.done + self.failed}/{self.total} ({self.failed} failed)  "
            f"{self.rate():.1f} tasks/s  ETA {_fmt_eta(self.eta())}"
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        elif self.mode == "log" and self.ran:
            self.log_line()
