"""``score``: a generic long-format result table (target, method, split, metric, value),
shared by the workloads whose results need nothing more (``demo``, ``noop``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Column, Index, Integer, PrimaryKeyConstraint, String, Table

from regulas.core.workload import Rows, WorkloadTables
from regulas.store.schema import metadata, nan_float, study_ref, task_ref

score = Table(
    "score",
    metadata,
    study_ref(),
    task_ref(),
    Column("target", String(255), nullable=False, comment="what was predicted: an event, a gene, a cell"),
    Column("method", String(255), nullable=False, comment="pipeline or estimator name"),
    Column("split", Integer, nullable=False, comment="outer split (or replicate) index"),
    Column("metric", String(64), nullable=False),
    *nan_float("value", "the metric's value"),
    # The natural key is the primary key of a WITHOUT ROWID table: one B-tree instead
    # of a rowid table plus a unique index (measured 1.2x more rows/s in the sink).
    PrimaryKeyConstraint("study_id", "target", "method", "split", "metric"),
    Index(None, "task_id"),
    sqlite_with_rowid=False,
)


@dataclass
class ScoreRows(Rows):
    """Rows of ``score``, column-wise."""

    table = "score"
    target: Sequence[str]
    method: Sequence[str]
    split: Sequence[int]
    metric: Sequence[str]
    value: Sequence[float] | np.ndarray


SCORE_TABLES = WorkloadTables(results=(score,), rows=(ScoreRows,))
