"""A study config: load, validate the whole tree before any work, build typed sections."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from regulas.config.loader import load_config, to_container, to_yaml
from regulas.config.regulas_format import apply_top_keys
from regulas.config.sections import ExecutionSection, StoreSection, StudySection
from regulas.config.targets import check_targets
from regulas.config.typed import build
from regulas.errors import ConfigError
from regulas.execution.cluster import cluster_config
from regulas.execution.cluster.base import ClusterConfigBase
from regulas.execution.plan import stable_hash
from regulas.studies import WORKLOADS, Workload, workload_class

CORE_SECTIONS = ("seed", "study", "store", "execution", "cluster")


@dataclass(frozen=True)
class StudySpec:
    """A validated study config: the resolved tree plus typed sections and the workload."""

    source: str
    tree: dict[str, Any]
    seed: int
    study: StudySection
    store: StoreSection
    execution: ExecutionSection
    cluster: ClusterConfigBase
    workload: Workload

    @property
    def yaml(self) -> str:
        return to_yaml(self.tree)

    @property
    def config_hash(self) -> str:
        """Hash of what determines results: the seed, the workload and its result-relevant keys.

        Store, execution and cluster settings, the description and the workload's
        ``runtime_keys`` (e.g. the demo's ``sleep_s``) may change between runs of a study.
        """
        return stable_hash(
            {"seed": self.seed, "workload": self.study.workload, "config": self.workload.result_config()}, length=64
        )


def _workload_defaults(merged: DictConfig) -> dict[str, Any]:
    """The chosen workload's dataclass defaults, as the base of its config section."""
    name = OmegaConf.select(merged, "study.workload", throw_on_missing=False, default=None)
    if not isinstance(name, str) or name not in WORKLOADS:
        return {}  # reported with the allowed names during validation
    cls = workload_class(name)
    defaults = {
        f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
        for f in dataclasses.fields(cls.config_class)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    }
    return {cls.section: defaults}


def load_study(path: str | Path, overrides: Sequence[str] = ()) -> StudySpec:
    """Load and validate a study config; every problem raises one :class:`ConfigError`."""
    source = str(path)
    tree = to_container(load_config(path, overrides, section_defaults=_workload_defaults))

    apply_top_keys(tree, source)
    study = build(StudySection, tree.get("study"), "study", source=source)
    try:
        workload_cls = workload_class(study.workload)
        cluster = cluster_config(tree.get("cluster"), source=source)
    except ConfigError as exc:
        if exc.source is not None:
            raise
        raise ConfigError(str(exc), source=source) from exc
    allowed = (*CORE_SECTIONS, *workload_cls.extra_top_keys, workload_cls.section)
    for key in tree:
        if key not in allowed:
            raise ConfigError(
                f"unknown top-level key (given: {tree[key]!r}); allowed for workload "
                f"{study.workload!r}: {', '.join(allowed)}",
                key=str(key),
                source=source,
            )
    seed = tree.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"wrong type (given: {seed!r}); expected a non-negative integer", key="seed", source=source)
    check_targets(tree, source=source)
    workload_cfg: Any = build(workload_cls.config_class, tree.get(workload_cls.section), workload_cls.section, source=source)
    return StudySpec(
        source=source,
        tree=tree,
        seed=seed,
        study=study,
        store=build(StoreSection, tree.get("store"), "store", source=source),
        execution=build(ExecutionSection, tree.get("execution"), "execution", source=source),
        cluster=cluster,
        workload=workload_cls(workload_cfg),
    )


__all__ = ["StudySpec", "load_study"]
