"""The regnet workload's large-P path (``regnet.block_conditions``): config checks (structures,
fit cost, the TCGA config), a fit that runs before, between and after the block simulations
(same result), and a small end-to-end study on a real LocalCluster, SQLite and Zarr."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from sklearn.linear_model import RidgeCV

from conftest import CONFIGS, DATASETS, QUIET, REPO, query, run_cli
from regulas.core.errors import ConfigError
from regulas.core.workload import StudyContext
from regulas.execution.worker import execute_task
from regulas.lmm import KronSumLMM
from regulas.sim.blocked import BlockedDesign, BlockSeeds, block_slices
from regulas.sim.methods import DEFAULT_ALPHAS, MethodConfig, make_estimator
from regulas.sim.simulate import Cell, SimulationSeeds, realised_fraction
from regulas.store.arrays import StudyArrays
from regulas.study import load_study

MOTIF_FILE = DATASETS / "motifs" / "regions400_motif_scores.tsv.gz"
SMALL = {
    "replicates": 1, "genes": [60], "conditions": [10], "motifs": [8], "V": ["lowrank_2"], "Sigma": ["diagonal", "factor_2"],
    "fraction": [0.3], "block_conditions": 4, "motif_model": "copula", "motif_factors": 5,
    "methods": [{"name": "ridge", "kind": "ridge"},
                {"name": "lmm", "kind": "lmm", "signal": "lowrank_k", "rank": 2, "noise": "diagonal"}],
}


def _write(tmp: Path, regnet: dict[str, Any]) -> Path:
    body = yaml.safe_load((CONFIGS / "regnet.yaml").read_text())
    body["defaults"] = [{"cluster": "local"}, {"store": "sqlite"}, "_self_"]
    body["regnet"] = {"motif_scores": str(MOTIF_FILE), "noise_fraction": [0.5], **regnet}
    for group in ("cluster", "store"):
        (tmp / group).mkdir(exist_ok=True)
        for f in (CONFIGS / group).glob("*.yaml"):
            (tmp / group / f.name).write_text(f.read_text())
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


BAD: list[tuple[str, dict[str, Any], list[str]]] = [
    ("large-P-without-blocks", {"conditions": [10000], "block_conditions": None, "methods": [{"name": "r", "kind": "ridge"}]},
     ["regnet.conditions", "P = 10000", "block_conditions", "GiB"]),
    ("freeform-V-in-blocks", {"V": ["freeform"]}, ["regnet.V", "'freeform'", "no factor form", "lowrank_<k>"]),
    ("freeform-lmm-at-10000", {"conditions": [10000], "genes": [20000], "motifs": [600], "block_conditions": 1000,
                               "methods": [{"name": "lmm", "kind": "lmm", "signal": "freeform", "noise": "freeform"}]},
     ["regnet.methods[0].signal", "P = 10000", "GiB", "general path", "signal='lowrank_k'", "noise='factor'"]),
    ("factor-without-noise-rank", {"methods": [{"name": "l", "kind": "lmm", "signal": "diagonal", "noise": "factor"}]},
     ["regnet.methods[0].noise_rank", "required with noise 'factor'"]),
    ("noise-rank-too-big", {"methods": [{"name": "l", "kind": "lmm", "signal": "diagonal", "noise": "factor", "noise_rank": 10}]},
     ["regnet.methods[0].noise_rank", "P = 10"]),
    ("factor-noise-rank-above-P", {"Sigma": ["factor_10"]}, ["regnet.Sigma", "factor_10", "k < P"]),
    ("copula-without-scores", {"motif_scores": None}, ["regnet.motif_model", "motif_scores"]),
    ("replicates-for-unknown-P", {"replicates_by_conditions": {"7": 1}}, ["regnet.replicates_by_conditions", "'7'"]),
]


@pytest.mark.parametrize("name, regnet, parts", BAD, ids=[b[0] for b in BAD])
def test_bad_scale_config_one_clear_message(tmp_path: Path, name: str, regnet: dict[str, Any], parts: list[str]) -> None:
    path = _write(tmp_path, {**SMALL, **regnet})
    with pytest.raises(ConfigError) as info:
        load_study(path)
    missing = [p for p in parts if p not in str(info.value)]
    assert not missing, f"message lacks {missing}:\n{info.value}"


def test_tcga_config_validates() -> None:
    spec = load_study(CONFIGS / "regnet_tcga.yaml")
    c = spec.workload.config
    assert c.genes == [20000] and c.motifs == [600] and c.conditions == [1000, 10000] and c.block_conditions
    assert c.replicates_for(1000) == 2 and c.replicates_for(10000) == 1
    noises = {m.get("noise") for m in c.methods}
    assert {"diagonal", "factor"} <= noises


def test_factor_noise_method_passes_noise_rank() -> None:
    method = MethodConfig(name="l", kind="lmm", signal="lowrank_k", rank=2, noise="factor", noise_rank=3)
    method.check("m", None)
    est = make_estimator(method, 0)
    assert (est.noise, est.noise_rank, est.rank) == ("factor", 3, 2)


def _tasks(tmp_path: Path) -> tuple[Any, list[Any], str]:
    spec = load_study(_write(tmp_path, SMALL), overrides=[f"store.root={tmp_path / 'out'}"])
    arrays = StudyArrays(spec.store.arrays_path, spec.study.name)
    ctx = StudyContext(name=spec.study.name, root_seed=spec.seed, arrays=arrays)
    tasks = spec.workload.plan(ctx, spec.workload.prepare(ctx))
    arrays.check_ownership((t.key, t.regions) for t in tasks)
    return spec, tasks, str(spec.store.arrays_path)


def test_fit_does_not_depend_on_task_order(tmp_path: Path) -> None:
    """A fit run before the block simulations draws the blocks itself; after them it reads them: same result."""
    spec, tasks, store = _tasks(tmp_path)
    sims = [t for t in tasks if t.kind == "regnet.simulate_block"]
    fits = [t for t in tasks if t.kind == "regnet.fit_streamed"]
    assert len(sims) == 2 * 3 and len(fits) == 2  # 2 cells x 3 blocks (4 + 4 + 2 conditions)
    name = spec.study.name

    def fit_outcome() -> Any:
        out = execute_task(spec.workload, fits[0], store, name)
        assert out.status == "done", out.traceback
        return out.rows["sim_score"]

    before = fit_outcome()
    for t in sims:
        out = execute_task(spec.workload, t, store, name)
        assert out.status == "done", out.traceback
    after = fit_outcome()
    values = {(m, k): v for m, k, v in zip(before["method"], before["metric"], before["value"])}
    again = {(m, k): v for m, k, v in zip(after["method"], after["metric"], after["value"])}
    assert values[("simulation", "blocks_from_zarr")] == 0 and again[("simulation", "blocks_from_zarr")] == 3
    for key, v in values.items():
        if key[1] not in ("blocks_from_zarr", "read_setup_s", "fit_time_s"):
            assert again[key] == pytest.approx(v, rel=1e-12, abs=1e-12, nan_ok=True), key


@pytest.mark.slow
def test_regnet_blocked_end_to_end(tmp_path: Path) -> None:
    root = tmp_path / "out"
    path = _write(tmp_path, SMALL)
    proc = run_cli(["run", str(path), f"store.root={root}", "cluster.n_workers=2", *QUIET])
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout
    db = root / "regulas.db"
    assert query(db, "SELECT kind, status, count(*) FROM task GROUP BY kind, status") == [
        ("regnet.fit_streamed", "done", 2), ("regnet.simulate_block", "done", 6)]
    import zarr

    group = zarr.open_group(str(root / "arrays.zarr"), path="regnet", mode="r")
    value = {(c, m, k): v for c, m, k, v in query(db, "SELECT cell, method, metric, value FROM sim_result")}
    fits = [(json.loads(b), seed) for b, seed in query(db, "SELECT block, seed FROM task WHERE kind = 'regnet.fit_streamed'")]
    assert {b["cell"]["Sigma"] for b, _ in fits} == {"diagonal", "factor_2"}
    for b, seed in fits:
        cell, g, i = Cell(**b["cell"]), b["group"], b["index"]
        Y, beta, M = group[f"Y.{g}"][i, 0], group[f"beta.{g}"][i, 0], group[f"M.{g}"][0]
        # the stored blocks are the in-memory blocked simulation with the stored seeds, and carry their marks
        design = BlockedDesign.draw(cell, SimulationSeeds(**b["seeds"]), M)
        blocks = [(c, BlockSeeds(*s)) for c, s in zip(block_slices(10, 4), b["block_seeds"])]
        Y_ref, beta_ref = design.dense(blocks)
        np.testing.assert_allclose(Y, Y_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(beta, beta_ref, rtol=1e-12, atol=1e-14)
        assert group[f"block_seed.{g}"][i, 0].tolist() == b["block_seeds"]
        V = group[f"V_factor.{g}"][i, 0]
        np.testing.assert_allclose(V @ V.T + np.diag(group[f"V_diag.{g}"][i, 0]), design.V.dense(), atol=1e-15)
        assert value[(cell.label, "simulation", "sigma2_beta")] == pytest.approx(design.sigma2_beta, rel=1e-12)
        assert value[(cell.label, "simulation", "achieved_fraction")] == pytest.approx(
            realised_fraction(Y, Y - M @ beta), rel=1e-9)
        # ridge and the LMM on the stored M and Y reproduce the stored beta_hat
        ref = RidgeCV(alphas=DEFAULT_ALPHAS, fit_intercept=True).fit(M, Y)
        np.testing.assert_allclose(group[f"beta_hat.{g}"][i, 0, 0], ref.coef_.T, rtol=1e-8, atol=1e-10)
        lmm = KronSumLMM(signal="lowrank_k", rank=2, noise="diagonal", random_state=seed % 2**32).fit(M, Y)
        np.testing.assert_allclose(group[f"beta_hat.{g}"][i, 0, 1], lmm.coef_, rtol=1e-6, atol=1e-9 * np.abs(lmm.coef_).max())
        assert value[(cell.label, "lmm", "log_likelihood")] == pytest.approx(lmm.log_likelihood_, rel=1e-9)


def test_factor_noise_lmm_fit_streamed(tmp_path: Path) -> None:
    regnet = {**SMALL, "Sigma": ["factor_2"],
              "methods": [{"name": "lmm_factor", "kind": "lmm", "signal": "lowrank_k", "rank": 2, "noise": "factor", "noise_rank": 1}]}
    spec = load_study(_write(tmp_path, regnet), overrides=[f"store.root={tmp_path / 'out'}"])
    arrays = StudyArrays(spec.store.arrays_path, spec.study.name)
    ctx = StudyContext(name=spec.study.name, root_seed=spec.seed, arrays=arrays)
    tasks = spec.workload.plan(ctx, spec.workload.prepare(ctx))
    for t in tasks:  # simulations first, then the fit
        out = execute_task(spec.workload, t, str(spec.store.arrays_path), spec.study.name)
        assert out.status == "done", out.traceback
    fit = next(t for t in tasks if t.kind == "regnet.fit_streamed")
    import zarr

    group = zarr.open_group(str(spec.store.arrays_path), path=spec.study.name, mode="r")
    g = fit.block["group"]
    M, Y = group[f"M.{g}"][0], group[f"Y.{g}"][0, 0]
    ref = KronSumLMM(signal="lowrank_k", rank=2, noise="factor", noise_rank=1, random_state=fit.seed % 2**32).fit(M, Y)
    np.testing.assert_allclose(group[f"beta_hat.{g}"][0, 0, 0], ref.coef_, rtol=1e-6, atol=1e-9 * np.abs(ref.coef_).max())


def test_regnet_page_tables_equal_the_results_json() -> None:
    """docs/regnet.md shows the TCGA table of docs/benchmarks.md, generated the same way."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_tables", REPO / "benchmarks" / "docs_tables.py")
    assert spec is not None and spec.loader is not None
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    page = (REPO / "docs" / "regnet.md").read_text()
    assert "<!-- results:regnet_tcga -->" in page
    assert tables.render(page, require_all=False) == page, "run: python benchmarks/docs_tables.py"
