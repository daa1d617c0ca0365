"""Tests of linrank.flows against independent references (Corollary 8, dense ODE, closed forms)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from linrank import (
    LinearData,
    balanced_factors,
    factor_flow,
    gaussian_data,
    manifold_flow,
    product,
    top_projector,
)
from linrank.flows.riemannian import manifold_engine
from linrank.metric import dense_A

TOL = {"rtol": 1e-10, "atol": 1e-12}


def _low_rank(rng, d_y, d_x, k, svals=None):
    u = np.linalg.qr(rng.standard_normal((d_y, k)))[0]
    v = np.linalg.qr(rng.standard_normal((d_x, k)))[0]
    s = np.linspace(1.0, 0.5, k) if svals is None else np.asarray(svals, dtype=float)
    return (u * s) @ v.T


CASES = {
    # name: (d_x, hidden widths, d_y, k, autoencoder)
    "autoencoder": (6, (5,), 6, 2, True),
    "regression-rectangular": (6, (5, 3), 4, 2, False),
    "unequal-widths-depth4": (5, (7, 3, 9), 3, 3, False),
}


@pytest.mark.parametrize("name", list(CASES))
def test_corollary8_product_of_factor_flow_is_manifold_flow(name):
    d_x, widths, d_y, k, auto = CASES[name]
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    n = 12
    X = rng.standard_normal((d_x, n)) / np.sqrt(d_x)
    Y = None if auto else rng.standard_normal((d_y, n))
    W0 = _low_rank(rng, d_y, d_x, k)
    N = len(widths) + 1
    fs = balanced_factors(W0, (d_x, *widths, d_y), seed=1)
    rf = factor_flow(X, Y, fs, 3.0, conserved=True, **TOL)
    rm = manifold_flow(X, Y, W0, N, 3.0, **TOL)
    assert rf.status == rm.status == "completed"
    rel = np.linalg.norm(rf.W - rm.W) / np.linalg.norm(rm.W)
    assert rel <= 1e-6, rel
    assert rf.conserved_drift.max() <= 1e-8
    assert rf.conserved_drift[0] == 0.0
    # the same flow from covariances, and as a LinearData
    Yd = X if auto else Y
    rc = manifold_flow(X @ X.T, None if auto else Yd @ X.T, W0, N, 3.0, covariance=True, **TOL)
    assert np.linalg.norm(rc.W - rm.W) <= 1e-8 * np.linalg.norm(rm.W)
    rs = manifold_flow(LinearData.from_samples(X, Y, form="samples"), None, W0, N, 3.0, **TOL)
    assert np.linalg.norm(rs.W - rm.W) <= 1e-8 * np.linalg.norm(rm.W)
    # the layer gradient norm of balanced factors is the Riemannian gradient norm
    assert rf.grad_norm[0] == pytest.approx(rm.grad_norm[0], rel=1e-10)


def _dense_reference(X, Y, W0, N, t_end):
    """dW/dt = -A_W(grad L1) with the dense fractional powers of Definition 4 (solve_ivp DOP853)."""
    shape = W0.shape

    def f(_t, w):
        W = w.reshape(shape)
        return -dense_A(W, (W @ X - Y) @ X.T, N).ravel()

    sol = solve_ivp(f, (0, t_end), W0.ravel(), method="DOP853", rtol=1e-12, atol=1e-13)
    return sol.y[:, -1].reshape(shape)


@pytest.mark.parametrize("N", [2, 3, 5])
def test_manifold_flow_matches_dense_ode(N):
    rng = np.random.default_rng(N)
    X = rng.standard_normal((5, 9)) / 2
    Y = rng.standard_normal((4, 9))
    # spread and nearly equal singular values: the weights must be exact there
    W0 = _low_rank(rng, 4, 5, 3, svals=[1.0, 1.0 + 1e-9, 1e-3])
    ref = _dense_reference(X, Y, W0, N, 1.0)
    r = manifold_flow(X, Y, W0, N, 1.0, **TOL)
    assert np.linalg.norm(r.W - ref) <= 1e-7 * np.linalg.norm(ref)


def test_manifold_flow_depth1_is_projected_euclidean_flow():
    rng = np.random.default_rng(11)
    X, Y = rng.standard_normal((5, 9)) / 2, rng.standard_normal((4, 9))
    W0 = _low_rank(rng, 4, 5, 2)

    def f(_t, w):
        W = w.reshape(4, 5)
        U, _, Vt = np.linalg.svd(W)
        Pu, Pv = U[:, :2] @ U[:, :2].T, Vt[:2].T @ Vt[:2]
        G = (W @ X - Y) @ X.T
        return -(Pu @ G + G @ Pv - Pu @ G @ Pv).ravel()

    ref = solve_ivp(f, (0, 1), W0.ravel(), method="DOP853", rtol=1e-12, atol=1e-13).y[:, -1]
    r = manifold_flow(X, Y, W0, 1, 1.0, **TOL)
    assert np.linalg.norm(r.W.ravel() - ref) <= 1e-7 * np.linalg.norm(ref)


def test_factor_flow_matches_solve_ivp_unbalanced():
    rng = np.random.default_rng(12)
    X, Y = rng.standard_normal((4, 8)) / 2, rng.standard_normal((3, 8))
    fs = [rng.standard_normal((5, 4)) / 2, rng.standard_normal((3, 5)) / 2]

    def f(_t, w):
        W1, W2 = w[:20].reshape(5, 4), w[20:].reshape(3, 5)
        G = (W2 @ W1 @ X - Y) @ X.T
        return -np.concatenate(((W2.T @ G).ravel(), (G @ W1.T).ravel()))

    y0 = np.concatenate([W.ravel() for W in fs])
    ref = solve_ivp(f, (0, 2), y0, method="DOP853", rtol=1e-12, atol=1e-13).y[:, -1]
    r = factor_flow(X, Y, fs, 2.0, **TOL)
    got = np.concatenate([W.ravel() for W in r.factors])
    assert np.linalg.norm(got - ref) <= 1e-7 * np.linalg.norm(ref)
    # non-balanced start: the conserved quantities are not zero but still constant
    r2 = factor_flow(X, Y, fs, 2.0, conserved=True, **TOL)
    assert r2.conserved_drift.max() <= 1e-8


@pytest.mark.parametrize("flow", ["factor", "manifold"])
def test_loss_never_increases(flow):
    X = gaussian_data(8, seed=2)
    rng = np.random.default_rng(2)
    W0 = _low_rank(rng, 8, 8, 3, svals=[2.0, 1.0, 0.1])
    if flow == "factor":
        r = factor_flow(X, None, balanced_factors(W0, (8, 4, 6, 8), seed=0), 20.0)
    else:
        r = manifold_flow(X, None, W0, 3, 20.0)
    assert r.t.size > 10
    assert np.all(np.diff(r.t) > 0)
    assert np.all(np.diff(r.loss) <= 1e-13 * r.loss[0])
    assert r.loss[-1] < r.loss[0]


def _spectrum_data(lams, n, seed):
    """X (d x n) with X X^T having exactly the eigenvalues lams (random eigenvectors)."""
    rng = np.random.default_rng(seed)
    d = len(lams)
    U = np.linalg.qr(rng.standard_normal((d, d)))[0]
    V = np.linalg.qr(rng.standard_normal((n, d)))[0]
    return (U * np.sqrt(lams)) @ V.T, U


@pytest.mark.parametrize("N", [2, 3, 4])
def test_autoencoder_converges_to_top_projector(N):
    X, _ = _spectrum_data([3.0, 2.0, 1.0, 0.8, 0.6, 0.5], 10, seed=N)
    P = top_projector(X, 2)
    rng = np.random.default_rng(N)
    W0 = _low_rank(rng, 6, 6, 2, svals=[0.8, 0.3])
    # near the attracting equilibrium each step may move W by ~ rtol ||W||: tolerances set the floor
    r = manifold_flow(X, None, W0, N, 200.0, target=P, gtol=1e-10, rtol=1e-12, atol=1e-14)
    assert r.status == "converged", r.message
    assert r.grad_norm[-1] <= 1e-10
    assert r.distance[-1] <= 1e-9
    np.testing.assert_allclose(r.W, P, atol=1e-9)
    np.testing.assert_allclose(r.singular_values[-1], [1.0, 1.0], atol=1e-9)
    # the same from balanced factors of the layer-wise flow with hidden widths k = 2 (with wider
    # layers rank 2 is not invariant under rounding: U_2 U_2^T is a saddle among rank-3 products
    # and the layer-wise flow escapes to U_3 U_3^T, as in Remark 33)
    fs = balanced_factors(W0, (6,) + (2,) * (N - 1) + (6,), seed=N)
    rf = factor_flow(X, None, fs, 200.0, target=P, gtol=1e-10, rtol=1e-12, atol=1e-14)
    assert rf.status == "converged" and rf.distance[-1] <= 1e-9


def test_remark33_special_start_follows_exact_solution_then_escapes():
    X, U = _spectrum_data([2.0, 1.0, 0.7, 0.4], 8, seed=33)
    lam1 = 2.0
    u1 = U[:, :1]
    t_eval = np.linspace(0.0, 50.0 / lam1, 101)
    r = factor_flow(X, None, [u1.T.copy(), -u1.copy()], t_eval[-1], t_eval=t_eval,
                    trajectory=True, rtol=1e-11, atol=1e-15)
    assert r.status == "completed"
    assert np.array_equal(r.t, t_eval)
    a = 1.0 / np.sqrt(2.0 * np.exp(2.0 * lam1 * t_eval) - 1.0)
    norm1 = np.array([np.linalg.norm(f[0]) for f in r.trajectory])
    normW = np.array([np.linalg.norm(f[1] @ f[0]) for f in r.trajectory])
    early = lam1 * t_eval <= 8.0
    np.testing.assert_allclose(norm1[early], a[early], rtol=1e-6)
    np.testing.assert_allclose(normW[early], a[early] ** 2, rtol=1e-6)
    # rounding errors grow at a rate ~ lambda_1: the flow leaves the invariant set and
    # converges to the top-1 projector (||W|| back to 1)
    assert normW.min() < 1e-8
    assert normW[-1] == pytest.approx(1.0, abs=1e-6)
    assert np.linalg.norm(r.W - top_projector(X, 1)) < 1e-6


def test_remark33_manifold_flow_integrates_through_the_decay():
    """Remark 33's start -u1 u1^T at N = 2: s(t) = 1/(2 e^(4t) - 1) on the invariant line. The
    run is not stopped ("collapsed" only where the state leaves M_k): it follows the closed
    form down to s ~ 1e-8 and reports the decay law (exponential, rate 4 = 2 lambda_1); with
    collapse_tol it stops where s fell by that factor from its peak."""
    X, U = _spectrum_data([2.0, 1.0, 0.7, 0.4], 8, seed=33)
    u1 = U[:, :1]
    r = manifold_flow(X, None, -u1 @ u1.T, 2, 6.0, rtol=1e-10, atol=1e-16)
    assert r.status == "completed" and r.collapse is None
    exact = 1.0 / (2.0 * np.exp(4.0 * r.t) - 1.0)
    keep = exact > 1e-8
    np.testing.assert_allclose(r.singular_values[keep, 0], exact[keep], rtol=1e-5)
    assert r.rank_decay["law"] == "exponential"
    assert r.rank_decay["rate"] == pytest.approx(4.0, rel=1e-3)
    assert "approaches a critical point of rank < 1" in r.message and "exp(-4 t)" in r.message
    # the chain engine (auto at N = 2) controls the relative error of s: it follows the closed
    # form to 1e-8 relative down to s = 1e-16 and is not stopped
    rch = manifold_flow(X, None, -u1 @ u1.T, 2, 10.0, rtol=1e-10, atol=1e-16)
    assert rch.status == "completed" and rch.collapse is None
    exact = 1.0 / (2.0 * np.exp(4.0 * rch.t) - 1.0)
    keep = exact > 1e-16
    np.testing.assert_allclose(rch.singular_values[keep, 0], exact[keep], rtol=1e-8)
    # Remark 33 with the factored engine: the computed flow follows s down to ~1e-16, where a
    # step (its error tolerance atol ~ 1e-16 above s) carries it across 0: det S changes sign,
    # the trajectory passed through W = 0 (rank 0), which the exact flow on M_1 never does:
    # "collapsed" (rule (d))
    with pytest.warns(RuntimeWarning, match="det S changed sign"):
        r30 = manifold_flow(X, None, -u1 @ u1.T, 2, 30.0, rtol=1e-10, atol=1e-16,
                            engine="factored")
    assert r30.status == "collapsed" and r30.collapse["value"] < 1e-12
    assert r30.collapse["t"] > 6.0
    with pytest.warns(RuntimeWarning, match="Remark 33"):
        rc = manifold_flow(X, None, -u1 @ u1.T, 2, 30.0, rtol=1e-10, atol=1e-16,
                           collapse_tol=1e-10)
    assert rc.status == "collapsed" and not rc.success
    assert rc.collapse["value"] < 1e-10 <= rc.singular_values[-2, 0]
    assert rc.collapse["peak"] == pytest.approx(1.0)
    assert np.all(np.isfinite(rc.loss)) and np.all(np.isfinite(rc.W))
    np.testing.assert_allclose(rc.singular_values[:, 0], 1.0 / (2.0 * np.exp(4.0 * rc.t) - 1.0),
                               rtol=1e-5)


def _order_problem():
    X, _ = _spectrum_data([1.5, 1.0, 0.6, 0.3, 0.2], 9, seed=4)
    rng = np.random.default_rng(4)
    W0 = _low_rank(rng, 5, 5, 2, svals=[0.9, 0.4])
    return X, W0


@pytest.mark.parametrize("flow", ["factor", "manifold"])
@pytest.mark.parametrize("method, order, steps", [("Euler", 1, (40, 80, 160)),
                                                  ("RK4", 4, (10, 20, 40))])
def test_fixed_step_orders(flow, method, order, steps):
    X, W0 = _order_problem()
    T = 1.0
    fs = balanced_factors(W0, (5, 3, 5), seed=0)

    def run(**kw):
        if flow == "factor":
            return factor_flow(X, None, fs, T, **kw).W
        return manifold_flow(X, None, W0, 2, T, **kw).W

    ref = run(rtol=1e-13, atol=1e-15)
    errs = [np.linalg.norm(run(method=method, step=T / n) - ref) for n in steps]
    rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.abs(rates - order) < 0.15 * order + 0.05), (errs, rates)


def _interrupt_after(monkeypatch, cls, name, n_calls):
    orig = getattr(cls, name)
    count = {"n": 0}

    def wrapper(self, *args, **kwargs):
        count["n"] += 1
        if count["n"] == n_calls:
            raise KeyboardInterrupt
        return orig(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, wrapper)


@pytest.mark.parametrize("flow", ["factor", "manifold", "manifold-projected"])
@pytest.mark.parametrize("method", ["RK45", "Euler"])
def test_checkpoint_resume_is_bit_identical(tmp_path, monkeypatch, flow, method):
    """Bit-identity is promised for a run resumed in the same environment (machine, BLAS kernel,
    thread count) and tested here within one process, where it holds on every kernel."""
    X = gaussian_data(6, seed=9)
    rng = np.random.default_rng(9)
    W0 = _low_rank(rng, 6, 6, 2)
    opts = {"method": method, "trajectory": True, "target": top_projector(X, 2)}
    if method == "Euler":
        opts["step"] = 0.05
    if flow == "factor":
        fs = balanced_factors(W0, (6, 4, 6), seed=1)

        def call(**kw):
            return factor_flow(X, None, fs, 10.0, conserved=True, **opts, **kw)

        hook_cls, hook = LinearData, "loss_and_gradient"
    else:
        engine = "projected" if flow == "manifold-projected" else "auto"

        def call(**kw):
            return manifold_flow(X, None, W0, 2, 10.0, engine=engine, **opts, **kw)

        # the interrupt comes from inside the right-hand side of the engine in use
        hook_cls, hook = ((LinearData, "point_products") if engine == "projected"
                          else (manifold_engine("auto", 2, method), "rhs"))
    full = call()
    path = tmp_path / "ck.npz"
    with monkeypatch.context() as mp:
        _interrupt_after(mp, hook_cls, hook, 60)
        with pytest.warns(UserWarning, match="interrupted"):
            part = call(checkpoint=path, checkpoint_steps=3)
    assert part.status == "interrupted"
    assert 0 < part.t_final < 10.0 and part.t.size > 1 and part.t[-1] <= part.t_final
    assert len(part.trajectory) == part.t.size
    assert path.exists()
    resumed = call(checkpoint=path, checkpoint_steps=3)
    assert resumed.status == "completed"
    for key in ("t", "loss", "grad_norm", "distance"):
        assert np.array_equal(getattr(resumed, key), getattr(full, key)), key
    assert np.array_equal(resumed.W, full.W)
    assert resumed.nsteps == full.nsteps
    if flow == "factor":
        assert np.array_equal(resumed.conserved_drift, full.conserved_drift)
    else:
        assert np.array_equal(resumed.singular_values, full.singular_values)
    # a finished checkpoint returns the finished run
    again = call(checkpoint=path)
    assert np.array_equal(again.W, full.W)
    # a checkpoint of another run is refused, not silently overwritten
    with pytest.raises(ValueError, match="different run"):
        if flow == "factor":
            factor_flow(X, None, fs, 11.0, checkpoint=path, **opts)
        else:
            manifold_flow(X, None, W0, 3, 10.0, checkpoint=path, **opts)


def test_t_eval_trajectory_distance_and_progress(capsys):
    X = gaussian_data(5, seed=1)
    rng = np.random.default_rng(1)
    W0 = _low_rank(rng, 5, 5, 2)
    P = top_projector(X, 2)
    te = np.array([0.0, 0.3, 1.0, 2.5])
    r = manifold_flow(X, None, W0, 2, 2.5, t_eval=te, trajectory=True, target=P, progress=True)
    assert np.array_equal(r.t, te)
    assert len(r.trajectory) == 4
    for p, dist in zip(r.trajectory, r.distance):
        Wt = (p.u * p.s) @ p.vt
        assert dist == pytest.approx(np.linalg.norm(Wt - P), rel=1e-12)
    u, s, vt = np.linalg.svd(P)
    r2 = manifold_flow(X, None, W0, 2, 2.5, t_eval=te, target=(u[:, :2], s[:2], vt[:2]))
    np.testing.assert_allclose(r2.distance, r.distance, rtol=1e-10)
    fs = balanced_factors(W0, (5, 3, 5), seed=0)
    rf = factor_flow(X, None, fs, 2.5, t_eval=te[1:], trajectory=True, target=P)
    assert np.array_equal(rf.t, te[1:])
    assert np.linalg.norm(product(rf.trajectory[-1]) - P) == pytest.approx(rf.distance[-1])
    assert "flow" in capsys.readouterr().err


def test_divergent_fixed_step_is_reported_not_nan():
    X = gaussian_data(5, seed=1)
    W0 = 3.0 * np.eye(5)[:, :2] @ np.eye(5)[:2]
    r = factor_flow(X, None, balanced_factors(W0, (5, 2, 5), seed=0), 50.0, method="Euler",
                    step=2.0)
    assert r.status == "failed" and "diverged" in r.message, r.message
    assert np.all(np.isfinite(r.loss))
    rm = manifold_flow(X, None, W0, 2, 50.0, method="Euler", step=2.0)
    assert rm.status == "failed" and "diverged" in rm.message, rm.message
    assert np.all(np.isfinite(rm.loss)) and np.all(np.isfinite(rm.W))


def test_large_depth_and_small_singular_values():
    X = gaussian_data(6, seed=6)
    rng = np.random.default_rng(6)
    W0 = _low_rank(rng, 6, 6, 3, svals=[1.0, 1e-2, 1e-4])
    ref = _dense_reference(X, X, W0, 8, 0.2)
    r = manifold_flow(X, None, W0, 8, 0.2, **TOL)
    assert r.success
    assert np.linalg.norm(r.W - ref) <= 1e-7 * np.linalg.norm(ref)
    # singular values spread over 7 decades: Corollary 8 against the layer-wise flow
    W1 = _low_rank(rng, 6, 6, 3, svals=[1.0, 1e-4, 1e-7])
    rm = manifold_flow(X, None, W1, 8, 0.5, **TOL)
    rf = factor_flow(X, None, balanced_factors(W1, (6,) + (4,) * 7 + (6,), seed=2), 0.5, **TOL)
    assert np.linalg.norm(rm.W - rf.W) <= 1e-6 * np.linalg.norm(rf.W)
    sv_f = np.linalg.svd(rf.W, compute_uv=False)[:3]
    np.testing.assert_allclose(rm.singular_values[-1], sv_f, rtol=1e-8, atol=1e-10)
    r6 = manifold_flow(X, None, W0, 10**6, 1e-6)
    assert r6.success and np.all(np.isfinite(r6.W))


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"X": np.full((4, 6), np.nan)}, ValueError, "finite"),
        ({"Y": np.ones((4, 7))}, ValueError, "samples"),
        ({"W0": np.ones((4, 5))}, ValueError, "shape"),
        ({"W0": np.zeros((4, 4))}, ValueError, "rank 0"),
        ({"W0": np.full((4, 4), np.inf)}, ValueError, "finite"),
        ({"t_end": -1.0}, ValueError, "t_end"),
        ({"t_end": "1"}, TypeError, "t_end"),
        ({"depth": 0}, ValueError, "depth"),
        ({"depth": 2.0}, TypeError, "depth"),
        ({"method": "RK23"}, ValueError, "method"),
        ({"method": "Euler"}, ValueError, "step"),
        ({"step": 0.1}, ValueError, "fixed-step"),
        ({"rtol": 0.0}, ValueError, "rtol"),
        ({"t_eval": [0.0, 2.0]}, ValueError, "t_eval"),
        ({"t_eval": [0.5, 0.2]}, ValueError, "increasing"),
        ({"W0": (np.eye(4)[:, :1], np.array([-1.0]), np.eye(4)[:1])}, ValueError, "positive"),
        ({"rank": 3}, ValueError, "numerical rank"),
        ({"target": np.ones((3, 3))}, ValueError, "target"),
        ({"engine": "fast"}, ValueError, "engine"),
        ({"engine": "factored", "depth": 1}, ValueError, "N >= 2"),
    ],
)
def test_manifold_flow_bad_input(kwargs, exc, match):
    args = {"X": np.eye(4, 6), "Y": None, "W0": np.diag([1.0, 1.0, 0.0, 0.0]), "depth": 2,
            "t_end": 1.0}
    args.update(kwargs)
    X, Y, W0, depth, t_end = (args.pop(k) for k in ("X", "Y", "W0", "depth", "t_end"))
    with pytest.raises(exc, match=match):
        manifold_flow(X, Y, W0, depth, t_end, **args)


@pytest.mark.parametrize(
    "factors, kwargs, exc, match",
    [
        ([np.ones((3, 4)), np.ones((4, 2))], {}, ValueError, "chain"),
        ([np.ones((3, 5)), np.ones((4, 3))], {}, ValueError, "d_x"),
        ([np.ones((3, 4)), np.ones((2, 3))], {}, ValueError, "d_y"),
        ([np.ones((3, 4)), np.full((4, 3), np.nan)], {}, ValueError, "finite"),
        (np.ones((4, 4)), {}, TypeError, "sequence"),
        ([np.ones((3, 4)), np.ones((4, 3))], {"t_end": -0.5}, ValueError, "t_end"),
        ([np.ones((3, 4)), np.ones((4, 3))], {"Y": np.ones((4, 5))}, ValueError, "samples"),
    ],
)
def test_factor_flow_bad_input(factors, kwargs, exc, match):
    X = np.ones((4, 6))
    Y = kwargs.pop("Y", None)
    t_end = kwargs.pop("t_end", 1.0)
    with pytest.raises(exc, match=match):
        factor_flow(X, Y, factors, t_end, **kwargs)


def test_zero_time_and_gtol_at_start():
    X = gaussian_data(4, seed=0)
    P = top_projector(X, 2)
    r = manifold_flow(X, None, P, 2, 0.0)
    assert r.status == "completed" and r.t.tolist() == [0.0]
    np.testing.assert_allclose(r.W, P, atol=1e-12)
    r2 = manifold_flow(X, None, P, 2, 5.0, gtol=1e-8)
    assert r2.status == "converged" and r2.nsteps == 0


# ---------------------------------------------------------------------- the factored engine
@pytest.mark.parametrize("N", [2, 3, 8])
def test_factored_engine_against_dense_ode_and_projected_engine(N):
    """Both manifold engines (independent integrators of the same flow) against the dense ODE."""
    rng = np.random.default_rng(40 + N)
    X, Y = rng.standard_normal((6, 11)) / 2, rng.standard_normal((4, 11))
    W0 = _low_rank(rng, 4, 6, 3, svals=[1.0, 1.0 + 1e-9, 1e-3])
    ref = _dense_reference(X, Y, W0, N, 2.0)
    for form in ("samples", "covariance"):
        data = LinearData.from_samples(X, Y, form=form)
        rf = manifold_flow(data, None, W0, N, 2.0, engine="factored", **TOL)
        rp = manifold_flow(data, None, W0, N, 2.0, engine="projected", **TOL)
        assert rf.success and rp.success
        assert np.linalg.norm(rf.W - ref) <= 1e-9 * np.linalg.norm(ref)
        assert np.linalg.norm(rp.W - ref) <= 1e-7 * np.linalg.norm(ref)
        np.testing.assert_allclose(rf.loss[-1], 0.5 * np.linalg.norm(ref @ X - Y) ** 2,
                                   rtol=1e-9)
        np.testing.assert_allclose(rf.singular_values[-1],
                                   np.linalg.svd(ref, compute_uv=False)[:3], rtol=1e-8)
        np.testing.assert_allclose(rf.grad_norm[-1], rp.grad_norm[-1], rtol=1e-5)
        # the final point is a valid SVD: orthonormal factors, descending positive s
        p = rf.point
        assert np.linalg.norm(p.u.T @ p.u - np.eye(3)) < 1e-13
        assert np.linalg.norm(p.vt @ p.vt.T - np.eye(3)) < 1e-13
        assert np.all(np.diff(p.s) <= 0) and p.s[-1] > 0


def _dense_A_eig(W, Z, N):
    """Definition 4 summed term by term over j = 1..N in the eigenbases of WW^T and W^TW."""
    lu, Qu = np.linalg.eigh(W @ W.T)
    lv, Qv = np.linalg.eigh(W.T @ W)
    tol = 1e-12 * max(lu.max(), lv.max())
    lu, lv = np.where(lu > tol, lu, 0.0), np.where(lv > tol, lv, 0.0)
    j = np.arange(1, N + 1)
    # sum_j lu_i^((N-j)/N) lv_k^((j-1)/N), with 0^0 = 1 (numpy's convention too)
    weights = (lu[:, None] ** ((N - j) / N)) @ (lv[:, None] ** ((j - 1) / N)).T
    return Qu @ (weights * (Qu.T @ Z @ Qv)) @ Qv.T


def test_depth_1000_matches_dense_reference():
    X = gaussian_data(5, seed=50)
    rng = np.random.default_rng(50)
    W0 = _low_rank(rng, 5, 5, 3, svals=[1.0, 0.3, 1e-3])
    N, t_end = 1000, 2e-3  # the flow is fast at depth N: rates ~ N s^2 lambda

    def f(_t, w):
        W = w.reshape(5, 5)
        return -_dense_A_eig(W, (W @ X - X) @ X.T, N).ravel()

    assert np.allclose(_dense_A_eig(W0, X @ X.T, 3), dense_A(W0, X @ X.T, 3))
    ref = solve_ivp(f, (0, t_end), W0.ravel(), method="DOP853", rtol=1e-12,
                    atol=1e-14).y[:, -1].reshape(5, 5)
    assert np.linalg.norm(ref - W0) > 0.05 * np.linalg.norm(W0)  # the flow moved
    for engine in ("factored", "projected"):
        r = manifold_flow(X, None, W0, N, t_end, engine=engine, **TOL)
        assert r.success
        assert np.linalg.norm(r.W - ref) <= 1e-8 * np.linalg.norm(ref), engine


def test_factored_engine_follows_a_decaying_singular_value():
    """N = 3 on the line W = -s u_1 u_1^T (Remark 33's start): ds/dt = -3 lambda_1 s^(4/3) (1 + s),
    s -> 0 like t^-3; the factored engine tracks s to relative 1e-6 down to ~1e-6 and reports a
    collapse below collapse_tol (nothing divides by s)."""
    X, U = _spectrum_data([2.0, 1.0, 0.7, 0.4], 8, seed=33)
    lam1, N = 2.0, 3
    u1 = U[:, :1]
    t_eval = np.linspace(0.0, 40.0, 41)

    def g(_t, z):  # z = log s
        s = np.exp(z[0])
        return [-N * lam1 * s ** ((N - 2) / N) * (1.0 + s)]

    ref = np.exp(solve_ivp(g, (0, 40.0), [0.0], method="DOP853", t_eval=t_eval, rtol=1e-13,
                           atol=1e-14).y[0])
    r = manifold_flow(X, None, -u1 @ u1.T, N, 40.0, t_eval=t_eval, rtol=1e-11, atol=1e-20)
    assert r.status == "completed"
    assert ref[-1] < 1e-5
    np.testing.assert_allclose(r.singular_values[:, 0], ref, rtol=1e-6)
    # the decay law in the message: s^(-1/3) grows linearly, s ~ t^-3 (the fit on [20, 40]
    # sees the offset of (1 + c t)^-3: within 0.1 of 3)
    assert r.rank_decay["law"] == "power"
    assert abs(r.rank_decay["exponent"] - 3.0) < 0.1
    assert "like t^-" in r.message
    with pytest.warns(RuntimeWarning, match="Remark 33"):
        rc = manifold_flow(X, None, -u1 @ u1.T, N, 40.0, rtol=1e-11, atol=1e-20,
                           collapse_tol=1e-4)
    assert rc.status == "collapsed" and np.all(np.isfinite(rc.W))
    assert rc.collapse["value"] < 1e-4 <= rc.singular_values[-2, 0]
