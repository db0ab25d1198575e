"""Many regulAS per-event files, one study: globs, lists and comma lists of pickles (and of
target tables), the union of their samples, the checks across files, the process pool, and
a regulAS-format study on a real LocalCluster fitted on each event's own rows."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr
from omegaconf import OmegaConf
from sklearn.linear_model import ElasticNet
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import regulas.workloads.splicing  # noqa: F401 - declares regulAS's _target_ aliases (regulAS.utils.PickleLoader)
from conftest import QUIET, REPO, query, run_cli
from regulas.core.config.loader import load_config
from regulas.core.config.targets import instantiate
from regulas.core.errors import ConfigError, DataError
from regulas.data import PickleLoader, TableLoader
from regulas.data.event_files import PARALLEL_MIN_FILES, file_labels, read_event_pickles
from regulas.study import load_study

N, P = 30, 5
SAMPLES = [f"S{i:02d}" for i in range(N)]
GENES = [f"RBP{j}" for j in range(P)]
EXAMPLE = REPO / "examples" / "regulas" / "experiment.yaml"


def expression(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.gamma(2.0, 1.0, size=(N, P)), index=SAMPLES, columns=GENES)


def psi_of(X: pd.DataFrame, k: int) -> pd.Series:
    """A PSI with a linear signal on two RBPs (which ones depends on k)."""
    z = ((X - X.mean()) / X.std()).to_numpy()
    noise = np.random.default_rng(100 + k).normal(0, 0.05, len(X))
    return pd.Series(np.clip(0.5 + 0.2 * z[:, k % P] - 0.15 * z[:, (k + 2) % P] + noise, 0, 1), index=X.index)


def write_pickle(path: Path, frame: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_pickle(path)
    return path


def event_pickles(folder: Path, n: int, X: pd.DataFrame, *, drop: dict[int, list[str]] | None = None) -> list[Path]:
    """regulAS's layout, ``<gene>/<gene>_<setup>.pkl``; file k lacks the samples ``drop[k]``."""
    paths = []
    for k in range(n):
        gene = f"G{k % 3}"
        frame = X.assign(psi=psi_of(X, k)).drop(index=(drop or {}).get(k, []))
        paths.append(write_pickle(folder / gene / f"{gene}_SE_{k:03d}.pkl", frame))
    return paths


def test_glob_list_and_comma_list_give_the_same_data(tmp_path: Path) -> None:
    X = expression()
    paths = event_pickles(tmp_path / "data", 4, X)
    by_glob = PickleLoader(path_to_file=str(tmp_path / "data" / "*" / "*.pkl"), objective="psi").load()
    by_recursive_glob = PickleLoader(path_to_file=str(tmp_path / "**" / "*.pkl"), objective="psi").load()
    by_list = PickleLoader(path_to_file=[str(p) for p in reversed(paths)], objective="psi").load()
    by_comma = PickleLoader(path_to_file=",".join(str(p) for p in paths[::-1])).load()  # objective: the last column
    mixed = PickleLoader(path_to_file=[str(paths[0]), str(tmp_path / "data" / "G[12]" / "*.pkl"), str(paths[3])]).load()
    # the command line's spellings: regulAS's comma list and a YAML list, through the config loader
    overrides = [f"dataset.path_to_file={','.join(str(p) for p in paths)}", f"dataset.path_to_file=[{','.join(str(p) for p in paths)}]"]
    by_override = [instantiate(OmegaConf.to_container(load_config(EXAMPLE, [o]).experiment.dataset)).load() for o in overrides]
    fingerprints = {d.fingerprint() for d in (by_glob, by_recursive_glob, by_list, by_comma, mixed, *by_override)}
    assert len(fingerprints) == 1
    # files in the order of their paths; each event named after its file
    assert list(by_glob.events) == ["G0_SE_000", "G0_SE_003", "G1_SE_001", "G2_SE_002"]
    pd.testing.assert_frame_equal(by_glob.X, X, check_index_type=False, check_column_type=False)
    for name, k in (("G0_SE_003", 3), ("G1_SE_001", 1)):
        np.testing.assert_array_equal(by_glob.Y[name].to_numpy(), psi_of(X, k).to_numpy())
    # one literal path stays as before: the event is named after its column
    single = PickleLoader(path_to_file=str(paths[1]), objective="psi").load()
    assert list(single.events) == ["psi"] and single.X.equals(by_glob.X)


def test_union_of_samples_with_nan_where_a_file_lacks_a_sample(tmp_path: Path) -> None:
    X = expression()
    extra = pd.DataFrame([[1.0, 2.0, 3.0, 4.0, 5.0]], index=["S99"], columns=GENES)
    write_pickle(tmp_path / "a" / "A_1.pkl", X.drop(index=["S03", "S07"]).assign(psi=psi_of(X, 0).drop(index=["S03", "S07"])))
    write_pickle(tmp_path / "b" / "B_1.pkl", pd.concat([X, extra]).assign(psi=0.25))
    write_pickle(tmp_path / "c" / "C_1.pkl", X.iloc[::-1].assign(psi=psi_of(X, 2).iloc[::-1]))  # rows in another order
    data = PickleLoader(path_to_file=str(tmp_path / "*" / "*.pkl"), objective="psi").load()
    # union in order of first appearance: A's rows, then the ones A lacks as B lists them
    order = [s for s in SAMPLES if s not in ("S03", "S07")] + ["S03", "S07", "S99"]
    assert list(data.samples) == order
    np.testing.assert_array_equal(data.X.loc[SAMPLES].to_numpy(), X.to_numpy())
    np.testing.assert_array_equal(data.X.loc["S99"].to_numpy(), extra.to_numpy()[0])
    y = data.Y
    assert np.isnan(y.loc[["S03", "S07", "S99"], "A_1"]).all() and y["A_1"].notna().sum() == N - 2
    np.testing.assert_array_equal(y.loc[SAMPLES, "C_1"].to_numpy(), psi_of(X, 2).to_numpy())
    assert np.isnan(y.loc["S99", "C_1"]) and (y["B_1"] == 0.25).all()
    assert any("3 event files: 31 samples (union) x 5 features, 3 events" in line for line in data.log)


def test_event_names_unique_by_folder_and_column(tmp_path: Path) -> None:
    X = expression()
    for k, folder in enumerate(("run1/CAST", "run2/CAST", "other")):
        write_pickle(tmp_path / "one" / folder / "CAST_SE_1.pkl", X.assign(psi=psi_of(X, k)))
    write_pickle(tmp_path / "one" / "other" / "QKI_RI_2.pkl", X.assign(psi=psi_of(X, 3)))
    data = PickleLoader(path_to_file=str(tmp_path / "one" / "**" / "*.pkl")).load()
    assert list(data.events) == ["other/CAST_SE_1", "QKI_RI_2", "run1/CAST/CAST_SE_1", "run2/CAST/CAST_SE_1"]
    np.testing.assert_array_equal(data.Y["run2/CAST/CAST_SE_1"].to_numpy(), psi_of(X, 1).to_numpy())
    for k, name in enumerate(("CAST_SE_1", "QKI_RI_2")):
        write_pickle(tmp_path / "two" / f"{name}.pkl", X.assign(psi=psi_of(X, k), alt=psi_of(X, 2 + k)))
    both = PickleLoader(path_to_file=str(tmp_path / "two" / "*.pkl"), objective=["psi", "alt"]).load()
    assert list(both.events) == ["CAST_SE_1:psi", "CAST_SE_1:alt", "QKI_RI_2:psi", "QKI_RI_2:alt"]
    np.testing.assert_array_equal(both.Y["QKI_RI_2:alt"].to_numpy(), psi_of(X, 3).to_numpy())
    assert file_labels(["/x/a/b.pkl", "/y/a/b.pkl", "/y/c.pkl"]) == ["x/a/b", "y/a/b", "c"]


def test_parallel_reading_equals_the_in_process_path(tmp_path: Path) -> None:
    n = PARALLEL_MIN_FILES + 16
    X = expression()
    paths = [str(p) for p in event_pickles(tmp_path / "data", n, X, drop={5: ["S01"], 70: ["S02", "S29"]})]
    in_process = read_event_pickles(sorted(paths), "psi", workers=1)
    pooled = read_event_pickles(sorted(paths), "psi", workers=2)
    pd.testing.assert_frame_equal(pooled.X, in_process.X)
    pd.testing.assert_frame_equal(pooled.Y, in_process.Y)
    assert "with 1 process" in in_process.log[-1] and "with 2 processes" in pooled.log[-1]
    assert in_process.Y.shape == (N, n) and int(in_process.Y.isna().sum().sum()) == 3
    # the loader takes the pool by itself from PARALLEL_MIN_FILES files on
    data = PickleLoader(path_to_file=str(tmp_path / "data" / "*" / "*.pkl"), objective="psi").load()
    cpus = len(os.sched_getaffinity(0))
    assert data.Y.equals(in_process.Y) and any(f"with {cpus} process" in line for line in data.log)
    # a bad file read by a pool worker stops the run naming it
    bad = tmp_path / "data" / "G1" / "G1_SE_070.pkl"
    write_pickle(bad, X.rename(columns={"RBP3": "RBPX"}).assign(psi=0.5))
    with pytest.raises(DataError, match=re.escape(str(bad))):
        read_event_pickles(sorted(paths), "psi", workers=2)


def _frames(tmp_path: Path) -> tuple[pd.DataFrame, Path, Path]:
    X = expression()
    ok = write_pickle(tmp_path / "A" / "A_1.pkl", X.assign(psi=psi_of(X, 0)))
    return X, ok, tmp_path / "B" / "B_1.pkl"


def _same_file_twice(t: Path) -> object:
    _frames(t)
    return PickleLoader(path_to_file=[str(t / "A" / "*.pkl"), str(t / "A" / ".." / "A" / "A_1.pkl")])


CONFIG_ERRORS: list[tuple[str, Callable[[Path], object], list[str]]] = [
    ("a glob matching nothing", lambda t: PickleLoader(path_to_file=str(t / "none" / "*.pkl")), ["no file matches the pattern", "none/*.pkl"]),
    ("a missing file in a comma list", lambda t: PickleLoader(path_to_file=f"{_frames(t)[1]},{t / 'gone.pkl'}"), ["file not found", "gone.pkl"]),
    ("a missing file in a list", lambda t: PickleLoader(path_to_file=[str(_frames(t)[1]), str(t / "gone.pkl")]), ["file not found", "gone.pkl"]),
    ("an empty name in a comma list", lambda t: PickleLoader(path_to_file=f"{_frames(t)[1]},,"), ["empty name in the comma list"]),
    ("the same file twice", _same_file_twice, ["named twice", "A/*.pkl", "A/../A/A_1.pkl"]),
    ("a target table glob matching nothing", lambda t: TableLoader(features=str(_tables(t)[0]), targets=str(t / "psi_*.parquet")), ["no file matches", "psi_*.parquet"]),
]


@pytest.mark.parametrize("what, make, expected", CONFIG_ERRORS, ids=[c[0] for c in CONFIG_ERRORS])
def test_bad_file_lists_fail_before_any_work(tmp_path: Path, what: str, make: Callable[[Path], object], expected: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        make(tmp_path)
    assert not isinstance(err.value, DataError)  # found in __init__, before reading anything
    for text in expected:
        assert text in str(err.value), (what, str(err.value))


def _write_bad(t: Path, what: str) -> None:
    X, _, bad = _frames(t)
    frames = {
        "extra and missing columns": X.rename(columns={"RBP1": "NEW1"}).assign(psi=0.5),
        "another value for a shared sample": X.assign(psi=0.5).pipe(lambda f: f.add(np.where(f.index == "S04", 0.25, 0.0), axis=0)),
        "a duplicate sample": pd.concat([X, X.iloc[[2]]]).assign(psi=0.5),
        "no objective column": X.assign(other=0.5),
        "a non-numeric cell": X.astype(object).assign(psi=0.5).pipe(lambda f: f.mask(np.broadcast_to((f.index == "S06")[:, None], f.shape), "n/a")),
        "PSI out of range": X.assign(psi=50.0),
        "a repeated column": pd.concat([X, X[["RBP2"]]], axis=1).assign(psi=0.5),
    }
    if what == "not a DataFrame":
        bad.parent.mkdir(parents=True)
        pd.Series([1.0, 2.0]).to_pickle(bad)
    else:
        write_pickle(bad, frames[what])


DATA_ERRORS = [
    ("extra and missing columns", ["feature columns differ from those of", "A_1.pkl", "missing 'RBP1'", "extra 'NEW1'"]),
    ("another value for a shared sample", ["sample 'S04' has other feature values than in", "A_1.pkl", "feature 'RBP0'"]),
    ("a duplicate sample", ["duplicate sample IDs", "'S02'"]),
    ("no objective column", ["objective column 'psi' not found"]),
    ("a non-numeric cell", ["non-numeric cell at row 'S06', column 'RBP0'"]),
    ("PSI out of range", ["PSI out of range", "'S00'"]),
    ("not a DataFrame", ["the pickle holds a Series"]),
    ("a repeated column", ["duplicate column names: 'RBP2'"]),
]


@pytest.mark.parametrize("what, expected", DATA_ERRORS, ids=[c[0] for c in DATA_ERRORS])
def test_a_bad_file_stops_the_run_naming_it(tmp_path: Path, what: str, expected: list[str]) -> None:
    _write_bad(tmp_path, what)
    loader = PickleLoader(path_to_file=str(tmp_path / "*" / "*.pkl"), objective="psi")
    with pytest.raises(DataError) as err:
        loader.load()
    message = str(err.value)
    assert str(tmp_path / "B" / "B_1.pkl") in message, message
    for text in expected:
        assert text in message, message


def _tables(t: Path) -> tuple[Path, Path, Path]:
    X = expression()
    t.mkdir(parents=True, exist_ok=True)
    features = t / "expression.tsv"
    X.to_csv(features, sep="\t")
    first = t / "psi_a.tsv"
    pd.DataFrame({"EV1": psi_of(X, 1), "EV2": psi_of(X, 2)}).drop(index=["S05"]).to_csv(first, sep="\t")
    second = t / "psi_b.tsv"
    pd.DataFrame({"EV3": psi_of(X, 3)}).iloc[5:].to_csv(second, sep="\t")
    return features, first, second


def test_table_loader_targets_from_several_tables(tmp_path: Path) -> None:
    features, first, second = _tables(tmp_path)
    X = expression()
    for spelling in (f"{second},{first}", str(tmp_path / "psi_*.tsv"), [str(first), str(second)]):
        data = TableLoader(features=str(features), targets=spelling).load()
        assert list(data.events) == ["EV1", "EV2", "EV3"]
        assert list(data.samples) == [s for s in SAMPLES if s != "S05"] + ["S05"]  # union: S05 only in the second file
        assert np.isnan(data.Y.loc["S05", "EV1"]) and not np.isnan(data.Y.loc["S05", "EV3"])
        assert data.Y["EV3"].isna().sum() == 5
        np.testing.assert_array_equal(data.Y.loc[SAMPLES[5:], "EV3"].to_numpy(), psi_of(X, 3).to_numpy()[5:])
    for path in (first, second):  # the same tables stored events x samples
        pd.read_csv(path, sep="\t", index_col=0).T.to_csv(tmp_path / f"t_{path.name}", sep="\t")
    transposed = TableLoader(features=str(features), targets=str(tmp_path / "t_psi_*.tsv"), targets_layout="events_x_samples").load()
    assert transposed.fingerprint() == data.fingerprint()
    pd.DataFrame({"EV2": psi_of(X, 0)}).to_csv(second, sep="\t")
    with pytest.raises(DataError, match=r"event 'EV2' is in two files: .*psi_a\.tsv and .*psi_b\.tsv"):
        TableLoader(features=str(features), targets=str(tmp_path / "psi_*.tsv")).load()


def test_files_of_a_glob_are_pinned_like_named_files(tmp_path: Path) -> None:
    # a native study's rerun on changed inputs is refused for every file it read, including
    # those a glob or a comma list names (StudySpec.input_files lists them to be pinned)
    features, first, second = _tables(tmp_path)
    config = tmp_path / "study.yaml"
    config.write_text(
        "study: {name: glob, workload: splicing}\n"
        "experiment:\n  name: glob\n"
        f"  dataset: {{_target_: regulas.data.TableLoader, features: {features}, targets: '{tmp_path}/psi_*.tsv'}}\n"
        "  split: {_target_: sklearn.model_selection.KFold, n_splits: 2}\n"
        "  pipelines: [{model: {Ridge: {_target_: sklearn.linear_model.Ridge}}}]\n"
    )
    spec = load_study(config)
    assert spec.input_files() == sorted(str(p.resolve()) for p in (features, first, second))
    comma = load_study(config, [f"experiment.dataset.targets={second},{first}"])
    assert comma.input_files() == spec.input_files()


@pytest.mark.slow
def test_regulas_study_of_many_event_files_fits_each_event_on_its_own_rows(tmp_path: Path) -> None:
    X = expression(seed=5)
    event_pickles(tmp_path / "data", 3, X, drop={1: ["S00", "S03", "S11", "S12", "S20", "S27"]})
    out = tmp_path / "out"
    proc = run_cli(
        ["run", str(EXAMPLE), f"dataset.path_to_file={tmp_path / 'data' / '*' / '*.pkl'}",
         "split.n_splits=2", "random_state=3", f"store.root={out}", "cluster.n_workers=1", *QUIET],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    db = out / "regulas.db"
    ((study,),) = query(db, "SELECT name FROM study")
    arrays = {n: zarr.open_array(str(out / "arrays.zarr"), path=f"{study}/{n}", mode="r") for n in ("X", "Y", "train_index", "test_index", "pred")}
    events = list(arrays["Y"].attrs["events"])
    assert events == ["G0_SE_000", "G1_SE_001", "G2_SE_002"]
    Xa, Y = arrays["X"][...], arrays["Y"][...]
    np.testing.assert_array_equal(Xa, X.loc[list(arrays["X"].attrs["samples"])].to_numpy())
    j = events.index("G1_SE_001")
    assert int(np.isnan(Y[:, j]).sum()) == 6 and not np.isnan(np.delete(Y, j, axis=1)).any()
    models = query(db, "SELECT model, label FROM splice_model ORDER BY model")
    elastic = [m for m, label in models if label.startswith("ZScore+LinearRegression")]
    checked = 0
    for s in range(2):
        train = arrays["train_index"][s][arrays["train_index"][s] >= 0]
        test = arrays["test_index"][s][arrays["test_index"][s] >= 0]
        own_train = train[~np.isnan(Y[train, j])]
        own_test = ~np.isnan(Y[test, j])
        assert len(own_train) < len(train) or not own_test.all()  # the split does meet the missing rows
        for m in elastic:
            ((params,),) = query(
                db, "SELECT r.params FROM splice_score r JOIN splice_event e USING (study_id, event) WHERE e.name = ? AND r.model = ? AND r.split = ?",
                (events[j], m, s),
            )
            ref = Pipeline([("z", StandardScaler()), ("m", ElasticNet(l1_ratio=0.2, **json.loads(params)))]).fit(Xa[own_train], Y[own_train, j])
            stored = arrays["pred"][m, s, : len(test), j]
            np.testing.assert_allclose(stored[own_test], ref.predict(Xa[test[own_test]]), rtol=0, atol=1e-8)
            assert np.isnan(stored[~own_test]).all()
            checked += 1
    assert checked >= 2
