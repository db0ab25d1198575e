"""Cluster backends by name, as selected by ``cluster.backend``.

A backend is one module of this package named after it (``local``, ``address``,
``slurm``) holding one :class:`ClusterBackend` subclass, plus one config group file
``configs/cluster/<name>.yaml``; nothing else names it. Modules whose name starts with
``_`` are helpers. A package installed beside regulas may add backends through the
``regulas.cluster_backends`` entry-point group (name -> ``module:Class``).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from regulas.core.config.typed import build
from regulas.core.errors import ConfigError, did_you_mean
from regulas.execution.cluster.base import ClusterBackend, ClusterConfigBase

GROUP = "regulas.cluster_backends"
_NOT_BACKENDS = frozenset({"base"})


def backend_names() -> list[str]:
    own = [
        m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)])
        if not m.name.startswith("_") and m.name not in _NOT_BACKENDS
    ]
    return sorted({*own, *(ep.name for ep in entry_points(group=GROUP))})


def backend_class(name: Any) -> type[ClusterBackend]:
    if not isinstance(name, str) or name not in backend_names():
        hint = did_you_mean(name, backend_names())
        raise ConfigError(
            f"unknown cluster backend (given: {name!r}); " + (f"{hint} " if hint else "")
            + f"allowed: {', '.join(backend_names())}",
            key="cluster.backend",
        )
    eps = {ep.name: ep for ep in entry_points(group=GROUP)}
    if name in eps:
        found = eps[name].load()
    else:
        module = importlib.import_module(f"{__name__}.{name}")
        classes = [
            c for _, c in inspect.getmembers(module, inspect.isclass)
            if issubclass(c, ClusterBackend) and c is not ClusterBackend and c.__module__ == module.__name__
        ]
        if len(classes) != 1:
            raise ConfigError(f"module {module.__name__} must hold exactly one ClusterBackend subclass, found {len(classes)}")
        found = classes[0]
    if not (isinstance(found, type) and issubclass(found, ClusterBackend)):
        raise ConfigError(f"cluster backend {name!r} is not a ClusterBackend subclass", key="cluster.backend")
    return found


def cluster_config(section: Any, source: str | None = None) -> ClusterConfigBase:
    backend = section.get("backend", "local") if isinstance(section, dict) else None
    return build(backend_class(backend).config_class, section, "cluster", source=source)


def make_backend(config: ClusterConfigBase) -> ClusterBackend:
    return backend_class(config.backend)(config)


__all__ = ["ClusterBackend", "backend_class", "backend_names", "cluster_config", "make_backend"]
