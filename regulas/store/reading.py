"""Reading result rows back: the one place where NaN flags become NaN again."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from regulas.store.schema import NAN_FLAG_SUFFIX


def restore_nan(frame: pd.DataFrame) -> pd.DataFrame:
    """For every pair ``<col>``, ``<col>_is_nan`` in ``frame``: NaN where the flag is set, flag dropped.

    SQLite stores NaN as NULL; the flag tells "not a number" from "not measured" (NULL
    without the flag stays None/NaN as pandas reads it).
    """
    flags = [c for c in frame.columns if c.endswith(NAN_FLAG_SUFFIX) and c[: -len(NAN_FLAG_SUFFIX)] in frame.columns]
    for flag in flags:
        col = flag[: -len(NAN_FLAG_SUFFIX)]
        frame[col] = frame[col].astype(float).where(~frame[flag].astype(bool), np.nan)
    return frame.drop(columns=flags)


def read_frame(engine: Engine, sql: Any, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """``pandas.read_sql`` of ``sql`` on ``engine`` with NaN flags applied (:func:`restore_nan`)."""
    with engine.connect() as conn:
        frame = pd.read_sql(sql, conn, params=dict(params or {}))
    return restore_nan(frame)
