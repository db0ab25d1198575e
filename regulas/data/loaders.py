"""Dataset loaders, configured like regulAS's: ``{_target_: regulas.data.TableLoader, **kwargs}``.

A workload does ``loader = locate(node["_target_"])(**kwargs); data = loader.load()``.
Every keyword argument is checked in ``__init__`` (types, allowed values, files exist, format
known), so a bad dataset node fails before any work starts; ``load()`` then reads, checks the
contents and applies the common options (:mod:`regulas.data.options`).
"""

from __future__ import annotations

import inspect
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import pandas as pd

from regulas.core.errors import ConfigError
from regulas.data.checks import check_psi, duplicate_samples
from regulas.data.dataset import SplicingData
from regulas.data.event_files import EventBlock, FileList, RowUnion, expand_files, read_event_pickle, read_event_pickles, stack_events
from regulas.data.options import DATASET_KEY, LoadOptions, parse_options
from regulas.data.prepare import Part, RawData, prepare
from regulas.data.streamed import StreamedData, prepare_streamed
from regulas.data.streams import Unstreamable, open_targets
from regulas.data.tables import check_exists, read_table, split_group

SAMPLE_COLUMNS = ("genes_x_samples", "features_x_samples", "events_x_samples")


def key_of(kwarg: str) -> str:
    return f"{DATASET_KEY}.{kwarg}"


def path_arg(value: Any, kwarg: str) -> str:
    """Validate a file argument: a non-empty path to an existing file of a known table format."""
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise ConfigError(f"expected a file path (given: {value!r})", key=key_of(kwarg))
    text = os.fspath(value)
    check_exists(text, key=key_of(kwarg))
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

    def input_files(self) -> list[str]:
        """The files :meth:`read` reads that the config names only through a glob or a list
        (a literal path in the config is found there). Default: none."""
        return []

    @abstractmethod
    def read(self) -> RawData:
        """Read the files into raw tables (samples as rows), before checks and options."""

    def load(self) -> SplicingData:
        """Read, check, align and filter: the dataset as the experiment uses it."""
        return prepare(self.read(), self.options, name=self.name, description=self.description)

    def load_for_study(self) -> SplicingData | StreamedData:
        """The dataset as a study reads it: :meth:`load`, unless the loader can leave the
        targets in their file (:class:`~regulas.data.streamed.StreamedData`, equal data)."""
        return self.load()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class TableLoader(Loader):
    """Features, targets (and sample metadata) from table files in any supported format.

    Model: X (n_samples, n_genes) from ``features``, Y (n_samples, n_events) PSI from
    ``targets``, meta (n_samples, k) from ``metadata``; samples are matched by ID.

    Args:
        features: table of expression (.tsv/.csv(.gz), .parquet, .h5/.hdf5, .zarr; see
            :mod:`regulas.data.tables`).
        targets: table of PSI values in [0, 1]; empty cells are missing values. Also a glob,
            a comma list or a list of tables (see :func:`regulas.data.event_files.expand_files`):
            their events side by side (names unique across files), their samples unioned, NaN
            where a file has no row for a sample.
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
        targets: str | list[str],
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
        self.target_files: FileList = expand_files(targets, key_of("targets"), table=True)
        self.targets = self.target_files.files[0] if self.target_files.single else self.target_files.given
        self.metadata = None if metadata is None else path_arg(metadata, "metadata")
        self.features_layout = choice_arg(
            features_layout, "features_layout", ("samples_x_genes", "genes_x_samples", "samples_x_features", "features_x_samples")
        )
        self.targets_layout = choice_arg(targets_layout, "targets_layout", ("samples_x_events", "events_x_samples"))
        self.index_col = index_col_arg(index_col)
        super().__init__(name=name, meta=meta, **options)

    def input_files(self) -> list[str]:
        # every table, also a Zarr folder (the config scan finds only files); ``file.h5#group``
        # is the file
        tables = [self.features, *self.target_files.files, *([self.metadata] if self.metadata else [])]
        return [str(split_group(t)[0]) for t in tables]

    def read(self) -> RawData:
        x_key, y_key = key_of("features"), key_of("targets")
        X = oriented(read_table(self.features, index_col=self.index_col, key=x_key), self.features_layout)
        log: list[str] = []
        if self.target_files.single:
            Y = oriented(read_table(self.targets, index_col=self.index_col, key=y_key), self.targets_layout)
        else:
            Y = self._union_of_targets(log)
        return RawData(
            X=Part(X, self.features, x_key, key_of("features_layout")),
            Y=Part(Y, self.targets, y_key, key_of("targets_layout")),
            meta=read_metadata(self.metadata, self.index_col),
            log=log,
        )

    def load_for_study(self) -> SplicingData | StreamedData:
        """A single targets file in HDF5, Zarr, Parquet or text with events as rows streams
        (:mod:`regulas.data.streams`): its PSI are checked block by block and later copied
        into the study block by block. Read whole instead: several targets files, the
        ``most_variable_events`` option (it ranks all events at once) and the files
        :func:`~regulas.data.streams.open_targets` leaves to the whole read."""
        if not self.target_files.single or self.options.most_variable_events is not None:
            return self.load()
        x_key, y_key = key_of("features"), key_of("targets")
        X = oriented(read_table(self.features, index_col=self.index_col, key=x_key), self.features_layout)
        stream = open_targets(self.targets, self.targets_layout, self.index_col, y_key)
        if stream is None:
            return self.load()
        try:
            return prepare_streamed(
                Part(X, self.features, x_key, key_of("features_layout")), stream, read_metadata(self.metadata, self.index_col),
                self.options, y_key=y_key, y_layout_key=key_of("targets_layout"), name=self.name, description=self.description,
            )
        except Unstreamable:  # a text cell that is not a number: the whole read names it
            return self.load()

    def _union_of_targets(self, log: list[str]) -> pd.DataFrame:
        """The events of all target files over the union of their samples (files in order)."""
        y_key, rows, blocks = key_of("targets"), RowUnion(), []
        for source in self.target_files.files:
            Y = oriented(read_table(source, index_col=self.index_col, key=y_key), self.targets_layout)
            check_psi(Y, source, y_key)
            Y = duplicate_samples(Y, self.options.duplicate_samples, "targets", source, y_key, log)
            positions, _ = rows.add([str(r) for r in Y.index])
            blocks.append(EventBlock(source, positions, [str(c) for c in Y.columns], Y.to_numpy(dtype=float)))
        Y = stack_events(blocks, len(rows), rows.index, y_key)
        log.append(f"read {len(blocks)} target files: {Y.shape[1]} events over the union of {Y.shape[0]} samples")
        return Y


class PickleLoader(Loader):
    """regulAS's dataset format: pickled pandas DataFrames, samples as rows.

    All columns but the target are features; the target column is ``objective`` (default:
    the last column; a list of column names makes several events per file).

    ``path_to_file`` is one path, a glob (``data/*/*.pkl``, ``**`` allowed), a comma list
    (``a.pkl,b.pkl``: regulAS's ``--multirun`` spelling) or a YAML list of paths and globs;
    every file must exist, a glob must match one at least and no file may be named twice.

    - One path: Y is (n_samples, n_targets), events named after the target columns.
    - Otherwise (even if it names a single file): one event per file and target column,
      named by :func:`regulas.data.event_files.file_labels` (the file name without ``.pkl``;
      where two files share it, the shortest tail of their paths that differs:
      ``CAST/CAST_SE_1``), as ``name:column`` when ``objective`` lists several columns.
      Files are read in the order of their absolute paths. X is the union of the files'
      samples x their feature columns, which must be the same in every file, as must a
      sample's feature values in every file that has it; Y is NaN where a file has no row
      for a sample (a missing PSI value: ``missing_psi: keep`` fits each event on its own
      rows). From :data:`~regulas.data.event_files.PARALLEL_MIN_FILES` files on, the files
      are read by a pool of processes, in batches, and merged as they arrive.

    Unpickling runs code from the file, so this loader is used only when a config names it
    (``regulas.data.PickleLoader`` or regulAS's ``regulAS.utils.PickleLoader``); no other
    loader reads pickles.
    """

    def __init__(
        self,
        path_to_file: str | list[str],
        objective: str | list[str] | None = None,
        *,
        name: str = "",
        meta: str | None = "",
        **options: Any,
    ) -> None:
        self.files: FileList = expand_files(path_to_file, key_of("path_to_file"), table=False)
        self.path_to_file = self.files.files[0] if self.files.single else self.files.given
        if objective is not None and not (
            isinstance(objective, str) or (isinstance(objective, list) and objective and all(isinstance(o, str) for o in objective))
        ):
            raise ConfigError(
                f"expected a column name or a list of column names (given: {objective!r})", key=key_of("objective")
            )
        self.objective = objective
        super().__init__(name=name, meta=meta, **options)

    def input_files(self) -> list[str]:
        return list(self.files.files)

    def read(self) -> RawData:
        key = key_of("path_to_file")
        if self.files.single:
            X, Y = read_event_pickle(self.path_to_file, self.objective, key, key_of("objective")).frames()
            return RawData(X=Part(X, self.path_to_file, key), Y=Part(Y, self.path_to_file, key))
        read = read_event_pickles(
            self.files.files, self.objective, policy=self.options.duplicate_samples, key=key, objective_key=key_of("objective")
        )
        source = self.files.describe()
        return RawData(X=Part(read.X, source, key), Y=Part(read.Y, source, key), log=read.log)
