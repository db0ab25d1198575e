"""What runs on a Dask worker for one task: pin threads, run, time, catch, report."""

from __future__ import annotations

import os
import socket
import time
import traceback as tb
from collections.abc import Mapping
from typing import Any

from threadpoolctl import threadpool_limits

from regulas.core.errors import StoreFull
from regulas.core.task import Task
from regulas.core.workload import SharedContext, SharedInput, TaskContext, Workload
from regulas.store.arrays import RegionWriter
from regulas.store.sink import TaskOutcome
from regulas.store.space import is_disk_full


def worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except ValueError:  # not inside a Dask worker (e.g. called directly in a test)
        return f"{socket.gethostname()}:{os.getpid()}"


#: the error_type of an outcome whose task found the store's disk full
DISK_FULL = f"{StoreFull.__module__}.{StoreFull.__qualname__}"


def compute_shared(workload: Workload, shared: SharedInput, store_path: str, study: str, blas_threads: int = 1) -> Any:
    """Compute one shared input (a Dask task the tasks naming it depend on).

    Its error reaches each of them: the driver records it as theirs, and their siblings go on.
    """
    with threadpool_limits(limits=blas_threads):
        return workload.compute_shared(SharedContext(shared=shared, arrays=RegionWriter(store_path, study)))


def execute_task(
    workload: Workload,
    task: Task,
    store_path: str,
    study: str,
    blas_threads: int = 1,
    shared: Mapping[str, Any] | None = None,
) -> TaskOutcome:
    """Run one task and always return an outcome: an exception becomes a recorded failure.

    Catching here (instead of letting Dask see the exception) keeps a failing task from
    being retried by the scheduler and lets its siblings go on; the driver records the
    type, message and traceback.
    """
    started = time.time()
    writer = RegionWriter(store_path, study, task.regions)
    ctx = TaskContext(task=task, arrays=writer, shared=shared or {})
    try:
        with threadpool_limits(limits=blas_threads):
            result = workload.run_task(ctx)
        chunks = [(c.array, c.chunk, c.size, c.sha256) for c in writer.chunk_digests()]
    except Exception as exc:  # noqa: BLE001 - every task error is data for the study record
        return TaskOutcome(
            key=task.key,
            status="failed",
            started_at=started,
            finished_at=time.time(),
            worker=worker_name(),
            # a full disk is not the task's fault: the driver stops the run on it (DISK_FULL)
            error_type=DISK_FULL if is_disk_full(exc) else f"{type(exc).__module__}.{type(exc).__qualname__}",
            error_message=str(exc),
            traceback=tb.format_exc(),
        )
    return TaskOutcome(
        key=task.key,
        status="done",
        started_at=started,
        finished_at=time.time(),
        worker=worker_name(),
        rows=result.rows,
        chunks=chunks,
    )
