"""Tests of linrank.data and linrank.network: data products, balanced factors, conserved quantities, paper data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linrank.data import LinearData, as_data, gaussian_data, top_projector
from linrank.network import (
    balanced_factors,
    check_factors,
    conserved_quantities,
    imbalance,
    product,
)


def _thin_svd(W, k):
    u, s, vt = np.linalg.svd(W, full_matrices=False)
    return u[:, :k], s[:k], vt[:k]


@pytest.mark.parametrize("form", ["samples", "covariance"])
@pytest.mark.parametrize("auto", [False, True])
def test_point_products_match_dense_gradient(form, auto):
    rng = np.random.default_rng(0)
    d_x, n = 7, 11
    X = rng.standard_normal((d_x, n))
    Y = X if auto else rng.standard_normal((5, n))
    d_y = Y.shape[0]
    data = LinearData.from_samples(X, Y, form=form)
    assert data.form == form and data.autoencoder == auto
    k = 3
    W = rng.standard_normal((d_y, k)) @ rng.standard_normal((k, d_x))
    u, s, vt = _thin_svd(W, k)
    G_ref = (W @ X - Y) @ X.T  # the definition, independent of the implementation
    L_ref = 0.5 * np.sum((Y - W @ X) ** 2)
    Gv, Gtu, loss = data.point_products(u, s, vt)
    np.testing.assert_allclose(Gv, G_ref @ vt.T, rtol=1e-12, atol=1e-12 * np.abs(G_ref).max())
    np.testing.assert_allclose(Gtu, G_ref.T @ u, rtol=1e-12, atol=1e-12 * np.abs(G_ref).max())
    assert loss == pytest.approx(L_ref, rel=1e-12)
    np.testing.assert_allclose(data.gradient(W), G_ref, atol=1e-12 * np.abs(G_ref).max())
    assert data.loss(W) == pytest.approx(L_ref, rel=1e-12)
    lo, G = data.loss_and_gradient(W)
    assert lo == pytest.approx(L_ref, rel=1e-12)
    np.testing.assert_allclose(G, G_ref, atol=1e-12 * np.abs(G_ref).max())


def test_covariance_data_and_constant():
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((4, 9)), rng.standard_normal((3, 9))
    W = rng.standard_normal((3, 4))
    ref = 0.5 * np.sum((Y - W @ X) ** 2)
    full = as_data(X @ X.T, Y @ X.T, covariance=True, yy=np.sum(Y * Y))
    assert full.loss(W) == pytest.approx(ref, rel=1e-12)
    shifted = as_data(X @ X.T, Y @ X.T, covariance=True)
    assert shifted.loss(W) == pytest.approx(ref - 0.5 * np.sum(Y * Y), rel=1e-10)
    auto = as_data(X @ X.T, None, covariance=True)
    assert auto.autoencoder and auto.Cyx is auto.Cxx
    assert as_data(full) is full


@pytest.mark.parametrize(
    "args, kwargs, exc, match",
    [
        ((np.array([[1.0, np.nan]]), None), {}, ValueError, "finite"),
        ((np.ones((2, 3)), np.array([[np.inf, 1, 1]])), {}, ValueError, "finite"),
        ((np.ones((2, 3)), np.ones((2, 4))), {}, ValueError, "same number of samples"),
        ((np.ones(3), None), {}, ValueError, "2-d"),
        (("abc", None), {}, TypeError, "2-d array"),
        ((np.ones((2, 3)), None), {"form": "dense"}, ValueError, "form"),
        ((np.ones((2, 3)), np.ones((2, 2))), {"covariance": True}, ValueError, "square"),
        ((np.array([[1.0, 2.0], [0.0, 1.0]]), None), {"covariance": True}, ValueError, "symmetric"),
        ((np.eye(2), np.ones((3, 3))), {"covariance": True}, ValueError, "columns"),
        ((np.eye(2), None), {"covariance": True, "yy": -1.0}, ValueError, "yy"),
    ],
)
def test_data_bad_input(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        as_data(*args, **kwargs)


@settings(max_examples=25, deadline=None)
@given(
    d_x=st.integers(1, 6), d_y=st.integers(1, 6), hidden=st.lists(st.integers(1, 7), max_size=4),
    scale=st.sampled_from([1e-6, 1.0, 1e5]), seed=st.integers(0, 10**6),
)
def test_balanced_factors_property(d_x, d_y, hidden, scale, seed):
    rng = np.random.default_rng(seed)
    k = min(d_x, d_y, *(hidden or [d_x]))
    W0 = scale * rng.standard_normal((d_y, k)) @ rng.standard_normal((k, d_x))
    dims = (d_x, *hidden, d_y)
    fs = balanced_factors(W0, dims, seed=seed)
    N = len(dims) - 1
    assert len(fs) == N
    for j, W in enumerate(fs):
        assert W.shape == (dims[j + 1], dims[j])
    nW = np.linalg.norm(W0, 2)
    assert np.linalg.norm(product(fs) - W0) <= 1e-13 * N * nW * max(d_x, d_y)
    # Definition 1: W_{j+1}^T W_{j+1} = W_j W_j^T, both of size ||W0||^{2/N}
    assert imbalance(fs) <= 1e-13 * N * nW ** (2.0 / N) * max(dims)


def test_balanced_factors_seed_and_rank():
    rng = np.random.default_rng(3)
    W0 = rng.standard_normal((5, 2)) @ rng.standard_normal((2, 6))
    a = balanced_factors(W0, (6, 4, 3, 5), seed=7)
    b = balanced_factors(W0, (6, 4, 3, 5), seed=7)
    c = balanced_factors(W0, (6, 4, 3, 5), seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.allclose(a[1], c[1])
    # the numerical rank is 2: a hidden width 2 suffices, 1 does not
    balanced_factors(W0, (6, 2, 5), seed=0)
    with pytest.raises(ValueError, match="below rank"):
        balanced_factors(W0, (6, 1, 5), seed=0)
    # rank= truncates to the best rank-1 approximation
    fs = balanced_factors(W0, (6, 1, 5), seed=0, rank=1)
    u, s, vt = np.linalg.svd(W0)
    np.testing.assert_allclose(product(fs), s[0] * np.outer(u[:, 0], vt[0]), atol=1e-12)
    # zero matrix: rank 0, zero factors (balanced, product 0)
    z = balanced_factors(np.zeros((2, 3)), (3, 4, 2))
    assert all(not np.any(W) for W in z)
    # depth 1: the matrix itself
    np.testing.assert_allclose(balanced_factors(W0, (6, 5))[0], W0, atol=1e-13)


@pytest.mark.parametrize(
    "dims, exc, match",
    [
        ((6, 4, 4), ValueError, "end with d_y"),
        ((5, 4, 5), ValueError, "start with d_x"),
        ((6,), ValueError, "at least 2"),
        ((6, 0, 5), ValueError, "positive"),
        ((6, 2.0, 5), TypeError, "integers"),
        ("65", TypeError, "sequence"),
    ],
)
def test_balanced_factors_bad_dims(dims, exc, match):
    W0 = np.ones((5, 6))
    with pytest.raises(exc, match=match):
        balanced_factors(W0, dims)


def test_balanced_factors_bad_matrix():
    with pytest.raises(ValueError, match="finite"):
        balanced_factors(np.array([[np.nan, 1.0]]), (2, 1))


def test_conserved_quantities_and_chain():
    rng = np.random.default_rng(5)
    fs = [rng.standard_normal((4, 3)), rng.standard_normal((2, 4)), rng.standard_normal((5, 2))]
    D = conserved_quantities(fs)
    assert [x.shape for x in D] == [(4, 4), (2, 2)]
    np.testing.assert_allclose(D[0], fs[1].T @ fs[1] - fs[0] @ fs[0].T)
    np.testing.assert_allclose(product(fs), fs[2] @ fs[1] @ fs[0])
    assert imbalance(fs) == pytest.approx(max(np.linalg.norm(x) for x in D))
    assert imbalance(fs[:1]) == 0.0
    with pytest.raises(ValueError, match="do not chain"):
        check_factors([fs[0], fs[2]])
    with pytest.raises(ValueError, match="finite"):
        check_factors([np.full((2, 2), np.inf)])
    with pytest.raises(TypeError, match="sequence"):
        check_factors(np.ones((2, 2)))
    with pytest.raises(ValueError, match="at least one"):
        check_factors([])
    with pytest.raises(ValueError, match="d_x = 5"):
        check_factors(fs, d_x=5)
    with pytest.raises(ValueError, match="d_y = 4"):
        check_factors(fs, d_y=4)


def test_paper_data_and_projector():
    X = gaussian_data(40, seed=0)
    assert X.shape == (40, 120)
    # entries N(0, 1/d): the sample variance is 1/40 within a few standard errors
    assert abs(X.var() * 40 - 1.0) < 5 * np.sqrt(2.0 / X.size)
    assert np.array_equal(X, gaussian_data(40, seed=0))
    P = top_projector(X, 3)
    lam, U = np.linalg.eigh(X @ X.T)
    np.testing.assert_allclose(P, U[:, -3:] @ U[:, -3:].T, atol=1e-12)
    with pytest.raises(ValueError):
        top_projector(X, 0)
    with pytest.raises(ValueError):
        gaussian_data(0)
    with pytest.raises(ValueError):
        gaussian_data(3, sigma=-1.0)


def test_rank_constrained_minimizer_regression_and_autoencoder():
    """Closed-form optimum against independent facts: PCA for Y = X, ordinary least squares at
    full rank, stationarity on M_k, and no random rank-k matrix doing better."""
    from linrank import DeepLinearFixedRank, least_squares_problem, rank_constrained_minimizer

    rng = np.random.default_rng(3)
    d_x, d_y, n, k = 6, 4, 30, 2
    X = rng.standard_normal((d_x, n))
    Y = rng.standard_normal((d_y, d_x)) @ X + 0.3 * rng.standard_normal((d_y, n))
    W, loss = rank_constrained_minimizer(X, Y, k)
    assert np.linalg.matrix_rank(W) == k
    assert loss == pytest.approx(0.5 * np.sum((Y - W @ X) ** 2), rel=1e-12)
    # stationary on M_k: the Riemannian gradient of the exact problem vanishes there
    man = DeepLinearFixedRank(d_y, d_x, k, 3)
    problem = least_squares_problem(man, X, Y)
    x = man.point_from_matrix(W)
    g = problem.riemannian_gradient(x)
    assert man.norm(x, g) < 1e-9 * np.linalg.norm(Y @ X.T)
    np.random.seed(5)
    for _ in range(20):  # nearby rank-k matrices, and random ones, do worse
        near = man.retraction(x, 0.05 * man.random_tangent_vector(x))
        assert problem.cost(near) > loss
        assert problem.cost(man.random_point()) > loss
    # full rank: ordinary least squares
    Wf, lf = rank_constrained_minimizer(X, Y, d_y)
    assert np.allclose(Wf, np.linalg.lstsq(X.T, Y.T, rcond=None)[0].T, atol=1e-12)
    # autoencoder: the PCA projection and 1/2 sum of the tail eigenvalues
    Wa, la = rank_constrained_minimizer(X, None, k)
    lam = np.linalg.eigvalsh(X @ X.T)[::-1]
    assert np.allclose(Wa, top_projector(X, k), atol=1e-12)
    assert la == pytest.approx(0.5 * lam[k:].sum(), rel=1e-10)


def test_rank_constrained_minimizer_bad_input():
    from linrank import rank_constrained_minimizer

    X = np.ones((3, 2))  # X X^T singular
    with pytest.raises(ValueError, match="positive definite"):
        rank_constrained_minimizer(X, None, 1)
    X = np.random.default_rng(0).standard_normal((3, 9))
    with pytest.raises(ValueError, match="samples"):
        rank_constrained_minimizer(X, X[:, :5], 1)
    with pytest.raises(ValueError, match="k must"):
        rank_constrained_minimizer(X, None, 4)


# ---------------------------------------------------------------------- gaussian_factors
def test_gaussian_factors_entries_are_the_seeded_draws_times_scale():
    from linrank import gaussian_factors

    dims = (5, 7, 3, 4)
    fs = gaussian_factors(dims, 1e-3, seed=11)
    rng = np.random.default_rng(11)
    for W, (a, b) in zip(fs, zip(dims[:-1], dims[1:])):
        assert W.shape == (b, a)
        np.testing.assert_array_equal(W, 1e-3 * rng.standard_normal((b, a)))
    big = gaussian_factors((300, 400), 0.5, seed=1)[0]
    assert np.std(big) == pytest.approx(0.5, rel=0.01)  # 120000 samples: std error 0.2%


@pytest.mark.parametrize("depth", [1, 2, 5, 400])
def test_gaussian_factors_product_normalization_sets_the_spectral_norm(depth):
    from linrank import gaussian_factors
    from linrank.network import imbalance, product

    dims = (6,) + (8,) * (depth - 1) + (5,)
    fs = gaussian_factors(dims, 1e-3, seed=depth, normalization="product")
    # reference: the product renormalized factor by factor (depth 400 overflows otherwise)
    P, logc = np.eye(6), 0.0
    for W in fs:
        P = W @ P
        t = np.abs(P).max()
        P, logc = P / t, logc + np.log(t)
    assert np.log(np.linalg.norm(P, 2)) + logc == pytest.approx(np.log(1e-3), abs=1e-10 * depth)
    if depth <= 5:
        assert np.linalg.norm(product(fs), 2) == pytest.approx(1e-3, rel=1e-12)
    if depth >= 2:
        assert imbalance(fs) > 0  # not balanced
    # the same draws as "entries", up to one common factor
    raw = gaussian_factors(dims, 1.0, seed=depth)
    c = fs[0][0, 0] / raw[0][0, 0]
    for W, R in zip(fs, raw):
        np.testing.assert_allclose(W, c * R, rtol=1e-14)


def test_gaussian_factors_refuses_bad_input():
    from linrank import gaussian_factors

    for bad in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="scale"):
            gaussian_factors((2, 2), bad)
    with pytest.raises(TypeError, match="scale"):
        gaussian_factors((2, 2), "1")
    with pytest.raises(ValueError, match="normalization"):
        gaussian_factors((2, 2), 1.0, normalization="layer")
    with pytest.raises(ValueError, match="at least 2"):
        gaussian_factors((2,), 1.0)
    with pytest.raises(TypeError, match="integers"):
        gaussian_factors((2, 2.5), 1.0)
    with pytest.raises(ValueError, match="refused before drawing"):
        gaussian_factors((10**6, 10**6), 1.0)


@pytest.mark.parametrize("a", [1e-160, 1e-100, 1.0, 1e100, 1e160])
@pytest.mark.parametrize("b", [1e-150, 1.0, 1e150])
def test_rank_constrained_minimizer_at_extreme_scales(a, b):
    """X ~ 1e160 raised LinAlgError (X X^T overflowed). The closed form scales exactly:
    W*(aX, bY) = (b/a) W*(X, Y), L(aX, bY) = b^2 L(X, Y); a result beyond the range is refused."""
    from linrank import rank_constrained_minimizer

    rs = np.random.default_rng(4)
    X, Y = rs.standard_normal((4, 9)), rs.standard_normal((3, 9))
    W1, L1 = rank_constrained_minimizer(X, Y, 2)
    c = b / a
    if c > 1e300:
        with pytest.raises(ValueError, match="overflows"):
            rank_constrained_minimizer(a * X, b * Y, 2)
        return
    W, L = rank_constrained_minimizer(a * X, b * Y, 2)
    # a * X and b * Y are rounded (relative eps); the problem's condition number here is O(10)
    if c > 1e-290:  # W* normal, not subnormal; compared unscaled (its squares may overflow)
        assert np.linalg.norm(W / c - W1) <= 1e-13 * np.linalg.norm(W1)
    assert L == pytest.approx(b * b * L1, rel=1e-13)
    if a == b:  # the autoencoder Y = X, at scales where its loss is representable
        Wa, La = rank_constrained_minimizer(a * X, None, 2)
        Wr, Lr = rank_constrained_minimizer(X, None, 2)
        assert np.linalg.norm(Wa - Wr) <= 1e-13 * np.linalg.norm(Wr)
        assert La == pytest.approx(a * a * Lr, rel=1e-13)


def test_rank_constrained_minimizer_refuses_an_overflowing_loss():
    from linrank import rank_constrained_minimizer

    X = np.random.default_rng(4).standard_normal((4, 9))
    with pytest.raises(ValueError, match="overflows"):
        rank_constrained_minimizer(1e160 * X, None, 2)  # the loss ~ 1e320
