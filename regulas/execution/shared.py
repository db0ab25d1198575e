"""Shared inputs of a run: computed once on a worker, handed to every task naming them.

A workload names them per task (:meth:`regulas.core.workload.Workload.shared_inputs`),
e.g. the factorisations of one outer split that every block of events of that split
reuses. Each is submitted as a Dask task when the first task naming it is submitted; the
tasks get its future as an argument, so Dask runs it first, moves its value to each
worker that needs it once, and computes it again if the worker holding it is lost. It is
released when the last task of this run naming it has its outcome recorded.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from regulas.core.task import Task
from regulas.core.workload import SharedInput, Workload
from regulas.execution.worker import compute_shared

if TYPE_CHECKING:
    from distributed import Client, Future


class SharedInputs:
    """The shared inputs of ``todo`` (the tasks of this run, in submission order)."""

    def __init__(self, client: Client, workload: Workload, todo: Sequence[Task], *, store_path: str, study: str,
                 blas_threads: int) -> None:
        self.client = client
        self.workload = workload
        self.store_path = store_path
        self.study = study
        self.blas_threads = blas_threads
        self.of_task: dict[str, tuple[SharedInput, ...]] = {}
        for task in todo:
            inputs = tuple(workload.shared_inputs(task))
            if inputs:
                self.of_task[task.key] = inputs
        #: tasks not yet recorded that name each key
        self.remaining = Counter(s.key for inputs in self.of_task.values() for s in inputs)
        self.futures: dict[str, Future] = {}
        self.computed = 0  # shared inputs submitted in this run
        # a cluster given by address may still hold a key of an earlier run: never reuse one
        self.token = uuid.uuid4().hex[:8]

    def for_task(self, task: Task) -> dict[str, Any]:
        """{key: future} of the shared inputs ``task`` names, submitting those not yet submitted."""
        out: dict[str, Any] = {}
        for s in self.of_task.get(task.key, ()):
            future = self.futures.get(s.key)
            if future is None:
                future = self.client.submit(
                    compute_shared, self.workload, s, self.store_path, self.study, self.blas_threads,
                    key=f"regulas-shared-{self.token}-{s.key}", pure=False,
                )
                self.futures[s.key] = future
                self.computed += 1
            out[s.key] = future
        return out

    def recorded(self, task: Task) -> None:
        """``task`` has its outcome: release what no task still to record names."""
        for s in self.of_task.get(task.key, ()):
            self.remaining[s.key] -= 1
            if self.remaining[s.key] <= 0:
                self.futures.pop(s.key, None)

    def release(self) -> None:
        self.futures.clear()
