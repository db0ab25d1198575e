"""Options every loader accepts (keyword arguments next to the loader's own ones).

Filters and policies, applied in this order after the files are read and checked:

1. sample alignment of X, Y (and meta): ``unaligned_samples``, ``duplicate_samples``;
2. X: ``missing_expression``, ``rbp_list`` (+ ``rbp_column``, ``rbp_match``),
   ``log_transform``, ``min_feature_variance``;
3. Y: ``all_nan_events``, ``missing_psi``, ``min_samples_per_event``, ``constant_events``,
   ``most_variable_events``.

Every drop is counted in :attr:`SplicingData.log` and logged; a policy "fail" raises
:class:`~regulas.core.errors.DataError` naming the file and the first offending values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from regulas.core.config.typed import build, positive
from regulas.core.errors import ConfigError

#: Config key of a dataset node in a regulAS experiment; error messages name keys under it.
DATASET_KEY = "experiment.dataset"


@dataclass(frozen=True)
class LoadOptions:
    """Common loader options (all optional).

    Attributes:
        rbp_list: table file (TSV/CSV, e.g. the shipped ``${dataset:rbp/sebestyen2016_rbps.tsv}``) whose
            ``rbp_column`` lists the genes to keep as features; other features are dropped.
        rbp_column: column of ``rbp_list`` holding gene symbols.
        rbp_match: "exact" or "case_insensitive" (e.g. mouse ``Hnrnpa1`` matches human ``HNRNPA1``).
        log_transform: False (none), "log2p1" (log2(x + 1)) or "log1p" (ln(x + 1)) on X;
            negative expression values are an error then.
        min_feature_variance: keep features whose variance over the samples (ddof=0) is strictly
            greater (scikit-learn VarianceThreshold semantics; 0 drops constant features).
            Computed on all samples, after the log transform; unsupervised, so no label leak.
        min_samples_per_event: drop events with fewer non-missing PSI values.
        missing_psi: "keep" (NaN stays; the ML drops an event's missing samples),
            "drop_events" (drop every event with a missing value) or "fail".
        all_nan_events: "fail" or "drop" events without any PSI value.
        constant_events: "keep" or "drop" events whose non-missing PSI values are all equal.
        most_variable_events: keep only this many events, those whose PSI varies most over
            their samples (variance of the non-missing values; ties keep file order), e.g. for
            a quick first look at a large data set.
        missing_expression: "fail" or "drop_genes" (features with any missing value).
        duplicate_samples: "fail" or "keep_first" when a sample ID repeats within a file.
        unaligned_samples: "fail" or "intersect" when X and Y (or meta) list different samples;
            "intersect" keeps the common samples in the order of Y.
    """

    rbp_list: str | None = field(default=None, metadata={"path": "file"})
    rbp_column: str = "symbol"
    rbp_match: Literal["exact", "case_insensitive"] = "exact"
    log_transform: Literal[False, "log2p1", "log1p"] | None = False
    min_feature_variance: float | None = None
    min_samples_per_event: int | None = None
    missing_psi: Literal["keep", "drop_events", "fail"] = "keep"
    all_nan_events: Literal["fail", "drop"] = "fail"
    constant_events: Literal["keep", "drop"] = "keep"
    most_variable_events: int | None = None
    missing_expression: Literal["fail", "drop_genes"] = "fail"
    duplicate_samples: Literal["fail", "keep_first"] = "fail"
    unaligned_samples: Literal["fail", "intersect"] = "fail"

    def check(self, prefix: str, source: str | None) -> None:
        if self.min_feature_variance is not None and (
            math.isnan(self.min_feature_variance) or self.min_feature_variance < 0
        ):
            raise ConfigError(
                f"out of range (given: {self.min_feature_variance!r}); expected a variance >= 0",
                key=f"{prefix}.min_feature_variance",
                source=source,
            )
        positive(self.min_samples_per_event, f"{prefix}.min_samples_per_event", source)
        positive(self.most_variable_events, f"{prefix}.most_variable_events", source)


def parse_options(
    options: dict[str, Any], loader: str, own_keys: tuple[str, ...], *, source: str | None = None
) -> LoadOptions:
    """Validate the common options of a loader; an unknown key lists every allowed one."""
    allowed = set(LoadOptions.__dataclass_fields__) | set(own_keys) | {"name", "meta"}
    for k, v in options.items():
        if k not in allowed:
            raise ConfigError(
                f"unknown key for {loader} (given: {v!r}); allowed keys: {', '.join(sorted(allowed))}",
                key=f"{DATASET_KEY}.{k}",
                source=source,
            )
    if options.get("log_transform") is True:
        raise ConfigError(
            "log_transform: true is ambiguous; expected false, 'log2p1' (log2(x + 1)) or 'log1p' (ln(x + 1))",
            key=f"{DATASET_KEY}.log_transform",
            source=source,
        )
    return build(LoadOptions, options, DATASET_KEY, source=source)
