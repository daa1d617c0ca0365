"""DeepLinearFixedRank against dense references, pymanopt's FixedRankEmbedded, and bad input."""

import autograd.numpy as anp
import numpy as np
import pymanopt
import pytest
import scipy.sparse as sps
from hypothesis import given, settings
from hypothesis import strategies as st
from pymanopt.manifolds import FixedRankEmbedded
from scipy.sparse.linalg import aslinearoperator

from linrank import DeepLinearFixedRank, FactorGradient, FixedRankPoint, TangentVector
from linrank.factorgrad import undetermined_pairs


# ----------------------------------------------------------------------------- references
def frac_pow(C, a):
    """C^a for symmetric PSD C, with 0^0 = 1 (the paper's (.)^0 = I)."""
    lam, Q = np.linalg.eigh(C)
    tol = max(lam.max(), 0) * C.shape[0] * 1e-13
    if a == 0:
        return np.eye(C.shape[0])
    lp = np.where(lam > tol, np.abs(lam), 0.0) ** a
    return (Q * lp) @ Q.T


def A_dense(W, Z, N):
    """Definition 4 by dense fractional powers (independent of linrank).

    The powers (WW^T)^a = U diag(sigma^{2a}) U^T and (W^TW)^a come from the full SVD of W (not
    from eigh of WW^T, which would square the condition number); 0^0 = 1.
    """
    m, n = W.shape
    U, sig, Vt = np.linalg.svd(W)
    tol = sig.max(initial=0.0) * max(m, n) * 1e-14
    sl = np.zeros(m)
    sr = np.zeros(n)
    sl[: sig.size] = np.where(sig > tol, sig, 0.0)
    sr[: sig.size] = sl[: sig.size]
    Zt = U.T @ Z @ Vt.T
    out = np.zeros_like(Zt)
    for j in range(1, N + 1):
        a, b = (N - j) / N, (j - 1) / N
        left = sl ** (2 * a) if a > 0 else np.ones(m)
        right = sr ** (2 * b) if b > 0 else np.ones(n)
        out += left[:, None] * Zt * right[None, :]
    return U @ out @ Vt


def P_T(u, vt, Z):
    Pu, Pv = u @ u.T, vt.T @ vt
    return Pu @ Z + Z @ Pv - Pu @ Z @ Pv


def undetermined_sym(x, G):
    """The symmetric part of u^T G v on the pairs that factor gradients do not determine."""
    Mg = x.u.T @ G @ x.vt.T
    return np.where(undetermined_pairs(x.s), 0.5 * (Mg + Mg.T), 0.0)


def make_point(rng, m, n, k, s=None):
    u, _ = np.linalg.qr(rng.standard_normal((m, k)))
    v, _ = np.linalg.qr(rng.standard_normal((n, k)))
    if s is None:
        s = np.sort(np.exp(rng.uniform(-1.5, 1.5, size=k)))[::-1]
    return FixedRankPoint(u, np.asarray(s, dtype=float), v.T)


def tangent(man, x, rng):
    m, n, k = man.m, man.n, man.k
    return man.to_tangent_space(
        x, (rng.standard_normal((m, k)), rng.standard_normal((k, k)), rng.standard_normal((n, k)))
    )


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


SHAPES = [(5, 5, 2), (7, 4, 3), (3, 8, 1), (6, 6, 6), (9, 6, 4)]


# ----------------------------------------------------------------------------- A_W and g
@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("N", [1, 2, 3, 5])
def test_apply_A_matches_dense_formula(rng, m, n, k, N):
    man = DeepLinearFixedRank(m, n, k, N)
    x = make_point(rng, m, n, k)
    xi = tangent(man, x, rng)
    W = man.to_dense(x)
    got = man.tangent_to_dense(x, man.apply_A(x, xi))
    assert rel(got, A_dense(W, man.tangent_to_dense(x, xi), N)) < 1e-12


@pytest.mark.parametrize("N", [2, 3, 4])
def test_A_kills_normal_space_and_gradient_is_A_of_G(rng, N):
    """For N >= 2, A_W(U_perp R V_perp^T) = 0, so grad f = A(P_T G) = A(G) for any ambient G."""
    m, n, k = 7, 6, 3
    man = DeepLinearFixedRank(m, n, k, N)
    x = make_point(rng, m, n, k)
    W = man.to_dense(x)
    G = rng.standard_normal((m, n))
    normal = G - P_T(x.u, x.vt, G)
    assert np.linalg.norm(A_dense(W, normal, N)) < 1e-12 * np.linalg.norm(normal)
    grad = man.tangent_to_dense(x, man.euclidean_to_riemannian_gradient(x, G))
    assert rel(grad, A_dense(W, G, N)) < 1e-12


@pytest.mark.parametrize("N", [1, 2, 3, 7])
def test_A_inverse_is_inverse_and_metric_is_riesz(rng, N):
    m, n, k = 6, 5, 3
    man = DeepLinearFixedRank(m, n, k, N)
    x = make_point(rng, m, n, k, s=[2.0, 2.0, 0.3])  # an equal pair
    a, b = tangent(man, x, rng), tangent(man, x, rng)
    back = man.apply_A(x, man.apply_A_inverse(x, a))
    assert all(np.allclose(p, q, rtol=1e-13, atol=1e-13) for p, q in zip(back, a))
    # g(a, b) = <A^-1 a, b>_F with A^-1 from a dense solve of A_dense on the tangent space
    W = man.to_dense(x)
    Ad, Bd = man.tangent_to_dense(x, a), man.tangent_to_dense(x, b)
    basis = []
    for i in range(m * n):
        E = np.zeros(m * n)
        E[i] = 1
        basis.append(P_T(x.u, x.vt, A_dense(W, P_T(x.u, x.vt, E.reshape(m, n)), N)).ravel())
    Amat = np.array(basis).T
    sol = np.linalg.lstsq(Amat, Ad.ravel(), rcond=1e-10)[0].reshape(m, n)
    g_ref = np.sum(P_T(x.u, x.vt, sol) * Bd)
    assert abs(man.inner_product(x, a, b) - g_ref) < 1e-10 * abs(g_ref) + 1e-12


@pytest.mark.parametrize("N", [1, 2, 4])
def test_metric_symmetric_positive_and_A_selfadjoint(rng, N):
    man = DeepLinearFixedRank(8, 5, 3, N)
    x = make_point(rng, 8, 5, 3)
    a, b = tangent(man, x, rng), tangent(man, x, rng)
    assert man.inner_product(x, a, b) == pytest.approx(man.inner_product(x, b, a), rel=1e-14)
    assert man.inner_product(x, a, a) > 0
    assert man.norm(x, a) == pytest.approx(np.sqrt(man.inner_product(x, a, a)))
    Aa = man.tangent_to_dense(x, man.apply_A(x, a))
    Ab = man.tangent_to_dense(x, man.apply_A(x, b))
    lhs = np.sum(Aa * man.tangent_to_dense(x, b))
    rhs = np.sum(man.tangent_to_dense(x, a) * Ab)
    assert lhs == pytest.approx(rhs, rel=1e-13)


def test_prop9_quadrature_depth2(rng):
    """Proposition 9: for N = 2, A^-1(Z) = int_0^inf e^{-t sqrt(WW^T)} Z e^{-t sqrt(W^TW)} dt."""
    from scipy.integrate import quad_vec
    from scipy.linalg import expm

    m, n, k = 5, 4, 2
    man = DeepLinearFixedRank(m, n, k, 2)
    x = make_point(rng, m, n, k, s=[1.3, 0.6])
    xi = tangent(man, x, rng)
    W, Z = man.to_dense(x), man.tangent_to_dense(x, xi)
    R1, R2 = frac_pow(W @ W.T, 0.5), frac_pow(W.T @ W, 0.5)
    # Z is tangent, so the normal block of the integrand is Z's own (zero up to rounding, which
    # would integrate to infinity): P_T leaves the exact integrand unchanged
    f = lambda t: P_T(x.u, x.vt, expm(-t * R1) @ Z @ expm(-t * R2))  # noqa: E731
    # every block decays at least like e^{-t s_min}: truncating at 45 / s_min leaves < 1e-19
    ref, _ = quad_vec(f, 0.0, 45.0 / x.s.min(), epsrel=1e-13, epsabs=0.0)
    got = man.tangent_to_dense(x, man.apply_A_inverse(x, xi))
    assert rel(got, ref) < 1e-9


# ----------------------------------------------------------------------------- gradient inputs
@pytest.mark.parametrize("N", [1, 2, 3])
@pytest.mark.parametrize("s", [None, [1.0, 1.0, 1.0], [2.0, 2.0 * (1 + 1e-14), 0.5]])
def test_gradient_inputs_agree(rng, N, s):
    m, n, k = 7, 6, 3
    man = DeepLinearFixedRank(m, n, k, N)
    x = make_point(rng, m, n, k, s=s)
    W = man.to_dense(x)
    B = rng.standard_normal((m, n))
    G = W - B  # gradient of 1/2 ||W - B||^2
    ref = A_dense(W, P_T(x.u, x.vt, G), N)
    L, R = rng.standard_normal((m, 2)), rng.standard_normal((n, 2))
    G2 = L @ R.T  # a rank-2 gradient for the factored forms
    ref2 = A_dense(W, P_T(x.u, x.vt, G2), N)

    def dense(t):
        return man.tangent_to_dense(x, t)

    assert rel(dense(man.euclidean_to_riemannian_gradient(x, G)), ref) < 1e-12
    assert rel(dense(man.euclidean_to_riemannian_gradient(x, aslinearoperator(G))), ref) < 1e-12
    assert rel(dense(man.euclidean_to_riemannian_gradient(x, sps.csr_matrix(G))), ref) < 1e-12
    fac = (L, np.eye(2), R)
    assert rel(dense(man.euclidean_to_riemannian_gradient(x, fac)), ref2) < 1e-12
    # pymanopt's factor gradients of f(u, s, vt) = 1/2 ||u diag(s) vt - B||^2 from autograd
    cost = pymanopt.function.autograd(man)(
        lambda u, s, vt: 0.5 * anp.sum((u @ anp.diag(s) @ vt - B) ** 2)
    )
    fg = pymanopt.Problem(man, cost).euclidean_gradient(x)
    got = dense(man.euclidean_to_riemannian_gradient(x, fg))
    assert np.all(np.isfinite(got))
    # exact where the singular values are separated; for close pairs (equal ones) the symmetric
    # part of the core block is not determined by factor gradients and comes back as 0
    ref_f = A_dense(W, P_T(x.u, x.vt, G - x.u @ undetermined_sym(x, G) @ x.vt), N)
    assert rel(got, ref_f) < 1e-12
    assert rel(dense(man.euclidean_to_riemannian_gradient(x, FactorGradient(*fg))), ref_f) < 1e-12


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(1, 7),
    n=st.integers(1, 7),
    kfrac=st.floats(0, 1),
    N=st.sampled_from([1, 2, 3, 6, 1000]),
    spread=st.floats(0.0, 8.0),
    seed=st.integers(0, 2**31),
)
def test_gradient_property(m, n, kfrac, N, spread, seed):
    rng = np.random.default_rng(seed)
    k = 1 + int(kfrac * (min(m, n) - 1))
    s = np.sort(np.exp(rng.uniform(-spread, spread, size=k)))[::-1]
    man = DeepLinearFixedRank(m, n, k, N)
    x = make_point(rng, m, n, k, s=s)
    G = rng.standard_normal((m, n))
    got = man.euclidean_to_riemannian_gradient(x, G)
    ref = A_dense(man.to_dense(x), P_T(x.u, x.vt, G), N)
    # the dense reference's SVD resolves s_min only to eps * s_max: allow for its condition
    assert rel(man.tangent_to_dense(x, got), ref) < 1e-12 * max(1.0, s[0] / s[-1])
    # g(grad f, xi) = <G, xi>_F: the defining property of the Riemannian gradient
    xi = tangent(man, x, rng)
    lhs = man.inner_product(x, got, xi)
    rhs = np.sum(G * man.tangent_to_dense(x, xi))
    assert abs(lhs - rhs) <= 1e-9 * (
        abs(rhs) + np.linalg.norm(G) * np.linalg.norm(man.tangent_to_dense(x, xi))
    )


# ----------------------------------------------------------------------------- depth 1 = pymanopt
def test_depth_one_matches_fixed_rank_embedded(rng):
    m, n, k = 9, 7, 3
    ours, theirs = DeepLinearFixedRank(m, n, k, 1), FixedRankEmbedded(m, n, k)
    np.random.seed(7)
    x1 = ours.random_point()
    np.random.seed(7)
    x2 = theirs.random_point()
    assert all(np.array_equal(a, b) for a, b in zip(x1, x2))
    assert ours.dim == theirs.dim
    G = rng.standard_normal((m, n))
    t1, t2 = ours.projection(x1, G), theirs.projection(x2, G)
    assert all(np.allclose(a, b, rtol=1e-13, atol=1e-13) for a, b in zip(t1, t2))
    L, S, R = rng.standard_normal((m, 2)), np.diag([1.0, 2.0]), rng.standard_normal((n, 2))
    # pymanopt projects factored (U, S, V) correctly in its Z v product; compare to dense
    tf = ours.projection(x1, (L, S, R))
    td = ours.projection(x1, L @ S @ R.T)
    assert all(np.allclose(a, b, rtol=1e-13, atol=1e-13) for a, b in zip(tf, td))
    # non-symmetric S: the transpose product must use S^T (pymanopt's uses S)
    S2 = np.array([[1.0, 3.0], [0.0, 2.0]])
    tf = ours.projection(x1, (L, S2, R))
    td = ours.projection(x1, L @ S2 @ R.T)
    assert all(np.allclose(a, b, rtol=1e-13, atol=1e-13) for a, b in zip(tf, td))
    a, b = ours.random_tangent_vector(x1), ours.random_tangent_vector(x1)
    assert ours.inner_product(x1, a, b) == pytest.approx(theirs.inner_product(x2, a, b), rel=1e-13)
    r1, r2 = ours.retraction(x1, a), theirs.retraction(x2, a)
    assert (
        rel(
            ours.to_dense(r1),
            theirs.to_dense(r2) if hasattr(theirs, "to_dense") else r2[0] @ np.diag(r2[1]) @ r2[2],
        )
        < 1e-13
    )
    e1, e2 = ours.embedding(x1, a), theirs.embedding(x2, a)
    assert all(np.allclose(p, q) for p, q in zip(e1, e2))
    y = ours.retraction(x1, b)
    tr1, tr2 = ours.transport(x1, y, a), theirs.transport(x2, y, a)
    assert all(np.allclose(p, q, rtol=1e-12, atol=1e-12) for p, q in zip(tr1, tr2))
    # factor-gradient conversion at distinct singular values agrees with pymanopt's
    B = rng.standard_normal((m, n))
    cost = pymanopt.function.autograd(theirs)(
        lambda u, s, vt: 0.5 * anp.sum((u @ anp.diag(s) @ vt - B) ** 2)
    )
    fg = pymanopt.Problem(theirs, cost).euclidean_gradient(x1)
    g1 = ours.euclidean_to_riemannian_gradient(x1, fg)
    g2 = theirs.euclidean_to_riemannian_gradient(x2, fg)
    assert all(np.allclose(p, q, rtol=1e-11, atol=1e-12) for p, q in zip(g1, g2))


def test_depth_one_pymanopt_is_nan_at_equal_singular_values_we_are_not(rng):
    m, n, k = 6, 5, 2
    ours, theirs = DeepLinearFixedRank(m, n, k, 1), FixedRankEmbedded(m, n, k)
    x = make_point(rng, m, n, k, s=[1.0, 1.0])
    B = rng.standard_normal((m, n))
    cost = pymanopt.function.autograd(theirs)(
        lambda u, s, vt: 0.5 * anp.sum((u @ anp.diag(s) @ vt - B) ** 2)
    )
    fg = pymanopt.Problem(theirs, cost).euclidean_gradient(x)
    with np.errstate(all="ignore"):
        theirs_g = theirs.euclidean_to_riemannian_gradient(x, fg)
    ours_g = ours.euclidean_to_riemannian_gradient(x, fg)
    assert np.all(np.isfinite(np.concatenate([a.ravel() for a in ours_g])))
    G = ours.to_dense(x) - B
    ref = P_T(x.u, x.vt, G)
    # the determined part (all but the pair's symmetric core part) is exact
    ref_det = P_T(x.u, x.vt, G - x.u @ undetermined_sym(x, G) @ x.vt)
    assert rel(ours.tangent_to_dense(x, ours_g), ref_det) < 1e-12
    # documents the difference: pymanopt's own conversion is not finite here (or is wrong)
    ok_theirs = (
        np.all(np.isfinite(theirs_g.M)) and rel(ours.tangent_to_dense(x, theirs_g), ref) < 1e-6
    )
    assert not ok_theirs


@pytest.mark.parametrize("Opt", ["SteepestDescent", "ConjugateGradient"])
def test_depth_one_optimizer_runs_identically(Opt):
    """Code written for FixedRankEmbedded (autograd cost of (u, s, vt)) runs unchanged."""
    rs = np.random.RandomState(3)
    m, n, k = 10, 8, 2
    B = rs.standard_normal((m, k)) @ rs.standard_normal((k, n))
    results = []
    for cls in (FixedRankEmbedded, lambda *a: DeepLinearFixedRank(*a, depth=1)):
        man = cls(m, n, k)

        @pymanopt.function.autograd(man)
        def cost(u, s, vt):
            return 0.5 * anp.sum((u @ anp.diag(s) @ vt - B) ** 2)

        np.random.seed(11)
        opt = getattr(pymanopt.optimizers, Opt)(verbosity=0, max_iterations=60)
        results.append(opt.run(pymanopt.Problem(man, cost)))
    W1 = results[0].point[0] @ np.diag(results[0].point[1]) @ results[0].point[2]
    W2 = DeepLinearFixedRank.to_dense(results[1].point)
    assert results[0].iterations == results[1].iterations
    assert rel(W2, W1) < 1e-8
    assert results[0].cost == pytest.approx(results[1].cost, rel=1e-8, abs=1e-12)


# ----------------------------------------------------------------------------- other operations
def test_retraction_is_truncated_svd_and_stays_on_manifold(rng):
    man = DeepLinearFixedRank(8, 6, 3, 3)
    x = make_point(rng, 8, 6, 3)
    xi = tangent(man, x, rng) * 0.3
    y = man.check_point(man.retraction(x, xi))
    Z = man.to_dense(x) + man.tangent_to_dense(x, xi)
    U, s, Vt = np.linalg.svd(Z)
    best = (U[:, :3] * s[:3]) @ Vt[:3]
    assert rel(man.to_dense(y), best) < 1e-12
    assert np.all(np.diff(y.s) <= 0)


def test_transport_is_tangent_and_dist_is_frobenius(rng):
    man = DeepLinearFixedRank(7, 9, 2, 4)
    x, y = make_point(rng, 7, 9, 2), make_point(rng, 7, 9, 2)
    a = tangent(man, x, rng)
    t = man.transport(x, y, a)
    assert np.abs(y.u.T @ t.Up).max() < 1e-12 and np.abs(y.vt @ t.Vp).max() < 1e-12
    ref = P_T(y.u, y.vt, man.tangent_to_dense(x, a))
    assert rel(man.tangent_to_dense(y, t), ref) < 1e-12
    assert man.dist(x, y) == pytest.approx(
        np.linalg.norm(man.to_dense(x) - man.to_dense(y)), rel=1e-12
    )
    assert man.dist(x, x) < 1e-7


def test_random_tangent_vector_unit_and_tangent(rng):
    man = DeepLinearFixedRank(6, 6, 3, 5)
    np.random.seed(0)
    x = man.random_point()
    man.check_point(x)
    v = man.random_tangent_vector(x)
    assert man.norm(x, v) == pytest.approx(1.0, rel=1e-13)
    assert np.abs(x.u.T @ v.Up).max() < 1e-13
    z = man.zero_vector(x)
    assert man.norm(x, z) == np.sqrt(np.finfo(float).tiny)  # the documented floor, not 0


def test_tangent_vector_arithmetic():
    a = TangentVector(np.ones((3, 1)), np.ones((1, 1)), np.ones((2, 1)))
    b = 2.0 * a - a / 2.0 + np.float64(3.0) * a
    assert isinstance(b, TangentVector)
    assert np.allclose(b.Up, 4.5) and np.allclose(b.M, 4.5) and np.allclose(b.Vp, 4.5)
    c = -(a + a)
    assert isinstance(c, TangentVector) and np.allclose(c.M, -2.0)
    assert isinstance(a * np.float64(2.0), TangentVector)


def test_plain_tuples_accepted(rng):
    man = DeepLinearFixedRank(5, 4, 2, 2)
    x = make_point(rng, 5, 4, 2)
    xt = tuple(x)
    a = tangent(man, x, rng)
    assert man.inner_product(xt, tuple(a), tuple(a)) == pytest.approx(man.inner_product(x, a, a))


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "args,exc,match",
    [
        ((5, 4, 0, 2), ValueError, "k must|positive"),
        ((5, 4, 5, 2), ValueError, "rank k"),
        ((5, 4, 2, 0), ValueError, "depth"),
        ((5, 4, 2, 2.0), TypeError, "depth"),
        ((5.0, 4, 2, 2), TypeError, "m must"),
        ((5, 4, 2, -1), ValueError, "depth"),
    ],
)
def test_constructor_errors(args, exc, match):
    with pytest.raises(exc, match=match):
        DeepLinearFixedRank(*args)


def test_point_and_vector_errors(rng):
    man = DeepLinearFixedRank(5, 4, 2, 3)
    x = make_point(rng, 5, 4, 2)
    a = tangent(man, x, rng)
    with pytest.raises(ValueError, match="shapes"):
        man.inner_product((x.u[:, :1], x.s, x.vt), a, a)
    with pytest.raises(ValueError, match="positive"):
        man.inner_product((x.u, np.array([1.0, 0.0]), x.vt), a, a)
    with pytest.raises(ValueError, match="positive"):
        man.norm((x.u, np.array([1.0, np.nan]), x.vt), a)
    with pytest.raises(ValueError, match="shapes"):
        man.inner_product(x, (a.Up, a.M[:1], a.Vp), a)
    with pytest.raises(TypeError, match="tangent vector"):
        man.norm(x, np.zeros(3))
    with pytest.raises(TypeError, match="point"):
        man.norm(np.zeros((5, 4)), a)
    with pytest.raises(ValueError, match="orthonormal"):
        man.check_point((2 * x.u, x.s, x.vt))
    with pytest.raises(ValueError, match="orthonormal"):
        man.check_point((x.u, x.s, 1.5 * x.vt))
    with pytest.raises(ValueError, match="shape"):
        man.euclidean_to_riemannian_gradient(x, np.zeros((4, 5)))
    with pytest.raises(TypeError, match="ambient"):
        man.projection(x, "gradient")
    with pytest.raises(ValueError, match="factored"):
        man.projection(x, (np.zeros((5, 2)), np.eye(3), np.zeros((4, 2))))
    with pytest.raises(ValueError, match="numerical rank"):
        man.point_from_matrix(np.outer(np.ones(5), np.ones(4)))
    with pytest.raises(ValueError, match="finite"):
        man.point_from_matrix(np.full((5, 4), np.nan))


@pytest.mark.parametrize("scale", [1e-150, 1e-100, 1e100, 1e150])
@pytest.mark.parametrize("N", [2, 10**6])
def test_inner_product_at_extreme_scales(rng, scale, N):
    """g is homogeneous: g_{cW}(c a, c b) = c^{2/N} g_W(a, b) (A_{cW} = c^{2(N-1)/N} A_W).

    (Below s ~ 1e-150 the weights ~ s^2 are subnormal and lose digits: the stated range.)
    """
    man = DeepLinearFixedRank(6, 5, 2, N)
    x = make_point(rng, 6, 5, 2, s=[1.5, 0.5])
    a, b = tangent(man, x, rng), tangent(man, x, rng)
    ref = man.inner_product(x, a, b)
    xs = FixedRankPoint(x.u, x.s * scale, x.vt)
    got = man.inner_product(xs, a * scale, b * scale)
    factor = np.exp(2.0 / N * np.log(scale))
    assert np.isfinite(got)
    assert got == pytest.approx(ref * factor, rel=1e-12)


def test_to_dense_checks_the_manifolds_shapes():
    """to_dense(([[1]], [1], [[1]])) on a 20 x 20 manifold returned a 1 x 1 matrix."""
    man = DeepLinearFixedRank(20, 20, 2, 3)
    with pytest.raises(ValueError, match=r"shapes \(20, 2\), \(2,\), \(2, 20\)"):
        man.to_dense(([[1.0]], [1.0], [[1.0]]))
    np.random.seed(0)
    x = man.random_point()
    assert np.allclose(man.to_dense(x), (x[0] * x[1]) @ x[2], rtol=0, atol=1e-14 * x[1].max())
    # on the class (no manifold): consistent shapes only
    assert DeepLinearFixedRank.to_dense(([[1.0]], [2.0], [[3.0]])).tolist() == [[6.0]]
    with pytest.raises(ValueError, match="shapes"):
        DeepLinearFixedRank.to_dense((np.ones((3, 2)), np.ones(2), np.ones((1, 4))))
    with pytest.raises(ValueError, match="shapes"):
        DeepLinearFixedRank.to_dense((np.ones((3, 2)), np.ones(3), np.ones((2, 4))))
