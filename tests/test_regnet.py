"""The regNet workload: simulation invariants, metrics against scipy / scikit-learn, bad
configs (one clear message each), and an end-to-end study through the CLI on a real
LocalCluster, real SQLite and real Zarr whose stored results are recomputed independently.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from scipy.optimize import brentq
from scipy.stats import pearsonr, spearmanr
from sklearn.linear_model import RidgeCV
from sklearn.metrics import mean_squared_error, r2_score

from conftest import CONFIGS, DATASETS, QUIET, query, run_cli
from regulas.core.errors import ConfigError
from regulas.lmm import KronSumLMM
from regulas.sim.covariance import LOWRANK_NUGGET, lowrank_blocks, noise_covariance, signal_covariance
from regulas.sim.methods import DEFAULT_ALPHAS, MethodConfig, fit_method
from regulas.sim.metrics import beta_metrics, kl_gaussian
from regulas.sim.motifs import draw_motif_matrix, load_motif_scores
from regulas.sim.simulate import Cell, SimulationSeeds, realised_fraction, simulate
from regulas.study import load_study

MOTIF_FILE = DATASETS / "motifs" / "regions400_motif_scores.tsv.gz"


# ------------------------------------------------------------------ simulation


@pytest.mark.parametrize("V", ["id", "lowrank_2", "lowrank_half", "freeform"])
@pytest.mark.parametrize("Sigma", ["random", "identity", "randomV", "identityV"])
@pytest.mark.parametrize("fraction", [0.05, 0.4, 1.0])
def test_simulation_invariants(V: str, Sigma: str, fraction: float) -> None:
    P, nf = 6, 0.7
    cell = Cell(150, P, 40, V, Sigma, nf if Sigma.endswith("V") else 0.0, fraction)
    sim = simulate(cell, SimulationSeeds.derive(11, cell, 3))
    assert sim.Y.shape == (150, P) and sim.beta.shape == (40, P) and sim.M.shape == (150, 40)
    assert sim.achieved_fraction == pytest.approx(fraction, abs=1e-12)
    E = sim.Y - sim.M @ sim.beta  # the noise, recovered from what is stored
    assert realised_fraction(sim.Y, E) == pytest.approx(fraction, abs=1e-12)
    assert np.trace(sim.V) == pytest.approx(1) and np.trace(sim.Sigma) == pytest.approx(1)
    np.testing.assert_allclose(sim.C0, sim.sigma2_beta * sim.V, rtol=1e-14)
    np.testing.assert_allclose(sim.C1, sim.delta * sim.Sigma, rtol=1e-14)
    assert sim.delta == pytest.approx((1 - fraction) / np.linalg.eigvalsh(sim.Sigma)[-1], rel=1e-14)
    ev = np.linalg.eigvalsh(sim.V)
    if V.startswith("lowrank"):
        k = 2 if V == "lowrank_2" else P // 2
        assert (ev > 100 * LOWRANK_NUGGET / np.trace(sim.V)).sum() == k  # numerical rank = number of blocks
        assert ev[0] > 0  # + 1e-4 I keeps it definite
    if V == "id":
        np.testing.assert_allclose(sim.V, np.eye(P) / P)
    if V == "freeform":
        assert ev[0] > 1e-6
    if Sigma == "identityV":  # trace shares: f_N of the noise trace has V's structure
        np.testing.assert_allclose(sim.Sigma, nf * sim.V + (1 - nf) * np.eye(P) / P, atol=1e-14)
    if Sigma == "randomV":
        rest = sim.Sigma - nf * sim.V
        assert np.trace(rest) == pytest.approx(1 - nf) and np.linalg.eigvalsh(rest)[0] > -1e-12
    if fraction == 1.0:
        assert sim.delta == 0 and not E.any()


def test_exact_scaling_matches_root_finding() -> None:
    """Independent reference: Brent's method on R^2(s) - f, the search regNet did by bisection."""
    cell = Cell(300, 4, 60, "freeform", "random", 0.0, 0.15)
    sim = simulate(cell, SimulationSeeds.derive(5, cell, 0))
    B0 = sim.beta / np.sqrt(sim.sigma2_beta)
    E = sim.Y - sim.M @ sim.beta
    s = brentq(lambda t: realised_fraction(sim.M @ (t * B0) + E, E) - 0.15, 1e-9, 1e3, xtol=1e-15)
    assert np.sqrt(sim.sigma2_beta) == pytest.approx(s, rel=1e-9)


def test_common_random_numbers_and_determinism() -> None:
    a = Cell(100, 4, 30, "freeform", "identity", 0.0, 0.1)
    b = Cell(100, 4, 30, "freeform", "identity", 0.0, 0.4)
    sa, sb = (simulate(c, SimulationSeeds.derive(1, c, 0)) for c in (a, b))
    np.testing.assert_array_equal(sa.M, sb.M)
    np.testing.assert_allclose(sa.beta / np.sqrt(sa.sigma2_beta), sb.beta / np.sqrt(sb.sigma2_beta))
    again = simulate(a, SimulationSeeds.derive(1, a, 0))
    np.testing.assert_array_equal(sa.Y, again.Y)
    other = simulate(a, SimulationSeeds.derive(1, a, 1))
    assert not np.allclose(sa.Y, other.Y)


def test_motif_matrix_draws_without_replacement_and_tiles() -> None:
    source = np.random.default_rng(0).random((400, 623))  # distinct rows and columns, unlike the real file
    row_of = {source[i].tobytes(): i for i in range(400)}
    M = draw_motif_matrix(source, 978, 623, np.random.default_rng(0))
    # T = all motifs: every column once, in file order; G > 400: every region 2 or 3 times
    counts = np.bincount([row_of[row.tobytes()] for row in M], minlength=400)
    assert counts.min() == 2 and counts.max() == 3 and counts.sum() == 978
    M2 = draw_motif_matrix(source, 300, 600, np.random.default_rng(1))
    assert len({M2[:, j].tobytes() for j in range(600)}) == 600  # 600 distinct motifs, no repeats
    assert len({M2[i].tobytes() for i in range(300)}) == 300  # G <= 400: a subset of distinct regions
    np.testing.assert_array_equal(M, source[[row_of[row.tobytes()] for row in M]])  # columns in file order
    with pytest.raises(ConfigError, match="cannot draw 624 distinct motifs from 623"):
        draw_motif_matrix(source, 10, 624, np.random.default_rng(0))


def test_real_motif_file_is_scaled_per_column() -> None:
    scores = load_motif_scores(MOTIF_FILE)
    assert scores.shape == (400, 623) and len(set(scores.motifs)) == 623
    np.testing.assert_allclose(scores.values.min(axis=0), 0)
    np.testing.assert_allclose(scores.values.max(axis=0), 1)


def test_lowrank_psd_bound_and_kl() -> None:
    assert lowrank_blocks("lowrank_100", 200) == 100
    V = signal_covariance("lowrank_100", 200, np.random.default_rng(0))
    assert np.linalg.eigvalsh(V)[0] > 0
    with pytest.raises(ValueError, match="not positive semi-definite"):
        lowrank_blocks("lowrank_101", 200)
    # KL: zero at equality, the 1-D closed form summed over a diagonal, inf for a singular estimate
    A = noise_covariance("random", np.eye(3) / 3, 0.0, np.random.default_rng(2))
    assert kl_gaussian(A, A) == pytest.approx(0, abs=1e-12)
    a, b = np.array([0.5, 2.0, 1.0]), np.array([1.0, 1.0, 3.0])
    one_d = 0.5 * (a / b - 1 + np.log(b / a))
    assert kl_gaussian(np.diag(a), np.diag(b)) == pytest.approx(one_d.sum(), rel=1e-12)
    assert kl_gaussian(np.diag(a), np.diag([1.0, 0.0, 1.0])) == np.inf


def test_beta_metrics_match_scipy_and_sklearn() -> None:
    rng = np.random.default_rng(3)
    beta = rng.standard_normal((50, 3))
    beta_hat = 0.7 * beta + 0.5 * rng.standard_normal((50, 3))
    m = beta_metrics(beta_hat, beta)
    assert m["pearson"] == pytest.approx(pearsonr(beta.ravel(), beta_hat.ravel())[0], rel=1e-12)
    assert m["spearman"] == pytest.approx(spearmanr(beta.ravel(), beta_hat.ravel())[0], rel=1e-12)
    assert m["r2_beta"] == pytest.approx(r2_score(beta.ravel(), beta_hat.ravel()), rel=1e-12)
    assert m["rmse_beta"] == pytest.approx(np.sqrt(mean_squared_error(beta, beta_hat)), rel=1e-12)
    for j in range(3):
        assert m[f"pearson_c{j}"] == pytest.approx(pearsonr(beta[:, j], beta_hat[:, j])[0], rel=1e-12)
        assert m[f"spearman_c{j}"] == pytest.approx(spearmanr(beta[:, j], beta_hat[:, j])[0], rel=1e-12)
    assert np.isnan(beta_metrics(np.zeros_like(beta), beta)["pearson"])  # undefined, not 0


def test_ridge_method_equals_sklearn_ridgecv() -> None:
    cell = Cell(120, 4, 30, "lowrank_2", "randomV", 0.7, 0.3)
    sim = simulate(cell, SimulationSeeds.derive(9, cell, 0))
    fit = fit_method(MethodConfig("ridge", "ridge"), sim.M, sim.Y, 0)
    ref = RidgeCV(alphas=DEFAULT_ALPHAS, fit_intercept=True).fit(sim.M, sim.Y)
    assert fit.extra["alpha"] == ref.alpha_
    np.testing.assert_allclose(fit.coef, ref.coef_.T, rtol=1e-8, atol=1e-10)
    resid = sim.Y - ref.predict(sim.M)
    np.testing.assert_allclose(fit.Sigma_hat, np.cov(resid, rowvar=False), rtol=1e-7, atol=1e-12)


# --------------------------------------------------------------- bad configs

BASE: dict[str, Any] = yaml.safe_load((CONFIGS / "regnet.yaml").read_text())


def _write(tmp: Path, regnet: dict[str, Any], motif_file: str | None = None) -> Path:
    for group in ("cluster", "store"):
        shutil.copytree(CONFIGS / group, tmp / group, dirs_exist_ok=True)
    body = {k: v for k, v in BASE.items()}
    body["regnet"] = {**BASE["regnet"], "motif_scores": motif_file, **regnet}
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def _nan_motif_file(tmp: Path) -> str:
    path = tmp / "scores.tsv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("\tm1\tm2\tm3\nr1\t0.1\t0.2\t0.3\nr2\t0.4\tNaN\t0.6\nr3\t0.7\t0.8\t0.9\n")
    return str(path)


LMM = {"name": "lmm", "kind": "lmm"}
BAD: list[tuple[str, dict[str, Any], list[str]]] = [
    ("fraction-zero", {"fraction": [0.0, 0.2]}, ["regnet.fraction", "0.0", "(0, 1]"]),
    ("fraction-above-one", {"fraction": [1.5]}, ["regnet.fraction", "1.5", "(0, 1]"]),
    ("noise-fraction-one", {"noise_fraction": [1.0]}, ["regnet.noise_fraction", "1.0", "[0, 1)"]),
    ("unknown-V", {"V": ["id", "blockdiag"]}, ["regnet.V", "'blockdiag'", "lowrank_<k>", "freeform"]),
    ("unknown-Sigma", {"Sigma": ["diag"]}, ["regnet.Sigma", "'diag'", "randomV", "identityV"]),
    ("lowrank-k-above-P", {"V": ["lowrank_5"]}, ["regnet.V", "'lowrank_5'", "k = 5", "4 conditions"]),
    ("lowrank-not-psd", {"conditions": [300], "V": ["lowrank_150"]}, ["regnet.V", "not positive semi-definite", "k <= 100"]),
    ("custom-not-psd", {"covariances": {"mine": [[1, 2, 0, 0], [2, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}, "V": ["mine"]},
     ["regnet.covariances.mine", "not positive semi-definite", "-1"]),
    ("custom-wrong-shape", {"covariances": {"mine": [[1, 0], [0, 1]]}, "Sigma": ["mine"]},
     ["regnet.Sigma", "'mine' is 2 x 2", "P = 4", "4 x 4"]),
    ("custom-not-square", {"covariances": {"mine": [[1, 0, 0], [0, 1, 0]]}, "V": ["mine"]},
     ["regnet.covariances.mine", "shape (2, 3)", "square"]),
    ("lmm-rank-above-P", {"methods": [{**LMM, "signal": "lowrank_k", "rank": 6}]}, ["regnet.methods[0].rank", "k = 6", "P = 4"]),
    ("lmm-unknown-structure", {"methods": [{**LMM, "noise": "random"}]}, ["regnet.methods[0].noise", "'random'", "diagonal"]),
    ("lmm-lowrank-without-rank", {"methods": [{**LMM, "signal": "lowrank_k"}]}, ["regnet.methods[0].rank", "required"]),
    ("T-above-G-without-prior", {"motifs": [300], "genes": [200, 400], "methods": [{"name": "ols", "kind": "ols"}]},
     ["regnet.methods[0].kind", "T = 300", "G = 200", "prior"]),
    ("ridge-with-lmm-key", {"methods": [{"name": "r", "kind": "ridge", "signal": "freeform"}]},
     ["regnet.methods[0].signal", "only for methods of kind 'lmm'"]),
    ("ridge-negative-alpha", {"methods": [{"name": "r", "kind": "ridge", "alphas": [1.0, -2.0]}]},
     ["regnet.methods[0].alphas", "-2.0", "positive"]),
    ("duplicate-method-names", {"methods": [{"name": "a", "kind": "ridge"}, {"name": "a", "kind": "ols"}]},
     ["regnet.methods[1].name", "'a' is used twice"]),
    ("reserved-method-name", {"methods": [{"name": "simulation", "kind": "ridge"}]}, ["regnet.methods[0].name", "reserved"]),
    ("unknown-method-kind", {"methods": [{"name": "x", "kind": "lasso"}]}, ["regnet.methods[0].kind", "'lasso'", "'ridge'"]),
    ("duplicated-grid-value", {"genes": [100, 100]}, ["regnet.genes", "[100, 100]", "once"]),
    ("no-replicates", {"replicates": 0}, ["regnet.replicates", "> 0"]),
    ("no-noise-with-lmm", {"fraction": [0.2, 1.0], "methods": [{"name": "r", "kind": "ridge"}, LMM]},
     ["regnet.fraction", "1.0", "'lmm'", "positive definite noise"]),
]


@pytest.mark.parametrize("name, regnet, parts", BAD, ids=[b[0] for b in BAD])
def test_bad_config_one_clear_message(tmp_path: Path, name: str, regnet: dict[str, Any], parts: list[str]) -> None:
    path = _write(tmp_path, regnet)
    with pytest.raises(ConfigError) as info:
        load_study(path)
    message = str(info.value)
    assert str(path) in message
    missing = [p for p in parts if p not in message]
    assert not missing, f"message lacks {missing}:\n{message}"


def test_bad_motif_files(tmp_path: Path) -> None:
    nan_file = _nan_motif_file(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_study(_write(tmp_path, {"motifs": [2]}, nan_file))
    for part in ("regnet.motif_scores", nan_file, "row 'r2'", "motif 'm2'", "finite"):
        assert part in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_study(_write(tmp_path, {"motifs": [5]}, nan_file.replace("scores", "absent")))
    assert "regnet.motif_scores" in str(info.value) and "file not found" in str(info.value)
    good = tmp_path / "good.tsv"
    good.write_text("\tm1\tm2\tm3\nr1\t1\t2\t3\nr2\t4\t5\t6\nr3\t7\t8\t10\n")
    with pytest.raises(ConfigError) as info:
        load_study(_write(tmp_path, {"motifs": [5]}, str(good)))
    for part in ("regnet.motifs", "T = 5", "3 motif columns", "without replacement"):
        assert part in str(info.value)


def test_shipped_configs_validate() -> None:
    for name in ("regnet.yaml", "regnet_paper.yaml"):
        spec = load_study(CONFIGS / name)
        assert spec.workload.name == "regnet"
        assert spec.workload.config.cells()


# ---------------------------------------------------------------- end to end


@pytest.mark.slow
def test_regnet_end_to_end(tmp_path: Path) -> None:
    root = tmp_path / "out"
    grid = ["regnet.replicates=2", "regnet.genes=[60,450]", "regnet.conditions=[4]", "regnet.motifs=[20]",
            "regnet.V=[lowrank_2,freeform]", "regnet.Sigma=[identity,identityV]", "regnet.noise_fraction=[0.5]",
            "regnet.fraction=[0.3]",
            "regnet.methods=[{name: ridge, kind: ridge}, {name: lmm, kind: lmm, signal: diagonal, noise: diagonal}]"]
    proc = run_cli(["run", str(CONFIGS / "regnet.yaml"), f"store.root={root}", f"regnet.motif_scores={MOTIF_FILE}",
                    "cluster.n_workers=2", *grid, *QUIET])
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout
    db = root / "regulas.db"
    n_cells, R, P = 2 * 2 * 2, 2, 4
    assert query(db, "SELECT status, count(*) FROM task GROUP BY status") == [("done", n_cells * R * 3)]
    per_fit = 4 + 2 * P + 2 + 3 + 1  # beta metrics, per-condition ones, KL x2, loglik/time/converged, alpha|n_iter
    counts = dict(query(db, "SELECT method, count(*) FROM sim_result WHERE study = 'regnet' GROUP BY method"))
    assert counts == {"simulation": n_cells * R * 5, "ridge": n_cells * R * per_fit, "lmm": n_cells * R * per_fit}
    assert query(db, "SELECT count(DISTINCT cell) FROM sim_result")[0][0] == n_cells
    assert {r[0] for r in query(db, "SELECT DISTINCT noise_fraction FROM sim_result WHERE Sigma='identity'")} == {0.0}

    import zarr

    group = zarr.open_group(str(root / "arrays.zarr"), path="regnet", mode="r")
    # the view gives NaN as NULL (SQLite has no NaN); read it back as NaN
    db_value = {(c, r, m, k): float("nan") if v is None else v
                for c, r, m, k, v in query(db, "SELECT cell, replicate, method, metric, value FROM sim_result")}
    blocks = [json.loads(b) for (b,) in query(db, "SELECT block FROM task WHERE kind='regnet.simulate'")]
    assert len(blocks) == n_cells * R
    lmm_seeds = {(json.loads(b)["cell"]["V"], json.loads(b)["cell"]["Sigma"], json.loads(b)["cell"]["genes"],
                  json.loads(b)["replicate"]): seed
                 for b, seed in query(db, "SELECT block, seed FROM task WHERE kind='regnet.fit' AND block LIKE '%\"lmm\"%'")}
    assert len(lmm_seeds) == n_cells * R
    for b in blocks:
        cell, g, i, r = Cell(**b["cell"]), b["group"], b["index"], b["replicate"]
        Y, beta = group[f"Y.{g}"][i, r], group[f"beta.{g}"][i, r]
        V, Sigma, C0, C1 = (group[f"{n}.{g}"][i, r] for n in ("V", "Sigma", "C0", "C1"))
        M = group[f"M.{g}"][r]
        assert M.shape == (cell.genes, 20) and M.min() >= 0 and M.max() <= 1
        E = Y - M @ beta
        assert realised_fraction(Y, E) == pytest.approx(cell.fraction, abs=1e-10)
        assert db_value[(cell.label, r, "simulation", "achieved_fraction")] == pytest.approx(cell.fraction, abs=1e-12)
        assert np.trace(V) == pytest.approx(1) and np.trace(Sigma) == pytest.approx(1)
        np.testing.assert_allclose(C0, db_value[(cell.label, r, "simulation", "sigma2_beta")] * V, rtol=1e-12)
        np.testing.assert_allclose(C1, db_value[(cell.label, r, "simulation", "delta")] * Sigma, rtol=1e-12)
        if cell.Sigma == "identityV":
            np.testing.assert_allclose(Sigma, 0.5 * V + 0.5 * np.eye(P) / P, atol=1e-14)
        if cell.V == "lowrank_2":
            assert (np.linalg.eigvalsh(V) > 1e-3).sum() == 2
        # ridge: scikit-learn's RidgeCV on the stored M and Y, against the stored beta_hat and metrics
        ref = RidgeCV(alphas=DEFAULT_ALPHAS, fit_intercept=True).fit(M, Y)
        beta_hat = group[f"beta_hat.{g}"][i, r, 0]
        np.testing.assert_allclose(beta_hat, ref.coef_.T, rtol=1e-8, atol=1e-10)
        assert db_value[(cell.label, r, "ridge", "alpha")] == ref.alpha_
        assert db_value[(cell.label, r, "ridge", "pearson")] == pytest.approx(pearsonr(beta.ravel(), ref.coef_.T.ravel())[0], rel=1e-9)
        assert db_value[(cell.label, r, "ridge", "rmse_beta")] == pytest.approx(np.sqrt(np.mean((ref.coef_.T - beta) ** 2)), rel=1e-9)
        # lmm: refit on the stored M and Y with the task's stored seed; the stored beta_hat, log-likelihood
        # and metrics must be what that fit gives (metrics recomputed with scipy, KL in closed form)
        seed = lmm_seeds[(cell.V, cell.Sigma, cell.genes, r)]
        lmm = KronSumLMM(signal="diagonal", noise="diagonal", random_state=seed % 2**32).fit(M, Y)
        lmm_hat = group[f"beta_hat.{g}"][i, r, 1]
        np.testing.assert_allclose(lmm_hat, lmm.coef_, rtol=1e-6, atol=1e-9 * np.abs(lmm.coef_).max())
        assert db_value[(cell.label, r, "lmm", "log_likelihood")] == pytest.approx(lmm.log_likelihood_, rel=1e-9, abs=1e-6)
        assert db_value[(cell.label, r, "lmm", "pearson")] == pytest.approx(pearsonr(beta.ravel(), lmm_hat.ravel())[0], rel=1e-9)
        assert db_value[(cell.label, r, "lmm", "spearman_c0")] == pytest.approx(
            spearmanr(beta[:, 0], lmm_hat[:, 0])[0] if np.ptp(lmm_hat[:, 0]) > 0 else np.nan, rel=1e-9, nan_ok=True)
        d = np.diag(lmm.C0_) / np.trace(lmm.C0_)  # the diagonal C0 at trace 1; KL in closed form
        kl = np.inf if d.min() <= 0 else 0.5 * (np.sum(np.diag(V) / d) - P + np.sum(np.log(d)) - np.linalg.slogdet(V)[1])
        assert db_value[(cell.label, r, "lmm", "kl_V")] == pytest.approx(kl, rel=1e-5)
        assert db_value[(cell.label, r, "lmm", "converged")] == float(lmm.converged_)
    assert np.isfinite(group["beta_hat.G450_P4_T20"][:]).all()
    for figure in ("regnet_beta_recovery", "regnet_kl", "regnet_fit_time"):
        path = root / "reports" / "regnet" / f"{figure}.png"
        assert f"figure:   {path}" in proc.stdout
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
