"""The ``reports`` section of a regulAS experiment: validate it and order it by ``_depends_on_``.

regulAS format: a mapping from report name to ``{_target_: class path, _depends_on_:
[names], **kwargs}`` (or null). Everything is checked before any work: the class
resolves (regulAS names through :data:`regulas.core.config.targets.ALIASES`), its arguments
are accepted and valid, dependencies exist without cycles, and each report's needs on
its dependencies hold (e.g. ``sort_by`` names a column one of them produces).

Inside :func:`regulas.core.config.targets.without_importing` (``regulas show-config``) the
report classes are not imported: the section's structure is checked (mappings, ``_target_``
paths by their modules' source, ``_depends_on_`` names, no cycle), the classes' arguments by
``regulas run``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from regulas.core.config.targets import RESERVED, checked_target
from regulas.core.errors import ConfigError

if TYPE_CHECKING:  # the report classes (pandas, and what they import) where reports are built
    from regulas.workloads.splicing.reports.base import SplicingReport

#: a report of the section as read: its class (None: checked without importing it), its
#: dependencies and its node
_Node = tuple[type | None, tuple[str, ...], Mapping[str, Any]]


@dataclass(frozen=True)
class PlannedReport:
    """One report of a validated section: its name, built instance and dependencies."""

    name: str
    key: str
    report: SplicingReport
    depends_on: tuple[str, ...]


def _plain(reports: Any, key: str, source: str | None) -> Any:
    if isinstance(reports, DictConfig):
        try:
            return OmegaConf.to_container(reports, resolve=True)
        except OmegaConfBaseException as exc:
            raise ConfigError(f"cannot resolve interpolation: {exc}", key=key, source=source) from exc
    return reports


def _report_classes() -> str:
    return "regulas.workloads.splicing.reports.ModelPerformanceReport, FeatureRankingReport, ExportCSV (or their regulAS.reports names)"


def _read_node(name: str, node: Any, key: str, source: str | None) -> _Node:
    node_key = f"{key}.{name}"
    if not isinstance(node, Mapping):
        raise ConfigError(
            f"expected a mapping with _target_ and the report's arguments, got {node!r}", key=node_key, source=source
        )
    target = node.get("_target_")
    if not isinstance(target, str):
        raise ConfigError(
            f"missing _target_ (expected one of {_report_classes()})", key=f"{node_key}._target_", source=source
        )
    cls = checked_target(target, key=f"{node_key}._target_", source=source)
    if cls is not None:
        from regulas.workloads.splicing.reports.base import SplicingReport

        if not (isinstance(cls, type) and issubclass(cls, SplicingReport)):
            raise ConfigError(
                f"{target!r} is not a report class; expected one of {_report_classes()}",
                key=f"{node_key}._target_",
                source=source,
            )
    depends = node.get("_depends_on_") or []
    if isinstance(depends, str):
        depends = [depends]
    if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
        raise ConfigError(
            f"expected a list of report names, got {node.get('_depends_on_')!r}",
            key=f"{node_key}._depends_on_",
            source=source,
        )
    return cls, tuple(dict.fromkeys(depends)), node


def _build(name: str, cls: type, node: Mapping[str, Any], key: str, source: str | None) -> SplicingReport:
    from regulas.workloads.splicing.reports.base import ReportParamError

    node_key = f"{key}.{name}"
    kwargs = {k: v for k, v in node.items() if k not in RESERVED}
    params = inspect.signature(cls).parameters
    for k in kwargs:
        if k not in params:
            raise ConfigError(
                f"{cls.__name__} has no argument {k!r}; allowed: {', '.join(params)}",
                key=f"{node_key}.{k}",
                source=source,
            )
    missing = [p.name for p in params.values() if p.default is inspect.Parameter.empty and p.name not in kwargs]
    if missing:
        raise ConfigError(
            f"{cls.__name__} needs argument(s) {', '.join(missing)}", key=f"{node_key}.{missing[0]}", source=source
        )
    try:
        report: SplicingReport = cls(**kwargs)
    except ReportParamError as exc:
        raise ConfigError(exc.detail, key=f"{node_key}.{exc.param}", source=source) from exc
    return report


def _order(depends: Mapping[str, tuple[str, ...]], key: str, source: str | None) -> list[str]:
    """Topological order of the reports (config order among independent ones); refuse cycles."""
    for name, deps in depends.items():
        for dep in deps:
            if dep == name:
                raise ConfigError("a report cannot depend on itself", key=f"{key}.{name}._depends_on_", source=source)
            if dep not in depends:
                raise ConfigError(
                    f"depends on unknown report {dep!r}; reports defined: {', '.join(depends)}",
                    key=f"{key}.{name}._depends_on_",
                    source=source,
                )
    order: list[str] = []
    state: dict[str, str] = {}  # name -> "visiting" | "done"

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = path[path.index(name) :] + [name]
            raise ConfigError(
                f"reports depend on each other in a cycle: {' -> '.join(cycle)}",
                key=f"{key}.{cycle[0]}._depends_on_",
                source=source,
            )
        state[name] = "visiting"
        for dep in depends[name]:
            visit(dep, [*path, name])
        state[name] = "done"
        order.append(name)

    for name in depends:
        visit(name, [])
    return order


def _read(reports: Mapping[str, Any] | None, key: str, source: str | None) -> dict[str, _Node]:
    reports = _plain(reports, key, source)
    if reports is None:
        return {}
    if not isinstance(reports, Mapping):
        raise ConfigError(
            f"expected null or a mapping from report name to {{_target_: ..., ...}}, got {reports!r}",
            key=key,
            source=source,
        )
    return {str(name): _read_node(str(name), node, key, source) for name, node in reports.items()}


def _plan(nodes: Mapping[str, _Node], key: str, source: str | None) -> list[PlannedReport]:
    from regulas.workloads.splicing.reports.base import ReportParamError

    built: dict[str, tuple[SplicingReport, tuple[str, ...]]] = {}
    for name, (cls, deps, node) in nodes.items():
        if cls is None:
            raise ConfigError("report classes are needed to plan reports; they were checked without importing them", key=key)
        built[name] = (_build(name, cls, node, key, source), deps)
    order = _order({name: deps for name, (_, deps) in built.items()}, key, source)
    for name in order:
        report, deps = built[name]
        try:
            report.check_inputs({d: built[d][0].output_columns() for d in deps})
        except ReportParamError as exc:
            raise ConfigError(exc.detail, key=f"{key}.{name}.{exc.param}", source=source) from exc
    planned = []
    for name in order:
        report, deps = built[name]
        report.name, report.depends_on, report.key = name, deps, f"{key}.{name}"
        planned.append(PlannedReport(name, f"{key}.{name}", report, deps))
    return planned


def plan_reports(
    reports: Mapping[str, Any] | None, *, key: str = "experiment.reports", source: str | None = None
) -> list[PlannedReport]:
    """Validate a ``reports`` section and return its reports in dependency order."""
    return _plan(_read(reports, key, source), key, source)


def check_reports(
    reports: Mapping[str, Any] | None, *, key: str = "experiment.reports", source: str | None = None
) -> None:
    """Raise one :class:`ConfigError` naming the key if the ``reports`` section cannot run
    (only its structure when its classes were checked without importing them)."""
    nodes = _read(reports, key, source)
    if not nodes:
        return
    if any(cls is None for cls, _, _ in nodes.values()):
        _order({name: deps for name, (_, deps, _) in nodes.items()}, key, source)
        return
    _plan(nodes, key, source)
