"""PSI from junction read counts (regulAS's way), and a loader that pairs it with expression.

Model, per event e and sample s (I = inclusion junctions of e, E = exclusion junctions of e,
r_js = reads of junction j in sample s, d = ``inclusion_divisor``, 2 for a skipped exon whose
inclusion is seen by two junctions)::

    PSI[s, e] = (sum_{j in I} r_js / d) / (sum_{j in I} r_js / d + sum_{j in E} r_js)

PSI[s, e] is missing (NaN) when every junction of e has fewer than ``min_reads`` reads in s
(regulAS drops such low-coverage samples), or when the denominator is 0.

Junction table layout (TSV/CSV(.gz), Parquet; one file for inclusion, one for exclusion
junctions): one row per junction; the ``index_col`` column holds a junction ID, the
``event_column`` column names the event the junction belongs to, and every other column is a
sample holding read counts (empty cells count as 0 reads, as in regulAS). Both files must have
the same samples and the same events.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from regulas.core.errors import ConfigError, DataError
from regulas.data.checks import few, first_cell
from regulas.data.loaders import (
    Loader,
    choice_arg,
    column_arg,
    index_col_arg,
    key_of,
    oriented,
    path_arg,
    read_metadata,
)
from regulas.data.prepare import Part, RawData
from regulas.data.tables import as_float, read_table


def psi_from_junctions(
    inclusion: pd.DataFrame,
    inclusion_events: pd.Series | np.ndarray,
    exclusion: pd.DataFrame,
    exclusion_events: pd.Series | np.ndarray,
    *,
    min_reads: float = 10,
    inclusion_divisor: float = 2.0,
) -> tuple[pd.DataFrame, int]:
    """PSI (n_samples, n_events) from read counts (n_junctions, n_samples) and each junction's event.

    Returns the PSI table (samples as rows, events as columns in sorted order) and the number of
    (sample, event) values set to NaN for low coverage. See the module doc for the model.
    """
    inc_ev, exc_ev = np.asarray(inclusion_events), np.asarray(exclusion_events)
    i_sum = inclusion.groupby(inc_ev, sort=True).sum()  # events x samples
    like = {"index": i_sum.index, "columns": i_sum.columns}
    e_sum = exclusion.groupby(exc_ev).sum().reindex(**like, fill_value=0.0)
    covered = (inclusion >= min_reads).groupby(inc_ev, sort=True).any().to_numpy() | (
        (exclusion >= min_reads).groupby(exc_ev).any().reindex(**like, fill_value=False).to_numpy()
    )
    num = i_sum.to_numpy() / inclusion_divisor
    den = num + e_sum.to_numpy()
    ok = covered & (den > 0)
    psi = np.full(num.shape, np.nan)
    psi[ok] = num[ok] / den[ok]
    n_low = int((~covered).sum())
    return pd.DataFrame(psi.T, index=i_sum.columns, columns=i_sum.index.astype(str)), n_low


def read_junctions(path: str, event_column: str, index_col: int | str, kwarg: str) -> tuple[pd.DataFrame, pd.Series]:
    """(reads: junctions x samples, float64, NaN -> 0; event of each junction) from one file."""
    key = key_of(kwarg)
    table = read_table(path, index_col=index_col, numeric=False, key=key)
    if event_column not in table.columns:
        raise DataError(
            f"no event column {event_column!r} (columns start {few(table.columns, 4)}); expected one row per junction "
            "with a column naming its event (event_column) and one column of read counts per sample",
            key=key,
            source=path,
        )
    events = table[event_column].astype(str)
    reads = as_float(table.drop(columns=event_column), source=path, key=key)
    v = reads.to_numpy()
    neg = v < 0
    if neg.any():
        junction, sample, value = first_cell(reads, neg)
        raise DataError(
            f"negative read count at junction {junction!r}, sample {sample!r}: {value!r}; expected counts >= 0",
            key=key,
            source=path,
        )
    return reads.fillna(0.0), events


def junction_psi(
    inclusion: str,
    exclusion: str,
    *,
    event_column: str,
    index_col: int | str,
    min_reads: float,
    inclusion_divisor: float,
) -> tuple[pd.DataFrame, list[str]]:
    """Read two junction tables, check they agree (samples, events) and compute PSI with a log line."""
    inc, inc_events = read_junctions(inclusion, event_column, index_col, "inclusion")
    exc, exc_events = read_junctions(exclusion, event_column, index_col, "exclusion")
    if set(inc.columns) != set(exc.columns):
        only_i = inc.columns.difference(exc.columns)
        only_e = exc.columns.difference(inc.columns)
        raise DataError(
            f"the junction tables have different samples: only in inclusion ({few(only_i) or 'none'}), "
            f"only in exclusion ({few(only_e) or 'none'}); expected the same sample columns",
            key=key_of("exclusion"),
            source=exclusion,
        )
    exc = exc.loc[:, inc.columns]
    only_i = pd.Index(inc_events.unique()).difference(pd.Index(exc_events.unique()))
    only_e = pd.Index(exc_events.unique()).difference(pd.Index(inc_events.unique()))
    if len(only_i) or len(only_e):
        raise DataError(
            f"events without both junction kinds: {len(only_i)} only in inclusion ({few(only_i) or 'none'}), "
            f"{len(only_e)} only in exclusion ({few(only_e) or 'none'}); expected every event in both tables",
            key=key_of("exclusion"),
            source=exclusion,
        )
    psi, n_low = psi_from_junctions(
        inc, inc_events, exc, exc_events, min_reads=min_reads, inclusion_divisor=inclusion_divisor
    )
    log = [
        f"computed PSI of {psi.shape[1]} events in {psi.shape[0]} samples from {len(inc)} inclusion and "
        f"{len(exc)} exclusion junctions; {n_low} values with all junctions below min_reads={min_reads:g} set to NaN"
    ]
    return psi, log


class JunctionPSILoader(Loader):
    """PSI computed from junction read counts, with expression features.

    Model: Y (n_samples, n_events) from the junction model of this module's doc; X (n_samples,
    n_genes) from ``expression``; meta from ``metadata``.

    Args:
        inclusion, exclusion: junction tables (layout in the module doc).
        expression: expression table (any format of :mod:`regulas.data.tables`).
        metadata: optional table of sample annotations.
        expression_layout: "samples_x_genes" or "genes_x_samples".
        event_column: column of the junction tables naming each junction's event.
        min_reads: coverage cutoff: PSI is NaN where all junctions of the event have fewer reads.
        inclusion_divisor: number of inclusion junctions that see one inclusion (2 for a skipped exon).
        index_col: position or name of the ID column in the tables.
        name, meta, **options: as for every loader.
    """

    def __init__(
        self,
        inclusion: str,
        exclusion: str,
        expression: str,
        metadata: str | None = None,
        expression_layout: str = "samples_x_genes",
        event_column: str = "event",
        min_reads: float = 10,
        inclusion_divisor: float = 2.0,
        index_col: int | str = 0,
        *,
        name: str = "",
        meta: str | None = "",
        **options: Any,
    ) -> None:
        self.inclusion = path_arg(inclusion, "inclusion")
        self.exclusion = path_arg(exclusion, "exclusion")
        self.expression = path_arg(expression, "expression")
        self.metadata = None if metadata is None else path_arg(metadata, "metadata")
        self.expression_layout = choice_arg(expression_layout, "expression_layout", ("samples_x_genes", "genes_x_samples"))
        self.event_column = column_arg(event_column, "event_column")
        self.min_reads = number_arg(min_reads, "min_reads", allow_zero=True)
        self.inclusion_divisor = number_arg(inclusion_divisor, "inclusion_divisor", allow_zero=False)
        self.index_col = index_col_arg(index_col)
        super().__init__(name=name, meta=meta, **options)

    def compute_psi(self) -> tuple[pd.DataFrame, list[str]]:
        """PSI (samples x events) and a log line."""
        return junction_psi(
            self.inclusion,
            self.exclusion,
            event_column=self.event_column,
            index_col=self.index_col,
            min_reads=self.min_reads,
            inclusion_divisor=self.inclusion_divisor,
        )

    def read(self) -> RawData:
        psi, log = self.compute_psi()
        x_key = key_of("expression")
        X = oriented(read_table(self.expression, index_col=self.index_col, key=x_key), self.expression_layout)
        return RawData(
            X=Part(X, self.expression, x_key, key_of("expression_layout")),
            Y=Part(psi, self.inclusion, key_of("inclusion")),
            meta=read_metadata(self.metadata, self.index_col),
            log=log,
        )


def number_arg(value: Any, kwarg: str, *, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or np.isnan(value) or value < 0 or (
        value == 0 and not allow_zero
    ):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"expected a number {bound} (given: {value!r})", key=key_of(kwarg))
    return float(value)

