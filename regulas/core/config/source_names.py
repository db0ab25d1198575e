"""The names a Python module defines at its top level, read from its source without running it.

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


@dataclass(frozen=True)
class SourceNames:
    """What a module's source binds at its top level.

    ``complete`` is False when other names may exist at run time: a module ``__getattr__``
    (PEP 562, names resolved lazily), a ``from m import *`` of a module that cannot be read,
    or a module that is not Python source (an extension, a namespace package).
    """

    names: frozenset[str]
    complete: bool
    #: the modules directly under a package (``sklearn``: ``linear_model``, ...); empty for a module
    submodules: frozenset[str] = frozenset()


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


@functools.cache
def source_names(name: str) -> SourceNames | None:
    """The top-level names of module ``name`` (None: no such module)."""
    return _names(name, frozenset())


def _names(name: str, seen: frozenset[str]) -> SourceNames | None:
    spec = find_module(name)
    if spec is None:
        return None
    locations = spec.submodule_search_locations
    submodules = frozenset(m.name for m in pkgutil.iter_modules(list(locations))) if locations is not None else frozenset()
    origin = spec.origin
    if not origin or not origin.endswith(".py"):
        return SourceNames(frozenset(), complete=False, submodules=submodules)
    try:
        tree = ast.parse(Path(origin).read_bytes(), filename=origin)
    except (OSError, SyntaxError, ValueError):  # the import reports these better
        return SourceNames(frozenset(), complete=False, submodules=submodules)
    base = name if locations is not None else name.rpartition(".")[0]
    names: set[str] = set()
    complete = _bind(tree.body, names, base, seen | {name})
    return SourceNames(frozenset(names), complete=complete and "__getattr__" not in names, submodules=submodules)


def _bind(body: list[ast.stmt], names: set[str], base: str, seen: frozenset[str]) -> bool:
    """Add the names ``body`` binds at module level to ``names``; False if some are unknowable."""
    complete = True
    for node in body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Import):
            names.update(a.asname or a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name != "*":
                    names.add(alias.asname or alias.name)
                    continue
                exported = _exports(_absolute(node, base), seen)
                if exported is None:
                    complete = False
                else:
                    names.update(exported)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                names.update(_literal_strings(node.value) or ())
        elif isinstance(node, _BLOCKS):
            if isinstance(node, ast.For):
                names.update(n.id for n in ast.walk(node.target) if isinstance(n, ast.Name))
            handlers = [h.body for h in getattr(node, "handlers", [])]
            for block in (node.body, getattr(node, "orelse", []), getattr(node, "finalbody", []), *handlers):
                complete = _bind(block, names, base, seen) and complete
    return complete


def _absolute(node: ast.ImportFrom, base: str) -> str:
    """The module a ``from ... import`` names, made absolute (``base``: the importing package)."""
    if not node.level:
        return node.module or ""
    package = base.split(".")
    package = package[: len(package) - (node.level - 1)]
    return ".".join([*package, *([node.module] if node.module else [])])


def _exports(module: str, seen: frozenset[str]) -> frozenset[str] | None:
    """The names ``from module import *`` binds (its ``__all__``, else its public names);
    None when they cannot be read."""
    if not module or module in seen:
        return None
    found = _names(module, seen)
    if found is None or not found.complete:
        return None
    spec = find_module(module)
    assert spec is not None and spec.origin is not None  # found above
    if "__all__" not in found.names:
        return frozenset(n for n in found.names if not n.startswith("_"))
    return _declared_all(Path(spec.origin))


def _declared_all(path: Path) -> frozenset[str] | None:
    """A module's ``__all__`` when its source assigns (or extends) it with literal lists or
    tuples of strings only; None when it is computed."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                values = _literal_strings(node.value)
                if values is None:
                    return None
                out = out | set(values) if isinstance(node, ast.AugAssign) else set(values)
    return frozenset(out)


def _literal_strings(value: ast.expr | None) -> list[str] | None:
    """The strings of a literal list or tuple of strings; None for anything else."""
    if isinstance(value, (ast.List, ast.Tuple)) and all(
        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in value.elts
    ):
        return [str(e.value) for e in value.elts if isinstance(e, ast.Constant)]
    return None
