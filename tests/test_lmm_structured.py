"""The structured Kronecker-sum path (issue 12) against independent references: the dense
O((GP)^3) density, the general path's KronSumProblem, glimix-core's Kron2Sum, finite
differences, and the general solver's optimum; plus its bad-input messages and the fit-cost
estimate that config checks use."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from test_lmm import _dense, _kron2sum, needs_glimix

from regulas.lmm import KronSumLMM, KronSumProblem, LMMInputError
from regulas.lmm import kronsum as kronsum_module
from regulas.lmm.cost import check_fit_cost, estimate_fit_cost
from regulas.lmm.covariance import make_noise, make_signal
from regulas.lmm.structured import Covariances, StructuredProblem
from regulas.lmm.structured_fit import Packing, fit_structured, moment_start
from regulas.lmm.structures import STRUCTURED_PAIRS

PAIRS = sorted(STRUCTURED_PAIRS)
LIKELIHOODS = [(False, True), (False, False), (True, True)]  # (reml, fit_intercept)


def _data(seed: int, G: int = 40, T: int = 7, P: int = 5, *, factor: bool = False):
    rng = np.random.default_rng(seed)
    M = rng.random((G, T))
    F = rng.standard_normal((P, 2))
    noise = rng.standard_normal((G, P)) * np.sqrt(rng.uniform(0.5, 2.0, P))
    if factor:
        noise += rng.standard_normal((G, 1)) @ rng.standard_normal((1, P))
    Y = 2.0 + M @ rng.standard_normal((T, 2)) @ F.T / np.sqrt(T) + noise
    return rng, M, Y


def _covariances(rng: np.random.Generator, signal: str, noise: str, P: int, k: int = 2, q: int = 2) -> Covariances:
    F = rng.standard_normal((P, k)) if signal == "lowrank_k" else np.zeros((P, 0))
    a = {"lowrank_k": np.zeros(P), "diagonal": rng.uniform(0.2, 1.5, P), "identity": np.full(P, 0.7)}[signal]
    d = rng.uniform(0.3, 1.3, P) if noise != "identity" else np.full(P, 0.9)
    H = rng.standard_normal((P, q)) if noise == "factor" else np.zeros((P, 0))
    return Covariances(F, a, d, H)


def _dense_posterior(M, C0, C1, alpha):
    """E[beta | Y] and Var[beta_tq | Y] (T x P each) from the joint Gaussian of vec(beta) and
    vec(Y) = (I_P (x) M) vec(beta) + vec(E), built without K; ``alpha`` = Sigma^-1 (y - X b)."""
    G, T = M.shape
    P = C0.shape[0]
    X = np.kron(np.eye(P), M)
    prior = np.kron(C0, np.eye(T)) / T  # Cov(vec beta): rows of beta ~ N(0, C0 / T)
    gain = prior @ X.T  # Cov(vec beta, vec Y)
    S = X @ gain + np.kron(C1, np.eye(G))
    var = np.diag(prior) - np.einsum("ij,ji->i", gain, np.linalg.solve(S, gain.T))
    return (gain @ alpha).reshape(P, T).T, var.reshape(P, T).T


# -- (1) the log-likelihood equals the dense density and the general path --------------------


@pytest.mark.parametrize("reml, intercept", LIKELIHOODS)
@pytest.mark.parametrize("signal, noise", PAIRS)
@pytest.mark.parametrize("shape", [(40, 7, 5), (12, 20, 4)])  # G > T, and T > G (K of rank G: no null rows)
def test_loglik_matches_dense_and_general(signal, noise, reml, intercept, shape):
    G, T, P = shape
    rng, M, Y = _data(1, G, T, P)
    for _ in range(2):
        cov = _covariances(rng, signal, noise, P)
        C0, C1 = cov.dense()
        ll, b = StructuredProblem(M, Y, fit_intercept=intercept, reml=reml, keep_y=True).log_likelihood(cov)
        ll_dense, b_dense, _ = _dense(M, Y, C0, C1, intercept=intercept, reml=reml)
        ll_general, b_general = KronSumProblem(M, Y, fit_intercept=intercept, reml=reml).log_likelihood(C0, C1)
        assert ll == pytest.approx(ll_dense, rel=1e-10)
        assert ll == pytest.approx(ll_general, rel=1e-10)
        np.testing.assert_allclose(b, b_dense, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(b, b_general, rtol=1e-8, atol=1e-10)


@needs_glimix
@pytest.mark.parametrize("reml", [False, True])
@pytest.mark.parametrize("noise", ["diagonal", "factor"])
def test_loglik_matches_kron2sum(noise, reml):
    rng, M, Y = _data(3, 30, 6, 4)
    cov = _covariances(rng, "lowrank_k", noise, 4, k=2, q=1)
    C0, C1 = cov.dense()
    lmm = _kron2sum(M, Y, cov.F, C1, reml=reml, rank=2)
    np.testing.assert_allclose(lmm.C0, C0, rtol=1e-12)
    ll, b = StructuredProblem(M, Y, reml=reml, keep_y=True).log_likelihood(cov)
    assert ll == pytest.approx(lmm.lml(), rel=1e-10)
    np.testing.assert_allclose(b, lmm.B.ravel(), rtol=1e-8)


# -- (2) analytic gradients vs finite differences ---------------------------------------------


@pytest.mark.parametrize("reml, intercept", LIKELIHOODS)
@pytest.mark.parametrize("signal, noise", PAIRS)
def test_gradient_matches_finite_differences(signal, noise, reml, intercept):
    rng, M, Y = _data(6, 30, 6, 4)
    problem = StructuredProblem(M, Y, fit_intercept=intercept, reml=reml, keep_y=True)
    pack = Packing(signal, noise, 4, 2, 2, rng.uniform(0.5, 1.5, 4))
    theta = 0.5 * rng.standard_normal(pack.n_params)

    def f(t):
        cov = pack.unpack(t)
        ev = problem.evaluate(cov)
        return ev.loglik, pack.gradient(cov, ev)

    _, g = f(theta)
    h = 1e-6
    num = np.array([(f(theta + h * e)[0] - f(theta - h * e)[0]) / (2 * h) for e in np.eye(theta.size)])
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-7 * np.abs(num).max())


# -- (3) the structured and the general solver reach the same optimum from the same start -------


@pytest.mark.parametrize("reml", [False, True])
@pytest.mark.parametrize("signal, noise", PAIRS)
def test_structured_and_general_optimum_agree(signal, noise, reml):
    _, M, Y = _data(7, 200, 15, 6, factor=noise == "factor")
    k, q, tol = (2 if signal == "lowrank_k" else 0), (1 if noise == "factor" else 0), 1e-8
    structured = StructuredProblem(M, Y, reml=reml, keep_y=True)
    general = KronSumProblem(M, Y, reml=reml)
    _, start = moment_start(structured, signal, noise, k, q)
    best, _ = fit_structured(structured, signal, noise, k, q, n_restarts=0, rng=np.random.default_rng(0), tol=tol, max_iter=5000,
                             starts=[("moment", start)])
    est = KronSumLMM(signal=signal, noise=noise, rank=k or None, noise_rank=q or None, reml=reml, tol=tol, max_iter=5000)
    sig, noi = make_signal(signal, 6, rank=k or None), make_noise(noise, 6, noise_rank=q or None)
    # the two paths share the internal units (same centring and scaling of Y, same K scale)
    C0, C1 = start.dense()
    run, _, _ = est._fit_lbfgs(general, sig, noi, [("moment", C0, C1)])
    assert abs(structured.user_loglik(best.loglik) - general.user_loglik(run.loglik)) < 1e-6
    # the optimum is the likelihood of the reported covariances, as either path evaluates it
    C0s, C1s = structured.covariances_to_user(best.cov).dense()
    assert general.log_likelihood(C0s, C1s)[0] == pytest.approx(structured.user_loglik(best.loglik), rel=1e-12)


@pytest.mark.parametrize("signal, noise, options", [
    ("lowrank_k", "diagonal", {"rank": 2}),
    ("lowrank_k", "factor", {"rank": 2, "noise_rank": 1}),
    ("diagonal", "diagonal", {}),
])
def test_estimator_paths_agree_and_coef_is_dense_posterior(signal, noise, options):
    G, T, P = 60, 9, 4
    _, M, Y = _data(9, G, T, P, factor=noise == "factor")
    fits = {s: KronSumLMM(signal=signal, noise=noise, solver=s, tol=1e-9, random_state=0, **options).fit(M, Y) for s in ("structured", "general")}
    fit = fits["structured"]
    assert fit.solver_ == "structured" and fits["general"].solver_ == "general"
    assert fit.log_likelihood_ == pytest.approx(fits["general"].log_likelihood_, abs=1e-6)
    C0, C1 = fit.C0_, fit.C1_
    np.testing.assert_allclose(C0, fit.C0_factor_ @ fit.C0_factor_.T + np.diag(fit.C0_diag_))
    np.testing.assert_allclose(C1, np.diag(fit.C1_diag_) + fit.C1_factor_ @ fit.C1_factor_.T)
    ll, b, alpha = _dense(M, Y, C0, C1)
    assert fit.log_likelihood_ == pytest.approx(ll, rel=1e-10)
    np.testing.assert_allclose(fit.intercept_, b, rtol=1e-8)
    mean, var = _dense_posterior(M, C0, C1, alpha)
    np.testing.assert_allclose(fit.coef_, mean, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(fit.coef_var_, var, rtol=1e-7, atol=1e-12)
    # the general path exposes the same factor attributes
    g = fits["general"]
    np.testing.assert_allclose(g.C1_, np.diag(g.C1_diag_) + g.C1_factor_ @ g.C1_factor_.T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g.C0_, g.C0_factor_ @ g.C0_factor_.T + np.diag(g.C0_diag_), rtol=1e-8, atol=1e-10)


def test_auto_takes_the_structured_path_from_128_conditions():
    rng = np.random.default_rng(11)
    M = rng.random((60, 5))
    Y = rng.standard_normal((60, 130)) + M @ rng.standard_normal((5, 130))
    big = KronSumLMM(signal="lowrank_k", rank=1, noise="diagonal").fit(M, Y)
    small = KronSumLMM(signal="lowrank_k", rank=1, noise="diagonal", n_restarts=0).fit(M, Y[:, :6])
    assert big.solver_ == "structured" and small.solver_ == "general"
    assert big.converged_ and big.C0_factor_.shape == (130, 1) and big.C1_factor_.shape == (130, 0)


def test_dense_covariances_are_refused_above_the_limit(monkeypatch):
    _, M, Y = _data(12)
    fit = KronSumLMM(signal="lowrank_k", rank=1, noise="diagonal", solver="structured").fit(M, Y)
    monkeypatch.setattr(kronsum_module, "DENSE_MAX_P", 4)
    with pytest.raises(LMMInputError, match=r"C0_ would be a dense 5 x 5 array.*only up to P = 4 conditions.*C0_factor_"):
        _ = fit.C0_
    with pytest.raises(LMMInputError, match=r"C1_ would be a dense 5 x 5"):
        _ = fit.C1_
    assert fit.predict(M).shape == Y.shape  # everything else still works


# -- (4) bad input: one clear message each ------------------------------------------------------


def test_bad_inputs_have_clear_messages():
    _, M, Y = _data(10)
    with pytest.raises(LMMInputError, match=r"rank=5 >= number of conditions P = 5.*signal='freeform'"):
        KronSumLMM(signal="lowrank_k", rank=5, noise="diagonal", solver="structured").fit(M, Y)
    for bad in (0, 5, 2.5, True):
        with pytest.raises(LMMInputError, match=rf"noise_rank must be an integer with 1 <= noise_rank < number of conditions P = 5; got {bad!r}"):
            KronSumLMM(signal="lowrank_k", rank=1, noise="factor", noise_rank=bad).fit(M, Y)
    with pytest.raises(LMMInputError, match=r"noise_rank=2 applies to noise='factor' only; got noise='diagonal'"):
        KronSumLMM(signal="lowrank_k", rank=1, noise="diagonal", noise_rank=2).fit(M, Y)
    with pytest.raises(LMMInputError, match=r"solver='structured' fits \(signal, noise\) in .*got \('freeform', 'diagonal'\)"):
        KronSumLMM(signal="freeform", noise="diagonal", solver="structured").fit(M, Y)
    with pytest.raises(LMMInputError, match=r"unknown solver 'fast'"):
        KronSumLMM(solver="fast").fit(M, Y)
    Yn = Y.copy()
    Yn[4, 2] = np.nan
    with pytest.raises(LMMInputError, match=r"Y \(genes x conditions\) contains 1 non-finite value.*\(4, 2\)"):
        KronSumLMM(signal="lowrank_k", rank=1, noise="diagonal", solver="structured").fit(M, Yn)
    Yc = Y.copy()
    Yc[:, 3] = 7.0  # constant: its noise variance would have to start (and end) at 0
    with pytest.raises(LMMInputError, match=r"condition\(s\) \[3\] of Y have zero variance after removing the intercept"):
        KronSumLMM(signal="lowrank_k", rank=1, noise="diagonal", solver="structured").fit(M, Yc)
    problem = StructuredProblem(M, Y)
    with pytest.raises(FloatingPointError, match="positive"):
        problem.evaluate(Covariances(np.ones((5, 1)), np.zeros(5), np.array([1.0, 1.0, 0.0, 1.0, 1.0]), np.zeros((5, 0))))


# -- (5) the fit-cost estimate for config checks -------------------------------------------------


def test_fit_cost_refuses_general_structures_at_tcga_scale():
    free = estimate_fit_cost("freeform", "freeform", 20_000, 600, 10_000)
    assert free.bytes > 1e12 and free.seconds > 1e5
    assert free.structured_alternative is not None and "signal='lowrank_k' (rank=4), noise='factor' (noise_rank=1)" in free.structured_alternative
    low = estimate_fit_cost("lowrank_k", "diagonal", 20_000, 600, 10_000, rank=8)
    assert low.structured_alternative is None and low.bytes < 1e10 and low.seconds < 600
    bytes_, seconds, alternative = estimate_fit_cost("diagonal", "diagonal", 20_000, 600, 1_000)  # a plain tuple
    assert alternative is None and bytes_ < 1e9
    with pytest.raises(LMMInputError, match=r"regnet.methods\[1\]: signal='freeform', noise='freeform' at G=20,000, T=600, P=10,000 cannot be fitted "
                                            r"within the memory limit 16.0 GB: estimated ~.* GB .*; use signal='lowrank_k'"):
        check_fit_cost("freeform", "freeform", 20_000, 600, 10_000, memory_limit=16e9, where="regnet.methods[1]")
    assert check_fit_cost("lowrank_k", "factor", 20_000, 600, 10_000, 8, 4, memory_limit=16e9).bytes < 16e9
    with pytest.raises(LMMInputError, match=r"unknown noise structure 'random'"):
        estimate_fit_cost("lowrank_k", "random", 10, 5, 3)


def test_fit_cost_module_is_light():
    code = "import sys, regulas.lmm.cost; bad = [m for m in ('scipy.optimize', 'sklearn') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


@pytest.mark.parametrize("signal, noise", [("lowrank_k", "diagonal"), ("lowrank_k", "identity"), ("lowrank_k", "factor"),
                                           ("diagonal", "diagonal")])
@pytest.mark.parametrize("reml", [False, True])
def test_fit_from_a_precomputed_setup_equals_the_fit_from_y(signal, noise, reml):
    from regulas.sim.streamed_setup import ConditionSetup

    rng, M, Y = _data(11, G=60, T=8, P=9, factor=noise == "factor")
    setup = ConditionSetup.start(M, Y.shape[1])
    for lo in range(0, 9, 4):  # accumulated over blocks of conditions, as from Zarr
        setup.add(slice(lo, min(lo + 4, 9)), Y[:, lo : lo + 4])
    factor = noise == "factor"
    opts = {"rank": 2} if signal == "lowrank_k" else {}
    opts |= {"noise_rank": 1} if factor else {}
    # the likelihood at the same parameters
    cov = _covariances(rng, signal, noise, 9, q=1)
    ref = StructuredProblem(M, Y, reml=reml, decomposition="svd", keep_y=factor)
    new = StructuredProblem(M, Y if factor else None, reml=reml, keep_y=factor, setup=setup)
    ll_ref, b_ref = ref.log_likelihood(cov)
    ll_new, b_new = new.log_likelihood(cov)
    assert ll_new == pytest.approx(ll_ref, rel=1e-10)
    np.testing.assert_allclose(b_new, b_ref, rtol=1e-10, atol=1e-10)
    ev_ref, ev_new = ref.evaluate(ref.covariances_to_internal(cov)), new.evaluate(new.covariances_to_internal(cov))
    for g_ref, g_new in ((ev_ref.gF, ev_new.gF), (ev_ref.ga, ev_new.ga), (ev_ref.gd, ev_new.gd), (ev_ref.gH, ev_new.gH)):
        np.testing.assert_allclose(g_new, g_ref, rtol=1e-10, atol=1e-10 * max(1.0, np.abs(g_ref).max(initial=0.0)))
    post_ref = ref.posterior(ref.covariances_to_internal(cov), ev_ref)[0]
    np.testing.assert_allclose(new.posterior(new.covariances_to_internal(cov), ev_new)[0], post_ref, rtol=1e-10,
                               atol=1e-10 * np.abs(post_ref).max())
    # the fit: the same optimum (L-BFGS amplifies rounding along flat directions, so beta_hat agrees to the fit's tol);
    # a tight tol because the default one leaves a diagonal signal's fit short of its optimum (by 0.05 here with REML:
    # L-BFGS stops on its relative-decrease test; even at tol=1e-10 two fits differing by rounding end 1e-8 apart)
    opts["tol"] = 1e-10
    a = KronSumLMM(signal=signal, noise=noise, reml=reml, solver="structured", decomposition="svd", **opts).fit(M, Y)
    b = KronSumLMM(signal=signal, noise=noise, reml=reml, solver="structured", **opts).fit(M, Y if factor else None, setup=setup)
    assert b.log_likelihood_ == pytest.approx(a.log_likelihood_, rel=1e-10 if signal == "lowrank_k" else 1e-7)
    # beta_hat scales with the fitted signal variances: where a diagonal signal's optimum has them at ~0 (here
    # |beta_hat| ~ 1e-11), the two fits stop at different tiny values. Compared on the data's scale instead.
    scale = max(np.abs(a.coef_).max(), 1e-4 * np.abs(Y).max() / np.abs(M).max())
    np.testing.assert_allclose(b.coef_, a.coef_, rtol=0, atol=1e-3 * scale + 1e-8)


def test_precomputed_setup_bad_inputs():
    from regulas.sim.streamed_setup import ConditionSetup

    _, M, Y = _data(12, G=60, T=8, P=9)
    setup = ConditionSetup.start(M, 9)
    setup.add(slice(0, 9), Y)
    with pytest.raises(LMMInputError, match="factor noise needs Y"):
        KronSumLMM(signal="lowrank_k", rank=2, noise="factor", noise_rank=1).fit(M, None, setup=setup)
    with pytest.raises(LMMInputError, match="structured path only"):
        KronSumLMM(signal="freeform", noise="freeform").fit(M, Y, setup=setup)
    with pytest.raises(LMMInputError, match="shapes do not fit M"):
        KronSumLMM(signal="lowrank_k", rank=2, noise="diagonal").fit(M[:, :5], None, setup=setup)
