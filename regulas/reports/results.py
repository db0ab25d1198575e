"""Read access to one finished splicing study: the documented SQL views and the Zarr arrays.

Reports read summaries through the views ``performance`` and ``feature_ranking`` (the
stable interface, see :mod:`regulas.store.schema`) and raw predictions from Zarr:

- ``Y`` (sample x event) PSI, attrs ``events``;
- ``test_index`` (split x max_test) sample rows of each outer test part, -1 = padding;
- ``pred`` (model x split x max_test x event) test predictions aligned with ``test_index``.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
import zarr
from sqlalchemy import Engine, func, select, text

from regulas.errors import StoreError
from regulas.store.arrays import StudyArrays
from regulas.store.database import connect
from regulas.store.schema import splice_model, splice_score, study


class StudyResults:
    """One splicing study of a store, opened read-only for reports.

    Parameters
    ----------
    db_path : the store's ``regulas.db``.
    arrays_path : the store's ``arrays.zarr``.
    study : the study name.
    """

    def __init__(self, db_path: Path, arrays_path: Path, study_name: str) -> None:
        self.db_path = Path(db_path)
        self.arrays_path = Path(arrays_path)
        self.study = study_name
        self.engine: Engine = connect(self.db_path, create=False)
        with self.engine.connect() as conn:
            row = conn.execute(select(study.c.id, study.c.config_yaml).where(study.c.name == study_name)).first()
            if row is None:
                names = [r[0] for r in conn.execute(select(study.c.name).order_by(study.c.name))]
                raise StoreError(
                    f"no study named {study_name!r} in {self.db_path}; studies there: {', '.join(names) or 'none'}"
                )
            self.study_id = int(row[0])
            self._config_yaml = str(row[1])
            self.models = pd.read_sql_query(
                select(splice_model.c.model, splice_model.c.pipeline, splice_model.c.candidate, splice_model.c.label)
                .where(splice_model.c.study_id == self.study_id)
                .order_by(splice_model.c.model),
                conn,
            )
            n_scores = conn.execute(
                select(func.count()).select_from(splice_score).where(splice_score.c.study_id == self.study_id)
            ).scalar_one()
        if self.models.empty:
            raise StoreError(
                f"study {study_name!r} in {self.db_path} has no splicing models (table splice_model): "
                "reports need a splicing (regulAS) study"
            )
        if n_scores == 0:
            raise StoreError(
                f"study {study_name!r} in {self.db_path} has no finished results yet (table splice_score is empty); "
                "run the study before its reports"
            )
        self._arrays = StudyArrays(self.arrays_path, study_name)

    # ------------------------------------------------------------------ study facts

    @property
    def selection(self) -> str:
        """``outer`` when models are grid points scored on the outer test folds, else ``nested``."""
        return "outer" if bool((self.models["candidate"] >= 0).any()) else "nested"

    @property
    def note(self) -> str:
        """The caveat every table and figure of this study carries ('' when none)."""
        if self.selection == "outer":
            return (
                "selection 'outer': every grid point was scored on the outer test folds, "
                "so choosing the best by test score is optimistic"
            )
        return ""

    @cached_property
    def experiment_name(self) -> str | None:
        """The regulAS experiment ``name`` in the study's stored config, if any."""
        try:
            tree = yaml.safe_load(self._config_yaml)
        except yaml.YAMLError:
            return None
        node = tree.get("experiment") if isinstance(tree, dict) else None
        name = node.get("name") if isinstance(node, dict) else None
        return name if isinstance(name, str) else None

    @cached_property
    def events(self) -> list[str]:
        """Event ids in the order of the Zarr event axis."""
        attrs = dict(self.array("Y").attrs)
        events = attrs.get("events")
        if not isinstance(events, list):
            raise StoreError(f"Zarr array Y of study {self.study!r} in {self.arrays_path} has no 'events' attribute")
        return [str(e) for e in events]

    def event_order(self, events: pd.Series) -> pd.Categorical:
        """``events`` as a categorical ordered like the study's event axis (unknown ones last)."""
        known = self.events
        extra = sorted(set(events.astype(str)) - set(known))
        return pd.Categorical(events, categories=[*known, *extra], ordered=True)

    # ------------------------------------------------------------------ SQL views

    def _query(self, sql: str, params: dict[str, Any]) -> pd.DataFrame:
        with self.engine.connect() as conn:
            return pd.read_sql_query(text(sql), conn, params=params)

    def performance(self, metric: str) -> pd.DataFrame:
        """View ``performance`` for one metric: columns event, pipeline, split, value (NaN = not a number)."""
        frame = self._query(
            "SELECT event, pipeline, split, value FROM performance WHERE study = :study AND metric = :metric",
            {"study": self.study, "metric": metric},
        )
        frame["value"] = frame["value"].astype(float)
        return frame

    def feature_ranking(self) -> pd.DataFrame:
        """View ``feature_ranking``: event, pipeline, kind, feature, rank, score (mean |importance| over splits)."""
        frame = self._query(
            "SELECT event, pipeline, kind, feature, rank, score FROM feature_ranking WHERE study = :study",
            {"study": self.study},
        )
        frame["score"] = frame["score"].astype(float)
        return frame

    def finished(self) -> pd.DataFrame:
        """The (event, model, split) triples with a stored result."""
        return self._query(
            "SELECT event, model, split FROM splice_score WHERE study_id = :id", {"id": self.study_id}
        )

    # ------------------------------------------------------------------ Zarr

    def array(self, name: str) -> zarr.Array:
        try:
            return self._arrays.open(name)
        except (FileNotFoundError, zarr.errors.ArrayNotFoundError, zarr.errors.NodeTypeValidationError) as exc:
            raise StoreError(
                f"Zarr array {name!r} of study {self.study!r} not found in {self.arrays_path} "
                "(expected the store.root of the study that wrote regulas.db)"
            ) from exc

    def test_values(self, model: int, event: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """True and predicted PSI over every outer test fold of one (model, event).

        Returns ``(y_true, y_pred, split)``, 1-D arrays over the test samples with both values.
        """
        test_index = np.asarray(self.array("test_index")[...])
        y = np.asarray(self.array("Y")[:, event])
        pred = np.asarray(self.array("pred")[model, :, :, event])
        valid = test_index >= 0
        y_true = np.where(valid, y[np.where(valid, test_index, 0)], np.nan)
        keep = np.isfinite(y_true) & np.isfinite(pred)
        split = np.broadcast_to(np.arange(test_index.shape[0])[:, None], test_index.shape)
        return y_true[keep], pred[keep], split[keep]
