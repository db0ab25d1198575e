"""Every worker must see the driver's store (SQLite folder and Zarr) before it runs a task.

Workers write their Zarr chunks into ``store.root`` and the driver reads them, so the
two must share that folder. On a cluster the classic mistake is a node-local path
(``/tmp``, ``/scratch``, ``$TMPDIR``): every node then has its own empty copy and the
study "succeeds" with arrays nobody can read. The probe checks both directions: the
driver writes a token file under ``store.root``; a worker reads it back and writes its
own file; the driver reads that.

Workers join at any time (adaptive scaling, replacements of lost or retired SLURM jobs,
nanny restarts), so the probe is a Dask worker plugin: the scheduler hands it to every
worker that registers, and a worker runs its ``setup`` before it handles any message
from the scheduler, so before its first task. A worker that cannot read the driver's
token (or write its own file) closes itself without running a task and reports why; a
worker that passes reports the file it wrote, which the driver reads back. Either report
reaches :class:`StoreGate`, which the driver polls while it waits for results; a failure
stops the run with the path, the worker, its host and why.

Reports travel as Dask events. A topic subscription is fire-and-forget (a batched-stream
message), so it can reach the scheduler after the plugin's first reports. The gate
therefore also reads the scheduler's stored events of the topic (every 0.25 s while it
waits for the workers connected at the start, every 5 s after), keeping those with its
token and skipping ones it has seen.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from distributed import Client
from distributed.diagnostics.plugin import WorkerPlugin

from regulas.core.errors import ClusterError

PROBE_FOLDER = ".regulas-probe"
TOPIC = "regulas-store-probe"  # Dask event topic of the workers' reports
PLUGIN_NAME = "regulas-store-probe"


def probe_folder(folder: str, token: str, worker: str) -> dict[str, str]:
    """On a worker: read the driver's token, write our own file; report what happened."""
    host = socket.gethostname()
    driver_file = Path(folder, f"driver-{token}")
    mine = Path(folder, f"worker-{token}-{host}-{os.getpid()}")
    out = {"worker": worker, "host": host, "token": token, "id": uuid.uuid4().hex}
    try:
        seen = driver_file.read_text()
    except OSError as exc:
        return {**out, "error": f"the worker cannot read {driver_file}: {exc.strerror or exc}"}
    if seen != token:
        return {**out, "error": f"{driver_file} holds other content on the worker than the driver wrote"}
    try:
        mine.write_text(f"{token} {host}")
    except OSError as exc:
        return {**out, "error": f"the worker cannot write {mine}: {exc.strerror or exc}"}
    return {**out, "path": str(mine), "content": f"{token} {host}"}


class StoreProbe(WorkerPlugin):
    """Runs the probe on every worker as it registers, before its first task."""

    name = PLUGIN_NAME

    def __init__(self, folder: str, token: str) -> None:
        self.folder = folder
        self.token = token

    def setup(self, worker: Any) -> None:
        report = probe_folder(self.folder, self.token, str(worker.address))
        worker.log_event(TOPIC, report)
        if "error" in report:
            # queued before the scheduler's messages are handled: no task starts on this worker
            worker.loop.add_callback(worker.close, nanny=True, reason="regulas: store.root is not shared")


class StoreGate:
    """Installs :class:`StoreProbe` on the cluster and checks the workers' reports."""

    def __init__(self, client: Client, root: Path, *, timeout_s: float) -> None:
        self.client = client
        self.root = root
        self.timeout_s = timeout_s
        token = uuid.uuid4().hex
        folder = root / PROBE_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        self.driver_file = folder / f"driver-{token}"
        self.driver_file.write_text(token)
        self.token = token
        self.passed: dict[str, str] = {}  # worker address -> host, of every worker that passed
        self._reports: list[dict[str, str]] = []
        self._seen: set[str] = set()  # ids of the reports taken already (subscription or event log)
        self._lock = threading.Lock()
        self._next_log_read = 0.0
        self._installed = False
        client.subscribe_topic(TOPIC, self._on_report)
        try:
            client.register_plugin(StoreProbe(str(folder), token), name=PLUGIN_NAME)
            self._installed = True
            self._wait_for(list(client.nthreads()))
        except BaseException:
            self.close()  # never raises: the error that stopped the probe is the one to report
            raise

    def _on_report(self, event: tuple[float, dict[str, str]]) -> None:  # on the client's loop
        self._take([event[1]])

    def _take(self, reports: list[dict[str, str]]) -> None:
        with self._lock:
            for report in reports:
                if report.get("token") == self.token and report.get("id") not in self._seen:
                    self._seen.add(report["id"])
                    self._reports.append(report)

    def _read_event_log(self, every_s: float) -> None:
        """Take the reports the scheduler stored, including any sent before our subscription
        landed; at most once per ``every_s`` (one scheduler round trip)."""
        if time.monotonic() < self._next_log_read:
            return
        self._take([msg for _, msg in self.client.get_events(TOPIC) if isinstance(msg, dict)])
        self._next_log_read = time.monotonic() + every_s

    def _wait_for(self, workers: list[str]) -> None:
        """Check the reports of ``workers`` (those connected at the start)."""
        deadline = time.monotonic() + self.timeout_s
        missing = set(workers)
        while True:
            self._read_event_log(every_s=0.25)
            self.admit_new()
            missing -= set(self.passed)
            missing &= set(self.client.nthreads())  # a worker that left has nothing to report
            if not missing:
                return
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"the workers {', '.join(sorted(missing))} did not report the store probe within {self.timeout_s:g} s"
                )
            time.sleep(0.05)

    def admit_new(self) -> list[str]:
        """Check the reports that arrived since the last call: one line per worker that passed.

        Raises :class:`ClusterError` naming the path, the worker, its host and why when a
        worker failed the probe or the driver cannot read back what it wrote.
        """
        try:
            self._read_event_log(every_s=5.0)  # a late joiner's report may predate the subscription too
        except (OSError, TimeoutError):
            pass  # the subscription still delivers; a scheduler that is gone stops the run elsewhere
        with self._lock:
            reports, self._reports = self._reports, []
        lines = []
        for report in reports:
            self._verify(report)
            self.passed[report["worker"]] = report["host"]
            lines.append(f"store probe passed: worker {report['worker']} (host {report['host']})")
        return lines

    def connected(self) -> int:
        """Workers connected now (those that failed the probe closed themselves)."""
        return len(self.client.nthreads())

    def _verify(self, report: dict[str, str]) -> None:
        where = (
            f"store.root {self.root} is not shared between the driver (host {socket.gethostname()}) "
            f"and worker {report['worker']} (host {report['host']})"
        )
        hint = ("put store.root on a filesystem that the driver and every worker node mount at the same path "
                "(not node-local /tmp or scratch)")
        if "error" in report:
            raise ClusterError(f"{where}: {report['error']}; {hint}")
        path = Path(report["path"])
        try:
            back = path.read_text()
        except OSError as exc:
            raise ClusterError(
                f"{where}: the worker wrote {path}, but the driver cannot read it back ({exc.strerror or exc}); {hint}"
            ) from None
        finally:
            path.unlink(missing_ok=True)
        if back != report["content"]:
            raise ClusterError(f"{where}: {path} reads differently on the driver than the worker wrote it; {hint}")

    def close(self) -> None:
        """Remove the plugin (a scheduler that outlives the run must not probe for it) and the token.

        Never raises for the cluster's state: it runs while the run is stopping, often
        because of an error that must reach the user unmasked.
        """
        try:
            if self._installed:
                self._installed = False
                self.client.unregister_worker_plugin(PLUGIN_NAME)
        except KeyError:
            # a worker that was still joining (or closing after a failed probe) had no
            # copy to remove; the scheduler's copy, the one that matters, is gone
            pass
        except (OSError, ValueError, TimeoutError):
            pass  # the cluster is gone already: nothing left to probe
        finally:
            try:
                self.client.unsubscribe_topic(TOPIC)
            except (OSError, ValueError, TimeoutError):
                pass
            self.driver_file.unlink(missing_ok=True)
            for leftover in self.driver_file.parent.glob(f"worker-{self.token}-*"):  # reports never verified
                leftover.unlink(missing_ok=True)
