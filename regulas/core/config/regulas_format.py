"""Accept regulAS experiment files as written (its README's and config-format's samples).

A regulAS experiment file holds the keys of its ``experiment`` scope at the top level
(``name``, ``dataset``, ``split``, ``pipelines``, ``reports``) and refers to the
packaged top-level ``random_state`` as ``${random_state}`` and to itself as
``${experiment.name}``. A regulAS main config may also hold ``experiment:`` itself,
beside ``random_state``, ``database`` and ``num_processes``.

Both become a regulas study of workload ``splicing``: the experiment keys move under
``experiment`` (the workload's section), ``random_state`` stays at the top (so the
interpolations resolve) and, when set, is the study's root seed. Overrides keep
regulAS's spelling: ``dataset.path_to_file=...`` means ``experiment.dataset.path_to_file=...``
(and ``selection=nested`` means ``experiment.selection=nested``).

regulAS's semantics hold unless the file or an override says otherwise:

- ``selection: outer``: every grid point is scored on the outer splits (regulAS's
  selection; ``selection: nested`` gives unbiased estimates);
- the study is named after the experiment *and its data*: ``study.name_from_data`` makes
  the run name it ``<name>-<10 hex digits>`` once the data is loaded, the digits of a
  digest of the data fingerprint and the config hash, as regulAS's experiment md5 covers
  its data and config. Another pickle (or setting) is then another study of the same
  experiment name in the same store (reports group them), never a changed input of the first.
"""

from __future__ import annotations

from typing import Any

#: keys of regulAS's experiment scope
EXPERIMENT_KEYS = ("name", "dataset", "split", "pipelines", "reports")
#: top-level keys of regulAS's packaged config, kept at the top
TOP_KEYS = ("random_state", "database", "num_processes")
#: keys regulas adds to the experiment section, accepted bare in a regulAS file and its overrides
ADDED_KEYS = ("selection", "block_size", "inner_cv", "scoring", "top_k", "permutation")
#: regulAS's selection: every grid point scored on the outer splits, best by test mean
REGULAS_SELECTION = "outer"


def is_regulas_experiment(body: dict[str, Any]) -> bool:
    """A file in regulAS's format: experiment keys (bare or under ``experiment``), no ``study``."""
    if "study" in body:
        return False
    bare = {"dataset", "split", "pipelines"} & body.keys() and "name" in body
    return bool(bare) or isinstance(body.get("experiment"), dict)


def wrap_experiment(body: dict[str, Any]) -> dict[str, Any]:
    """The regulas-shaped body of a regulAS file (see the module docstring)."""
    if isinstance(body.get("experiment"), dict):
        experiment = dict(body["experiment"])
        rest = {k: v for k, v in body.items() if k != "experiment"}
    else:
        moved = (*EXPERIMENT_KEYS, *ADDED_KEYS)
        experiment = {k: v for k, v in body.items() if k in moved}
        rest = {k: v for k, v in body.items() if k not in moved}
    experiment.setdefault("selection", REGULAS_SELECTION)
    out: dict[str, Any] = {
        "random_state": rest.pop("random_state", None),
        "study": {"name": "${experiment.name}", "workload": "splicing", "name_from_data": True},
        "experiment": experiment,
    }
    out.update(rest)  # anything else is validated (and reported) as usual
    return out


def experiment_override_key(key: str) -> str:
    """``dataset.path_to_file`` -> ``experiment.dataset.path_to_file`` (regulAS spelling);
    ``selection`` -> ``experiment.selection`` (and the other keys regulas adds)."""
    head = key.split(".", 1)[0].split("[", 1)[0]
    return f"experiment.{key}" if head in (*EXPERIMENT_KEYS, *ADDED_KEYS) else key


def apply_top_keys(tree: dict[str, Any], source: str | None) -> None:
    """Map regulAS's top-level keys onto regulas sections, in place.

    ``random_state`` (an int) becomes ``seed``; ``database.url`` (``sqlite:///PATH``)
    becomes ``store.root``/``store.db``; ``num_processes`` > 0 becomes the number of
    local workers. The keys stay in the tree, so the stored config shows them.
    """
    from regulas.core.errors import ConfigError

    state = tree.get("random_state")
    if state is not None:
        if not isinstance(state, int) or isinstance(state, bool) or state < 0:
            raise ConfigError(
                f"wrong type (given: {state!r}); expected null or a non-negative integer", key="random_state", source=source
            )
        tree["seed"] = state
    database = tree.get("database")
    if database is not None:
        url = database.get("url") if isinstance(database, dict) else None
        if not isinstance(url, str) or not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
            raise ConfigError(
                f"unsupported database (given: {database!r}); expected {{url: sqlite:///PATH}}: regulas keeps "
                "results in one SQLite file",
                key="database.url",
                source=source,
            )
        path = url.removeprefix("sqlite:///")
        head, _, name = path.rpartition("/")
        tree.setdefault("store", {})
        tree["store"]["db"] = name
        if head:
            tree["store"]["root"] = head
    processes = tree.get("num_processes")
    if processes is not None:
        if not isinstance(processes, int) or isinstance(processes, bool) or processes < 0:
            raise ConfigError(
                f"wrong type (given: {processes!r}); expected a non-negative integer (0 = one per core)",
                key="num_processes",
                source=source,
            )
        if processes > 0 and isinstance(tree.get("cluster"), dict) and tree["cluster"].get("backend") == "local":
            tree["cluster"]["n_workers"] = processes
