"""regulas.lmm against independent references: dense O((GP)^3) algebra, glimix-core Kron2Sum,
finite differences and scikit-learn's RidgeCV."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.linear_model import RidgeCV

from regulas.lmm import KronSumLMM, KronSumProblem, LMMInputError, RidgeGCV
from regulas.lmm.covariance import make_noise, make_signal
from regulas.lmm.structures import structure_names

SIGNAL_STRUCTURES, NOISE_STRUCTURES = structure_names("signal"), structure_names("noise")

try:
    from glimix_core.lmm import Kron2Sum
except ImportError:  # the optional extra `limix`
    Kron2Sum = None

needs_glimix = pytest.mark.skipif(
    Kron2Sum is None, reason="glimix-core is not installed (pip install 'regulas-hpc[limix]'); dense reference still runs"
)


def _rand_cov(rng: np.random.Generator, P: int, *, rank: int | None = None, smallest: float | None = None) -> np.ndarray:
    A = rng.standard_normal((P, rank or P))
    C = A @ A.T / (rank or P)
    if smallest is not None:  # nearly singular: set the smallest eigenvalue relative to the largest
        w, Q = np.linalg.eigh(C)
        w[0] = smallest * w[-1]
        C = (Q * w) @ Q.T
    return C


def _data(seed: int, G: int = 40, T: int = 7, P: int = 3, *, mean: float = 2.0):
    rng = np.random.default_rng(seed)
    M = rng.random((G, T))
    C0 = _rand_cov(rng, P)
    C1 = _rand_cov(rng, P) + 0.1 * np.eye(P)
    beta = rng.standard_normal((T, P)) @ np.linalg.cholesky(C0).T / np.sqrt(T)
    Y = mean + M @ beta + rng.standard_normal((G, P)) @ np.linalg.cholesky(C1).T
    return rng, M, Y, C0, C1


def _dense(M, Y, C0, C1, *, intercept=True, reml=False):
    """Log-likelihood, GLS intercept and Sigma^-1 r by dense algebra on the GP x GP covariance."""
    G, T = M.shape
    P = Y.shape[1]
    K = M @ M.T / T
    S = np.kron(C0, K) + np.kron(C1, np.eye(G))
    y = Y.T.ravel()  # vec stacks columns
    Si = np.linalg.inv(S)
    if intercept:
        X = np.kron(np.eye(P), np.ones((G, 1)))
        H = X.T @ Si @ X
        b = np.linalg.solve(H, X.T @ Si @ y)
        r = y - X @ b
    else:
        b, r = np.zeros(P), y
    ll = -0.5 * (G * P * np.log(2 * np.pi) + np.linalg.slogdet(S)[1] + r @ Si @ r)
    if reml:
        ll += 0.5 * (P * np.log(2 * np.pi) + P * np.log(G) - np.linalg.slogdet(H)[1])
    return ll, b, Si @ r


# -- (1) likelihood equals dense algebra and Kron2Sum.lml() ----------------------------------


@pytest.mark.parametrize("reml", [False, True])
@pytest.mark.parametrize("decomposition", ["gram", "svd"])
@pytest.mark.parametrize("shape", [(40, 7, 3), (12, 20, 4)])  # G > T and T > G (K of rank G)
def test_loglik_matches_dense(reml, decomposition, shape):
    G, T, P = shape
    rng, M, Y, _, _ = _data(1, G, T, P)
    for C0, C1 in [
        (_rand_cov(rng, P), _rand_cov(rng, P)),
        (_rand_cov(rng, P, rank=1), _rand_cov(rng, P, smallest=1e-6)),  # singular C0, nearly singular C1
    ]:
        ll, b = KronSumProblem(M, Y, reml=reml, decomposition=decomposition).log_likelihood(C0, C1)
        ll_d, b_d, _ = _dense(M, Y, C0, C1, reml=reml)
        assert ll == pytest.approx(ll_d, rel=1e-10)
        np.testing.assert_allclose(b, b_d, rtol=1e-8, atol=1e-10)


def test_loglik_without_intercept_matches_dense():
    rng, M, Y, C0, C1 = _data(2)
    ll, b = KronSumProblem(M, Y, fit_intercept=False).log_likelihood(C0, C1)
    assert ll == pytest.approx(_dense(M, Y, C0, C1, intercept=False)[0], rel=1e-10)
    assert np.all(b == 0)


def _kron2sum(M, Y, C0, C1, *, reml=False, rank=None):
    """Kron2Sum with G = M / sqrt(T), X = 1, A = I, its parameters set so that its C0, C1 equal ours."""
    G, T = M.shape
    P = Y.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lmm = Kron2Sum(Y, np.eye(P), np.ones((G, 1)), M / np.sqrt(T), rank=rank or P, restricted=reml)
    # Kron2Sum rescales G by G_norm and stores C1 = L1 L1^T + eps I
    L0 = np.linalg.cholesky(C0) if rank is None else C0
    lmm._cov.C0.L = L0 * lmm._G_norm
    eps = lmm._cov.C1.value()[0, 0] - (lmm._cov.C1.L @ lmm._cov.C1.L.T)[0, 0]
    lmm._cov.C1.L = np.linalg.cholesky(C1 - eps * np.eye(P))
    return lmm


@needs_glimix
@pytest.mark.parametrize("reml", [False, True])
def test_loglik_matches_kron2sum(reml):
    rng, M, Y, _, _ = _data(3, 30, 6, 3)
    # Kron2Sum's C1 carries a fixed 1.5e-5 jitter, so its smallest eigenvalue cannot go lower
    for C1 in (_rand_cov(rng, 3), _rand_cov(rng, 3, smallest=1e-4)):
        C0 = _rand_cov(rng, 3)
        lmm = _kron2sum(M, Y, C0, C1, reml=reml)
        np.testing.assert_allclose(lmm.C0, C0, rtol=1e-12)
        np.testing.assert_allclose(lmm.C1, C1, rtol=1e-12, atol=1e-14)
        ll, b = KronSumProblem(M, Y, reml=reml).log_likelihood(C0, C1)
        assert ll == pytest.approx(lmm.lml(), rel=1e-10)
        np.testing.assert_allclose(b, lmm.B.ravel(), rtol=1e-8)


# -- (2) optimum at least as high as Kron2Sum's fit and as the truth --------------------------


@needs_glimix
def test_optimum_at_least_kron2sum_fit_and_truth():
    rng, M, Y, C0, C1 = _data(4, 60, 8, 3)
    truth = KronSumProblem(M, Y).log_likelihood(C0, C1)[0]
    # rank 1: Kron2Sum's analytic gradient is right there (with scipy >= 1.16 it is not for rank > 1);
    # start it off its symmetric all-ones point
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = Kron2Sum(Y, np.eye(3), np.ones((60, 1)), M / np.sqrt(8), rank=1)
        ref._cov.C0.L = rng.standard_normal((3, 1))
        ref.fit(verbose=False)
    ref_ll = ref.lml()
    low = KronSumLMM(signal="lowrank_k", rank=1, random_state=0).fit(M, Y)
    free = KronSumLMM(random_state=0).fit(M, Y)
    assert low.log_likelihood_ >= ref_ll - 1e-6
    assert free.log_likelihood_ >= low.log_likelihood_ - 1e-6  # nested models
    assert free.log_likelihood_ >= truth
    assert free.converged_
    # the reported optimum is the likelihood of the reported parameters
    assert free.log_likelihood_ == pytest.approx(KronSumProblem(M, Y).log_likelihood(free.C0_, free.C1_)[0], rel=1e-12)


@pytest.mark.parametrize("reml", [False, True])
def test_optimum_at_least_truth_and_stationary(reml):
    _, M, Y, C0, C1 = _data(5, 80, 10, 4)
    problem = KronSumProblem(M, Y, reml=reml)
    fit = KronSumLMM(reml=reml, random_state=0).fit(M, Y)
    assert fit.log_likelihood_ >= problem.log_likelihood(C0, C1)[0]
    # no direction in covariance space improves the optimum (C1 interior, C0 PSD)
    for d in (1e-4, -1e-4):
        for E in (np.eye(4), np.outer([1, -1, 0, 0], [1, -1, 0, 0])):
            assert problem.log_likelihood(fit.C0_, fit.C1_ + d * E)[0] <= fit.log_likelihood_ + 1e-7


# -- (3) analytic gradients vs finite differences --------------------------------------------


@pytest.mark.parametrize("signal", SIGNAL_STRUCTURES)
@pytest.mark.parametrize("noise", NOISE_STRUCTURES)
@pytest.mark.parametrize("reml", [False, True])
def test_gradient_matches_finite_differences(signal, noise, reml):
    rng, M, Y, _, _ = _data(6, 30, 6, 4)
    problem = KronSumProblem(M, Y, reml=reml)
    est = KronSumLMM(signal=signal, noise=noise, rank=2, blocks=[0, 0, 1, 1], reml=reml)
    sig = make_signal(signal, 4, rank=2, blocks=[0, 0, 1, 1])
    noi = make_noise(noise, 4)
    f = est._objective(problem, sig, noi, 1.0)
    theta = 0.5 * rng.standard_normal(sig.n_params + noi.n_params)
    _, g = f(theta)
    h = 1e-6
    num = np.array([(f(theta + h * e)[0] - f(theta - h * e)[0]) / (2 * h) for e in np.eye(theta.size)])
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-8 * np.abs(num).max())


# -- (4) fitted covariances have the requested structure -------------------------------------


def test_structures_are_valid_covariances():
    _, M, Y, _, _ = _data(7, 60, 8, 4)
    for signal in SIGNAL_STRUCTURES:
        for noise in NOISE_STRUCTURES:
            fit = KronSumLMM(signal=signal, noise=noise, rank=2, blocks=[2, 2], random_state=0).fit(M, Y)
            C0, C1 = fit.C0_, fit.C1_
            assert np.allclose(C0, C0.T) and np.allclose(C1, C1.T)
            assert np.linalg.eigvalsh(C0).min() >= -1e-10 * np.abs(C0).max()
            assert np.linalg.eigvalsh(C1).min() > 0
            off0, off1 = C0 - np.diag(np.diag(C0)), C1 - np.diag(np.diag(C1))
            if signal == "diagonal":
                assert np.all(off0 == 0)
            if signal == "identity":
                assert np.all(off0 == 0) and np.allclose(np.diag(C0), C0[0, 0], rtol=1e-12)
            if signal == "lowrank_k":
                assert np.linalg.matrix_rank(C0, tol=1e-10 * np.abs(C0).max()) <= 2
            if signal == "block":
                for block in ([0, 1], [2, 3]):
                    sub = C0[np.ix_(block, block)]
                    assert sub[0, 1] == pytest.approx(sub[1, 0]) and sub[0, 0] == pytest.approx(sub[1, 1])
                assert np.allclose(C0[:2, 2:], C0[0, 2])
            if noise == "diagonal":
                assert np.all(off1 == 0)
            if noise == "identity":
                assert np.all(off1 == 0) and np.allclose(np.diag(C1), C1[0, 0], rtol=1e-12)


def test_block_labels_and_sizes_agree():
    _, M, Y, _, _ = _data(8, 50, 6, 4)
    a = KronSumLMM(signal="block", blocks=["x", "y", "x", "y"], random_state=0).fit(M, Y)
    C = a.C0_
    assert C[0, 0] == pytest.approx(C[2, 2]) and C[1, 1] == pytest.approx(C[3, 3])
    assert np.allclose([C[0, 3], C[2, 1], C[2, 3]], C[0, 1])  # between groups x and y
    by_size = KronSumLMM(signal="block", blocks=[2, 2], random_state=0).fit(M, Y)
    by_label = KronSumLMM(signal="block", blocks=["a", "a", "b", "b"], random_state=0).fit(M, Y)
    np.testing.assert_allclose(by_size.C0_, by_label.C0_)


# -- (5) posterior mean and variance of beta equal the dense closed form ---------------------


@pytest.mark.parametrize("shape", [(50, 8, 3), (15, 25, 3)])
def test_coef_is_dense_posterior(shape):
    G, T, P = shape
    _, M, Y, _, _ = _data(9, G, T, P)
    fit = KronSumLMM(signal="diagonal", noise="freeform", random_state=0).fit(M, Y)
    C0, C1 = fit.C0_, fit.C1_
    _, b, alpha = _dense(M, Y, C0, C1)
    np.testing.assert_allclose(fit.intercept_, b, rtol=1e-8)
    # beta rows ~ N(0, C0 / T): E[vec beta | y] = (C0/T (x) M^T) Sigma^-1 r
    A = alpha.reshape(P, G).T
    np.testing.assert_allclose(fit.coef_, M.T @ A @ C0 / T, rtol=1e-7, atol=1e-12)
    K = M @ M.T / T
    S = np.kron(C0, K) + np.kron(C1, np.eye(G))
    cross = np.kron(C0 / T, M.T)
    post = np.kron(C0 / T, np.eye(T)) - cross @ np.linalg.solve(S, cross.T)
    np.testing.assert_allclose(fit.coef_var_, np.diag(post).reshape(P, T).T, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(fit.predict(M), M @ fit.coef_ + fit.intercept_)


# -- (6) bad input: one clear message each ----------------------------------------------------


def test_bad_inputs_have_clear_messages():
    _, M, Y, _, _ = _data(10)
    Mn = M.copy()
    Mn[3, 2] = np.nan
    with pytest.raises(LMMInputError, match=r"M \(genes x motifs\) contains 1 non-finite.*\(3, 2\)"):
        KronSumLMM().fit(Mn, Y)
    Yn = Y.copy()
    Yn[0, 1] = np.inf
    with pytest.raises(LMMInputError, match=r"Y \(genes x conditions\) contains 1 non-finite"):
        KronSumLMM().fit(M, Yn)
    with pytest.raises(LMMInputError, match=r"same number of rows.*\(40, 7\).*\(39, 3\)"):
        KronSumLMM().fit(M, Y[:-1])
    with pytest.raises(LMMInputError, match=r"rank must be an integer with 1 <= rank <= number of conditions P = 3; got 4"):
        KronSumLMM(signal="lowrank_k", rank=4).fit(M, Y)
    with pytest.raises(LMMInputError, match=r"needs rank=k"):
        KronSumLMM(signal="lowrank_k").fit(M, Y)
    with pytest.raises(LMMInputError, match=r"unknown signal structure 'random'"):
        KronSumLMM(signal="random").fit(M, Y)
    with pytest.raises(LMMInputError, match=r"unknown noise structure 'lowrank_k'"):
        KronSumLMM(noise="lowrank_k").fit(M, Y)
    with pytest.raises(LMMInputError, match=r"blocks must be 3 group labels"):
        KronSumLMM(signal="block", blocks=[1, 1]).fit(M, Y)
    with pytest.raises(LMMInputError, match=r"reml=True needs fit_intercept=True"):
        KronSumLMM(reml=True, fit_intercept=False).fit(M, Y)
    with pytest.raises(LMMInputError, match=r"M is zero"):
        KronSumLMM().fit(np.zeros_like(M), Y)
    with pytest.raises(LMMInputError, match=r"alphas must be"):
        RidgeGCV(alphas=[-1.0]).fit(M, Y)
    with pytest.raises(LMMInputError, match=r"model was fitted with 7"):
        KronSumLMM(signal="identity", noise="identity").fit(M, Y).predict(M[:, :3])


def test_more_motifs_than_genes_is_exact():
    # T > G: K has rank <= G; the likelihood must still equal the dense one and the fit must run
    _, M, Y, C0, C1 = _data(11, 10, 30, 2)
    assert KronSumProblem(M, Y).log_likelihood(C0, C1)[0] == pytest.approx(_dense(M, Y, C0, C1)[0], rel=1e-10)
    fit = KronSumLMM(random_state=0).fit(M, Y)
    assert fit.coef_.shape == (30, 2) and np.all(np.isfinite(fit.coef_))


# -- ridge ------------------------------------------------------------------------------------


@pytest.mark.parametrize("per_target", [False, True])
@pytest.mark.parametrize("intercept", [True, False])
def test_ridge_matches_sklearn_ridgecv(per_target, intercept):
    rng = np.random.default_rng(12)
    M = rng.random((120, 25))
    Y = 1.5 + M @ (0.3 * rng.standard_normal((25, 4))) + rng.standard_normal((120, 4))
    alphas = np.logspace(-3, 3, 13)
    ours = RidgeGCV(alphas=alphas, fit_intercept=intercept, alpha_per_target=per_target).fit(M, Y)
    ref = RidgeCV(alphas=alphas, fit_intercept=intercept, alpha_per_target=per_target).fit(M, Y)
    np.testing.assert_allclose(ours.alpha_, ref.alpha_)
    np.testing.assert_allclose(ours.coef_, ref.coef_.T, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-8, atol=1e-10)


def test_ridge_gcv_matches_dense_hat_matrix():
    rng = np.random.default_rng(13)
    M = rng.random((60, 10))
    Y = M @ rng.standard_normal((10, 2)) + rng.standard_normal((60, 2))
    alphas = np.logspace(-2, 2, 5)
    fit = RidgeGCV(alphas=alphas, criterion="gcv").fit(M, Y)
    Mc, Yc = M - M.mean(0), Y - Y.mean(0)
    for k, a in enumerate(alphas):
        H = Mc @ np.linalg.solve(Mc.T @ Mc + a * np.eye(10), Mc.T) + 1.0 / 60
        E = Y - Y.mean(0) - (H - 1.0 / 60) @ Yc
        expected = np.mean(E**2, axis=0) / (1 - np.trace(H) / 60) ** 2
        np.testing.assert_allclose(fit.cv_values_[k], expected, rtol=1e-10)


def test_escape_step_leaves_a_collapsed_signal():
    # C0 = L L^T with L = 0 is a stationary point in L although C0 = 0 is far from optimal;
    # the covariance-space step must leave it
    from regulas.lmm.kronsum import _Run

    _, M, Y, _, _ = _data(14, 80, 10, 3)
    problem = KronSumProblem(M, Y)
    est = KronSumLMM(random_state=0)
    sig, noi = make_signal("freeform", 3), make_noise("freeform", 3)
    theta = np.concatenate([np.zeros(sig.n_params), noi.from_cov(0.2 * np.eye(3))])
    value, grad = est._objective(problem, sig, noi, 1.0)(theta)
    assert np.all(grad[: sig.n_params] == 0)  # stationary in the signal parameters
    start = _Run(theta, -value, True, 0, "collapsed")
    escaped, _ = est._escape(problem, sig, noi, start)
    assert escaped.loglik > start.loglik + 1.0
    assert np.linalg.matrix_rank(sig.cov(escaped.theta[: sig.n_params])) >= 1


# -- (7) the default stopping rule reaches the optimum of a tight, many-restart reference ------


def _hard_data(seed: int, G: int, T: int, P: int, *, c0_rank: int | None, sigma_smallest: float | None):
    rng = np.random.default_rng(seed)
    M = rng.gamma(0.5, 1.0, size=(G, T))
    M = (M - M.min(0)) / (M.max(0) - M.min(0))
    C0 = _rand_cov(rng, P, rank=c0_rank)
    C1 = _rand_cov(rng, P, smallest=sigma_smallest)
    beta = rng.standard_normal((T, P)) @ np.linalg.cholesky(C0 + 1e-12 * np.eye(P)).T / np.sqrt(T)
    Y = 1.0 + M @ beta + rng.standard_normal((G, P)) @ np.linalg.cholesky(C1).T
    return M, Y


@pytest.mark.parametrize(
    "seed, P, c0_rank, sigma_smallest, model",
    [
        (21, 4, None, 1e-6, {"signal": "freeform"}),  # nearly singular Sigma
        (22, 6, 2, 1e-4, {"signal": "freeform"}),  # singular optimum: C0 on the PSD boundary
        (23, 5, None, 1e-6, {"signal": "lowrank_k", "rank": 1}),
        (24, 6, 3, None, {"signal": "lowrank_k", "rank": 2}),
        (25, 4, None, 1e-5, {"signal": "diagonal"}),
        (26, 4, None, None, {"signal": "block", "blocks": [2, 2], "noise": "diagonal"}),
        (27, 3, None, 1e-6, {"signal": "identity", "noise": "freeform"}),
    ],
)
def test_default_reaches_tight_many_restart_optimum(seed, P, c0_rank, sigma_smallest, model):
    M, Y = _hard_data(seed, 150, 25, P, c0_rank=c0_rank, sigma_smallest=sigma_smallest)
    fast = KronSumLMM(random_state=0, **model).fit(M, Y)
    # reference: tolerance 10^4 x tighter, 8 random starts more, and separately L-BFGS-B on the
    # Cholesky/log parameters from the same starts (the independent solver path)
    tight = KronSumLMM(random_state=1, tol=1e-10, n_restarts=8, max_iter=20000, **model).fit(M, Y)
    problem = KronSumProblem(M, Y)
    sig = make_signal(model["signal"], P, rank=model.get("rank"), blocks=model.get("blocks"))
    noi = make_noise(model.get("noise", "freeform"), P)
    lbfgs, _, _ = tight._fit_lbfgs(problem, sig, noi, tight._starts(problem, np.random.default_rng(1)))
    ref = max(tight.log_likelihood_, problem.user_loglik(lbfgs.loglik))
    assert fast.log_likelihood_ >= ref - 1e-6 * max(1.0, abs(ref))
    assert fast.converged_


# -- the registry of covariance structures ------------------------------------------------------


def test_a_structure_is_one_registered_class(monkeypatch):
    from regulas.lmm import structures

    monkeypatch.setattr(structures, "_REGISTRY", {role: dict(d) for role, d in structures._REGISTRY.items()})

    @structures.register
    class Isotropic(structures.IdentityCov):
        name = "isotropic"
        roles = ("signal",)

    assert structure_names("signal")[-1] == "isotropic" and "isotropic" not in structure_names("noise")
    _, M, Y, _, _ = _data(7, 60, 8, 4)
    new = KronSumLMM(signal="isotropic", random_state=0).fit(M, Y)
    old = KronSumLMM(signal="identity", random_state=0).fit(M, Y)
    assert new.log_likelihood_ == old.log_likelihood_
    with pytest.raises(TypeError, match="already registered"):
        structures.register(type("Other", (structures.IdentityCov,), {"name": "isotropic", "roles": ("signal",)}))
    with pytest.raises(LMMInputError, match=r"unknown noise structure 'isotropic'; expected one of 'freeform'"):
        KronSumLMM(noise="isotropic").fit(M, Y)
