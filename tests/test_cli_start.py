"""`regulas --help` and `regulas show-config` start fast: they import none of the heavy packages.

Not timed (wall times depend on the machine; benchmarks/cli_start.py measures them): each
command runs in a fresh interpreter that then prints which heavy packages it imported.
``show-config`` checks each ``_target_`` from its module's source
(:func:`regulas.core.config.targets.find_target`); the static path is tested here on a
package written to tmp_path whose import leaves a mark, so that "not imported" is seen.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from regulas.core.config.targets import checked_target, find_target, without_importing
from regulas.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("dask", "distributed", "zarr", "matplotlib", "sklearn", "sqlalchemy", "scipy")

# runs one CLI command (or load_study, as `regulas run` validates) in a fresh interpreter, then
# prints the heavy packages imported
PROBE = f"""
import sys
from regulas.cli import main
from regulas.study import load_study
args = sys.argv[1:]
try:
    if args[0] == "load_study":
        load_study(args[1], args[2:])
    else:
        main(args)
except SystemExit:
    pass
print("IMPORTED", sorted({{m.split(".")[0] for m in sys.modules}} & {set(HEAVY)}))
"""

QUICK = "configs/quickstart_splicing.yaml"
COMMANDS: dict[str, tuple[str, ...]] = {
    "help": ("--help",),
    "show-config-help": ("show-config", "--help"),
    "quickstart": ("show-config", QUICK),
    "regnet": ("show-config", "configs/regnet.yaml"),
    # regulAS's own format; any existing file stands for the pickle
    "regulas-experiment": ("show-config", "examples/regulas/experiment.yaml", "dataset.path_to_file=README.md"),
    "misspelt-class": ("show-config", QUICK, "experiment.pipelines[0].model.Ridge._target_=sklearn.linear_model.Ridgee"),
    # the control: the checks of `regulas run` import the classes the config names
    "run-validation": ("load_study", QUICK),
}


@pytest.fixture(scope="module")
def probes() -> dict[str, subprocess.CompletedProcess[str]]:
    """Every command at once, each in a fresh interpreter; name -> finished process."""
    started = {
        name: subprocess.Popen([sys.executable, "-c", PROBE, *args], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        for name, args in COMMANDS.items()
    }
    out = {}
    for name, proc in started.items():
        stdout, stderr = proc.communicate(timeout=120)
        out[name] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    return out


def imported(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stdout.splitlines() if line.startswith("IMPORTED ")]
    assert len(lines) == 1, proc.stdout + proc.stderr
    return lines[0].removeprefix("IMPORTED ")


@pytest.mark.parametrize("name", ["help", "show-config-help", "quickstart", "regnet", "regulas-experiment", "misspelt-class"])
def test_help_and_show_config_import_no_heavy_package(probes: dict[str, subprocess.CompletedProcess[str]], name: str) -> None:
    proc = probes[name]
    assert imported(proc) == "[]", proc.stderr


def test_show_config_prints_the_config(probes: dict[str, subprocess.CompletedProcess[str]]) -> None:
    assert "workload: splicing" in probes["quickstart"].stdout
    assert "workload: regnet" in probes["regnet"].stdout
    assert "path_to_file: README.md" in probes["regulas-experiment"].stdout


def test_show_config_refuses_a_misspelt_class_without_importing_its_module(
    probes: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    err = probes["misspelt-class"].stderr.splitlines()
    assert len(err) == 1 and err[0].startswith("regulas: error: "), err
    for part in ("key 'experiment.pipelines[0].model.Ridge._target_'",
                 "cannot import _target_ 'sklearn.linear_model.Ridgee'", "did you mean 'Ridge'?"):
        assert part in err[0]


def test_run_validation_still_imports_the_targets(probes: dict[str, subprocess.CompletedProcess[str]]) -> None:
    assert "'sklearn'" in imported(probes["run-validation"]), probes["run-validation"].stderr


# --------------------------------------------------------- the static path, on a package of ours


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A package ``lab_fast`` whose modules write a mark file when imported; returns the marks folder."""
    marks = tmp_path / "marks"
    marks.mkdir()
    pkg = tmp_path / "lab_fast"
    pkg.mkdir()
    mark = f"from pathlib import Path\nPath({str(marks)!r}, __name__).touch()\n"
    (pkg / "__init__.py").write_text(mark)
    (pkg / "models.py").write_text(mark + "from json import dumps as Ridge2\n\n\nclass Ridge:\n    pass\n\n\n"
                                   "if True:\n    class Lasso:\n        pass\n")
    (pkg / "star.py").write_text(mark + "from lab_fast.models import *\n")
    (pkg / "lazy.py").write_text(mark + "class Late:\n    pass\n\n\ndef __getattr__(name):\n    if name == 'Later':\n"
                                 "        return Late\n    raise AttributeError(name)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield marks
    for name in [m for m in sys.modules if m.split(".")[0] == "lab_fast"]:
        del sys.modules[name]


def marks_of(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_static_check_finds_names_without_importing(lab: Path) -> None:
    for target in ("lab_fast.models.Ridge", "lab_fast.models.Ridge2", "lab_fast.models.Lasso", "lab_fast.star.Ridge"):
        find_target(target, allow=["lab_fast"])
    with without_importing():
        assert checked_target("lab_fast.models.Ridge", allow=["lab_fast"]) is None
    assert marks_of(lab) == []
    assert "lab_fast" not in sys.modules
    # outside without_importing the target is located, i.e. imported
    assert checked_target("lab_fast.models.Ridge", allow=["lab_fast"]).__name__ == "Ridge"
    assert marks_of(lab) == ["lab_fast", "lab_fast.models"]


@pytest.mark.parametrize(
    ("target", "parts"),
    [
        ("lab_fast.models.Ridgee", ("module 'lab_fast.models' has no attribute 'Ridgee'", "did you mean 'Ridge'?")),
        ("lab_fast.modls.Ridge", ("module 'lab_fast' has no attribute 'modls'", "did you mean 'models'?")),
        ("lab_fast.star.Lassso", ("module 'lab_fast.star' has no attribute 'Lassso'", "did you mean 'Lasso'?")),
    ],
)
def test_static_check_refuses_misspelt_names_as_an_import_would(lab: Path, target: str, parts: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError) as info:
        find_target(target, key="m._target_", source="x.yaml", allow=["lab_fast"])
    message = str(info.value)
    for part in ("x.yaml: key 'm._target_'", f"cannot import _target_ {target!r}", *parts):
        assert part in message
    assert marks_of(lab) == []  # refused from the source alone


def test_static_check_imports_a_module_that_resolves_names_lazily(lab: Path) -> None:
    find_target("lab_fast.lazy.Late", allow=["lab_fast"])  # defined in the source
    assert marks_of(lab) == []
    find_target("lab_fast.lazy.Later", allow=["lab_fast"])  # only its __getattr__ knows
    assert marks_of(lab) == ["lab_fast", "lab_fast.lazy"]
    with pytest.raises(ConfigError, match="cannot import _target_ 'lab_fast.lazy.Nope'"):
        find_target("lab_fast.lazy.Nope", allow=["lab_fast"])


def test_static_check_keeps_the_allow_list(lab: Path) -> None:
    with pytest.raises(ConfigError, match="'lab_fast.models.Ridge' is outside the modules a config may name"):
        find_target("lab_fast.models.Ridge")
    assert marks_of(lab) == []


def test_static_check_imports_rather_than_read_too_much_source(lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from regulas.core.config import source_names

    monkeypatch.setattr(source_names, "STAR_SOURCE_BUDGET", 10)  # bytes: less than lab_fast/models.py
    find_target("lab_fast.star.Ridge", allow=["lab_fast"])
    assert marks_of(lab) == ["lab_fast", "lab_fast.models", "lab_fast.star"]


def test_static_check_reads_a_changed_module_again(lab: Path) -> None:
    models = lab.parent / "lab_fast" / "models.py"
    with pytest.raises(ConfigError, match="has no attribute 'ElasticNet'"):
        find_target("lab_fast.models.ElasticNet", allow=["lab_fast"])
    models.write_text(models.read_text() + "\n\nclass ElasticNet:\n    pass\n")
    stat = models.stat()
    os.utime(models, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a later version, whatever the clock's resolution
    find_target("lab_fast.models.ElasticNet", allow=["lab_fast"])
    assert marks_of(lab) == []
