"""A validated study: the resolved config tree, its typed sections and the workload object.

Built by :func:`regulas.study.load_study` (the one place that knows every part); the engine
runs it without knowing which workload or backend it holds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from regulas.core.config.loader import to_yaml
from regulas.core.config.sections import ClusterConfigBase, ExecutionSection, StoreSection, StudySection
from regulas.core.errors import ConfigError
from regulas.core.hashing import stable_hash
from regulas.core.workload import Workload

#: top-level sections every study has, besides its workload's
CORE_SECTIONS = ("seed", "study", "store", "execution", "cluster")
#: differing keys a changed-config message lists before "and N more"
SHOWN_CHANGES = 4
_ABSENT = object()


def _flatten(value: Any, key: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(v, f"{key}.{k}", out)
    else:
        out[key] = value


def _files(value: Any, out: set[str]) -> None:
    if isinstance(value, dict):
        for v in value.values():
            _files(v, out)
    elif isinstance(value, list):
        for v in value:
            _files(v, out)
    elif isinstance(value, str) and value and "\n" not in value:
        path = Path(value).expanduser()
        try:
            if path.is_file():
                out.add(str(path.resolve()))
        except OSError:  # e.g. a name too long to be a path
            pass


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "(absent)"
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    text = text.removesuffix("\n...").strip()
    return text if len(text) <= 40 else text[:37] + "..."


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
    #: the config to store: :attr:`tree` with ``${oc.env:...}`` values as written (None: ``tree``)
    stored_tree: dict[str, Any] | None = None

    def named_by_data(self) -> StudySpec:
        """This spec with its study named after its data when ``study.name_from_data`` is set
        (else itself): ``<name>-<first hex digits of a digest of the workload's data fingerprint
        and the config hash>``, as regulAS's experiment md5 covers its data and its config.

        So another data set, or a changed result config, is another study of the same name in
        the same store, while a rerun of the same config on the same data resumes its study.
        Reads the data (:meth:`~regulas.core.workload.Workload.check_inputs`), so bad data
        stops here, before the store is touched. The name also goes into the config stored
        with the study; the section's own ``name`` (e.g. regulAS's ``experiment.name``) stays.
        """
        if not self.study.name_from_data:
            return self
        self.workload.check_inputs(self.seed)
        fingerprint = self.workload.data_fingerprint(self.seed)
        if fingerprint is None:
            raise ConfigError(
                f"workload {self.study.workload!r} gives no data fingerprint before it runs, so the study cannot be "
                "named after its data; expected study.name_from_data=false (the study is then named study.name)",
                key="study.name_from_data",
                source=self.source,
            )
        study = self.study.with_data(stable_hash({"data": fingerprint, "config": self.config_hash}, length=64))
        if study is self.study:
            return self

        def renamed(tree: dict[str, Any]) -> dict[str, Any]:
            return {**tree, "study": {**(tree.get("study") or {}), "name": study.name}}

        stored = renamed(self.stored_tree) if self.stored_tree is not None else None
        return dataclasses.replace(self, study=study, tree=renamed(self.tree), stored_tree=stored)

    @property
    def yaml(self) -> str:
        """The config stored with the study: resolved, except ``${oc.env:...}`` (secrets stay out
        of the database; the resolved values still enter :attr:`config_hash`)."""
        return to_yaml(self.stored_tree if self.stored_tree is not None else self.tree)

    @property
    def config_hash(self) -> str:
        """Hash of what determines results: the seed, the workload and its result-relevant keys.

        Store, execution and cluster settings, the description and the workload's
        ``runtime_keys`` (e.g. the demo's ``sleep_s``) may change between runs of a study.
        """
        return stable_hash(
            {"seed": self.seed, "workload": self.study.workload, "config": self.workload.result_config()}, length=64
        )

    def result_keys(self, tree: dict[str, Any]) -> dict[str, Any]:
        """The keys of a config tree that enter :attr:`config_hash`, flattened (``demo.alpha``)."""
        out: dict[str, Any] = {"seed": tree.get("seed"), "study.workload": (tree.get("study") or {}).get("workload")}
        section = tree.get(self.workload.section)
        runtime = set(self.workload.runtime_keys)
        for key, value in (section.items() if isinstance(section, dict) else ()):
            if key not in runtime:
                _flatten(value, f"{self.workload.section}.{key}", out)
        return out

    def describe_change(self, stored_yaml: str) -> str:
        """The result-relevant keys whose values differ from a stored config, ``key old -> new``
        (the first few, then "and N more"); "" when none can be named."""
        try:
            stored = yaml.safe_load(stored_yaml)
        except yaml.YAMLError:
            return ""
        if not isinstance(stored, dict):
            return ""
        old = self.result_keys(stored)
        new = self.result_keys(self.stored_tree if self.stored_tree is not None else self.tree)
        changed = [k for k in sorted(old.keys() | new.keys()) if old.get(k, _ABSENT) != new.get(k, _ABSENT)]
        if not changed:
            return ""
        shown = [f"{k} {_show(old.get(k, _ABSENT))} -> {_show(new.get(k, _ABSENT))}" for k in changed[:SHOWN_CHANGES]]
        more = len(changed) - SHOWN_CHANGES
        return "changed: " + ", ".join(shown) + (f" and {more} more" if more > 0 else "")

    def input_files(self) -> list[str]:
        """The input files the workload's config names: every string value of its section
        (``runtime_keys`` aside) that is an existing file, by absolute path, sorted.

        This covers the typed path fields (``field(metadata={"path": "file"})``, e.g.
        regNet's ``motif_scores``) and the loader nodes of a dataset (``features``,
        ``targets``, ``metadata``, ``rbp_list``, ``path_to_file``) alike, plus the files the
        workload names itself (:meth:`~regulas.core.workload.Workload.input_files`: those of
        a glob or a comma list).
        """
        section = self.tree.get(self.workload.section)
        out: set[str] = set()
        if isinstance(section, dict):
            runtime = set(self.workload.runtime_keys)
            _files({k: v for k, v in section.items() if k not in runtime}, out)
        out.update(str(Path(f).resolve()) for f in self.workload.input_files())
        return sorted(out)
