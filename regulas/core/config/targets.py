"""``_target_`` resolution and instantiation (Hydra's convention, without Hydra).

A mapping with ``_target_: package.module.Name`` stands for ``Name(**other_keys)``.
Names of the original regulAS package are mapped to their regulas equivalents through
:data:`ALIASES`, so regulAS experiment files run unchanged.

A config names code to import and call, so a ``_target_`` is first checked against an
allow-list of module prefixes (:func:`allowed_prefixes`): :data:`DEFAULT_ALLOWED`, the
top-level modules of the packages registered as regulas plug-ins (``regulas.workloads``
entry points, read from the package metadata without importing them) and what the config
adds in ``execution.allow_targets``. Nothing is imported before that check.

Then each target is checked to exist, in one of two ways. By default (``regulas run``,
``regulas report``) :func:`locate` imports its module: the workload needs the classes anyway,
and checks what they are (a splitter, a loader, an estimator and its parameters) before any
work starts. Inside :func:`without_importing` (``regulas show-config``) :func:`find_target`
reads the module's source instead: importing scikit-learn alone takes about a second, more
than all the rest of show-config, and a misspelt module or class is still refused with the
same message; only what needs the class itself is left to ``regulas run``.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from importlib.metadata import entry_points
from typing import Any

from regulas.core.config.source_names import binds, known_names, module_source
from regulas.core.errors import ConfigError, did_you_mean

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

#: module prefixes any config may name in a ``_target_`` (``regulAS``: the original
#: package's names, which :data:`ALIASES` maps onto regulas)
DEFAULT_ALLOWED = ("sklearn", "scipy", "numpy", "regulas", "regulAS")
#: the entry-point group of workload plug-ins (as :mod:`regulas.core.registry`)
PLUGIN_GROUP = "regulas.workloads"
#: a module prefix in ``execution.allow_targets``: dotted identifiers
PREFIX = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")

#: False inside :func:`without_importing`: targets are checked from their modules' source
_IMPORTING: ContextVar[bool] = ContextVar("regulas_import_targets", default=True)

#: prefixes the configs loaded in this process allowed (``execution.allow_targets``); used by
#: :func:`locate` calls that are not given a list, e.g. when a workload builds its objects
_EXTRA_ALLOWED: list[str] = []


@functools.cache
def plugin_prefixes() -> tuple[str, ...]:
    """Top-level modules of the registered workload plug-ins (from metadata; nothing imported)."""
    return tuple(sorted({ep.module.split(".")[0] for ep in entry_points(group=PLUGIN_GROUP)}))


def allowed_prefixes(extra: Iterable[str] | None = None) -> tuple[str, ...]:
    """The module prefixes a ``_target_`` may start with: the defaults, the plug-ins' modules and
    ``extra`` (by default what :func:`allow_targets` added in this process)."""
    return tuple(dict.fromkeys((*DEFAULT_ALLOWED, *plugin_prefixes(), *(_EXTRA_ALLOWED if extra is None else extra))))


def allow_targets(prefixes: Iterable[str]) -> None:
    """Allow ``prefixes`` (a validated config's ``execution.allow_targets``) in this process."""
    for prefix in prefixes:
        if prefix not in _EXTRA_ALLOWED:
            _EXTRA_ALLOWED.append(prefix)


@contextlib.contextmanager
def allowing(prefixes: Iterable[str]) -> Iterator[None]:
    """Allow ``prefixes`` while a config's sections are built; kept only if no error is raised
    (the workload builds its objects later, in this process and on workers)."""
    saved = list(_EXTRA_ALLOWED)
    allow_targets(prefixes)
    try:
        yield
    except BaseException:
        _EXTRA_ALLOWED[:] = saved
        raise


def extra_allowed() -> list[str]:
    """The prefixes :func:`allow_targets` added in this process (shipped to workers)."""
    return list(_EXTRA_ALLOWED)


def check_allowed(
    path: str, *, allow: Iterable[str] | None = None, key: str | None = None, source: str | None = None
) -> None:
    """Refuse a ``_target_`` outside the allowed module prefixes, before anything is imported."""
    if path in ALIASES:
        return  # registered by regulas or a workload plug-in, not by the config
    if not path.rpartition(".")[0]:
        raise ConfigError(
            f"_target_ {path!r} is not a dotted path; expected e.g. sklearn.linear_model.Ridge",
            key=key,
            source=source,
        )
    prefixes = allowed_prefixes(allow)
    if any(path == p or path.startswith(f"{p}.") for p in prefixes):
        return
    top = path.split(".")[0] or path
    raise ConfigError(
        f"_target_ {path!r} is outside the modules a config may name (allowed: {', '.join(prefixes)}); "
        f"a _target_ is imported and called, so to run code from {top!r} add it to execution.allow_targets "
        f"(e.g. execution.allow_targets: [{top}])",
        key=key,
        source=source,
    )


def locate(
    path: str, *, key: str | None = None, source: str | None = None, allow: Sequence[str] | None = None
) -> Any:
    """Import ``package.module.Name`` (a class or function) or raise a clear ConfigError.

    ``path`` must be in an allowed module (:func:`check_allowed`; ``allow``: the config's
    ``execution.allow_targets``, by default those allowed in this process)."""
    check_allowed(path, allow=allow, key=key, source=source)
    target = ALIASES.get(path, path)
    # Walk back from the longest importable module so nested attributes work too.
    parts = target.split(".")
    error: Exception | None = None
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError as exc:
            error = exc
            continue
        for name in parts[cut:]:
            try:
                obj = getattr(obj, name)
            except AttributeError as exc:
                hint = did_you_mean(name, [n for n in dir(obj) if not n.startswith("_")])
                raise ConfigError(
                    f"cannot import _target_ {path!r}: {exc}" + (f"; {hint}" if hint else ""), key=key, source=source
                ) from None
        return obj
    raise ConfigError(f"cannot import _target_ {path!r}: {error}", key=key, source=source)


@contextlib.contextmanager
def without_importing() -> Iterator[None]:
    """Check ``_target_`` paths from their modules' source (:func:`find_target`) in this block:
    nothing they name is imported, and what needs the class itself is left unchecked."""
    token = _IMPORTING.set(False)
    try:
        yield
    finally:
        _IMPORTING.reset(token)


def find_target(
    path: str, *, key: str | None = None, source: str | None = None, allow: Sequence[str] | None = None
) -> None:
    """Refuse a ``_target_`` that :func:`locate` would refuse, without importing it where possible.

    The longest module prefix of the path that exists is found without running it, and the
    next name must be one its source binds at the top level (a class, function, assignment,
    import, or a name of its ``__all__``). When the source cannot tell, the module is imported
    after all (:func:`locate`): a name left to a module ``__getattr__`` (PEP 562), a star
    import of a module that cannot be read, a compiled module, a submodule, or an attribute of
    a class. A module this process has already imported is asked when it holds the name:
    that costs nothing.
    """
    check_allowed(path, allow=allow, key=key, source=source)
    parts = ALIASES.get(path, path).split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:cut])
        loaded = sys.modules.get(module)
        if loaded is not None and parts[cut] in vars(loaded):
            locate(path, key=key, source=source, allow=allow)
            return
        found = module_source(module)
        if found is None:
            continue
        name = parts[cut]
        bound = binds(module, name)
        if bound and cut == len(parts) - 1:
            return
        if bound is not False or name in found.submodules:
            break  # only an import can tell
        hint = did_you_mean(name, sorted(n for n in known_names(module) | found.submodules if not n.startswith("_")))
        raise ConfigError(
            f"cannot import _target_ {path!r}: module {module!r} has no attribute {name!r}" + (f"; {hint}" if hint else ""),
            key=key,
            source=source,
        )
    locate(path, key=key, source=source, allow=allow)


def checked_target(
    path: str, *, key: str | None = None, source: str | None = None, allow: Sequence[str] | None = None
) -> Any:
    """What a config's ``_target_`` names, for validation: the object (:func:`locate`), or None
    inside :func:`without_importing`, once :func:`find_target` found it. Checks of the object
    itself (a splitter's ``split``, an estimator's parameters) are skipped on None."""
    if _IMPORTING.get():
        return locate(path, key=key, source=source, allow=allow)
    find_target(path, key=key, source=source, allow=allow)
    return None


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


def check_targets(tree: Any, *, source: str | None = None, allow: Sequence[str] = ()) -> None:
    """Fail before any work if some ``_target_`` in the tree is outside the allowed modules
    (all are checked before any is imported) or cannot be imported (inside
    :func:`without_importing`: does not exist, by its module's source)."""
    found = list(iter_targets(tree))
    for key, target in found:
        check_allowed(target, allow=allow, key=key, source=source)
    for key, target in found:
        checked_target(target, key=key, source=source, allow=allow)


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
