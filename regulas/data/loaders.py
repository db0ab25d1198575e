"""Dataset loaders, configured like regulAS's: ``{_target_: regulas.data.TableLoader, **kwargs}``.

A workload does ``loader = locate(node["_target_"])(**kwargs); data = loader.load()``.
Every keyword argument is checked in ``__init__`` (types, allowed values, files exist, format
known), so a bad dataset node fails before any work starts; ``load()`` then reads, checks the
contents and applies the common options (:mod:`regulas.data.options`).
"""

from __future__ import annotations

import inspect
import os
import pickle
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import pandas as pd

from regulas.core.errors import ConfigError, DataError
from regulas.data.dataset import SplicingData
from regulas.data.options import DATASET_KEY, LoadOptions, parse_options
from regulas.data.prepare import Part, RawData, prepare
from regulas.data.tables import as_float, check_exists, read_table

SAMPLE_COLUMNS = ("genes_x_samples", "features_x_samples", "events_x_samples")


def key_of(kwarg: str) -> str:
    return f"{DATASET_KEY}.{kwarg}"


def path_arg(value: Any, kwarg: str, *, table: bool = True) -> str:
    """Validate a file argument: a non-empty path to an existing file of a known table format."""
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise ConfigError(f"expected a file path (given: {value!r})", key=key_of(kwarg))
    text = os.fspath(value)
    if table:
        check_exists(text, key=key_of(kwarg))
    elif not Path(text).expanduser().is_file():
        raise ConfigError(
            f"file not found (given: {text!r}, resolved to {Path(text).expanduser().resolve()}); expected an existing file",
            key=key_of(kwarg),
        )
    return str(Path(text).expanduser()) if "#" not in text else text


def choice_arg(value: Any, kwarg: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(
            f"invalid value (given: {value!r}); expected one of {', '.join(repr(a) for a in allowed)}",
            key=key_of(kwarg),
        )
    return value


def column_arg(value: Any, kwarg: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"expected a column name (given: {value!r})", key=key_of(kwarg))
    return value


def text_arg(value: Any, kwarg: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)):
        raise ConfigError(f"expected text (given: {value!r})", key=key_of(kwarg))
    return str(value)


def index_col_arg(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or (isinstance(value, int) and value < 0):
        raise ConfigError(
            f"expected a column position >= 0 or a column name (given: {value!r})", key=key_of("index_col")
        )
    return value


def read_metadata(path: str | None, index_col: int | str) -> Part | None:
    """The optional ``metadata`` table (samples x annotations, any column types)."""
    if path is None:
        return None
    frame = read_table(path, index_col=index_col, numeric=False, key=key_of("metadata"))
    return Part(frame, path, key_of("metadata"))


def oriented(frame: pd.DataFrame, layout: str) -> pd.DataFrame:
    """Samples as rows: transpose a table stored with samples as columns."""
    return frame.T if layout in SAMPLE_COLUMNS else frame


class Loader(ABC):
    """Reads one dataset and returns it as a checked :class:`SplicingData`.

    Subclasses validate their own keyword arguments in ``__init__`` and implement
    :meth:`read`; the common options (``**options``) are validated here.
    """

    def __init__(self, *, name: str = "", meta: str | None = "", **options: Any) -> None:
        self.name = text_arg(name, "name")
        self.description = text_arg(meta, "meta")
        own = tuple(p for p in inspect.signature(type(self).__init__).parameters if p not in ("self", "options"))
        self.options: LoadOptions = parse_options(options, type(self).__name__, own)

    @abstractmethod
    def read(self) -> RawData:
        """Read the files into raw tables (samples as rows), before checks and options."""

    def load(self) -> SplicingData:
        """Read, check, align and filter: the dataset as the experiment uses it."""
        return prepare(self.read(), self.options, name=self.name, description=self.description)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class TableLoader(Loader):
    """Features, targets (and sample metadata) from table files in any supported format.

    Model: X (n_samples, n_genes) from ``features``, Y (n_samples, n_events) PSI from
    ``targets``, meta (n_samples, k) from ``metadata``; samples are matched by ID.

    Args:
        features: table of expression (.tsv/.csv(.gz), .parquet, .h5/.hdf5, .zarr; see
            :mod:`regulas.data.tables`).
        targets: table of PSI values in [0, 1]; empty cells are missing values.
        metadata: optional table of sample annotations (any column types).
        features_layout: "samples_x_genes" (samples as rows) or "genes_x_samples".
        targets_layout: "samples_x_events" or "events_x_samples".
        index_col: position or name of the column of row IDs in text and Parquet tables.
        name, meta: regulAS's dataset name and free-text description.
        **options: see :class:`regulas.data.options.LoadOptions`.
    """

    def __init__(
        self,
        features: str,
        targets: str,
        metadata: str | None = None,
        features_layout: str = "samples_x_genes",
        targets_layout: str = "samples_x_events",
        index_col: int | str = 0,
        *,
        name: str = "",
        meta: str | None = "",
        **options: Any,
    ) -> None:
        self.features = path_arg(features, "features")
        self.targets = path_arg(targets, "targets")
        self.metadata = None if metadata is None else path_arg(metadata, "metadata")
        self.features_layout = choice_arg(
            features_layout, "features_layout", ("samples_x_genes", "genes_x_samples", "samples_x_features", "features_x_samples")
        )
        self.targets_layout = choice_arg(targets_layout, "targets_layout", ("samples_x_events", "events_x_samples"))
        self.index_col = index_col_arg(index_col)
        super().__init__(name=name, meta=meta, **options)

    def read(self) -> RawData:
        x_key, y_key = key_of("features"), key_of("targets")
        X = oriented(read_table(self.features, index_col=self.index_col, key=x_key), self.features_layout)
        Y = oriented(read_table(self.targets, index_col=self.index_col, key=y_key), self.targets_layout)
        return RawData(
            X=Part(X, self.features, x_key, key_of("features_layout")),
            Y=Part(Y, self.targets, y_key, key_of("targets_layout")),
            meta=read_metadata(self.metadata, self.index_col),
        )


class PickleLoader(Loader):
    """regulAS's dataset format: one pickled pandas DataFrame, samples as rows.

    All columns but the target are features; the target column is ``objective`` (default:
    the last column). Y is then (n_samples, 1), one event named after that column. A list of
    column names makes several events.

    Unpickling runs code from the file, so this loader is used only when a config names it
    (``regulas.data.PickleLoader`` or regulAS's ``regulAS.utils.PickleLoader``); no other
    loader reads pickles.
    """

    def __init__(
        self,
        path_to_file: str,
        objective: str | list[str] | None = None,
        *,
        name: str = "",
        meta: str | None = "",
        **options: Any,
    ) -> None:
        self.path_to_file = path_arg(path_to_file, "path_to_file", table=False)
        if objective is not None and not (
            isinstance(objective, str) or (isinstance(objective, list) and objective and all(isinstance(o, str) for o in objective))
        ):
            raise ConfigError(
                f"expected a column name or a list of column names (given: {objective!r})", key=key_of("objective")
            )
        self.objective = objective
        super().__init__(name=name, meta=meta, **options)

    def read(self) -> RawData:
        source, key = self.path_to_file, key_of("path_to_file")
        try:
            frame = pd.read_pickle(source)
        except (pickle.UnpicklingError, EOFError, OSError, ValueError, AttributeError, ImportError, TypeError) as exc:
            raise DataError(f"cannot unpickle: {exc}; expected a pickled pandas DataFrame", key=key, source=source) from exc
        if not isinstance(frame, pd.DataFrame):
            raise DataError(
                f"the pickle holds a {type(frame).__name__}; expected a pandas DataFrame (samples x columns)",
                key=key,
                source=source,
            )
        if frame.shape[1] < 2 or frame.shape[0] == 0:
            raise DataError(
                f"empty data: {frame.shape[0]} samples x {frame.shape[1]} columns; expected samples as rows and "
                "at least one feature column besides the objective",
                key=key,
                source=source,
            )
        frame = frame.copy()
        frame.columns = frame.columns.astype(str)
        frame.index = frame.index.astype(str)
        targets = [self.objective] if isinstance(self.objective, str) else self.objective or [str(frame.columns[-1])]
        missing = [t for t in targets if t not in frame.columns]
        if missing:
            raise DataError(
                f"objective column {missing[0]!r} not found (columns end with {list(frame.columns[-5:])}); "
                "expected the name of the PSI column",
                key=key_of("objective"),
                source=source,
            )
        frame = as_float(frame, source=source, key=key)
        Y = frame.loc[:, targets]
        X = frame.drop(columns=targets)
        return RawData(X=Part(X, source, key), Y=Part(Y, source, key))
