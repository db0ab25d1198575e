"""A validated study: the resolved config tree, its typed sections and the workload object.

Built by :func:`regulas.study.load_study` (the one place that knows every part); the engine
runs it without knowing which workload or backend it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from regulas.core.config.loader import to_yaml
from regulas.core.config.sections import ClusterConfigBase, ExecutionSection, StoreSection, StudySection
from regulas.core.hashing import stable_hash
from regulas.core.workload import Workload

#: top-level sections every study has, besides its workload's
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
