"""Read access to one finished splicing study: its SQLite summaries and Zarr arrays.

Reports read per-split metrics through the view ``performance`` (the stable interface,
see :mod:`regulas.store.schema`), feature ranks with the definition of the view
``feature_ranking`` (computed from ``splice_importance``, much faster than the view's SQL
on large studies) and raw predictions from Zarr:

- ``Y`` (sample x event) PSI, attrs ``events``;
- ``test_index`` (split x max_test) sample rows of each outer test part, -1 = padding;
- ``pred`` (model x split x max_test x event) test predictions aligned with ``test_index``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
import zarr
from sqlalchemy import Engine, select

from regulas.core.errors import StoreError
from regulas.core.report import ReportContext
from regulas.store.arrays import StudyArrays
from regulas.store.database import open_read
from regulas.store.schema import study
from regulas.workloads.splicing.tables import splice_model, splice_score

#: the caveat of every table and figure of a study with ``selection: outer``
OUTER_NOTE = ("selection 'outer' (regulAS's selection): every grid point was scored on the outer test folds, so "
              "choosing the best by test score is optimistic; selection 'nested' gives unbiased estimates")
#: bound parameters per SQL statement (SQLite's limit is 32766 since 3.32; stay far below)
SQL_PARAMS = 900


class StudyResults:
    """One splicing study of a store, opened read-only for reports.

    Parameters
    ----------
    db_path : the store's ``regulas.db``.
    arrays_path : the store's ``arrays.zarr``.
    study_name : the study's name.
    engine : an open read-only engine on ``db_path`` to use (a report run's ``ctx.db``);
        by default one is opened with :func:`regulas.store.database.open_read`.
    """

    @classmethod
    def of(cls, ctx: ReportContext) -> StudyResults:
        """The results of the study a report runs on, loaded once per report run."""
        if "splicing.results" not in ctx.cache:
            ctx.cache["splicing.results"] = cls(ctx.db_path, Path(ctx.arrays.store_path), ctx.study, engine=ctx.db)
        found: StudyResults = ctx.cache["splicing.results"]
        return found

    @classmethod
    def member(cls, ctx: ReportContext, name: str) -> StudyResults:
        """The results of study ``name`` of a report run on several studies (``ctx.group``), loaded once."""
        key = f"splicing.results/{name}"
        if key not in ctx.cache:
            ctx.cache[key] = cls(ctx.db_path, Path(ctx.arrays.store_path), name, engine=ctx.db)
        found: StudyResults = ctx.cache[key]
        return found

    def __init__(self, db_path: Path, arrays_path: Path, study_name: str, *, engine: Engine | None = None) -> None:
        self.db_path = Path(db_path)
        self.arrays_path = Path(arrays_path)
        self.study = study_name
        # the report run's engine when given: one read-only engine (and one version check) per run
        self.engine: Engine = engine if engine is not None else open_read(self.db_path)
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
            has_scores = conn.execute(
                select(splice_score.c.event).where(splice_score.c.study_id == self.study_id).limit(1)
            ).first()
        if self.models.empty:
            raise StoreError(
                f"study {study_name!r} in {self.db_path} has no splicing models (table splice_model): "
                "reports need a splicing (regulAS) study"
            )
        if has_scores is None:
            raise StoreError(
                f"study {study_name!r} in {self.db_path} has no finished results yet (table splice_score is empty); "
                "run the study before its reports"
            )
        self._arrays = StudyArrays(self.arrays_path, study_name)
        self._ranking: pd.DataFrame | None = None

    # ------------------------------------------------------------------ study facts

    @property
    def selection(self) -> str:
        """``outer`` when models are grid points scored on the outer test folds, else ``nested``."""
        return "outer" if bool((self.models["candidate"] >= 0).any()) else "nested"

    @property
    def note(self) -> str:
        """The caveat every table and figure of this study carries ('' when none)."""
        return OUTER_NOTE if self.selection == "outer" else ""

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

    @cached_property
    def event_names(self) -> list[str]:
        """Event names by their index in the database (table ``splice_event``)."""
        frame = self._query("SELECT event, name FROM splice_event WHERE study_id = ? ORDER BY event", (self.study_id,))
        if not np.array_equal(frame["event"].to_numpy(), np.arange(len(frame))):
            raise StoreError(
                f"study {self.study!r} in {self.db_path}: table splice_event does not number its events 0..n-1; "
                "the store is inconsistent"
            )
        return [str(v) for v in frame["name"]]

    def _named(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with its ``event`` indices replaced by the events' names (a categorical)."""
        frame["event"] = pd.Categorical.from_codes(frame["event"].to_numpy(dtype=np.int64), categories=self.event_names)
        return frame

    def event_order(self, events: pd.Series) -> pd.Categorical:
        """``events`` as a categorical ordered like the study's event axis (unknown ones last)."""
        known = self.events
        extra = sorted(set(events.astype(str)) - set(known))
        return pd.Categorical(events, categories=[*known, *extra], ordered=True)

    # ------------------------------------------------------------------ SQL views

    def _query(self, sql: str, params: tuple[Any, ...]) -> pd.DataFrame:
        # the sqlite3 connection itself: pandas reads rows from it about 2x faster than
        # through SQLAlchemy, which matters for the million-row importance table
        raw = self.engine.raw_connection()
        try:
            return pd.read_sql_query(sql, raw.driver_connection, params=params)
        finally:
            raw.close()

    def performance(self, metric: str) -> pd.DataFrame:
        """View ``performance`` for one metric: columns event, pipeline, split, value (NaN = not a number)."""
        frame = self._query(
            "SELECT event, pipeline, split, value FROM performance WHERE study = ? AND metric = ?",
            (self.study, metric),
        )
        frame["value"] = frame["value"].astype(float)
        return frame

    def _importance_rows(self, events: Sequence[str] | None) -> pd.DataFrame:
        sql = "SELECT event, model, split, kind, feature, score FROM splice_importance WHERE study_id = ?"
        if events is None:
            return self._named(self._query(sql, (self.study_id,)))
        index = {name: i for i, name in enumerate(self.event_names)}
        wanted = [index[e] for e in dict.fromkeys(events) if e in index]
        parts = [
            self._query(f"{sql} AND event IN ({', '.join('?' * len(chunk))})", (self.study_id, *chunk))
            for chunk in (wanted[i : i + SQL_PARAMS] for i in range(0, len(wanted), SQL_PARAMS))
        ]
        frame = pd.concat(parts, ignore_index=True) if parts else self._query(f"{sql} AND 0", (self.study_id,))
        return self._named(frame)

    def feature_ranking(self, events: Sequence[str] | None = None) -> pd.DataFrame:
        """Rows of the ``feature_ranking`` view: event, pipeline, kind, feature, rank, score.

        score = mean over the outer splits of |importance| (a feature outside a split's stored
        top-k counts 0 there), rank 1 = most important. Computed here from ``splice_importance``
        with the view's definition (the view's SQL took 38 s on 1M importance rows, this about
        2 s); ``events`` restricts it to those events.
        """
        if events is None and self._ranking is not None:
            return self._ranking.copy()
        raw = self._importance_rows(events)
        keys = ["event", "model", "kind"]
        for column in ("kind", "feature"):  # categories group ~2.5x faster than strings
            raw[column] = raw[column].astype("category")
        raw["event"] = raw["event"].cat.set_categories(sorted(self.event_names))  # rows ordered by name, as the view
        raw["score"] = raw["score"].astype(float).abs()
        raw["n_splits"] = raw.groupby(keys, observed=True)["split"].transform("nunique")
        groups = raw.groupby([*keys, "feature"], observed=True, sort=False)
        frame = pd.DataFrame(
            {"total": groups["score"].sum(min_count=1), "n_splits": groups["n_splits"].first()}
        ).reset_index()
        frame["score"] = frame["total"] / frame["n_splits"]
        frame = frame.sort_values(
            [*keys, "score", "feature"], ascending=[True, True, True, False, True], na_position="last", kind="stable"
        )
        frame["rank"] = frame.groupby(keys, observed=True).cumcount() + 1
        frame["pipeline"] = frame["model"].map(self.models.set_index("model")["label"])
        for column in ("event", "kind", "feature"):
            frame[column] = frame[column].astype(str)
        frame = frame[["event", "pipeline", "kind", "feature", "rank", "score"]].reset_index(drop=True)
        if events is None:
            self._ranking = frame
        return frame.copy()

    def models_with_importance(self) -> list[str]:
        """Labels of the models with stored feature importances."""
        found = self._query(
            "SELECT m.label FROM splice_model m WHERE m.study_id = ? AND EXISTS "
            "(SELECT 1 FROM splice_importance i WHERE i.study_id = m.study_id AND i.model = m.model)",
            (self.study_id,),
        )
        return list(found["label"])

    def feature_ranking_view(self) -> pd.DataFrame:
        """The ``feature_ranking`` view itself (same rows as :meth:`feature_ranking`; slow on big studies)."""
        frame = self._query(
            "SELECT event, pipeline, kind, feature, rank, score FROM feature_ranking WHERE study = ?",
            (self.study,),
        )
        frame["score"] = frame["score"].astype(float)
        return frame

    def finished(self) -> pd.DataFrame:
        """The (event, model, split) triples with a stored result; ``event`` is the event's
        index, its position on the Zarr event axis."""
        return self._query("SELECT event, model, split FROM splice_score WHERE study_id = ?", (self.study_id,))

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
