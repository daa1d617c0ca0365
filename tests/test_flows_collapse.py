"""The collapse rule of the flows on M_k (linrank.flows.manifold_base): no false stops, and a note
on a decaying singular value, against independent references (invariant-set argument, own
layer-wise integration with scipy, closed-form critical values)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from linrank import (
    DeepLinearFixedRank,
    balanced_factors,
    gaussian_data,
    manifold_flow,
    matrix_completion_problem,
    riemannian_flow,
)
from linrank.flows.manifold_base import decay_law

M_FAMILY = np.array([[0.3, 1.0], [1.0, 0.3]])


def _section7(seed=0):
    """Section 7's data (d = 10, X 10 x 30 with N(0, 1/10) entries), the eigenvectors of XX^T
    (descending) and the minimum of L^1 on M_2 (Proposition 29)."""
    X = gaussian_data(10, seed=seed)
    lam, U = np.linalg.eigh(X @ X.T)
    lam, U = lam[::-1], U[:, ::-1]
    return X, lam, U, 0.5 * (float(np.sum(lam)) - lam[0] - lam[1])


def _family(U, eta):
    """W(0) = V M V^T, V = [u_1, (u_2 + eta u_3) / |.|]: family A (eta = 0, on the invariant set
    {U_2 M U_2^T}) and family B (eta > 0, off it)."""
    V = U[:, :2].copy()
    V[:, 1] = (U[:, 1] + eta * U[:, 2]) / np.hypot(1.0, eta)
    return V @ M_FAMILY @ V.T


def _layer_time_to(X, W0, ftol, T):
    """Own reference: the layer-wise flow (5) of balanced width-2 factors (N = 3) by scipy's
    DOP853 at rtol 1e-11, with a terminal event at L^1 = ftol."""
    C = X @ X.T
    fs = balanced_factors(W0, (10, 2, 2, 10), seed=1, rank=2)
    shapes = [f.shape for f in fs]
    off = np.cumsum([0] + [a * b for a, b in shapes])

    def split(y):
        return [y[off[j]: off[j + 1]].reshape(shapes[j]) for j in range(3)]

    def rhs(_t, y):
        W1, W2, W3 = split(y)
        G = (W3 @ W2 @ W1 - np.eye(10)) @ C
        return -np.concatenate([((W3 @ W2).T @ G).ravel(), (W3.T @ G @ W1.T).ravel(),
                                (G @ (W2 @ W1).T).ravel()])

    def event(_t, y):
        W1, W2, W3 = split(y)
        return 0.5 * float(np.sum((X - W3 @ W2 @ W1 @ X) ** 2)) - ftol

    event.terminal = True
    sol = solve_ivp(rhs, (0.0, T), np.concatenate([f.ravel() for f in fs]), method="DOP853",
                    rtol=1e-11, atol=1e-14, events=event)
    return float(sol.t_events[0][0])


def test_family_a_runs_to_t_end_and_says_where_it_goes():
    """Issue 17's family A (N = 3): W(t) stays in {U_2 M U_2^T} with det(U_2^T W U_2) < 0, so
    it cannot reach U_2 U_2^T; it approaches u_1 u_1^T (loss gap lambda_2 / 2), s_2 -> 0 like a
    power of t. No convergence, no collapse: the run reaches t_end and its message says so."""
    X, lam, U, Lstar = _section7()
    W0 = _family(U, 0.0)
    assert np.all(np.diag(U[:, :2].T @ W0 @ U[:, :2]) > 0)  # condition (47)
    r = manifold_flow(X, None, W0, 3, 400.0, rtol=1e-8, ftol=Lstar + 1e-6, trajectory=True,
                      t_eval=np.linspace(0.0, 400.0, 81))
    assert r.status == "completed" and r.t_final == 400.0 and r.collapse is None
    dets = [np.linalg.det(U[:, :2].T @ p.to_dense() @ U[:, :2]) if hasattr(p, "to_dense")
            else np.linalg.det(U[:, :2].T @ ((p.u * p.s) @ p.vt) @ U[:, :2])
            for p in r.trajectory]
    assert max(dets) < 0  # the invariant-set certificate
    u1 = U[:, :1]
    assert np.linalg.norm(r.W - u1 @ u1.T) < 0.05
    assert r.loss[-1] - Lstar == pytest.approx(lam[1] / 2, rel=0.02)  # W_J for J = {1}
    assert r.rank_decay is not None and r.rank_decay["law"] == "power"
    assert "approaches a critical point of rank < 2" in r.message


def test_family_b_converges_when_the_layers_do():
    """Family B (off the invariant set by eta; the suite uses eta = 1e-2 for time, measured
    agreement 1e-6 relative; at eta = 1e-7 s_2 / s_1 falls to ~1e-16 before the escape and the
    factored engine cannot follow it: docs/theory.rst): manifold_flow at rtol 1e-8 reaches the
    loss L* + 1e-6 at the time an own layer-wise integration (scipy DOP853, rtol 1e-11) gives
    (within 50%), with no collapse on the way."""
    X, _, U, Lstar = _section7()
    W0 = _family(U, 1e-2)
    ftol = Lstar + 1e-6
    t_ref = _layer_time_to(X, W0, ftol, 2000.0)
    r = manifold_flow(X, None, W0, 3, 2000.0, rtol=1e-8, ftol=ftol)
    assert r.status == "converged" and r.collapse is None
    assert abs(r.t_final - t_ref) <= 0.5 * t_ref
    assert abs(r.t_final - t_ref) <= 1e-3 * t_ref


def test_small_start_completion_is_not_stopped():
    """Issue 19's case: depth-3 completion of a planted s = (100, 1) matrix from s = (2e-8, 5e-9).
    s_2 does not fall, yet s_2 / s_1 drops below 1e-10 as s_1 is learned: the old rule (s_k <
    1e-10 max(s_1(t), s_1(0))) stopped the run there; the run now reaches t_end."""
    rng = np.random.default_rng(19)
    m = n = 20
    Uq = np.linalg.qr(rng.standard_normal((m, 2)))[0]
    Vq = np.linalg.qr(rng.standard_normal((n, 2)))[0]
    M = (Uq * [100.0, 1.0]) @ Vq.T
    mask = rng.random((m, n)) < 0.6
    rows, cols = np.nonzero(mask)
    P = matrix_completion_problem(DeepLinearFixedRank(m, n, 2, 3), rows, cols, M[mask])
    u0 = np.linalg.qr(rng.standard_normal((m, 2)))[0]
    v0 = np.linalg.qr(rng.standard_normal((n, 2)))[0]
    r = riemannian_flow(P, (u0, np.array([2e-8, 5e-9]), v0.T), 19.0, rtol=1e-8)
    S = r.singular_values
    assert r.status == "completed" and r.t_final == 19.0
    assert np.any(S[:, 1] < 1e-10 * np.maximum(S[:, 0], 2e-8))  # where the old rule fired
    assert S[-1, 0] > 90.0 and S[-1, 1] >= 0.9 * 5e-9  # s_1 learned, s_2 did not fall
    assert r.rank_decay is None and "critical point" not in r.message


@pytest.mark.parametrize("scale", [1e20, 1e80])
def test_huge_start_is_not_a_collapse(scale):
    """W0 x 1e20 / 1e80 of the autoencoder: all singular values fall by the scale to ~1 within
    t ~ 1 / scale^(4/3); that is no collapse (the old rule compared with s_1(0))."""
    X, _, U, _ = _section7(seed=3)
    W0 = scale * (U[:, :2] @ np.diag([1.0, 0.5]) @ U[:, :2].T)
    r = manifold_flow(X, None, W0, 3, 5.0)
    assert r.status == "completed" and r.collapse is None
    assert np.all(r.singular_values[-1] > 0.5)
    assert r.rank_decay is None


def test_collapse_rules():
    """(a) underflow, (b) N = 1 at the rounding level of s_1, (c) opt-in collapse_tol against
    the own peak of s_k."""
    X, lam, U, _ = _section7(seed=4)
    u1 = U[:, :1]
    # (c) at N = 3: s falls like t^-3 from 1; the stop is where it crosses 1e-3 of its peak
    with pytest.warns(RuntimeWarning, match="collapse_tol"):
        r = manifold_flow(X, None, -u1 @ u1.T, 3, 1e4, collapse_tol=1e-3)
    assert r.status == "collapsed" and r.collapse["value"] < 1e-3 * r.collapse["peak"]
    assert r.singular_values[-2, 0] >= 1e-3 * r.collapse["peak"]
    # (b) N = 1, target u1 u1^T X: W = U_2 diag(s_1, s_2) U_2^T with s_2 -> 0 like
    # exp(-lambda_2 t); it stops where s_2 reaches the rounding level of s_1; at N = 2 and 3
    # the same flow runs to t_end
    Y = u1 @ (u1.T @ X)
    W0 = U[:, :2] @ np.diag([0.5, 0.5]) @ U[:, :2].T
    with pytest.warns(RuntimeWarning, match="rounding level"):
        r1 = manifold_flow(X, Y, W0, 1, 60.0)
    assert r1.status == "collapsed" and r1.collapse["index"] == 1
    s = r1.singular_values[-1]
    assert s[1] <= 10 * np.finfo(float).eps * s[0] and s[0] == pytest.approx(1.0, abs=1e-5)
    for N in (2, 3):
        assert manifold_flow(X, Y, W0, N, 20.0).status == "completed"
    # (a) N = 1, Y = 0, k = 1: s_1 = 1e-300 exp(-lambda_1 t) (pure relative error control)
    # underflows at t = log(1e-300 / tiny) / lambda_1
    with pytest.warns(RuntimeWarning, match="underflowed"):
        ru = manifold_flow(X, np.zeros_like(X), 1e-300 * (u1 @ u1.T), 1, 20.0, atol=0.0)
    assert ru.status == "collapsed"
    t_under = np.log(1e-300 / np.finfo(float).tiny) / lam[0]
    assert t_under <= ru.collapse["t"] <= t_under + 0.5
    with pytest.raises(ValueError, match="collapse_tol"):
        manifold_flow(X, None, W0, 2, 1.0, collapse_tol=2.0)


def test_decay_law_fits_known_laws():
    t = np.linspace(0.0, 50.0, 200)
    exp_law = decay_law(t, 3.0 * np.exp(-0.7 * t))
    assert exp_law["law"] == "exponential" and exp_law["rate"] == pytest.approx(0.7, rel=1e-9)
    pw = decay_law(t, (1.0 + t) ** -2.5)
    assert pw["law"] == "power" and pw["exponent"] == pytest.approx(2.5, rel=0.05)
    assert decay_law(t, 1.0 + np.exp(-t)) is None  # falls by less than 1e3
    assert decay_law(t, np.exp(-t) + 1e-9) is None  # levels off at the end


def test_a_singular_value_below_the_resolution_is_reported():
    """N = 2, W(0) = U_2 diag(1, -0.5) U_2^T of the autoencoder: the negative direction decays
    like s_2 = 1 / (3 exp(2 lambda_2 t) - 1) (Remark 33 in the second direction) while s_1 -> 1.
    Once s_2 / s_1 < 1e-12 the message says that the second pair is resolved only to rounding;
    when a step carries s_2 across 0 (det S changes sign) the run ends "collapsed" (rule (d)):
    the exact flow keeps det(U_2^T W U_2) < 0."""
    X, lam, U, _ = _section7(seed=4)
    W0 = U[:, :2] @ np.diag([1.0, -0.5]) @ U[:, :2].T
    with pytest.warns(RuntimeWarning, match="det S changed sign"):
        r = manifold_flow(X, None, W0, 2, 6.0, rtol=1e-13, atol=0.0, engine="factored")
    assert r.status == "collapsed" and r.collapse["index"] == 1
    assert r.rank_decay["ratio_min"] < 1e-12 and "resolves the 2-th singular pair" in r.message
    exact = 1.0 / (3.0 * np.exp(2 * lam[1] * r.t) - 1.0)
    keep = exact > 1e-9
    # normwise error control: s_2 to rtol relative plus ~10 rtol ||W|| absolute
    np.testing.assert_allclose(r.singular_values[keep, 1], exact[keep], rtol=1e-6, atol=1e-12)
    assert np.all(r.singular_values[:, 1] > 0)
    short = manifold_flow(X, None, W0, 2, 1.0, rtol=1e-13, atol=0.0, engine="factored")
    assert short.status == "completed" and "rounding" not in short.message


def test_chain_follows_a_singular_value_far_below_eps_s1():
    """N = 2, second pair of the autoencoder on the invariant set {U_2 diag(.) U_2^T}, closed
    forms (Remark 33's ODE in the second direction, s' = -2 lambda_2 s (s - 1)):
    escape from s_2(0) = 1e-20, s_2 = 1 / (1 + (1/s_0 - 1) e^(-2 lambda_2 t)), and decay from
    -0.5, s_2 = 1 / (3 e^(2 lambda_2 t) - 1). manifold_flow (auto: the chain engine) follows both
    to ~1e-7 relative while s_2 / s_1 is far below eps (escape time right); the factored engine
    holds s_2 in a k x k core with absolute rounding eps s_1 and misses the escape by > 10%
    (and stops the decay "collapsed" at s_2 ~ 1e-10, rtol 1e-10 being normwise there)."""
    X, lam, U, _ = _section7(seed=4)
    s0 = 1e-20
    start = (U[:, :2].copy(), np.array([1.0, s0]), U[:, :2].T.copy())
    grid = np.linspace(0.0, 6.0, 25)
    r = manifold_flow(X, None, start, 2, 6.0, rtol=1e-10, atol=0.0, t_eval=grid)
    exact = 1.0 / (1.0 + (1.0 / s0 - 1.0) * np.exp(-2 * lam[1] * r.t))
    assert r.status == "completed" and r.collapse is None
    np.testing.assert_allclose(r.singular_values[:, 1], exact, rtol=1e-7)
    f = manifold_flow(X, None, start, 2, 6.0, rtol=1e-10, atol=0.0, t_eval=grid,
                      engine="factored")
    assert np.max(np.abs(f.singular_values[:, 1] / exact - 1)) > 0.1
    W0 = U[:, :2] @ np.diag([1.0, -0.5]) @ U[:, :2].T
    d = manifold_flow(X, None, W0, 2, 3.0, rtol=1e-10, atol=0.0, t_eval=np.linspace(0, 3, 13))
    exact = 1.0 / (3.0 * np.exp(2 * lam[1] * d.t) - 1.0)
    assert d.status == "completed" and d.collapse is None and exact[-1] < 2e-14
    np.testing.assert_allclose(d.singular_values[:, 1], exact, rtol=1e-5)
