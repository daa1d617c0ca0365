"""The Runge-Kutta-Chebyshev method (linrank.flows.chebyshev) and its use by method="auto":
stability interval, damping and order of the coefficients, order of convergence against expm,
accuracy of auto runs against tight references, and the switch to ROS34PW2 when the stage
cap holds the step."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import expm

from linrank import (
    DeepLinearFixedRank,
    balanced_factors,
    factor_flow,
    gaussian_data,
    manifold_flow,
    matrix_completion_problem,
)
from linrank.flows.chebyshev import S_MAX, rkc_coefficients, rkc_stages, rkc_step, set_hermite
from linrank.flows.system import Evaluation, VectorSystem
from linrank.flows.tableaux import dense_weights


@pytest.mark.parametrize("s", [2, 3, 7, 40, S_MAX])
def test_stability_interval_damping_and_order(s):
    c = rkc_coefficients(s)
    z = np.linspace(-c.beta, 0.0, 40001)
    R = c.stability(z)
    assert np.all(np.abs(R) <= 1.0 + 1e-12)
    # damped: away from z = 0 (beyond the first 1% of the interval) |R| stays below 1
    assert np.abs(R[z < -0.01 * c.beta]).max() < 0.99
    # outside the interval the polynomial grows: beta is the end of the stable interval
    assert abs(c.stability(np.array([-1.5 * c.beta]))[0]) > 1.0
    # second order: R(z) - exp(z) = O(z^3)
    zz = np.array([-1e-2, -5e-3])
    e = np.abs(c.stability(zz) - np.exp(zz))
    assert e[0] / e[1] == pytest.approx(8.0, rel=0.02)
    # beta(s) ~ 0.653 s^2 (the published asymptote for damping 2/13)
    if s >= 40:
        assert c.beta / s ** 2 == pytest.approx(0.653, abs=0.002)


def test_stage_count_is_the_least_that_covers():
    for hr in (0.5, 3.0, 17.0, 1e3, 4e4):
        s = rkc_stages(hr)
        assert rkc_coefficients(s).beta >= hr
        if s > 2:
            assert rkc_coefficients(s - 1).beta < hr
    assert rkc_stages(1e9) == S_MAX + 1


class _Linear(VectorSystem):
    def __init__(self, A):
        self.A = A

    def rhs(self, y):
        return Evaluation(self.A @ y, 0.0, 0.0)

    def final(self, y):
        return {}


class _Integ:
    def __init__(self, sysm):
        self.sys = sysm

    def _eval(self, y, full=True):
        return self.sys.rhs(y)


def test_rkc_converges_with_order_two_against_expm():
    """A stiff symmetric spectrum (down to -800, all of it inside the stages' interval) and a
    smooth solution (the start in the slow eigenspace): global error O(h^2)."""
    rng = np.random.default_rng(0)
    Q = np.linalg.qr(rng.standard_normal((12, 12)))[0]
    lam = -np.geomspace(0.5, 800.0, 12)  # the spectrum of a gradient flow
    A = (Q * lam) @ Q.T
    sysm = _Linear(A)
    y0 = Q[:, :4] @ rng.standard_normal(4)  # eigenvalues -0.5 ... -3
    T = 1.0
    exact = expm(T * A) @ y0
    errs = []
    for n in (10, 20, 40):
        h = T / n
        s = rkc_stages(1.2 * 800.0 * h)
        y = y0
        for _ in range(n):
            y, _, _ = rkc_step(_Integ(sysm), sysm, y, sysm.rhs(y), h, s, 1e-6, 1e-9)
        errs.append(np.linalg.norm(y - exact))
    rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(rates > 1.8), (errs, rates)  # order 2


def test_hermite_extension_has_local_error_order_four():
    """set_hermite from the exact end points and slopes of y' = Ay: the interpolant's error at
    theta = 0.3 and 0.5 falls like h^4 (the weights of dense_weights("hermite")); from an RKC
    step it is within a small factor of the step's own local error."""
    rng = np.random.default_rng(4)
    Q = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    A = (Q * -np.geomspace(0.5, 4.0, 6)) @ Q.T
    sysm = _Linear(A)
    y0 = rng.standard_normal(6)
    integ = _Integ(sysm)
    errs = []
    for h in (0.2, 0.1, 0.05):
        y1 = expm(h * A) @ y0
        set_hermite(integ, y0, h, sysm.rhs(y0), sysm.rhs(y1), y1 - y0)
        y, hh, evals, kind = integ._dense
        assert kind == "hermite" and hh == h
        e = 0.0
        for th in (0.3, 0.5):
            u = sysm.advance(y, hh, dense_weights(kind, th), evals)
            e = max(e, np.linalg.norm(u - expm(th * h * A) @ y0))
        assert np.allclose(sysm.advance(y, hh, dense_weights(kind, 1.0), evals), y1,
                           rtol=1e-14, atol=1e-14)
        errs.append(e)
    rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(rates > 3.5), (errs, rates)  # order 4 (measured 3.77, 3.88)
    h = 0.1
    y1, _, _ = rkc_step(integ, sysm, y0, sysm.rhs(y0), h, 3, 1e-6, 1e-9)
    y, hh, evals, kind = integ._dense
    step_err = np.linalg.norm(y1 - expm(h * A) @ y0)
    mid_err = np.linalg.norm(sysm.advance(y, hh, dense_weights(kind, 0.5), evals)
                             - expm(0.5 * h * A) @ y0)
    assert mid_err <= 2.0 * step_err, (mid_err, step_err)


def test_error_estimate_tracks_the_local_error():
    """Asymptotically correct on a non-stiff problem; on stiff components an overestimate
    (the term 6 h (F_n + F_{n+1}) weighs them by h lambda), never an underestimate."""
    rng = np.random.default_rng(1)
    y0 = rng.standard_normal(10)
    for lam_max, h, lo, hi in ((2.0, 0.01, 0.5, 2.0), (300.0, 0.1, 1.0, np.inf)):
        A = -np.diag(np.geomspace(0.1, lam_max, 10))
        sysm = _Linear(A)
        s = rkc_stages(1.2 * lam_max * h)
        y1, _, err = rkc_step(_Integ(sysm), sysm, y0, sysm.rhs(y0), h, s, 1.0, 0.0)
        sc = np.maximum(np.abs(y0), np.abs(y1))
        true_err = np.linalg.norm((y1 - expm(h * A) @ y0) / sc) / np.sqrt(10)
        assert lo * true_err <= err <= hi * true_err, (lam_max, err, true_err)


def test_auto_on_deep_completion_matches_a_tight_reference():
    """A planted rank-2 completion at depth 3 from a small balanced start: auto switches to
    Chebyshev stepping and ends within 1e-6 of a tight RK45 run, with a fraction of its
    right-hand sides."""
    rng = np.random.default_rng(3)
    m = 16
    A = rng.standard_normal((m, 2)) @ rng.standard_normal((2, m))
    rows, cols = np.nonzero(rng.random((m, m)) < 0.5)
    prob = matrix_completion_problem(DeepLinearFixedRank(m, m, 2, 3), rows, cols, A[rows, cols])
    Q = np.linalg.qr(rng.standard_normal((m, m)))[0]
    fac = balanced_factors(1e-3 * Q, [m] * 4, seed=1)
    ref = factor_flow(prob, None, fac, t_end=60.0, rtol=1e-11, atol=1e-14)
    rk = factor_flow(prob, None, fac, t_end=60.0, rtol=1e-6, atol=1e-9)
    auto = factor_flow(prob, None, fac, t_end=60.0, method="auto", rtol=1e-5, atol=1e-8)
    assert auto.success
    assert "chebyshev" in [mode for _, mode in auto.stepper["switches"]]
    rel = np.linalg.norm(auto.W - ref.W) / np.linalg.norm(ref.W)
    assert rel <= 1e-6, rel
    assert auto.nfev + 2 * auto.stepper["njev"] < rk.nfev / 3, (auto.nfev, rk.nfev)


def test_auto_goes_to_rosenbrock_when_the_stage_cap_holds_the_step():
    """Stiffness ratio 1e8 (layer flow at N = 1, W' = -(W C - C)): Chebyshev steps would need
    more than S_MAX stages, so auto moves on to ROS34PW2; the result against the closed form."""
    rng = np.random.default_rng(2)
    Q = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    C = (Q * np.array([1e8, 1e4, 1.0, 0.1])) @ Q.T
    X = np.linalg.cholesky(C)
    W0 = rng.standard_normal((4, 4))
    T = 1.0
    res = factor_flow(X, None, [W0], t_end=T, method="auto", rtol=1e-6, atol=1e-9)
    modes = [mode for _, mode in res.stepper["switches"]]
    assert res.success and "stiff" in modes, res.stepper
    ref = np.eye(4) + (W0 - np.eye(4)) @ expm(-T * C)  # closed form: (W - I)' = -(W - I) C
    assert np.linalg.norm(res.W - ref) <= 1e-5 * np.linalg.norm(ref)


def test_non_stiff_run_never_leaves_dormand_prince():
    X = gaussian_data(10, seed=0)
    rng = np.random.default_rng(1)
    W0 = rng.standard_normal((10, 2)) @ rng.standard_normal((2, 10)) / 10
    fac = balanced_factors(W0, (10, 4, 10), seed=2)
    a = factor_flow(X, None, fac, t_end=10.0, method="auto", rtol=1e-10, atol=1e-12)
    b = factor_flow(X, None, fac, t_end=10.0, rtol=1e-10, atol=1e-12)
    assert a.stepper["switches"] == []
    assert np.array_equal(a.W, b.W)  # the same Dormand-Prince steps


def test_auto_on_the_factored_manifold_engine():
    """manifold_flow (factored engine on M_k, difference-quotient JVPs): auto takes Chebyshev
    steps on a stiff autoencoder and ends within 1e-6 of a tight RK45 run."""
    X = 3.0 * gaussian_data(8, seed=0)
    rng = np.random.default_rng(1)
    W0 = rng.standard_normal((8, 3)) @ rng.standard_normal((3, 8)) / 8
    ref = manifold_flow(X, None, W0, depth=3, t_end=20.0, rtol=1e-11, atol=1e-13)
    a = manifold_flow(X, None, W0, depth=3, t_end=20.0, method="auto", rtol=1e-6, atol=1e-9)
    assert a.success and "chebyshev" in [mode for _, mode in a.stepper["switches"]]
    assert np.linalg.norm(a.W - ref.W) <= 1e-6 * np.linalg.norm(ref.W)
