"""examples/regulas end to end, with the commands of its README: pickles in regulAS's format
from the packaged GSE114922, regulAS's experiment file and its report file, on a real LocalCluster."""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from conftest import QUIET, REPO, query, run_cli
from regulas.datasets import load_gse114922

EXAMPLE = REPO / "examples" / "regulas"


def make_pickles() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_pickles", EXAMPLE / "make_pickles.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_pickles_writes_regulas_format(tmp_path: Path) -> None:
    written = make_pickles().main(["--events", "3", "--out", str(tmp_path)])
    assert len(written) == 3
    psi = load_gse114922().psi
    for path in written:
        assert path.parent.parent == tmp_path and path.name.startswith(path.parent.name + "_")  # <out>/<gene>/<gene>_<setup>.pkl
        with path.open("rb") as fh:
            frame = pickle.load(fh)
        assert isinstance(frame, pd.DataFrame) and frame.columns[-1] == "psi" and frame.shape[0] == 40
        assert frame.shape[1] > 800 and not frame.isna().any().any()
        event = next(e for e in psi.columns if path.name == f"{path.parent.name}_{e.partition(':')[2].replace(':', '_')}.pkl")
        assert frame["psi"].tolist() == psi[event].tolist()


@pytest.mark.slow
def test_example_experiment_and_report_run_as_in_its_readme(tmp_path: Path) -> None:
    (pkl,) = make_pickles().main(["--events", "1", "--out", str(tmp_path / "data")])
    store = f"store.root={tmp_path / 'out'}"
    proc = run_cli(["run", str(EXAMPLE / "experiment.yaml"), f"dataset.path_to_file={pkl}", "random_state=42", store,
                    "cluster.n_workers=2", *QUIET], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    db = tmp_path / "out" / "regulas.db"
    ((name, seed, status),) = query(db, "SELECT name, root_seed, status FROM study")
    assert name.startswith("lr_svr_tmr-") and (seed, status) == (42, "done")  # named after the experiment and its data
    assert query(db, "SELECT count(*) FROM splice_score") == [(1 * 6 * 5,)]  # event x grid point (regulAS's selection) x split
    assert query(db, "SELECT name FROM splice_event") == [("psi",)]

    rep = run_cli(["run", str(EXAMPLE / "report.yaml"), store], cwd=tmp_path)
    assert rep.returncode == 0, rep.stdout + rep.stderr
    folder = tmp_path / "out" / "reports" / "lr_svr_tmr" / "reports"
    assert sorted(p.name for p in folder.glob("*.csv")) == ["FeatureRanking.csv", "MSE.csv", "PearsonR.csv"]
    mse = pd.read_csv(folder / "MSE.csv", sep=";", comment="#")
    assert set(mse["study"]) == {name} and len(mse) == 6
    assert {p.partition(" ")[0] for p in mse["pipeline"]} == {"MinMax+SupportVectorMachine", "ZScore+LinearRegression"}
    ranking = pd.read_csv(folder / "FeatureRanking.csv", sep=";", comment="#")
    assert len(ranking) > 0 and set(ranking["feature"]) <= set(pd.read_pickle(pkl).columns[:-1])
