"""The stiff stepper (linrank.flows.stiff) and the Jacobian-vector products it uses
(linrank.flows.jacobians): order, L-stability, accuracy against tight RK45 references,
Corollary 8 between the stiff layer and manifold flows, and the switching rule."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from linrank import (
    DeepLinearFixedRank,
    balanced_factors,
    factor_flow,
    gaussian_data,
    manifold_flow,
    matrix_completion_problem,
    riemannian_flow,
)
from linrank.data import as_data
from linrank.flows.jacobians import layer_jvp, loss_hessian_vector
from linrank.flows.layers import LayerSystem
from linrank.flows.problem_data import ProblemData
from linrank.flows.stiff import ROS34PW2, RosenbrockStepper
from linrank.flows.system import Evaluation, VectorSystem


class _Linear(VectorSystem):
    """y' = A y with the exact Jacobian (or a given W-matrix)."""

    has_jacobian = True

    def __init__(self, A, Jmat=None):
        self.A = A
        self.Jmat = A if Jmat is None else Jmat

    def rhs(self, y):
        return Evaluation(self.A @ y, 0.0, 0.0)

    def jacobian(self, y):
        return lambda z: self.Jmat @ z

    def final(self, y):
        return {}


class _FakeIntegrator:
    t = 0.0

    def __init__(self, sysm):
        self.sys = sysm
        self.nfev = 0

    def _eval(self, y, full=True):
        self.nfev += 1
        return self.sys.rhs(y)


def _steps(sysm, y0, h, n, rtol=1e-12, atol=1e-14):
    st = RosenbrockStepper(sysm, rtol, atol, auto=False)
    integ = _FakeIntegrator(sysm)
    y = y0
    for _ in range(n):
        y, _, _ = st.rosenbrock_step(integ, y, sysm.rhs(y), h)
    return y


def test_coefficients_order_conditions_and_l_stability():
    c = ROS34PW2
    G = c.Gamma
    beta = c.alpha + G  # beta_ij = alpha_ij + gamma_ij
    one = np.ones(4)
    assert c.b @ one == pytest.approx(1.0, abs=1e-14)
    assert c.b @ (beta @ one) == pytest.approx(0.5, abs=1e-14)
    al = c.alpha @ one
    assert c.b @ al ** 2 == pytest.approx(1 / 3, abs=1e-14)
    assert c.b @ (beta @ (beta @ one)) == pytest.approx(1 / 6, abs=1e-14)
    # stiffly accurate: b = last row of alpha + Gamma; R(infinity) = 1 - b^T Gamma^-1 1 = 0
    assert np.allclose(c.b, beta[3], atol=1e-14)
    assert abs(1.0 - c.b @ np.linalg.solve(beta, one)) < 1e-13


def test_order_three_on_exp_of_a_matrix_with_exact_and_wrong_jacobian():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((5, 5)) - 2 * np.eye(5)
    y0 = rng.standard_normal(5)
    for Jmat in (A, A + 0.5 * rng.standard_normal((5, 5))):  # Rosenbrock and W-method use
        errs = []
        for n in (10, 20, 40):
            y = _steps(_Linear(A, Jmat), y0, 1.0 / n, n)
            errs.append(np.linalg.norm(y - expm(A) @ y0))
        orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
        assert np.all(orders > 2.8), orders  # order 3 (measured 2.95-3.05)


def test_l_stability_huge_step_gives_decay_not_oscillation():
    lam = -np.array([1e3, 1e6, 1e9, 1e12])
    sysm = _Linear(np.diag(lam))
    y0 = np.ones(4)
    y1 = _steps(sysm, y0, 10.0, 1, rtol=1e-6, atol=1e-9)
    # R(z) -> 0 as z -> -inf: |R(h lam)| ~ 1/|h lam|
    assert np.all(np.abs(y1) <= 10.0 / np.abs(10.0 * lam)), y1
    y5 = _steps(sysm, y0, 10.0, 5, rtol=1e-6, atol=1e-9)
    assert np.all(np.abs(y5) <= 1e-12)


def _layer_setup(problem=False):
    rng = np.random.default_rng(3)
    if problem:
        m, n, N = 7, 6, 3
        A = rng.standard_normal((m, 2)) @ rng.standard_normal((2, n))
        mask = rng.random((m, n)) < 0.5
        rows, cols = np.nonzero(mask)
        data = ProblemData(matrix_completion_problem(DeepLinearFixedRank(m, n, 2, N), rows,
                                                     cols, A[rows, cols]))
        dims = [n, 5, 8, m]
    else:
        X = rng.standard_normal((6, 15))
        Y = rng.standard_normal((4, 15))
        data = as_data(X, Y)
        dims = [6, 5, 7, 4]
    Ws = [rng.standard_normal((dims[j + 1], dims[j])) for j in range(len(dims) - 1)]
    sysm = LayerSystem(data, [W.shape for W in Ws], None, False, None)
    return sysm, sysm.initial_state(Ws)


@pytest.mark.parametrize("problem", [False, True])
def test_layer_jvp_against_central_differences(problem):
    sysm, y = _layer_setup(problem)
    z = np.random.default_rng(4).standard_normal(y.size)
    Jz = sysm.jacobian(y)(z)
    e = 1e-5
    fd = (sysm.rhs(y + e * z).K - sysm.rhs(y - e * z).K) / (2 * e)
    # central difference error ~ e^2 |F'''| + eps |F| / e: ~1e-9 relative here
    assert np.linalg.norm(Jz - fd) <= 1e-7 * np.linalg.norm(fd)


def test_layer_jvp_against_autograd():
    """The Jacobian of flow (5) is minus the Hessian of L^N: J z against autograd's
    Hessian-vector product of L^N written out for matrix completion (the loss checked first)."""
    import autograd.numpy as anp
    from autograd import grad

    rng = np.random.default_rng(5)
    m, n, N = 7, 6, 3
    A = rng.standard_normal((m, 2)) @ rng.standard_normal((2, n))
    rows, cols = np.nonzero(rng.random((m, n)) < 0.5)
    data = ProblemData(matrix_completion_problem(DeepLinearFixedRank(m, n, 2, N), rows, cols,
                                                 A[rows, cols]))
    dims = [n, 5, 8, m]
    Ws = [rng.standard_normal((dims[j + 1], dims[j])) for j in range(N)]
    sysm = LayerSystem(data, [W.shape for W in Ws], None, False, None)
    y = sysm.initial_state(Ws)

    def loss(v):
        W = None
        for j in range(N):
            a, b = sysm.offsets[j], sysm.offsets[j + 1]
            F = anp.reshape(v[a:b], sysm.shapes[j])
            W = F if W is None else anp.dot(F, W)
        return 0.5 * anp.sum((W[rows, cols] - A[rows, cols]) ** 2)

    assert loss(y) == pytest.approx(sysm.rhs(y).loss, rel=1e-12)
    z = rng.standard_normal(y.size)
    hz = grad(lambda v: anp.dot(grad(loss)(v), z))(y)
    Jz = sysm.jacobian(y)(z)
    # both exact: the difference is rounding, ~ eps times the products' size
    assert np.linalg.norm(Jz + hz) <= 1e-10 * np.linalg.norm(hz)


def test_hessian_vector_products_exact():
    sysm, _ = _layer_setup(True)
    hvp, exact = loss_hessian_vector(sysm.data)
    assert exact
    rng = np.random.default_rng(5)
    W, Z = rng.standard_normal((7, 6)), rng.standard_normal((7, 6))
    _, G1 = sysm.data.loss_and_gradient(W + Z)
    _, G0 = sysm.data.loss_and_gradient(W)
    assert np.allclose(hvp(W, Z), G1 - G0, atol=1e-12)  # quadratic loss
    Ws = [rng.standard_normal((3, 6)), rng.standard_normal((7, 3))]
    _, G = sysm.data.loss_and_gradient(Ws[1] @ Ws[0])
    Zs = [rng.standard_normal(W.shape) for W in Ws]
    e = 1e-6
    out = layer_jvp(Ws, Zs, G, hvp)
    plus = [W + e * Zi for W, Zi in zip(Ws, Zs)]
    _, Gp = sysm.data.loss_and_gradient(plus[1] @ plus[0])
    fd0 = -((Gp @ plus[0].T - G @ Ws[0].T) / e)
    assert np.linalg.norm(out[1] - fd0) <= 1e-4 * np.linalg.norm(fd0)


def _stiff_autoencoder():
    X = 3.0 * gaussian_data(8, seed=0)
    rng = np.random.default_rng(1)
    W0 = rng.standard_normal((8, 3)) @ rng.standard_normal((3, 8)) / 8
    return X, W0, balanced_factors(W0, (8, 6, 5, 8), seed=2)


def test_stiff_layer_flow_matches_tight_rk45_and_corollary_8():
    X, W0, fac = _stiff_autoencoder()
    ref = factor_flow(X, None, fac, t_end=2.0, rtol=1e-12, atol=1e-14)
    ros = factor_flow(X, None, fac, t_end=2.0, method="Rosenbrock", rtol=1e-7, atol=1e-10)
    assert ros.success and ros.stepper["njev"] > 0
    rel = np.linalg.norm(ros.W - ref.W) / np.linalg.norm(ref.W)
    assert rel <= 1e-6, rel  # measured 2e-8
    man = manifold_flow(X, None, W0, depth=3, t_end=2.0, method="Rosenbrock", rtol=1e-7,
                        atol=1e-10)
    assert man.success
    rel8 = np.linalg.norm(man.W - ros.W) / np.linalg.norm(ros.W)
    assert rel8 <= 1e-6, rel8  # Corollary 8 between the two stiff flows (measured 3e-8)


def test_stiff_riemannian_flow_matches_rk45():
    rng = np.random.default_rng(7)
    m, n, k, N = 9, 8, 2, 3
    A = rng.standard_normal((m, k)) @ rng.standard_normal((k, n))
    rows, cols = np.nonzero(rng.random((m, n)) < 0.6)
    prob = matrix_completion_problem(DeepLinearFixedRank(m, n, k, N), rows, cols, A[rows, cols])
    x0 = 0.1 * rng.standard_normal((m, k)) @ rng.standard_normal((k, n))
    ref = riemannian_flow(prob, x0, 5.0, rtol=1e-12, atol=1e-14)
    ros = riemannian_flow(prob, x0, 5.0, method="Rosenbrock", rtol=1e-7, atol=1e-10)
    assert ros.success
    rel = np.linalg.norm(ros.W - ref.W) / np.linalg.norm(ref.W)
    assert rel <= 1e-6, rel


def test_auto_switches_on_a_stiff_run_and_not_on_a_non_stiff_one():
    X, W0, fac = _stiff_autoencoder()
    stiff = factor_flow(X, None, fac, t_end=200.0, method="auto", rtol=1e-6, atol=1e-9)
    rk = factor_flow(X, None, fac, t_end=200.0, rtol=1e-6, atol=1e-9)
    assert stiff.success and stiff.stepper["switches"]
    # Chebyshev stepping (RKC) covers this spectrum within its stage cap
    assert stiff.stepper["switches"][-1][1] in ("chebyshev", "stiff")
    assert stiff.nfev < rk.nfev / 3
    assert np.linalg.norm(stiff.W - rk.W) <= 1e-5 * np.linalg.norm(rk.W)
    # the README example: RK45 is held by accuracy (rtol 1e-10), never by stability
    Xg = gaussian_data(20, seed=0)
    rng = np.random.default_rng(1)
    Wg = rng.standard_normal((20, 3)) @ rng.standard_normal((3, 20)) / 20
    fg = balanced_factors(Wg, (20, 8, 5, 20), seed=2)
    calm = factor_flow(Xg, None, fg, t_end=20.0, method="auto", rtol=1e-10, atol=1e-12)
    assert calm.success and calm.stepper["switches"] == []


@pytest.mark.parametrize("where", ["rhs", "jvp"])
def test_auto_resume_is_bit_identical(tmp_path, monkeypatch, where):
    X, _, fac = _stiff_autoencoder()
    path = tmp_path / "run.npz"
    kw = dict(t_end=100.0, method="auto", rtol=1e-6, checkpoint=path, checkpoint_steps=20)
    full = factor_flow(X, None, fac, t_end=100.0, method="auto", rtol=1e-6)
    assert full.stepper["switches"]
    calls = [0]
    rhs, jac = LayerSystem.rhs, LayerSystem.jacobian

    def interrupting(self, y):
        calls[0] += 1
        if calls[0] == 700:  # after the first switch to stiff stepping
            raise KeyboardInterrupt
        return rhs(self, y)

    def interrupting_jac(self, y):
        J = jac(self, y)

        def jv(z):
            calls[0] += 1
            if calls[0] == 30:  # inside a power iteration (48 products in the run)
                raise KeyboardInterrupt
            return J(z)

        return jv

    if where == "rhs":
        monkeypatch.setattr(LayerSystem, "rhs", interrupting)
    else:
        monkeypatch.setattr(LayerSystem, "jacobian", interrupting_jac)
    with pytest.warns(UserWarning, match="interrupted"):
        part = factor_flow(X, None, fac, **kw)
    assert part.status == "interrupted"
    monkeypatch.setattr(LayerSystem, "rhs", rhs)
    monkeypatch.setattr(LayerSystem, "jacobian", jac)
    rest = factor_flow(X, None, fac, **kw)
    assert np.array_equal(rest.W, full.W)
    assert rest.stepper["switches"] == full.stepper["switches"]


def test_method_refused_without_jacobian():
    X = gaussian_data(6, seed=0)
    W0 = np.eye(6)[:, :2] @ np.eye(6)[:2]
    with pytest.raises(ValueError, match="Jacobian-vector products"):
        manifold_flow(X, None, W0, depth=1, t_end=1.0, method="Rosenbrock")
    with pytest.raises(ValueError, match="adapts its step"):
        factor_flow(X, None, [np.eye(6)], t_end=1.0, method="auto", step=0.1)


def test_reference_solution_of_linear_flow_by_solve_ivp():
    """The stepper through the integrator on a linear layer flow (N = 1: W' = -(W C - C)),
    against solve_ivp's Radau at tight tolerance."""
    X = 4.0 * gaussian_data(5, seed=3)
    C = X @ X.T
    W0 = np.zeros((5, 5)) + 0.1 * np.eye(5)
    res = factor_flow(X, None, [W0], t_end=3.0, method="Rosenbrock", rtol=1e-7, atol=1e-10)
    sol = solve_ivp(lambda t, w: (-(w.reshape(5, 5) @ C - C)).ravel(), (0, 3.0), W0.ravel(),
                    method="Radau", rtol=1e-12, atol=1e-14)
    ref = sol.y[:, -1].reshape(5, 5)
    assert np.linalg.norm(res.W - ref) <= 1e-5 * np.linalg.norm(ref)


def _relaxing_layer_flow():
    """Layer flow at N = 1 with stiffness ratio 1e4: W' = -(W - I) C, W(t) = I + (W0 - I)e^{-tC}."""
    rng = np.random.default_rng(2)
    Q = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    C = (Q * np.array([1e3, 30.0, 1.0, 0.1])) @ Q.T
    W0 = rng.standard_normal((4, 4))
    return np.linalg.cholesky(C), C, W0


@pytest.mark.parametrize("method", ["Rosenbrock", "auto"])
def test_events_and_ftol_located_on_the_stiff_continuous_extension(method):
    """An event and ftol in a Rosenbrock or Chebyshev (auto) run are located on the step's cubic
    Hermite interpolant: their times agree with the closed form to the run's accuracy (measured
    <= 1.2e-4 at rtol 1e-6; at the step ends they were off by 1e-2 ... 2e-1)."""
    X, C, W0 = _relaxing_layer_flow()
    E = lambda t: (W0 - np.eye(4)) @ expm(-t * C)  # noqa: E731

    for T0 in (3.0, 12.0):
        lev = np.sum(E(T0) ** 2)  # W is the list of factors: W[0] the only one
        ev = lambda t, W, lev=lev: np.sum((W[0] - np.eye(4)) ** 2) - lev  # noqa: E731
        ev.terminal = True
        res = factor_flow(X, None, [W0], t_end=40.0, method=method, rtol=1e-6, atol=1e-9,
                          events=[ev])
        assert res.status == "event"
        if method == "auto":
            assert res.stepper["switches"][0][1] == "chebyshev"
            assert res.stepper["switches"][0][0] < 1.0
        assert abs(res.t_events[0][0] - T0) <= 1e-3 * T0, (T0, res.t_events[0][0])
        # the loss 1/2 ||(W - I) X||^2 = 1/2 tr(E C E^T) at T0 as ftol
        ftol = 0.5 * np.trace(E(T0) @ C @ E(T0).T)
        res = factor_flow(X, None, [W0], t_end=40.0, method=method, rtol=1e-6, atol=1e-9,
                          ftol=ftol)
        assert res.status == "converged"
        assert abs(res.t[-1] - T0) <= 1e-3 * T0, (T0, res.t[-1])
