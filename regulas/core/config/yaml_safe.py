"""The one YAML reader of config files: PyYAML's safe loader, with two hazards refused.

* **Duplicate keys.** Plain YAML keeps the last of two equal keys in a mapping without a
  word, so ``alpha: 1`` on line 12 silently loses to ``alpha: 10`` on line 15. Here it is
  an error naming both lines (``<<`` merge keys may still be overridden, as YAML intends).
* **Alias bombs.** An alias (``*a``) stands for a copy of its anchored node; nested aliases
  multiply (the "billion laughs" document is 1 KB and expands to 10^9 nodes once OmegaConf
  copies it). Each document's expanded size, counting every alias reference as the whole
  node it stands for, is computed once composed (one visit per distinct node, so it is
  cheap) and a document over :data:`MAX_NODES` is refused before anything is constructed.
"""

from __future__ import annotations

from typing import Any

import yaml

#: the most nodes a config document may expand to (aliases counted as what they stand for)
MAX_NODES = 100_000

_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlHazard(yaml.YAMLError):
    """A duplicate key or an oversized document: ``lines`` are the 1-based lines at fault."""

    def __init__(self, message: str, lines: tuple[int, ...]) -> None:
        super().__init__(message)
        self.message = message
        self.lines = lines


def expanded_size(root: yaml.Node, limit: int = MAX_NODES) -> int:
    """Nodes of ``root`` with every alias expanded; raises :class:`YamlHazard` past ``limit``
    or on a recursive alias (an anchored node that contains itself)."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise YamlHazard("recursive alias: an anchored node contains itself", (node.start_mark.line + 1,))
        active.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            children: list[yaml.Node] = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > limit:
                raise YamlHazard(
                    f"the document expands to more than {limit:,} nodes once its aliases (*name) are "
                    "expanded; refused (a YAML alias bomb?). Write the values out, or use ${...} interpolation",
                    (node.start_mark.line + 1,),
                )
        active.discard(key)
        sizes[key] = total
        return total

    return size(root)


class ConfigLoader(yaml.SafeLoader):
    """:class:`yaml.SafeLoader` refusing duplicate mapping keys and documents that expand
    past :data:`MAX_NODES` nodes."""

    def compose_document(self) -> Any:
        node = super().compose_document()
        if node is not None:
            expanded_size(node)
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                    seen.setdefault(key, line)
                except TypeError:
                    continue  # an unhashable key: the base class reports it
                if first is not None:
                    raise YamlHazard(
                        f"duplicate key {key!r} in one mapping; the later value would silently win. Keep one", (first, line)
                    )
        return super().construct_mapping(node, deep=deep)


def load(text: str) -> Any:
    """The one document in ``text``, read with :class:`ConfigLoader`."""
    return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 - a SafeLoader subclass


def compose(text: str) -> yaml.Node | None:
    """The node tree of ``text`` (with marks), bounded like :func:`load`."""
    return yaml.compose(text, Loader=ConfigLoader)
