"""The integrator's fixed-step semantics (plain gradient descent, step for step) and the checks
of the flows' keyword options (linrank.flows.integrator, linrank.flows.options)."""

from __future__ import annotations

import numpy as np
import pytest

from linrank import (
    DeepLinearFixedRank,
    balanced_factors,
    factor_flow,
    gaussian_data,
    least_squares_problem,
    manifold_flow,
    matrix_completion_problem,
    riemannian_flow,
)
from linrank.data import as_data
from linrank.metric import dense_A


def _layer_gd(grad_at, Ws, h, steps):
    """Gradient descent on the layers by hand: W_i <- W_i - h W_{i+1}^T..W_N^T G W_1^T..W_{i-1}^T
    (the products in the order of the flow's right-hand side)."""
    Ws = [W.copy() for W in Ws]
    N = len(Ws)
    for _ in range(steps):
        prefix = [Ws[0]]
        for j in range(1, N):
            prefix.append(Ws[j] @ prefix[-1])
        G = grad_at(prefix[-1])
        grads = [None] * N
        T = G
        for i in range(N - 1, -1, -1):
            grads[i] = T @ prefix[i - 1].T if i > 0 else T
            if i > 0:
                T = Ws[i].T @ T
        Ws = [W - h * g for W, g in zip(Ws, grads)]
    return Ws


def _completion(seed=3):
    rng = np.random.default_rng(seed)
    m, n = 7, 6
    M = rng.standard_normal((m, 2)) @ rng.standard_normal((2, n))
    mask = rng.random((m, n)) < 0.6
    rows, cols = np.nonzero(mask)
    return matrix_completion_problem(DeepLinearFixedRank(m, n, 2, 3), rows, cols, M[mask])


@pytest.mark.parametrize("loss", ["least squares", "completion"])
def test_factor_flow_euler_is_gradient_descent_step_for_step(loss):
    """Euler equals the hand-written loop: same number of steps, the same factors (the same
    operations: bit for bit in one process, asserted to 1e-14), whatever t_eval and chunks."""
    h, steps = 0.05, 40
    if loss == "least squares":
        X = gaussian_data(6, seed=1)
        data = as_data(X, None, form="samples")
        rng = np.random.default_rng(1)
        Ws = [0.5 * rng.standard_normal(s) for s in ((4, 6), (5, 4), (6, 5))]

        def grad(W):
            return data.loss_and_gradient(W)[1]

        def run(t_end, fs, **kw):
            return factor_flow(X, None, fs, t_end, method="Euler", step=h, form="samples", **kw)
    else:
        P = _completion()
        rng = np.random.default_rng(2)
        Ws = [0.6 * rng.standard_normal(s) for s in ((4, 6), (4, 4), (7, 4))]

        def grad(W):
            return P.dense_loss_and_gradient(W)[1].toarray()

        def run(t_end, fs, **kw):
            return factor_flow(P, None, fs, t_end, method="Euler", step=h, **kw)

    ref = _layer_gd(grad, Ws, h, steps)
    te = np.array([0.0, 0.031, 0.1, 0.77, 1.0, 1.999])  # off the grid of steps
    r = run(h * steps, Ws, t_eval=te)
    assert r.status == "completed" and r.nsteps == steps
    for a, b in zip(r.factors, ref):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-15)
    # each tau is recorded at the step it falls in, at that step's time n h
    np.testing.assert_array_equal(r.t, np.array([0, 1, 2, 16, 20, 40]) * h)
    # chunks: two runs of 20 steps are one run of 40
    r1 = run(h * 20, Ws)
    r2 = run(h * 20, r1.factors)
    for a, b in zip(r2.factors, r.factors):
        np.testing.assert_array_equal(a, b)
    # ftol and events at the iterates: the first iterate with loss <= ftol ends the run
    L = run(h * steps, Ws).loss  # the loss at every iterate
    assert np.all(np.diff(L[:30]) < 0)
    ftol = 0.5 * (L[24] + L[25])

    def late(t, W):
        return t - 0.123

    rf = run(h * steps, Ws, ftol=ftol, events=late)
    assert rf.status == "converged" and rf.nsteps == 25 and "iterate" in rf.message
    for a, b in zip(rf.factors, _layer_gd(grad, Ws, h, 25)):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(rf.t_events[0], [3 * h])
    # t_end between steps: only whole steps, never a shortened one
    r3 = run(h * 20.5, Ws)
    assert r3.nsteps == 20 and r3.t_final == 20 * h and "whole steps" in r3.message
    for a, b in zip(r3.factors, r1.factors):
        np.testing.assert_array_equal(a, b)


def test_manifold_flow_euler_is_the_hand_loop_on_its_state():
    """The factored engine's Euler step, by hand from dense formulas: F = -A_W(P_T G) (Definition
    4 by matrix powers), S += h u^T F v, u += h (I - uu^T) F v S^-1, v += h (I - vv^T) F^T u
    S^-T, then u, v re-orthonormalized (Cholesky-QR, the factors absorbed into S)."""
    X = gaussian_data(6, seed=4)
    C = X @ X.T
    rng = np.random.default_rng(4)
    u = np.linalg.qr(rng.standard_normal((6, 2)))[0]
    v = np.linalg.qr(rng.standard_normal((6, 2)))[0]
    S = np.diag([0.9, 0.4])
    h, steps, N = 0.02, 30, 3
    r = manifold_flow(X, None, (u, np.diag(S).copy(), v.T), N, h * steps, method="Euler",
                      step=h, t_eval=[0.013, 0.3])
    for _ in range(steps):
        W = u @ S @ v.T
        G = (W - np.eye(6)) @ C
        Pu, Pv = u @ u.T, v @ v.T
        PTG = Pu @ G + G @ Pv - Pu @ G @ Pv
        F = -dense_A(W, PTG, N)
        Si = np.linalg.inv(S)
        u, S, v = (u + h * (F @ v - Pu @ F @ v) @ Si, S + h * u.T @ F @ v,
                   v + h * (F.T @ u - Pv @ F.T @ u) @ Si.T)
        Lu, Lv = np.linalg.cholesky(u.T @ u), np.linalg.cholesky(v.T @ v)
        u, S, v = u @ np.linalg.inv(Lu).T, Lu.T @ S @ Lv, v @ np.linalg.inv(Lv).T
    assert r.nsteps == steps
    np.testing.assert_allclose(r.W, u @ S @ v.T, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(r.t, np.array([1, 15]) * h)


def test_fixed_step_rk4_takes_whole_steps_too():
    X = gaussian_data(5, seed=2)
    W0 = np.diag([1.0, 0.5, 0, 0, 0])
    r = manifold_flow(X, None, W0, 2, 1.05, method="RK4", step=0.1, t_eval=[0.25, 1.05])
    assert r.nsteps == 10 and r.t_final == pytest.approx(1.0)
    np.testing.assert_array_equal(r.t, [0.30000000000000004])  # 3 * 0.1; 1.05 is past the end


def test_misspelt_keywords_name_the_function_and_the_nearest_option():
    X = gaussian_data(4, seed=0)
    W0 = np.diag([1.0, 0.5, 0.0, 0.0])
    fs = balanced_factors(W0, (4, 2, 4), seed=0)
    P = least_squares_problem(DeepLinearFixedRank(4, 4, 2, 2), X)
    for call, fn, near in (
        (lambda: factor_flow(X, None, fs, 1.0, rtoll=1e-3), "factor_flow", "rtol"),
        (lambda: factor_flow(X, None, fs, 1.0, conservd=True), "factor_flow", "conserved"),
        (lambda: manifold_flow(X, None, W0, 2, 1.0, rtoll=1e-3), "manifold_flow", "rtol"),
        (lambda: manifold_flow(X, None, W0, 2, 1.0, colapse_tol=1e-3), "manifold_flow",
         "collapse_tol"),
        (lambda: riemannian_flow(P, W0, 1.0, rtoll=1e-3), "riemannian_flow", "rtol"),
        (lambda: riemannian_flow(P, W0, 1.0, event=None), "riemannian_flow", "events"),
    ):
        with pytest.raises(TypeError) as info:
            call()
        msg = str(info.value)
        assert msg.startswith(f"{fn}()") and f"did you mean '{near}'" in msg, msg
        assert "parse_options" not in msg


def test_transposed_data_are_named_not_w0():
    X = gaussian_data(4, n_samples=9, seed=0)
    W0 = np.diag([1.0, 0.5, 0.0, 0.0])
    with pytest.raises(ValueError, match=r"X gives d_x = 9 .*transposed") as info:
        manifold_flow(X.T, None, W0, 2, 1.0)
    assert "W0 must" not in str(info.value)
    Y = gaussian_data(3, n_samples=9, seed=1)
    with pytest.raises(ValueError, match=r"Y gives d_y = 3 .*transposed"):
        manifold_flow(X, Y, np.ones((5, 4)), 2, 1.0)


def test_factor_flow_refuses_a_problem_of_another_depth():
    P = _completion()  # depth 3
    rng = np.random.default_rng(0)
    fs = [rng.standard_normal((4, 6)), rng.standard_normal((7, 4))]
    with pytest.raises(ValueError, match="depth N = 3 but 2 factors"):
        factor_flow(P, None, fs, 1.0)
