"""Tests of what the factorization problems share (linrank.problems.base): reduction="mean"
against finite differences, overflow refused, and every gradient-based pymanopt optimizer
stopping cleanly at a zero gradient."""

import warnings

import numpy as np
import pymanopt
import pytest

from linrank import DeepLinearFixedRank, matrix_completion_problem, matrix_sensing_problem


def _problems(reduction, seed=0, m=6, n=5, k=2, depth=3):
    rng = np.random.default_rng(seed)
    man = DeepLinearFixedRank(m, n, k, depth)
    mask = rng.random((m, n)) < 0.5
    rows, cols = np.nonzero(mask)
    comp = matrix_completion_problem(man, rows, cols, rng.standard_normal(rows.size),
                                     reduction=reduction)
    p = 7
    A = rng.standard_normal((p, m * n))
    sens = matrix_sensing_problem(man, A, rng.standard_normal(p), reduction=reduction)
    sens_fn = matrix_sensing_problem(
        man, (lambda W: A @ W.ravel(), lambda r: (A.T @ r).reshape(m, n)),
        rng.standard_normal(p), reduction=reduction)
    return man, {"completion": (comp, rows.size), "sensing": (sens, p),
                 "sensing (callables)": (sens_fn, p)}


@pytest.mark.parametrize("name", ["completion", "sensing", "sensing (callables)"])
def test_mean_reduction_gradient_and_hessian_by_finite_differences(name):
    """f, grad f and Hess f of reduction="mean": central differences of f along a dense
    direction give <grad f, Z> (any rank: dense_loss_and_gradient), and central differences of
    the Euclidean gradient along the curve W(t) = u (S + t M) v^T give the Hessian product."""
    man, probs = _problems("mean")
    P, p = probs[name]
    rng = np.random.default_rng(1)
    W = rng.standard_normal((man.m, man.n))
    Z = rng.standard_normal((man.m, man.n))
    h = 1e-5
    fp = P.dense_loss_and_gradient(W + h * Z)[0]
    fm = P.dense_loss_and_gradient(W - h * Z)[0]
    _, G = P.dense_loss_and_gradient(W)
    G = G.toarray() if hasattr(G, "toarray") else np.asarray(G)
    # f is quadratic: the central difference is exact up to rounding of f (~eps |f| / h)
    assert (fp - fm) / (2 * h) == pytest.approx(np.sum(G * Z), rel=1e-7, abs=1e-9)
    # Hessian along a tangent direction at a point
    x = man.random_point()
    xi = man.random_tangent_vector(x)
    H = P.euclidean_hessian(x, xi)
    H = H.toarray() if hasattr(H, "toarray") else np.asarray(H)
    Wx, Xi = man.to_dense(x), man.tangent_to_dense(x, xi)
    Gp = P.dense_loss_and_gradient(Wx + h * Xi)[1]
    Gm = P.dense_loss_and_gradient(Wx - h * Xi)[1]
    dG = (Gp - Gm) / (2 * h)
    dG = dG.toarray() if hasattr(dG, "toarray") else np.asarray(dG)
    np.testing.assert_allclose(H, dG, rtol=1e-6, atol=1e-8 * np.abs(H).max())
    # and mean = sum / p exactly (loss, gradient products, Riemannian gradient)
    Ps = _problems("sum")[1][name][0]
    assert P.cost(x) == pytest.approx(Ps.cost(x) / p, rel=1e-14)
    for a, b in zip(P.gradient_products(x), Ps.gradient_products(x)):
        np.testing.assert_allclose(a, np.asarray(b) / p, rtol=1e-13, atol=1e-15)
    for a, b in zip(P.riemannian_gradient(x), Ps.riemannian_gradient(x)):
        np.testing.assert_allclose(a, b / p, rtol=1e-12, atol=1e-15)


def test_reduction_refused_and_empty_mean():
    man = DeepLinearFixedRank(3, 3, 1, 2)
    with pytest.raises(ValueError, match="reduction"):
        matrix_completion_problem(man, [0], [0], [1.0], reduction="avg")
    with pytest.raises(ValueError, match="reduction"):
        matrix_sensing_problem(man, np.ones((1, 9)), [1.0], reduction=None)
    E = matrix_completion_problem(man, [], [], [], reduction="mean")
    x = man.random_point()
    assert E.cost(x) == 0.0


def test_completion_loss_overflow_is_an_error_not_inf():
    man = DeepLinearFixedRank(4, 4, 2, 2)
    P = matrix_completion_problem(man, [0, 1, 2], [0, 1, 3], [1e200, -3e200, 2e200])
    x = man.random_point()
    with pytest.raises(ValueError, match="loss overflows"):
        P.cost(x)
    # the flows' products: inf (a rejected stage or divergence there), never a wrong finite value
    assert P.gradient_products(x)[2] == np.inf
    # large but representable: finite and exact to rounding (the plain sum overflows)
    big = matrix_completion_problem(man, [0, 1], [0, 1], [1.2e154, 1.2e154])
    u = np.eye(4)[:, :2]
    x0 = (u, np.array([1e-300, 1e-300]), u.T)
    assert big.cost(x0) == pytest.approx(1.2e154**2, rel=1e-14)
    Ps = matrix_sensing_problem(man, np.ones((2, 16)), [1e300, -1e300])
    with pytest.raises(ValueError, match="loss overflows"):
        Ps.cost(x)


@pytest.mark.parametrize("depth", [1, 3])
@pytest.mark.parametrize("optimizer", ["SteepestDescent", "ConjugateGradient", "TrustRegions"])
def test_optimizers_stop_cleanly_on_a_zero_gradient(depth, optimizer):
    """An empty observation set (f = 0) and a start at an exact interpolant: the gradient is
    exactly zero; every gradient-based optimizer returns the start with the gradient-norm stop,
    without an exception, a warning or a NaN (before: ZeroDivisionError, NaN step)."""
    man = DeepLinearFixedRank(6, 5, 2, depth)
    np.random.seed(0)
    x0 = man.random_point()
    empty = matrix_completion_problem(man, [], [], [])
    rows, cols = np.nonzero(np.random.default_rng(0).random((6, 5)) < 0.5)
    exact = matrix_completion_problem(man, rows, cols, man.to_dense(x0)[rows, cols])
    exact = matrix_completion_problem(man, rows, cols, exact.observed(x0))  # bitwise f = 0
    for P in (empty, exact):
        assert all(not np.any(b) for b in P.riemannian_gradient(x0))
        opt = getattr(pymanopt.optimizers, optimizer)(verbosity=0, max_iterations=5)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            res = opt.run(P, initial_point=x0)
        assert "grad norm" in res.stopping_criterion
        assert res.cost == 0.0
        assert res.gradient_norm < 1e-150
        for a, b in zip(res.point, x0):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-14)
    # the norm of the zero vector is the documented floor; a nonzero vector is unaffected
    z = man.zero_vector(x0)
    assert man.norm(x0, z) == pytest.approx(np.sqrt(np.finfo(float).tiny))
    v = man.random_tangent_vector(x0)
    assert man.inner_product(x0, z, v) == 0.0
    assert man.norm(x0, v) == pytest.approx(1.0, rel=1e-12)


def test_checkpoint_of_a_sum_loss_is_not_resumed_for_the_mean(tmp_path):
    """The reduction is part of the problem's identity: a checkpoint written for the sum is
    refused for the mean of the same data (another flow, by a time scale)."""
    from linrank import riemannian_flow

    man, probs = _problems("sum")
    P, _ = probs["completion"]
    Pm = _problems("mean")[1]["completion"][0]
    x0 = man.random_point()
    path = tmp_path / "ck.npz"
    riemannian_flow(P, x0, 0.5, checkpoint=path)
    with pytest.raises(ValueError, match="different run"):
        riemannian_flow(Pm, x0, 0.5, checkpoint=path, resume=True)
