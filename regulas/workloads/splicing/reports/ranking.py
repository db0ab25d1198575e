"""FeatureRankingReport: the most important features of each event's best pipelines.

Per event, the pipelines are ordered by a column of a report this one depends on (e.g.
``sklearn.metrics.mean_squared_error:test:mean`` of a ModelPerformanceReport) and the
first ``top_k_models`` kept; for each, the features come from the ``feature_ranking``
view: importances aggregated over the outer splits (score = mean |importance|, a
feature outside a split's stored top-k counting 0), rank 1 = most important.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from regulas.workloads.splicing.reports.base import (
    NOTE,
    TITLE,
    ReportError,
    ReportOutput,
    ReportParamError,
    SplicingReport,
    optional_positive_int,
    optional_str,
)
from regulas.workloads.splicing.reports.results import StudyResults

IMPORTANCE_KINDS = ("coef", "feature_importances", "permutation")


class FeatureRankingReport(SplicingReport):
    """Feature ranks of the top models of each event.

    Parameters
    ----------
    sort_by : a column of a report named in ``_depends_on_`` (``<function path>:test:mean|std``).
    sort_ascending : True when lower ``sort_by`` values are better (a loss).
    top_k_models : pipelines kept per event (null = all).
    top_k_features : features kept per (event, pipeline, kind) (null = all stored).
    kind : only this importance kind (coef | feature_importances | permutation); null = all.
    experiment_name : see :class:`~regulas.workloads.splicing.reports.base.SplicingReport`.

    Output columns: ``event``, ``pipeline``, ``model_rank`` (1 = best by ``sort_by`` among the
    event's pipelines with stored importances: as in regulAS, a model without a ranking does
    not count toward ``top_k_models``), the ``sort_by`` column, ``kind``, ``feature``,
    ``rank``, ``score``.
    """

    def __init__(
        self,
        sort_by: str,
        sort_ascending: bool = True,
        top_k_models: int | None = None,
        top_k_features: int | None = None,
        kind: str | None = None,
        experiment_name: str | None = None,
    ) -> None:
        super().__init__(experiment_name)
        if not isinstance(sort_by, str) or not sort_by:
            raise ReportParamError("sort_by", f"expected a column name such as '<loss_fn>:test:mean', got {sort_by!r}")
        if not isinstance(sort_ascending, bool):
            raise ReportParamError("sort_ascending", f"expected true or false, got {sort_ascending!r}")
        if optional_str("kind", kind) is not None and kind not in IMPORTANCE_KINDS:
            raise ReportParamError("kind", f"expected one of {', '.join(IMPORTANCE_KINDS)} or null, got {kind!r}")
        self.sort_by = sort_by
        self.sort_ascending = sort_ascending
        self.top_k_models = optional_positive_int("top_k_models", top_k_models)
        self.top_k_features = optional_positive_int("top_k_features", top_k_features)
        self.kind = kind

    def output_columns(self) -> frozenset[str]:
        return frozenset({"event", "pipeline", "model_rank", self.sort_by, "kind", "feature", "rank", "score"})

    def check_inputs(self, available: Mapping[str, frozenset[str]]) -> None:
        if not available:
            raise ReportParamError(
                "sort_by",
                f"sorts by {self.sort_by!r} but the report depends on no other report; name the report that "
                "produces that column in _depends_on_ (e.g. a ModelPerformanceReport)",
            )
        if not any(self.sort_by in cols for cols in available.values()):
            offered = sorted({c for cols in available.values() for c in cols if ":test:" in c})
            raise ReportParamError(
                "sort_by",
                f"no report in _depends_on_ ({', '.join(available)}) produces column {self.sort_by!r}; "
                f"their sortable columns: {', '.join(offered) or 'none'}",
            )

    def choose_models(self, scores: pd.DataFrame, results: StudyResults) -> pd.DataFrame:
        """Per event, the top_k_models pipelines by ``sort_by`` (NaN last, ties by label)."""
        frame = scores[["event", "pipeline", self.sort_by]].copy()
        frame["_order"] = results.event_order(frame["event"])
        frame = frame.sort_values(
            ["_order", self.sort_by, "pipeline"],
            ascending=[True, self.sort_ascending, True],
            na_position="last",
            kind="stable",
        )
        frame["model_rank"] = frame.groupby("_order", observed=True).cumcount() + 1
        if self.top_k_models is not None:
            frame = frame[frame["model_rank"] <= self.top_k_models]
        return frame

    def generate(
        self, results: StudyResults, inputs: Mapping[str, pd.DataFrame | None], out_dir: Path
    ) -> ReportOutput:
        source = next(
            (f for f in inputs.values() if f is not None and {"event", "pipeline", self.sort_by} <= set(f.columns)),
            None,
        )
        if source is None:
            raise ReportError(
                f"FeatureRankingReport: no input among {', '.join(inputs)} has columns "
                f"event, pipeline and {self.sort_by!r}"
            )
        ranking = results.feature_ranking()
        if self.kind is not None:
            ranking = ranking[ranking["kind"] == self.kind]
        # as in regulAS, a pipeline without stored importances does not count toward top_k_models
        ranked = source.merge(ranking[["event", "pipeline"]].drop_duplicates(), on=["event", "pipeline"])
        chosen = self.choose_models(ranked, results)
        if self.top_k_features is not None:
            ranking = ranking[ranking["rank"] <= self.top_k_features]
        frame = chosen.merge(ranking, on=["event", "pipeline"], how="inner")
        frame = frame.sort_values(["_order", "model_rank", "kind", "rank"], kind="stable").drop(columns="_order")
        frame = frame[["event", "pipeline", "model_rank", self.sort_by, "kind", "feature", "rank", "score"]]
        frame = frame.reset_index(drop=True)
        top = "all" if self.top_k_models is None else f"top {self.top_k_models}"
        frame.attrs[TITLE] = f"{results.study}: feature ranks of the {top} pipelines per event by {self.sort_by}"
        frame.attrs[NOTE] = source.attrs.get(NOTE, "") or results.note
        return ReportOutput(frame)
