"""From raw tables to a checked :class:`SplicingData`: alignment, filters and policies.

The order of the steps is documented in :mod:`regulas.data.options`. All work is vectorised
over the (n_samples, n_features) and (n_samples, n_events) matrices.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from regulas.core.errors import DataError
from regulas.data.checks import (
    check_finite,
    check_not_empty,
    check_psi,
    duplicate_samples,
    few,
    first_cell,
    transposed_hint,
    unique_columns,
)
from regulas.data.dataset import SplicingData
from regulas.data.options import DATASET_KEY, LoadOptions
from regulas.data.tables import read_columns

logger = logging.getLogger("regulas.data")


@dataclass
class Part:
    """One raw table as read, before alignment, and where it came from (for messages)."""

    frame: pd.DataFrame
    source: str
    key: str  # config key naming the file, e.g. "experiment.dataset.features"
    layout_key: str | None = None  # config key of its layout, for the "transposed?" hint


@dataclass
class RawData:
    """Tables a loader read: X (samples x features), Y (samples x events), optional meta."""

    X: Part
    Y: Part
    meta: Part | None = None
    log: list[str] = field(default_factory=list)  # loader-specific steps already done


def _note(log: list[str], message: str) -> None:
    log.append(message)
    logger.info(message)


def aligned_samples(
    raw: RawData, y_labels: tuple[pd.Index, pd.Index], opts: LoadOptions, log: list[str]
) -> tuple[pd.Index, pd.DataFrame | None]:
    """The samples kept, in the order of Y, and the metadata rows for them.

    ``y_labels``: the (samples, events) labels of Y, whose values need not be in memory.
    """
    X = raw.X.frame
    y_index, y_columns = y_labels
    common = y_index[y_index.isin(X.index)]
    if len(common) < len(y_index) or len(common) < len(X.index):
        only_x = X.index[~X.index.isin(y_index)]
        only_y = y_index[~y_index.isin(X.index)]
        detail = (
            f"{len(only_x)} only in features {raw.X.source} ({few(only_x) or 'none'}); "
            f"{len(only_y)} only in targets {raw.Y.source} ({few(only_y) or 'none'})"
        )
        hint = ""
        if raw.X.layout_key:
            hint += transposed_hint(X, y_index, raw.X.layout_key)
        if raw.Y.layout_key:
            hint += transposed_hint((y_index, y_columns), X.index, raw.Y.layout_key)
        if opts.unaligned_samples == "fail" or len(common) == 0:
            expected = "expected the same sample IDs in both (or set unaligned_samples: intersect)"
            if len(common) == 0:
                expected = "expected at least one sample ID in common"
            raise DataError(
                f"sample IDs do not align: {detail}; {expected}.{hint}",
                key=f"{DATASET_KEY}.unaligned_samples",
                source=raw.Y.source,
            )
        _note(log, f"kept the {len(common)} samples common to features and targets: {detail}")
    meta = None
    if raw.meta is not None:
        m = raw.meta.frame
        missing = common[~common.isin(m.index)]
        if len(missing):
            if opts.unaligned_samples == "fail" or len(missing) == len(common):
                raise DataError(
                    f"{len(missing)} samples have no row in the metadata ({few(missing)}); "
                    "expected a row for every sample (or set unaligned_samples: intersect)",
                    key=raw.meta.key,
                    source=raw.meta.source,
                )
            keep = common[common.isin(m.index)]
            _note(log, f"dropped {len(missing)} samples without metadata ({few(missing, 3)})")
            common = keep
        meta = m.loc[common]
    return common, meta


def _align(raw: RawData, opts: LoadOptions, log: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    X, Y = raw.X.frame, raw.Y.frame
    common, meta = aligned_samples(raw, (Y.index, Y.columns), opts, log)
    if not X.index.equals(common):
        X = X.loc[common]
    if not Y.index.equals(common):
        Y = Y.loc[common]
    return X, Y, meta


def read_gene_list(path: str, column: str, key: str) -> list[str]:
    """Gene symbols from the ``column`` of a table file (TSV/CSV/Parquet), blanks skipped."""
    table = read_columns(path, key=key)
    if column not in table.columns:
        raise DataError(
            f"column {column!r} not found (columns: {few(table.columns)}); "
            "expected rbp_column to name the column of gene symbols",
            key=f"{DATASET_KEY}.rbp_column",
            source=path,
        )
    genes = table[column].str.strip()
    return list(genes[genes != ""])


def _rbp_filter(X: pd.DataFrame, opts: LoadOptions, raw: RawData, log: list[str]) -> pd.DataFrame:
    assert opts.rbp_list is not None
    key = f"{DATASET_KEY}.rbp_list"
    genes = read_gene_list(opts.rbp_list, opts.rbp_column, key)
    if opts.rbp_match == "case_insensitive":
        wanted = {g.upper() for g in genes}
        keep = X.columns.str.upper().isin(list(wanted))
    else:
        wanted = set(genes)
        keep = X.columns.isin(list(wanted))
    n_keep = int(keep.sum())
    if n_keep == 0:
        hint = "" if opts.rbp_match == "case_insensitive" else " (rbp_match: case_insensitive may help)"
        raise DataError(
            f"no genes left after the RBP filter: none of the {len(wanted)} symbols of {opts.rbp_list} "
            f"(e.g. {few(genes, 3)}) is a feature of {raw.X.source} (e.g. {few(X.columns, 3)}){hint}; "
            "expected gene symbols shared by both",
            key=key,
            source=opts.rbp_list,
        )
    _note(
        log,
        f"rbp_list kept {n_keep} of {X.shape[1]} features ({len(wanted)} RBPs listed, "
        f"{len(wanted) - n_keep} of them absent from the features)",
    )
    return X.loc[:, keep]


def prepare_x(X: pd.DataFrame, opts: LoadOptions, raw: RawData, log: list[str]) -> pd.DataFrame:
    nan = np.isnan(X.to_numpy())
    if nan.any():
        cols = X.columns[nan.any(axis=0)]
        if opts.missing_expression == "fail":
            sample, gene, _ = first_cell(X, nan)
            raise DataError(
                f"missing expression value at sample {sample!r}, feature {gene!r} ({int(nan.sum())} missing in "
                f"{len(cols)} features); expected no missing features (or set missing_expression: drop_genes)",
                key=raw.X.key,
                source=raw.X.source,
            )
        X = X.loc[:, ~nan.any(axis=0)]
        _note(log, f"dropped {len(cols)} features with missing values ({few(cols, 3)})")
    if opts.rbp_list is not None:
        X = _rbp_filter(X, opts, raw, log)
    if opts.log_transform:
        v = X.to_numpy()
        neg = v < 0
        if neg.any():
            sample, gene, value = first_cell(X, neg)
            raise DataError(
                f"log_transform {opts.log_transform!r} needs non-negative expression; sample {sample!r}, feature "
                f"{gene!r} has {value!r} ({int(neg.sum())} negative values: already log-scaled?)",
                key=f"{DATASET_KEY}.log_transform",
                source=raw.X.source,
            )
        out = np.log2(v + 1.0) if opts.log_transform == "log2p1" else np.log1p(v)
        X = pd.DataFrame(out, index=X.index, columns=X.columns)
        _note(log, f"log-transformed {X.shape[1]} features ({opts.log_transform})")
    if opts.min_feature_variance is not None:
        var = X.to_numpy().var(axis=0)
        keep = var > opts.min_feature_variance
        if not keep.all():
            _note(log, f"dropped {int((~keep).sum())} features with variance <= {opts.min_feature_variance}")
            X = X.loc[:, keep]
    if X.shape[1] == 0:
        raise DataError(
            "no features left after the filters (missing_expression, rbp_list, min_feature_variance); "
            "expected at least one feature",
            key=raw.X.key,
            source=raw.X.source,
        )
    return X


@dataclass
class EventStats:
    """What every event filter but ``most_variable_events`` needs of a PSI table (samples x
    events, the kept samples only), computed block of events by block and concatenated.

    ``first_missing``: (row, event) of the first missing value, in row-major order, among
    the events with at least one value (what ``missing_psi: fail`` names).
    """

    n_samples: int
    counts: np.ndarray  # non-missing values per event
    constant: np.ndarray  # the event's values are all equal (False without any)
    first_missing: tuple[int, int] | None = None

    @classmethod
    def of(cls, v: np.ndarray, start: int = 0) -> EventStats:
        """The stats of a (n_samples, k) block, the events ``start:start + k`` of the table."""
        present = ~np.isnan(v)
        counts = present.sum(axis=0)
        with np.errstate(all="ignore"):
            spread = np.nanmax(np.where(present, v, -np.inf), axis=0) - np.nanmin(np.where(present, v, np.inf), axis=0)
        missing = ~present & (counts > 0)
        first = None
        if missing.any():
            i, j = np.argwhere(missing)[0]
            first = (int(i), start + int(j))
        return cls(v.shape[0], counts, spread == 0, first)

    @classmethod
    def concat(cls, parts: list[EventStats]) -> EventStats:
        """The stats of the blocks side by side, in event order."""
        firsts = [p.first_missing for p in parts if p.first_missing is not None]
        return cls(
            parts[0].n_samples,
            np.concatenate([p.counts for p in parts]),
            np.concatenate([p.constant for p in parts]),
            min(firsts) if firsts else None,
        )


def filter_events(
    stats: EventStats,
    samples: pd.Index,
    events: pd.Index,
    opts: LoadOptions,
    part: Part,
    log: list[str],
    variance: Callable[[], np.ndarray] | None = None,
) -> np.ndarray:
    """The events kept by ``all_nan_events``, ``missing_psi``, ``min_samples_per_event``,
    ``constant_events`` and ``most_variable_events`` (which needs ``variance``: each event's
    variance over its values), in this order; errors and log lines name ``part``'s file."""
    n_samples, counts = stats.n_samples, stats.counts
    all_nan = counts == 0
    if all_nan.any():
        dropped = events[all_nan]
        if opts.all_nan_events == "fail":
            raise DataError(
                f"{len(dropped)} events have no PSI value in any of the {n_samples} samples ({few(dropped)}); "
                "expected at least one value per event (or set all_nan_events: drop)",
                key=part.key,
                source=part.source,
            )
        _note(log, f"dropped {len(dropped)} all-NaN events ({few(dropped, 3)})")
    keep = ~all_nan
    n_missing = int((n_samples - counts[keep]).sum())
    if n_missing:
        share = n_missing / max(1, int(keep.sum()) * n_samples)
        with_missing = keep & (counts < n_samples)
        if opts.missing_psi == "fail":
            assert stats.first_missing is not None
            i, j = stats.first_missing
            raise DataError(
                f"{n_missing} missing PSI values ({share:.1%}), first at event {str(events[j])!r}, sample "
                f"{str(samples[i])!r}; expected none (or set missing_psi: keep or drop_events)",
                key=f"{DATASET_KEY}.missing_psi",
                source=part.source,
            )
        if opts.missing_psi == "drop_events":
            keep &= ~with_missing
            _note(log, f"dropped {int(with_missing.sum())} events with missing PSI (missing_psi: drop_events)")
        else:
            _note(log, f"kept {n_missing} missing PSI values ({share:.1%}) as NaN in {int(with_missing.sum())} events")
    if opts.min_samples_per_event is not None:
        few_values = keep & (counts < opts.min_samples_per_event)
        if few_values.any():
            keep &= ~few_values
            _note(log, f"dropped {int(few_values.sum())} events with fewer than {opts.min_samples_per_event} PSI values")
    if opts.constant_events == "drop":
        constant = keep & stats.constant
        if constant.any():
            keep &= ~constant
            _note(log, f"dropped {int(constant.sum())} constant events")
    if opts.most_variable_events is not None and int(keep.sum()) > opts.most_variable_events:
        if variance is None:
            raise ValueError("most_variable_events needs the events' variances")
        scores = np.where(keep & np.isfinite(v := variance()), v, -np.inf)
        # stable sort on -variance: equal variances keep file order
        top = np.argsort(-scores, kind="stable")[: opts.most_variable_events]
        chosen = np.zeros_like(keep)
        chosen[top] = True
        _note(log, f"kept the {opts.most_variable_events} most variable of {int(keep.sum())} events (most_variable_events)")
        keep &= chosen
    if not keep.any():
        raise DataError(
            f"no events left after the filters (all_nan_events, missing_psi, min_samples_per_event, constant_events) "
            f"out of {len(events)}; expected at least one event",
            key=part.key,
            source=part.source,
        )
    return keep


def _prepare_y(Y: pd.DataFrame, opts: LoadOptions, raw: RawData, log: list[str]) -> pd.DataFrame:
    v = Y.to_numpy()

    def variance() -> np.ndarray:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: excluded by the caller
            return np.asarray(np.nanvar(np.where(~np.isnan(v), v, np.nan), axis=0))

    keep = filter_events(EventStats.of(v), Y.index, Y.columns, opts, raw.Y, log, variance)
    return Y.loc[:, keep] if not keep.all() else Y


def prepare(raw: RawData, opts: LoadOptions, *, name: str = "", description: str = "") -> SplicingData:
    """Check, align and filter raw tables into a SplicingData (see the module doc for the order)."""
    log = list(raw.log)
    for part, what in ((raw.X, "features"), (raw.Y, "targets")):
        check_not_empty(part.frame, what, part.source, part.key)
        unique_columns(part.frame, "feature" if what == "features" else "event", part.source, part.key)
    check_psi(raw.Y.frame, raw.Y.source, raw.Y.key)
    check_finite(raw.X.frame, raw.X.source, raw.X.key)
    parts = [(raw.X, "features"), (raw.Y, "targets")] + ([(raw.meta, "metadata")] if raw.meta is not None else [])
    for part, what in parts:
        part.frame = duplicate_samples(part.frame, opts.duplicate_samples, what, part.source, part.key, log)
    X, Y, meta = _align(raw, opts, log)
    X = prepare_x(X, opts, raw, log)
    Y = _prepare_y(Y, opts, raw, log)
    X, Y = X.rename_axis(index=None, columns=None), Y.rename_axis(index=None, columns=None)
    if meta is not None:
        meta = meta.rename_axis(index=None, columns=None)
    data = SplicingData(X=X, Y=Y, meta=meta, name=name, description=description, log=tuple(log))
    logger.info("loaded %s: %s", name or raw.Y.source, data.summary())
    return data
