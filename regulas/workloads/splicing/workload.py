"""The splicing-regulome study (regulAS): every event, every pipeline, every outer split.

Data: X (n_samples x n_features, e.g. RBP expression) and Y (n_samples x n_events,
PSI in [0, 1], NaN = missing) from a loader (:mod:`regulas.data`). The study predicts
each event's PSI from X with each configured scikit-learn pipeline and scores it on
the outer test folds of one splitter.

A task is one block of events x one pipeline x one outer split, so the data and
every factorisation of the training X are shared by the events of the block
(:func:`regulas.splicing.evaluate.evaluate_block`). Hyper-parameters are chosen per
event by an inner search on the training part (``selection: nested``, the default,
GridSearchCV semantics) or, as regulAS does, every grid point is scored on every
outer split and reports pick the best by test mean (``selection: outer``: optimistic,
and reports say so).

Stored per (event, model, split): metrics, chosen hyper-parameters and fit time in
``splice_score``; the top-k importances in ``splice_importance``; test predictions
and full importance vectors in Zarr (``pred``, ``importance``). A *model* is a
pipeline (nested) or a pipeline at one grid point (outer); ``splice_model`` lists them.
Rows name their event by its index on the Zarr event axis; ``splice_event`` maps the
index to the event's name (the views show names).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from regulas.core.config.regulas_format import TOP_KEYS
from regulas.core.config.targets import allow_targets, checked_target, extra_allowed, instantiate, register_aliases
from regulas.core.config.typed import positive
from regulas.core.errors import ConfigError
from regulas.core.hashing import derive_seed
from regulas.core.report import Report
from regulas.core.task import Region, Task, make_task
from regulas.core.workload import (
    Block,
    Rows,
    SharedContext,
    SharedInput,
    StudyContext,
    TaskContext,
    TaskResult,
    Workload,
)
from regulas.splicing.pipelines import PipelineSpec

# the store (Zarr, SQLAlchemy) where a study is prepared or run: validating a config needs none of it
if TYPE_CHECKING:
    from regulas.core.workload import WorkloadTables
    from regulas.data import Loader, SplicingData
    from regulas.data.streamed import StreamedData
    from regulas.workloads.splicing.tables import SpliceImportanceRows

SECTION = "experiment"
#: printed once by a run with ``selection: outer`` (a regulAS file's default)
OUTER_NOTICE = ("regulAS semantics: every grid point is scored on the outer splits and the best picked by test "
                "mean (optimistic); set selection=nested for unbiased estimates")
#: the importance kinds stored (top-k in SQLite for each)
IMPORTANCE_KINDS = ("coef", "feature_importances", "permutation")
#: Zarr array of each kind's full vectors: the model's own (coef_, or feature_importances_
#: when it has no coef_) and permutation importance (only when the config asks for it)
IMPORTANCE_ARRAYS = {"coef": "importance", "feature_importances": "importance", "permutation": "permutation_importance"}


@dataclass(frozen=True)
class SplicingConfig:
    """The ``experiment`` section: regulAS's keys, then regulas's additions."""

    name: str = "???"
    dataset: dict[str, Any] | None = None  # a loader: {_target_: regulas.data.TableLoader, ...}
    split: dict[str, Any] | None = None  # any scikit-learn splitter: {_target_: ..., n_splits: 5, ...}
    pipelines: list[dict[str, Any]] | None = None  # regulAS pipelines: transformations + model (+ _varargs_)
    reports: dict[str, Any] | None = None  # regulAS reports, chained by _depends_on_
    block_size: int = 200  # events per task (and the Zarr chunk width along events)
    selection: Literal["nested", "outer"] = "nested"
    inner_cv: int | dict[str, Any] = 5  # nested search: KFold(n) as GridSearchCV's default, or a splitter
    scoring: str = "neg_mean_squared_error"  # nested search: a scikit-learn scorer name
    top_k: int = 20  # importances per (event, model, split) kept in SQLite; all of them go to Zarr
    permutation: dict[str, Any] | None = None  # e.g. {n_repeats: 5}: also permutation importance on test folds

    def check(self, prefix: str, source: str | None) -> None:
        positive(self.block_size, f"{prefix}.block_size", source)
        positive(self.top_k, f"{prefix}.top_k", source)
        if isinstance(self.inner_cv, int) and self.inner_cv < 2:
            raise ConfigError(
                f"out of range (given: {self.inner_cv}); expected at least 2 inner folds or a splitter",
                key=f"{prefix}.inner_cv",
                source=source,
            )
        if self.reports_only:
            if self.reports is None:
                raise ConfigError(
                    "nothing to do: dataset, split and pipelines are null and there are no reports; expected "
                    "a dataset, a split and pipelines (to fit) or reports (to report on a finished study)",
                    key=prefix,
                    source=source,
                )
        else:
            for key in ("dataset", "split", "pipelines"):
                if not getattr(self, key):
                    raise ConfigError(
                        "required to fit (given: null); a report-only config sets dataset, split and "
                        "pipelines all to null",
                        key=f"{prefix}.{key}",
                        source=source,
                    )
            _check_target(self.dataset, f"{prefix}.dataset", source, "loader")
            _check_target(self.split, f"{prefix}.split", source, "splitter")
            self.pipeline_specs(prefix, source)
            if isinstance(self.inner_cv, dict):
                _check_target(self.inner_cv, f"{prefix}.inner_cv", source, "splitter")
        from regulas.workloads.splicing.reports import check_reports

        check_reports(self.reports, key=f"{prefix}.reports", source=source)

    @property
    def reports_only(self) -> bool:
        """regulAS's report setup: no dataset, split or pipelines; reports on an existing study."""
        return self.dataset is None and self.split is None and self.pipelines is None

    def pipeline_specs(self, prefix: str = SECTION, source: str | None = None) -> list[PipelineSpec]:
        specs = [
            PipelineSpec.from_config(item, key=f"{prefix}.pipelines[{i}]", source=source)
            for i, item in enumerate(self.pipelines or [])
        ]
        seen: dict[str, int] = {}
        for i, spec in enumerate(specs):
            if spec.identity in seen:
                raise ConfigError(
                    f"the same pipeline as pipelines[{seen[spec.identity]}] ({spec.name}); each pipeline "
                    "must differ in its steps, their parameters or its grid",
                    key=f"{prefix}.pipelines[{i}]",
                    source=source,
                )
            seen[spec.identity] = i
        return specs


#: what each ``_target_`` slot of the section must name, checked on the located object before
#: it is called: (description, test)
_SLOTS: dict[str, tuple[str, Any]] = {
    "splitter": (
        "a cross-validation splitter class (with a split method), e.g. sklearn.model_selection.KFold",
        lambda obj: isinstance(obj, type) and callable(getattr(obj, "split", None)),
    ),
    "loader": (
        "a regulas data loader class (a regulas.data.Loader subclass), e.g. regulas.data.TableLoader "
        "or regulAS.utils.PickleLoader",
        lambda obj: isinstance(obj, type) and issubclass(obj, _loader_base()),
    ),
}


def _loader_base() -> type:
    from regulas.data import Loader

    return Loader


def _check_target(node: Any, key: str, source: str | None, slot: str) -> Any:
    """The class ``node``'s ``_target_`` names, once it is allowed, importable and fit for ``slot``
    (None: checked without importing it, :func:`~regulas.core.config.targets.without_importing`)."""
    if not isinstance(node, dict) or not isinstance(node.get("_target_"), str):
        raise ConfigError(
            f"expected a mapping with a _target_ (given: {node!r}), e.g. {{_target_: "
            "sklearn.model_selection.KFold, n_splits: 5}",
            key=key,
            source=source,
        )
    obj = checked_target(node["_target_"], key=f"{key}._target_", source=source)
    what, fits = _SLOTS[slot]
    if obj is not None and not fits(obj):
        raise ConfigError(
            f"{node['_target_']!r} cannot be used here: expected {what}", key=f"{key}._target_", source=source
        )
    return obj


#: ``_target_`` names of regulas classes in splicing configs: regulAS's own (so its files run
#: unchanged) and the paths the report classes had before the workload became a plug-in
TARGET_ALIASES = {
    "regulAS.utils.PickleLoader": "regulas.data.PickleLoader",
    **{
        f"{prefix}.{name}": f"regulas.workloads.splicing.reports.{name}"
        for prefix in ("regulAS.reports", "regulas.reports")
        for name in ("ModelPerformanceReport", "FeatureRankingReport", "ExportCSV")
    },
}
# also on workers, which import this module to unpickle the workload
register_aliases(TARGET_ALIASES)


@dataclass(frozen=True)
class FitBlock(Block):
    """One task: events ``[start, stop)`` x models ``[m0, m1)`` of one pipeline x one outer split."""

    block: int
    events: tuple[int, int]
    pipeline: int
    models: tuple[int, int]
    split: int
    fit_seed: int
    data: str  # the data fingerprint's first 16 characters: keys the worker's cache of X

    @classmethod
    def of(cls, task: Task) -> FitBlock:
        b = dict(task.block)
        b["events"], b["models"] = tuple(b["events"]), tuple(b["models"])
        return cls(**b)


@dataclass(frozen=True)
class ModelRow:
    """One model of the study: a pipeline (nested) or a pipeline at one grid point (outer)."""

    index: int
    pipeline: int
    candidate: int  # -1 when the nested search chooses
    params: dict[str, Any]
    label: str


def models_of(specs: list[PipelineSpec], selection: str) -> list[ModelRow]:
    rows: list[ModelRow] = []
    for p, spec in enumerate(specs):
        if selection == "nested":
            rows.append(ModelRow(len(rows), p, -1, {}, spec.name))
            continue
        for c, params in enumerate(spec.candidates()):
            label = f"{spec.name} {json.dumps(params, sort_keys=True, default=str)}" if params else spec.name
            rows.append(ModelRow(len(rows), p, c, params, label))
    return rows


@functools.lru_cache(maxsize=8)
def _shared_input(store_path: str, study: str, name: str, fingerprint: str) -> tuple[np.ndarray, dict[str, Any]]:
    """An input array and its attributes, read once per worker process and data version.

    X is read by every task of a study (and is the largest input at TCGA scale);
    ``fingerprint`` in the key keeps a long-lived worker from serving stale data.
    """
    from regulas.store.arrays import open_study_array

    arr = open_study_array(store_path, f"{study}/{name}", "r")
    return np.asarray(arr[...]), dict(arr.attrs)


def _index(row: np.ndarray) -> np.ndarray:
    return row[row >= 0]


class SplicingWorkload(Workload):
    name = "splicing"
    section = SECTION
    config_class = SplicingConfig
    config: SplicingConfig
    runtime_keys = ("reports",)  # reports read results; they never change them
    extra_top_keys = TOP_KEYS  # regulAS's random_state, database, num_processes
    target_aliases = TARGET_ALIASES

    @classmethod
    def store_tables(cls) -> WorkloadTables:
        from regulas.workloads.splicing.tables import SPLICING_TABLES

        return SPLICING_TABLES

    # ---------------------------------------------------------------- driver side

    @functools.cached_property
    def specs(self) -> list[PipelineSpec]:
        return self.config.pipeline_specs()

    @functools.cached_property
    def models(self) -> list[ModelRow]:
        return models_of(self.specs, self.config.selection)

    def __getstate__(self) -> dict[str, Any]:
        # ship only the config to workers (and the _target_ modules the study's config
        # allowed, so workers accept its targets too); cached properties are rebuilt there
        return {"config": self.config, "allow_targets": extra_allowed()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        allow_targets(state.get("allow_targets", ()))
        self.__dict__["config"] = state["config"]

    def _splitter(self, root_seed: int) -> Any:
        node = dict(self.config.split or {})
        params = _init_params(_check_target(node, f"{SECTION}.split", None, "splitter"))
        shuffles = "shuffle" not in params or bool(node.get("shuffle", False))  # KFold shuffles only if asked
        if "random_state" in params and shuffles and node.get("random_state") is None:
            # regulAS's default random_state is null (a new shuffle each run); a study
            # must be reproducible and resumable, so the root seed decides instead
            node["random_state"] = derive_seed(root_seed, "splicing.split", {}) % 2**32
        return instantiate(node)

    def inner_cv(self) -> Any:
        if isinstance(self.config.inner_cv, int):
            from sklearn.model_selection import KFold

            return KFold(n_splits=self.config.inner_cv)  # GridSearchCV(cv=int) for a regressor
        _check_target(self.config.inner_cv, f"{SECTION}.inner_cv", None, "splitter")
        return instantiate(self.config.inner_cv)

    def worker_modules(self) -> list[str]:
        """The engine and the modules of the pipelines' and splitter's ``_target_`` classes."""
        targets = [self.config.split, *(self.config.inner_cv,)] if self.config.split else []
        for pipeline in self.config.pipelines or []:
            targets += _target_nodes(pipeline)
        modules = {str(node["_target_"]).rpartition(".")[0] for node in targets if isinstance(node, dict) and "_target_" in node}
        return [type(self).__module__, "regulas.splicing.evaluate", *sorted(m for m in modules if m)]

    def check_inputs(self, root_seed: int) -> None:
        self.outer_splits(root_seed)  # loads and checks the data, then the splits

    def run_notes(self) -> list[str]:
        return [OUTER_NOTICE] if self.config.selection == "outer" else []

    @functools.lru_cache(maxsize=1)  # noqa: B019 - one workload object per driver run
    def outer_splits(self, root_seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """(train, test) sample rows of every outer split, checked."""
        c = self.config
        X = self.data.X
        n = X.shape[0]
        try:
            splits = [(np.asarray(tr), np.asarray(te)) for tr, te in self._splitter(root_seed).split(X)]
        except (TypeError, ValueError) as exc:  # scikit-learn's own checks, e.g. n_splits > n_samples
            raise ConfigError(f"{exc} (data: {n} samples)", key=f"{SECTION}.split") from exc
        for s, (train, test) in enumerate(splits):
            if len(train) == 0 or len(test) == 0:
                raise ConfigError(
                    f"outer split {s} has {len(train)} training and {len(test)} test samples of {n}; expected both "
                    "non-empty", key=f"{SECTION}.split",
                )
            if c.selection == "nested" and isinstance(c.inner_cv, int) and len(train) < c.inner_cv:
                raise ConfigError(
                    f"outer split {s} has {len(train)} training samples, fewer than inner_cv={c.inner_cv} folds",
                    key=f"{SECTION}.inner_cv",
                )
        return splits

    @functools.cached_property
    def event_names(self) -> list[str]:
        """The events in the order of Y's event axis: Zarr ``Y.attrs["events"]`` and the
        ``splice_event`` index, which result rows use, both come from here."""
        return [str(v) for v in self.data.events]

    @functools.cached_property
    def loader(self) -> Loader:
        """The dataset's loader, its arguments checked (nothing read yet)."""
        from regulas.data import Loader

        node = self.config.dataset or {}
        _check_target(node, f"{SECTION}.dataset", None, "loader")  # before anything is called
        try:
            loader = instantiate(node)
        except TypeError as exc:  # a keyword the loader does not take
            raise ConfigError(f"{node.get('_target_')}: {exc}", key=f"{SECTION}.dataset") from exc
        if not isinstance(loader, Loader):
            raise ConfigError(
                f"{node.get('_target_')} is not a regulas data loader (expected e.g. "
                "regulas.data.TableLoader or regulAS.utils.PickleLoader)",
                key=f"{SECTION}.dataset._target_",
            )
        return loader

    @functools.cached_property
    def data(self) -> SplicingData | StreamedData:
        """The dataset, loaded and checked once in the driver (never shipped to workers); its
        PSI may stay in their file (:meth:`regulas.data.Loader.load_for_study`): they reach
        the study's Zarr ``Y`` block by block in :meth:`prepare`."""
        data: SplicingData | StreamedData = self.loader.load_for_study()
        return data

    def input_files(self) -> list[str]:
        """Every file the loader reads (a glob or a comma list names many)."""
        return [] if self.config.reports_only else self.loader.input_files()

    def prepare(self, ctx: StudyContext) -> str:
        from regulas.store.arrays import ArraySpec

        c = self.config
        data = self.data
        X = np.ascontiguousarray(data.X.to_numpy(dtype=np.float64))
        n, f = X.shape
        e = len(data.events)
        splits = self.outer_splits(ctx.root_seed)
        n_splits, n_models = len(splits), len(self.models)
        max_train = max(len(tr) for tr, _ in splits)
        max_test = max(len(te) for _, te in splits)
        block = min(c.block_size, e)
        a = ctx.arrays
        x = a.create(ArraySpec("X", (n, f), (n, f), dims=("sample", "feature"), description="features"), X)
        x.attrs.update({"samples": [str(v) for v in data.X.index], "features": [str(v) for v in data.X.columns]})
        y = a.create(ArraySpec("Y", (n, e), (n, block), dims=("sample", "event"), description="PSI (NaN = missing)"))
        for start, values in data.target_blocks(block):  # whole chunks, one at a time
            y[:, start : start + values.shape[1]] = values
        y.attrs.update({"events": self.event_names})
        for name, width, part in (("train_index", max_train, 0), ("test_index", max_test, 1)):
            padded = np.full((n_splits, width), -1, dtype=np.int64)
            for s, split in enumerate(splits):
                padded[s, : len(split[part])] = split[part]
            a.create(
                ArraySpec(name, padded.shape, padded.shape, dtype="int64", dims=("split", "position"), fill_value=-1,
                          description=f"sample rows of each outer split's {name.split('_')[0]} part; -1 = padding"),
                padded,
            )
        a.create(ArraySpec(
            "pred", (n_models, n_splits, max_test, e), (1, 1, max_test, block), dims=("model", "split", "position", "event"),
            description="test predictions aligned with test_index; NaN = padding or missing PSI",
        ))
        for name in self.importance_arrays():
            what = ("permutation importance on the test part" if name == "permutation_importance"
                    else "the model's coef_ (else feature_importances_)")
            a.create(ArraySpec(
                name, (n_models, n_splits, f, e), (1, 1, f, block), dims=("model", "split", "feature", "event"),
                description=f"feature importances: {what}; NaN = none",
            ))
        return self.data_fingerprint(ctx.root_seed)

    @functools.lru_cache(maxsize=1)  # noqa: B019 - one workload object per driver run
    def data_fingerprint(self, root_seed: int) -> str:
        """sha256 over the loaded data (X, Y, meta) and the outer splits."""
        digest = hashlib.sha256(self.data.fingerprint().encode())
        for train, test in self.outer_splits(root_seed):
            digest.update(train.astype(np.int64).tobytes() + b"|" + test.astype(np.int64).tobytes())
        return digest.hexdigest()

    def plan(self, ctx: StudyContext, fingerprint: str) -> list[Task]:
        arrays = ctx.arrays
        n_models, n_splits, max_test, n_events = arrays.specs["pred"].shape
        n_features = arrays.specs["X"].shape[1]
        block = arrays.specs["pred"].chunks[-1]
        config = self.result_config()
        tasks = []
        # split-major: the blocks of one split run together, so each split's shared
        # factorisations (shared_inputs) are held by the workers for a short stretch only
        for s in range(n_splits):
            for p in range(len(self.specs)):
                ms = [m.index for m in self.models if m.pipeline == p]
                m0, m1 = ms[0], ms[-1] + 1
                for b, start in enumerate(range(0, n_events, block)):
                    stop = min(start + block, n_events)
                    regions = (
                        Region.of("pred", slice(m0, m1), s, slice(0, max_test), slice(start, stop)),
                        *(Region.of(name, slice(m0, m1), s, slice(0, n_features), slice(start, stop))
                          for name in self.importance_arrays()),
                    )
                    tasks.append(make_task(
                        study=ctx.name,
                        kind="splicing.fit",
                        block=FitBlock(b, (start, stop), p, (m0, m1), s, self.fit_seed(ctx.root_seed, p),
                                       fingerprint[:16]).json(),
                        root_seed=ctx.root_seed,
                        config=config,
                        data_fingerprint=fingerprint,
                        regions=regions,
                    ))
        return tasks

    @functools.cached_property
    def _shares_factorizations(self) -> list[bool]:
        """Per pipeline: whether its blocks of a split reuse the split's factorisations."""
        from regulas.splicing.missing_route import shares_factorizations
        from regulas.splicing.ridge_batch import ridge_setup
        from regulas.splicing.selection import resolve_inner_cv

        c = self.config
        cv = resolve_inner_cv(self.inner_cv(), 0) if c.selection == "nested" else None
        out = []
        for spec in self.specs:
            setup = ridge_setup(spec, spec.candidates()) if spec.batched() else None
            out.append(shares_factorizations(spec, setup, nested=c.selection == "nested", cv=cv, scoring=c.scoring))
        return out

    def shared_inputs(self, task: Task) -> list[SharedInput]:
        """The factorisations of the task's outer split (StandardScaler → Ridge, nested):
        one Gram and eigendecomposition per training set (the split's training part and its
        inner folds), computed once per run and reused by every block of events of the split."""
        if task.kind != "splicing.fit":
            return []
        blk = FitBlock.of(task)
        if not self._shares_factorizations[blk.pipeline]:
            return []
        key = f"splicing.factors-{blk.data}-p{blk.pipeline}-s{blk.split}"
        return [SharedInput(key, {"data": blk.data, "pipeline": blk.pipeline, "split": blk.split,
                                  "fit_seed": blk.fit_seed})]

    def compute_shared(self, ctx: SharedContext) -> Any:
        from regulas.splicing.missing_route import factorizations_pay
        from regulas.splicing.ridge_batch import ridge_setup
        from regulas.splicing.selection import resolve_inner_cv
        from regulas.splicing.shared_ridge import factorize_split

        blk = ctx.shared.block
        store, study = ctx.arrays.store_path, ctx.arrays.study
        X, _ = _shared_input(store, study, "X", blk["data"])
        train = _index(ctx.arrays.read("train_index", blk["split"]))
        test = _index(ctx.arrays.read("test_index", blk["split"]))
        cv = resolve_inner_cv(self.inner_cv(), blk["fit_seed"])
        if not factorizations_pay(X.shape[1], len(train), cv):
            return None  # the blocks take the per-group route
        spec = self.specs[blk["pipeline"]]
        return factorize_split(X[train], X[test], cv, ridge_setup(spec, spec.candidates()).alphas)

    def importance_arrays(self) -> list[str]:
        return ["importance"] + (["permutation_importance"] if self.config.permutation is not None else [])

    @staticmethod
    def fit_seed(root_seed: int, pipeline: int) -> int:
        """The seed of a pipeline's randomised steps and permutation importance.

        One per pipeline, as a user's ``random_state=42`` in a model is the same in every
        split: an event's result does not depend on its block, and ``splice_model`` can
        store the get_params() actually used.
        """
        return derive_seed(root_seed, "splicing.fit", {"pipeline": pipeline}) % 2**32

    def study_rows(self, ctx: StudyContext) -> list[Rows]:
        from regulas.splicing.selection import seed32
        from regulas.workloads.splicing.tables import SpliceEventRows, SpliceModelRows

        # each step's get_params() as fitted: a random_state left at None holds the seed
        # evaluate_block gives it (seed32 of the task's fit_seed)
        steps = [
            json.dumps(spec.describe(random_state=seed32(self.fit_seed(ctx.root_seed, p))), sort_keys=True, default=str)
            for p, spec in enumerate(self.specs)
        ]
        grids = [json.dumps(spec.grid, sort_keys=True, default=str) for spec in self.specs]
        events = self.event_names
        return [
            SpliceEventRows(event=list(range(len(events))), name=events),
            SpliceModelRows(
                model=[m.index for m in self.models],
                pipeline=[self.specs[m.pipeline].name for m in self.models],
                candidate=[m.candidate for m in self.models],
                params=[json.dumps(m.params, sort_keys=True, default=str) for m in self.models],
                label=[m.label for m in self.models],
                identity=[self.specs[m.pipeline].identity for m in self.models],
                steps=[steps[m.pipeline] for m in self.models],
                grid=[grids[m.pipeline] for m in self.models],
            ),
        ]

    # ---------------------------------------------------------------- worker side

    def run_task(self, ctx: TaskContext) -> TaskResult:
        from regulas.splicing.evaluate import evaluate_block
        from regulas.workloads.splicing.tables import SpliceScoreRows

        c = self.config
        blk = FitBlock.of(ctx.task)
        start, stop = blk.events
        s, m0 = blk.split, blk.models[0]
        store, study = ctx.arrays.store_path, ctx.arrays.study
        X, x_attrs = _shared_input(store, study, "X", blk.data)
        Y = ctx.arrays.read("Y", (slice(None), slice(start, stop)))
        train = _index(ctx.arrays.read("train_index", s))
        test = _index(ctx.arrays.read("test_index", s))
        fits = evaluate_block(
            X, Y, train, test, self.specs[blk.pipeline],
            selection=c.selection, inner_cv=self.inner_cv(), scoring=c.scoring, permutation=c.permutation,
            random_state=blk.fit_seed,
            shared=next(iter(ctx.shared.values()), None),
        )
        n_cand, n_test, n_ev = fits.pred.shape
        max_test = ctx.arrays.array("pred").shape[2]
        pred = np.full((n_cand, 1, max_test, n_ev), np.nan)
        pred[:, 0, :n_test] = fits.pred
        ctx.arrays.write(Region.of("pred", slice(m0, m0 + n_cand), s, slice(0, max_test), slice(start, stop)), pred)
        kinds = [k for k in IMPORTANCE_KINDS if k in fits.importance]
        n_features = X.shape[1]
        for name in self.importance_arrays():
            # the model's own: coef_ when it has one, else feature_importances_
            kind = next((k for k in kinds if IMPORTANCE_ARRAYS[k] == name), None)
            full = fits.importance[kind] if kind else np.full((n_cand, n_features, n_ev), np.nan)
            ctx.arrays.write(
                Region.of(name, slice(m0, m0 + n_cand), s, slice(0, n_features), slice(start, stop)), full[:, None]
            )
        events = np.arange(start, stop)  # indices into splice_event, like the Zarr event axis
        models = np.arange(m0, m0 + n_cand)
        rows: list[Rows] = [
            SpliceScoreRows(
                event=np.tile(events, n_cand).tolist(),
                model=np.repeat(models, n_ev).tolist(),
                split=[s] * (n_cand * n_ev),
                n_train=np.tile(fits.n_train, n_cand).tolist(),
                n_test=np.tile(fits.n_test, n_cand).tolist(),
                **{m: np.asarray(v, dtype=float).ravel() for m, v in fits.metrics.items()},
                params=[json.dumps(p, sort_keys=True, default=str) for cand in fits.params for p in cand],
                fit_time_s=np.asarray(fits.fit_time_s, dtype=float).ravel(),
            )
        ]
        rows += [_top_k(fits.importance[k], k, c.top_k, events, models, s, x_attrs["features"]) for k in kinds]
        return TaskResult.of(*rows)

    # ---------------------------------------------------------------- after the run

    @property
    def reports_only(self) -> bool:
        return self.config.reports_only

    def reports(self) -> list[Report]:
        """The configured reports (regulAS's, by ``_depends_on_``), the default figures, the summary."""
        from regulas.workloads.splicing.reports import SplicingSummary, study_reports

        return [*study_reports(self.config.reports), SplicingSummary()]


def _target_nodes(node: Any) -> list[dict[str, Any]]:
    """Every mapping with a ``_target_`` inside ``node`` (a pipeline's steps)."""
    if isinstance(node, dict):
        found = [node] if "_target_" in node else []
        return found + [n for v in node.values() for n in _target_nodes(v)]
    if isinstance(node, list):
        return [n for v in node for n in _target_nodes(v)]
    return []


def _init_params(cls: Any) -> set[str]:
    import inspect

    try:
        return set(inspect.signature(cls).parameters)
    except (TypeError, ValueError):
        return set()


def _top_k(
    imp: np.ndarray, kind: str, k: int, events: np.ndarray, models: np.ndarray, split: int, features: list[str]
) -> SpliceImportanceRows:
    """The k largest |importance| per (model, event) as splice_importance columns.

    ``imp``: (n_models, n_features, n_events). NaN importances are skipped.
    """
    from regulas.workloads.splicing.tables import SpliceImportanceRows

    n_cand, n_feat, n_ev = imp.shape
    k = min(k, n_feat)
    magnitude = np.where(np.isnan(imp), -np.inf, np.abs(imp))
    if k < n_feat:  # partial selection first: a full sort of thousands of features per event is wasted
        part = np.argpartition(-magnitude, k - 1, axis=1)[:, :k, :]
        inner = np.argsort(-np.take_along_axis(magnitude, part, axis=1), axis=1, kind="stable")
        order = np.take_along_axis(part, inner, axis=1)  # (n_cand, k, n_ev)
    else:
        order = np.argsort(-magnitude, axis=1, kind="stable")
    picked = np.take_along_axis(imp, order, axis=1)
    valid = ~np.isnan(picked)
    cand_i, rank_i, ev_i = np.nonzero(valid)
    names = np.asarray(features, dtype=object)
    return SpliceImportanceRows(
        event=events[ev_i].tolist(),
        model=models[cand_i].tolist(),
        split=[split] * len(ev_i),
        kind=[kind] * len(ev_i),
        rank=(rank_i + 1).tolist(),
        feature=names[order[cand_i, rank_i, ev_i]].tolist(),
        score=picked[cand_i, rank_i, ev_i],
    )
