"""Bad splicing inputs: one clear message (exit 2) before any work, and the store untouched.

Each case corrupts a real file or config key of a small valid study, runs the real CLI
and checks the one-line message names what is wrong and that no database (or, for a
study that already ran, no change to it) results.
"""

from __future__ import annotations

import hashlib
import pickle
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from test_splicing import study_config, write_dataset

from conftest import QUIET, query, run_cli

Case = Callable[[Path, Path, Path], tuple[list[str], list[str]]]  # -> (overrides, expected message parts)


def _edit_tsv(path: Path, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    frame = pd.read_csv(path, sep="\t", index_col=0, dtype=str)
    edit(frame).to_csv(path, sep="\t")


def unaligned(folder: Path, expr: Path, psi: Path) -> tuple[list[str], list[str]]:
    _edit_tsv(psi, lambda f: f.rename(index=lambda s: s.replace("S", "T")))
    return ["+experiment.dataset.unaligned_samples=fail"], [psi.name, "T000", "S000"]


def duplicated(folder: Path, expr: Path, psi: Path) -> tuple[list[str], list[str]]:
    _edit_tsv(psi, lambda f: f.rename(index={"S001": "S000"}))
    return [], ["duplicate", "S000"]


def psi_out_of_range(folder: Path, expr: Path, psi: Path) -> tuple[list[str], list[str]]:
    def edit(f: pd.DataFrame) -> pd.DataFrame:
        f.loc["S004", "EV002"] = "1.5"
        return f

    _edit_tsv(psi, edit)
    return [], [psi.name, "EV002", "S004", "[0, 1]"]


def non_numeric(folder: Path, expr: Path, psi: Path) -> tuple[list[str], list[str]]:
    def edit(f: pd.DataFrame) -> pd.DataFrame:
        f.loc["S003", "RBP2"] = "n/a?"
        return f

    _edit_tsv(expr, edit)
    return [], [expr.name, "experiment.dataset.features", "non-numeric cell", "'S003'", "'RBP2'", "'n/a?'",
                "expected a number or an empty cell"]


def all_nan_event(folder: Path, expr: Path, psi: Path) -> tuple[list[str], list[str]]:
    def edit(f: pd.DataFrame) -> pd.DataFrame:
        f["EV005"] = ""
        return f

    _edit_tsv(psi, edit)
    return ["+experiment.dataset.all_nan_events=fail"], [
        psi.name, "experiment.dataset.targets", "no PSI value in any of the 48 samples", "'EV005'",
        "expected at least one value per event",
    ]


def no_rbp_left(folder: Path, expr: Path, psi: Path) -> tuple[list[str], list[str]]:
    rbps = folder / "rbps.tsv"
    rbps.write_text("symbol\tis_splicing_factor\nSRSF1\ttrue\nQKI\tfalse\n")
    return [f"+experiment.dataset.rbp_list={rbps}"], ["rbps.tsv", "no gene"]


def empty_targets(folder: Path, expr: Path, psi: Path) -> tuple[list[str], list[str]]:
    psi.unlink()
    empty = psi.with_name("empty.tsv")
    empty.write_text("sample\n")
    return [f"experiment.dataset.targets={empty}"], [
        "empty.tsv", "experiment.dataset.targets", "empty table (0 rows x 0 columns)", "expected at least one row"
    ]


def pickle_by_extension(folder: Path, expr: Path, psi: Path) -> tuple[list[str], list[str]]:
    path = folder / "psi.pkl"
    with path.open("wb") as fh:
        pickle.dump(pd.DataFrame({"a": [1.0]}), fh)
    return [f"experiment.dataset.targets={path}"], ["psi.pkl", "PickleLoader"]


def missing_file(folder: Path, expr: Path, psi: Path) -> tuple[list[str], list[str]]:
    return [f"experiment.dataset.features={folder / 'nope.tsv'}"], [
        "nope.tsv", "experiment.dataset.features", "file not found", "expected an existing file"
    ]


def unknown_model(folder: Path, expr: Path, psi: Path) -> tuple[list[str], list[str]]:
    return ["experiment.pipelines[0].model.Ridge._target_=sklearn.linear_model.Ridgy"], [
        "sklearn.linear_model.Ridgy", "experiment.pipelines[0]"
    ]


def empty_grid(folder: Path, expr: Path, psi: Path) -> tuple[list[str], list[str]]:
    return ["experiment.pipelines[1].model.SupportVectorMachine._varargs_.C=[]"], ["experiment.pipelines[1]", "C"]


def unknown_parameter(folder: Path, expr: Path, psi: Path) -> tuple[list[str], list[str]]:
    return ["+experiment.pipelines[0].model.Ridge.alpah=1.0"], ["alpah", "experiment.pipelines[0]"]


def same_pipeline_twice(folder: Path, expr: Path, psi: Path) -> tuple[list[str], list[str]]:
    return [
        "experiment.pipelines[1].transformations={ZScore: {_target_: sklearn.preprocessing.StandardScaler}}",
        "experiment.pipelines[1].model={Ridge: {_target_: sklearn.linear_model.Ridge, _varargs_: {alpha: [0.5, 5.0, 50.0]}}}",
    ], ["experiment.pipelines[1]", "same pipeline as pipelines[0]"]


def bad_selection(folder: Path, expr: Path, psi: Path) -> tuple[list[str], list[str]]:
    return ["experiment.selection=best"], ["experiment.selection", "nested", "outer"]


def too_many_splits(folder: Path, expr: Path, psi: Path) -> tuple[list[str], list[str]]:
    return ["experiment.split={_target_: sklearn.model_selection.KFold, n_splits: 100}"], ["n_splits=100"]


def unknown_report_dependency(folder: Path, expr: Path, psi: Path) -> tuple[list[str], list[str]]:
    return [
        "+experiment.reports={CSV: {_target_: regulAS.reports.ExportCSV, _depends_on_: [MSE], sep: ';'}}"
    ], ["MSE", "_depends_on_"]


CASES: list[Case] = [
    unaligned, duplicated, psi_out_of_range, non_numeric, all_nan_event, no_rbp_left, empty_targets,
    pickle_by_extension, missing_file, unknown_model, empty_grid, unknown_parameter, same_pipeline_twice,
    bad_selection, too_many_splits, unknown_report_dependency,
]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_bad_input_is_one_clear_message_and_no_store(tmp_path: Path, case: Case) -> None:
    expr, psi = write_dataset(tmp_path)
    config = study_config(tmp_path, expr, psi)
    overrides, expected = case(tmp_path, expr, psi)
    proc = run_cli(["run", str(config), *overrides, *QUIET])
    check_message(proc, expected)
    assert not (tmp_path / "out").exists()  # nothing created: no database, no arrays


def check_message(proc: subprocess.CompletedProcess[str], expected: list[str]) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("regulas: error: "), proc.stderr
    for part in expected:
        assert part in lines[0], f"{part!r} not in {lines[0]!r}"


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (the database, the Zarr chunks, the reports)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("finished")
    expr, psi = write_dataset(folder)
    config = study_config(folder, expr, psi)
    first = run_cli(["run", str(config), "cluster.n_workers=1", *QUIET])
    assert first.returncode == 0, first.stdout + first.stderr
    return folder, config


STORE_CASES: list[Case] = [psi_out_of_range, non_numeric, all_nan_event, duplicated, unknown_model, too_many_splits,
                           unknown_report_dependency]


@pytest.mark.parametrize("case", STORE_CASES, ids=[c.__name__ for c in STORE_CASES])
def test_bad_input_leaves_an_existing_store_unchanged(finished_study: tuple[Path, Path], tmp_path: Path, case: Case) -> None:
    folder, config = finished_study
    before = tree_digest(folder / "out")
    assert any(name.endswith("regulas.db") for name in before) and any("arrays.zarr" in name for name in before)
    # the same study config on copies of its data, corrupted by the case
    expr, psi = (Path(shutil.copy(folder / name, tmp_path / name)) for name in ("expression.tsv", "psi.tsv.gz"))
    overrides, expected = case(tmp_path, expr, psi)
    proc = run_cli(["run", str(config), f"experiment.dataset.features={expr}", f"experiment.dataset.targets={psi}",
                    *overrides, *QUIET])
    check_message(proc, expected)
    assert tree_digest(folder / "out") == before  # not one byte of the database, arrays or reports changed


def test_after_bad_runs_the_study_resumes_with_nothing_to_do(finished_study: tuple[Path, Path]) -> None:
    folder, config = finished_study
    db = folder / "out" / "regulas.db"
    counts = "SELECT (SELECT count(*) FROM splice_score), (SELECT count(*) FROM splice_importance)"
    ((runs,),) = query(db, "SELECT runs FROM study")
    ((scores, importances),) = query(db, counts)
    assert scores == 24 * 2 * 3  # events x pipelines x splits
    proc = run_cli(["run", str(config), "cluster.n_workers=1", *QUIET])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "18 were already done, 0 done now" in proc.stdout, proc.stdout
    assert query(db, "SELECT runs, status FROM study") == [(runs + 1, "done")]
    # the rerun rewrote splice_model (it must not delete it: the results reference it)
    assert query(db, counts) == [(scores, importances)]
