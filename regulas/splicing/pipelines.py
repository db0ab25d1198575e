"""regulAS pipelines: named transformations then one named model, with a hyper-parameter grid.

A regulAS ``pipelines[]`` item reads::

    transformations:                      # optional, may be null
      StandardScaler: {_target_: sklearn.preprocessing.StandardScaler}
    model:
      ElasticNet:
        _target_: sklearn.linear_model.ElasticNet
        l1_ratio: 0.2
        _varargs_: {alpha: [0.1, 0.5, 1.0]}

:class:`PipelineSpec` validates such an item before any work (importable targets, keyword
arguments the classes accept, non-empty grids), builds scikit-learn pipelines from it and
gives it an identity that covers the transformations too (regulAS merged pipelines that
differed only in preprocessing).
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import inspect
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from omegaconf import OmegaConf

from regulas.core.config.targets import ALIASES, RESERVED, checked_target, locate
from regulas.core.errors import ConfigError
from regulas.core.task import stable_hash

# scikit-learn (~1 s to import) where pipelines are built or fitted: a config's pipelines
# are read, and statically checked, without it (regulas show-config)
if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline


@functools.cache
def affine_scalers() -> tuple[type, ...]:
    """Per-feature affine scalers after which the ridge family keeps its batched path: each is
    fitted on X alone, so every event of a split shares the scaled training matrix."""
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler

    return (StandardScaler, MinMaxScaler, MaxAbsScaler, RobustScaler)


#: Ridge solvers that compute the exact solution (all agree with the SVD to rounding error);
#: the iterative ones stop at a tolerance and go through the generic per-event path.
EXACT_RIDGE_SOLVERS = frozenset({"auto", "svd", "cholesky"})


def _param_names(cls: type) -> list[str]:
    """Constructor parameters of an estimator class (scikit-learn's own list when it has one)."""
    getter = getattr(cls, "_get_param_names", None)
    if callable(getter):
        return list(getter())
    params = inspect.signature(cls).parameters.values()
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _json_safe(value: Any) -> Any:
    """A JSON-serialisable stand-in for a parameter value (repr for objects, None for NaN)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    return repr(value)


@functools.cache
def _distributions() -> dict[str, list[str]]:
    # a scan of every installed distribution's file list: over a second, so once per process
    return dict(importlib.metadata.packages_distributions())


@functools.cache
def package_version(cls: type) -> str | None:
    """Installed version of the distribution that provides ``cls`` (None when unknown).

    The top-level module's ``__version__`` when it has one (scikit-learn, numpy, ...), else
    the distribution metadata.
    """
    top = cls.__module__.split(".")[0]
    version = getattr(importlib.import_module(top), "__version__", None)
    if isinstance(version, str):
        return version
    for name in _distributions().get(top, [top]):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _step_from_config(
    name: str, node: Any, *, key: str, source: str | None, role: str
) -> tuple[tuple[str, str, dict[str, Any]], type | None, dict[str, list[Any]]]:
    """Validate one ``{Name: {_target_, **kwargs, _varargs_}}`` entry; return (step, class, grid).

    The class is None when targets are checked without importing them (:func:`checked_target`):
    then its methods and parameter names are left to the import-based check of ``regulas run``.
    """
    if not isinstance(node, dict) or "_target_" not in node:
        raise ConfigError(
            f"step {name!r} must be a mapping with a _target_ (a class path such as "
            f"sklearn.linear_model.Ridge), got {node!r}",
            key=key,
            source=source,
        )
    path = node["_target_"]
    if not isinstance(path, str):
        raise ConfigError(f"_target_ must be a dotted class path, got {path!r}", key=f"{key}._target_", source=source)
    cls = checked_target(path, key=f"{key}._target_", source=source)
    allowed = None if cls is None else _estimator_params(cls, path, key=key, source=source, role=role)
    kwargs = {k: v for k, v in node.items() if k not in RESERVED}
    for kw in kwargs:
        if allowed is not None and kw not in allowed:
            raise ConfigError(
                f"{path} has no parameter {kw!r}; it accepts {', '.join(allowed) or 'none'}",
                key=f"{key}.{kw}",
                source=source,
            )
    if "_depends_on_" in node:
        raise ConfigError("_depends_on_ belongs to reports, not to pipeline steps", key=f"{key}._depends_on_", source=source)
    grid: dict[str, list[Any]] = {}
    varargs = node.get("_varargs_")
    if varargs is not None:
        if role != "model":
            raise ConfigError(
                "_varargs_ grids are supported on the model only (transformations take fixed arguments)",
                key=f"{key}._varargs_",
                source=source,
            )
        if not isinstance(varargs, dict) or not varargs:
            raise ConfigError(
                f"_varargs_ must map parameter names to lists of candidates, got {varargs!r}",
                key=f"{key}._varargs_",
                source=source,
            )
        for param, values in varargs.items():
            pkey = f"{key}._varargs_.{param}"
            if allowed is not None and param not in allowed:
                raise ConfigError(
                    f"{path} has no parameter {param!r}; it accepts {', '.join(allowed)}", key=pkey, source=source
                )
            if param in kwargs:
                raise ConfigError(f"{param!r} is both fixed and in the grid; keep one", key=pkey, source=source)
            if not isinstance(values, (list, tuple)) or len(values) == 0:
                raise ConfigError(f"grid values must be a non-empty list, got {values!r}", key=pkey, source=source)
            grid[str(param)] = list(values)
    return (str(name), ALIASES.get(path, path), kwargs), cls, grid


def _estimator_params(cls: Any, path: str, *, key: str, source: str | None, role: str) -> list[str]:
    """The constructor parameters of a located step class, once it is a class with the role's methods."""
    if not isinstance(cls, type):
        raise ConfigError(f"_target_ {path!r} is not a class", key=f"{key}._target_", source=source)
    needed = ("fit", "predict") if role == "model" else ("fit", "transform")
    missing = [m for m in needed if not callable(getattr(cls, m, None))]
    if missing:
        raise ConfigError(
            f"{path} cannot be a {role}: it has no {' / '.join(missing)} method "
            f"(a {role} needs {' and '.join(needed)})",
            key=f"{key}._target_",
            source=source,
        )
    return _param_names(cls)


@dataclass(frozen=True)
class PipelineSpec:
    """One regulAS pipeline: transformations, then one model, and the model's grid.

    ``steps`` holds ``(step name, class path after ALIASES, fixed kwargs)``, the model last;
    ``grid`` maps model hyper-parameters to their candidates (regulAS ``_varargs_``).
    """

    name: str
    steps: tuple[tuple[str, str, dict[str, Any]], ...]
    grid: dict[str, list[Any]]

    @classmethod
    def from_config(cls, item: Any, key: str = "pipelines[0]", source: str | None = None) -> PipelineSpec:
        """Validate one regulAS ``pipelines[]`` item and build its spec (ConfigError on bad input).

        ``item`` is a plain mapping or an OmegaConf node (resolved here).
        """
        if OmegaConf.is_config(item):
            item = OmegaConf.to_container(item, resolve=True)
        if not isinstance(item, dict):
            raise ConfigError(f"a pipeline must be a mapping with 'model' (and optional 'transformations'), got {item!r}", key=key, source=source)
        unknown = sorted(set(item) - {"transformations", "model"})
        if unknown:
            raise ConfigError(
                f"unknown pipeline keys {unknown}; allowed: transformations, model", key=f"{key}.{unknown[0]}", source=source
            )
        model = item.get("model")
        if not isinstance(model, dict) or len(model) != 1:
            count = len(model) if isinstance(model, dict) else 0
            raise ConfigError(
                f"a pipeline needs exactly one model, found {count} (expected model: {{Name: {{_target_: ...}}}})",
                key=f"{key}.model",
                source=source,
            )
        transformations = item.get("transformations") or {}
        if not isinstance(transformations, dict):
            raise ConfigError(
                f"transformations must be a mapping of step name to {{_target_: ...}} or null, got {transformations!r}",
                key=f"{key}.transformations",
                source=source,
            )
        steps = []
        for name, node in transformations.items():
            step, _, _ = _step_from_config(name, node, key=f"{key}.transformations.{name}", source=source, role="transformation")
            steps.append(step)
        (model_name, model_node), = model.items()
        if model_name in transformations:
            raise ConfigError(f"step name {model_name!r} is used twice", key=f"{key}.model.{model_name}", source=source)
        step, model_cls, grid = _step_from_config(model_name, model_node, key=f"{key}.model.{model_name}", source=source, role="model")
        steps.append(step)
        spec = cls(name="+".join(s[0] for s in steps), steps=tuple(steps), grid=grid)
        if model_cls is not None:  # the classes were imported: their own checks of the values
            spec._check_values(key=key, source=source)
        return spec

    def _check_values(self, *, key: str, source: str | None) -> None:
        """Let scikit-learn validate every fixed value and every grid value before any fit."""
        model_key = f"{key}.model.{self.model_name}"
        singles: list[dict[str, Any]] = [{p: v} for p, values in self.grid.items() for v in values]
        for params in [{}, *singles]:
            for name, est in self.build(params).steps:
                if name == self.model_name:
                    where = f"{model_key}._varargs_.{next(iter(params))}" if params else model_key
                elif params:
                    continue  # transformations do not change with the grid: checked once
                else:
                    where = f"{key}.transformations.{name}"
                validate = getattr(est, "_validate_params", None)
                try:
                    if callable(validate):
                        validate()
                except (ValueError, TypeError) as exc:
                    raise ConfigError(f"invalid value: {exc}", key=where, source=source) from None

    @property
    def model_name(self) -> str:
        return self.steps[-1][0]

    @property
    def identity(self) -> str:
        """Stable hash of every step (transformations included) with its arguments, and the grid."""
        return stable_hash({"steps": [list(s) for s in self.steps], "grid": self.grid})

    def candidates(self) -> list[dict[str, Any]]:
        """Hyper-parameter candidates in scikit-learn's ParameterGrid order (GridSearchCV's order)."""
        from sklearn.model_selection import ParameterGrid

        return list(ParameterGrid(self.grid)) if self.grid else [{}]

    def classes(self) -> list[type]:
        return [locate(path) for _, path, _ in self.steps]

    def build(self, params: dict[str, Any] | None = None, *, random_state: int | None = None) -> Pipeline:
        """A fresh scikit-learn Pipeline; ``params`` (one candidate) set on the model.

        ``random_state`` fills the ``random_state`` of steps that have one left at None, so
        randomised estimators are reproducible from the study's root seed.
        """
        from sklearn.pipeline import Pipeline

        estimators = []
        for (name, _, kwargs), cls in zip(self.steps, self.classes()):
            est = cls(**kwargs)
            if random_state is not None and "random_state" in _param_names(cls) and getattr(est, "random_state", 0) is None:
                est.set_params(random_state=random_state)
            estimators.append((name, est))
        if params:
            estimators[-1][1].set_params(**params)
        return Pipeline(estimators)

    def describe(self, params: dict[str, Any] | None = None, *, random_state: int | None = None) -> list[dict[str, Any]]:
        """Per step: name, class path, package version and get_params() (JSON-safe) of :meth:`build`."""
        pipe = self.build(params, random_state=random_state)
        out = []
        for (name, est), (_, path, _) in zip(pipe.steps, self.steps):
            cls: type = type(est)
            out.append(
                {
                    "name": name,
                    "class": path,
                    "version": package_version(cls),
                    "params": _json_safe(est.get_params(deep=False)),
                }
            )
        return out

    def batched(self) -> bool:
        """True when the ridge-family fast path applies (one SVD per split for all events).

        Model: Ridge (exact solver, positive=False, alpha > 0, grid over alpha only),
        RidgeCV (leave-one-out: cv=None, scoring=None, alphas > 0, no grid) or
        LinearRegression (positive=False, no grid); transformations: per-feature affine scalers.
        """
        from sklearn.linear_model import LinearRegression, Ridge, RidgeCV

        classes = self.classes()
        if any(not issubclass_exact(c, affine_scalers()) for c in classes[:-1]):
            return False
        model = classes[-1]
        kwargs = self.steps[-1][2]
        if model is Ridge:
            est = Ridge(**kwargs)
            if est.positive or est.solver not in EXACT_RIDGE_SOLVERS or set(self.grid) - {"alpha"}:
                return False
            alphas = self.grid.get("alpha", [est.alpha])
            return all(_positive_scalar(a) for a in alphas)
        if model is RidgeCV:
            est = RidgeCV(**kwargs)
            # Only the efficient leave-one-out mode with its own MSE; cv=k / scorers go generic.
            return est.cv is None and est.scoring is None and not self.grid and all(
                _positive_scalar(a) for a in np.ravel(est.alphas)
            )
        if model is LinearRegression:
            return not LinearRegression(**kwargs).positive and not self.grid
        return False


def issubclass_exact(cls: type, allowed: tuple[type, ...]) -> bool:
    """``cls`` is one of ``allowed`` itself (a subclass may change fit, so it does not count)."""
    return any(cls is a for a in allowed)


def _positive_scalar(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and float(value) > 0
