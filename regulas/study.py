"""A study, assembled: config + workload + cluster + store. The one module that knows every part.

:func:`load_study` reads and validates a config (every problem raises one
:class:`~regulas.core.errors.ConfigError` before any work); :func:`run` runs or resumes it
on its cluster and writes its reports; :func:`write_reports` reports on a finished study
again, from its config or from its store root alone.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from regulas import __version__, datasets
from regulas.core.config.loader import env_kept, load_config_traced, to_container
from regulas.core.config.regulas_format import apply_top_keys
from regulas.core.config.sections import ExecutionSection, StoreSection, StudySection
from regulas.core.config.targets import allowing, check_targets
from regulas.core.config.typed import accepts_key, build
from regulas.core.errors import ConfigError, StoreError, did_you_mean
from regulas.core.registry import workload_class, workload_names
from regulas.core.report import ReportContext
from regulas.core.spec import CORE_SECTIONS, StudySpec
from regulas.core.workload import Workload
from regulas.execution.cluster import backend_class, backend_names, cluster_config
from regulas.store.root import StoreLayout

# the engine, the reports and the database (Dask, matplotlib, SQLAlchemy, Zarr) are imported
# where a study runs or reports: loading and validating a config (show-config) needs none
if TYPE_CHECKING:
    from regulas.execution.progress import RunProgress
    from regulas.execution.runner import RunSummary
    from regulas.reports import ReportRun

# ``${dataset:gse114922/psi.tsv.gz}`` in a config: a file shipped with regulas, by absolute path
# (register_resolver since omegaconf 2.4, which deprecates register_new_resolver)
getattr(OmegaConf, "register_resolver", OmegaConf.register_new_resolver)("dataset", datasets.path, replace=True)


#: root seeds are stored in SQLite INTEGER columns (signed 64-bit)
MAX_SEED = 2**63


def _workload_defaults(merged: DictConfig) -> dict[str, Any]:
    """The chosen workload's dataclass defaults, as the base of its config section."""
    name = OmegaConf.select(merged, "study.workload", throw_on_missing=False, default=None)
    if not isinstance(name, str) or name not in workload_names():
        return {}  # reported with the allowed names during validation
    cls = workload_class(name)
    defaults = {
        f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
        for f in dataclasses.fields(cls.config_class)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    }
    return {cls.section: defaults}


def _section_classes(merged: DictConfig) -> tuple[dict[str, type | None], type[Workload] | None]:
    """Top-level key -> the dataclass typing it (None: untyped), for the workload and
    cluster backend the merged config names; and the workload class."""
    def named(key: str, names: list[str]) -> str | None:
        try:
            value = OmegaConf.select(merged, key, throw_on_missing=False, default=None)
        except OmegaConfBaseException:
            return None
        return value if isinstance(value, str) and value in names else None

    sections: dict[str, type | None] = {"seed": None, "study": StudySection, "store": StoreSection, "execution": ExecutionSection}
    backend = named("cluster.backend", backend_names())
    if backend is not None:
        sections["cluster"] = backend_class(backend).config_class
    workload = named("study.workload", workload_names())
    cls = workload_class(workload) if workload is not None else None
    if cls is not None:
        sections.update({k: None for k in cls.extra_top_keys})
        sections[cls.section] = cls.config_class
    return sections, cls


def _can_add(merged: DictConfig, key: str) -> bool:
    """Whether ``+key=...`` adds a key validation accepts: one inside a section field typed as
    an open mapping (``dict``, ``Any``), never a new key of a typed section."""
    head, _, rest = key.partition(".")
    sections, _ = _section_classes(merged)
    if head not in sections:
        return False  # an unknown top-level key is refused
    typed = sections[head]
    return typed is None or not rest or accepts_key(typed, rest)


def load_study(path: str | Path, overrides: Sequence[str] = ()) -> StudySpec:
    """Load and validate a study config; every problem raises one :class:`ConfigError`,
    blamed on the command-line override or the ``file:line`` that set the key at fault."""
    source = str(path)
    merged, origins, kept = load_config_traced(path, overrides, section_defaults=_workload_defaults, can_add=_can_add)
    resolved = to_container(merged)
    try:
        spec = _validate(copy.deepcopy(resolved), source)
    except ConfigError as exc:
        raise origins.blame(exc, source) from exc.__cause__
    # the stored config keeps ${oc.env:...} as written; the hash is of the resolved values
    return dataclasses.replace(spec, stored_tree=env_kept(spec.tree, resolved, kept))


def _validate(tree: dict[str, Any], source: str) -> StudySpec:
    apply_top_keys(tree, source)
    study = build(StudySection, tree.get("study"), "study", source=source)
    workload_cls = workload_class(study.workload)  # errors without a source: blamed by load_study
    cluster = cluster_config(tree.get("cluster"), source=source)
    allowed = (*CORE_SECTIONS, *workload_cls.extra_top_keys, workload_cls.section)
    for key in tree:
        if key not in allowed:
            hint = did_you_mean(key, allowed)
            raise ConfigError(
                f"unknown top-level key (given: {tree[key]!r}); " + (f"{hint} " if hint else "")
                + f"allowed for workload {study.workload!r}: {', '.join(allowed)}",
                key=str(key),
                source=source,
            )
    seed = tree.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"wrong type (given: {seed!r}); expected a non-negative integer", key="seed", source=source)
    if seed >= MAX_SEED:  # stored in SQLite, whose integers are signed 64-bit
        raise ConfigError(f"out of range (given: {seed}); expected a seed below 2**63 = {MAX_SEED}", key="seed", source=source)
    execution = build(ExecutionSection, tree.get("execution"), "execution", source=source)
    # every _target_ against the allow-list, before any is imported or called
    check_targets(tree, source=source, allow=execution.allow_targets)
    with allowing(execution.allow_targets):  # kept for the workload's own locate/instantiate calls
        workload_cfg: Any = build(workload_cls.config_class, tree.get(workload_cls.section), workload_cls.section, source=source)
    return StudySpec(
        source=source,
        tree=tree,
        seed=seed,
        study=study,
        store=build(StoreSection, tree.get("store"), "store", source=source),
        execution=execution,
        cluster=cluster,
        workload=workload_cls(workload_cfg),
    )


def layout_of(spec: StudySpec) -> StoreLayout:
    return StoreLayout(spec.store.root_path, db=spec.store.db, arrays=spec.store.arrays)


def report_dir(root: Path, study: str) -> Path:
    """Where a study's reports and figures go: ``<store.root>/reports/<study>``."""
    return root / "reports" / study


def write_reports(
    workload: Workload,
    layout: StoreLayout,
    study: str,
    out_dir: Path | None = None,
    *,
    group: Sequence[str] = (),
    reuse: bool = False,
) -> ReportRun:
    """Run the workload's reports on finished study ``study`` of the store at ``layout``,
    writing them to ``out_dir`` (default :func:`report_dir`); refused when one of its arrays
    fails its chunk digests (:func:`check_study_arrays`).

    ``group``: report on these finished studies together, under the name ``study`` (the
    studies of one regulAS experiment name, :func:`study_group`); empty: ``study`` alone.
    ``reuse``: keep the reports already in ``out_dir`` when they were written for the same
    results and the same config (a rerun that ran nothing new), instead of drawing them again.
    """
    from regulas.reports import run_reports
    from regulas.store.arrays import StudyArrays
    from regulas.store.database import open_read
    from regulas.store.root import check_writable
    from regulas.store.status import require_finished_study
    from regulas.store.verify import check_study_arrays, is_checksum_error

    members = list(group) or [study]
    ids = {}
    for name in members:
        check_study_arrays(layout, name)
        ids[name] = require_finished_study(layout.db_path, name)
    stamp = _reports_stamp(workload, layout, list(ids.values()))
    out_dir = out_dir if out_dir is not None else report_dir(layout.root, study)
    check_writable(out_dir, "the report folder", "write the reports elsewhere with regulas report STORE_ROOT --out DIR")
    engine = open_read(layout.db_path)
    try:
        ctx = ReportContext(
            study=study,
            study_id=ids[members[0]],
            db=engine,
            db_path=layout.db_path,
            arrays=StudyArrays(layout.arrays_path, members[0]),
            out_dir=out_dir,
            group=ids if group else {},
        )
        try:
            return run_reports(workload.reports(), ctx, stamp=stamp, reuse=reuse)
        except ValueError as exc:
            if not is_checksum_error(exc):
                raise
            raise StoreError(
                f"study {study!r}: a chunk of its arrays fails its checksum ({exc}); run `regulas verify "
                f"{layout.root}` to find it and set its task back to pending, then `regulas run` to recompute it"
            ) from exc
    finally:
        engine.dispose()


def _stored_studies(db_path: Path) -> list[Any]:
    """(name, workload, config_yaml) of every study in the database, oldest first."""
    from regulas.store.database import open_read

    engine = open_read(db_path)
    try:
        with engine.connect() as conn:
            return list(conn.exec_driver_sql("SELECT name, workload, config_yaml FROM study ORDER BY id").all())
    finally:
        engine.dispose()


def study_group(spec: StudySpec) -> list[str]:
    """The stored studies a report-only config with ``study.name_from_data`` reports on: those
    of its workload whose stored config has the same ``name`` in the workload's section (a
    regulAS experiment name), or which are named so, oldest first."""
    layout = layout_of(spec)
    section = spec.workload.section
    rows = _stored_studies(layout.db_path)
    found = []
    for name, workload, config_yaml in rows:
        try:
            tree = yaml.safe_load(config_yaml)
        except yaml.YAMLError:
            tree = None
        node = tree.get(section) if isinstance(tree, dict) else None
        grouped = isinstance(node, dict) and node.get("name") == spec.study.name
        if workload == spec.study.workload and (grouped or name == spec.study.name):
            found.append(str(name))
    if not found:
        names = ", ".join(repr(r[0]) for r in rows) or "none"
        raise StoreError(
            f"no {spec.study.workload} study of experiment {spec.study.name!r} in {layout.db_path} (studies there: "
            f"{names}); expected the store.root its experiment ran into"
        )
    return found


def write_reports_of(spec: StudySpec, out_dir: Path | None = None) -> tuple[str, ReportRun, Path]:
    """Report on the study a config names (its name, reports and report folder): a report-only
    regulAS file (``study.name_from_data``) on every stored study of its experiment name,
    any other config on its own study (named after its data when the config says so)."""
    layout = layout_of(spec)
    group: list[str] = []
    if spec.workload.reports_only and spec.study.name_from_data:
        group = study_group(spec)
    else:
        spec = spec.named_by_data()
    name = spec.study.name
    folder = out_dir or report_dir(layout.root, name)
    return name, write_reports(spec.workload, layout, name, folder, group=group), folder


def _reports_stamp(workload: Workload, layout: StoreLayout, study_ids: list[int]) -> str:
    """What reports depend on: the results of the studies they cover, the workload config
    (reports included) and the version of regulas that draws them."""
    from regulas.store.status import results_stamp

    digest = hashlib.sha256()
    for study_id in study_ids:
        digest.update(results_stamp(layout.db_path, study_id).encode())
    digest.update(json.dumps(dataclasses.asdict(workload.config), sort_keys=True, default=str).encode())
    digest.update(__version__.encode())
    return digest.hexdigest()


@dataclass
class StudyRun:
    """What :func:`run` did: the run's summary and, when every task is done, the reports."""

    summary: RunSummary
    reports: ReportRun | None


def run(spec: StudySpec, *, progress: RunProgress | None = None, restart: bool = False) -> StudyRun:
    """Run (or resume) a study to the end, then write its reports if every task is done.

    ``restart``: discard the study's stored results first and run it from the start.
    """
    from regulas.execution.runner import run_study

    summary = run_study(spec, progress=progress, restart=restart)
    reports = write_reports(spec.workload, layout_of(spec), summary.study, reuse=True) if summary.ok else None
    return StudyRun(summary, reports)


def load_stored_study(root: Path, study: str | None = None) -> tuple[Workload, StoreLayout, str]:
    """The workload (built from the config stored with the study), layout and name of a study
    in the store at ``root``; ``study`` may be omitted when the store holds one."""
    from regulas.store.root import find_layout

    layout = find_layout(root)
    rows = _stored_studies(layout.db_path)
    names = [r[0] for r in rows]
    if study is None and len(rows) != 1:
        raise StoreError(
            f"{layout.db_path} holds {len(rows)} studies ({', '.join(map(repr, names)) or 'none'}); name one with --study"
        )
    row = rows[0] if study is None else next((r for r in rows if r[0] == study), None)
    if row is None:
        raise StoreError(f"no study named {study!r} in {layout.db_path} (studies there: {', '.join(map(repr, names))})")
    name, workload_name, config_yaml = row
    cls = workload_class(workload_name)
    tree = yaml.safe_load(config_yaml) or {}
    stored_source = f"the config stored with study {name!r}"
    execution = tree.get("execution")
    allow = execution.get("allow_targets") if isinstance(execution, dict) else None
    allow = [str(p) for p in allow] if isinstance(allow, list) else []
    check_targets(tree.get(cls.section), source=stored_source, allow=allow)
    with allowing(allow):
        config: Any = build(cls.config_class, tree.get(cls.section), cls.section, source=stored_source)
    return cls(config), layout, str(name)


__all__ = [
    "StudyRun", "StudySpec", "layout_of", "load_stored_study", "load_study", "report_dir", "run", "study_group",
    "write_reports", "write_reports_of",
]
