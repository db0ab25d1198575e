"""regulas.data: every format gives the same SplicingData, options do what they say (checked
against independent computations), bad inputs fail with one clear message, real data loads.

Synthetic tables are written to pytest's tmp_path; real-data tests use the data sets shipped in regulas/datasets.
"""

from __future__ import annotations

import gzip
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest
import zarr
from sklearn.feature_selection import VarianceThreshold

from conftest import DATASETS
from regulas.core.config.targets import instantiate, locate
from regulas.core.errors import ConfigError
from regulas.data import (
    DataError,
    JunctionPSILoader,
    PickleLoader,
    SplicingData,
    TableLoader,
    XenaLoader,
    psi_from_junctions,
    write_table,
)

GSE = DATASETS / "gse114922"
SHALEK = DATASETS / "shalek2013"
RBP_FILE = DATASETS / "rbp" / "sebestyen2016_rbps.tsv"

SAMPLES = [f"S{i:02d}" for i in range(12)]
GENES = ["HNRNPA1", "SRSF1", "PTBP1", "ACTB", "GAPDH", "Rbfox2"]
EVENTS = ["ev1", "ev2", "ev3", "ev4", "ev5"]


# --------------------------------------------------------------------------- fixtures


def make_frames(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.gamma(2.0, 10.0, (12, 6)), index=SAMPLES, columns=GENES)
    Y = pd.DataFrame(rng.uniform(0, 1, (12, 5)), index=SAMPLES, columns=EVENTS)
    Y.iloc[[1, 4], 2] = np.nan
    meta = pd.DataFrame({"tissue": ["blood", "liver"] * 6, "cohort": ["A"] * 12}, index=SAMPLES)
    return X, Y, meta


def write_text(frame: pd.DataFrame, path: Path, **kw: Any) -> Path:
    frame.rename_axis("sample").to_csv(path, sep="," if ".csv" in path.name else "\t", **kw)
    return path


@pytest.fixture
def frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return make_frames()


@pytest.fixture
def tsv_set(tmp_path: Path, frames: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> dict[str, str]:
    X, Y, meta = frames
    return {
        "features": str(write_text(X, tmp_path / "x.tsv")),
        "targets": str(write_text(Y, tmp_path / "y.tsv")),
        "metadata": str(write_text(meta, tmp_path / "meta.tsv")),
    }


@pytest.fixture
def rbp_file(tmp_path: Path) -> Path:
    path = tmp_path / "rbps.tsv"
    path.write_text("symbol\tis_splicing_factor\nHNRNPA1\ttrue\nSRSF1\ttrue\nPTBP1\ttrue\nRBFOX2\ttrue\nELAVL1\tfalse\n")
    return path


# --------------------------------------------------------------------------- formats


FORMATS = ["x.tsv", "x.tsv.gz", "x.txt", "x.csv", "x.csv.gz", "x.parquet", "x.h5", "x.zarr"]


@pytest.mark.parametrize("name", FORMATS)
def test_every_format_round_trips_the_same_data(tmp_path: Path, frames: Any, name: str) -> None:
    X, Y, meta = frames
    reference = SplicingData(X=X, Y=Y, meta=None, name="syn")
    suffix = name[1:]
    xp = write_table(X, tmp_path / f"x{suffix}")
    yp = write_table(Y.T, tmp_path / f"y{suffix}")  # events as rows: exercises targets_layout
    data = TableLoader(features=str(xp), targets=str(yp), targets_layout="events_x_samples", name="syn").load()
    pd.testing.assert_frame_equal(data.X, X, check_exact=True)
    pd.testing.assert_frame_equal(data.Y, Y, check_exact=True)
    assert data.fingerprint() == reference.fingerprint()


def test_hdf5_and_zarr_layout_written_by_hand(tmp_path: Path, frames: Any) -> None:
    """The documented layout (values, rows, columns), written with h5py and zarr directly."""
    X, Y, _ = frames
    with h5py.File(tmp_path / "d.h5", "w") as h5:
        for group, frame in (("expr", X.T), ("psi", Y)):  # expression stored genes x samples
            g = h5.create_group(group)
            g["values"] = frame.to_numpy()
            g["rows"] = np.array(frame.index, dtype=object).astype("S")  # bytes labels
            g["columns"] = np.array(frame.columns, dtype=object).astype("S")
    root = zarr.open_group(str(tmp_path / "y.zarr"), mode="w")
    root.create_array("values", data=Y.to_numpy())
    root.create_array("rows", shape=(12,), dtype=str)[:] = np.array(Y.index)
    root.create_array("columns", shape=(5,), dtype=str)[:] = np.array(Y.columns)
    a = TableLoader(features=f"{tmp_path}/d.h5#expr", targets=f"{tmp_path}/d.h5#psi", features_layout="genes_x_samples").load()
    b = TableLoader(features=f"{tmp_path}/d.h5#expr", targets=str(tmp_path / "y.zarr"), features_layout="genes_x_samples").load()
    pd.testing.assert_frame_equal(a.X, X)
    pd.testing.assert_frame_equal(a.Y, Y)
    assert a.fingerprint() == b.fingerprint()


def test_text_reader_keeps_ids_as_text_and_reads_metadata(tmp_path: Path, frames: Any) -> None:
    X, Y, meta = frames
    ids = [f"{i:03d}" for i in range(12)]  # "007" must not become 7
    X.index = Y.index = meta.index = ids
    paths = {k: str(write_text(f, tmp_path / f"{k}.csv")) for k, f in (("x", X), ("y", Y), ("m", meta))}
    data = TableLoader(features=paths["x"], targets=paths["y"], metadata=paths["m"]).load()
    assert list(data.samples) == ids
    assert data.meta is not None and list(data.meta["tissue"]) == list(meta["tissue"])


def test_sample_order_follows_targets(tmp_path: Path, frames: Any) -> None:
    X, Y, _ = frames
    xp = write_text(X.iloc[::-1], tmp_path / "x.tsv")
    yp = write_text(Y, tmp_path / "y.tsv")
    data = TableLoader(features=str(xp), targets=str(yp)).load()
    pd.testing.assert_frame_equal(data.X, X)


def test_fingerprint_tracks_content_only(frames: Any) -> None:
    X, Y, meta = frames
    a = SplicingData(X=X, Y=Y, meta=meta, name="a", log=("x",))
    b = SplicingData(X=X.copy(), Y=Y.copy(), meta=meta.copy(), name="b")
    assert a.fingerprint() == b.fingerprint()
    Y2 = Y.copy()
    Y2.iloc[0, 0] = 0.5 if Y2.iloc[0, 0] != 0.5 else 0.25
    assert SplicingData(X=X, Y=Y2, meta=meta).fingerprint() != a.fingerprint()
    X2 = X.rename(columns={"ACTB": "ACTG"})
    assert SplicingData(X=X2, Y=Y, meta=meta).fingerprint() != a.fingerprint()
    assert SplicingData(X=X, Y=Y, meta=None).fingerprint() != a.fingerprint()


def test_splicing_data_refuses_inconsistent_parts(frames: Any) -> None:
    X, Y, _ = frames
    with pytest.raises(ValueError, match="same sample index"):
        SplicingData(X=X.iloc[1:], Y=Y)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        SplicingData(X=X, Y=Y * 2)


# --------------------------------------------------------------------------- options


def test_rbp_list_exact_and_case_insensitive(tsv_set: dict[str, str], rbp_file: Path, frames: Any) -> None:
    X, _, _ = frames
    exact = TableLoader(**tsv_set, rbp_list=str(rbp_file)).load()
    assert list(exact.features) == ["HNRNPA1", "SRSF1", "PTBP1"]
    pd.testing.assert_frame_equal(exact.X, X[["HNRNPA1", "SRSF1", "PTBP1"]])
    assert any("rbp_list kept 3 of 6 features (5 RBPs listed, 2 of them absent" in m for m in exact.log)
    loose = TableLoader(**tsv_set, rbp_list=str(rbp_file), rbp_match="case_insensitive").load()
    assert list(loose.features) == ["HNRNPA1", "SRSF1", "PTBP1", "Rbfox2"]


@pytest.mark.parametrize(("kind", "ref"), [("log2p1", lambda v: np.log2(v + 1)), ("log1p", np.log1p)])
def test_log_transform(tsv_set: dict[str, str], frames: Any, kind: str, ref: Callable[[Any], Any]) -> None:
    X, _, _ = frames
    data = TableLoader(**tsv_set, log_transform=kind).load()
    np.testing.assert_allclose(data.X.to_numpy(), ref(X.to_numpy()), rtol=1e-15)


def test_min_feature_variance_matches_sklearn_variance_threshold(tmp_path: Path, frames: Any) -> None:
    X, Y, _ = frames
    X = X.copy()
    X["GAPDH"] = 3.0  # constant
    X["ACTB"] = X["ACTB"] / 100.0  # low variance
    threshold = float(np.var(X["ACTB"].to_numpy())) * 1.5
    paths = {"features": str(write_text(X, tmp_path / "x.tsv")), "targets": str(write_text(Y, tmp_path / "y.tsv"))}
    for t in (0.0, threshold):
        data = TableLoader(**paths, min_feature_variance=t).load()
        expected = X.columns[VarianceThreshold(t).fit(X.to_numpy()).get_support()]
        assert list(data.features) == list(expected)
    assert "GAPDH" not in TableLoader(**paths, min_feature_variance=0).load().features


def test_event_policies(tmp_path: Path, frames: Any) -> None:
    X, Y, _ = frames
    Y = Y.copy()
    Y["ev4"] = np.nan  # all-NaN event
    Y["ev5"] = 0.3  # constant event
    Y.iloc[0:9, 0] = np.nan  # ev1: 3 values left
    paths = {"features": str(write_text(X, tmp_path / "x.tsv")), "targets": str(write_text(Y, tmp_path / "y.tsv"))}
    keep = TableLoader(**paths, all_nan_events="drop").load()
    assert list(keep.events) == ["ev1", "ev2", "ev3", "ev5"]
    assert np.isnan(keep.Y.to_numpy()).sum() == 9 + 2
    assert any("dropped 1 all-NaN events ('ev4')" in m for m in keep.log)
    dropped = TableLoader(**paths, all_nan_events="drop", missing_psi="drop_events").load()
    assert list(dropped.events) == ["ev2", "ev5"]
    assert list(TableLoader(**paths, all_nan_events="drop", min_samples_per_event=4).load().events) == ["ev2", "ev3", "ev5"]
    assert list(TableLoader(**paths, all_nan_events="drop", constant_events="drop").load().events) == ["ev1", "ev2", "ev3"]
    # the two events whose non-missing PSI varies most, in file order; the constant ev5 never
    variance = Y[["ev1", "ev2", "ev3", "ev5"]].var(ddof=0)
    top2 = sorted(variance.nlargest(2).index)
    most = TableLoader(**paths, all_nan_events="drop", most_variable_events=2).load()
    assert list(most.events) == top2 and "ev5" not in top2
    assert any("kept the 2 most variable of 4 events" in m for m in most.log)
    assert list(TableLoader(**paths, all_nan_events="drop", most_variable_events=10).load().events) == ["ev1", "ev2", "ev3", "ev5"]


def test_sample_policies(tmp_path: Path, frames: Any) -> None:
    X, Y, meta = frames
    Xd = pd.concat([X, X.iloc[[3]] * 2])  # S03 twice; the first row is kept
    Xd.loc["EXTRA"] = 1.0
    Xd = Xd.copy()
    Xd.iloc[0, 5] = np.nan  # Rbfox2 missing once
    paths = {
        "features": str(write_text(Xd, tmp_path / "x.tsv")),
        "targets": str(write_text(Y.iloc[:-1], tmp_path / "y.tsv")),  # S11 has no PSI
        "metadata": str(write_text(meta, tmp_path / "m.tsv")),
    }
    data = TableLoader(
        **paths, duplicate_samples="keep_first", unaligned_samples="intersect", missing_expression="drop_genes"
    ).load()
    assert list(data.samples) == SAMPLES[:-1]
    pd.testing.assert_frame_equal(data.X, X.iloc[:-1].drop(columns="Rbfox2"))
    assert data.meta is not None and list(data.meta.index) == SAMPLES[:-1]
    assert any("2 only in features" in m and "'EXTRA'" in m and "'S11'" in m for m in data.log)


# --------------------------------------------------------------------------- pickle (regulAS format)


def test_pickle_loader_regulas_format_and_alias(tmp_path: Path, frames: Any) -> None:
    import regulas.workloads.splicing  # noqa: F401 - the splicing workload declares regulAS's _target_ aliases

    X, Y, _ = frames
    frame = X.assign(psi=Y["ev2"].to_numpy())
    path = tmp_path / "data.pkl"
    frame.to_pickle(path)
    node = {"_target_": "regulAS.utils.PickleLoader", "name": "RNA-Seq", "meta": "some fancy description",
            "path_to_file": str(path), "objective": "psi"}
    assert locate(node["_target_"]) is PickleLoader
    data = instantiate(node).load()
    pd.testing.assert_frame_equal(data.X, X)
    assert list(data.events) == ["psi"]
    np.testing.assert_array_equal(data.Y["psi"].to_numpy(), Y["ev2"].to_numpy())
    assert (data.name, data.description) == ("RNA-Seq", "some fancy description")
    default = PickleLoader(path_to_file=str(path)).load()  # objective defaults to the last column
    assert default.fingerprint() == data.fingerprint()
    two = tmp_path / "two.pkl"
    frame.assign(other=Y["ev1"].to_numpy()).to_pickle(two)
    several = PickleLoader(path_to_file=str(two), objective=["other", "psi"]).load()
    pd.testing.assert_frame_equal(several.X, X)
    np.testing.assert_array_equal(several.Y.to_numpy(), Y[["ev1", "ev2"]].to_numpy())


# --------------------------------------------------------------------------- junction reads -> PSI

JSAMPLES = ["S0", "S1", "S2", "S3", "S4", "S5"]


def make_junctions(seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Inclusion and exclusion read tables (junction ID, event, one column per sample)."""
    rng = np.random.default_rng(seed)
    inc_events = ["e1", "e1", "e2", "e2", "e3", "e3"]
    exc_events = ["e1", "e2", "e2", "e3"]
    inc = pd.DataFrame(rng.integers(0, 40, (6, 6)).astype(float), columns=JSAMPLES)
    exc = pd.DataFrame(rng.integers(0, 40, (4, 6)).astype(float), columns=JSAMPLES)
    inc.loc[[0, 1], "S1"] = [3.0, 9.0]  # e1 in S1: every junction below 10 reads
    exc.loc[0, "S1"] = 2.0
    inc.loc[[4, 5], "S2"] = 0.0  # e3 in S2: no reads at all
    exc.loc[3, "S2"] = 0.0
    inc.loc[2, "S3"] = np.nan  # an empty cell counts as 0 reads
    inc.insert(0, "event", inc_events)
    exc.insert(0, "event", exc_events)
    inc.index = [f"inc{i}" for i in range(6)]
    exc.index = [f"exc{i}" for i in range(4)]
    return inc.rename_axis("junction"), exc.rename_axis("junction")


def reference_psi(inc: pd.DataFrame, exc: pd.DataFrame, min_reads: float, divisor: float = 2.0) -> pd.DataFrame:
    """The junction PSI model written out cell by cell (independent of the vectorised code)."""
    out = pd.DataFrame(index=JSAMPLES, columns=["e1", "e2", "e3"], dtype=float)
    for e in out.columns:
        for s_ in JSAMPLES:
            i_reads = [0.0 if np.isnan(r) else r for r in inc.loc[inc["event"] == e, s_]]
            e_reads = [0.0 if np.isnan(r) else r for r in exc.loc[exc["event"] == e, s_]]
            covered = any(r >= min_reads for r in i_reads + e_reads)
            i_half = sum(i_reads) / divisor
            den = i_half + sum(e_reads)
            out.loc[s_, e] = i_half / den if covered and den > 0 else np.nan
    return out


@pytest.fixture
def junction_set(tmp_path: Path) -> dict[str, str]:
    inc, exc = make_junctions()
    X, _, _ = make_frames()
    X = X.iloc[:6].set_axis(JSAMPLES, axis=0)
    inc.to_csv(tmp_path / "inc.tsv", sep="\t")
    exc.to_csv(tmp_path / "exc.csv.gz")
    write_text(X.T, tmp_path / "expr.tsv")  # genes x samples
    return {"inclusion": str(tmp_path / "inc.tsv"), "exclusion": str(tmp_path / "exc.csv.gz"),
            "expression": str(tmp_path / "expr.tsv"), "expression_layout": "genes_x_samples"}


@pytest.mark.parametrize(("min_reads", "divisor"), [(10, 2.0), (0, 2.0), (25, 1.0)])
def test_junction_psi_matches_the_model_cell_by_cell(junction_set: dict[str, str], min_reads: float, divisor: float) -> None:
    inc, exc = make_junctions()
    data = JunctionPSILoader(**junction_set, min_reads=min_reads, inclusion_divisor=divisor, all_nan_events="drop").load()
    ref = reference_psi(inc, exc, min_reads, divisor).loc[:, list(data.events)]
    np.testing.assert_allclose(data.Y.to_numpy(), ref.to_numpy(), rtol=1e-15, equal_nan=True)
    assert np.isnan(data.Y.loc["S2", "e3"])  # no reads: missing whatever the cutoff
    if min_reads == 10:
        assert np.isnan(data.Y.loc["S1", "e1"]) and not np.isnan(data.Y.loc["S1", "e2"])
    X, _, _ = make_frames()
    pd.testing.assert_frame_equal(data.X, X.iloc[:6].set_axis(JSAMPLES, axis=0))


def test_psi_from_junctions_function_counts_low_coverage() -> None:
    inc = pd.DataFrame({"A": [4.0, 6.0, 0.0], "B": [1.0, 1.0, 20.0]})
    exc = pd.DataFrame({"A": [3.0, 0.0], "B": [2.0, 5.0]})
    psi, n_low = psi_from_junctions(inc, ["x", "x", "y"], exc, ["x", "y"], min_reads=5)
    # x in A: (10/2)/(5+3); x in B: all reads < 5 -> NaN; y in A: 0 reads -> NaN; y in B: (20/2)/(10+5)
    np.testing.assert_allclose(psi.to_numpy(), [[5 / 8, np.nan], [np.nan, 10 / 15]], equal_nan=True)
    assert n_low == 2 and list(psi.columns) == ["x", "y"] and list(psi.index) == ["A", "B"]


# --------------------------------------------------------------------------- UCSC Xena layout

# sample -> (study, sample type, primary site); expression for all but T9, PSI for all but G9
PHENO = {
    "TCGA-01": ("TCGA", "Primary Tumor", "Breast"), "TCGA-02": ("TCGA", "Primary Tumor", "Breast"),
    "TCGA-03": ("TCGA", "Primary Tumor", "Breast"), "TCGA-04": ("TCGA", "Primary Tumor", "Lung"),
    "TCGA-05": ("TCGA", "Primary Tumor", "Lung"), "TCGA-06": ("TCGA", "Solid Tissue Normal", "Breast"),
    "TCGA-07": ("TCGA", "Metastatic", "Breast"), "T9": ("TCGA", "Primary Tumor", "Lung"),
    "GTEX-1": ("GTEX", "Normal Tissue", "Breast"), "GTEX-2": ("GTEX", "Normal Tissue", "Breast"),
    "GTEX-3": ("GTEX", "Normal Tissue", "Liver"), "G9": ("GTEX", "Normal Tissue", "Liver"),
    "TARGET-1": ("TARGET", "Primary Tumor", "Blood"),
}
IDS = ["ENSG01.1", "ENSG02.4", "ENSG03.2", "ENSG04.1", "ENSG05.7"]
SYMBOLS = ["HNRNPA1", "SRSF1", "ACTB", "HNRNPA1", "PTBP1"]  # ENSG04 repeats a symbol


@pytest.fixture
def xena_set(tmp_path: Path) -> dict[str, str]:
    rng = np.random.default_rng(3)
    with_expr = [s_ for s_ in PHENO if s_ != "T9"]
    with_psi = [s_ for s_ in PHENO if s_ != "G9"]
    expr = pd.DataFrame(rng.normal(3, 2, (5, len(with_expr))), index=IDS, columns=with_expr)  # log2(tpm + 0.001)
    write_text(expr, tmp_path / "tpm.tsv.gz")
    psi = pd.DataFrame(rng.uniform(0, 1, (len(with_psi), 3)), index=with_psi, columns=["ev_a", "ev_b", "ev_c"])
    write_text(psi, tmp_path / "psi.tsv")
    pheno = pd.DataFrame.from_dict(PHENO, orient="index", columns=["_study", "_sample_type", "_primary_site"])
    pheno.insert(0, "detailed_category", "x")
    write_text(pheno, tmp_path / "phenotype.txt.gz")
    pd.DataFrame({"id": IDS, "gene": SYMBOLS, "chrom": "chr1"}).to_csv(tmp_path / "probemap.tsv", sep="\t", index=False)
    return {"expression": str(tmp_path / "tpm.tsv.gz"), "phenotype": str(tmp_path / "phenotype.txt.gz"),
            "psi": str(tmp_path / "psi.tsv"), "gene_map": str(tmp_path / "probemap.tsv")}


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, ["TCGA-01", "TCGA-02", "TCGA-03", "TCGA-04", "TCGA-05"]),
        ({"include_adjacent_normal": True}, ["TCGA-01", "TCGA-02", "TCGA-03", "TCGA-04", "TCGA-05", "TCGA-06"]),
        ({"sample_type": "Normal"}, ["GTEX-1", "GTEX-2", "GTEX-3"]),
        ({"sample_type": "Combined", "paired": True}, ["TCGA-01", "TCGA-02", "TCGA-03", "GTEX-1", "GTEX-2"]),
        ({"sample_type": "Combined", "min_samples_per_tissue": 3}, ["TCGA-01", "TCGA-02", "TCGA-03", "GTEX-1", "GTEX-2"]),
        ({"sample_type": "Combined", "tissues": ["Lung", "Liver"]}, ["TCGA-04", "TCGA-05", "GTEX-3"]),
    ],
)
def test_xena_sample_selection(xena_set: dict[str, str], kwargs: dict[str, Any], expected: list[str]) -> None:
    data = XenaLoader(**xena_set, **kwargs).load()
    assert list(data.samples) == expected
    assert data.meta is not None and list(data.meta.columns) == ["tissue", "cohort", "sample_type"]
    assert list(data.meta.loc[expected, "tissue"]) == [PHENO[s_][2] for s_ in expected]


def test_xena_gene_map_and_rbp_list(xena_set: dict[str, str], rbp_file: Path) -> None:
    data = XenaLoader(**xena_set, rbp_list=str(rbp_file)).load()
    assert list(data.features) == ["HNRNPA1", "SRSF1", "PTBP1"]  # ACTB not an RBP; repeated HNRNPA1 dropped
    expr = pd.read_csv(xena_set["expression"], sep="\t", index_col=0)
    np.testing.assert_array_equal(data.X["PTBP1"].to_numpy(), expr.loc["ENSG05.7", list(data.samples)].to_numpy())
    assert any("dropped 0 unmapped and 1 repeated symbols" in m for m in data.log)
    plain = XenaLoader(**{k: v for k, v in xena_set.items() if k != "gene_map"}).load()
    assert list(plain.features) == IDS


def test_xena_with_junction_reads(tmp_path: Path, xena_set: dict[str, str]) -> None:
    inc, exc = make_junctions()
    names = dict(zip(JSAMPLES, ["TCGA-01", "TCGA-02", "TCGA-04", "GTEX-1", "GTEX-2", "TARGET-1"], strict=True))
    inc.rename(columns=names).to_csv(tmp_path / "inc.tsv", sep="\t")
    exc.rename(columns=names).to_csv(tmp_path / "exc.tsv", sep="\t")
    kw = {k: v for k, v in xena_set.items() if k != "psi"}
    data = XenaLoader(**kw, inclusion=str(tmp_path / "inc.tsv"), exclusion=str(tmp_path / "exc.tsv"),
                      sample_type="Combined", all_nan_events="drop").load()
    assert list(data.samples) == ["TCGA-01", "TCGA-02", "TCGA-04", "GTEX-1", "GTEX-2"]
    ref = reference_psi(inc, exc, 10).rename(index=names).loc[list(data.samples), list(data.events)]
    np.testing.assert_allclose(data.Y.to_numpy(), ref.to_numpy(), equal_nan=True)


# --------------------------------------------------------------------------- bad inputs


def _bad_cases() -> list[tuple[str, Callable[[Path, dict[str, str]], Any], str]]:
    def table(path: Path, text: str) -> str:
        path.write_text(text)
        return str(path)

    def psi_with(tmp: Path, paths: dict[str, str], row: int, col: int, value: Any) -> str:
        Y = pd.read_csv(paths["targets"], sep="\t", index_col=0).astype(object)
        Y.iloc[row, col] = value
        return str(write_text(Y, tmp / "y_bad.tsv"))

    X, Y, meta = make_frames()
    return [
        ("missing file", lambda t, p: TableLoader(features=str(t / "nope.tsv"), targets=p["targets"]),
         r"key 'experiment.dataset.features': file not found .*nope.tsv"),
        ("unknown format", lambda t, p: TableLoader(features=table(t / "x.xlsx", "a"), targets=p["targets"]),
         r"x.xlsx: key 'experiment.dataset.features': unknown table format \(suffix '.xlsx'\); expected one of"),
        ("pickle by suffix", lambda t, p: TableLoader(features=table(t / "x.pkl", "a"), targets=p["targets"]),
         r"is a pickle; regulas never unpickles by file suffix .*PickleLoader"),
        ("compressed pickle by suffix", lambda t, p: TableLoader(features=p["features"], targets=table(t / "y.pkl.gz", "a")),
         r"y.pkl.gz: key 'experiment.dataset.targets': .* is a pickle; regulas never unpickles by file suffix"),
        ("ragged row", lambda t, p: TableLoader(features=table(t / "xr.tsv", "s\ta\tb\nS00\t1\t2\nS01\t1\t2\t3\n"), targets=p["targets"]).load(),
         r"xr.tsv: key 'experiment.dataset.features': cannot parse as TSV: .*Expected 3 fields in line 3, saw 4"),
        ("non-numeric cell", lambda t, p: TableLoader(features=p["features"], targets=psi_with(t, p, 3, 1, "n/a?")).load(),
         r"y_bad.tsv: key 'experiment.dataset.targets': non-numeric cell at row 'S03', column 'ev2': 'n/a\?'"),
        ("PSI out of range", lambda t, p: TableLoader(features=p["features"], targets=psi_with(t, p, 5, 3, 1.5)).load(),
         r"PSI out of range at event 'ev4', sample 'S05': 1.5 \(1 values outside \[0, 1\]\)"),
        ("PSI in percent", lambda t, p: TableLoader(features=p["features"], targets=str(write_text(Y * 100, t / "y100.tsv"))).load(),
         r"look like percentages: divide them by 100"),
        ("duplicate samples", lambda t, p: TableLoader(features=str(write_text(pd.concat([X, X.iloc[[2]]]), t / "xd.tsv")), targets=p["targets"]).load(),
         r"xd.tsv: key 'experiment.dataset.features': duplicate sample IDs in features: 'S02'; expected each sample once"),
        ("duplicate events", lambda t, p: TableLoader(features=p["features"], targets=table(t / "yd.tsv", "s\te\te\nS00\t0.1\t0.2\n")).load(),
         r"yd.tsv: key 'experiment.dataset.targets': duplicate column names in the header: \['e'\]"),
        ("unaligned samples", lambda t, p: TableLoader(features=str(write_text(X.rename(index={"S00": "T00", "S01": "T01"}), t / "xu.tsv")), targets=p["targets"]).load(),
         r"sample IDs do not align: 2 only in features .*xu.tsv \('T00', 'T01'\); 2 only in targets .*\('S00', 'S01'\); "
         r"expected the same sample IDs in both \(or set unaligned_samples: intersect\)"),
        ("transposed features", lambda t, p: TableLoader(features=str(write_text(X.T, t / "xt.tsv")), targets=p["targets"], unaligned_samples="intersect").load(),
         r"expected at least one sample ID in common. The columns of this file match 12 sample IDs: is it transposed\? "
         r"Check experiment.dataset.features_layout"),
        ("all-NaN event", lambda t, p: TableLoader(features=p["features"], targets=str(write_text(Y.assign(ev3=np.nan), t / "yn.tsv"))).load(),
         r"yn.tsv: key 'experiment.dataset.targets': 1 events have no PSI value in any of the 12 samples \('ev3'\); .*all_nan_events: drop"),
        ("missing PSI under fail", lambda t, p: TableLoader(**p, missing_psi="fail").load(),
         r"2 missing PSI values \(3.3%\), first at event 'ev3', sample 'S01'; expected none"),
        ("no genes after RBP filter", lambda t, p: TableLoader(**p, rbp_list=table(t / "r.tsv", "symbol\nELAVL1\nQKI\n")).load(),
         r"r.tsv: key 'experiment.dataset.rbp_list': no genes left after the RBP filter: none of the 2 symbols"),
        ("rbp_list file absent", lambda t, p: TableLoader(**p, rbp_list=str(t / "none.tsv")),
         r"key 'experiment.dataset.rbp_list': file not found \(given: .*none.tsv"),
        ("rbp column absent", lambda t, p: TableLoader(**p, rbp_list=table(t / "r2.tsv", "gene\nELAVL1\n")).load(),
         r"column 'symbol' not found \(columns: 'gene'\); expected rbp_column to name the column"),
        ("empty data", lambda t, p: TableLoader(features=table(t / "xe.tsv", "sample\tA\tB\n"), targets=p["targets"]).load(),
         r"xe.tsv: key 'experiment.dataset.features': empty table \(0 rows x 2 columns\)"),
        ("empty file", lambda t, p: TableLoader(features=table(t / "xz.tsv", ""), targets=p["targets"]).load(),
         r"xz.tsv: key 'experiment.dataset.features': the file is empty"),
        ("wrong HDF5 layout", lambda t, p: TableLoader(features=_h5(t / "w.h5", rows=False), targets=p["targets"]).load(),
         r"w.h5: key 'experiment.dataset.features': wrong layout: missing \['rows'\]; found \['columns', 'values'\]"),
        ("wrong HDF5 shape", lambda t, p: TableLoader(features=_h5(t / "s.h5", shape=(3, 4)), targets=p["targets"]).load(),
         r"wrong layout: 'values' has shape \(3, 4\), 'rows' 12 and 'columns' 6 entries"),
        ("negative before log", lambda t, p: TableLoader(features=str(write_text(X - 50, t / "xn.tsv")), targets=p["targets"], log_transform="log2p1").load(),
         r"key 'experiment.dataset.log_transform': log_transform 'log2p1' needs non-negative expression; sample 'S\d+'"),
        ("missing expression", lambda t, p: TableLoader(features=str(write_text(X.mask(X > 40), t / "xm.tsv")), targets=p["targets"]).load(),
         r"missing expression value at sample 'S\d+', feature '\w+' .*missing_expression: drop_genes"),
        ("metadata lacks samples", lambda t, p: TableLoader(**{**p, "metadata": str(write_text(meta.iloc[2:], t / "mm.tsv"))}).load(),
         r"mm.tsv: key 'experiment.dataset.metadata': 2 samples have no row in the metadata \('S00', 'S01'\)"),
        ("unknown kwarg", lambda t, p: TableLoader(**p, rbp_lst="x"),
         r"key 'experiment.dataset.rbp_lst': unknown key for TableLoader \(given: 'x'\); allowed keys: .*rbp_list"),
        ("bad policy value", lambda t, p: TableLoader(**p, missing_psi="ignore"),
         r"key 'experiment.dataset.missing_psi': not allowed \(given: 'ignore'\); expected one of 'keep', 'drop_events', 'fail'"),
        ("ambiguous log_transform", lambda t, p: TableLoader(**p, log_transform=True),
         r"log_transform: true is ambiguous"),
        ("bad layout", lambda t, p: TableLoader(**p, features_layout="rows"),
         r"key 'experiment.dataset.features_layout': invalid value \(given: 'rows'\); expected one of 'samples_x_genes'"),
        ("negative min_samples", lambda t, p: TableLoader(**p, min_samples_per_event=-1),
         r"key 'experiment.dataset.min_samples_per_event': out of range \(given: -1\)"),
        ("pickle objective absent", lambda t, p: PickleLoader(path_to_file=_pickle(t, X), objective="psi").load(),
         r"key 'experiment.dataset.objective': objective column 'psi' not found"),
        ("pickle not a DataFrame", lambda t, p: PickleLoader(path_to_file=_pickle(t, [1, 2])).load(),
         r"the pickle holds a list; expected a pandas DataFrame"),
        ("junction event column absent", lambda t, p: JunctionPSILoader(inclusion=table(t / "i.tsv", "j\tS00\nj1\t3\n"), exclusion=table(t / "e.tsv", "j\tevent\tS00\nj2\te\t1\n"), expression=p["features"]).load(),
         r"i.tsv: key 'experiment.dataset.inclusion': no event column 'event' \(columns start 'S00'\)"),
        ("junction events unmatched", lambda t, p: JunctionPSILoader(inclusion=table(t / "i.tsv", "j\tevent\tS00\nj1\ta\t3\nj3\tb\t1\n"), exclusion=table(t / "e.tsv", "j\tevent\tS00\nj2\ta\t1\nj4\tc\t1\n"), expression=p["features"]).load(),
         r"events without both junction kinds: 1 only in inclusion \('b'\), 1 only in exclusion \('c'\)"),
        ("junction samples differ", lambda t, p: JunctionPSILoader(inclusion=table(t / "i.tsv", "j\tevent\tS00\nj1\ta\t3\n"), exclusion=table(t / "e.tsv", "j\tevent\tS01\nj2\ta\t1\n"), expression=p["features"]).load(),
         r"the junction tables have different samples: only in inclusion \('S00'\), only in exclusion \('S01'\)"),
        ("negative read count", lambda t, p: JunctionPSILoader(inclusion=table(t / "i.tsv", "j\tevent\tS00\nj1\ta\t-3\n"), exclusion=table(t / "e.tsv", "j\tevent\tS00\nj2\ta\t1\n"), expression=p["features"]).load(),
         r"negative read count at junction 'j1', sample 'S00': -3.0"),
        ("xena phenotype columns", lambda t, p: XenaLoader(expression=p["features"], phenotype=p["metadata"], psi=p["targets"]).load(),
         r"meta.tsv: key 'experiment.dataset.phenotype': missing phenotype columns \['_primary_site', '_study', '_sample_type'\]"),
        ("xena psi twice", lambda t, p: XenaLoader(expression=p["features"], phenotype=p["metadata"], psi=p["targets"], inclusion=p["targets"], exclusion=p["targets"]),
         r"give PSI either as psi: TABLE or as inclusion: \+ exclusion:"),
        ("xena bad sample_type", lambda t, p: XenaLoader(expression=p["features"], phenotype=p["metadata"], psi=p["targets"], sample_type="tumour"),
         r"key 'experiment.dataset.sample_type': invalid value \(given: 'tumour'\); expected one of 'Tumor', 'Normal', 'Combined'"),
    ]


def _h5(path: Path, *, rows: bool = True, shape: tuple[int, int] | None = None) -> str:
    X, _, _ = make_frames()
    with h5py.File(path, "w") as h5:
        h5["values"] = np.zeros(shape) if shape else X.to_numpy()
        if rows:
            h5["rows"] = np.array(X.index, dtype="S")
        h5["columns"] = np.array(X.columns, dtype="S")
    return str(path)


def _pickle(tmp: Path, obj: Any) -> str:
    path = tmp / "p.pkl"
    path.write_bytes(pickle.dumps(obj))
    return str(path)


BAD = _bad_cases()


@pytest.mark.parametrize(("label", "make", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_fails_with_one_clear_message(
    tmp_path: Path, tsv_set: dict[str, str], label: str, make: Callable[[Path, dict[str, str]], Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        make(tmp_path, tsv_set)
    assert re.search(message, str(info.value)), f"{label}: {info.value}"


def test_data_errors_are_config_errors_with_the_file_as_source(tmp_path: Path, tsv_set: dict[str, str]) -> None:
    bad = tmp_path / "y.tsv"
    bad.write_text("sample\tev\nS00\tx\n")
    with pytest.raises(DataError) as info:
        TableLoader(features=tsv_set["features"], targets=str(bad)).load()
    assert info.value.source == str(bad) and info.value.key == "experiment.dataset.targets"


def test_gzip_text_with_non_numeric_cell_is_located(tmp_path: Path, frames: Any) -> None:
    X, Y, _ = frames
    path = tmp_path / "x.tsv.gz"
    body = X.rename_axis("sample").to_csv(sep="\t").replace("\n", "\n", 1)
    lines = body.splitlines()
    cells = lines[7].split("\t")
    cells[4] = "12,5"  # decimal comma
    lines[7] = "\t".join(cells)
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"non-numeric cell at row 'S06', column 'ACTB': '12,5'"):
        TableLoader(features=str(path), targets=str(write_text(Y, tmp_path / "y.tsv"))).load()


# --------------------------------------------------------------------------- real data


def _symbols_in(path: Path) -> set[str]:
    return {line.split("\t")[0] for line in path.read_text().splitlines()[1:]}


def test_gse114922_loads_with_rbp_filter_and_log_transform() -> None:
    node = {
        "_target_": "regulas.data.TableLoader",
        "name": "GSE114922",
        "meta": "MDS bone marrow, SF3B1 MUT vs WT (ASpediaFI)",
        "features": str(GSE / "expression_fpkm.tsv.gz"),
        "targets": str(GSE / "psi.tsv.gz"),
        "metadata": str(GSE / "samples.tsv"),
        "rbp_list": str(RBP_FILE),
        "log_transform": "log2p1",
    }
    data = instantiate(node).load()
    with gzip.open(GSE / "expression_fpkm.tsv.gz", "rt") as fh:
        genes = fh.readline().rstrip("\n").split("\t")[1:]
    rbps = _symbols_in(RBP_FILE)
    present = [g for g in genes if g in rbps]
    assert data.shape == (40, len(present), 9990)
    assert len(present) == 868  # RBPs of the Sebestyen list measured in GSE114922
    assert list(data.features) == present
    assert not np.isnan(data.Y.to_numpy()).any()
    assert data.meta is not None and sorted(data.meta["condition"].value_counts().tolist()) == [20, 20]
    raw = pd.read_csv(GSE / "expression_fpkm.tsv.gz", sep="\t", index_col=0)
    np.testing.assert_allclose(data.X.to_numpy(), np.log2(raw[present].to_numpy() + 1), rtol=1e-14)


def test_shalek2013_loads_with_the_missing_value_policy() -> None:
    kw = {
        "features": str(SHALEK / "expression.csv.gz"),
        "targets": str(SHALEK / "splicing.csv.gz"),
        "metadata": str(SHALEK / "metadata.csv"),
    }
    with pytest.raises(DataError, match=r"1 only in features .*\('S12'\); 0 only in targets"):
        TableLoader(**kw).load()
    data = TableLoader(**kw, unaligned_samples="intersect", missing_psi="keep").load()
    assert data.shape == (20, 6312, 352)
    assert "S12" not in data.samples
    assert int(np.isnan(data.Y.to_numpy()).sum()) == 4707  # 67% of 7,040 (SOURCE.md)
    strict = TableLoader(**kw, unaligned_samples="intersect", missing_psi="drop_events")
    with pytest.raises(DataError, match="no events left"):
        strict.load()  # every event misses some sample
    filtered = TableLoader(**kw, unaligned_samples="intersect", min_samples_per_event=10).load()
    counts = (~np.isnan(data.Y.to_numpy())).sum(axis=0)
    assert filtered.Y.shape[1] == int((counts >= 10).sum())
