"""The large-P simulation pieces at small sizes: factor-form covariances, the blocked draw, the
setup streamed over condition blocks, and synthetic motif scores calibrated on the real table."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import DATASETS
from regulas.sim.blocked import BlockedDesign, BlockSeeds, block_slices
from regulas.sim.covariance import StructureError, signal_covariance
from regulas.sim.factor_covariance import (
    DIAGONAL_LOG_SD,
    FactorCovariance,
    noise_factor,
    signal_factor,
)
from regulas.sim.motif_copula import MotifCopula, copula_motif_matrix
from regulas.sim.motifs import load_motif_scores
from regulas.sim.simulate import Cell, SimulationSeeds, realised_fraction
from regulas.sim.streamed_setup import ConditionSetup

MOTIF_FILE = DATASETS / "motifs" / "regions400_motif_scores.tsv.gz"


@pytest.mark.parametrize("name", ["lowrank_1", "lowrank_3", "lowrank_half"])
def test_lowrank_factor_is_the_dense_block_constant_matrix(name: str) -> None:
    P = 12
    V = signal_factor(name, P, np.random.default_rng(5))
    np.testing.assert_allclose(V.dense(), signal_covariance(name, P, np.random.default_rng(5)), atol=1e-15)
    assert V.trace == pytest.approx(1.0)


def _unit(P: int) -> FactorCovariance:
    return FactorCovariance(np.zeros((P, 0)), np.full(P, 1.0 / P))


@pytest.mark.parametrize("name", ["identity", "diagonal", "factor_2", "random", "identityV", "randomV"])
def test_noise_factor_structures(name: str) -> None:
    P, fN = 9, 0.6
    V = signal_factor("lowrank_2", P, np.random.default_rng(1))
    S = noise_factor(name, V, fN, np.random.default_rng(2))
    assert S.trace == pytest.approx(1.0) and (S.diag > 0).all()
    C = S.dense()
    assert np.linalg.eigvalsh(C)[0] > 0
    assert S.largest_eigenvalue() == pytest.approx(np.linalg.eigvalsh(C)[-1], rel=1e-10)
    if name.endswith("V"):  # a share f_N of the trace has V's structure (V's factor comes first)
        kV = V.rank
        gammaV = S.factor[:, :kV] @ S.factor[:, :kV].T  # gamma F_V F_V^T; gamma d_V sits in the diagonal
        gamma = np.trace(gammaV) / np.sum(V.factor**2)
        assert gamma * V.trace == pytest.approx(fN, rel=1e-12)
    if name == "factor_2":
        assert S.rank == 2 and np.sum(S.factor**2) == pytest.approx(0.5) and np.sum(S.diag) == pytest.approx(0.5)
    if name == "diagonal":
        d = np.log(S.diag)
        assert S.rank == 0 and np.std(d) == pytest.approx(DIAGONAL_LOG_SD, rel=0.8)


def test_factor_draw_has_the_stated_covariance() -> None:
    """Rows drawn block by block with one shared latent: sample covariance -> F F^T + diag(d) (4 sd)."""
    P, n = 7, 200_000
    V = signal_factor("lowrank_2", P, np.random.default_rng(3))
    S = noise_factor("randomV", V, 0.5, np.random.default_rng(4))
    rng = np.random.default_rng(0)
    z = rng.standard_normal((n, S.rank))
    x = np.hstack([S.draw(z, rng.standard_normal((n, c.stop - c.start)), c) for c in block_slices(P, 3)])
    C = S.dense()
    sd = np.sqrt((C**2 + np.outer(np.diag(C), np.diag(C))) / n)  # sd of a Gaussian sample covariance entry
    assert np.all(np.abs(x.T @ x / n - C) < 4 * sd)


def test_factor_refusals() -> None:
    with pytest.raises(StructureError, match="no factor form"):
        signal_factor("freeform", 10, np.random.default_rng(0))
    with pytest.raises(StructureError, match="k < P"):
        noise_factor("factor_5", _unit(5), 0.0, np.random.default_rng(0))
    big = FactorCovariance(np.zeros((5000, 1)), np.ones(5000))
    with pytest.raises(StructureError, match="refusing to form"):
        big.dense()


def _design(cell: Cell, seed: int = 11) -> tuple[BlockedDesign, list[tuple[slice, BlockSeeds]]]:
    seeds = SimulationSeeds.derive(seed, cell, 0)
    M = np.random.default_rng(seeds.motifs).random((cell.genes, cell.motifs))
    width = 4
    blocks = [(c, BlockSeeds.derive(seed, cell, 0, j, width)) for j, c in enumerate(block_slices(cell.conditions, width))]
    return BlockedDesign.draw(cell, seeds, M), blocks


def test_blocked_draw_equals_the_dense_model() -> None:
    """Y and beta assembled from blocks equal M beta + E written with dense P x P matrices from the same normals."""
    cell = Cell(genes=50, conditions=10, motifs=6, V="lowrank_2", Sigma="factor_2", noise_fraction=0.0, fraction=0.3)
    d, blocks = _design(cell)
    Y, beta = d.dense(blocks)
    T, G = cell.motifs, cell.genes
    Wb = np.hstack([np.random.default_rng(s.beta).standard_normal((T, c.stop - c.start)) for c, s in blocks])
    We = np.hstack([np.random.default_rng(s.noise).standard_normal((G, c.stop - c.start)) for c, s in blocks])
    beta_ref = np.sqrt(d.sigma2_beta) * (d.beta_latent @ d.V.factor.T + Wb @ np.diag(np.sqrt(d.V.diag)))
    E_ref = np.sqrt(d.delta) * (d.noise_latent @ d.Sigma.factor.T + We @ np.diag(np.sqrt(d.Sigma.diag)))
    np.testing.assert_allclose(beta, beta_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(Y, d.M @ beta_ref + E_ref, rtol=1e-12, atol=1e-12)
    # each block alone (as a task draws it) is the same columns
    c, s = blocks[1]
    np.testing.assert_array_equal(d.block(c, s)[0], Y[:, c])
    assert d.delta == pytest.approx((1 - cell.fraction) / np.linalg.eigvalsh(d.Sigma.dense())[-1])


@pytest.mark.parametrize("V, Sigma", [("lowrank_2", "diagonal"), ("id", "factor_3"), ("lowrank_3", "randomV")])
def test_blocked_scale_reaches_the_fraction(V: str, Sigma: str) -> None:
    cell = Cell(genes=2000, conditions=40, motifs=30, V=V, Sigma=Sigma, noise_fraction=0.5 if Sigma == "randomV" else 0.0,
                fraction=0.2)
    d, blocks = _design(cell)
    Y, beta = d.dense(blocks)
    assert realised_fraction(Y, Y - d.M @ beta) == pytest.approx(0.2, abs=0.02)


def test_streamed_setup_equals_dense() -> None:
    cell = Cell(genes=40, conditions=10, motifs=8, V="lowrank_2", Sigma="diagonal", noise_fraction=0.0, fraction=0.4)
    d, blocks = _design(cell)
    Y, beta = d.dense(blocks)
    setup = ConditionSetup.start(d.M, cell.conditions)
    for c, s in reversed(blocks):  # any order
        assert not setup.complete
        setup.add(c, d.block(c, s)[0])
    assert setup.complete
    U = setup.U
    np.testing.assert_allclose(U @ np.diag(setup.s) @ setup.Wt, d.M, atol=1e-12)
    np.testing.assert_allclose(setup.UtY, U.T @ Y, atol=1e-12)
    np.testing.assert_allclose(setup.col_sumsq, (Y**2).sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(setup.MtY(), d.M.T @ Y, atol=1e-10)
    assert setup.residual_sumsq(beta) == pytest.approx(np.sum((Y - d.M @ beta) ** 2), rel=1e-10)
    assert setup.fraction(beta) == pytest.approx(realised_fraction(Y, Y - d.M @ beta), rel=1e-10)
    with pytest.raises(ValueError, match="already added"):
        setup.add(*blocks[0][:1], Y[:, blocks[0][0]])
    bad = ConditionSetup.start(d.M, cell.conditions)
    with pytest.raises(ValueError, match="non-finite"):
        bad.add(slice(0, 2), np.full((40, 2), np.nan))


def test_copula_motifs_match_the_real_table() -> None:
    source = load_motif_scores(MOTIF_FILE).values
    copula = MotifCopula.fit(source)
    M = copula_motif_matrix(copula, 20_000, 40, np.random.default_rng(0))
    cols = np.sort(np.random.default_rng(0).choice(source.shape[1], size=40, replace=False))
    real = source[:, cols]
    assert M.shape == (20_000, 40) and M.min() >= 0 and M.max() <= 1
    assert np.linalg.matrix_rank(M) == 40
    np.testing.assert_allclose(M.mean(axis=0), real.mean(axis=0), atol=0.01)
    np.testing.assert_allclose(M.std(axis=0), real.std(axis=0), rtol=0.15)
    off = ~np.eye(40, dtype=bool)
    Rg, Rr = np.corrcoef(M, rowvar=False)[off], np.corrcoef(real, rowvar=False)[off]
    assert np.linalg.norm(Rg - Rr) / np.linalg.norm(Rr) < 0.35  # a Gaussian copula keeps rank, not Pearson, correlation
    assert np.corrcoef(Rg, Rr)[0, 1] > 0.9
    # deterministic for a seed
    np.testing.assert_array_equal(M, copula_motif_matrix(MotifCopula.fit(source), 20_000, 40, np.random.default_rng(0)))


def test_ridge_by_condition_blocks_equals_ridgegcv() -> None:
    from sklearn.linear_model import RidgeCV

    from regulas.lmm import RidgeGCV
    from regulas.lmm.ridge import SVDRidge
    from regulas.sim.blocked_ridge import loo_totals, ridge_by_condition_blocks
    from regulas.sim.methods import DEFAULT_ALPHAS

    rng = np.random.default_rng(4)
    M = rng.random((80, 12))
    alphas = np.asarray(DEFAULT_ALPHAS)
    for P in (11, 30):  # P < T (S = C C^T singular: the general product) and P > T (its Cholesky factor)
        Y = M @ rng.standard_normal((12, P)) + rng.standard_normal((80, P)) * 2 + 3
        for fit_intercept in (True, False):
            ref = RidgeGCV(alphas=DEFAULT_ALPHAS, fit_intercept=fit_intercept).fit(M, Y)
            engine = SVDRidge(M, fit_intercept=fit_intercept, rcond=max(M.shape) * np.finfo(float).eps, lapack="numpy")
            np.testing.assert_allclose(loo_totals(engine, Y, alphas, 4)[0], ref.cv_values_.sum(axis=1) * 80, rtol=1e-10)
            coef, intercept, alpha = ridge_by_condition_blocks(M, Y, alphas, fit_intercept, 4)
            assert alpha == ref.alpha_
            np.testing.assert_allclose(coef, ref.coef_, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(intercept, ref.intercept_, rtol=1e-10, atol=1e-12)
            sk = RidgeCV(alphas=alphas, fit_intercept=fit_intercept).fit(M, Y)
            assert alpha == sk.alpha_
            np.testing.assert_allclose(coef, sk.coef_.T, rtol=1e-8, atol=1e-10)


def test_kl_from_factors_equals_dense() -> None:
    from regulas.sim.metrics import factor_structure, kl_gaussian, kl_gaussian_factor, structure

    rng = np.random.default_rng(5)
    P = 25
    F, d = rng.standard_normal((P, 3)), rng.uniform(0.1, 1.0, P)
    for F_hat, d_hat in ((rng.standard_normal((P, 2)), rng.uniform(0.2, 2.0, P)), (np.zeros((P, 0)), rng.uniform(0.2, 2.0, P))):
        dense = kl_gaussian(F @ F.T + np.diag(d), structure(F_hat @ F_hat.T + np.diag(d_hat)))
        assert kl_gaussian_factor(F, d, *factor_structure(F_hat, d_hat)) == pytest.approx(dense, rel=1e-10)
    assert kl_gaussian_factor(F, d, F[:, :2], np.zeros(P)) == np.inf  # singular estimate (a low-rank C0), as the dense one


@pytest.mark.parametrize("Sigma", ["diagonal", "factor_2"])
def test_dense_path_takes_the_factor_only_noise_names(Sigma: str) -> None:
    from regulas.sim.simulate import simulate

    cell = Cell(genes=30, conditions=5, motifs=4, V="freeform", Sigma=Sigma, noise_fraction=0.0, fraction=0.3)
    seeds = SimulationSeeds.derive(3, cell, 0)
    sim = simulate(cell, seeds)
    ref = noise_factor(Sigma, _unit(5), 0.0, np.random.default_rng(seeds.Sigma)).dense()
    np.testing.assert_allclose(sim.Sigma, ref, atol=1e-15)
    assert sim.achieved_fraction == pytest.approx(0.3, abs=1e-12)
