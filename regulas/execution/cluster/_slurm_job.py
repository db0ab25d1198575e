"""The SLURM job class of the ``slurm`` backend (a module of its own: it subclasses
dask-jobqueue's, which :mod:`regulas.execution.cluster.slurm` imports only when a cluster starts)."""

from __future__ import annotations

from typing import Any

from dask_jobqueue.slurm import SLURMJob
from distributed.core import Status


class RecordingSLURMJob(SLURMJob):
    """A SLURMJob that records why ``sbatch`` refused it; dask-jobqueue only logs that."""

    def __init__(self, *args: Any, submit_errors: list[tuple[str, str]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._submit_errors = submit_errors

    async def start(self) -> None:
        try:
            await super().start()
        except RuntimeError as exc:
            self.status = Status.failed  # so that closing the cluster accepts it
            if self._submit_errors is not None:
                text = str(exc)
                self._submit_errors.append((str(self.name), text.partition("stderr:")[2].strip() or text))
            raise
