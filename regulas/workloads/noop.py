"""Empty tasks: measures what the plan/Dask/sink machinery itself costs per task."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from regulas.core.config.typed import positive
from regulas.core.task import Task, make_task
from regulas.core.workload import StudyContext, TaskContext, TaskResult, Workload

if TYPE_CHECKING:  # SQLAlchemy where the store is opened: validating a config needs none
    from regulas.core.workload import WorkloadTables


@dataclass(frozen=True)
class NoopConfig:
    n_tasks: int = 1000
    rows_per_task: int = 1  # score rows each task returns

    def check(self, prefix: str, source: str | None) -> None:
        positive(self.n_tasks, f"{prefix}.n_tasks", source)
        positive(self.rows_per_task, f"{prefix}.rows_per_task", source, allow_zero=True)


class NoopWorkload(Workload):
    name = "noop"
    section = "noop"
    config_class = NoopConfig
    config: NoopConfig

    @classmethod
    def store_tables(cls) -> WorkloadTables:
        from regulas.workloads.score import SCORE_TABLES

        return SCORE_TABLES

    def prepare(self, ctx: StudyContext) -> str:
        return "no-input"

    def plan(self, ctx: StudyContext, fingerprint: str) -> list[Task]:
        return [
            make_task(
                study=ctx.name,
                kind="noop",
                block={"i": i},
                root_seed=ctx.root_seed,
                config=self.result_config(),
                data_fingerprint=fingerprint,
            )
            for i in range(self.config.n_tasks)
        ]

    def run_task(self, ctx: TaskContext) -> TaskResult:
        from regulas.workloads.score import ScoreRows

        n = self.config.rows_per_task
        i = ctx.task.block["i"]
        return TaskResult.of(
            ScoreRows(
                target=[f"t{i}"] * n,
                method=["noop"] * n,
                split=list(range(n)),
                metric=["none"] * n,
                value=[0.0] * n,
            )
        )
