"""Levi-Civita connection and Riemannian Hessian of the deep-linear metric (linrank.connection).

Independent references: 160-digit mpmath divided differences, finite differences of the dense
operator B_W = A_W P_T (linrank.metric.dense_A, fractional powers by eigendecomposition), and a
chart reference: metric matrix of the chart W(theta) = (u + U_perp B)(S + M)(v + V_perp C)^T from the
dense formulas, Christoffel symbols by central differences (step 1e-4, accurate to ~1e-7).
"""

import mpmath as mp
import numpy as np
import pymanopt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse.linalg import aslinearoperator

from linrank import DeepLinearFixedRank, ambient_problem, autograd_problem
from linrank.connection import (
    christoffel,
    derivative_of_B,
    divided_difference_weights,
    levi_civita,
    r_form,
    riemannian_hessian,
    second_divided_difference,
)
from linrank.manifold import FixedRankPoint, TangentVector
from linrank.metric import core_weights, dense_A, side_weights


# ------------------------------------------------------------------ helpers
def _frames(rng, m, n, k, s):
    u = np.linalg.qr(rng.standard_normal((m, k)))[0]
    vt = np.linalg.qr(rng.standard_normal((n, k)))[0].T
    return FixedRankPoint(u, np.asarray(s, dtype=float), vt)


def _tangent(man, pt, rng):
    m, n, k = man.m, man.n, man.k
    t = TangentVector(
        rng.standard_normal((m, k)), rng.standard_normal((k, k)), rng.standard_normal((n, k))
    )
    return man.to_tangent_space(pt, t)


def _PT(u, v, Z):
    Pu, Pv = u @ u.T, v @ v.T
    return Pu @ Z + Z @ Pv - Pu @ Z @ Pv


def _dense_B(W, Z, N, k):
    U, _, Vt = np.linalg.svd(W)
    u, v = U[:, :k], Vt[:k].T
    if N == 1:
        return _PT(u, v, Z)
    return dense_A(W, _PT(u, v, Z), N)


class _Cost:
    """f(W) = 1/2 ||Y - W X||^2 + c/4 sum W^4 with its Euclidean gradient and Hessian."""

    def __init__(self, X, Y, c=0.0):
        self.X, self.Y, self.c = X, Y, c

    def f(self, W):
        return 0.5 * np.sum((self.Y - W @ self.X) ** 2) + 0.25 * self.c * np.sum(W**4)

    def G(self, W):
        return (W @ self.X - self.Y) @ self.X.T + self.c * W**3

    def H(self, W, Z):
        return Z @ self.X @ self.X.T + 3 * self.c * W**2 * Z


def _chart_hessian(man, pt, cost, h=1e-4):
    """Riemannian Hessian matrix in the chart basis, by Christoffel symbols from finite differences.

    Returns (J, Hmat, Gamma_dense): J (mn x dim) the chart basis at theta = 0, Hmat (dim x dim)
    with Hess[J_b] = J @ Hmat[:, b], and Gamma_dense[a][b] = Gamma^c_ab J_c as m x n matrices.
    """
    m, n, k, N = man.m, man.n, man.k, man.depth
    u, s, vt = pt
    v = vt.T
    Uq = np.linalg.qr(np.hstack((u, np.eye(m))))[0][:, k:m]
    Vq = np.linalg.qr(np.hstack((v, np.eye(n))))[0][:, k:n]
    nb, nm, nc = (m - k) * k, k * k, (n - k) * k
    dim = nb + nm + nc

    def W_of(theta):
        B = theta[:nb].reshape(m - k, k)
        M = theta[nb : nb + nm].reshape(k, k)
        C = theta[nb + nm :].reshape(n - k, k)
        return (u + Uq @ B) @ (np.diag(s) + M) @ (v + Vq @ C).T

    def J_of(theta):  # exact: W is of degree 1 in each coordinate
        cols = []
        for a in range(dim):
            e = np.zeros(dim)
            e[a] = 1.0
            cols.append(((W_of(theta + e) - W_of(theta - e)) / 2).ravel())
        return np.array(cols).T

    def G_of(theta):
        W = W_of(theta)
        J = J_of(theta)
        if N == 1:
            AJ = J
        else:
            AJ = np.array([dense_A(W, J[:, a].reshape(m, n), N).ravel() for a in range(dim)]).T
        Cc = np.linalg.lstsq(AJ, J, rcond=None)[0]  # A^{-1} J_b = J c_b
        G = J.T @ J @ Cc
        return 0.5 * (G + G.T)

    th0 = np.zeros(dim)
    J = J_of(th0)
    G0 = G_of(th0)
    dG = np.empty((dim, dim, dim))  # dG[c] = d_c G
    for c in range(dim):
        e = np.zeros(dim)
        e[c] = h
        dG[c] = (G_of(th0 + e) - G_of(th0 - e)) / (2 * h)
    # Gamma_{c,ab} = 1/2 (d_a G_cb + d_b G_ca - d_c G_ab)
    first = 0.5 * (np.einsum("acb->cab", dG) + np.einsum("bca->cab", dG) - dG)
    Gam = np.linalg.solve(G0, first.reshape(dim, -1)).reshape(dim, dim, dim)  # Gamma^c_ab
    W0 = W_of(th0)
    GE = cost.G(W0)
    df = J.T @ GE.ravel()
    d2f = np.empty((dim, dim))
    for a in range(dim):
        for b in range(dim):
            ea = np.zeros(dim)
            eb = np.zeros(dim)
            ea[a] = 1.0
            eb[b] = 1.0
            d2W = (
                W_of(ea + eb) - W_of(ea - eb) - W_of(-ea + eb) + W_of(-ea - eb)
            ) / 4  # exact (degree 1 in each coordinate)
            d2f[a, b] = np.sum(cost.H(W0, J[:, b].reshape(m, n)) * J[:, a].reshape(m, n)) + np.sum(
                GE * d2W
            )
    hess_cov = d2f - np.einsum("cab,c->ab", Gam, df)
    Hmat = np.linalg.solve(G0, hess_cov)
    return J, Hmat, Gam, Uq, Vq


def _chart_vector(man, pt, Uq, Vq, a):
    """The chart basis vector J_a at theta = 0 as a TangentVector."""
    m, n, k = man.m, man.n, man.k
    nb, nm = (m - k) * k, k * k
    theta = np.zeros(nb + nm + (n - k) * k)
    theta[a] = 1.0
    B = theta[:nb].reshape(m - k, k)
    M = theta[nb : nb + nm].reshape(k, k)
    C = theta[nb + nm :].reshape(n - k, k)
    return TangentVector(Uq @ B * pt.s, M, Vq @ C * pt.s)


# ------------------------------------------------------------------ divided differences
def _mp_phi3(sa, sb, sc, N):
    with mp.workdps(160):
        xs = [mp.mpf(x) ** (mp.mpf(2) / N) if x > 0 else mp.mpf(0) for x in (sa, sb, sc)]
        for i in range(3):  # coincident points: separate by 1e-35 (far below double precision)
            for j in range(i):
                if xs[i] == xs[j]:
                    xs[i] = xs[i] * (1 + mp.mpf(10) ** -35 * (i + 1))
        x, y, z = xs
        return x**N / ((x - y) * (x - z)) + y**N / ((y - x) * (y - z)) + z**N / ((z - x) * (z - y))


@pytest.mark.parametrize("N", [2, 3, 4, 7, 10, 100, 1000, 10**6])
def test_second_divided_difference_matches_mpmath(N):
    rng = np.random.default_rng(N)
    worst = 0.0
    for trial in range(70):
        kind = trial % 7
        base = 10 ** rng.uniform(-6, 6)
        if kind == 0:
            s = base * 10 ** rng.uniform(-3, 3, 3)
        elif kind == 1:
            s = base * (1 + 10 ** rng.uniform(-16, -1, 3) * rng.choice([-1, 1], 3))
        elif kind == 2:
            s = np.full(3, base)
        elif kind == 3:
            s = np.array([base, base, base * 10 ** rng.uniform(-2, 2)])
        elif kind == 4:
            s = np.array([base, base * (1 + 1e-9), 0.0])
        elif kind == 5:
            s = np.array([base, base * 10 ** rng.uniform(-0.3, 0.3), 0.0])
        else:  # both sides of the branch point s_hi / s_lo = e^{1/2}
            s = np.array([base, base * np.exp(0.5) * (1 + rng.uniform(-1e-3, 1e-3)), base * 1.2])
        ls, val = second_divided_difference(s[0], s[1], s[2], N)
        ref = _mp_phi3(*(float(x) for x in s), N)
        got = mp.e ** mp.mpf(float(ls)) * mp.mpf(float(val))
        worst = max(worst, float(abs(got - ref) / abs(ref)))
    assert worst <= 1e-13, worst


def test_depth_one_and_two_are_exact():
    s = np.array([3.0, 3.0, 1e-3, 0.0])
    ls, val = second_divided_difference(s[:3], s[1:], s[[2, 3, 0]], 1)
    assert np.all(val == 0.0)
    ls, val = second_divided_difference(s[:3], s[1:], s[[2, 3, 0]], 2)
    np.testing.assert_allclose(np.exp(ls) * val, 1.0, rtol=1e-15)


@pytest.mark.parametrize("N", [1, 2, 3, 6])
def test_weights_are_the_difference_quotients(N):
    """tau, sigma, pi against their defining quotients at well separated singular values."""
    s = np.array([3.0, 1.7, 0.6, 0.2])
    W = divided_difference_weights(s, N)
    w = core_weights(s, N)
    p = side_weights(s, N)
    s2 = s**2
    for i in range(4):
        for j in range(4):
            if i != j:
                np.testing.assert_allclose(
                    W.tau[i, j], (w[i] - w[j]) / (s2[i] - s2[j]), rtol=1e-12, atol=1e-15
                )
                np.testing.assert_allclose(
                    W.pi[i, j], (p[i] - p[j]) / (s2[i] - s2[j]), rtol=1e-12, atol=1e-15
                )
        np.testing.assert_allclose(W.sigma[i], (w[i] - p) / s2[i], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(W.q, p / s2, rtol=1e-14)


# ------------------------------------------------------------------ D B and r
POINTS = {
    "distinct": [2.0, 1.0, 0.5],
    "pair": [1.3, 1.3, 0.4],
    "equal": [1.0, 1.0, 1.0],
    "near": [1.0, 1.0 + 1e-9, 0.7],
}


@pytest.mark.parametrize("N", [1, 2, 3, 5])
@pytest.mark.parametrize("kind", list(POINTS))
def test_derivative_of_B_matches_finite_differences(N, kind):
    rng = np.random.default_rng(7)
    m, n, k = 5, 4, 3
    man = DeepLinearFixedRank(m, n, k, N)
    pt = _frames(rng, m, n, k, POINTS[kind])
    xi = _tangent(man, pt, rng)
    Z = rng.standard_normal((m, n))
    h = 1e-5
    Wp = man.to_dense(man.retraction(pt, h * xi))
    Wm = man.to_dense(man.retraction(pt, -h * xi))
    fd = _PT(pt.u, pt.vt.T, (_dense_B(Wp, Z, N, k) - _dense_B(Wm, Z, N, k)) / (2 * h))
    got = man.tangent_to_dense(pt, derivative_of_B(man, pt, xi, Z))
    assert np.linalg.norm(got - fd) <= 1e-7 * np.linalg.norm(fd)
    # the same from a factored and a tangent Z
    Zt = man.projection(pt, Z)
    got_t = derivative_of_B(man, pt, xi, Zt)
    got_f = derivative_of_B(man, pt, xi, man.embedding(pt, Zt))
    for a, b in zip(got_t, got_f):
        np.testing.assert_allclose(a, b, atol=1e-13)


@pytest.mark.parametrize("N", [2, 3, 7])
def test_r_form_is_the_adjoint_in_the_direction(N):
    rng = np.random.default_rng(3)
    m, n, k = 6, 5, 3
    man = DeepLinearFixedRank(m, n, k, N)
    pt = _frames(rng, m, n, k, [1.5, 0.9, 0.9])
    a, b, w = (_tangent(man, pt, rng) for _ in range(3))
    lhs = np.sum(man.tangent_to_dense(pt, r_form(man, pt, a, b)) * man.tangent_to_dense(pt, w))
    rhs = np.sum(
        man.tangent_to_dense(pt, derivative_of_B(man, pt, w, a)) * man.tangent_to_dense(pt, b)
    )
    assert abs(lhs - rhs) <= 1e-13 * abs(rhs)


# ------------------------------------------------------------------ chart reference
CHART_CASES = [
    # (m, n, k, depth, singular values, quartic coefficient)
    (4, 3, 2, 1, [1.7, 0.6], 0.0),
    (4, 3, 2, 2, [1.7, 0.6], 0.0),
    (3, 4, 2, 3, [1.2, 1.2], 0.0),
    (4, 3, 2, 4, [2.1, 0.8], 0.3),
    (3, 3, 2, 5, [0.9, 0.5], 0.0),
    (4, 4, 3, 3, [1.4, 1.4, 0.7], 0.2),
    (4, 3, 2, 2, [1.0, 1.0], 0.3),
]


@pytest.mark.parametrize("case", CHART_CASES, ids=lambda c: f"{c[0]}x{c[1]}k{c[2]}N{c[3]}")
def test_hessian_matches_chart_christoffel_reference(case):
    m, n, k, N, s, c = case
    rng = np.random.default_rng(11 + N)
    man = DeepLinearFixedRank(m, n, k, N)
    pt = _frames(rng, m, n, k, s)
    X = rng.standard_normal((n, 7))
    Y = rng.standard_normal((m, 7))  # Y != X: regression, gradient with a normal component
    cost = _Cost(X, Y, c)
    J, Hmat, _, Uq, Vq = _chart_hessian(man, pt, cost)
    W = man.to_dense(pt)
    G = cost.G(W)
    got = []
    for b in range(J.shape[1]):
        xi = _chart_vector(man, pt, Uq, Vq, b)
        np.testing.assert_allclose(man.tangent_to_dense(pt, xi).ravel(), J[:, b], atol=1e-13)
        Hx = man.euclidean_to_riemannian_hessian(pt, G, cost.H(W, man.tangent_to_dense(pt, xi)), xi)
        got.append(man.tangent_to_dense(pt, Hx).ravel())
    got = np.array(got).T
    ref = J @ Hmat
    err = np.linalg.norm(got - ref) / np.linalg.norm(ref)
    assert err <= 1e-5, err
    if N >= 2:
        # the trap: P_T(D_xi grad f) plus the Weingarten term is not the Hessian here
        naive = []
        for b in range(J.shape[1]):
            xi = _chart_vector(man, pt, Uq, Vq, b)
            h = 1e-6
            gp = man.euclidean_to_riemannian_gradient(
                man.retraction(pt, h * xi), cost.G(man.to_dense(man.retraction(pt, h * xi)))
            )
            gm = man.euclidean_to_riemannian_gradient(
                man.retraction(pt, -h * xi), cost.G(man.to_dense(man.retraction(pt, -h * xi)))
            )
            dg = (
                man.tangent_to_dense(man.retraction(pt, h * xi), gp)
                - man.tangent_to_dense(man.retraction(pt, -h * xi), gm)
            ) / (2 * h)
            naive.append(_PT(pt.u, pt.vt.T, dg).ravel())
        naive = np.array(naive).T
        assert np.linalg.norm(naive - ref) / np.linalg.norm(ref) > 1e-2


@pytest.mark.parametrize("N", [1, 2, 4])
def test_levi_civita_matches_chart_christoffel_symbols(N):
    m, n, k = 4, 3, 2
    rng = np.random.default_rng(5)
    man = DeepLinearFixedRank(m, n, k, N)
    pt = _frames(rng, m, n, k, [1.6, 0.7])
    cost = _Cost(rng.standard_normal((n, 5)), rng.standard_normal((m, 5)))
    J, _, Gam, Uq, Vq = _chart_hessian(man, pt, cost)
    dim = J.shape[1]
    u, s, vt = pt
    v = vt.T
    nb, nm = (m - k) * k, k * k
    worst = 0.0
    for a in range(dim):
        for b in range(dim):
            Xa = _chart_vector(man, pt, Uq, Vq, a)
            Yb = _chart_vector(man, pt, Uq, Vq, b)

            def W_of(theta):
                B = theta[:nb].reshape(m - k, k)
                M = theta[nb : nb + nm].reshape(k, k)
                C = theta[nb + nm :].reshape(n - k, k)
                return (u + Uq @ B) @ (np.diag(s) + M) @ (v + Vq @ C).T

            ea = np.zeros(dim)
            eb = np.zeros(dim)
            ea[a] = 1.0
            eb[b] = 1.0
            d2W = (W_of(ea + eb) - W_of(ea - eb) - W_of(-ea + eb) + W_of(-ea - eb)) / 4
            got = man.tangent_to_dense(pt, levi_civita(man, pt, Xa, Yb, d2W))
            ref = (J @ Gam[:, a, b]).reshape(m, n)
            worst = max(worst, np.linalg.norm(got - ref) / max(np.linalg.norm(J), 1.0))
            sym = christoffel(man, pt, Xa, Yb) - christoffel(man, pt, Yb, Xa)
            assert max(np.abs(x).max() for x in sym) <= 1e-13
    assert worst <= 1e-6, worst


@pytest.mark.parametrize("scale", [1e-150, 1.0, 1e150])
def test_christoffel_and_levi_civita_refuse_a_non_tangent_vector(scale):
    """A non-tangent X or Y (Up not orthogonal to u, or Vp to v) used to give numbers; now a
    ValueError naming it. Tangent vectors computed by projection pass at any scale, also with a
    normal part 100 times their size removed (rounding of the projection, within the tolerance)."""
    m, n, k = 7, 5, 2
    rng = np.random.default_rng(11)
    man = DeepLinearFixedRank(m, n, k, 3)
    pt = _frames(rng, m, n, k, [2.0, 0.5])
    X, Y = _tangent(man, pt, rng), _tangent(man, pt, rng)
    X, Y = (TangentVector(*(scale * b for b in t)) for t in (X, Y))
    Z = X.Up @ pt.vt + rng.standard_normal((m, n)) * 100 * np.linalg.norm(X.Up)  # mostly normal
    Xp = man.projection(pt, Z)
    for a, b in ((X, Y), (Xp, Y), (Y, Xp)):
        christoffel(man, pt, a, b)
        levi_civita(man, pt, a, b, np.zeros((m, n)))
    bad_u = TangentVector(X.Up + 1e-6 * np.linalg.norm(X.Up) * pt.u[:, :1] @ np.ones((1, k)), X.M, X.Vp)
    bad_v = TangentVector(X.Up, X.M, X.Vp + 1e-6 * scale * pt.vt.T)
    for bad in (bad_u, bad_v):
        with pytest.raises(ValueError, match="X is not tangent"):
            christoffel(man, pt, bad, Y)
        with pytest.raises(ValueError, match="Y is not tangent"):
            christoffel(man, pt, X, bad)
        with pytest.raises(ValueError, match="Y is not tangent"):
            levi_civita(man, pt, X, bad, np.zeros((m, n)))
        with pytest.raises(ValueError, match="X is not tangent"):
            levi_civita(man, pt, bad, Y, np.zeros((m, n)))


# ------------------------------------------------------------------ structure
@settings(max_examples=25, deadline=None)
@given(
    N=st.integers(1, 8),
    seed=st.integers(0, 2**31 - 1),
    repeat=st.booleans(),
    m=st.integers(3, 9),
    n=st.integers(3, 9),
)
def test_hessian_is_self_adjoint_linear_and_tangent(N, seed, repeat, m, n):
    rng = np.random.default_rng(seed)
    k = min(m, n) - 1
    s = np.exp(rng.uniform(-2, 2, k))
    if repeat:
        s[1] = s[0]
    man = DeepLinearFixedRank(m, n, k, N)
    pt = _frames(rng, m, n, k, s)
    cost = _Cost(rng.standard_normal((n, 6)), rng.standard_normal((m, 6)), 0.1)
    W = man.to_dense(pt)
    G = cost.G(W)

    def hess(xi):
        return man.euclidean_to_riemannian_hessian(
            pt, G, cost.H(W, man.tangent_to_dense(pt, xi)), xi
        )

    a, b = _tangent(man, pt, rng), _tangent(man, pt, rng)
    Ha, Hb = hess(a), hess(b)
    lhs, rhs = man.inner_product(pt, Ha, b), man.inner_product(pt, a, Hb)
    scale = man.norm(pt, Ha) * man.norm(pt, b) + man.norm(pt, a) * man.norm(pt, Hb)
    assert abs(lhs - rhs) <= 1e-12 * scale
    Hab = hess(2.0 * a - 3.0 * b)
    diff = Hab - (2.0 * Ha - 3.0 * Hb)
    assert man.norm(pt, diff) <= 1e-12 * (2 * man.norm(pt, Ha) + 3 * man.norm(pt, Hb))
    assert np.abs(pt.u.T @ Ha.Up).max() <= 1e-12 * np.abs(Ha.Up).max()
    assert np.abs(pt.vt @ Ha.Vp).max() <= 1e-12 * np.abs(Ha.Vp).max()


def test_gradient_and_hessian_input_forms_agree():
    rng = np.random.default_rng(2)
    m, n, k, N = 7, 6, 3, 3
    man = DeepLinearFixedRank(m, n, k, N)
    pt = _frames(rng, m, n, k, [2.0, 1.0, 1.0])
    xi = _tangent(man, pt, rng)
    G = rng.standard_normal((m, n))
    H = rng.standard_normal((m, n))
    ref = man.euclidean_to_riemannian_hessian(pt, G, H, xi)
    direct = riemannian_hessian(man, pt, G, H, xi)
    for a, b in zip(direct, ref):
        np.testing.assert_array_equal(a, b)
    Ug, Sg, Vgt = np.linalg.svd(G, full_matrices=False)
    for Gform, Hform in [
        ((Ug, np.diag(Sg), Vgt.T), H),
        (aslinearoperator(G), aslinearoperator(H)),
    ]:
        got = man.euclidean_to_riemannian_hessian(pt, Gform, Hform, xi)
        for a, b in zip(got, ref):
            np.testing.assert_allclose(a, b, atol=1e-12)


def test_factor_gradients_are_rejected_with_a_clear_error():
    rng = np.random.default_rng(0)
    man = DeepLinearFixedRank(5, 4, 2, 2)
    pt = _frames(rng, 5, 4, 2, [1.0, 0.5])
    xi = _tangent(man, pt, rng)
    fg = (rng.standard_normal((5, 2)), rng.standard_normal(2), rng.standard_normal((2, 4)))
    with pytest.raises(TypeError, match="normal component"):
        man.euclidean_to_riemannian_hessian(pt, fg, np.zeros((5, 4)), xi)
    with pytest.raises(TypeError):
        man.euclidean_to_riemannian_hessian(pt, np.zeros((5, 4)), fg, xi)
    with pytest.raises(ValueError):
        man.euclidean_to_riemannian_hessian(pt, np.zeros((4, 5)), np.zeros((5, 4)), xi)


def test_depth_one_is_projection_plus_weingarten():
    """N = 1: Hess f[xi] = P_T H + (P_perp G Vp S^-1) vt + u (P_perp G^T Up S^-1)^T (Absil et al.)."""
    rng = np.random.default_rng(4)
    m, n, k = 7, 5, 2
    man = DeepLinearFixedRank(m, n, k, 1)
    pt = _frames(rng, m, n, k, [1.5, 0.3])
    xi = _tangent(man, pt, rng)
    G, H = rng.standard_normal((m, n)), rng.standard_normal((m, n))
    u, s, vt = pt
    Pu = np.eye(m) - u @ u.T
    Pv = np.eye(n) - vt.T @ vt
    ref = _PT(u, vt.T, H) + Pu @ G @ Pv @ xi.Vp / s @ vt + u @ (Pv @ G.T @ Pu @ xi.Up / s).T
    got = man.tangent_to_dense(pt, man.euclidean_to_riemannian_hessian(pt, G, H, xi))
    np.testing.assert_allclose(got, ref, atol=1e-12)


# ------------------------------------------------------------------ TrustRegions
def _autoencoder(d, samples, seed):
    rs = np.random.RandomState(seed)
    X = rs.standard_normal((d, samples)) / np.sqrt(samples)
    return X


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("how", ["ambient", "autograd"])
@pytest.mark.parametrize("task", ["autoencoder", "regression"])
def test_trust_regions_reaches_the_optimum(depth, how, task):
    import autograd.numpy as anp

    d, k, samples = 40, 4, 80
    X = _autoencoder(d, samples, depth)
    if task == "autoencoder":
        Y = X
    else:
        rs = np.random.RandomState(100 + depth)
        Y = (rs.standard_normal((d, d)) / np.sqrt(d)) @ X + 0.1 * rs.standard_normal((d, samples))
    # optimum on M_k (Eckart-Young on the whitened problem): W* = P_k(Y X^+ ) restricted
    C = X @ X.T
    L = np.linalg.cholesky(C)
    T = Y @ X.T @ np.linalg.inv(L.T)  # W L = T  =>  min ||W L - T|| over rank k
    Ut, St, Vtt = np.linalg.svd(T)
    Wopt = (Ut[:, :k] * St[:k]) @ Vtt[:k] @ np.linalg.inv(L)
    fopt = 0.5 * np.sum((Y - Wopt @ X) ** 2)
    man = DeepLinearFixedRank(d, d, k, depth)
    if how == "ambient":
        problem = ambient_problem(
            man,
            lambda W: 0.5 * np.sum((Y - W @ X) ** 2),
            lambda W: (W @ X - Y) @ X.T,
            lambda W, Z: Z @ C,
        )
    else:
        problem = autograd_problem(man, lambda W: 0.5 * anp.sum((Y - W @ X) ** 2))
    np.random.seed(depth)
    opt = pymanopt.optimizers.TrustRegions(verbosity=0, max_iterations=30, min_gradient_norm=1e-9)
    res = opt.run(problem)
    W = man.to_dense(res.point)
    assert res.iterations <= 30
    assert res.cost - fopt <= 1e-10 * fopt
    assert np.linalg.norm(W - Wopt) <= 1e-6 * np.linalg.norm(Wopt)
