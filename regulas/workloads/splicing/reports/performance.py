"""ModelPerformanceReport: a loss or score over the outer test folds, per event x pipeline.

For each (event, pipeline label) the report gives the mean and the population standard
deviation (ddof=0, as regulAS's ``np.std``) of ``f(y_true, y_pred)`` over the outer
splits with a finite value. The metrics every splicing study stores (MSE, MAE, R²,
Pearson r, Spearman ρ) come from the ``performance`` view; any other function is computed
from the test predictions in Zarr, split by split, on the samples with a PSI value.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from regulas.core.config.targets import locate
from regulas.core.errors import ConfigError, StoreError
from regulas.workloads.splicing.reports.base import NOTE, TITLE, ReportError, ReportOutput, ReportParamError, SplicingReport
from regulas.workloads.splicing.reports.results import StudyResults

#: events read from Zarr at once when a metric is computed from the predictions
EVENT_BLOCK = 512


def stored_metric(fn: Callable[..., Any]) -> str | None:
    """The ``performance`` view's metric equal to ``fn(y_true, y_pred)``, or None."""
    import scipy.stats
    import sklearn.metrics

    table: dict[Any, str] = {
        sklearn.metrics.mean_squared_error: "mse",
        sklearn.metrics.mean_absolute_error: "mae",
        sklearn.metrics.r2_score: "r2",
        scipy.stats.pearsonr: "pearson",
        scipy.stats.spearmanr: "spearman",
    }
    return table.get(fn)


def statistic(value: Any) -> float:
    """A metric's number: scipy result objects give their ``statistic``, tuples their first item."""
    if hasattr(value, "statistic"):
        value = value.statistic
    elif isinstance(value, tuple):
        value = value[0]
    return float(value)


def per_split_from_arrays(results: StudyResults, fn: Callable[..., Any], name: str) -> pd.DataFrame:
    """``fn(y_true, y_pred)`` per finished (event, model, split), from the Zarr predictions.

    Samples whose PSI or prediction is missing are left out; fewer than 2 left gives NaN
    (as the stored metrics). Returns columns event, pipeline, split, value.
    """
    pred = results.array("pred")
    y_arr = results.array("Y")
    test_index = np.asarray(results.array("test_index")[...])
    n_models, n_splits, _, n_events = pred.shape
    events = results.events
    # the database numbers events by their position on the Zarr event axis: the names must agree
    unknown = sorted(n for i, n in enumerate(results.event_names) if i >= len(events) or events[i] != n)
    if unknown:
        raise StoreError(
            f"study {results.study!r}: events {unknown[:5]} of the database (table splice_event) are not on the event "
            f"axis of Zarr array Y in {results.arrays_path} at their index (attribute 'events'); the store is inconsistent"
        )
    wanted = np.zeros((n_models, n_splits, n_events), dtype=bool)
    done = results.finished()
    wanted[done["model"].to_numpy(), done["split"].to_numpy(), done["event"].to_numpy(dtype=int)] = True
    values = np.full(wanted.shape, np.nan)
    step = max(1, EVENT_BLOCK // pred.chunks[3]) * pred.chunks[3]
    for e0 in range(0, n_events, step):
        e1 = min(e0 + step, n_events)
        y_block = np.asarray(y_arr[:, e0:e1])
        pred_block = np.asarray(pred[:, :, :, e0:e1])
        for s in range(n_splits):
            valid = test_index[s] >= 0
            y_true = y_block[test_index[s][valid]]  # (n_test, block)
            for m in range(n_models):
                y_pred = pred_block[m, s][valid]
                for j in np.flatnonzero(wanted[m, s, e0:e1]):
                    keep = np.isfinite(y_true[:, j]) & np.isfinite(y_pred[:, j])
                    if keep.sum() < 2:
                        continue
                    try:
                        with warnings.catch_warnings():
                            # constant inputs give NaN correlations / R², which is the answer
                            warnings.simplefilter("ignore", RuntimeWarning)
                            warnings.simplefilter("ignore", UserWarning)
                            values[m, s, e0 + j] = statistic(fn(y_true[keep, j], y_pred[keep, j]))
                    except Exception as exc:  # a user's function: name where it failed
                        raise ReportError(
                            f"{name}(y_true, y_pred) failed for event {events[e0 + j]!r}, model {m}, split {s}: "
                            f"{type(exc).__name__}: {exc}"
                        ) from exc
    m_idx, s_idx, e_idx = np.nonzero(wanted)
    labels = results.models.set_index("model")["label"]
    return pd.DataFrame(
        {
            "event": np.asarray(events, dtype=object)[e_idx],
            "pipeline": labels.loc[m_idx].to_numpy(),
            "split": s_idx,
            "value": values[m_idx, s_idx, e_idx],
        }
    )


class ModelPerformanceReport(SplicingReport):
    """Mean and std over the outer test folds of one loss or score, per event x pipeline.

    Parameters
    ----------
    loss_fn, score_fn : dotted path of ``f(y_true, y_pred)`` (exactly one of them); a loss
        is better low, a score high. scipy functions returning a result object (pearsonr,
        spearmanr) count by their ``statistic``.
    experiment_name : see :class:`~regulas.workloads.splicing.reports.base.SplicingReport`.

    Output columns: ``event``, ``pipeline`` (the model label), ``<path>:test:mean``,
    ``<path>:test:std`` (``<path>`` as written in the config, so regulAS's
    ``${experiment.reports.MSE.loss_fn}:test:mean`` names a column), ``n_splits`` (folds
    with a finite value), ``selection`` (nested | outer). Rows: by event, best first.
    """

    def __init__(
        self, experiment_name: str | None = None, score_fn: str | None = None, loss_fn: str | None = None
    ) -> None:
        super().__init__(experiment_name)
        if (score_fn is None) == (loss_fn is None):
            raise ReportParamError(
                "loss_fn" if loss_fn is not None else "score_fn",
                "give exactly one of loss_fn (lower is better) or score_fn (higher is better), "
                "e.g. loss_fn: sklearn.metrics.mean_squared_error",
            )
        param = "loss_fn" if loss_fn is not None else "score_fn"
        path = loss_fn if loss_fn is not None else score_fn
        if not isinstance(path, str) or "." not in path:
            raise ReportParamError(param, f"expected the dotted path of a function f(y_true, y_pred), got {path!r}")
        try:
            fn = locate(path)
        except ConfigError as exc:
            raise ReportParamError(param, f"cannot import {path!r}; expected a function f(y_true, y_pred)") from exc
        if isinstance(fn, type) or not callable(fn):
            raise ReportParamError(param, f"{path!r} is a {type(fn).__name__}, not a function f(y_true, y_pred)")
        self.loss_fn = loss_fn
        self.score_fn = score_fn
        self.metric_path: str = path
        self.metric: Callable[..., Any] = fn
        self.greater_is_better = score_fn is not None

    @property
    def mean_column(self) -> str:
        return f"{self.metric_path}:test:mean"

    @property
    def std_column(self) -> str:
        return f"{self.metric_path}:test:std"

    def output_columns(self) -> frozenset[str]:
        return frozenset({"event", "pipeline", self.mean_column, self.std_column, "n_splits", "selection"})

    def per_split(self, results: StudyResults) -> pd.DataFrame:
        """The function's value per (event, pipeline, split): stored when the study has it, else from Zarr."""
        metric = stored_metric(self.metric)
        if metric is not None:
            return results.performance(metric)
        return per_split_from_arrays(results, self.metric, self.metric_path)

    def generate(
        self, results: StudyResults, inputs: Mapping[str, pd.DataFrame | None], out_dir: Path
    ) -> ReportOutput:
        per_split = self.per_split(results)
        groups = per_split.groupby(["event", "pipeline"], sort=False)["value"]
        frame = pd.DataFrame(
            {self.mean_column: groups.mean(), self.std_column: groups.std(ddof=0), "n_splits": groups.count()}
        ).reset_index()
        frame["selection"] = results.selection
        frame["_order"] = results.event_order(frame["event"])
        frame = (
            frame.sort_values(
                ["_order", self.mean_column, self.std_column, "pipeline"],
                ascending=[True, not self.greater_is_better, True, True],
                na_position="last",
                kind="stable",
            )
            .drop(columns="_order")
            .reset_index(drop=True)
        )
        frame.attrs[TITLE] = f"{results.study}: {self.metric_path} over the outer test folds"
        frame.attrs[NOTE] = results.note
        return ReportOutput(frame)
