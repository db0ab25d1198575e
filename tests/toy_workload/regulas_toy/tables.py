"""The toy workload's table and view, defined on the store's metadata.

``toy_result`` (one row per drawn value)::

    study_id, task_id   the study and task the row belongs to (the store's ids)
    task_index          which task drew it (0 .. n_tasks-1), = the row of ``toy_values``
    item                position within the task's draw (0 .. width-1)
    value               scale * standard normal draw
    log_value           log(value): NaN for value <= 0, stored as NULL + log_value_is_nan = 1

``toy_view`` is the stable interface for users and the report: the study's name instead
of its id, NaN flags kept as columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Column, Float, Index, Integer, PrimaryKeyConstraint, Table

from regulas.core.workload import Rows, WorkloadTables
from regulas.store.schema import metadata, nan_float, study_ref, task_ref

toy_result = Table(
    "toy_result",
    metadata,
    study_ref(),
    task_ref(),
    Column("task_index", Integer, nullable=False, comment="the task's index; its row of toy_values"),
    Column("item", Integer, nullable=False, comment="position within the task's draw"),
    Column("value", Float, nullable=False, comment="scale * standard normal draw"),
    *nan_float("log_value", "log(value); NaN when value <= 0"),
    PrimaryKeyConstraint("study_id", "task_index", "item"),
    Index(None, "task_id"),
)

TOY_VIEW = (
    "SELECT s.name AS study, r.task_index, r.item, r.value, r.log_value, r.log_value_is_nan "
    "FROM toy_result AS r JOIN study AS s ON s.id = r.study_id"
)


@dataclass
class ToyRows(Rows):
    """Rows of ``toy_result``, column-wise (NaN flags are filled by the store)."""

    table = "toy_result"
    task_index: Sequence[int]
    item: Sequence[int]
    value: Sequence[float] | np.ndarray
    log_value: Sequence[float] | np.ndarray


TOY_TABLES = WorkloadTables(results=(toy_result,), views={"toy_view": TOY_VIEW}, rows=(ToyRows,))
