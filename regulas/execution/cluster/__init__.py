"""Cluster backends by name, as selected by ``cluster.backend``."""

from __future__ import annotations

import importlib
from typing import Any

from regulas.config.typed import build
from regulas.errors import ConfigError
from regulas.execution.cluster.base import ClusterBackend, ClusterConfigBase

#: backend name -> "module:Class"
BACKENDS: dict[str, str] = {
    "local": "regulas.execution.cluster.local:LocalBackend",
    "address": "regulas.execution.cluster.address:AddressBackend",
    "slurm": "regulas.execution.cluster.slurm:SlurmBackend",
}


def backend_class(name: Any) -> type[ClusterBackend]:
    spec = BACKENDS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise ConfigError(
            f"unknown cluster backend (given: {name!r}); allowed: {', '.join(BACKENDS)}", key="cluster.backend"
        )
    module, _, cls = spec.partition(":")
    found: type[ClusterBackend] = getattr(importlib.import_module(module), cls)
    return found


def cluster_config(section: Any, source: str | None = None) -> ClusterConfigBase:
    backend = section.get("backend", "local") if isinstance(section, dict) else None
    return build(backend_class(backend).config_class, section, "cluster", source=source)


def make_backend(config: ClusterConfigBase) -> ClusterBackend:
    return backend_class(config.backend)(config)


__all__ = ["BACKENDS", "ClusterBackend", "backend_class", "cluster_config", "make_backend"]
