"""riemannian_flow (any loss on M_k) and factor_flow with a problem as the loss (issue 11).

References: the layer-wise flow from balanced factors (Corollary 8's chain rule holds for any
loss of the product), manifold_flow for the least-squares loss, hand-written gradient descent on
the layers, Remark 33's closed-form decay.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
import pymanopt
import pytest

from linrank import (
    DeepLinearFixedRank,
    autograd_problem,
    balanced_factors,
    factor_flow,
    least_squares_problem,
    manifold_flow,
    matrix_completion_problem,
    matrix_sensing_problem,
    riemannian_flow,
)
from linrank.flows.chain import ChainSystem
from linrank.flows.factored import FactoredSystem
from linrank.flows.problem_data import ProblemData

TOL = {"rtol": 1e-10, "atol": 1e-12}


def _low_rank(rng, m, n, k, svals):
    u = np.linalg.qr(rng.standard_normal((m, k)))[0]
    v = np.linalg.qr(rng.standard_normal((n, k)))[0]
    return (u * np.asarray(svals, dtype=float)) @ v.T


def completion(m, n, k, depth, frac=0.5, seed=0):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((m, 2)) @ rng.standard_normal((2, n))
    rows, cols = np.nonzero(rng.random((m, n)) < frac)
    return matrix_completion_problem(DeepLinearFixedRank(m, n, k, depth), rows, cols,
                                     M[rows, cols])


def sensing(m, n, k, depth, seed=0):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((m, 2)) @ rng.standard_normal((2, n))
    p = m * n // 2
    A = rng.standard_normal((p, m * n)) / np.sqrt(p)
    return matrix_sensing_problem(DeepLinearFixedRank(m, n, k, depth), A, A @ M.ravel())


# (m, n, k, hidden widths): unequal widths, rectangular
CASES = {2: (7, 5, 3, (4,)), 3: (6, 8, 2, (5, 3)), 5: (5, 6, 3, (4, 7, 3, 5))}


@pytest.mark.parametrize("depth", [2, 3, 5])
@pytest.mark.parametrize("make", [completion, sensing], ids=["completion", "sensing"])
def test_corollary8_for_any_loss(depth, make):
    """From balanced factors the product of the layer-wise flow follows riemannian_flow."""
    m, n, k, widths = CASES[depth]
    P = make(m, n, k, depth, seed=depth)
    W0 = _low_rank(np.random.default_rng(depth), m, n, k, np.linspace(0.8, 0.3, k))
    fs = balanced_factors(W0, (n, *widths, m), seed=1)
    rf = factor_flow(P, None, fs, 3.0, conserved=True, **TOL)
    rm = riemannian_flow(P, W0, 3.0, **TOL)
    assert rf.status == rm.status == "completed"
    rel = np.linalg.norm(rf.W - rm.W) / np.linalg.norm(rm.W)
    assert rel <= 1e-6, rel
    assert rm.loss[-1] < 0.5 * rm.loss[0]  # the run did move
    assert rf.loss[-1] == pytest.approx(P.dense_loss_and_gradient(rf.W)[0], rel=1e-12)
    assert rm.loss[-1] == pytest.approx(rf.loss[-1], rel=1e-6)
    assert rf.conserved_drift.max() <= 1e-8


def test_full_rank_and_tiny_singular_values():
    """k = min(m, n) (deep matrix factorization) from singular values 1e-6, depth 2: two singular
    values are learned, the rest stay small; the two sides of Corollary 8 still agree."""
    m, n, depth = 6, 5, 2
    k = min(m, n)
    P = completion(m, n, k, depth, frac=0.8, seed=3)
    W0 = _low_rank(np.random.default_rng(3), m, n, k, 1e-6 * np.ones(k))
    fs = balanced_factors(W0, (n, 6, m), seed=2)
    t_end = 30.0
    rm = riemannian_flow(P, W0, t_end, **TOL)
    rf = factor_flow(P, None, fs, t_end, **TOL)
    assert rm.status == rf.status == "completed"
    sv = rm.singular_values
    assert np.all(sv[0] == pytest.approx(1e-6, rel=1e-12))
    assert sv[-1, 1] > 1.0 and sv[-1, -1] < 1e-4  # learned two, the smallest stayed small
    assert rm.loss[-1] < 1e-3 * rm.loss[0]
    assert np.linalg.norm(rf.W - rm.W) <= 1e-6 * np.linalg.norm(rm.W)


def test_least_squares_problem_is_manifold_flow():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((6, 15)) / np.sqrt(6)
    Y = rng.standard_normal((4, 15))
    W0 = _low_rank(rng, 4, 6, 2, [0.9, 0.5])
    for depth in (1, 2, 4):
        P = least_squares_problem(DeepLinearFixedRank(4, 6, 2, depth), X, Y)
        r1 = riemannian_flow(P, W0, 2.0, **TOL)
        r2 = manifold_flow(X, Y, W0, depth, 2.0, **TOL)
        assert np.linalg.norm(r1.W - r2.W) <= 1e-8 * np.linalg.norm(r2.W), depth
        np.testing.assert_allclose(r1.loss[-1], r2.loss[-1], rtol=1e-8)


def test_generic_problem_through_its_riemannian_gradient():
    """A pymanopt autodiff cost of (u, s, vt) (no dense gradient): riemannian_flow recovers
    P_T grad_E f = A^{-1} grad f and follows the same flow as the explicit problem."""
    m, n, k, depth = 6, 5, 2, 3
    P = completion(m, n, k, depth, seed=7)
    rows, cols, vals = P.rows, P.cols, P.values
    man = P.manifold

    @pymanopt.function.autograd(man)
    def cost(u, s, vt):
        W = anp.dot(u * s, vt)
        return 0.5 * anp.sum((W[rows, cols] - vals) ** 2)

    G = pymanopt.Problem(man, cost)
    W0 = _low_rank(np.random.default_rng(7), m, n, k, [0.7, 0.4])
    r1 = riemannian_flow(G, W0, 2.0, **TOL)
    r2 = riemannian_flow(P, W0, 2.0, **TOL)
    assert np.linalg.norm(r1.W - r2.W) <= 1e-8 * np.linalg.norm(r2.W)
    # the autograd problem on the dense W takes the ambient route
    A = autograd_problem(man, lambda W: 0.5 * anp.sum((W[rows, cols] - vals) ** 2))
    r3 = riemannian_flow(A, W0, 2.0, **TOL)
    assert np.linalg.norm(r3.W - r2.W) <= 1e-8 * np.linalg.norm(r2.W)
    # the layer-wise flow needs the whole Euclidean gradient: refused for a cost of factors
    with pytest.raises(TypeError, match="dense product"):
        factor_flow(G, None, balanced_factors(W0, (n, 3, 3, m), seed=0), 1.0)


def test_point_products_against_dense_gradient():
    for P in (completion(7, 6, 3, 2, seed=1), sensing(5, 4, 2, 3, seed=2)):
        man = P.manifold
        np.random.seed(0)
        x = man.random_point()
        W = man.to_dense(x)
        loss, G = P.dense_loss_and_gradient(W)
        G = G.toarray() if hasattr(G, "toarray") else G
        Gv, Gtu, f = ProblemData(P).point_products(*x)
        np.testing.assert_allclose(Gv, G @ x.vt.T, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(Gtu, G.T @ x.u, rtol=1e-12, atol=1e-13)
        assert f == pytest.approx(loss, rel=1e-13)


def test_euler_on_layers_is_gradient_descent():
    """factor_flow(problem, ..., method="Euler", step=h) is W_i <- W_i - h dL/dW_i exactly."""
    P = completion(6, 5, 2, 3, seed=4)
    W0 = _low_rank(np.random.default_rng(4), 6, 5, 2, [0.8, 0.5])
    fs = balanced_factors(W0, (5, 4, 3, 6), seed=3)
    h, steps = 0.05, 7
    r = factor_flow(P, None, fs, h * steps, method="Euler", step=h)
    Ws = [W.copy() for W in fs]
    for _ in range(steps):
        W = Ws[2] @ Ws[1] @ Ws[0]
        G = P.dense_loss_and_gradient(W)[1].toarray()
        grads = [(Ws[2] @ Ws[1]).T @ G, Ws[2].T @ G @ Ws[0].T, G @ (Ws[1] @ Ws[0]).T]
        Ws = [Wi - h * gi for Wi, gi in zip(Ws, grads)]
    for a, b in zip(r.factors, Ws):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert r.nsteps == steps


def test_collapse_is_reported():
    """Remark 33's start as a problem: W = -u1 u1^T decays to 0; with collapse_tol the run stops
    "collapsed" where s fell by that factor (the same rule as manifold_flow's)."""
    rng = np.random.default_rng(33)
    U = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    X = U @ np.diag(np.sqrt([2.0, 1.0, 0.7, 0.4])) @ np.linalg.qr(rng.standard_normal((8, 4)))[0].T
    u1 = U[:, :1]
    P = least_squares_problem(DeepLinearFixedRank(4, 4, 1, 2), X)
    with pytest.warns(RuntimeWarning, match="Remark 33"):
        r = riemannian_flow(P, -u1 @ u1.T, 30.0, rtol=1e-10, atol=1e-16, collapse_tol=1e-10)
    assert r.status == "collapsed" and r.collapse["value"] < 1e-10
    np.testing.assert_allclose(r.singular_values[:, 0], 1.0 / (2.0 * np.exp(4.0 * r.t) - 1.0),
                               rtol=1e-5)


@pytest.mark.parametrize("engine", ["factored", "chain"])
def test_checkpoint_resume_is_bit_identical(tmp_path, monkeypatch, engine):
    """Bit-identity is promised for a run resumed in the same environment (machine, BLAS kernel,
    thread count) and tested here within one process, where it holds on every kernel."""
    P = completion(6, 5, 2, 3, seed=9)
    W0 = _low_rank(np.random.default_rng(9), 6, 5, 2, [0.8, 0.5])
    cls = {"factored": FactoredSystem, "chain": ChainSystem}[engine]

    def call(**kw):
        return riemannian_flow(P, W0, 5.0, trajectory=True, engine=engine, **kw)

    full = call()
    path = tmp_path / "ck.npz"
    orig = cls.rhs
    count = {"n": 0}

    def rhs(self, y):
        count["n"] += 1
        if count["n"] == 60:
            raise KeyboardInterrupt
        return orig(self, y)

    with monkeypatch.context() as mp:
        mp.setattr(cls, "rhs", rhs)
        with pytest.warns(UserWarning, match="interrupted"):
            part = call(checkpoint=path, checkpoint_steps=3)
    assert part.status == "interrupted" and 0 < part.t_final < 5.0
    resumed = call(checkpoint=path, checkpoint_steps=3)
    assert resumed.status == "completed"
    for key in ("t", "loss", "grad_norm", "singular_values"):
        assert np.array_equal(getattr(resumed, key), getattr(full, key)), key
    assert np.array_equal(resumed.W, full.W)
    # another loss (other observed values) is another run: refused
    Q = matrix_completion_problem(P.manifold, P.rows, P.cols, P.values + 1.0)
    with pytest.raises(ValueError, match="different run"):
        riemannian_flow(Q, W0, 5.0, trajectory=True, checkpoint=path, engine=engine)


def test_riemannian_flow_bad_input():
    P = completion(6, 5, 2, 2)
    W0 = _low_rank(np.random.default_rng(0), 6, 5, 2, [0.8, 0.5])
    with pytest.raises(TypeError, match="pymanopt.Problem"):
        riemannian_flow("problem", W0, 1.0)
    other = pymanopt.manifolds.FixedRankEmbedded(6, 5, 2)

    @pymanopt.function.numpy(other)
    def cost(u, s, vt):
        return 0.0

    with pytest.raises(TypeError, match="DeepLinearFixedRank"):
        riemannian_flow(pymanopt.Problem(other, cost), W0, 1.0)
    with pytest.raises(ValueError, match="rank"):
        riemannian_flow(P, _low_rank(np.random.default_rng(1), 6, 5, 3, [1, 1, 1]), 1.0)
    with pytest.raises(ValueError, match="shape"):
        riemannian_flow(P, np.ones((5, 6)), 1.0)
    with pytest.raises(ValueError, match="t_end"):
        riemannian_flow(P, W0, -1.0)
    with pytest.raises(ValueError, match="leave Y"):
        factor_flow(P, np.ones((6, 3)), balanced_factors(W0, (5, 3, 6), seed=0), 1.0)
    with pytest.raises(ValueError):
        factor_flow(P, None, balanced_factors(W0.T, (6, 3, 5), seed=0), 1.0)


@pytest.mark.parametrize("m,k", [(12, 3), (500, 10)])  # dense scratch / sparse products
def test_completion_gradient_products_both_paths(m, k):
    rng = np.random.default_rng(m)
    lin = rng.choice(m * m, size=4 * m, replace=False)
    rows, cols = np.divmod(lin, m)
    man = DeepLinearFixedRank(m, m, k, 3)
    P = matrix_completion_problem(man, rows, cols, rng.standard_normal(rows.size))
    assert (P._lin is None) == (m * m * k > 2_000_000)
    np.random.seed(1)
    for _ in range(2):  # a second point: the scratch must not keep the first one's values
        x = man.random_point()
        G = P.dense_loss_and_gradient(man.to_dense(x))[1].toarray()
        Gv, Gtu, _ = P.gradient_products(x)
        np.testing.assert_allclose(Gv, G @ x.vt.T, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(Gtu, G.T @ x.u, rtol=1e-12, atol=1e-13)
