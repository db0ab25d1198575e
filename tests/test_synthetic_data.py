"""The TCGA-shaped synthetic splicing data set (regulas.sim.synthetic_splicing), at tiny sizes.

The calibration targets come from the shipped GSE114922 tables; the recovery check is an
independent scikit-learn fit on the generated tables.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from scipy.stats import spearmanr
from sklearn.linear_model import LassoCV, Ridge
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conftest import CONFIGS, QUIET, query, run_cli
from regulas.core.errors import ConfigError
from regulas.data import TableLoader
from regulas.data.tables import read_table
from regulas.sim.synthetic_splicing import TILE, Settings, Shape, SyntheticSplicing, calibrate, generate
from regulas.sim.synthetic_splicing.__main__ import main
from regulas.sim.synthetic_splicing.writers import LAYOUT, suffix


@pytest.fixture(scope="module")
def cal():  # type: ignore[no-untyped-def]
    return calibrate()


def all_psi(data: SyntheticSplicing) -> tuple[np.ndarray, list]:
    tiles = [data.tile(i) for i in range(data.n_tiles)]
    return np.hstack([t.psi for t in tiles]), tiles


def test_calibration_is_the_real_data(cal) -> None:  # type: ignore[no-untyped-def]
    s = cal.summary()
    # GSE114922 SOURCE.md: 6,231 exact zeros and 53,382 exact ones among 40 x 9,990 values
    assert s["psi_zero_fraction"] == pytest.approx(6231 / 399600)
    assert s["psi_one_fraction"] == pytest.approx(53382 / 399600)
    assert s["rbps"] == 868 and s["expression_samples"] == 14
    corr = cal.loadings @ cal.loadings.T + np.diag(cal.uniqueness)
    assert np.allclose(np.diag(corr), 1.0) and (cal.uniqueness >= 0.05 - 1e-12).all()


def test_same_seed_same_data_other_seed_differs(cal) -> None:  # type: ignore[no-untyped-def]
    shape, settings = Shape(30, 20, TILE + 40), Settings(missing_rate=0.1)
    a, b, c = (SyntheticSplicing(shape, settings, seed, cal) for seed in (5, 5, 6))
    pa, pb, pc = all_psi(a)[0], all_psi(b)[0], all_psi(c)[0]
    assert np.array_equal(a.X, b.X) and np.array_equal(pa, pb, equal_nan=True)
    assert list(a.features.names) == list(b.features.names) and a.event_names() == b.event_names()
    assert not np.array_equal(a.X, c.X) and not np.array_equal(pa, pc, equal_nan=True)
    # fewer events: the first events of the larger data set; another missing rate: same values
    small = all_psi(SyntheticSplicing(Shape(30, 20, 25), settings, 5, cal))[0]
    assert np.array_equal(small, pa[:, :25], equal_nan=True)
    complete = all_psi(SyntheticSplicing(shape, Settings(missing_rate=0.0), 5, cal))[0]
    seen = ~np.isnan(pa)
    assert np.array_equal(complete[seen], pa[seen]) and not np.isnan(complete).any()


@pytest.mark.parametrize("fmt", ["hdf5", "zarr", "parquet", "tsv.gz"])
def test_written_tables_are_read_by_table_loader(tmp_path: Path, cal, fmt: str) -> None:  # type: ignore[no-untyped-def]
    shape, settings = Shape(24, 12, 60), Settings(missing_rate=0.1)
    record = generate(tmp_path, shape, settings, seed=1, fmt=fmt, calibration=cal)  # type: ignore[arg-type]
    data = SyntheticSplicing(shape, settings, 1, cal)
    psi = all_psi(data)[0]
    ext = suffix(fmt)  # type: ignore[arg-type]
    loaded = TableLoader(
        features=str(tmp_path / f"expression{ext}"), targets=str(tmp_path / f"psi{ext}"),
        targets_layout=LAYOUT[fmt],  # type: ignore[index]
        missing_psi="keep",
    ).load()
    assert loaded.X.shape == (24, 12) and loaded.Y.shape == (24, 60)
    assert list(loaded.Y.columns) == data.event_names() and list(loaded.X.index) == list(data.samples)
    assert list(loaded.X.columns) == list(data.features.names)
    assert np.array_equal(loaded.Y.to_numpy(), psi, equal_nan=True)
    assert np.allclose(loaded.X.to_numpy(), data.X, rtol=0, atol=1e-12)
    events = read_table(tmp_path / "truth_events.tsv", numeric=False)
    regs = read_table(tmp_path / "truth_regulators.tsv", numeric=False)
    assert list(events.index) == data.event_names()
    assert (events["n_regulators"].astype(int).sum(), record["realised"]["planted_regulators"]) == (len(regs), len(regs))
    assert set(regs["regulator"]) <= set(data.features.names)
    assert json.loads((tmp_path / "generation.json").read_text())["psi_layout"] == LAYOUT[fmt]  # type: ignore[index]
    assert "python -m regulas.sim.synthetic_splicing --samples 24" in (tmp_path / "README.md").read_text()


def test_chunked_writing_equals_one_shot(tmp_path: Path, cal) -> None:  # type: ignore[no-untyped-def]
    shape, settings = Shape(20, 10, 2 * TILE + 30), Settings(missing_rate=0.05)
    for fmt in ("hdf5", "zarr", "tsv.gz"):
        generate(tmp_path / fmt / "one", shape, settings, seed=2, fmt=fmt, block_events=shape.events, calibration=cal)
        generate(tmp_path / fmt / "chunked", shape, settings, seed=2, fmt=fmt, block_events=1, calibration=cal)  # a tile a block
        psi = f"psi{suffix(fmt)}"
        one, chunked = (read_table(tmp_path / fmt / d / psi) for d in ("one", "chunked"))
        assert one.shape == ((20, shape.events) if fmt != "tsv.gz" else (shape.events, 20))
        assert one.equals(chunked)
        for name in ("truth_events.tsv", "truth_regulators.tsv"):
            assert (tmp_path / fmt / "one" / name).read_bytes() == (tmp_path / fmt / "chunked" / name).read_bytes()
    assert (tmp_path / "tsv.gz/one/psi.tsv.gz").read_bytes() == (tmp_path / "tsv.gz/chunked/psi.tsv.gz").read_bytes()


def test_psi_point_masses_and_logit_moments_follow_the_resampled_events(cal) -> None:  # type: ignore[no-untyped-def]
    data = SyntheticSplicing(Shape(400, 30, 4 * TILE), Settings(), 3, cal)
    psi, tiles = all_psi(data)
    rate0 = np.concatenate([t.events["zero_rate"] for t in tiles])
    rate1 = np.concatenate([t.events["one_rate"] for t in tiles])
    assert ((psi >= 0) & (psi <= 1)).all()
    # per event, the point masses are drawn at the resampled real event's rates ...
    assert np.abs((psi == 0).mean(axis=0) - rate0).mean() < 0.01
    assert np.abs((psi == 1).mean(axis=0) - rate1).mean() < 0.02
    # ... so over events they match the real data's 1.56% zeros and 13.4% ones
    assert (psi == 0).mean() == pytest.approx(cal.zero_rate.mean(), abs=0.01)
    assert (psi == 1).mean() == pytest.approx(cal.one_rate.mean(), abs=0.03)
    # interior values keep each event's logit mean and sd (events with enough of them)
    inside = (psi > 0) & (psi < 1)
    lg = np.log(np.where(inside, psi, 0.5) / (1 - np.where(inside, psi, 0.5)))
    ok = inside.sum(axis=0) >= 200
    n = inside.sum(axis=0)[ok]
    mean = (lg * inside).sum(axis=0)[ok] / n
    sd = np.sqrt(((lg**2) * inside).sum(axis=0)[ok] / n - mean**2)
    target_mean = np.concatenate([t.events["logit_mean"] for t in tiles])[ok]
    target_sd = np.concatenate([t.events["logit_sd"] for t in tiles])[ok]
    assert ok.sum() > 500
    assert np.median(np.abs(mean - target_mean)) < 0.05
    assert np.median(np.abs(sd / target_sd - 1)) < 0.1


def test_missing_rate_and_per_event_patterns(cal) -> None:  # type: ignore[no-untyped-def]
    shape = Shape(300, 10, 2 * TILE)
    data = SyntheticSplicing(shape, Settings(missing_rate=0.1), 4, cal)
    psi, tiles = all_psi(data)
    missing = np.isnan(psi)
    assert missing.mean() == pytest.approx(0.1, abs=0.02)
    assert missing.sum(axis=0).max() <= shape.samples // 2
    with_gaps = missing[:, missing.any(axis=0)]
    patterns = {col.tobytes() for col in with_gaps.T}
    # each event its own rows (a few events miss only the same lowest-depth sample)
    assert len(patterns) >= 0.9 * with_gaps.shape[1] > 200
    # low coverage: low-depth samples and low-coverage events lose the most
    assert spearmanr(data.depth, missing.mean(axis=1))[0] < -0.5
    coverage = np.concatenate([t.events["coverage"] for t in tiles])
    assert spearmanr(coverage, missing.mean(axis=0))[0] < -0.5
    uniform = all_psi(SyntheticSplicing(shape, Settings(missing_rate=0.1, missing_pattern="uniform"), 4, cal))[0]
    assert (np.isnan(uniform).sum(axis=0) == 30).all()


def test_expression_matches_the_calibration(cal) -> None:  # type: ignore[no-untyped-def]
    N = 3000
    data = SyntheticSplicing(Shape(N, 60, 1), Settings(), 5, cal)
    fm = data.features
    real = np.searchsorted(cal.rbp_names.astype(str), fm.names.astype(str), sorter=np.argsort(cal.rbp_names.astype(str)))
    assert (cal.rbp_names[np.argsort(cal.rbp_names.astype(str))][real] == fm.names).all()  # a subset of real RBPs
    X = data.X
    assert np.abs(X.mean(axis=0) - fm.mean).max() < 5 * fm.sd.max() / np.sqrt(N)
    assert np.abs(X.std(axis=0) / fm.sd - 1).max() < 0.1
    model_corr = fm.loadings @ fm.loadings.T + np.diag(fm.uniqueness)
    assert np.abs(np.corrcoef(X.T) - model_corr).mean() < 0.03
    # more RBPs than the 868 real ones: all real ones plus jittered copies
    wide = SyntheticSplicing(Shape(10, 900, 1), Settings(), 5, cal).features
    assert wide.names.size == 900 == len(set(wide.names))
    assert sum("_syn" in str(n) for n in wide.names) == 900 - 868


def test_planted_regulators_found_by_an_independent_lasso(cal) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(regulated_fraction=1.0, regulators_per_event=2.0, max_regulators=3, signal=0.8)
    data = SyntheticSplicing(Shape(300, 40, 30), settings, 3, cal)
    tile = data.tile(0)
    X = StandardScaler().fit_transform(data.X)
    pos, rbp, _ = tile.regulators
    found = tried = 0
    for j in range(tile.psi.shape[1]):
        y = tile.psi[:, j]
        if y.std() == 0:  # resampled a constant real event
            continue
        planted = set(rbp[pos == j].tolist())
        coef = LassoCV(cv=5, alphas=30).fit(X, y).coef_
        found += planted <= set(np.argsort(-np.abs(coef))[: len(planted)].tolist())
        tried += 1
    assert tried >= 25 and found >= 0.8 * tried


def test_bad_arguments_are_refused_before_any_work(tmp_path: Path, cal, capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=r"--missing-rate.*given: 0\.6.*\[0, 0\.5\)"):
        generate(tmp_path / "x", Shape(20, 5, 5), Settings(missing_rate=0.6), calibration=cal)
    assert not (tmp_path / "x").exists()
    generate(tmp_path / "y", Shape(20, 5, 5), calibration=cal)
    with pytest.raises(ConfigError, match=r"expression\.h5 already exists.*--overwrite"):
        generate(tmp_path / "y", Shape(20, 5, 5), calibration=cal)
    generate(tmp_path / "y", Shape(20, 5, 5), overwrite=True, calibration=cal)
    assert main(["--samples", "3", "--rbps", "5", "--events", "5", "--out", str(tmp_path / "z")]) == 2
    assert "--samples" in capsys.readouterr().err and not (tmp_path / "z").exists()


def check_stored_predictions(store: Path, study: str) -> None:
    """Every event's stored test predictions equal scikit-learn's GridSearchCV over
    StandardScaler → Ridge on that event's observed training rows (1e-8)."""
    arrays = {n: zarr.open_array(str(store), path=f"{study}/{n}", mode="r") for n in ("X", "Y", "train_index", "test_index", "pred")}
    X, Y, pred = arrays["X"][...], arrays["Y"][...], arrays["pred"][...]
    grid = {"ridge__alpha": list(np.logspace(-1, 4, 10))}
    for s in range(pred.shape[1]):
        train, test = (row[row >= 0] for row in (arrays["train_index"][s], arrays["test_index"][s]))
        for e in range(Y.shape[1]):
            tr, obs = train[~np.isnan(Y[train, e])], ~np.isnan(Y[test, e])
            pipe = make_pipeline(StandardScaler(), Ridge())
            gs = GridSearchCV(pipe, grid, cv=KFold(2), scoring="neg_mean_squared_error").fit(X[tr], Y[tr, e])
            np.testing.assert_allclose(pred[0, s, : len(test)][obs, e], gs.predict(X[test[obs]]), rtol=0, atol=1e-8)
            assert np.isnan(pred[0, s, : len(test)][~obs, e]).all()


def test_splicing_tcga_config_runs_on_generated_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """configs/splicing_tcga.yaml end to end on a tiny data set: every event scored, and the
    strongly regulated events' planted regulators at the top of the stored ranking."""
    data_dir = tmp_path / "data"
    assert main(["--samples", "80", "--rbps", "12", "--events", "12", "--missing-rate", "0.05", "--seed", "7",
                 "--signal", "0.9", "--regulated-fraction", "1", "--max-regulators", "1", "--out", str(data_dir)]) == 0
    monkeypatch.setenv("TCGA_SYNTHETIC", str(data_dir))
    root = tmp_path / "out"
    proc = run_cli(["run", str(CONFIGS / "splicing_tcga.yaml"), f"store.root={root}", "cluster.n_workers=1",
                    "experiment.split.n_splits=2", "experiment.inner_cv=2", "experiment.block_size=5", *QUIET])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # each split's factorisations computed once for its 3 blocks of events (2 splits x 3 tasks)
    assert "shared computations: 2, each computed once and reused by the tasks naming it (6 tasks)" in proc.stderr
    check_stored_predictions(root / "arrays.zarr", "splicing_tcga")
    db = root / "regulas.db"
    kept = [e for (e,) in query(db, "SELECT name FROM splice_event ORDER BY event")]
    events = read_table(data_dir / "truth_events.tsv", numeric=False)
    assert len(kept) >= 10 and set(kept) <= set(events.index)
    assert query(db, "SELECT count(*) FROM splice_score") == [(len(kept) * 2,)]
    regs = read_table(data_dir / "truth_regulators.tsv", numeric=False)
    strong = [e for e in kept if float(events.loc[e, "zero_rate"]) + float(events.loc[e, "one_rate"]) < 0.2]
    top = dict(query(db, "SELECT event, feature FROM feature_ranking WHERE rank = 1 AND kind = 'coef'"))
    hits = [top.get(e) == regs.loc[e, "regulator"] for e in strong]
    assert len(hits) >= 5 and np.mean(hits) >= 0.8
