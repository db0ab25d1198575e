"""Package attributes imported on first use (PEP 562), for packages whose ``__init__`` re-exports
names of heavy modules (scikit-learn, pandas, matplotlib) that reading a config does not need."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, modules: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``modules`` maps each public name to the
    module of the package that defines it, imported when the name is first asked for."""

    def __getattr__(name: str) -> Any:
        if name not in modules:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{modules[name]}"), name)

    return __getattr__
