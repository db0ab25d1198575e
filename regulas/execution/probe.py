"""Before the first task: do the workers see the driver's store (SQLite folder and Zarr)?

Workers write their Zarr chunks into ``store.root`` and the driver reads them, so the
two must share that folder. On a cluster the classic mistake is a node-local path
(``/tmp``, ``/scratch``, ``$TMPDIR``): every node then has its own empty copy and the
study "succeeds" with arrays nobody can read. The probe checks both directions:
the driver writes a token file under ``store.root``; every connected worker reads it
back and writes its own file; the driver reads those. Any mismatch stops the run with
the path and the reason, before a task runs.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path
from typing import Any

from distributed import Client, wait

from regulas.errors import ClusterError

PROBE_FOLDER = ".regulas-probe"


def _probe_on_worker(folder: str, token: str) -> dict[str, Any]:
    """Runs on a worker: read the driver's token, write our own file; report what happened."""
    host = socket.gethostname()
    driver_file = Path(folder, f"driver-{token}")
    mine = Path(folder, f"worker-{token}-{host}-{os.getpid()}")
    try:
        seen = driver_file.read_text()
    except OSError as exc:
        return {"host": host, "error": f"the worker cannot read {driver_file}: {exc.strerror or exc}"}
    if seen != token:
        return {"host": host, "error": f"{driver_file} holds other content on the worker than the driver wrote"}
    try:
        mine.write_text(f"{token} {host}")
    except OSError as exc:
        return {"host": host, "error": f"the worker cannot write {mine}: {exc.strerror or exc}"}
    return {"host": host, "path": str(mine), "content": f"{token} {host}"}


def check_shared_store(client: Client, root: Path, *, timeout_s: float) -> int:
    """Probe every connected worker; return how many were checked.

    Raises :class:`ClusterError` naming the path and why when a worker cannot see the
    driver's file, or the driver cannot read back the file a worker wrote.
    """
    token = uuid.uuid4().hex
    folder = root / PROBE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    driver_file = folder / f"driver-{token}"
    driver_file.write_text(token)
    written: list[Path] = []
    try:
        workers = list(client.nthreads())
        futures = [
            client.submit(_probe_on_worker, str(folder), token, workers=[w], allow_other_workers=False,
                          pure=False, key=f"regulas-store-probe-{token}-{i}")
            for i, w in enumerate(workers)
        ]
        try:
            wait(futures, timeout=timeout_s)
        except TimeoutError as exc:
            raise ClusterError(f"the workers did not answer the store probe within {timeout_s:g} s") from exc
        driver_host = socket.gethostname()
        for worker, future in zip(workers, futures):
            result = future.result()
            where = f"store.root {root} is not shared between the driver (host {driver_host}) and worker {worker} (host {result['host']})"
            hint = "put store.root on a filesystem that the driver and every worker node mount at the same path (not node-local /tmp or scratch)"
            if "error" in result:
                raise ClusterError(f"{where}: {result['error']}; {hint}")
            path = Path(result["path"])
            written.append(path)
            try:
                back = path.read_text()
            except OSError as exc:
                raise ClusterError(
                    f"{where}: the worker wrote {path}, but the driver cannot read it back ({exc.strerror or exc}); {hint}"
                ) from None
            if back != result["content"]:
                raise ClusterError(f"{where}: {path} reads differently on the driver than the worker wrote it; {hint}")
        return len(workers)
    finally:
        for path in (driver_file, *written):
            path.unlink(missing_ok=True)
