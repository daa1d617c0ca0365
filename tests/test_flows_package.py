"""The flows package as a framework: the integrator against scipy, and a new system plugged in
without touching the loop (linrank.flows.system)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import RK45, solve_ivp

from linrank.flows import (
    Evaluation,
    FlowSystem,
    LayerSystem,
    VectorSystem,
    integrate,
    parse_options,
)
from linrank.flows.factored import FactoredSystem
from linrank.flows.projected import ProjectedSystem
from linrank.flows.tableaux import DOPRI5


class LinearSystem(VectorSystem):
    """y' = -A y with A symmetric positive definite: loss y^T A y / 2, closed-form solution."""

    name = "linear"

    def __init__(self, A: np.ndarray):
        self.A = A

    def rhs(self, y: np.ndarray) -> Evaluation:
        g = self.A @ y
        return Evaluation(-g, 0.5 * float(y @ g), float(np.linalg.norm(g)))

    def diagnostics(self, y: np.ndarray) -> dict:
        return {"first": float(y[0])}

    def final(self, y: np.ndarray) -> dict:
        return {"factors": [y.copy()]}

    def identity(self):
        return [self.A], ()


def _linear_problem(d=6, seed=0):
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.standard_normal((d, d)))[0]
    lam = np.linspace(0.2, 3.0, d)
    return (Q * lam) @ Q.T, Q, lam, rng.standard_normal(d)


def test_tableau_is_scipys_rk45():
    for i in range(1, 6):
        assert np.array_equal(np.array(DOPRI5.A[i]), RK45.A[i, :i])
    assert np.array_equal(np.array(DOPRI5.B), RK45.B)
    assert np.array_equal(np.array(DOPRI5.E), RK45.E)


def test_the_systems_implement_the_protocol():
    for cls in (LayerSystem, FactoredSystem, ProjectedSystem):
        assert issubclass(cls, FlowSystem)
        for name in ("rhs", "advance", "error_scale", "error_norm", "state_norm", "to_array",
                     "from_array", "final"):
            assert getattr(cls, name) is not getattr(FlowSystem, name), (cls, name)


def test_new_system_plugs_in_and_matches_solve_ivp():
    """A fifth system, written in the test, runs through the unchanged loop: same steps as
    scipy's RK45 on the same ODE, the closed-form solution, records, diagnostics."""
    A, Q, lam, y0 = _linear_problem()
    t_end = 4.0
    opts = parse_options(t_end, rtol=1e-8, atol=1e-10)
    res = integrate(LinearSystem(A), y0.copy(), t_end, opts)
    sol = solve_ivp(lambda t, y: -A @ y, (0.0, t_end), y0, method="RK45", rtol=1e-8, atol=1e-10)
    exact = Q @ (np.exp(-lam * t_end) * (Q.T @ y0))
    assert res.status == "completed"
    # the loop is scipy's algorithm: the same step sequence up to the last (clipped) step, to
    # the rounding of the error estimate (a difference of nearly equal slopes: ~eps / rtol)
    assert res.t.size == sol.t.size
    np.testing.assert_allclose(res.t[:-1], sol.t[:-1], rtol=1e-6)
    np.testing.assert_allclose(res.factors[0], sol.y[:, -1], rtol=1e-9, atol=1e-12)
    assert np.linalg.norm(res.factors[0] - exact) <= 1e-7 * np.linalg.norm(y0)
    np.testing.assert_allclose(res.loss, [0.5 * y @ A @ y for y in sol.y.T], rtol=1e-7)
    assert res.diagnostics["first"].shape == res.t.shape
    assert res.depth == 1 and res.distance is None


def test_new_system_gets_t_eval_checkpoints_and_interrupts(tmp_path, monkeypatch):
    A, _, _, y0 = _linear_problem(seed=1)
    te = np.linspace(0.0, 3.0, 7)
    path = tmp_path / "lin.npz"
    full = integrate(LinearSystem(A), y0.copy(), 3.0,
                     parse_options(3.0, t_eval=te, trajectory=True))
    assert np.array_equal(full.t, te) and len(full.trajectory) == te.size
    calls = {"n": 0}
    rhs = LinearSystem.rhs

    def flaky(self, y):
        calls["n"] += 1
        if calls["n"] == 40:
            raise KeyboardInterrupt
        return rhs(self, y)

    with monkeypatch.context() as mp:
        mp.setattr(LinearSystem, "rhs", flaky)
        with pytest.warns(UserWarning, match="interrupted"):
            part = integrate(LinearSystem(A), y0.copy(), 3.0,
                             parse_options(3.0, t_eval=te, trajectory=True, checkpoint=path,
                                           checkpoint_steps=1))
    assert part.status == "interrupted" and 0 < part.t_final < 3.0
    resumed = integrate(LinearSystem(A), y0.copy(), 3.0,
                        parse_options(3.0, t_eval=te, trajectory=True, checkpoint=path))
    assert resumed.status == "completed"
    assert np.array_equal(resumed.factors[0], full.factors[0])
    assert np.array_equal(resumed.diagnostics["first"], full.diagnostics["first"])
    assert all(np.array_equal(a, b) for a, b in zip(resumed.trajectory, full.trajectory))
