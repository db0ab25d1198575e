"""``_target_`` resolution and instantiation (Hydra's convention, without Hydra).

A mapping with ``_target_: package.module.Name`` stands for ``Name(**other_keys)``.
Names of the original regulAS package are mapped to their regulas equivalents through
:data:`ALIASES`, so regulAS experiment files run unchanged.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from regulas.core.errors import ConfigError

#: other names of regulas classes (e.g. the original regulAS package's), so that configs
#: written for them run unchanged; workloads add theirs (``Workload.target_aliases``).
ALIASES: dict[str, str] = {}


def register_aliases(aliases: Mapping[str, str]) -> None:
    """Add ``_target_`` aliases; a name already mapped elsewhere is refused."""
    for name, target in aliases.items():
        if ALIASES.setdefault(name, target) != target:
            raise ConfigError(f"_target_ alias {name!r} is claimed by both {ALIASES[name]!r} and {target!r}")


#: Keys with a meaning to regulas inside a ``_target_`` mapping; not passed to the call.
RESERVED = frozenset({"_target_", "_depends_on_", "_varargs_"})


def locate(path: str, *, key: str | None = None, source: str | None = None) -> Any:
    """Import ``package.module.Name`` (a class or function) or raise a clear ConfigError."""
    target = ALIASES.get(path, path)
    module_name, _, attr = target.rpartition(".")
    if not module_name:
        raise ConfigError(
            f"_target_ {path!r} is not a dotted path; expected e.g. sklearn.linear_model.Ridge",
            key=key,
            source=source,
        )
    # Walk back from the longest importable module so nested attributes work too.
    parts = target.split(".")
    error: Exception | None = None
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError as exc:
            error = exc
            continue
        try:
            for name in parts[cut:]:
                obj = getattr(obj, name)
        except AttributeError as exc:
            error = exc
            break
        return obj
    raise ConfigError(f"cannot import _target_ {path!r}: {error}", key=key, source=source)


def iter_targets(node: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Yield (full key, target path) for every ``_target_`` in a plain config tree."""
    if isinstance(node, dict):
        target = node.get("_target_")
        if isinstance(target, str):
            yield (f"{prefix}._target_" if prefix else "_target_"), target
        for k, v in node.items():
            yield from iter_targets(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from iter_targets(v, f"{prefix}[{i}]")


def check_targets(tree: Any, *, source: str | None = None) -> None:
    """Fail before any work if some ``_target_`` in the tree cannot be imported."""
    for key, target in iter_targets(tree):
        locate(target, key=key, source=source)


def instantiate(node: Any, **extra: Any) -> Any:
    """Build the object a ``_target_`` mapping describes; nested targets are built first."""
    if isinstance(node, list):
        return [instantiate(v) for v in node]
    if not isinstance(node, dict):
        return node
    if "_target_" not in node:
        return {k: instantiate(v) for k, v in node.items()}
    factory = locate(node["_target_"])
    kwargs = {k: instantiate(v) for k, v in node.items() if k not in RESERVED}
    kwargs.update(extra)
    return factory(**kwargs)
