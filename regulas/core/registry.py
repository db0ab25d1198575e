"""Workloads by the name used in ``study.workload``: the ``regulas.workloads`` entry points.

regulas's own workloads are declared in its ``pyproject.toml``; a third-party package adds
one by declaring an entry point in the same group::

    [project.entry-points."regulas.workloads"]
    mywork = "mypackage.workload:MyWorkload"

Nothing is imported until a study names the workload.
"""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points

from regulas.core.config.targets import register_aliases
from regulas.core.errors import ConfigError, did_you_mean
from regulas.core.workload import Workload

GROUP = "regulas.workloads"


@functools.cache
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def workload_names() -> list[str]:
    return sorted(_entry_points())


def workload_class(name: str) -> type[Workload]:
    """The workload class registered as ``name``; its ``_target_`` aliases become known."""
    ep = _entry_points().get(name)
    if ep is None:
        names = workload_names()
        hint = (
            ", ".join(names)
            if names
            else "none registered: is regulas-hpc installed (pip install -e .)? Workloads are entry points "
            f"of the group {GROUP!r}"
        )
        close = did_you_mean(name, names)
        raise ConfigError(
            f"unknown workload (given: {name!r}); " + (f"{close} " if close else "") + f"allowed: {hint}",
            key="study.workload",
        )
    cls = ep.load()
    if not (isinstance(cls, type) and issubclass(cls, Workload)):
        raise ConfigError(
            f"entry point {ep.value!r} of workload {name!r} is not a regulas.core.workload.Workload subclass",
            key="study.workload",
        )
    register_aliases(cls.target_aliases)
    return cls


__all__ = ["GROUP", "Workload", "workload_class", "workload_names"]
