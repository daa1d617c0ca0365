"""linrank.flows.chain_linalg: the product SVD from the factors (tiny singular values to relative
accuracy) and the data products at factors that are not orthonormal, against mpmath (60 digits)
and the dense formulas."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from linrank.data import LinearData, as_data
from linrank.flows.chain_linalg import chain_svd, linear_chain_products

EPS = np.finfo(float).eps


def _orth(rng, m, k):
    q, _ = np.linalg.qr(rng.standard_normal((m, k)))
    return q


def _mp_singular_values(factors):
    """Singular values of the exact product of the stored (binary) factors, 60 digits."""
    with mpmath.workdps(60):
        P = mpmath.matrix(factors[0].tolist())
        for W in factors[1:]:
            P = mpmath.matrix(W.tolist()) * P
        s = mpmath.svd_r(P.T if P.rows < P.cols else P, compute_uv=False)
        return np.array(sorted((float(x) for x in s), reverse=True))


def _balanced_chain(rng, m, n, s, N):
    """W_j = F_j diag(r) F_{j-1}^T, r = s^(1/N), with orthonormal frames F_0 (n x k), F_1, ...,
    F_{N-1} (k x k) and F_N (m x k): a balanced chain whose product F_N diag(s) F_0^T has the
    singular values s (up to the rounding of the factors)."""
    k = s.size
    r = np.exp(np.log(s) / N)
    F = [_orth(rng, n, k)] + [_orth(rng, k, k) for _ in range(N - 1)] + [_orth(rng, m, k)]
    return [(F[j] * r) @ F[j - 1].T for j in range(1, N + 1)]


@pytest.mark.parametrize("N", [2, 3, 4, 7])
def test_chain_svd_resolves_tiny_singular_values(N):
    """Balanced chains with s = (1, 1e-8, 1e-20) (layers diag(s^(1/N)) rotated by random
    orthogonal frames): every s_i of the exact product of the stored factors (mpmath) to the
    relative error the rounding of the factors causes, about N eps (s_1 / s_i)^(1/N), where the
    product's own SVD has an absolute error eps s_1 (noise for s_3)."""
    rng = np.random.default_rng(N)
    s = np.array([1.0, 1e-8, 1e-20])
    Ws = _balanced_chain(rng, 9, 7, s, N)
    ref = _mp_singular_values(Ws)[:3]
    np.testing.assert_allclose(ref, s, rtol=1e-5)  # the construction (float frames)
    bound = 50 * N * EPS * (s[0] / ref) ** (1.0 / N)
    got = chain_svd(Ws, compute_uv=False)
    assert np.all(np.abs(got - ref) <= bound * ref), (got, ref, bound)
    u, s2, vt = chain_svd(Ws)
    assert np.all(np.abs(s2 - ref) <= bound * ref)
    np.testing.assert_allclose(u.T @ u, np.eye(3), atol=1e-13)
    np.testing.assert_allclose(vt @ vt.T, np.eye(3), atol=1e-13)
    dense = Ws[0]
    for W in Ws[1:]:
        dense = W @ dense
    np.testing.assert_allclose((u * s2) @ vt, dense, atol=1e-13 * np.linalg.norm(dense))
    # the product's own SVD cannot: its third value is rounding noise
    assert abs(np.linalg.svd(dense, compute_uv=False)[2] - ref[2]) > 1e3 * ref[2]


@pytest.mark.parametrize("N", [2, 3, 5])
def test_chain_svd_exact_construction(N):
    """A balanced chain with exactly representable factors and known singular values down to
    1e-200: W_1 = P_1 diag(r) H^T, W_j = P_j diag(r) P_{j-1}^T, W_N = H' diag(r) P_{N-1}^T with
    signed permutations P_j and H, H' orthonormal with entries +-1/2, r = (1, 1e-3, 1e-20,
    1e-200)^(1/N): the product is H' diag(r^N) H^T exactly (r^N from mpmath)."""
    k = 4
    H = 0.5 * np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]], float)
    Hn = np.vstack((H, np.zeros((2, k))))  # 6 x 4, orthonormal columns
    r = np.exp(np.log([1.0, 1e-3, 1e-20, 1e-200]) / N)
    Ps = [np.eye(k)[:, [3, 0, 2, 1]] * [1, -1, -1, 1], np.eye(k)[:, [1, 2, 3, 0]] * [-1, 1, 1, 1]]
    frames = [H] + [Ps[j % 2] for j in range(N - 1)] + [Hn]
    Ws = [(frames[j] * r) @ frames[j - 1].T for j in range(1, N + 1)]
    with mpmath.workdps(40):
        exact = np.array([float(mpmath.mpf(x) ** N) for x in r])
    got = chain_svd(Ws, compute_uv=False)
    bound = 50 * N * EPS * (1.0 / exact) ** (1.0 / N)
    assert np.all(np.abs(got - exact) <= bound * exact), (got, exact)
    assert got[-1] < 1e-190


def test_chain_svd_unaligned_graded_factors_and_scales():
    """Factors graded in unrelated frames (not a balanced chain) and a huge overall scale: the
    singular values still match mpmath to eps times the factors' own condition numbers."""
    rng = np.random.default_rng(7)
    k = 3
    Ws = [np.diag([1.0, 1e-6, 1e-9]) @ _orth(rng, 8, k).T]
    for g in ([1.0, 1e-5, 1e-7], [1e3, 1.0, 1e-4]):
        Ws.append(_orth(rng, k, k) @ np.diag(g) @ _orth(rng, k, k).T * 1e100)
    Ws.append(_orth(rng, 6, k) @ np.diag([2.0, 1.0, 1e-3]))
    ref = _mp_singular_values(Ws)[:k]
    got = chain_svd(Ws, compute_uv=False)
    kappa = sum(np.linalg.cond(W) for W in Ws)
    np.testing.assert_allclose(got, ref, rtol=50 * EPS * kappa)
    assert ref[-1] / ref[0] < 1e-25


def test_chain_svd_rejects_bad_shapes():
    with pytest.raises(ValueError, match="wide"):
        chain_svd([np.ones((3, 2)), np.ones((4, 3))])
    with pytest.raises(ValueError, match="fewer rows"):
        chain_svd([np.ones((3, 5)), np.ones((2, 3))])


def _mp_products(Cxx, Cyx, yy, A, Bt):
    """(G B, G^T A, loss) by mpmath from the covariances (exact for the stored numbers)."""
    with mpmath.workdps(60):
        C, Y, a, b = (mpmath.matrix(x.tolist()) for x in (Cxx, Cyx, A, Bt))
        W = a * b
        G = W * C - Y
        loss = (mpmath.mpf(yy) - 2 * sum(W[i, j] * Y[i, j] for i in range(W.rows)
                                         for j in range(W.cols))
                + sum((W * C)[i, j] * W[i, j] for i in range(W.rows) for j in range(W.cols))) / 2
        def to(M):
            return np.array(M.tolist(), dtype=float)

        return to(G * b.T), to(G.T * a), float(loss)


@pytest.mark.parametrize("kind", ["samples", "covariance", "autoencoder", "auto_samples"])
def test_linear_chain_products_at_graded_factors(kind):
    """G B and G^T A at W = A B^T with A, B not orthonormal and a column of B (and of A) of
    size 1e-12: every column to a few eps relative to its own size, against mpmath on the
    exact covariances of the stored data; the loss to eps (||Y||^2 + ||WX||^2)."""
    rng = np.random.default_rng(3)
    dx, n = 5, 9
    dy = dx if kind.startswith("auto") else 4
    X = rng.standard_normal((dx, n))
    Y = X if kind.startswith("auto") else rng.standard_normal((dy, n))
    form = "samples" if kind in ("samples", "auto_samples") else "covariance"
    data = as_data(X, None if kind.startswith("auto") else Y, form=form)
    assert isinstance(data, LinearData) and data.form == form
    A = rng.standard_normal((dy, 2)) * [1.0, 1e-12]
    Bt = rng.standard_normal((2, dx)) * np.array([[2.0], [1e-12]])
    with mpmath.workdps(60):  # exact X X^T, Y X^T of the stored samples
        Xm = mpmath.matrix(X.tolist())
        Ym = mpmath.matrix(Y.tolist())
        Cxx = np.array((Xm * Xm.T).tolist(), dtype=float)
        Cyx = np.array((Ym * Xm.T).tolist(), dtype=float)
    GB, GtA, loss = linear_chain_products(data, A, Bt, data.product_orientations(2))
    rGB, rGtA, rloss = _mp_products(Cxx, Cyx, float(np.sum(Y * Y)), A, Bt)
    # column-wise: the error of a column is a few eps times the column's own terms
    for got, ref, scale in ((GB, rGB, np.abs(Bt).sum(axis=1)),
                            (GtA, rGtA, np.abs(A).sum(axis=0))):
        size = scale * (np.abs(Cxx).sum() + np.abs(Cyx).sum()) * (1 + np.abs(A).sum())
        assert np.all(np.abs(got - ref) <= 100 * EPS * size[None, :])
        assert np.all(np.abs(got[:, 1] - ref[:, 1]) <= 1e-10 * np.abs(ref[:, 1]).max())
    W = A @ Bt
    assert abs(loss - rloss) <= 100 * EPS * (np.sum(Y * Y) + np.sum((W @ X) ** 2))


def test_chain_orientation_rule_sees_an_inner_factor_crossing():
    """Collapse rule (d) for the chain engine: an inner k x k factor whose determinant changed
    sign (it passed through a singular matrix, which the exact flow on M_k never does) ends the
    run "collapsed"; a rebalancing never hides it (normalize leaves such a state alone)."""
    from linrank.flows.chain import ChainSystem
    from linrank.flows.manifold_base import parse_start

    rng = np.random.default_rng(5)
    X = rng.standard_normal((6, 20))
    data = as_data(X, None)
    W0 = rng.standard_normal((6, 2)) @ rng.standard_normal((2, 6))
    p = parse_start(W0, 6, 6, 3, None)
    sysm = ChainSystem(data, 3, 2, None, None, p.s.copy())
    sysm.run_state = {}
    y0 = sysm.initial_state(p)
    assert sysm.check_stop(y0, 0.0) is None
    y1 = y0.copy()
    sysm.split(y1)[1][1] *= -1.0  # inner factor: det < 0 (and W_3 compensates: same |W|)
    sysm.split(y1)[2][:, 1] *= -1.0
    assert np.linalg.det(sysm.split(y1)[1]) < 0
    sysm.relative_control, sysm.balance_tol = True, -1.0  # would rebalance any state
    assert sysm.normalize(y0) is not y0 and sysm.rebalanced == 1
    assert sysm.normalize(y1) is y1 and sysm.rebalanced == 1
    status, message, info = sysm.check_stop(y1, 1.0)
    assert status == "collapsed" and "det W_j of an inner factor changed sign" in message


def test_manifold_flow_refuses_an_explicit_chain_beyond_its_depth_limit():
    """engine="chain" at N = 10^6 is refused before any work (the chain's cost grows faster
    than N); engine="auto" there integrates the factored engine, whose cost does not depend on
    N."""
    from linrank import manifold_flow
    from linrank.flows.riemannian import CHAIN_DEPTH_LIMIT

    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 10))
    W0 = rng.standard_normal((5, 2)) @ rng.standard_normal((2, 5))
    with pytest.raises(ValueError, match="engine='chain' at depth 1000000"):
        manifold_flow(X, None, W0, 10**6, 0.1, engine="chain")
    with pytest.raises(ValueError, match="engine='chain'"):
        manifold_flow(X, None, W0, CHAIN_DEPTH_LIMIT + 1, 0.1, engine="chain")
    r = manifold_flow(X, None, W0, 10**6, 0.01)
    assert r.status == "completed"
