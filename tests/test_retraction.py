"""The retractions of DeepLinearFixedRank: "projection" (default) and "polar" (issue 3)."""

import numpy as np
import pymanopt
import pytest
import scipy.linalg as sla

from linrank import (
    DeepLinearFixedRank,
    FixedRankPoint,
    TangentVector,
    least_squares_problem,
    rank_constrained_minimizer,
)


def make_point(rng, m, n, k, s=None):
    u = np.linalg.qr(rng.standard_normal((m, k)))[0]
    v = np.linalg.qr(rng.standard_normal((n, k)))[0]
    s = np.sort(rng.uniform(0.3, 2.0, k))[::-1] if s is None else np.asarray(s, dtype=float)
    return FixedRankPoint(u, s, v.T)


def tangent(man, x, rng):
    Up = rng.standard_normal((man.m, man.k))
    Vp = rng.standard_normal((man.n, man.k))
    M = rng.standard_normal((man.k, man.k))
    return man.to_tangent_space(x, TangentVector(Up, M, Vp))


def polar_reference(x, xi):
    """Dense formula: pf(u + Up K^-1) K pf(v + Vp K^-T)^T, K = S + M, with scipy's polar."""
    u, s, vt = x
    K = np.diag(s) + xi.M
    Ki = np.linalg.inv(K)
    Uq = sla.polar(u + xi.Up @ Ki)[0]
    Vq = sla.polar(vt.T + xi.Vp @ Ki.T)[0]
    return Uq @ K @ Vq.T


def test_unknown_retraction_is_rejected():
    with pytest.raises(ValueError, match="retraction must be one of"):
        DeepLinearFixedRank(5, 4, 2, 2, retraction="qr")
    assert DeepLinearFixedRank(5, 4, 2).retraction_kind == "projection"


@pytest.mark.parametrize("depth", [1, 3])
@pytest.mark.parametrize("shape", [(8, 6, 3), (5, 9, 2), (7, 7, 1)])
def test_polar_retraction_matches_dense_formula_and_is_a_point(rng, depth, shape):
    m, n, k = shape
    man = DeepLinearFixedRank(m, n, k, depth, retraction="polar")
    x = make_point(rng, m, n, k)
    for scale in (1e-3, 0.3, 3.0):
        xi = tangent(man, x, rng) * scale
        y = man.check_point(man.retraction(x, xi))
        ref = polar_reference(x, xi)
        assert np.linalg.norm(man.to_dense(y) - ref) <= 1e-12 * np.linalg.norm(ref)
        assert np.all(np.diff(y.s) <= 0) and np.all(y.s > 0)
        assert np.abs(y.u.T @ y.u - np.eye(k)).max() < 1e-13
        assert np.abs(y.vt @ y.vt.T - np.eye(k)).max() < 1e-13
    # R(0) = x
    y0 = man.retraction(x, man.zero_vector(x))
    assert np.linalg.norm(man.to_dense(y0) - man.to_dense(x)) < 1e-14 * np.linalg.norm(x.s)


def test_polar_retraction_is_first_order(rng):
    man = DeepLinearFixedRank(9, 7, 3, 2, retraction="polar")
    x = make_point(rng, 9, 7, 3)
    xi = tangent(man, x, rng)
    W, Xi = man.to_dense(x), man.tangent_to_dense(x, xi)
    err = [
        np.linalg.norm(man.to_dense(man.retraction(x, t * xi)) - W - t * Xi) for t in (2e-3, 1e-3)
    ]
    # err = c t^2 + O(t^3) with c != 0: halving t divides it by 4 (first order, not better)
    assert err[0] / err[1] == pytest.approx(4.0, rel=0.01)
    assert err[1] < 1e-2 * 1e-3 * np.linalg.norm(Xi)


def test_polar_turns_without_inflating_the_singular_value():
    # W = u1 u1^T, xi = t (u2 u1^T + u1 u2^T): the truncated SVD has s = (1 + sqrt(1 + 4t^2))/2,
    # the polar retraction keeps s = 1 and turns u1 by arctan(t) towards u2.
    d = 5
    e = np.eye(d)
    x = FixedRankPoint(e[:, :1], np.ones(1), e[:1])
    for t in (0.1, 0.5, 2.0, 50.0):
        xi = TangentVector(t * e[:, 1:2], np.zeros((1, 1)), t * e[:, 1:2])
        proj = DeepLinearFixedRank(d, d, 1, 2).retraction(x, xi)
        pol = DeepLinearFixedRank(d, d, 1, 2, retraction="polar").retraction(x, xi)
        assert proj.s[0] == pytest.approx((1 + np.sqrt(1 + 4 * t * t)) / 2, rel=1e-13)
        assert pol.s[0] == pytest.approx(1.0, rel=1e-14)
        angle = np.arctan2(abs(pol.u[1, 0]), abs(pol.u[0, 0]))
        assert angle == pytest.approx(np.arctan(t), rel=1e-12)
        assert np.allclose(np.abs(pol.u[:, 0]), np.abs(pol.vt[0]), atol=1e-15)


def test_polar_retraction_singular_core_stays_rank_k(rng):
    man = DeepLinearFixedRank(8, 6, 3, 3, retraction="polar")
    x = make_point(rng, 8, 6, 3)
    xi = tangent(man, x, rng)
    # K = S + M of rank 1
    xi = TangentVector(xi.Up, -np.diag(x.s) + np.outer([1.0, 0, 0], [1.0, 0, 0]), xi.Vp)
    y = man.check_point(man.retraction(x, xi))
    assert np.all(np.isfinite(y.s)) and y.s.size == 3 and y.s[-1] > 0
    # K = S + M = 0 exactly: still a rank-k point (tiny, floored singular values)
    z = man.check_point(man.retraction(x, TangentVector(xi.Up, -np.diag(x.s), xi.Vp)))
    assert np.all(z.s > 0) and z.s[0] <= 1e-15 * x.s[0]
    with pytest.raises(ValueError, match="not finite"):
        man.retraction(x, TangentVector(xi.Up, np.full((3, 3), np.inf), xi.Vp))


def _problem(man, task, depth, d=40, ns=80):
    X = np.random.RandomState(depth).standard_normal((d, ns)) / np.sqrt(ns)
    if task == "autoencoder":
        Y = X
    else:
        A = np.random.RandomState(100 + depth).standard_normal((d, d)) / np.sqrt(d)
        Y = A @ X + 0.1 * np.random.RandomState(7).standard_normal((d, ns))
    return least_squares_problem(man, X, Y), rank_constrained_minimizer(X, Y, man.k)[1]


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("task", ["autoencoder", "regression"])
def test_trust_regions_polar_from_random_starts(task, depth):
    # the setting of BENCHMARKS.md "Hessian" section 4 (there: 20 starts per case, all <= 30)
    man = DeepLinearFixedRank(40, 40, 4, depth, retraction="polar")
    problem, fopt = _problem(man, task, depth)
    for seed in range(4):
        np.random.seed(seed)
        opt = pymanopt.optimizers.TrustRegions(
            verbosity=0, max_iterations=30, min_gradient_norm=1e-9
        )
        res = opt.run(problem, Delta_bar=4.0)
        assert "grad norm" in res.stopping_criterion, (seed, res.stopping_criterion)
        assert res.cost - fopt <= 1e-10 * fopt


@pytest.mark.parametrize("depth", [1, 3])
def test_diagnostics_on_a_polar_manifold(depth):
    # the gradient test holds along any retraction (here the polar one); the Hessian test needs
    # P_T c''(0) = 0, which the polar curve violates off critical points: check_hessian must use
    # the projection curve, and the polar curve must indeed break the plain second-order model.
    from linrank.diagnostics import _changes, check_gradient, check_hessian

    rs = np.random.RandomState(3)
    d, k = 8, 3
    X, Y = rs.standard_normal((d, 20)), rs.standard_normal((d, 20))
    man = DeepLinearFixedRank(d, d, k, depth, retraction="polar")
    pr = least_squares_problem(man, X, Y)
    np.random.seed(depth)
    x = man.random_point()
    assert check_gradient(pr, x).passed
    res = check_hessian(pr, x)
    assert res.passed, res.slope_test.slope
    # along the polar curve f(R(t d)) - f - t g(grad, d) - t^2/2 g(Hess d, d) is O(t^2), not O(t^3)
    dvec = man.random_tangent_vector(x)
    f0 = pr.cost(x)
    g = man.inner_product(x, pr.riemannian_gradient(x), dvec)
    h = man.inner_product(x, pr.riemannian_hessian(x, dvec), dvec)
    t = np.array([1e-3, 5e-4])
    cp, _ = _changes(pr, man, x, dvec, t, f0)
    err = np.abs(cp - t * g - 0.5 * t**2 * h)
    assert err[0] / err[1] == pytest.approx(4.0, rel=0.05)


# ------------------------------------------------- projection retraction: Gram form and fallback
def _householder_retraction(x, xi):
    """The previous formula: Householder QRs of Up and Vp, stacked bases (pymanopt's)."""
    u, s, vt = x
    k = s.size
    Qu, Ru = np.linalg.qr(xi.Up)
    Qv, Rv = np.linalg.qr(xi.Vp)
    T = np.block([[np.diag(s) + xi.M, Rv.T], [Ru, np.zeros((k, k))]])
    Ut, St, Vtt = np.linalg.svd(T)
    return np.hstack((u, Qu)) @ Ut[:, :k], St[:k], Vtt[:k] @ np.vstack((vt, Qv.T))


def _with_condition(rng, A, kappa, scale):
    """A (m x k) replaced by a matrix of the same column space with singular values
    scale * geomspace(1, 1/kappa) (exactly rank deficient for kappa = inf)."""
    q = np.linalg.qr(A)[0]
    k = A.shape[1]
    sv = scale * (np.geomspace(1.0, 1.0 / kappa, k) if np.isfinite(kappa)
                  else np.r_[np.ones(k - 2), 0.0, 0.0])
    a = np.linalg.qr(rng.standard_normal((k, k)))[0]
    return (q * sv) @ a


@pytest.mark.parametrize("kappa", [1.0, 1e3, 1e5, 1e7, 1e9, np.inf])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_projection_retraction_equals_householder_form(rng, kappa, scale):
    """The Gram/Cholesky form (well-conditioned Up, Vp) and its QR fallback (ill-conditioned or
    rank-deficient ones) agree with the Householder form to 1e-14 relative: W, s, and u, vt up
    to the signs of singular vector pairs; the truncated SVD of the dense W + xi to 1e-13."""
    from linrank.retractions import GRAM_RCOND, gram_factor

    man = DeepLinearFixedRank(60, 45, 5, 2)
    x = make_point(rng, 60, 45, 5)
    xi = tangent(man, x, rng)
    xi = TangentVector(_with_condition(rng, xi.Up, kappa, scale), scale * xi.M,
                       _with_condition(rng, xi.Vp, kappa, scale))
    xi = man.to_tangent_space(x, xi)
    R = gram_factor(xi.Up)
    if kappa <= 1e5:  # the Gram form where Up is well-conditioned
        assert R is not None
    if kappa >= 1e9:  # the QR fallback where it is not (1e7: either, by the diagonal estimate)
        assert R is None
    if R is not None:
        assert np.min(np.diagonal(R)) > GRAM_RCOND * np.max(np.diagonal(R))
    y = man.check_point(man.retraction(x, xi), tol=1e-13)
    U0, S0, Vt0 = _householder_retraction(x, xi)
    assert np.max(np.abs(y.s - S0)) <= 1e-14 * S0[0]
    signs = np.sign(np.sum(y.u * U0, axis=0))
    assert np.max(np.abs(y.u * signs - U0)) <= 1e-13
    assert np.max(np.abs(y.vt * signs[:, None] - Vt0)) <= 1e-13
    W = man.to_dense(y)
    W0 = (U0 * S0) @ Vt0
    assert np.max(np.abs(W - W0)) <= 1e-14 * np.max(np.abs(W0))
    dense = man.to_dense(x) + man.tangent_to_dense(x, xi)
    a, sv, bt = np.linalg.svd(dense)
    ref = (a[:, :5] * sv[:5]) @ bt[:5]
    assert np.max(np.abs(W - ref)) <= 1e-13 * np.max(np.abs(ref))


def test_transport_equals_projection_of_the_embedding(rng):
    """The k x k Gram form of the transport against P_T(b) of the dense tangent matrix at a
    (1e-14 relative), also from the frame-product cache and when point_a is point_b."""
    man = DeepLinearFixedRank(50, 35, 4, 3)
    a, b = make_point(rng, 50, 35, 4), make_point(rng, 50, 35, 4)
    for xa, xb in ((a, b), (a, a), (a, b)):  # the third call reuses the cached frames of (a, b)
        xi = tangent(man, xa, rng)
        got = man.tangent_to_dense(xb, man.transport(xa, xb, xi))
        ref = man.tangent_to_dense(xb, man.projection(xb, man.tangent_to_dense(xa, xi)))
        assert np.max(np.abs(got - ref)) <= 1e-14 * np.max(np.abs(ref)) * 10
    # a new point with equal values but other arrays is not mistaken for the cached one
    c = FixedRankPoint(a.u.copy(), a.s.copy(), a.vt.copy())
    c.u[:] = make_point(rng, 50, 35, 4).u
    xi = tangent(man, a, rng)
    got = man.tangent_to_dense(c, man.transport(a, c, xi))
    ref = man.tangent_to_dense(c, man.projection(c, man.tangent_to_dense(a, xi)))
    assert np.max(np.abs(got - ref)) <= 1e-13 * np.max(np.abs(ref))
