"""The chain engine of riemannian_flow (linrank.flows.chain): the same flow as the factored
engine and as the layer-wise flow (Corollary 8), to within the integration tolerance; its
rebalancing keeps W; its singular values are the product's; "auto" picks it only where it is
expected to be cheaper."""

from __future__ import annotations

import numpy as np
import pytest

from linrank import (
    DeepLinearFixedRank,
    balanced_factors,
    factor_flow,
    matrix_completion_problem,
    matrix_sensing_problem,
    riemannian_flow,
)
from linrank.flows.chain import ChainSystem, chain_is_cheaper
from linrank.flows.manifold_base import parse_start
from linrank.flows.problem_data import ProblemData

TOL = {"rtol": 1e-10, "atol": 1e-13}


def _problem(kind, m, n, k, depth, seed=0):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((m, 2)) @ rng.standard_normal((2, n))
    man = DeepLinearFixedRank(m, n, k, depth)
    if kind == "completion":
        rows, cols = np.nonzero(rng.random((m, n)) < 0.5)
        return matrix_completion_problem(man, rows, cols, M[rows, cols])
    p = m * n // 2
    A = rng.standard_normal((p, m * n)) / np.sqrt(p)
    return matrix_sensing_problem(man, A, A @ M.ravel(), reduction="mean")


def _start(m, n, k, svals, seed=1):
    rng = np.random.default_rng(seed)
    u = np.linalg.qr(rng.standard_normal((m, k)))[0]
    v = np.linalg.qr(rng.standard_normal((n, k)))[0]
    return (u * np.asarray(svals, float)) @ v.T


# (m, n, k): full width square, full width rectangular (k = m < n), low rank, k = 1
SHAPES = [(6, 6, 6), (5, 8, 5), (9, 7, 3), (6, 5, 1)]


@pytest.mark.parametrize("depth", [2, 3, 5])
@pytest.mark.parametrize("shape", SHAPES, ids=[str(s) for s in SHAPES])
@pytest.mark.parametrize("kind", ["completion", "sensing"])
def test_chain_equals_factored_engine_and_layers(kind, shape, depth):
    m, n, k = shape
    P = _problem(kind, m, n, k, depth)
    svals = np.geomspace(1.0, 1e-3, k)  # spread, small ones included
    W0 = _start(m, n, k, svals)
    T = 2.0
    ref = riemannian_flow(P, W0, T, engine="factored", rtol=1e-12, atol=1e-15)
    ch = riemannian_flow(P, W0, T, engine="chain", **TOL)
    assert ch.status == "completed"
    scale = np.linalg.norm(ref.W)
    assert np.linalg.norm(ch.W - ref.W) <= 1e-7 * scale  # measured 2e-11 (layers: 1e-12..4e-11)
    # Corollary 8: the layer-wise flow from balanced factors of other widths
    fs = balanced_factors(W0, (n,) + (k + 2,) * (depth - 1) + (m,), seed=depth)
    lay = factor_flow(P, None, fs, T, rtol=1e-10, atol=1e-14)
    assert np.linalg.norm(lay.W - ch.W) <= 1e-7 * scale
    # the recorded singular values are those of the recorded product, the loss is f
    pts = riemannian_flow(P, W0, T, engine="chain", trajectory=True, **TOL)
    for x, s in zip(pts.trajectory, pts.singular_values):
        W = (x.u * x.s) @ x.vt
        np.testing.assert_allclose(s, np.linalg.svd(W, compute_uv=False)[:k],
                                   rtol=1e-10, atol=1e-13 * np.linalg.norm(W))
    np.testing.assert_allclose(pts.loss[-1], P.cost(pts.point), rtol=1e-10)


def _system(m, n, k, depth, svals, seed=2):
    P = _problem("completion", m, n, k, depth, seed)
    sysm = ChainSystem(ProblemData(P), depth, k, None, 1e-10, 1.0)
    p = parse_start(_start(m, n, k, svals, seed), m, n, depth, None)
    return P, sysm, p


@pytest.mark.parametrize("depth", [2, 4])
def test_initial_chain_is_balanced_and_rebalancing_keeps_the_product(depth):
    m, n, k = 7, 6, 3
    P, sysm, p = _system(m, n, k, depth, [2.0, 0.5, 1e-4])
    y = sysm.initial_state(p)
    Ws = sysm.split(y)
    W = Ws[0]
    for Wj in Ws[1:]:
        W = Wj @ W
    np.testing.assert_allclose(W, (p.u * p.s) @ p.vt, atol=1e-14)
    for a, b in zip(Ws[:-1], Ws[1:]):
        np.testing.assert_allclose(b.T @ b, a @ a.T, atol=1e-14)
    assert sysm.normalize(y) is y  # balanced: nothing to do
    # unbalance it (W unchanged: W_2 c, W_1 / c) beyond the tolerance: rebuilt, same W
    z = y.copy()
    Zs = sysm.split(z)
    Zs[1] *= 1.5
    Zs[0] /= 1.5
    out = sysm.normalize(z)
    assert out is not z and sysm.rebalanced == 1
    Os = sysm.split(out)
    Wn = Os[0]
    for Wj in Os[1:]:
        Wn = Wj @ Wn
    np.testing.assert_allclose(Wn, W, atol=1e-14 * np.abs(W).max() * 10)
    for a, b in zip(Os[:-1], Os[1:]):
        np.testing.assert_allclose(b.T @ b, a @ a.T, atol=1e-13)


def test_gradient_of_the_chain_against_finite_differences():
    """The slope is minus the gradient of f(W_N ... W_1) in the factors."""
    m, n, k, depth = 6, 5, 3, 3
    P, sysm, p = _system(m, n, k, depth, [1.0, 0.6, 0.3])
    y = sysm.initial_state(p) + 0.05 * np.random.default_rng(3).standard_normal(
        sysm.offsets[-1])
    K = sysm.rhs(y).K

    def f(z):
        Ws = sysm.split(z)
        W = Ws[0]
        for Wj in Ws[1:]:
            W = Wj @ W
        return P.dense_loss_and_gradient(W)[0]

    d = np.random.default_rng(4).standard_normal(y.size)
    h = 1e-5
    fd = (f(y + h * d) - f(y - h * d)) / (2 * h)
    assert fd == pytest.approx(-K @ d, rel=1e-7)


def test_engine_choice():
    assert chain_is_cheaper(30, 30, 30, 3) and not chain_is_cheaper(30, 30, 30, 1)
    assert not chain_is_cheaper(30, 30, 30, 100)
    P = _problem("completion", 6, 6, 6, 3)
    with pytest.raises(ValueError, match="depth N >= 2"):
        riemannian_flow(_problem("completion", 6, 6, 6, 1), np.eye(6), 1.0, engine="chain")
    with pytest.raises(ValueError, match="engine"):
        riemannian_flow(P, np.eye(6), 1.0, engine="layers")
    from linrank import least_squares_problem

    Q = least_squares_problem(DeepLinearFixedRank(4, 4, 2, 2), np.eye(4))
    with pytest.raises(ValueError, match="completion_problem or matrix_sensing"):
        riemannian_flow(Q, _start(4, 4, 2, [1.0, 0.5]), 1.0, engine="chain")
    # auto with a fixed-step method stays on the factored engine (bit-identical to it)
    a = riemannian_flow(P, np.eye(6), 0.05, method="Euler", step=0.01)
    b = riemannian_flow(P, np.eye(6), 0.05, method="Euler", step=0.01, engine="factored")
    assert np.array_equal(a.W, b.W)
    c = riemannian_flow(P, np.eye(6), 0.5)
    d = riemannian_flow(P, np.eye(6), 0.5, engine="chain")
    assert np.array_equal(c.W, d.W)  # auto took the chain here


def test_small_start_full_width_incremental_learning():
    """The deep matrix completion regime (full width, all singular values 1e-4 at the start,
    depth 3): the chain and the factored engine agree on W(T) and on the singular values over
    time, while s_1 grows by four orders of magnitude and the rest stay small."""
    m = n = k = 8
    P = _problem("completion", m, n, k, 3, seed=5)
    rng = np.random.default_rng(6)
    Q = np.linalg.qr(rng.standard_normal((m, m)))[0]
    W0 = 1e-4 * Q
    grid = np.linspace(0, 30.0, 7)
    ref = riemannian_flow(P, W0, 30.0, engine="factored", t_eval=grid, rtol=1e-10, atol=1e-16)
    ch = riemannian_flow(P, W0, 30.0, engine="chain", t_eval=grid, rtol=1e-9, atol=1e-16)
    assert ch.singular_values[-1, 0] > 1.0 and ref.singular_values[-1, 0] > 1.0
    np.testing.assert_allclose(ch.singular_values, ref.singular_values, rtol=1e-5,
                               atol=1e-7 * ref.singular_values[-1, 0])
    assert np.linalg.norm(ch.W - ref.W) <= 1e-6 * np.linalg.norm(ref.W)


@pytest.mark.parametrize("engine", ["chain", "factored"])
def test_overflowing_stages_end_the_run_cleanly(engine):
    """Data at 1e-150 run to t = 1e200: stages whose loss overflows are rejected steps, and the
    run ends with status "failed" and its trajectory, not with an exception."""
    m, n, k = 8, 6, 3
    rng = np.random.default_rng(0)
    M = rng.standard_normal((m, 2)) @ rng.standard_normal((2, n))
    rows, cols = np.nonzero(rng.random((m, n)) < 0.6)
    sc = 1e-150
    P = matrix_completion_problem(DeepLinearFixedRank(m, n, k, 3), rows, cols,
                                  sc * M[rows, cols])
    u = np.linalg.qr(rng.standard_normal((m, k)))[0]
    v = np.linalg.qr(rng.standard_normal((n, k)))[0]
    r = riemannian_flow(P, (u, sc * np.array([1.0, 0.5, 0.1]), v.T), 1e200, engine=engine)
    assert r.status == "failed" and len(r.t) > 1 and np.all(np.isfinite(r.loss))
