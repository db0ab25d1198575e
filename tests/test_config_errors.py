"""Bad configs fail before any work, with a message naming the key or file, the value
given and what is allowed; good overrides and interpolations resolve.

Every config here is a real YAML file in pytest's tmp_path. The group folders
(``cluster/``, ``store/``) are copied beside it, because groups are looked up in the
config's folder and its parents. A few cases go through the real CLI in subprocesses
(started together, so the slow imports overlap).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from regulas import cli
from regulas.core.config.loader import load_config
from regulas.core.config.targets import check_targets, locate
from regulas.core.errors import ConfigError
from regulas.study import load_study

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
DEMO: dict[str, Any] = yaml.safe_load((CONFIGS / "demo.yaml").read_text())


# --------------------------------------------------------------------------- helpers


def _copy_groups(folder: Path) -> None:
    for group in ("cluster", "store"):
        shutil.copytree(CONFIGS / group, folder / group, dirs_exist_ok=True)


def write_config(folder: Path, body: Any, name: str = "study.yaml") -> Path:
    """Write ``body`` (a dict dumped as YAML, or raw text) beside copies of the group folders."""
    _copy_groups(folder)
    path = folder / name
    path.write_text(body if isinstance(body, str) else yaml.safe_dump(body, sort_keys=False))
    return path


def demo_with(**patch: Any) -> dict[str, Any]:
    """The shipped demo config with sections updated (``None`` deletes a key)."""
    out = copy.deepcopy(DEMO)
    for section, values in patch.items():
        if isinstance(values, dict) and isinstance(out.get(section), dict):
            for k, v in values.items():
                if v is None:
                    out[section].pop(k, None)
                else:
                    out[section][k] = v
        else:
            out[section] = values
    return out


def config_error(path: Path, overrides: Sequence[str] = ()) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_study(path, overrides)
    return info.value


def assert_parts(message: str, parts: Sequence[str]) -> None:
    missing = [p for p in parts if p not in message]
    assert not missing, f"message lacks {missing}:\n{message}"


# ------------------------------------------------------ bad configs, one case each
#
# (id, config body (dict or raw text), overrides, expected message parts). "{cfg}"
# in an expected part stands for the config file's path.

NO_DEFAULTS = {"seed": 1, "study": {"workload": "demo"}}  # no defaults list, no study.name

CASES: list[tuple[str, Any, tuple[str, ...], tuple[str, ...]]] = [
    (
        "invalid-yaml",
        "seed: 1\nstudy: {name: x\n",
        (),
        ("{cfg}: ", "not valid YAML", "line 2"),
    ),
    (
        "top-level-list",
        "- seed\n- study\n",
        (),
        ("{cfg}: ", "the top level must be a mapping of keys, got a list"),
    ),
    (
        "unknown-top-level-key",
        demo_with(extra={"a": 1}),
        (),
        (
            "{cfg}:18: key 'extra'",
            "unknown top-level key (given: {'a': 1})",
            "allowed for workload 'demo': seed, study, store, execution, cluster, demo",
        ),
    ),
    (
        "unknown-key-in-section",
        demo_with(execution={"max_inflight": 8}),
        (),
        (
            "{cfg}:19: key 'execution.max_inflight'",
            "unknown key (given: 8)",
            "did you mean 'execution.max_in_flight'?",
            "allowed keys here: ",
            "max_in_flight",
        ),
    ),
    (
        "wrong-type-string-for-int",
        demo_with(demo={"n_samples": "many"}),
        (),
        ("{cfg}:11: key 'demo.n_samples'", "wrong type (given: 'many')", "expected an integer"),
    ),
    (
        "wrong-type-bool-for-int",
        demo_with(execution={"max_attempts": True}),
        (),
        ("{cfg}:19: key 'execution.max_attempts'", "wrong type (given: True)", "expected an integer"),
    ),
    (
        "wrong-type-literal",
        demo_with(execution={"progress": "fancy"}),
        (),
        ("key 'execution.progress'", "(given: 'fancy')", "expected one of 'auto', 'bar', 'log', 'none'"),
    ),
    (
        "section-not-a-mapping",
        demo_with(execution=5),
        (),
        ("{cfg}:18: key 'execution'", "expected a mapping of keys, got 5"),
    ),
    (
        "negative-seed",
        demo_with(seed=-1),
        (),
        ("{cfg}:5: key 'seed'", "(given: -1)", "expected a non-negative integer"),
    ),
    (
        "required-value-missing",
        NO_DEFAULTS,
        (),
        ("key 'study.name'", "required value is missing ('???')", "study.name=VALUE"),
    ),
    (
        "override-of-absent-key-without-plus",
        demo_with(),
        ("demo.nosuch=3",),
        # the demo section is typed: a new key is refused, so the `+` spelling is not offered
        ("command line override demo.nosuch=3: key 'demo.nosuch'", "no such key", "n_samples"),
    ),
    (
        "override-without-equals",
        demo_with(),
        ("demo.n_samples",),
        ("command line", "override 'demo.n_samples'", "key=value, +key=value or group=option"),
    ),
    (
        "override-with-empty-key",
        demo_with(),
        ("=5",),
        ("command line", "override '=5'", "key=value"),
    ),
    (
        "unknown-group-option",
        demo_with(),
        ("cluster=nosuch",),
        ("command line override cluster=nosuch: key 'cluster'", "cluster/nosuch.yaml", "(given: cluster=nosuch)", "available: address, local"),
    ),
    (
        "unknown-group-in-defaults-list",
        {**demo_with(), "defaults": [{"model": "ridge"}, "_self_"]},
        (),
        ("{cfg}:2: key 'defaults'", "unknown config group 'model'", "allowed groups: cluster, store"),
    ),
    (
        "unknown-cluster-backend",
        demo_with(),
        ("cluster.backend=pbs",),
        ("key 'cluster.backend'", "unknown cluster backend (given: 'pbs')", "allowed: address, local, slurm"),
    ),
    (
        "unknown-workload",
        demo_with(study={"workload": "nosuch"}),
        (),
        ("key 'study.workload'", "unknown workload (given: 'nosuch')", "allowed: demo, noop"),
    ),
    (
        # check_targets walks the whole tree right after the top-level key check, so a
        # bad _target_ is reported as such, not as an unknown key of the demo section
        "unimportable-target",
        demo_with(demo={"model": {"_target_": "sklearn.nosuch_mod.Ridge", "alpha": 1.0}}),
        (),
        (
            "{cfg}:19: key 'demo.model._target_'",
            "cannot import _target_ 'sklearn.nosuch_mod.Ridge'",
            "nosuch_mod",
        ),
    ),
    (
        # outside the allowed modules: refused as such, before any import is tried
        "target-outside-allowed-modules",
        demo_with(demo={"model": {"_target_": "nosuch_pkg.mod.Ridge", "alpha": 1.0}}),
        (),
        (
            "{cfg}:19: key 'demo.model._target_'",
            "_target_ 'nosuch_pkg.mod.Ridge' is outside the modules a config may name",
            "execution.allow_targets: [nosuch_pkg]",
        ),
    ),
    (
        "n-splits-out-of-range",
        demo_with(demo={"n_splits": 1}),
        (),
        ("{cfg}:15: key 'demo.n_splits'", "out of range (given: 1)", "expected 2 <= n_splits <= n_samples (120)"),
    ),
    (
        "max-in-flight-zero",
        demo_with(),
        ("execution.max_in_flight=0",),
        ("command line override execution.max_in_flight=0: key 'execution.max_in_flight'", "out of range (given: 0)", "expected a value > 0"),
    ),
    (
        "worker-nice-out-of-range",
        demo_with(),
        ("cluster.worker_nice=25",),
        ("command line override cluster.worker_nice=25: key 'cluster.worker_nice'", "out of range (given: 25)",
         "expected a nice increment from 0 to 19"),
    ),
    (
        "study-name-with-space",
        demo_with(study={"name": "my study"}),
        (),
        ("{cfg}:7: key 'study.name'", "invalid study name (given: 'my study')", "letters, digits, '_', '.', '-'"),
    ),
    (
        # `^...$` with re.match let a trailing newline through; the name is matched whole
        "study-name-with-trailing-newline",
        demo_with(study={"name": "demo\n"}),
        (),
        ("key 'study.name'", "invalid study name (given: 'demo\\n')", "letters, digits"),
    ),
    (
        "study-name-with-slash",
        demo_with(),
        ("study.name=a/b",),
        ("key 'study.name'", "invalid study name (given: 'a/b')", "letters, digits"),
    ),
    (
        "unresolvable-interpolation",
        demo_with(study={"description": "${nope}"}),
        (),
        ("{cfg}:9: key 'study.description'", "cannot resolve interpolation", "'nope' not found"),
    ),
    (
        "store-db-with-slash",
        demo_with(store={"db": "sub/regulas.db"}),
        (),
        ("{cfg}:19: key 'store.db'", "(given: 'sub/regulas.db')", "expected a plain file name inside store.root"),
    ),
    (
        "seed-beyond-sqlite-integer",
        demo_with(seed=2**63),
        (),
        ("{cfg}:5: key 'seed'", f"(given: {2**63})", "expected a seed below 2**63"),
    ),
    (
        "memory-limit-not-a-size",
        demo_with(),
        ("cluster.memory_limit=banana",),
        ("key 'cluster.memory_limit'", "not a memory size (given: 'banana')", "'4GiB'"),
    ),
    (
        # a worker this small is restarted by its nanny before its first task, and the run
        # used to end with "no Dask worker connected" and no word of memory
        "memory-limit-too-small",
        demo_with(),
        ("cluster.memory_limit=1KiB",),
        ("key 'cluster.memory_limit'", "too little memory for a Dask worker (given: '1KiB'", "at least 256.00 MiB per worker"),
    ),
    (
        "slurm-memory-too-small-per-process",
        demo_with(),
        ("cluster=slurm", "cluster.memory=400MiB", "cluster.cores=2", "cluster.processes=2"),
        ("key 'cluster.memory'", "shared by 2 worker processes", "at least 256.00 MiB per worker"),
    ),
    (
        "store-arrays-is-the-database",
        demo_with(),
        ("store.arrays=regulas.db",),
        ("key 'store.arrays'", "collides with the database file store.db ('regulas.db')", "arrays.zarr"),
    ),
    (
        "store-arrays-is-the-wal-file",
        demo_with(),
        ("store.db=r.sqlite", "store.arrays=r.sqlite-wal"),
        ("key 'store.arrays'", "collides with the database file", "SQLite keeps beside it"),
    ),
    (
        "store-db-reserved-name",
        demo_with(),
        ("store.db=leases",),
        ("key 'store.db'", "'leases' is a name regulas keeps for itself", "reserved: .regulas-probe, leases, logs"),
    ),
    (
        "store-root-unknown-user",
        demo_with(),
        ("store.root=~no_such_user_regulas/out",),
        ("key 'store.root'", "cannot expand '~' in the store root (given: '~no_such_user_regulas/out')", "path without ~"),
    ),
    (
        "store-arrays-dotdot",
        demo_with(),
        ("store.arrays=..",),
        ("key 'store.arrays'", "(given: '..')", "plain file name"),
    ),
]


@pytest.mark.parametrize(("body", "overrides", "parts"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_config(tmp_path: Path, body: Any, overrides: tuple[str, ...], parts: tuple[str, ...]) -> None:
    cfg = write_config(tmp_path, body)
    err = config_error(cfg, overrides)
    assert_parts(str(err), [p.replace("{cfg}", str(cfg)) for p in parts])


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    err = config_error(missing)
    assert str(err) == f"{missing}: config file not found (expected a YAML file)"
    assert err.source == str(missing)


def test_error_carries_key_and_source(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, demo_with(demo={"n_samples": "many"}))
    err = config_error(cfg)
    assert (err.key, err.source) == ("demo.n_samples", str(cfg))
    assert err.line == 11  # where `n_samples: many` is in the file


def test_store_root_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    cfg = write_config(tmp_path, demo_with(store={"root": str(tmp_path / "afile")}))
    err = config_error(cfg)
    assert_parts(str(err), ["key 'store.root'", f"(given: {str(tmp_path / 'afile')!r})", "not a folder"])


# ------------------------------------------------------------ YAML hazards

DEMO_TEXT = (CONFIGS / "demo.yaml").read_text()


def test_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    text = DEMO_TEXT.replace("  alpha: 1.0\n", "  alpha: 1.0\n  noise: 1.0\n  alpha: 10.0\n")
    cfg = write_config(tmp_path, text)
    lines = text.splitlines()
    first, second = (i + 1 for i, line in enumerate(lines) if line.startswith("  alpha:"))
    err = config_error(cfg)
    assert str(err) == f"{cfg}:{first} and {cfg}:{second}: duplicate key 'alpha' in one mapping; the later value would silently win. Keep one"


def test_duplicate_key_in_a_group_file_and_in_a_flow_mapping(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, demo_with())
    group = tmp_path / "cluster" / "local.yaml"
    group.write_text(group.read_text() + "backend: local\n")
    assert_parts(str(config_error(cfg)), [f"{group}:", f"and {group}:", "duplicate key 'backend'"])
    cfg = write_config(tmp_path / "flow", "seed: 1\nstudy: {name: a, name: b, workload: demo}\n")
    assert_parts(str(config_error(cfg)), [f"{cfg}:2 and {cfg}:2: duplicate key 'name'"])
    with pytest.raises(ConfigError, match="command line override .*duplicate key 'x'"):
        load_study(CONFIGS / "demo.yaml", ["+demo.extra={x: 1, x: 2}"])


def test_yaml_merge_keys_may_still_override(tmp_path: Path) -> None:
    text = DEMO_TEXT.replace("demo:\n", "base: &base {alpha: 1.0, noise: 2.0}\ndemo:\n  <<: *base\n").replace("  alpha: 1.0\n", "  alpha: 3.0\n")
    loaded = load_config(write_config(tmp_path, text))
    assert (loaded.demo.alpha, loaded.demo.noise) == (3.0, 1.0)


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    import time

    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    text = "\n".join(lines) + "\n"
    assert len(text) < 1024  # expands to 9**9 (~387 million) strings
    cfg = write_config(tmp_path, text)
    start = time.perf_counter()
    err = config_error(cfg)
    assert time.perf_counter() - start < 0.5
    assert_parts(str(err), [f"{cfg}:", "expands to more than 100,000 nodes", "aliases", "refused"])
    # a reasonable use of anchors still loads
    ok = write_config(tmp_path / "ok", DEMO_TEXT.replace("  alpha: 1.0\n", "  alpha: &a 1.0\n  noise: *a\n").replace("  noise: 1.0\n", "", 1))
    assert load_config(ok).demo.noise == 1.0


def test_stored_config_keeps_env_interpolations_but_the_hash_sees_their_values(monkeypatch: pytest.MonkeyPatch) -> None:
    quick = CONFIGS / "quickstart_splicing.yaml"
    secret = ["experiment.dataset.name=${oc.env:REGULAS_TEST_SECRET}", "study.description=for ${experiment.dataset.name}"]
    monkeypatch.setenv("REGULAS_TEST_SECRET", "hunter2")
    spec = load_study(quick, secret)
    assert spec.workload.config.dataset["name"] == "hunter2"  # what runs is resolved
    assert "hunter2" not in spec.yaml  # what is stored is not, even where it was interpolated
    stored = yaml.safe_load(spec.yaml)
    assert stored["experiment"]["dataset"]["name"] == "${oc.env:REGULAS_TEST_SECRET}"
    assert stored["study"]["description"] == "for ${oc.env:REGULAS_TEST_SECRET}"
    # other interpolations are stored resolved, as before
    assert stored["experiment"]["dataset"]["features"].endswith("expression_fpkm.tsv.gz")
    assert "${" not in stored["experiment"]["dataset"]["features"]
    assert spec.describe_change(spec.yaml) == ""
    # the value counts in the hash: same value, same hash; another value, another hash
    assert load_study(quick, ["experiment.dataset.name=hunter2"]).config_hash == spec.config_hash
    monkeypatch.setenv("REGULAS_TEST_SECRET", "other")
    assert load_study(quick, secret).config_hash != spec.config_hash


# ------------------------------------------------------------ _target_ resolution


def test_locate_refuses_undotted_and_missing_attribute() -> None:
    with pytest.raises(ConfigError) as info:
        locate("Ridge", key="m._target_", source="x.yaml")
    assert_parts(
        str(info.value), ["x.yaml: key 'm._target_'", "'Ridge' is not a dotted path", "sklearn.linear_model.Ridge"]
    )
    with pytest.raises(ConfigError) as info:
        locate("sklearn.linear_model.NoSuchModel")
    assert_parts(str(info.value), ["cannot import _target_ 'sklearn.linear_model.NoSuchModel'", "NoSuchModel"])


def test_check_targets_walks_lists_and_names_the_key() -> None:
    from sklearn.linear_model import Ridge

    good = {"_target_": "sklearn.linear_model.Ridge", "alpha": 1.0}
    assert locate(good["_target_"]) is Ridge
    check_targets({"pipelines": [good, {"model": good}]}, source="t.yaml")  # all importable: no error
    tree = {"pipelines": [good, {"model": {"_target_": "sklearn.linear_model.Nope"}}]}
    with pytest.raises(ConfigError) as info:
        check_targets(tree, source="t.yaml")
    assert_parts(str(info.value), ["t.yaml: key 'pipelines[1].model._target_'", "'sklearn.linear_model.Nope'"])


# ------------------------------------------------------- did you mean, and blame

DID_YOU_MEAN: list[tuple[str, str, tuple[str, ...]]] = [
    # (id, override, expected parts)
    ("override-key", "demo.n_target=500", ("key 'demo.n_target'", "no such key", "did you mean 'demo.n_targets'?")),
    ("override-section", "dmeo.n_targets=5", ("key 'dmeo.n_targets'", "did you mean 'demo.n_targets'?")),
    ("added-key", "+demo.n_target=500", ("key 'demo.n_target'", "unknown key", "did you mean 'demo.n_targets'?")),
    ("literal", "execution.progress=bars", ("(given: 'bars')", "did you mean 'bar'?", "expected one of 'auto'")),
    ("group-option", "cluster=locl", ("cluster/locl.yaml", "did you mean 'local'?", "available: address, local")),
    ("backend", "cluster.backend=locl", ("unknown cluster backend (given: 'locl')", "did you mean 'local'?")),
    ("workload", "study.workload=dmeo", ("unknown workload (given: 'dmeo')", "did you mean 'demo'?")),
    ("top-level", "+exectuion.x=1", ("unknown top-level key", "did you mean 'execution'?")),
]


@pytest.mark.parametrize(("override", "parts"), [c[1:] for c in DID_YOU_MEAN], ids=[c[0] for c in DID_YOU_MEAN])
def test_did_you_mean_blames_the_override(tmp_path: Path, override: str, parts: tuple[str, ...]) -> None:
    cfg = write_config(tmp_path, demo_with())
    message = str(config_error(cfg, (override,)))
    assert message.startswith(f"command line override {override}: "), message
    assert_parts(message, parts)
    assert str(cfg) not in message


def test_plus_is_offered_only_where_a_key_may_be_added(tmp_path: Path) -> None:
    # the demo section is a dataclass: `+demo.n_target=...` would fail as an unknown key
    err = config_error(write_config(tmp_path, demo_with()), ("demo.n_target=500",))
    assert "+demo.n_target" not in str(err)
    # regnet.covariances is an open mapping (name -> matrix): adding a key there is legal
    with pytest.raises(ConfigError) as info:
        load_study(CONFIGS / "regnet.yaml", ["regnet.covariances.mine=[[1.0]]"])
    assert_parts(str(info.value), ["key 'regnet.covariances.mine'", "to add it, write +regnet.covariances.mine=..."])
    # without validation at hand (the bare loader) adding stays the suggestion
    with pytest.raises(ConfigError, match=r"to add it, write \+demo\.nosuch=\.\.\."):
        load_config(write_config(tmp_path, demo_with()), ["demo.nosuch=3"])


def test_bad_value_is_blamed_on_the_command_line_not_the_file(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, demo_with())
    err = config_error(cfg, ("demo.n_samples=-1",))
    assert str(err) == (
        "command line override demo.n_samples=-1: key 'demo.n_samples': out of range (given: -1); expected a value > 0"
    )
    # the same value in the file names the file and the line of the key
    cfg = write_config(tmp_path, demo_with(demo={"n_samples": -1}))
    line = cfg.read_text().splitlines().index("  n_samples: -1") + 1
    assert str(config_error(cfg)).startswith(f"{cfg}:{line}: key 'demo.n_samples': out of range (given: -1)")


def test_bad_value_in_a_group_file_names_that_file_and_line(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, demo_with())
    group_file = tmp_path / "cluster" / "local.yaml"
    text = group_file.read_text()
    group_file.write_text(text.replace("threads_per_worker: 1", "threads_per_worker: 0"))
    line = group_file.read_text().splitlines().index(
        next(ln for ln in group_file.read_text().splitlines() if ln.startswith("threads_per_worker: 0"))
    ) + 1
    err = config_error(cfg)
    assert str(err).startswith(f"{group_file}:{line}: key 'cluster.threads_per_worker': out of range (given: 0)"), err
    # a group option given on the command line is blamed on it, not on the config's defaults list
    assert str(config_error(cfg, ("cluster=nosuch",))).startswith("command line override cluster=nosuch: ")


# ------------------------------------------------------------- documented bugs


@pytest.mark.parametrize(
    ("body", "overrides", "check"),
    [
        (NO_DEFAULTS, ("study.name=given",), lambda s: s.study.name == "given"),
        (demo_with(), ("cluster=address", "cluster.address=tcp://127.0.0.1:8786"),
         lambda s: s.cluster.address == "tcp://127.0.0.1:8786"),
    ],
    ids=["study.name", "cluster.address"],
)
def test_override_fills_required_value(
    tmp_path: Path, body: Any, overrides: tuple[str, ...], check: Callable[[Any], bool]
) -> None:
    # the 'required value is missing' message tells the user to do exactly this
    spec = load_study(write_config(tmp_path, body), overrides)
    assert check(spec)


@pytest.mark.parametrize("override", ["demo.alpha=.nan", "execution.commit_every_s=.nan"])
def test_nan_is_out_of_range(tmp_path: Path, override: str) -> None:
    err = config_error(write_config(tmp_path, demo_with()), (override,))
    assert_parts(str(err), [f"key '{override.split('=')[0]}'", "nan"])


@pytest.mark.parametrize(
    "body",
    ["seed: 1\nstudy: {name: x\n", demo_with(study={"description": "${nope}"})],
    ids=["invalid-yaml", "interpolation"],
)
def test_cli_error_is_one_line_for_parser_errors(
    tmp_path: Path, body: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, body)
    code = cli.main(["show-config", str(cfg)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("regulas: error: ")
    assert len(err.splitlines()) == 1, err


# ------------------------------------------------------- configs name code deliberately

QUICK: dict[str, Any] = yaml.safe_load((CONFIGS / "quickstart_splicing.yaml").read_text())


def splicing_with(**experiment: Any) -> dict[str, Any]:
    out = copy.deepcopy(QUICK)
    out["experiment"].update(experiment)
    return out


@pytest.fixture
def no_extra_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the _target_ modules configs loaded earlier in this process allowed."""
    from regulas.core.config import targets

    monkeypatch.setattr(targets, "_EXTRA_ALLOWED", [])


@pytest.mark.parametrize("slot", ["split", "dataset", "inner_cv"])
def test_target_outside_the_allow_list_is_refused_before_import(tmp_path: Path, slot: str, no_extra_targets: None) -> None:
    cfg = write_config(tmp_path, splicing_with(**{slot: {"_target_": "os.system", "command": f"touch {tmp_path / 'pwned'}"}}))
    err = config_error(cfg)
    assert err.key == f"experiment.{slot}._target_"
    assert_parts(str(err), [
        f"{cfg}:", f"key 'experiment.{slot}._target_'", "_target_ 'os.system' is outside the modules a config may name",
        "(allowed: sklearn, scipy, numpy, regulas, regulAS", "execution.allow_targets: [os]",
    ])
    assert not (tmp_path / "pwned").exists()


def test_check_targets_checks_every_target_before_importing_any() -> None:
    tree = {"a": {"_target_": "sklearn.nosuch_module.X"}, "b": [{"_target_": "subprocess.run"}]}
    with pytest.raises(ConfigError, match=r"key 'b\[0\]._target_': _target_ 'subprocess.run' is outside"):
        check_targets(tree)
    check_targets({"b": {"_target_": "json.dumps"}}, allow=["json"])  # extended explicitly
    with pytest.raises(ConfigError, match="'jsonx.dumps' is outside"):
        check_targets({"b": {"_target_": "jsonx.dumps"}}, allow=["json"])  # a prefix is a module, not a string prefix
    with pytest.raises(ConfigError, match="outside"):
        locate("os.system")


@pytest.mark.parametrize(
    ("slot", "target", "expected"),
    [
        ("split", "sklearn.linear_model.Ridge", "expected a cross-validation splitter class (with a split method)"),
        ("inner_cv", "sklearn.model_selection.train_test_split", "expected a cross-validation splitter class"),
        ("dataset", "sklearn.linear_model.Ridge", "expected a regulas data loader class (a regulas.data.Loader subclass)"),
        ("dataset", "os.system", "expected a regulas data loader class"),  # allowed by the config, still not a loader
    ],
)
def test_each_target_slot_checks_what_it_names(tmp_path: Path, slot: str, target: str, expected: str, no_extra_targets: None) -> None:
    body = splicing_with(**{slot: {"_target_": target}})
    body["execution"] = {"allow_targets": ["os"]}
    cfg = write_config(tmp_path, body)
    err = config_error(cfg)
    assert_parts(str(err), [f"key 'experiment.{slot}._target_'", f"{target!r} cannot be used here", expected])
    from regulas.core.config.targets import extra_allowed

    assert extra_allowed() == []  # a config that failed validation allows nothing afterwards


def test_allow_targets_extends_the_list_for_the_config_and_its_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_extra_targets: None
) -> None:
    import pickle

    (tmp_path / "mylab_cv.py").write_text("from sklearn.model_selection import KFold\n\n\nclass FiveFold(KFold):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    body = splicing_with(split={"_target_": "mylab_cv.FiveFold", "n_splits": 5})
    cfg = write_config(tmp_path, body)
    assert_parts(str(config_error(cfg)), ["'mylab_cv.FiveFold' is outside", "execution.allow_targets: [mylab_cv]"])
    assert_parts(str(config_error(cfg, ["execution.allow_targets=[mylab-cv]"])), ["key 'execution.allow_targets[0]'", "not a module prefix"])
    spec = load_study(cfg, ["execution.allow_targets=[mylab_cv]"])
    assert type(spec.workload._splitter(0)).__name__ == "FiveFold"
    assert yaml.safe_load(spec.yaml)["execution"]["allow_targets"] == ["mylab_cv"]
    from regulas.core.config import targets

    shipped = pickle.dumps(spec.workload)
    monkeypatch.setattr(targets, "_EXTRA_ALLOWED", [])  # as in a fresh worker process
    assert type(pickle.loads(shipped)._splitter(0)).__name__ == "FiveFold"


# ---------------------------------------------------------------- through the CLI

CLI_CASES: dict[str, tuple[Any, tuple[str, ...], tuple[str, ...]]] = {
    # name: (config body, extra CLI args, expected parts of the error line)
    "missing-name": (NO_DEFAULTS, (), ("key 'study.name'", "study.name=VALUE")),
    "unknown-top-level": (demo_with(), ("+extra=3",), ("key 'extra'", "unknown top-level key (given: 3)")),
    "out-of-range": (demo_with(), ("demo.n_splits=1",), ("key 'demo.n_splits'", "out of range (given: 1)")),
    # each of these used to create the store, then end in a traceback with exit 1
    "seed-beyond-sqlite-integer": (demo_with(), (f"seed={2**63}",), ("key 'seed'", "expected a seed below 2**63")),
    "arrays-collide-with-db": (demo_with(), ("store.arrays=regulas.db",), ("key 'store.arrays'", "collides with the database")),
    # used to end, after 60 s, as "could not start a LocalCluster" behind a dask traceback
    "memory-limit-banana": (demo_with(), ("cluster.memory_limit=banana",), ("key 'cluster.memory_limit'", "not a memory size")),
}


CliRun = tuple[subprocess.CompletedProcess[str], Path, Path]

# a config that names os.system where a splitter and a loader belong: refused before anything runs
PWNED = "touch {folder}/pwned"
CLI_TARGET_CASES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # name: (slots given os.system, expected parts of the error line)
    "os-system-split": (("split",), ("key 'experiment.split._target_'", "'os.system' is outside", "execution.allow_targets")),
    "os-system-dataset": (("dataset",), ("key 'experiment.dataset._target_'", "'os.system' is outside", "execution.allow_targets")),
    "os-system-both": (("split", "dataset"), ("'os.system' is outside", "allowed: sklearn, scipy, numpy, regulas, regulAS")),
}


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CliRun]:
    """Start every CLI case at once; name -> (finished process, config, store root)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started: dict[str, tuple[subprocess.Popen[str], list[str], Path, Path]] = {}
    cases = {name: ("run", *case) for name, case in CLI_CASES.items()}
    cases["show-config"] = (
        "show-config",
        demo_with(),
        ("demo.alpha=2.5", "+demo.trace_dir=/tmp/traces", "study.description=${study.name}-seed${seed}"),
        (),
    )
    for name, (slots, _) in CLI_TARGET_CASES.items():
        cases[name] = ("run", splicing_with(**{slot: {"_target_": "os.system", "command": PWNED} for slot in slots}), (), ())
    for name, (command, body, extra, _) in cases.items():
        folder = tmp_path_factory.mktemp(name)
        if name in CLI_TARGET_CASES:
            body = yaml.safe_load(yaml.safe_dump(body).replace(PWNED, PWNED.format(folder=folder)))
        cfg = write_config(folder, body)
        root = folder / "out"
        args = [sys.executable, "-m", "regulas", command, str(cfg), *extra, f"store.root={root}"]
        proc = subprocess.Popen(args, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started[name] = (proc, args, cfg, root)
    out = {}
    for name, (proc, args, cfg, root) in started.items():
        stdout, stderr = proc.communicate(timeout=180)
        out[name] = (subprocess.CompletedProcess(args, proc.returncode, stdout, stderr), cfg, root)
    return out


@pytest.mark.parametrize("name", list(CLI_CASES))
def test_cli_bad_config_exits_2_with_one_line(cli_runs: dict[str, CliRun], name: str) -> None:
    proc, cfg, root = cli_runs[name]
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("regulas: error: ")
    assert_parts(lines[0], CLI_CASES[name][2])
    assert proc.stdout == ""
    assert not (root / "regulas.db").exists()
    assert not root.exists(), "nothing may be created before the config is valid"
    assert not (cfg.parent / "regulas-out").exists()


@pytest.mark.parametrize("name", list(CLI_TARGET_CASES))
def test_cli_target_outside_the_allow_list_runs_nothing(cli_runs: dict[str, CliRun], name: str) -> None:
    proc, cfg, root = cli_runs[name]
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("regulas: error: "), proc.stderr
    assert_parts(lines[0], CLI_TARGET_CASES[name][1])
    assert not (cfg.parent / "pwned").exists(), "the config's command ran"
    assert not root.exists() and not (cfg.parent / "regulas-out").exists(), "nothing may be created"


def test_cli_show_config_prints_resolved_overrides(cli_runs: dict[str, CliRun]) -> None:
    proc, _cfg, root = cli_runs["show-config"]
    assert proc.returncode == 0, proc.stderr
    shown = yaml.safe_load(proc.stdout)
    assert shown["demo"]["alpha"] == 2.5
    assert shown["demo"]["trace_dir"] == "/tmp/traces"  # added with '+'
    assert shown["demo"]["n_samples"] == DEMO["demo"]["n_samples"]  # untouched value kept
    assert shown["study"]["description"] == f"demo-seed{DEMO['seed']}"  # interpolated
    assert shown["store"]["root"] == str(root)
    assert not root.exists()  # show-config creates nothing


# ------------------------------------------------------------ loader, positive


def test_loader_adds_keys_and_resolves_interpolation(tmp_path: Path) -> None:
    body = demo_with(study={"description": "${study.name} with ${demo.n_samples} samples"})
    cfg = write_config(tmp_path, body)
    overrides = ["+demo.x=1", "+extra.deep.list=[1, 2]", "demo.alpha=0.5", "+study.tag=${study.name}-${seed}"]
    loaded = load_config(cfg, overrides)
    assert loaded.demo.x == 1
    assert list(loaded.extra.deep.list) == [1, 2]
    assert loaded.demo.alpha == 0.5
    assert loaded.study.tag == f"demo-{DEMO['seed']}"
    assert loaded.study.description == f"demo with {DEMO['demo']['n_samples']} samples"
    # the group files were merged in: keys only the cluster/local.yaml file and defaults have
    assert loaded.cluster.backend == "local" and loaded.store.db == "regulas.db"


def test_loader_group_override_replaces_whole_section(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, demo_with())
    loaded = load_config(cfg, ["cluster=address", "+cluster.address=tcp://127.0.0.1:8786"])
    assert loaded.cluster.backend == "address"
    assert loaded.cluster.address == "tcp://127.0.0.1:8786"
    assert "n_workers" not in loaded.cluster  # the local backend's keys are not inherited


@dataclasses.dataclass(frozen=True)
class _WithPaths:
    table: str = dataclasses.field(default="x.tsv", metadata={"path": "file"})
    folder: str | None = dataclasses.field(default=None, metadata={"path": "dir"})


def test_missing_input_file_and_folder_are_named(tmp_path: Path) -> None:
    from regulas.core.config.typed import build

    present = tmp_path / "psi.tsv"
    present.write_text("a\n")
    assert build(_WithPaths, {"table": str(present)}, "data").table == str(present)
    with pytest.raises(ConfigError) as err:
        build(_WithPaths, {"table": str(tmp_path / "nope.tsv")}, "data", source="exp.yaml")
    msg = str(err.value)
    assert msg.startswith("exp.yaml: key 'data.table': file not found")
    assert "nope.tsv" in msg and "expected an existing file" in msg
    with pytest.raises(ConfigError, match=r"key 'data.folder': folder not found .* expected an existing folder"):
        build(_WithPaths, {"table": str(present), "folder": str(present)}, "data")  # a file is not a folder


def test_study_hash_ignores_how_a_study_runs_but_not_what_it_computes() -> None:
    demo = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
    base = load_study(demo, ["store.root=/tmp/a"]).config_hash
    runtime = ["store.root=/tmp/b", "demo.sleep_s=0.5", "demo.trace_dir=/tmp/t", "cluster.n_workers=1",
               "execution.max_attempts=5", "study.description=again"]
    assert load_study(demo, runtime).config_hash == base  # a resume with other run settings is allowed
    for changed in ("demo.alpha=2.0", "seed=7", "demo.fail_blocks=[1]", "demo.n_splits=4"):
        assert load_study(demo, [changed]).config_hash != base, changed


# ------------------------------------------------------------ usage and --help


def test_run_without_config_says_a_config_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["run"])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert "usage: regulas run [-h] [--restart] config [overrides ...]" in err
    assert err.rstrip().endswith("the following arguments are required: config"), err


def test_status_defaults_to_the_default_store_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["status"]) == 2  # an argument error would raise SystemExit instead
    err = capsys.readouterr().err
    assert err.startswith("regulas: error: ") and str(tmp_path / "regulas-out") in err, err


@pytest.mark.parametrize("command", [[], ["run"], ["report"], ["status"], ["show-config"], ["cluster-script"]])
def test_help_is_plain_text(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main([*command, "--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: regulas")
    assert "``" not in out and ":func:" not in out, out
