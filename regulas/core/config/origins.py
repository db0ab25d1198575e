"""Where each key of a merged config was set: a file and line, or a command-line override.

:class:`Origins` is filled by :func:`regulas.core.config.loader.load_config_traced` in merge
order (later wins), so an error about a key can be blamed on what set its value: the
override ``demo.n_samples=-1`` on the command line, or ``study.yaml:14``. Line numbers come
from :func:`yaml.compose` (the node tree of the file, with marks); a key no file or
override set (a packaged default) has no origin, and callers fall back to the config file.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import yaml

from regulas.core.config import yaml_safe
from regulas.core.errors import ConfigError

#: (source, line or None): a file with the 1-based line of the key, or an override
Where = tuple[str, "int | None"]

_LAST_PART = re.compile(r"(\.[^.\[\]]*|\[\d+\])$")


def parent_key(key: str) -> str:
    """``a.b[2].c`` -> ``a.b[2]`` -> ``a.b`` -> ``a`` -> ``""``."""
    return _LAST_PART.sub("", key) if _LAST_PART.search(key) else ""


def _walk(node: yaml.Node, prefix: str, out: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            path = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            out.setdefault(path, key_node.start_mark.line + 1)
            _walk(value_node, path, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            path = f"{prefix}[{i}]"
            out.setdefault(path, item.start_mark.line + 1)
            _walk(item, path, out)


def key_lines(text: str) -> dict[str, int]:
    """Key path (``a.b``, ``a.list[0].c``) -> 1-based line of the key in YAML ``text``;
    empty when the text is not one valid YAML document (the parser reports that itself)."""
    try:
        root = yaml_safe.compose(text)
    except yaml.YAMLError:
        return {}
    out: dict[str, int] = {}
    if root is not None:
        _walk(root, "", out)
    return out


class Origins:
    """Key path -> where its value was set; looked up by the key or its nearest parent."""

    def __init__(self) -> None:
        self._where: dict[str, Where] = {}

    def add_file(
        self, source: str, text: str, *, prefix: str = "", rename: Callable[[str], str] | None = None
    ) -> None:
        """The keys of a YAML file (under ``prefix``; each path passed through ``rename``)."""
        if prefix:
            self.forget(prefix)
            self._where[prefix] = (source, None)
        for path, line in key_lines(text).items():
            full = f"{prefix}.{path}" if prefix else path
            self._where[rename(full) if rename else full] = (source, line)

    def add_override(self, key: str, text: str) -> None:
        """``key`` (and all under it) set by the override ``text`` on the command line."""
        self.forget(key)
        self._where[key] = (override_source(text), None)

    def forget(self, key: str) -> None:
        """Drop ``key`` and the keys under it (a group or an override replaced them)."""
        for k in [k for k in self._where if k == key or k.startswith((f"{key}.", f"{key}["))]:
            del self._where[k]

    def locate(self, key: str) -> Where | None:
        """Where ``key`` was set; else where keys under it were (an override first: it made
        the key), else where its nearest parent was; None if nowhere."""
        if key in self._where:
            return self._where[key]
        below = [w for k, w in self._where.items() if k.startswith((f"{key}.", f"{key}["))]
        if below:
            return next((w for w in below if w[0].startswith("command line")), below[0])
        while key:
            if key in self._where:
                return self._where[key]
            key = parent_key(key)
        return None

    def blame(self, exc: ConfigError, config_file: str) -> ConfigError:
        """``exc`` blamed on what set its key, when it names the key but only the config file."""
        if exc.key and exc.line is None and exc.source in (None, config_file):
            found = self.locate(exc.key)
            if found is not None:
                exc.relocate(*found)
            elif exc.source is None:
                exc.relocate(config_file)
        return exc


def override_source(text: str) -> str:
    return f"command line override {text}"

