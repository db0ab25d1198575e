"""The thin base every workload implements, and the context a task runs in.

A workload turns its config section into inputs (written once, before any task), a
plan of :class:`~regulas.execution.plan.Task` and a pure function that runs one task
on a worker and returns small summaries; big arrays go to Zarr regions the task owns.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sqlalchemy import Engine

from regulas.execution.plan import Task
from regulas.store.arrays import RegionWriter, StudyArrays
from regulas.store.sink import Columns


@dataclass(frozen=True)
class StudyContext:
    """What the driver knows about the study while it plans."""

    name: str
    root_seed: int
    arrays: StudyArrays


@dataclass
class TaskContext:
    """What a task gets on the worker: its seed and its (checked) array access."""

    task: Task
    arrays: RegionWriter

    @property
    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.task.seed)


@dataclass
class TaskResult:
    """Small summaries of one task: result rows per table, column-wise."""

    rows: dict[str, Columns] = field(default_factory=dict)


class Workload(ABC):
    """One kind of study. Subclasses set ``name``, ``section`` and ``config_class``."""

    name: ClassVar[str]
    section: ClassVar[str]  # the config key holding this workload's settings
    config_class: ClassVar[type]
    #: keys of the section that change how tasks run, not what they compute
    runtime_keys: ClassVar[tuple[str, ...]] = ()
    #: top-level config keys besides the core sections and ``section`` (regulAS's own)
    extra_top_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any) -> None:
        self.config = config

    def result_config(self) -> dict[str, Any]:
        """The part of the config that determines results; enters task keys and the study hash."""
        return {k: v for k, v in dataclasses.asdict(self.config).items() if k not in self.runtime_keys}

    def check_inputs(self, root_seed: int) -> None:
        """Read and check the input data before the store is touched (driver; optional).

        Bad data must stop a run before it creates or changes anything; a workload
        that reads files does it here and keeps what it read for :meth:`prepare`.
        """

    @abstractmethod
    def prepare(self, ctx: StudyContext) -> str:
        """Write inputs and create output arrays (driver, before any task).

        Returns a fingerprint of the input data; it enters every task key.
        """

    @abstractmethod
    def plan(self, ctx: StudyContext, fingerprint: str) -> list[Task]:
        """The full list of tasks of the study, in submission order."""

    @abstractmethod
    def run_task(self, ctx: TaskContext) -> TaskResult:
        """Compute one task on a worker. Must be deterministic given ``ctx.task.seed``."""

    def study_rows(self, ctx: StudyContext) -> dict[str, Columns]:
        """Rows of study-level tables (``schema.STUDY_TABLES``), written before any task.

        For what describes the whole study rather than one task, e.g. the pipelines
        it compares.
        """
        return {}

    def summarize(self, engine: Engine, study_id: int) -> str | None:
        """A short human summary printed after the run (optional)."""
        return None

    def plot(self, engine: Engine, study_id: int, arrays: StudyArrays, out_dir: Path) -> list[Path]:
        """Figures (PNG) of a finished study written into ``out_dir`` (optional)."""
        return []

    @property
    def reports_only(self) -> bool:
        """True when the config asks only for reports on an existing study (no fitting)."""
        return False

    def report(self, db_path: Path, arrays: StudyArrays, out_dir: Path) -> list[Path]:
        """Rerun the reports of a finished study from its database, without refitting."""
        from sqlalchemy import create_engine, select

        from regulas.store.schema import study

        engine = create_engine(f"sqlite:///{db_path}")
        try:
            with engine.connect() as conn:
                study_id = conn.execute(select(study.c.id).where(study.c.name == arrays.study)).scalar_one()
            return self.plot(engine, study_id, arrays, out_dir)
        finally:
            engine.dispose()
