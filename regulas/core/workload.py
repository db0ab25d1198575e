"""The contract every workload implements, and the typed pieces it hands the engine.

A workload turns its config section into inputs (written once, before any task), a plan
of :class:`~regulas.core.task.Task` and a pure function that runs one task on a worker
and returns small summaries (:class:`TaskResult`); big arrays go to Zarr regions the task
owns. It also declares the tables and views it adds to the store
(:class:`WorkloadTables`) and the reports of a finished study
(:class:`~regulas.core.report.Report`).

Workloads are plug-ins: they are found by name in the ``regulas.workloads`` entry-point
group (:mod:`regulas.core.registry`), so a package installed beside regulas can add one
without editing it. The engine (``regulas.execution``) and the store only ever see this
contract; see ``docs/adding-a-workload.md`` for a worked example.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np

from regulas.core.arrays import RegionWriterLike, StudyArraysLike
from regulas.core.errors import RegulasError
from regulas.core.task import Task

if TYPE_CHECKING:
    from sqlalchemy import Table

    from regulas.core.report import Report

#: rows of one table, column-wise: {column name: sequence of values}
Columns = Mapping[str, Sequence[Any] | np.ndarray]


@dataclass(frozen=True)
class StudyContext:
    """What the driver knows about the study while it plans."""

    name: str
    root_seed: int
    arrays: StudyArraysLike


@dataclass(frozen=True)
class SharedInput:
    """A computation several tasks of one run need (e.g. a factorisation every block of a
    split reuses): the engine runs it once per run on a worker and hands its value to each
    task that names it, as a Dask dependency (:meth:`Workload.shared_inputs`).

    key: unique within the study and naming everything the value depends on (two tasks
    naming one key get one value); block: plain JSON :meth:`Workload.compute_shared` reads.
    It is not stored: a rerun computes it again for the tasks still to do.
    """

    key: str
    block: dict[str, Any]


@dataclass(frozen=True)
class SharedContext:
    """What a shared computation gets on the worker: its input and read access to the arrays."""

    shared: SharedInput
    arrays: RegionWriterLike


@dataclass
class TaskContext:
    """What a task gets on the worker: its seed, its (checked) array access and the values
    of the shared inputs it names (by key; empty when run outside the engine, where the
    workload computes what it needs itself)."""

    task: Task
    arrays: RegionWriterLike
    shared: Mapping[str, Any] = field(default_factory=dict)

    @property
    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.task.seed)


@dataclass(frozen=True)
class Block:
    """Base of a workload's typed task block: a frozen dataclass of plain JSON values.

    ``json()`` is what enters the task key and ``task.block``; ``of(task)`` reads it back
    on the worker, so the plan and ``run_task`` spell the block once, here.
    """

    def json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def of(cls, task: Task) -> Self:
        return cls(**task.block)


@dataclass
class Rows:
    """Base of a workload's typed result rows: one dataclass per table, column-wise.

    Subclasses set ``table`` (the table's name) and declare one field per column they
    fill (a sequence or an array each). The store checks the fields against the table when
    the workload registers it (:func:`regulas.store.database.open_write`), so a misspelt
    column fails before any task runs.
    """

    table: ClassVar[str]

    def columns(self) -> dict[str, Sequence[Any] | np.ndarray]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def column_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))


def rows_by_table(rows: Sequence[Rows]) -> dict[str, Columns]:
    """Typed rows -> ``{table: columns}``, the form the sink writes (tables may repeat)."""
    out: dict[str, dict[str, list[Any]]] = {}
    for r in rows:
        cols = r.columns()
        if r.table not in out:
            out[r.table] = {k: _as_list(v) for k, v in cols.items()}
            continue
        have = out[r.table]
        if set(have) != set(cols):
            raise RegulasError(f"rows for table {r.table!r} with different columns: {sorted(have)} vs {sorted(cols)}")
        for k, v in cols.items():
            have[k].extend(_as_list(v))
    return dict(out)


def _as_list(values: Sequence[Any] | np.ndarray) -> list[Any]:
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


@dataclass
class TaskResult:
    """Small summaries of one task: result rows per table, column-wise."""

    rows: dict[str, Columns] = field(default_factory=dict)

    @classmethod
    def of(cls, *rows: Rows) -> TaskResult:
        if len({r.table for r in rows}) == len(rows):  # the common case: no copy needed
            return cls({r.table: r.columns() for r in rows})
        return cls(rows_by_table(rows))


@dataclass(frozen=True)
class WorkloadTables:
    """What a workload adds to the store: tables (SQLAlchemy Core, on the store's metadata)
    and documented views.

    ``results``: tables a task returns rows for (:class:`Rows` subclasses in ``rows``);
    ``study``: tables filled once per study before any task (:meth:`Workload.study_rows`);
    ``views``: name -> SELECT, the stable interface for users and reports.
    """

    results: tuple[Table, ...] = ()
    study: tuple[Table, ...] = ()
    views: Mapping[str, str] = field(default_factory=dict)
    rows: tuple[type[Rows], ...] = ()

    @property
    def all(self) -> tuple[Table, ...]:
        return (*self.study, *self.results)

    @classmethod
    def union(cls, *sets: WorkloadTables) -> WorkloadTables:
        """The tables of several workloads (a store may hold studies of each)."""
        return cls(
            results=tuple(t for s in sets for t in s.results),
            study=tuple(t for s in sets for t in s.study),
            views={k: v for s in sets for k, v in s.views.items()},
            rows=tuple(r for s in sets for r in s.rows),
        )


class Workload(ABC):
    """One kind of study. Subclasses set ``name``, ``section`` and ``config_class``.

    ``config_class`` is a dataclass that types the workload's config section (see
    :func:`regulas.core.config.typed.build`); its ``check(prefix, source)`` method, when
    present, validates values across keys.
    """

    name: ClassVar[str]
    section: ClassVar[str]  # the config key holding this workload's settings
    config_class: ClassVar[type]
    #: keys of the section that change how tasks run, not what they compute
    runtime_keys: ClassVar[tuple[str, ...]] = ()
    #: top-level config keys besides the core sections and ``section`` (regulAS's own)
    extra_top_keys: ClassVar[tuple[str, ...]] = ()
    #: the tables and views this workload adds to the store (read through :meth:`store_tables`)
    tables: ClassVar[WorkloadTables] = WorkloadTables()
    #: ``_target_`` names this workload's configs may use for regulas classes (e.g. regulAS's)
    target_aliases: ClassVar[Mapping[str, str]] = {}

    def __init__(self, config: Any) -> None:
        self.config = config

    @classmethod
    def store_tables(cls) -> WorkloadTables:
        """The tables and views this workload adds to the store: :attr:`tables` by default.

        A workload may override this to import its table definitions here rather than with
        its module: they import SQLAlchemy, which validating a config does not need.
        """
        return cls.tables

    def result_config(self) -> dict[str, Any]:
        """The part of the config that determines results; enters task keys and the study hash."""
        return {k: v for k, v in dataclasses.asdict(self.config).items() if k not in self.runtime_keys}

    def check_inputs(self, root_seed: int) -> None:  # noqa: B027 - an optional hook
        """Read and check the input data before the store is touched (driver; optional).

        Bad data must stop a run before it creates or changes anything; a workload
        that reads files does it here and keeps what it read for :meth:`prepare`.
        """

    def run_notes(self) -> Sequence[str]:
        """Lines a run prints once before its tasks start (optional), e.g. a caveat of the
        method the config chose."""
        return ()

    def data_fingerprint(self, root_seed: int) -> str | None:
        """The fingerprint :meth:`prepare` will return, computed without writing anything
        (driver, after :meth:`check_inputs`; optional).

        A rerun compares it with the one recorded at the study's first run before it
        touches the store; without it (None) the comparison waits for :meth:`prepare`.
        """
        return None

    def input_files(self) -> list[str]:
        """Files this study reads that its config names only indirectly (a glob, a comma
        list), so that a rerun on changed files is refused like one on a named file
        (driver, after :meth:`check_inputs`). Default: none."""
        return []

    def worker_modules(self) -> list[str]:
        """Modules a worker imports to run this study's tasks, imported by each worker of a
        cluster regulas starts as the worker starts, while the driver loads the data (so the
        first tasks do not pay for them). Default: the workload's own module."""
        return [type(self).__module__]

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

    def shared_inputs(self, task: Task) -> Sequence[SharedInput]:
        """The shared computations ``task`` uses (driver; optional, default none).

        A task must give the same result with or without them: ``run_task`` computes what
        is not in ``ctx.shared`` itself.
        """
        return ()

    def compute_shared(self, ctx: SharedContext) -> Any:
        """Compute one shared input on a worker (for a workload with :meth:`shared_inputs`)."""
        raise NotImplementedError(f"{type(self).__name__} names shared inputs but does not compute them")

    def study_rows(self, ctx: StudyContext) -> Sequence[Rows]:
        """Rows of the workload's study-level tables (``tables.study``), written before any task.

        For what describes the whole study rather than one task, e.g. the pipelines
        it compares.
        """
        return ()

    def reports(self) -> Sequence[Report]:
        """The reports of a finished study, in an order where each follows what it depends on.

        They run after a run that finished every task, and again on ``regulas report``.
        A report whose output has ``text`` is printed after the run.
        """
        return ()

    @property
    def reports_only(self) -> bool:
        """True when the config asks only for reports on an existing study (no fitting)."""
        return False
