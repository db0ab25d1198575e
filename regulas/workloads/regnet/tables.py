"""The regnet workload's table ``sim_score`` (long format: one row per grid cell, replicate,
method and metric) and its view ``sim_result``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Column, Float, Index, Integer, PrimaryKeyConstraint, String, Table

from regulas.core.workload import Rows, WorkloadTables
from regulas.store.schema import metadata, nan_float, study_ref, task_ref

sim_score = Table(
    "sim_score",
    metadata,
    study_ref(),
    task_ref(),
    Column("cell", String(255), nullable=False, comment="label of the grid cell"),
    Column("replicate", Integer, nullable=False),
    Column("genes", Integer, nullable=False, comment="G"),
    Column("conditions", Integer, nullable=False, comment="P"),
    Column("motifs", Integer, nullable=False, comment="T"),
    Column("V", String(64), nullable=False, comment="signal covariance structure between conditions"),
    Column("Sigma", String(64), nullable=False, comment="noise covariance structure"),
    Column("noise_fraction", Float, nullable=False),
    Column("fraction", Float, nullable=False, comment="signal fraction f"),
    Column("method", String(64), nullable=False),
    Column("metric", String(64), nullable=False),
    *nan_float("value", "the metric's value"),
    PrimaryKeyConstraint("study_id", "cell", "replicate", "method", "metric"),
    Index(None, "task_id"),
    sqlite_with_rowid=False,
)


VIEWS: dict[str, str] = {
    # sim_result: one row per (study, grid cell, replicate, method, metric) of a regNet study.
    "sim_result": (
        "SELECT st.name AS study, r.replicate, r.genes, r.conditions, r.motifs, r.V, r.Sigma, r.noise_fraction, "
        "r.fraction, r.method, r.metric, r.value, r.cell FROM sim_score r JOIN study st ON st.id = r.study_id"
    ),
}


@dataclass
class SimScoreRows(Rows):
    """Rows of ``sim_score``: the metrics of one (cell, replicate, method), column-wise."""

    table = "sim_score"
    cell: Sequence[str]
    replicate: Sequence[int]
    genes: Sequence[int]
    conditions: Sequence[int]
    motifs: Sequence[int]
    V: Sequence[str]
    Sigma: Sequence[str]
    noise_fraction: Sequence[float]
    fraction: Sequence[float]
    method: Sequence[str]
    metric: Sequence[str]
    value: Sequence[float] | np.ndarray


REGNET_TABLES = WorkloadTables(results=(sim_score,), views=VIEWS, rows=(SimScoreRows,))
