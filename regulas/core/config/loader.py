"""Load a study config: defaults, config groups, the file itself, command-line overrides.

Merge order (later wins):

1. ``regulas/config/defaults.yaml`` (the one commented defaults file);
2. the config groups the file selects in its ``defaults:`` list, e.g.
   ``- cluster: local`` reads ``cluster/local.yaml`` (see :func:`group_search_path`);
   a group *replaces* the whole section, so a backend never inherits another
   backend's keys;
3. the file's own keys;
4. overrides ``a.b=value`` (the key must exist), ``+a.b=value`` (adds a key) and
   ``group=option`` (selects another group file, e.g. ``cluster=slurm``).

An error about a key names what set it: the override on the command line, or the
``file:line`` of the key in the config or group file (see :mod:`.origins`).

Values are parsed as YAML scalars or flow collections (``[1, 2]``). ``???`` marks a
required value and ``${a.b}`` interpolates; both are checked by :func:`load_config`,
so every error surfaces before any work starts.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf, ValueNode
from omegaconf.errors import OmegaConfBaseException

from regulas.core.config import yaml_safe
from regulas.core.config.origins import Origins, Where, key_lines, override_source
from regulas.core.config.regulas_format import experiment_override_key, is_regulas_experiment, wrap_experiment
from regulas.core.config.yaml_safe import YamlHazard
from regulas.core.errors import ConfigError, did_you_mean

DEFAULTS_FILE = Path(__file__).with_name("defaults.yaml")
GROUPS = ("cluster", "store")


def _load_yaml(path: Path) -> tuple[dict[str, Any], str]:
    """A YAML file's top-level mapping and its text."""
    if not path.is_file():
        raise ConfigError("config file not found (expected a YAML file)", source=str(path))
    text = path.read_text()
    try:
        data = yaml_safe.load(text)
    except YamlHazard as exc:
        first, *rest = exc.lines
        if rest:  # both places: ``file:12 and file:15: duplicate key 'alpha' ...``
            raise ConfigError(exc.message, source=f"{path}:{first} and {path}", line=rest[-1]) from exc
        raise ConfigError(exc.message, source=str(path), line=first) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", source=str(path)) from exc
    if data is None:
        return {}, text
    if not isinstance(data, dict):
        raise ConfigError(
            f"the top level must be a mapping of keys, got a {type(data).__name__}", source=str(path)
        )
    return data, text


def _read_yaml(path: Path) -> dict[str, Any]:
    return _load_yaml(path)[0]


#: the configs/ folder of a source checkout (editable install), searched last
SHIPPED_CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def group_search_path(config_path: Path) -> list[Path]:
    """Folders searched for ``<group>/<option>.yaml``, first match wins.

    The config's folder and its parents, then the folders of ``$REGULAS_CONFIG_PATH``
    (``:``-separated), then the ``configs/`` folder shipped with a source checkout.
    """
    folder = config_path.resolve().parent
    extra = [Path(p) for p in os.environ.get("REGULAS_CONFIG_PATH", "").split(os.pathsep) if p]
    return [folder, *folder.parents, *extra, SHIPPED_CONFIGS]


def _find_group_file(group: str, option: str, search: list[Path], where: Where) -> Path:
    for folder in search:
        candidate = folder / group / f"{option}.yaml"
        if candidate.is_file():
            return candidate
    options = sorted(
        {p.stem for folder in search if (folder / group).is_dir() for p in (folder / group).glob("*.yaml")}
    )
    allowed = ", ".join(options) if options else f"none found: no '{group}/' folder beside or above the config"
    hint = did_you_mean(option, options)
    raise ConfigError(
        f"no config group file {group}/{option}.yaml (given: {group}={option}); "
        + (f"{hint} " if hint else "")
        + f"available: {allowed}",
        key=group,
        source=where[0],
        line=where[1],
    )


def _parse_defaults_list(raw: Any, source: str, lines: dict[str, int]) -> dict[str, tuple[str, Where]]:
    """The groups a file's ``defaults:`` list selects: group -> (option, where it is selected)."""
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise ConfigError(
            "'defaults' must be a list such as [{cluster: local}, _self_]",
            key="defaults",
            source=source,
            line=lines.get("defaults"),
        )
    selected: dict[str, tuple[str, Where]] = {}
    for i, item in enumerate(raw):
        line = lines.get(f"defaults[{i}]", lines.get("defaults"))
        if item == "_self_":
            continue  # the file's own keys are always merged after its groups
        if not (isinstance(item, dict) and len(item) == 1):
            raise ConfigError(
                f"each 'defaults' entry is '_self_' or one 'group: option' pair, got {item!r}",
                key="defaults",
                source=source,
                line=line,
            )
        ((group, option),) = item.items()
        if group not in GROUPS:
            hint = did_you_mean(group, GROUPS)
            raise ConfigError(
                f"unknown config group {group!r}; " + (f"{hint} " if hint else "") + f"allowed groups: {', '.join(GROUPS)}",
                key="defaults",
                source=source,
                line=line,
            )
        selected[group] = (str(option), (source, line))
    return selected


def _parse_value(text: str, item: str) -> Any:
    try:
        return yaml_safe.load(text) if text != "" else ""
    except YamlHazard as exc:
        raise ConfigError(exc.message, source=override_source(item)) from exc
    except yaml.YAMLError:
        return text


def _split_override(item: str) -> tuple[bool, str, Any]:
    """``+a.b=1`` -> (True, "a.b", 1)."""
    add = item.startswith("+")
    body = item[1:] if add else item
    key, sep, value = body.partition("=")
    if not sep or not key or any(c.isspace() for c in key):
        raise ConfigError(
            f"override {item!r} is not of the form key=value, +key=value or group=option",
            source="command line",
        )
    return add, key, _parse_value(value, item)


SectionDefaults = Callable[[DictConfig], dict[str, Any]]
#: ``can_add(merged, key)``: whether ``+key=value`` may add ``key`` (its section accepts new keys)
CanAdd = Callable[[DictConfig, str], bool]


def load_config(
    path: str | Path, overrides: Sequence[str] = (), section_defaults: SectionDefaults | None = None
) -> DictConfig:
    """Read, merge and resolve a study config; raise :class:`ConfigError` on any problem.

    ``section_defaults(merged)`` may return defaults for sections that depend on the
    merged config (a workload's own keys); they go under the file's keys, before the
    overrides, so ``demo.sleep_s=1`` works without ``+`` and ``show-config`` lists them.
    """
    return load_config_traced(path, overrides, section_defaults)[0]


def load_config_traced(
    path: str | Path,
    overrides: Sequence[str] = (),
    section_defaults: SectionDefaults | None = None,
    can_add: CanAdd | None = None,
) -> tuple[DictConfig, Origins, dict[str, Any]]:
    """:func:`load_config`, plus where each key was set (:class:`Origins`): errors about a
    key blame the override or the ``file:line`` that set it; and the config to store
    (:func:`env_kept`: resolved, but with ``${oc.env:...}`` left as written).

    ``can_add(merged, key)`` tells whether adding ``key`` with ``+`` is legal; an unknown
    key in an override is only answered with the ``+`` spelling where it is.
    """
    config_path = Path(path)
    source = str(config_path)
    origins = Origins()
    body, text = _load_yaml(config_path)
    lines = key_lines(text)
    groups = _parse_defaults_list(body.pop("defaults", None), source, lines)
    parsed = [(*_split_override(item), item) for item in overrides]
    rename = None
    if is_regulas_experiment(body):
        body = wrap_experiment(body)
        parsed = [(add, experiment_override_key(key), value, item) for add, key, value, item in parsed]
        if not isinstance(body.get("experiment"), dict) or "experiment" not in lines:
            rename = experiment_override_key

    search = group_search_path(config_path)
    plain: list[tuple[bool, str, Any, str]] = []
    for add, key, value, item in parsed:
        if key in GROUPS and not add and isinstance(value, str):
            groups[key] = (value, (override_source(item), None))
        else:
            plain.append((add, key, value, item))

    merged = OmegaConf.create(_read_yaml(DEFAULTS_FILE))  # packaged defaults: blamed on the config file
    for group, (option, where) in groups.items():
        group_file = _find_group_file(group, option, search, where)
        group_body, group_text = _load_yaml(group_file)
        merged[group] = OmegaConf.create(group_body)
        origins.add_file(str(group_file), group_text, prefix=group)
    try:
        merged = _merge(merged, OmegaConf.create(body))
    except OmegaConfBaseException as exc:
        raise ConfigError(f"cannot merge over the defaults: {exc}", source=source) from exc
    origins.add_file(source, text, rename=rename)
    if section_defaults is not None:
        extra = section_defaults(merged)
        if extra:
            merged = _merge(OmegaConf.create(extra), merged)

    for add, key, value, item in plain:
        _apply_override(merged, key, value, add, item, can_add)
        origins.add_override(key, item)

    try:
        _check_missing(merged, "", source)
        kept = _keep_env(merged)
        try:
            OmegaConf.resolve(merged)
            OmegaConf.resolve(kept)
        except OmegaConfBaseException as exc:
            raise ConfigError(
                f"cannot resolve interpolation: {exc}", key=getattr(exc, "full_key", None), source=source
            ) from exc
    except ConfigError as exc:
        raise origins.blame(exc, source) from exc.__cause__
    return merged, origins, _restore_env(to_container(kept))


# ``${oc.env:NAME}`` stays unresolved in the config a study stores (secrets such as tokens
# or passwords must not reach the database), while the resolved value is what runs and
# what the study's hash sees. A copy of the config is resolved with oc.env swapped for
# this resolver, which leaves a marker; the markers become ``${oc.env:...}`` again.
_KEEP_ENV = "regulas_keep_env"
_OPEN, _SEP, _CLOSE = "\ue000", "\ue001", "\ue002"
_MARKER = re.compile(f"{_OPEN}([^{_SEP}{_CLOSE}]*)(?:{_SEP}([^{_CLOSE}]*))?{_CLOSE}")
_NO_DEFAULT = object()


def _env_marker(name: str, default: Any = _NO_DEFAULT) -> str:
    if default is _NO_DEFAULT:
        return f"{_OPEN}{name}{_CLOSE}"
    return f"{_OPEN}{name}{_SEP}{'null' if default is None else default}{_CLOSE}"


getattr(OmegaConf, "register_resolver", OmegaConf.register_new_resolver)(_KEEP_ENV, _env_marker, replace=True)


def _keep_env(cfg: DictConfig) -> DictConfig:
    """A copy of ``cfg`` (unresolved) in which ``${oc.env:...}`` leaves a marker instead."""
    kept = copy.deepcopy(cfg)

    def walk(node: DictConfig | ListConfig) -> None:
        keys: list[Any] = list(node.keys()) if isinstance(node, DictConfig) else list(range(len(node)))
        for k in keys:
            child = node._get_node(k)  # noqa: SLF001 - walk without resolving interpolations
            if isinstance(child, (DictConfig, ListConfig)):
                walk(child)
                continue
            raw = child._value() if isinstance(child, ValueNode) else None  # noqa: SLF001
            if isinstance(raw, str) and "oc.env:" in raw:
                node[k] = raw.replace("${oc.env:", "${" + _KEEP_ENV + ":")

    walk(kept)
    return kept


def _restore_env(value: Any) -> Any:
    if isinstance(value, str):
        return _MARKER.sub(lambda m: "${oc.env:" + m[1] + ("," + m[2] if m[2] is not None else "") + "}", value)
    if isinstance(value, dict):
        return {k: _restore_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore_env(v) for v in value]
    return value


def env_kept(tree: Any, resolved: Any, kept: Any) -> Any:
    """``tree`` (a validated copy of ``resolved``) with each value that differs in ``kept``
    (the config from :func:`load_config_traced` that keeps ``${oc.env:...}``) taken from there."""
    if isinstance(tree, dict) and isinstance(resolved, dict) and isinstance(kept, dict):
        return {
            k: env_kept(v, resolved[k], kept[k]) if k in resolved and k in kept else v for k, v in tree.items()
        }
    if isinstance(tree, list) and isinstance(resolved, list) and isinstance(kept, list) and len(resolved) == len(kept) == len(tree):
        return [env_kept(t, r, k) for t, r, k in zip(tree, resolved, kept)]
    if isinstance(kept, str) and kept != resolved and "${oc.env:" in kept:
        return kept
    return tree


def _key_paths(node: DictConfig, prefix: str = "") -> list[str]:
    """Every key path of a config (mappings only), without resolving interpolations."""
    out = []
    for k in node.keys():
        full = f"{prefix}.{k!s}" if prefix else str(k)
        out.append(full)
        child = node._get_node(k)  # noqa: SLF001 - walk without resolving interpolations
        if isinstance(child, DictConfig):
            out.extend(_key_paths(child, full))
    return out


def _apply_override(cfg: DictConfig, key: str, value: Any, add: bool, item: str, can_add: CanAdd | None) -> None:
    where = override_source(item)
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent, throw_on_missing=False) if parent else cfg
    exists = isinstance(node, DictConfig) and leaf in node.keys()  # `in node` misses "???" values
    if not exists and not add:
        siblings = [str(k) for k in node.keys()] if isinstance(node, DictConfig) else []
        if isinstance(node, DictConfig):
            hint = did_you_mean(leaf, siblings, prefix=f"{parent}." if parent else "")
        else:  # the section itself is misspelt
            hint = did_you_mean(key, _key_paths(cfg))
        addable = can_add(cfg, key) if can_add is not None else True
        message = "no such key" + (f"; {hint}" if hint else "")
        if addable:
            message += f" To add it, write +{key}=..." if hint else f"; to add it, write +{key}=..."
        if isinstance(node, DictConfig):
            listing = f"keys under '{parent or '<top>'}': {', '.join(siblings) or 'none'}"
        else:
            listing = f"no section '{parent}'"
        raise ConfigError(f"{message} ({listing})", key=key, source=where)
    try:
        OmegaConf.update(cfg, key, value, merge=False, force_add=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"cannot set {key}={value!r}: {exc}", key=key, source=where) from exc


def _merge(base: DictConfig, top: DictConfig) -> DictConfig:
    merged = OmegaConf.merge(base, top)
    assert isinstance(merged, DictConfig)
    return merged


def _check_missing(node: DictConfig | ListConfig, prefix: str, source: str) -> None:
    keys: list[Any] = list(node.keys()) if isinstance(node, DictConfig) else list(range(len(node)))
    for k in keys:
        full = f"{prefix}.{k}" if prefix else str(k)
        if OmegaConf.is_missing(node, k):
            raise ConfigError(
                f"required value is missing ('???'); give it on the command line as {full}=VALUE",
                key=full,
                source=source,
            )
        child = node._get_node(k)  # noqa: SLF001 - walk without resolving interpolations
        if isinstance(child, (DictConfig, ListConfig)):
            _check_missing(child, full, source)


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain Python (dicts, lists, scalars)."""
    out = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(out, dict)
    return out  # type: ignore[return-value]


def to_yaml(cfg: DictConfig | dict[str, Any]) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True) if isinstance(cfg, DictConfig) else yaml.safe_dump(cfg, sort_keys=False)
