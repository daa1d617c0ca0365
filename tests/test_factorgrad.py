"""Factor gradients (du, ds, dvt) of costs f(u, s, vt) -> the Riemannian gradient.

References: dense Frobenius projections of gradients computed by hand for costs written on W,
pymanopt's FixedRankEmbedded (distinct singular values), slope tests, and closed-form optima.
"""

import autograd.numpy as anp
import numpy as np
import pymanopt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymanopt.manifolds import FixedRankEmbedded

from linrank import DeepLinearFixedRank, FixedRankPoint, TangentVector
from linrank.diagnostics import check_gradient
from linrank.factorgrad import GAP_TOL, factor_gradient_to_tangent, undetermined_pairs

EPS = np.finfo(float).eps
m, n, k = 7, 6, 3


def make_point(rng, s):
    u, _ = np.linalg.qr(rng.standard_normal((m, k)))
    v, _ = np.linalg.qr(rng.standard_normal((n, k)))
    return FixedRankPoint(u, np.asarray(s, dtype=float), v.T)


def P_T(x, Z):
    Pu, Pv = x.u @ x.u.T, x.vt.T @ x.vt
    return Pu @ Z + Z @ Pv - Pu @ Z @ Pv


def rel(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


def data(seed=0):
    r = np.random.default_rng(seed)
    A = r.standard_normal((m, n))
    B = r.standard_normal((m, 4)) / 2
    C = r.standard_normal((m, m))
    return A, B, C + C.T


# Costs written on the factors, none of them as F(u diag(s) vt), each with the gradient of the
# function of W it equals on M_k (by hand, on the dense W = u diag(s) vt).
def costs(A, B, C):
    return {
        "nuclear": (lambda u, s, vt: anp.sum(s), lambda x, W: x.u @ x.vt),
        "nuclear+ls": (
            lambda u, s, vt: anp.sum(s**2) - 2 * anp.sum(A * ((u * s) @ vt)) + 0.5 * anp.sum(s),
            lambda x, W: 2 * (W - A) + 0.5 * x.u @ x.vt,
        ),
        "||W^T B||^2": (
            lambda u, s, vt: anp.sum(((B.T @ u) * s) ** 2),
            lambda x, W: 2 * B @ B.T @ W,
        ),
        "||WW^T - C||^2": (
            lambda u, s, vt: anp.sum(((u * s**2) @ u.T - C) ** 2),
            lambda x, W: 4 * (W @ W.T - C) @ W,
        ),
        "schatten3": (lambda u, s, vt: anp.sum(s**3), lambda x, W: 3 * (x.u * x.s**2) @ x.vt),
        "logdet": (lambda u, s, vt: anp.sum(anp.log(s)), lambda x, W: (x.u / x.s) @ x.vt),
    }


def two_spellings(A):
    """||W||^2 - 2 <A, W> written on the product and with sum(s**2): equal on M_k only."""
    return (
        lambda u, s, vt: anp.sum(((u * s) @ vt) ** 2) - 2 * anp.sum(A * ((u * s) @ vt)),
        lambda u, s, vt: anp.sum(s**2) - 2 * anp.sum(A * ((u * s) @ vt)),
    )


def factor_grad(man, f, x):
    return pymanopt.Problem(man, pymanopt.function.autograd(man)(f)).euclidean_gradient(x)


# ----------------------------------------------------------------------------- the cases
def test_nuclear_norm_gives_identity_core_as_pymanopt(rng):
    x = make_point(rng, [2.0, 1.0, 0.5])
    ours, theirs = DeepLinearFixedRank(m, n, k), FixedRankEmbedded(m, n, k)
    fg = factor_grad(ours, lambda u, s, vt: anp.sum(s), x)
    g = ours.euclidean_to_riemannian_gradient(x, fg)
    assert np.array_equal(g.M, np.eye(k))
    assert np.array_equal(g.Up, np.zeros((m, k))) and np.array_equal(g.Vp, np.zeros((n, k)))
    t = theirs.euclidean_to_riemannian_gradient(x, fg)
    assert all(np.array_equal(a, b) for a, b in zip(g, t))


@pytest.mark.parametrize("N", [1, 2, 3])
def test_two_spellings_of_one_function_give_one_gradient(rng, N):
    A, _, _ = data()
    x = make_point(rng, [2.0, 1.3, 0.4])
    man = DeepLinearFixedRank(m, n, k, N)
    g1, g2 = (
        man.euclidean_to_riemannian_gradient(x, factor_grad(man, f, x)) for f in two_spellings(A)
    )
    scale = man.norm(x, g1)
    assert man.norm(x, g1 - g2) <= 1e-12 * scale
    # and both are the dense path's gradient of ||W||^2 - 2 <A, W>
    ref = man.euclidean_to_riemannian_gradient(x, 2 * man.to_dense(x) - 2 * A)
    assert man.norm(x, g2 - ref) <= 1e-12 * scale


@pytest.mark.parametrize("N", [1, 2, 3, 5])
@pytest.mark.parametrize("name", list(costs(*data())))
def test_slope_test_on_factor_costs(N, name):
    f, _ = costs(*data())[name]
    man = DeepLinearFixedRank(m, n, k, N)
    problem = pymanopt.Problem(man, pymanopt.function.autograd(man)(f))
    x = make_point(np.random.default_rng(N), [1.7, 1.1, 0.6])
    np.random.seed(N)
    res = check_gradient(problem, x)
    assert res.passed, str(res)


@pytest.mark.parametrize("N", [1, 2, 3])
@pytest.mark.parametrize("name", list(costs(*data())))
def test_factor_costs_agree_with_the_dense_path(rng, N, name):
    f, grad_W = costs(*data())[name]
    man = DeepLinearFixedRank(m, n, k, N)
    x = make_point(rng, [1.9, 0.8, 0.35])
    W = man.to_dense(x)
    got = man.euclidean_to_riemannian_gradient(x, factor_grad(man, f, x))
    ref = man.euclidean_to_riemannian_gradient(x, grad_W(x, W))
    assert man.norm(x, got - ref) <= 1e-12 * man.norm(x, ref)
    # the Frobenius part alone against an independent dense projection
    P = factor_gradient_to_tangent(x, factor_grad(man, f, x))
    assert rel(man.tangent_to_dense(x, TangentVector(*P)), P_T(x, grad_W(x, W))) < 1e-12


def test_cg_on_nuclear_regularized_approximation_reaches_pymanopts_optimum():
    rs = np.random.RandomState(0)
    mm, nn, kk = 10, 8, 3
    A = rs.standard_normal((mm, nn))
    sig = np.linalg.svd(A, compute_uv=False)
    assert sig[kk - 1] > 0.25
    # minimizer: top-k SVD of A with singular values sig_i - 1/4 (soft threshold)
    best = np.sum(sig[kk:] ** 2) + np.sum(0.25**2 + 0.5 * (sig[:kk] - 0.25))
    found = []
    for man in (FixedRankEmbedded(mm, nn, kk), DeepLinearFixedRank(mm, nn, kk)):
        cost = pymanopt.function.autograd(man)(
            lambda u, s, vt: anp.sum(((u * s) @ vt - A) ** 2) + 0.5 * anp.sum(s)
        )
        np.random.seed(1)
        opt = pymanopt.optimizers.ConjugateGradient(
            verbosity=0, max_iterations=500, min_gradient_norm=1e-10
        )
        found.append(opt.run(pymanopt.Problem(man, cost)).cost)
    assert found[0] == pytest.approx(best, rel=1e-10)
    assert found[1] == pytest.approx(found[0], rel=1e-8)
    assert found[1] == pytest.approx(best, rel=1e-10)


@pytest.mark.parametrize("optimizer", ["SteepestDescent", "ConjugateGradient"])
@pytest.mark.parametrize("N", [1, 2, 3])
def test_minimizer_with_a_repeated_singular_value_is_reached(N, optimizer):
    """The case the threshold sqrt(eps) is made for: the iterates' top singular values merge, the
    dropped symmetric part is of the size of the distance to the minimizer, the cost is still
    driven to its minimum to rounding."""
    rs = np.random.RandomState(0)
    mm, nn, kk = 8, 6, 2
    U, _ = np.linalg.qr(rs.standard_normal((mm, nn)))
    V, _ = np.linalg.qr(rs.standard_normal((nn, nn)))
    sig = np.array([2.0, 2.0, 0.7, 0.5, 0.3, 0.1])
    A = (U * sig) @ V.T
    best = np.sum(sig[kk:] ** 2)  # min ||W - A||^2 over rank 2, attained at s = (2, 2)
    man = DeepLinearFixedRank(mm, nn, kk, N)
    cost = pymanopt.function.autograd(man)(
        lambda u, s, vt: anp.sum(s**2) - 2 * anp.sum(A * ((u * s) @ vt)) + anp.sum(A**2)
    )
    np.random.seed(2)
    opt = getattr(pymanopt.optimizers, optimizer)(
        verbosity=0, max_iterations=1000, min_gradient_norm=1e-12
    )
    result = opt.run(pymanopt.Problem(man, cost))
    assert result.cost == pytest.approx(best, rel=1e-12)
    assert np.allclose(result.point[1], 2.0, rtol=1e-6)


# ------------------------------------------------------------------------ close singular values
def synthetic(rng, x, G, junk=0.0):
    """Factor gradients of a cost whose gradient on M_k is G, plus `junk`-sized derivatives across
    the manifold (symmetric parts of u^T du and vt dvt^T, which carry no information)."""
    J1 = rng.standard_normal((k, k))
    J2 = rng.standard_normal((k, k))
    du = G @ x.vt.T * x.s + junk * x.u @ (J1 + J1.T)
    dvt = x.s[:, None] * (x.u.T @ G) + junk * (J2 + J2.T) @ x.vt
    ds = np.diag(x.u.T @ G @ x.vt.T)
    return du, ds, dvt


def determined_part(x, G, close):
    """P_T G with the symmetric part of the core block zeroed on the `close` pairs."""
    M = x.u.T @ G @ x.vt.T
    sym = 0.5 * (M + M.T)
    M = M - np.where(close, sym, 0.0)
    Up = G @ x.vt.T - x.u @ (x.u.T @ G @ x.vt.T)
    Vp = G.T @ x.u - x.vt.T @ (x.vt @ G.T @ x.u)
    return TangentVector(Up, M, Vp)


@pytest.mark.parametrize(
    "s",
    [
        [1.0, 1.0, 0.5],
        [1.0, 1.0 + 1e-12, 0.5],
        [1.0, 1.0, 1.0],
        [3.0, 3.0 * (1 - 0.5 * GAP_TOL), 0.05],
    ],
)
@pytest.mark.parametrize("N", [1, 3])
def test_close_singular_values_give_the_documented_answer(rng, s, N):
    x = make_point(rng, s)
    man = DeepLinearFixedRank(m, n, k, N)
    G = rng.standard_normal((m, n))
    fg = synthetic(rng, x, G, junk=3.0)
    close = undetermined_pairs(x.s)
    assert close.any()
    got = man.euclidean_to_riemannian_gradient(x, fg)
    assert all(np.all(np.isfinite(b)) for b in got)
    want = man.apply_A(x, determined_part(x, G, close))
    assert man.norm(x, got - want) <= 1e-12 * man.norm(x, want)
    # the returned gradient is the g-orthogonal projection of the true one: a descent direction
    true = man.euclidean_to_riemannian_gradient(x, G)
    assert man.inner_product(x, got, true - got) == pytest.approx(
        0.0, abs=1e-12 * man.norm(x, true) ** 2
    )


def test_autograd_cost_at_equal_singular_values(rng):
    """A real cost (not synthetic data) at s = (1, 1, 0.5): finite, determined part exact."""
    A, _, _ = data()
    x = make_point(rng, [1.0, 1.0, 0.5])
    man = DeepLinearFixedRank(m, n, k)
    for f in two_spellings(A):
        got = man.euclidean_to_riemannian_gradient(x, factor_grad(man, f, x))
        want = determined_part(x, 2 * man.to_dense(x) - 2 * A, undetermined_pairs(x.s))
        assert man.norm(x, got - want) <= 1e-12 * man.norm(x, want)
        with np.errstate(all="ignore"):
            theirs = FixedRankEmbedded(m, n, k).euclidean_to_riemannian_gradient(
                x, factor_grad(man, f, x)
            )
        assert not np.all(np.isfinite(theirs.M))  # pymanopt divides 0 by 0 here


@pytest.mark.parametrize("gap", [1e-1, 1e-4, 1e-6, 1.01 * GAP_TOL])
def test_error_above_the_separation_is_eps_over_gap(gap):
    """The stated bound: error of P_T G about eps ||G|| / gap (4 eps / gap asserted)."""
    rng = np.random.default_rng(int(-np.log10(gap)))
    worst = 0.0
    for _ in range(10):
        s1 = rng.uniform(0.5, 2.0)
        x = make_point(rng, [s1 * (1 + gap), s1, 0.2])
        assert not undetermined_pairs(x.s)[0, 1]
        A = rng.standard_normal((m, n))
        G = 2 * DeepLinearFixedRank.to_dense(x) - 2 * A
        for f in two_spellings(A):
            man = DeepLinearFixedRank(m, n, k)  # depth 1: the gradient is P_T G itself
            P = man.euclidean_to_riemannian_gradient(x, factor_grad(man, f, x))
            err = np.linalg.norm(man.tangent_to_dense(x, P) - P_T(x, G))
            worst = max(worst, err / np.linalg.norm(G))
    assert worst <= 4 * EPS / (gap / (1 + gap))


@pytest.mark.parametrize("scale", [1e-150, 1e150])
def test_huge_and_tiny_scales(rng, scale):
    x = make_point(rng, np.array([2.0, 1.5, 0.25]) * scale)
    G = rng.standard_normal((m, n)) / scale
    fg = synthetic(rng, x, G, junk=1.0)
    P = DeepLinearFixedRank(m, n, k).euclidean_to_riemannian_gradient(x, fg)
    ref = determined_part(x, G, np.zeros((k, k), dtype=bool))
    for a, b in zip(P, ref):
        assert rel(a, b) < 1e-13


def test_gap_tol_zero_keeps_every_unequal_pair(rng):
    x = make_point(rng, [1.0, 1.0 + 1e-3 * GAP_TOL, 0.5])
    assert undetermined_pairs(x.s)[0, 1]
    assert not undetermined_pairs(x.s, gap_tol=0.0)[0, 1]
    G = rng.standard_normal((m, n))
    P = factor_gradient_to_tangent(x, synthetic(rng, x, G), gap_tol=0.0)
    assert np.all(np.isfinite(P[1]))
    # exactly equal values are undetermined whatever gap_tol
    assert undetermined_pairs([1.0, 1.0], gap_tol=0.0)[0, 1]


@pytest.mark.parametrize(
    "fg, exc, match",
    [
        ((np.zeros((m, k + 1)), np.zeros(k), np.zeros((k, n))), ValueError, "du must have shape"),
        ((np.zeros((m, k)), np.zeros(k + 1), np.zeros((k, n))), ValueError, "ds must have shape"),
        ((np.zeros((m, k)), np.zeros(k), np.zeros((k, n + 1))), ValueError, "dvt must have shape"),
        ((np.full((m, k), np.nan), np.zeros(k), np.zeros((k, n))), ValueError, "du must be finite"),
        ((np.zeros((m, k)), np.array([np.inf, 0, 0]), np.zeros((k, n))), ValueError, "ds must be"),
        ((np.zeros((m, k)) + 1j, np.zeros(k), np.zeros((k, n))), TypeError, "du must be a real"),
        ((np.zeros((m, k)), np.array(["a", "b", "c"]), np.zeros((k, n))), TypeError, "ds must be"),
    ],
)
def test_bad_factor_gradients(rng, fg, exc, match):
    x = make_point(rng, [2.0, 1.0, 0.5])
    with pytest.raises(exc, match=match):
        factor_gradient_to_tangent(x, fg)
    with pytest.raises(exc, match=match):
        DeepLinearFixedRank(m, n, k, 2).euclidean_to_riemannian_gradient(x, fg)


def test_bad_point_and_gap_tol(rng):
    x = make_point(rng, [2.0, 1.0, 0.5])
    fg = (np.zeros((m, k)), np.zeros(k), np.zeros((k, n)))
    with pytest.raises(ValueError, match="positive"):
        factor_gradient_to_tangent((x.u, np.array([1.0, 0.0, 0.5]), x.vt), fg)
    with pytest.raises(TypeError, match="thin SVD"):
        factor_gradient_to_tangent(x.u, fg)
    with pytest.raises(TypeError, match="triple"):
        factor_gradient_to_tangent(x, fg[:2])
    for bad in (-1e-3, 1.0, float("nan")):
        with pytest.raises(ValueError, match="gap_tol"):
            factor_gradient_to_tangent(x, fg, gap_tol=bad)
    with pytest.raises(TypeError, match="gap_tol"):
        factor_gradient_to_tangent(x, fg, gap_tol="1e-8")


@settings(max_examples=60, deadline=None)
@given(
    mm=st.integers(1, 8),
    nn=st.integers(1, 8),
    kfrac=st.floats(0, 1),
    spread=st.floats(0.0, 6.0),
    tie=st.booleans(),
    junk=st.sampled_from([0.0, 1.0, 100.0]),
    seed=st.integers(0, 2**31),
)
def test_property_against_the_stated_bound(mm, nn, kfrac, spread, tie, junk, seed):
    """Random shapes, spreads, ties and junk: every entry within the docstring's error bound."""
    r = np.random.default_rng(seed)
    kk = 1 + int(kfrac * (min(mm, nn) - 1))
    s = np.sort(np.exp(r.uniform(-spread, spread, size=kk)))[::-1]
    if tie and kk > 1:
        s[1] = s[0]
    u, _ = np.linalg.qr(r.standard_normal((mm, kk)))
    v, _ = np.linalg.qr(r.standard_normal((nn, kk)))
    G = r.standard_normal((mm, nn))
    J1, J2 = r.standard_normal((kk, kk)), r.standard_normal((kk, kk))
    du = G @ v * s + junk * u @ (J1 + J1.T)
    dvt = s[:, None] * (u.T @ G) + junk * (J2 + J2.T) @ v.T
    ds = np.diag(u.T @ G @ v)
    Up, M, Vp = factor_gradient_to_tangent((u, s, v.T), (du, ds, dvt))
    close = undetermined_pairs(s)
    Mg = u.T @ G @ v
    M_want = Mg - np.where(close, 0.5 * (Mg + Mg.T), 0.0)
    # bound: eps * (|du_i| + |du_j| + |dvt_i| + |dvt_j|) / |s_i - s_j| off the diagonal, with
    # the antisymmetric part's 1/(s_i + s_j) and the side blocks' 1/s_j
    col = np.linalg.norm(du, axis=0) + np.linalg.norm(dvt, axis=1) + np.linalg.norm(G) * s
    pair = np.add.outer(col, col)
    gap = np.abs(np.subtract.outer(s, s))
    inv_gap = np.divide(1.0, gap, out=np.zeros_like(gap), where=~close & (gap > 0))
    bound = 20 * EPS * pair * (inv_gap + 1.0 / np.add.outer(s, s))
    np.fill_diagonal(bound, 20 * EPS * np.linalg.norm(G))
    assert np.all(np.abs(M - M_want) <= bound)
    side_bound = 20 * EPS * col / s
    assert np.all(np.linalg.norm(Up - (G @ v - u @ Mg), axis=0) <= side_bound)
    assert np.all(np.linalg.norm(Vp - (G.T @ u - v @ Mg.T), axis=0) <= side_bound)
    assert np.abs(u.T @ Up).max() <= 20 * EPS * col.max() / s.min()
