"""PSI targets streamed block of events by block (regulas.data.streams, regulas.data.streamed).

The reference is the in-memory path (``TableLoader.load``, every table read whole by pandas):
the streamed one must give the same events, values, log, fingerprint and study results, the
same errors before any task runs, and never hold the whole PSI table. Real files, real Zarr,
a real LocalCluster.
"""

from __future__ import annotations

import sqlite3
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest
import zarr
from distributed import Client, LocalCluster

from conftest import CONFIGS
from regulas.core.workload import StudyContext
from regulas.data import DataError, SplicingData, TableLoader, write_table
from regulas.data import streamed as streamed_module
from regulas.data.streamed import StreamedData
from regulas.data.streams import open_targets
from regulas.execution.runner import run_study
from regulas.sim.synthetic_splicing import Settings, Shape, generate
from regulas.sim.synthetic_splicing.writers import LAYOUT, suffix
from regulas.store.arrays import StudyArrays
from regulas.study import load_study

FORMATS = ["hdf5", "zarr", "parquet", "tsv.gz"]


def y_of(data: StreamedData | SplicingData, width: int = 7) -> np.ndarray:
    return np.hstack([block for _, block in data.target_blocks(width)])


def same_data(a: SplicingData, b: StreamedData) -> None:
    """Everything a study reads of a dataset is equal."""
    assert list(a.events) == list(b.events) and list(a.samples) == list(b.samples)
    assert a.X.equals(b.X) and (a.meta is None) == (b.meta is None)
    if a.meta is not None:
        assert b.meta is not None and a.meta.equals(b.meta)
    Y = y_of(b)
    assert Y.dtype == np.float64 and np.array_equal(Y, a.Y.to_numpy(), equal_nan=True)
    assert a.log == b.log and a.summary() == b.summary() and a.shape == b.shape
    assert a.fingerprint() == b.fingerprint()


@pytest.mark.parametrize("fmt", FORMATS)
def test_generated_data_streams_equal_to_the_whole_read(tmp_path: Path, fmt: str) -> None:
    generate(tmp_path, Shape(30, 6, 130), Settings(missing_rate=0.1), seed=4, fmt=fmt, block_events=40)  # type: ignore[arg-type]
    ext = suffix(fmt)  # type: ignore[arg-type]
    kw = dict(features=str(tmp_path / f"expression{ext}"), targets=str(tmp_path / f"psi{ext}"),
              targets_layout=LAYOUT[fmt], constant_events="drop", min_samples_per_event=26)  # type: ignore[index]
    whole = TableLoader(**kw).load()
    streamed = TableLoader(**kw).load_for_study()
    assert isinstance(streamed, StreamedData)
    assert "dropped" in " ".join(whole.log) and 0 < len(whole.events) < 130  # the filters had work to do
    same_data(whole, streamed)


def awkward_tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Features, PSI and metadata that exercise every alignment step and event filter."""
    rng = np.random.default_rng(1)
    samples = [f"S{i}" for i in range(14)]
    X = pd.DataFrame(rng.gamma(2.0, 5.0, (14, 4)), index=samples, columns=["A", "B", "C", "D"])
    events = [f"e{j}" for j in range(40)]
    # Y: samples in another order, two not in X, one repeated (kept first), one without metadata
    rows = ["S3", "S1", "S0", "S9", "S2", "X1", "S4", "S5", "S6", "S1", "S7", "S8", "S10", "S11", "S12", "X2", "S13"]
    Y = pd.DataFrame(rng.uniform(0, 1, (len(rows), 40)), index=rows, columns=events)
    Y.iloc[rng.uniform(size=Y.shape) < 0.15] = np.nan
    Y["e5"] = np.nan  # all-NaN
    Y["e11"] = 0.25  # constant
    Y.loc[["S3", "S1", "S0", "S9", "S2", "S4", "S5"], "e30"] = np.nan  # few values
    Y["e17"] = Y["e17"].where(Y["e17"].isna(), 1.0)  # constant with missing values
    Y.iloc[:, 20:24] = Y.iloc[:, 20:24].fillna(0.5)  # complete events
    meta = pd.DataFrame({"tissue": ["a", "b"] * 7}, index=samples).drop(index="S12")
    return X, Y, meta


@pytest.mark.parametrize("fmt", ["h5", "zarr", "parquet", "tsv.gz", "h5t", "pqs"])
@pytest.mark.parametrize("missing", ["keep", "drop_events"])
def test_every_option_streams_equal_to_the_whole_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, missing: str) -> None:
    """Duplicate samples, unaligned samples, metadata, all-NaN/constant/sparse events, blocks
    of 3 events (the filters and the row selection cross block boundaries)."""
    monkeypatch.setattr(streamed_module, "READ_VALUES", 17 * 3)
    X, Y, meta = awkward_tables()
    features, metadata = write_table(X, tmp_path / "x.parquet"), write_table(meta, tmp_path / "meta.parquet")
    layout = "samples_x_events" if fmt in ("h5", "zarr") else "events_x_samples"
    if fmt == "h5t":  # HDF5 with events as rows
        layout, fmt = "events_x_samples", "h5"
    if fmt == "pqs":  # Parquet with events as columns
        layout, fmt = "samples_x_events", "parquet"
    if layout == "events_x_samples":  # samples are columns: a repeated one is a read error
        Y = Y[~Y.index.duplicated()]
    table = Y if layout == "samples_x_events" else Y.T
    if fmt == "tsv.gz":
        table.rename_axis("event").to_csv(tmp_path / "y.tsv.gz", sep="\t")
        targets = tmp_path / "y.tsv.gz"
    else:
        targets = write_table(table, tmp_path / f"y.{fmt}")
    kw: dict[str, Any] = dict(features=str(features), targets=str(targets), metadata=str(metadata), targets_layout=layout,
                              duplicate_samples="keep_first", unaligned_samples="intersect", all_nan_events="drop",
                              constant_events="drop", min_samples_per_event=9, missing_psi=missing)
    whole = TableLoader(**kw).load()
    streamed = TableLoader(**kw).load_for_study()
    assert isinstance(streamed, StreamedData) and streamed.rows is not None
    steps = ["samples common", "without metadata", "all-NaN", "constant"]
    steps += ["repeated rows"] if layout == "samples_x_events" else []
    steps += ["events with missing PSI"] if missing == "drop_events" else ["missing PSI values", "fewer than 9"]
    for step in steps:
        assert step in " ".join(whole.log), step
    same_data(whole, streamed)


def test_options_that_need_every_event_read_whole(tmp_path: Path) -> None:
    """most_variable_events ranks all events at once, text with events as columns cannot be read
    an event at a time, several targets files are unioned: those read whole, with equal results."""
    X, Y, _ = awkward_tables()
    Y = Y[~Y.index.duplicated()].loc[list(X.index)].drop(columns=["e5"])
    features = write_table(X, tmp_path / "x.h5")
    h5, tsv = write_table(Y, tmp_path / "y.h5"), tmp_path / "y.tsv"
    Y.rename_axis("sample").to_csv(tsv, sep="\t")
    assert isinstance(TableLoader(features=str(features), targets=str(h5)).load_for_study(), StreamedData)
    for kw in ({"targets": str(h5), "most_variable_events": 10}, {"targets": str(tsv)}, {"targets": [str(h5)]}):
        data = TableLoader(features=str(features), **kw).load_for_study()  # type: ignore[arg-type]
        assert isinstance(data, SplicingData), kw
    assert open_targets(str(tsv), "samples_x_events", 0, None) is None


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as c:
        yield c


def test_a_text_cell_that_is_not_a_number_gets_the_whole_reads_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Text streams until a batch of lines does not parse; then the table is read whole,
    which names the cell (and counts such cells in its column) as before."""
    monkeypatch.setattr(streamed_module, "READ_VALUES", 20 * 10)
    data_dir, Y = bad_cell_files(tmp_path)
    table = Y.T.astype(object)
    table.loc["ev250", "S0"] = "n/a?"  # in the 26th of 30 batches of lines
    table.rename_axis("event").to_csv(data_dir / "psi.tsv", sep="\t")
    kw: dict[str, Any] = dict(features=str(data_dir / "expression.h5"), targets=str(data_dir / "psi.tsv"),
                              targets_layout="events_x_samples")
    assert open_targets(kw["targets"], "events_x_samples", 0, None) is not None  # its labels stream
    with pytest.raises(DataError) as whole:
        TableLoader(**kw).load()
    with pytest.raises(DataError) as streamed:
        TableLoader(**kw).load_for_study()
    assert "non-numeric cell at row 'ev250', column 'S0': 'n/a?'" in str(whole.value)
    assert str(streamed.value) == str(whole.value)


def bad_cell_files(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    rng = np.random.default_rng(2)
    samples, events = [f"S{i}" for i in range(20)], [f"ev{j}" for j in range(300)]
    X = pd.DataFrame(rng.normal(size=(20, 3)), index=samples, columns=["a", "b", "c"])
    Y = pd.DataFrame(rng.uniform(0, 1, (20, 300)), index=samples, columns=events)
    write_table(X, tmp_path / "expression.h5")
    return tmp_path, Y


def test_a_bad_cell_in_a_late_block_stops_the_run_before_any_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client: Client) -> None:
    """One DataError naming the file, the sample and the event, the same as the whole read's,
    raised by regulas run before the store exists (so before any task)."""
    monkeypatch.setattr(streamed_module, "READ_VALUES", 20 * 10)  # 30 blocks of 10 events
    data_dir, Y = bad_cell_files(tmp_path)
    Y.loc["S7", "ev287"] = 1.5
    Y.loc["S12", "ev291"] = -0.2
    psi = write_table(Y, data_dir / "psi.h5")
    loader = TableLoader(features=str(data_dir / "expression.h5"), targets=str(psi))
    with pytest.raises(DataError) as whole:
        loader.load()
    blocks: list[int] = []
    stream = open_targets(str(psi), "samples_x_events", 0, None)
    assert stream is not None
    blocks = [start for start, _ in stream.blocks(streamed_module.read_width(stream))]
    assert len(blocks) == 30  # the bad cells are in blocks 28 and 29
    monkeypatch.setenv("TCGA_SYNTHETIC", str(data_dir))
    root = tmp_path / "out"
    spec = load_study(CONFIGS / "splicing_tcga.yaml", [f"store.root={root}"])
    with pytest.raises(DataError) as streamed:
        run_study(spec, client=client)
    message = str(streamed.value)
    assert str(psi) in message and "'ev287'" in message and "'S7'" in message and "1.5" in message
    assert "2 values outside [0, 1]" in message
    assert message == str(whole.value)
    assert not root.exists()


def test_a_file_changed_between_check_and_copy_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streamed_module, "READ_VALUES", 20 * 10)
    data_dir, Y = bad_cell_files(tmp_path)
    psi = write_table(Y, data_dir / "psi.h5")
    data = TableLoader(features=str(data_dir / "expression.h5"), targets=str(psi)).load_for_study()
    assert isinstance(data, StreamedData)
    with h5py.File(psi, "r+") as h5:
        h5["values"][3, 250] = 0.123
    blocks = data.target_blocks(50)
    for _ in range(5):
        next(blocks)  # events 0-249 are unchanged
    with pytest.raises(DataError, match=r"targets changed while the study was being prepared: the values of event 'ev250'"):
        next(blocks)


def zarr_y(root: Path, study: str) -> tuple[np.ndarray, dict[str, Any], dict[str, bytes]]:
    """Y's values, attributes and the bytes of its chunk files."""
    y = zarr.open_array(store=str(root / "arrays.zarr"), path=f"{study}/Y", mode="r")
    folder = root / "arrays.zarr" / study / "Y"
    files = {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file() and f.name != "zarr.json"}
    return y[...], dict(y.attrs), files


def results(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(db) as con:
        return {
            "events": con.execute("SELECT event, name FROM splice_event ORDER BY event").fetchall(),
            "scores": con.execute("SELECT event, model, split, n_train, n_test, mse, mae, r2, pearson, spearman, params "
                                  "FROM splice_score ORDER BY event, model, split").fetchall(),
            "importance": con.execute("SELECT event, model, split, kind, rank, feature, score FROM splice_importance "
                                      "ORDER BY event, model, split, kind, rank").fetchall(),
        }


def test_a_study_streamed_equals_the_study_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client: Client) -> None:
    """configs/splicing_tcga.yaml on a tiny generated data set, once streamed and once read whole
    (``most_variable_events`` above the number of events: the same data, read whole): equal
    Zarr Y, event rows, data fingerprint and scores."""
    data_dir = tmp_path / "data"
    generate(data_dir, Shape(40, 5, 24), Settings(missing_rate=0.05), seed=3, fmt="hdf5")
    monkeypatch.setenv("TCGA_SYNTHETIC", str(data_dir))
    monkeypatch.setattr(streamed_module, "READ_VALUES", 40 * 5)
    common = ["experiment.split.n_splits=2", "experiment.inner_cv=2", "experiment.block_size=8", "execution.progress=log"]
    runs = {}
    for route, extra in (("streamed", []), ("whole", ["+experiment.dataset.most_variable_events=1000"])):
        root = tmp_path / route
        spec = load_study(CONFIGS / "splicing_tcga.yaml", [f"store.root={root}", *common, *extra])
        summary = run_study(spec, client=client)
        assert summary.ok, summary.failures
        data = spec.workload.data
        assert isinstance(data, StreamedData if route == "streamed" else SplicingData)
        runs[route] = (zarr_y(root, spec.study.name), results(root / "regulas.db"), spec.workload.data_fingerprint(spec.seed))
    (y_s, attrs_s, files_s), res_s, fp_s = runs["streamed"]
    (y_w, attrs_w, files_w), res_w, fp_w = runs["whole"]
    assert y_s.shape == y_w.shape and np.array_equal(y_s, y_w, equal_nan=True) and attrs_s == attrs_w
    assert len(files_s) == 3 and files_s == files_w  # 24 events in chunks of 8: the same bytes
    assert fp_s == fp_w
    assert res_s == res_w and len(res_s["scores"]) == 2 * len(res_s["events"]) > 0


def test_the_driver_never_holds_the_whole_psi_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tracemalloc peak of loading and preparing a study (check pass, then Y copied into Zarr)
    stays a small fraction of the PSI table; the same measure of the whole read exceeds the table."""
    rng = np.random.default_rng(5)
    n, e = 400, 5000  # Y: 16 MB of float64
    samples = [f"S{i}" for i in range(n)]
    write_table(pd.DataFrame(rng.normal(size=(n, 4)), index=samples, columns=list("abcd")), tmp_path / "expression.h5")
    Y = rng.uniform(0, 1, (n, e))
    Y[rng.uniform(size=Y.shape) < 0.05] = np.nan
    write_table(pd.DataFrame(Y, index=samples, columns=[f"ev{j}" for j in range(e)]), tmp_path / "psi.h5")
    y_bytes = Y.nbytes
    del Y
    monkeypatch.setenv("TCGA_SYNTHETIC", str(tmp_path))
    monkeypatch.setattr(streamed_module, "READ_VALUES", n * 50)  # blocks of 50 events: 160 KB

    def peak(extra: list[str], root: Path) -> tuple[int, object]:
        spec = load_study(CONFIGS / "splicing_tcga.yaml", [f"store.root={root}", "experiment.block_size=50", *extra])
        tracemalloc.start()
        try:
            spec.workload.check_inputs(spec.seed)
            spec.workload.prepare(StudyContext(name="s", root_seed=spec.seed, arrays=StudyArrays(root / "arrays.zarr", "s")))
            return tracemalloc.get_traced_memory()[1], spec.workload.data
        finally:
            tracemalloc.stop()

    streamed_peak, data = peak([], tmp_path / "streamed")
    assert isinstance(data, StreamedData)
    whole_peak, data = peak(["+experiment.dataset.most_variable_events=100000"], tmp_path / "whole")
    assert isinstance(data, SplicingData)
    assert whole_peak > y_bytes  # the check can fail: a whole read holds the table (and more)
    assert streamed_peak < y_bytes / 4, (streamed_peak, y_bytes)
    written = zarr.open_array(store=str(tmp_path / "streamed" / "arrays.zarr"), path="s/Y", mode="r")
    assert written.shape == (n, e) and written.chunks == (n, 50)
