"""Shared state of one block evaluation (event block × pipeline × outer split).

Both fitting paths (batched ridge, generic per event) read the inputs from a
:class:`BlockWork` and write their results into its output arrays, one group of events
with the same training rows at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import clone

from regulas.splicing.pipelines import PipelineSpec


@dataclass
class BlockWork:
    """Inputs and outputs of :func:`regulas.splicing.evaluate.evaluate_block`.

    X ``(n_samples, n_features)``; Y ``(n_samples, n_events)`` with NaN = missing;
    test: outer test indices; outputs are indexed ``[candidate_out, ..., event]``.
    """

    X: np.ndarray
    Y: np.ndarray
    test: np.ndarray
    spec: PipelineSpec
    candidates: list[dict[str, Any]]
    nested: bool
    cv: Any  # inner splitter (nested mode)
    scoring: str
    permutation: dict[str, Any] | None
    seed: int  # 32-bit seed for permutation importance and randomised estimators
    pred: np.ndarray = field(init=False)
    params: list[list[dict[str, Any]]] = field(init=False)
    fit_time_s: np.ndarray = field(init=False)
    importance: dict[str, np.ndarray] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        n_out = 1 if self.nested else len(self.candidates)
        n_events = self.Y.shape[1]
        self.pred = np.full((n_out, len(self.test), n_events), np.nan)
        self.params = [[{} if self.nested else dict(c) for _ in range(n_events)] for c in self.candidates[:n_out]]
        self.fit_time_s = np.zeros((n_out, n_events))

    @property
    def n_out(self) -> int:
        return self.pred.shape[0]

    def set_importance(self, kind: str, out: int, events: np.ndarray | int, values: np.ndarray) -> None:
        """Store importances ``(n_features,)`` or ``(n_features, len(events))``."""
        if kind not in self.importance:
            self.importance[kind] = np.full((self.n_out, self.X.shape[1], self.Y.shape[1]), np.nan)
        self.importance[kind][out, :, events] = values.T if np.ndim(values) == 2 else values

    def transformations(self) -> list[Any]:
        """Unfitted copies of the pipeline's transformation steps, in order."""
        return [est for _, est in self.spec.build(random_state=self.seed).steps[:-1]]

    def test_rows(self, event: int) -> np.ndarray:
        """Positions (into ``test``) of the event's observed test samples."""
        return np.flatnonzero(~np.isnan(self.Y[self.test, event]))


def fit_transformations(transformers: list[Any], X_fit: np.ndarray, *others: np.ndarray) -> tuple[list[Any], list[np.ndarray]]:
    """Fit fresh clones of ``transformers`` on X_fit; return them and [X_fit, *others] transformed."""
    fitted = []
    arrays = [X_fit, *others]
    for t in transformers:
        t = clone(t)
        arrays[0] = t.fit_transform(arrays[0])
        arrays[1:] = [t.transform(a) for a in arrays[1:]]
        fitted.append(t)
    return fitted, [np.asarray(a, dtype=np.float64) for a in arrays]
