"""Whether a Python module binds a name at its top level, read from its source without running it.

Used to check a config's ``_target_`` paths (``sklearn.linear_model.ElasticNet``) without
importing scikit-learn and the like (see :func:`regulas.core.config.targets.find_target`):
the module is found as the import system would find it (:func:`importlib.util.find_spec`
for the top-level package, then its ``__path__``), its source parsed with :mod:`ast`.
Nothing of the package is executed, not even its ``__init__``.
"""

from __future__ import annotations

import ast
import functools
import importlib.machinery
import importlib.util
import pkgutil
from dataclasses import dataclass
from importlib.machinery import ModuleSpec
from pathlib import Path

#: statements whose nested bodies still bind names at the module's top level
_BLOCKS = (ast.If, ast.Try, ast.TryStar, ast.With, ast.For, ast.While)
#: bytes of star-imported source one lookup reads at most: beyond, importing is the quicker
#: answer (scipy.stats star-imports megabytes of source, and ast parses ~10 MB/s)
STAR_SOURCE_BUDGET = 1_000_000


@dataclass(frozen=True)
class ModuleSource:
    """What a module's source binds at its top level.

    ``lazy`` is True when other names may exist at run time that the source cannot show: a
    module ``__getattr__`` (PEP 562), a computed ``__all__`` or a module that is not Python
    source (an extension, a namespace package).
    """

    #: names bound by definitions, assignments and imports (star imports aside)
    names: frozenset[str]
    #: the modules star-imported (``from m import *``), absolute, in source order
    stars: tuple[str, ...]
    lazy: bool
    #: the literal ``__all__`` (None: not assigned, or computed, then ``lazy``)
    declared_all: frozenset[str] | None
    #: the modules directly under a package (``sklearn``: ``linear_model``, ...); empty for a module
    submodules: frozenset[str]


def find_module(name: str) -> ModuleSpec | None:
    """The spec of module ``name`` (dotted), found without importing it or its parents; None
    when there is none."""
    parts = name.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])  # a top-level lookup runs nothing
    except (ImportError, ValueError):  # ValueError: a module in sys.modules without a spec
        return None
    for i in range(1, len(parts)):
        if spec is None or spec.submodule_search_locations is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]), list(spec.submodule_search_locations))
    return spec


def module_source(name: str) -> ModuleSource | None:
    """What module ``name``'s source binds (None: no such module)."""
    spec = find_module(name)
    if spec is None:
        return None
    locations = tuple(spec.submodule_search_locations or ()) if spec.submodule_search_locations is not None else None
    origin = spec.origin if spec.origin and spec.origin.endswith(".py") else None
    try:
        mtime = Path(origin).stat().st_mtime_ns if origin else 0
    except OSError:
        origin, mtime = None, 0
    return _read(name, origin, mtime, locations)


@functools.cache
def _read(name: str, origin: str | None, mtime_ns: int, locations: tuple[str, ...] | None) -> ModuleSource:
    """The source of one module version (``mtime_ns`` keys the cache: a changed file is read again)."""
    submodules = frozenset(m.name for m in pkgutil.iter_modules(list(locations))) if locations is not None else frozenset()
    unreadable = ModuleSource(frozenset(), (), lazy=True, declared_all=None, submodules=submodules)
    if origin is None:
        return unreadable
    try:
        tree = ast.parse(Path(origin).read_bytes(), filename=origin)
    except (OSError, SyntaxError, ValueError):  # the import reports these better
        return unreadable
    names: set[str] = set()
    stars: list[str] = []
    computed_all = _bind(tree.body, names, stars, name if locations is not None else name.rpartition(".")[0])
    declared = None if computed_all else _declared_all(tree)
    return ModuleSource(
        frozenset(names), tuple(stars), lazy=computed_all or "__getattr__" in names, declared_all=declared,
        submodules=submodules,
    )


def binds(module: str, name: str) -> bool | None:
    """Whether module ``module`` binds ``name`` at its top level; None when only an import can tell.

    Star-imported modules are read one at a time, only until one of them exports the name,
    and up to :data:`STAR_SOURCE_BUDGET` bytes.
    """
    return _binds(module, name, frozenset(), [STAR_SOURCE_BUDGET])


def _binds(module: str, name: str, seen: frozenset[str], budget: list[int]) -> bool | None:
    source = module_source(module)
    if source is None:
        return None
    if name in source.names:
        return True
    unknown = source.lazy
    for star in source.stars:
        found = _exports(star, name, seen | {module}, budget)
        if found:
            return True
        unknown = unknown or found is None
    return None if unknown else False


def _exports(module: str, name: str, seen: frozenset[str], budget: list[int]) -> bool | None:
    """Whether ``from module import *`` binds ``name``: its literal ``__all__`` tells, else its
    public names; None when that cannot be read (within ``budget``, the bytes left to read)."""
    spec = find_module(module) if module not in seen else None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    try:
        budget[0] -= Path(spec.origin).stat().st_size
    except OSError:
        return None
    source = module_source(module) if budget[0] >= 0 else None
    if source is None or (source.lazy and source.declared_all is None):
        return None
    if source.declared_all is not None:
        return name in source.declared_all
    return False if name.startswith("_") else _binds(module, name, seen, budget)


def known_names(module: str, seen: frozenset[str] = frozenset()) -> frozenset[str]:
    """Every name the source shows module ``module`` binds, star imports included (for a
    "did you mean" after a lookup failed)."""
    source = module_source(module) if module not in seen else None
    if source is None:
        return frozenset()
    out = set(source.names)
    for star in source.stars:
        exported = module_source(star) if star not in seen else None
        if exported is not None and exported.declared_all is not None:
            out |= exported.declared_all
        else:
            out |= {n for n in known_names(star, seen | {module}) if not n.startswith("_")}
    return frozenset(out)


def _bind(body: list[ast.stmt], names: set[str], stars: list[str], package: str) -> bool:
    """Add the names ``body`` binds at module level to ``names`` and the modules it star-imports
    to ``stars``; True when ``__all__`` is computed rather than written out."""
    computed_all = False
    for node in body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Import):
            names.update(a.asname or a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    stars.append(_absolute(node, package))
                else:
                    names.add(alias.asname or alias.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and _literal_strings(node.value) is None:
                computed_all = True
        elif isinstance(node, _BLOCKS):
            if isinstance(node, ast.For):
                names.update(n.id for n in ast.walk(node.target) if isinstance(n, ast.Name))
            handlers = [h.body for h in getattr(node, "handlers", [])]
            for block in (node.body, getattr(node, "orelse", []), getattr(node, "finalbody", []), *handlers):
                computed_all = _bind(block, names, stars, package) or computed_all
    return computed_all


def _absolute(node: ast.ImportFrom, package: str) -> str:
    """The module a ``from ... import`` names, made absolute (``package``: the importing one's)."""
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, *([node.module] if node.module else [])])


def _declared_all(tree: ast.Module) -> frozenset[str] | None:
    """A module's ``__all__`` when its source assigns (or extends) it with literal lists or
    tuples of strings at the top level; None when it assigns none there."""
    out: set[str] | None = None
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                values = set(_literal_strings(node.value) or ())
                out = (out or set()) | values if isinstance(node, ast.AugAssign) else values
    return frozenset(out) if out is not None else None


def _literal_strings(value: ast.expr | None) -> list[str] | None:
    """The strings of a literal list or tuple of strings; None for anything else."""
    if isinstance(value, (ast.List, ast.Tuple)) and all(
        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in value.elts
    ):
        return [str(e.value) for e in value.elts if isinstance(e, ast.Constant)]
    return None
