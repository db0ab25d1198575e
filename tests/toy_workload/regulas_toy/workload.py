"""The toy workload: seeded draws, one Zarr array, one table, one report.

Model: task ``i`` (``i = 0 .. n_tasks-1``) draws ``x_i = scale * z``, ``z ~ N(0, I_width)``
from its own seed (``ctx.rng``, derived from the study seed, the task kind and its block),
writes ``x_i`` to row ``i`` of ``toy_values`` (``n_tasks x width``; chunks ``1 x width``,
so each task owns exactly one chunk) and returns ``value = x_i`` and ``log_value =
log(x_i)`` (NaN where ``x_i <= 0``) as rows of ``toy_result``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import text

from regulas.core.config.typed import positive
from regulas.core.errors import ConfigError
from regulas.core.hashing import stable_hash
from regulas.core.report import Report, ReportContext, ReportOutput
from regulas.core.task import Region, Task, make_task
from regulas.core.workload import Block, StudyContext, TaskContext, TaskResult, Workload
from regulas.store.arrays import ArraySpec
from regulas.store.reading import read_frame
from regulas_toy.tables import TOY_TABLES, ToyRows

#: the task kind: enters every task's key and seed
KIND = "toy.draw"
#: the Zarr array the tasks write, one row each
ARRAY = "toy_values"


@dataclass(frozen=True)
class ToyConfig:
    """The ``toy:`` section of a study config."""

    n_tasks: int = 4  # tasks, = rows of toy_values
    width: int = 3  # values drawn per task, = columns of toy_values
    scale: float = 2.0  # multiplies the standard normal draws

    def check(self, prefix: str, source: str | None) -> None:
        positive(self.n_tasks, f"{prefix}.n_tasks", source)
        positive(self.width, f"{prefix}.width", source)
        if not math.isfinite(self.scale) or self.scale <= 0:
            raise ConfigError(f"out of range (given: {self.scale!r}); expected a finite value > 0",
                              key=f"{prefix}.scale", source=source)


@dataclass(frozen=True)
class ToyBlock(Block):
    """One task: the draw of index ``index`` (its row of ``toy_values``)."""

    index: int


class ToyWorkload(Workload):
    name = "toy"
    section = "toy"
    config_class = ToyConfig
    config: ToyConfig
    tables = TOY_TABLES

    def prepare(self, ctx: StudyContext) -> str:
        c = self.config
        ctx.arrays.create(
            ArraySpec(
                ARRAY,
                shape=(c.n_tasks, c.width),
                chunks=(1, c.width),  # one chunk per task: the unit a task owns
                dims=("task", "item"),
                description="scale * N(0, 1) draws, one row per task",
            )
        )
        # No input data: the fingerprint only has to change if the inputs could.
        return stable_hash("toy", "no-input")

    def plan(self, ctx: StudyContext, fingerprint: str) -> list[Task]:
        c = self.config
        config = self.result_config()
        return [
            make_task(
                study=ctx.name,
                kind=KIND,
                block=ToyBlock(i).json(),
                root_seed=ctx.root_seed,
                config=config,
                data_fingerprint=fingerprint,
                regions=(Region.of(ARRAY, i, slice(0, c.width)),),
            )
            for i in range(c.n_tasks)
        ]

    def run_task(self, ctx: TaskContext) -> TaskResult:
        c = self.config
        block = ToyBlock.of(ctx.task)
        values = c.scale * ctx.rng.standard_normal(c.width)
        ctx.arrays.write(Region.of(ARRAY, block.index, slice(0, c.width)), values[None, :])
        with np.errstate(invalid="ignore", divide="ignore"):
            logs = np.where(values > 0, np.log(np.abs(values)), np.nan)
        return TaskResult.of(
            ToyRows(
                task_index=[block.index] * c.width,
                item=list(range(c.width)),
                value=values,
                log_value=logs,
            )
        )

    def reports(self) -> list[Report]:
        return [ToySummary()]


class ToySummary(Report):
    """Per task: how many values, their mean, how many have no log (value <= 0).

    Writes ``toy_summary.csv`` (one row per task) and prints one line.
    """

    name = "toy_summary"

    def write(self, ctx: ReportContext, inputs: Mapping[str, pd.DataFrame | None]) -> ReportOutput:
        rows = read_frame(
            ctx.db,
            text("SELECT task_index, item, value, log_value, log_value_is_nan FROM toy_view WHERE study = :s"),
            {"s": ctx.study},
        )
        frame = (
            rows.groupby("task_index")
            .agg(n=("value", "size"), mean=("value", "mean"), n_log_nan=("log_value", lambda s: int(s.isna().sum())))
            .reset_index()
        )
        path = ctx.out_dir / "toy_summary.csv"
        frame.to_csv(path, index=False)
        summary = (
            f"toy: {len(rows)} values in {len(frame)} tasks; mean {rows.value.mean():.4f}; "
            f"{int(rows.log_value.isna().sum())} without a log"
        )
        return ReportOutput(frame=frame, files=[path], text=summary)
