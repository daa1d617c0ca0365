"""matrix_completion_problem / matrix_sensing_problem against independent references.

References: the dense loss written with numpy on W = u diag(s) vt, autograd on the dense W
(gradient and Hessian-vector product, routed through the manifold), and finite differences
(linrank.diagnostics slope tests).
"""

import autograd.numpy as anp
import numpy as np
import pymanopt
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import aslinearoperator

from linrank import (
    DeepLinearFixedRank,
    autograd_problem,
    check_gradient,
    check_hessian,
    matrix_completion_problem,
    matrix_sensing_problem,
)


def observed_set(m, n, frac, rng):
    mask = rng.random((m, n)) < frac
    rows, cols = np.nonzero(mask)
    perm = rng.permutation(rows.size)  # unsorted input
    return rows[perm], cols[perm]


def tangent_error(man, x, a, b):
    """max-abs difference of two tangent vectors relative to the size of b."""
    scale = max(np.max(np.abs(np.concatenate([np.ravel(t) for t in b]))), 1e-300)
    return max(np.max(np.abs(p - q)) for p, q in zip(a, b)) / scale


SHAPES = [(7, 5, 2, 1), (7, 5, 2, 2), (6, 9, 3, 3), (8, 6, 6, 5), (5, 5, 5, 2)]  # m, n, k, N


@pytest.mark.parametrize("m,n,k,depth", SHAPES)
def test_completion_matches_dense_and_autograd(m, n, k, depth):
    rng = np.random.default_rng(m * 100 + n * 10 + depth)
    man = DeepLinearFixedRank(m, n, k, depth)
    rows, cols = observed_set(m, n, 0.6, rng)
    vals = rng.standard_normal(rows.size)
    P = matrix_completion_problem(man, rows, cols, vals)
    ref = autograd_problem(man, lambda W: 0.5 * anp.sum((W[rows, cols] - vals) ** 2))
    np.random.seed(depth)
    x = man.random_point()
    xi = man.random_tangent_vector(x)
    W = man.to_dense(x)
    # cost against the dense numpy loss
    assert P.cost(x) == pytest.approx(0.5 * np.sum((W[rows, cols] - vals) ** 2), rel=1e-13)
    # Euclidean gradient: a sparse matrix equal to the masked residual
    G = P.euclidean_gradient(x)
    assert sp.issparse(G)
    Gd = np.zeros((m, n))
    Gd[rows, cols] = W[rows, cols] - vals
    np.testing.assert_allclose(G.toarray(), Gd, rtol=0, atol=1e-14)
    # Euclidean Hessian-vector product: xi on the observed set
    Z = man.tangent_to_dense(x, xi)
    Hd = np.zeros((m, n))
    Hd[rows, cols] = Z[rows, cols]
    np.testing.assert_allclose(P.euclidean_hessian(x, xi).toarray(), Hd, rtol=0, atol=1e-14)
    # Riemannian gradient and Hessian against autograd on the dense W
    assert tangent_error(man, x, P.riemannian_gradient(x), ref.riemannian_gradient(x)) < 1e-12
    assert tangent_error(man, x, P.riemannian_hessian(x, xi), ref.riemannian_hessian(x, xi)) < 1e-11


@pytest.mark.parametrize("m,n,k,depth", SHAPES)
def test_completion_slope_tests(m, n, k, depth):
    rng = np.random.default_rng(depth)
    man = DeepLinearFixedRank(m, n, k, depth)
    rows, cols = observed_set(m, n, 0.5, rng)
    P = matrix_completion_problem(man, rows, cols, rng.standard_normal(rows.size))
    np.random.seed(3)
    x = man.random_point()
    assert check_gradient(P, x).passed
    assert check_hessian(P, x).passed


def sensing_operators(A, m, n):
    return {
        "array": A,
        "sparse": sp.csr_matrix(A),
        "linear_operator": aslinearoperator(A),
        "callables": (lambda W: A @ W.ravel(), lambda r: (A.T @ r).reshape(m, n)),
    }


@pytest.mark.parametrize("m,n,k,depth", SHAPES)
@pytest.mark.parametrize("p_factor", [0.5, 2.0])  # 2.0: more measurements than unknowns (Gram)
def test_sensing_matches_reference(m, n, k, depth, p_factor):
    rng = np.random.default_rng(depth + 17)
    man = DeepLinearFixedRank(m, n, k, depth)
    p = int(p_factor * m * n)
    A = rng.standard_normal((p, m * n)) / np.sqrt(p)
    y = rng.standard_normal(p)
    Als = A.reshape(p, m, n)  # the sensing matrices A_l: row-major convention
    ref = autograd_problem(
        man, lambda W: 0.5 * anp.sum((anp.einsum("lij,ij->l", Als, W) - y) ** 2)
    )
    np.random.seed(depth)
    x = man.random_point()
    xi = man.random_tangent_vector(x)
    W = man.to_dense(x)
    r = np.einsum("lij,ij->l", Als, W) - y
    for name, op in sensing_operators(A, m, n).items():
        P = matrix_sensing_problem(man, op, y)
        assert P.cost(x) == pytest.approx(0.5 * r @ r, rel=1e-12), name
        np.testing.assert_allclose(
            P.euclidean_gradient(x), np.einsum("lij,l->ij", Als, r), rtol=1e-11, atol=1e-12
        )
        assert tangent_error(man, x, P.riemannian_gradient(x), ref.riemannian_gradient(x)) < 1e-11
        err = tangent_error(man, x, P.riemannian_hessian(x, xi), ref.riemannian_hessian(x, xi))
        assert err < 1e-11, name
    P = matrix_sensing_problem(man, A, y)
    assert check_gradient(P, x).passed
    assert check_hessian(P, x).passed


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_trust_regions_solves_completion(depth):
    """TrustRegions with the exact Hessian converges fast (Newton steps near the minimizer) from a
    start 10% away from the rank-2 matrix, 70% of whose entries are observed. (From random starts
    rank-constrained completion can drift to diverging singular values: a property of the loss,
    seen at every depth, not tested here.)"""
    rng = np.random.default_rng(depth)
    m, n, k = 12, 9, 2
    M = rng.standard_normal((m, k)) @ rng.standard_normal((k, n))
    rows, cols = observed_set(m, n, 0.7, rng)
    man = DeepLinearFixedRank(m, n, k, depth, retraction="polar")
    P = matrix_completion_problem(man, rows, cols, M[rows, cols])
    E = rng.standard_normal((m, n))
    x0 = man.point_from_matrix(M + 0.1 * np.linalg.norm(M) / np.linalg.norm(E) * E)
    opt = pymanopt.optimizers.TrustRegions(verbosity=0, min_gradient_norm=1e-10, max_iterations=30)
    res = opt.run(P, initial_point=x0)
    assert res.gradient_norm <= 1e-10
    assert res.iterations <= 15
    assert np.linalg.norm(man.to_dense(res.point) - M) <= 1e-8 * np.linalg.norm(M)


def test_trust_regions_solves_sensing():
    rng = np.random.default_rng(4)
    m, n, k = 8, 6, 2
    M = rng.standard_normal((m, k)) @ rng.standard_normal((k, n))
    p = 40  # < m n = 48, > dim M_k = 24
    A = rng.standard_normal((p, m * n))
    man = DeepLinearFixedRank(m, n, k, 2)
    P = matrix_sensing_problem(man, A, A @ M.ravel())
    np.random.seed(0)
    opt = pymanopt.optimizers.TrustRegions(verbosity=0, min_gradient_norm=1e-10, max_iterations=200)
    res = opt.run(P)
    assert res.cost < 1e-18
    assert np.linalg.norm(man.to_dense(res.point) - M) <= 1e-6 * np.linalg.norm(M)


def test_completion_never_forms_the_dense_matrix():
    """m = n = 10^6 (a dense W would need 8 TB): cost, gradient and Hessian still work."""
    m = n = 10**6
    k = 3
    rng = np.random.default_rng(0)
    rows = rng.integers(0, m, 2000)
    cols = rng.integers(0, n, 2000)
    keep = np.unique(rows * n + cols, return_index=True)[1]
    rows, cols = rows[keep], cols[keep]
    man = DeepLinearFixedRank(m, n, k, 4)
    u = np.linalg.qr(rng.standard_normal((m, k)))[0]
    vt = np.linalg.qr(rng.standard_normal((n, k)))[0].T
    x = (u, np.array([3.0, 2.0, 1.0]), vt)
    W_obs = np.einsum("ij,ij->i", u[rows] * x[1], vt.T[cols])
    vals = rng.standard_normal(rows.size)
    P = matrix_completion_problem(man, rows, cols, vals)
    assert P.cost(x) == pytest.approx(0.5 * np.sum((W_obs - vals) ** 2), rel=1e-12)
    g = P.riemannian_gradient(x)
    xi = man.zero_vector(x)
    xi = type(xi)(xi.Up, np.eye(k), xi.Vp)
    h = P.riemannian_hessian(x, xi)
    assert all(np.all(np.isfinite(b)) for b in (*g, *h))


def test_completion_order_and_cache():
    rng = np.random.default_rng(1)
    m, n, k = 6, 7, 2
    man = DeepLinearFixedRank(m, n, k, 3)
    rows, cols = observed_set(m, n, 0.5, rng)
    vals = rng.standard_normal(rows.size)
    P = matrix_completion_problem(man, rows, cols, vals)
    perm = rng.permutation(rows.size)
    Q = matrix_completion_problem(man, rows[perm], cols[perm], vals[perm])
    np.random.seed(0)
    x = man.random_point()
    assert P.cost(x) == Q.cost(x)
    # a point changed in place must not hit the cache of the old one
    c0 = P.cost(x)
    x.s[0] *= 2.0
    W = man.to_dense(x)
    assert P.cost(x) != c0
    assert P.cost(x) == pytest.approx(0.5 * np.sum((W[rows, cols] - vals) ** 2), rel=1e-13)
    # the empty observed set is valid: f = 0, gradient 0
    E = matrix_completion_problem(man, [], [], [])
    assert E.cost(x) == 0.0
    assert all(np.all(b == 0) for b in E.riemannian_gradient(x))


def test_completion_bad_input():
    man = DeepLinearFixedRank(4, 5, 2, 2)
    ok = dict(rows=[0, 1, 3], cols=[0, 4, 2], values=[1.0, 2.0, 3.0])

    def build(**kw):
        return matrix_completion_problem(man, **{**ok, **kw})

    with pytest.raises(ValueError, match=r"rows\[1\] = 4 is out of range"):
        build(rows=[0, 4, 3])
    with pytest.raises(ValueError, match="out of range"):
        build(cols=[0, -1, 2])
    with pytest.raises(ValueError, match=r"duplicated observation of entry \(1, 4\)"):
        build(rows=[1, 1, 3], cols=[4, 4, 2])
    with pytest.raises(ValueError, match="finite"):
        build(values=[1.0, np.nan, 3.0])
    with pytest.raises(ValueError, match="finite"):
        build(values=[1.0, np.inf, 3.0])
    with pytest.raises(TypeError, match="integers"):
        build(rows=[0.0, 1.0, 3.0])
    with pytest.raises(TypeError, match="integers"):
        build(rows=[True, False, True])
    with pytest.raises(ValueError, match="equal lengths"):
        build(values=[1.0, 2.0])
    with pytest.raises(ValueError, match="1-d"):
        build(rows=[[0, 1, 3]])
    with pytest.raises(TypeError, match="real"):
        build(values=[1j, 2.0, 3.0])
    with pytest.raises(TypeError, match="DeepLinearFixedRank"):
        matrix_completion_problem(pymanopt.manifolds.FixedRankEmbedded(4, 5, 2), **ok)
    P = build()
    with pytest.raises(ValueError, match="shapes"):
        P.cost((np.zeros((5, 2)), np.ones(2), np.zeros((2, 5))))


def test_sensing_bad_input():
    m, n, k = 3, 4, 2
    man = DeepLinearFixedRank(m, n, k, 2)
    rng = np.random.default_rng(0)
    A = rng.standard_normal((5, m * n))
    y = rng.standard_normal(5)
    with pytest.raises(ValueError, match="row-major"):
        matrix_sensing_problem(man, A[:, :-1], y)
    with pytest.raises(ValueError, match="row-major"):
        matrix_sensing_problem(man, A, y[:-1])
    with pytest.raises(ValueError, match="finite"):
        matrix_sensing_problem(man, A, np.where(np.arange(5) == 2, np.nan, y))
    Abad = A.copy()
    Abad[0, 0] = np.inf
    with pytest.raises(ValueError, match="finite"):
        matrix_sensing_problem(man, Abad, y)
    # an "adjoint" in column-major order is not the adjoint of the row-major forward map
    wrong = (lambda W: A @ W.ravel(), lambda r: (A.T @ r).reshape(n, m).T)
    with pytest.raises(ValueError, match="not the adjoint"):
        matrix_sensing_problem(man, wrong, y)
    with pytest.raises(ValueError, match="shape"):
        matrix_sensing_problem(man, (lambda W: (A @ W.ravel())[:4],
                                     lambda r: (A.T @ r).reshape(m, n)), y)
    with pytest.raises(TypeError, match="forward, adjoint"):
        matrix_sensing_problem(man, "A", y)
    with pytest.raises(TypeError, match="DeepLinearFixedRank"):
        matrix_sensing_problem(pymanopt.manifolds.FixedRankEmbedded(m, n, k), A, y)
