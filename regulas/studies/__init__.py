"""Workloads: the kinds of studies regulas runs, by the name used in ``study.workload``."""

from __future__ import annotations

import importlib

from regulas.errors import ConfigError
from regulas.studies.base import Workload

#: workload name -> "module:Class"; imported only when used.
WORKLOADS: dict[str, str] = {
    "demo": "regulas.studies.demo:DemoWorkload",
    "noop": "regulas.studies.noop:NoopWorkload",
    "regnet": "regulas.studies.regnet:RegnetWorkload",
    "splicing": "regulas.studies.splicing:SplicingWorkload",
}


def workload_class(name: str) -> type[Workload]:
    spec = WORKLOADS.get(name)
    if spec is None:
        raise ConfigError(
            f"unknown workload (given: {name!r}); allowed: {', '.join(sorted(WORKLOADS))}", key="study.workload"
        )
    module, _, cls = spec.partition(":")
    found: type[Workload] = getattr(importlib.import_module(module), cls)
    return found


__all__ = ["WORKLOADS", "Workload", "workload_class"]
