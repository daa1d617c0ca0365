"""Events, ftol, rdtol, record callables and callback failures of the flows
(linrank.flows.events, linrank.flows.integrator), against closed forms and the stated rules."""

from __future__ import annotations

import numpy as np
import pytest

from linrank import (
    DeepLinearFixedRank,
    ambient_problem,
    balanced_factors,
    factor_flow,
    manifold_flow,
    matrix_completion_problem,
    product,
    riemannian_flow,
)
from linrank.flows.chain import ChainSystem
from linrank.flows.factored import FactoredSystem

LAM1 = 2.0
TIGHT = {"rtol": 1e-10, "atol": 1e-16}


def _line_data():
    """X (4 x 8) with X X^T = U diag(2, 1, 0.7, 0.4) U^T and u1 = U[:, 0]."""
    rng = np.random.default_rng(33)
    U = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    V = np.linalg.qr(rng.standard_normal((8, 4)))[0]
    return (U * np.sqrt([LAM1, 1.0, 0.7, 0.4])) @ V.T, U[:, :1]


def _s_exact(t):
    """Remark 33's line W(t) = -s(t) u1 u1^T at N = 2: s(t) = 1 / (2 e^(2 lambda_1 t) - 1)."""
    return 1.0 / (2.0 * np.exp(2 * LAM1 * t) - 1.0)


def _t_of_s(s):
    return np.log((1.0 / s + 1.0) / 2.0) / (2 * LAM1)


def _loss_of_s(X, s):
    """L^1 on the line: 0.5 tr(XX^T) + lambda_1 (s + s^2 / 2)."""
    return 0.5 * float(np.sum(X * X)) + LAM1 * (s + 0.5 * s * s)


def _runs(X, u1, t_end, **kw):
    """The same flow three ways: manifold_flow (both engines) and factor_flow (k = 1 layers)."""
    W0 = -u1 @ u1.T
    fs = [u1.T.copy(), -u1.copy()]
    return {
        "factored": manifold_flow(X, None, W0, 2, t_end, **TIGHT, **kw),
        "projected": manifold_flow(X, None, W0, 2, t_end, engine="projected", **TIGHT, **kw),
        "layers": factor_flow(X, None, fs, t_end, **TIGHT, **kw),
    }


def _s1(W):
    """The largest singular value of a point or of a factor list."""
    if isinstance(W, list):
        return float(np.linalg.norm(product(W), 2))
    return float(W.s[0])


def test_terminal_event_time_matches_the_closed_form():
    X, u1 = _line_data()

    def small(t, W):
        return _s1(W) - 0.01

    small.terminal = True
    for name, r in _runs(X, u1, 3.0, events=small).items():
        assert r.status == "event" and r.success, name
        t_star = _t_of_s(0.01)
        assert r.t_events[0].size == 1
        assert abs(r.t_events[0][0] - t_star) < 1e-8, (name, r.t_events[0][0] - t_star)
        assert r.t_final == r.t_events[0][0] == r.t[-1]
        assert _s1(r.W_events[0][0]) == pytest.approx(0.01, rel=1e-8)
        assert np.linalg.norm(r.W, 2) == pytest.approx(0.01, rel=1e-8)


def test_event_directions_counts_and_time_events():
    X, u1 = _line_data()

    def half(t, W):
        return _s1(W) - 0.5


    def half_up(t, W):
        return half(t, W)

    half_up.direction = 1.0

    def half_down(t, W):
        return half(t, W)

    half_down.direction = -1

    def tick(t, W):  # zeros at t = 0.5, 1, 1.5, ...: rising at the integers
        return np.sin(2 * np.pi * t)

    tick.terminal = 3
    r = manifold_flow(X, None, -u1 @ u1.T, 2, 3.0, events=[half_up, half_down, half, tick],
                      **TIGHT)
    assert r.status == "event" and "events[3] (tick)" in r.message
    assert r.t_events[0].size == 0
    for i in (1, 2):
        assert r.t_events[i].size == 1
        assert r.t_events[i][0] == pytest.approx(_t_of_s(0.5), abs=1e-8)
    # g(0) = sin 0 = 0 is no zero of a step; the third one ends the run
    np.testing.assert_allclose(r.t_events[3], [0.5, 1.0, 1.5], rtol=0, atol=1e-12)
    assert r.t_final == r.t_events[3][-1]

    def tick_up(t, W):
        return np.sin(2 * np.pi * t)

    tick_up.direction, tick_up.terminal = 1, 2
    r2 = manifold_flow(X, None, -u1 @ u1.T, 2, 3.0, events=tick_up, **TIGHT)
    np.testing.assert_allclose(r2.t_events[0], [1.0, 2.0], rtol=0, atol=1e-12)
    assert r2.status == "event" and r2.t_final == pytest.approx(2.0, abs=1e-12)


def test_ftol_stop_is_located_on_the_interpolant():
    """The loss on the line is a closed-form function of s(t): the stop time and loss agree
    with it (RK45 at rtol 1e-10: the interpolant's error ~1e-10)."""
    X, u1 = _line_data()
    ftol = _loss_of_s(X, 0.01)
    for name, r in _runs(X, u1, 3.0, ftol=ftol).items():
        assert r.status == "converged" and "ftol" in r.message, name
        assert abs(r.t_final - _t_of_s(0.01)) < 1e-8, (name, r.t_final - _t_of_s(0.01))
        assert r.loss[-1] == pytest.approx(ftol, rel=1e-12)
        assert r.t[-1] == r.t_final
        assert np.all(r.loss[:-1] > ftol)
    # a loss already below ftol: converged at t = 0
    r0 = manifold_flow(X, None, -u1 @ u1.T, 2, 3.0, ftol=1e6)
    assert r0.status == "converged" and r0.t_final == 0.0 and r0.nsteps == 0


def test_rdtol_follows_its_stated_rule():
    """Checked against the rule itself on the recorded (t, L(t)) of every accepted step: the
    run stalls at the first accepted t with L(t') - L(t) <= rdtol |L(t')|, t' the latest
    accepted point at least rdwindow before t."""
    X, u1 = _line_data()
    W0 = u1 @ u1.T * 0.5 + 0.1 * np.eye(4)
    for method, extra in (("RK45", {}), ("Euler", {"step": 0.01})):
        r = manifold_flow(X, None, W0, 2, 200.0, method=method, rdtol=1e-4, rdwindow=0.5, **extra)
        assert r.status == "stalled" and r.success and "rdtol" in r.message
        t, L = r.t, r.loss

        def fires(n, t=t, L=L):
            prior = np.flatnonzero(t[:n] <= t[n] - 0.5)
            if prior.size == 0:
                return False
            m = prior[-1]
            return L[m] - L[n] <= 1e-4 * abs(L[m])

        assert fires(t.size - 1)
        assert not any(fires(n) for n in range(1, t.size - 1))


def test_records_and_singular_values_of_factor_flow():
    X, u1 = _line_data()
    rng = np.random.default_rng(1)
    W0 = rng.standard_normal((4, 4))
    fs = [0.7 * rng.standard_normal(shape) for shape in ((3, 4), (5, 3), (4, 5))]  # unbalanced
    rec = {"t2": lambda t, W: t * t, "row": lambda t, W: product(W)[0]}
    r = factor_flow(X, None, fs, 2.0, singular_values=True, record=rec, trajectory=True,
                    t_eval=np.linspace(0, 2, 9))
    assert r.singular_values.shape == (9, 3)  # min(d_0, ..., d_N) = 3 values can be nonzero
    for Ws, s in zip(r.trajectory, r.singular_values):
        ref = np.linalg.svd(product(Ws), compute_uv=False)
        np.testing.assert_allclose(s, ref[:3], rtol=0, atol=1e-13 * ref[0])
        assert ref[3] <= 1e-13 * ref[0]
    np.testing.assert_array_equal(r.records["t2"], r.t ** 2)
    assert r.records["row"].shape == (9, 4)
    np.testing.assert_allclose(r.records["row"], [product(Ws)[0] for Ws in r.trajectory],
                               rtol=1e-14, atol=1e-15)
    # manifold flow: a record of the point agrees with the recorded singular values
    rm = manifold_flow(X, None, W0, 2, 1.0, record={"s": lambda t, W: W.s})
    np.testing.assert_allclose(rm.records["s"], rm.singular_values, rtol=1e-14)


def _interrupt_rhs_after(monkeypatch, n_calls):
    """KeyboardInterrupt from the n-th right-hand side of either engine of manifold_flow."""
    count = {"n": 0}
    for cls in (FactoredSystem, ChainSystem):
        def wrapper(self, y, orig=cls.rhs):
            count["n"] += 1
            if count["n"] == n_calls:
                raise KeyboardInterrupt
            return orig(self, y)

        monkeypatch.setattr(cls, "rhs", wrapper)


def test_checkpoint_resume_keeps_events_records_and_stop_rules(tmp_path, monkeypatch):
    """Bit-identical resume in one process with events, records, ftol and rdtol in use."""
    X, u1 = _line_data()
    W0 = -(u1 @ u1.T) + 0.05 * np.eye(4)

    def tick(t, W):
        return np.sin(3 * t)

    def norm(t, W):
        return float(np.sum(W.s)) - 0.3

    norm.terminal = True

    def call(**kw):
        return manifold_flow(X, None, W0, 3, 30.0, events=[tick, norm], ftol=0.0,
                             rdtol=1e-12, record={"s": lambda t, W: W.s, "t": lambda t, W: t},
                             trajectory=True, **kw)

    full = call()
    path = tmp_path / "ck.npz"
    with monkeypatch.context() as mp:
        _interrupt_rhs_after(mp, 150)
        with pytest.warns(UserWarning, match="interrupted"):
            part = call(checkpoint=path, checkpoint_steps=2)
    assert part.status == "interrupted" and part.t_events[0].size >= 1
    resumed = call(checkpoint=path)
    assert resumed.status == full.status
    assert resumed.message == full.message
    for key in ("t", "loss", "grad_norm", "singular_values"):
        np.testing.assert_array_equal(getattr(resumed, key), getattr(full, key), err_msg=key)
    for key in ("s", "t"):
        np.testing.assert_array_equal(resumed.records[key], full.records[key])
    for a, b in zip(resumed.t_events, full.t_events):
        np.testing.assert_array_equal(a, b)
    for la, lb in zip(resumed.W_events, full.W_events):
        for a, b in zip(la, lb):
            np.testing.assert_array_equal(a.s, b.s)
    np.testing.assert_array_equal(resumed.W, full.W)
    # another ftol is another run
    with pytest.raises(ValueError, match="different run"):
        manifold_flow(X, None, W0, 3, 30.0, events=[tick, norm], ftol=1.0, rdtol=1e-12,
                      record={"s": lambda t, W: W.s, "t": lambda t, W: t}, trajectory=True,
                      checkpoint=path)


# ---------------------------------------------------------------------------- callback failures
def _completion(nan_after=None, raise_after=None):
    rng = np.random.default_rng(5)
    m, n, k = 8, 7, 2
    M = rng.standard_normal((m, k)) @ rng.standard_normal((k, n))
    mask = rng.random((m, n)) < 0.6
    rows, cols = np.nonzero(mask)
    base = matrix_completion_problem(DeepLinearFixedRank(m, n, k, 2), rows, cols, M[mask])
    calls = {"n": 0}

    def cost(W):
        calls["n"] += 1
        if raise_after is not None and calls["n"] > raise_after:
            raise RuntimeError("the model server went away")
        val = base.dense_loss_and_gradient(W)[0]
        return np.nan if nan_after is not None and calls["n"] > nan_after else val

    def grad(W):
        return base.dense_loss_and_gradient(W)[1].toarray()

    P = ambient_problem(DeepLinearFixedRank(m, n, k, 2), cost, grad)
    W0 = 0.5 * rng.standard_normal((m, k)) @ rng.standard_normal((k, n))
    return P, W0, calls


@pytest.mark.parametrize("flow", ["riemannian", "factor"])
@pytest.mark.parametrize("kind", ["nan", "raise"])
def test_callback_failure_ends_the_run_failed_with_the_trajectory(flow, kind):
    P, W0, calls = _completion(**({"nan_after": 40} if kind == "nan" else {"raise_after": 40}))
    if flow == "riemannian":
        r = riemannian_flow(P, W0, 50.0, trajectory=True)
    else:
        r = factor_flow(P, None, balanced_factors(W0, (7, 2, 8), seed=0), 50.0,
                        trajectory=True)
    assert r.status == "failed" and not r.success
    assert r.t.size >= 2 and len(r.trajectory) == r.t.size
    assert np.all(np.isfinite(r.loss)) and np.all(np.isfinite(r.W))
    assert 0 < r.t_final < 50.0 and r.t[-1] == r.t_final
    assert "AmbientProblem" in r.message
    if kind == "raise":
        assert isinstance(r.error, RuntimeError) and "went away" in str(r.error)
        assert "RuntimeError" in r.message
    else:
        assert "not finite" in r.message or "returned nan" in r.message


def test_record_and_event_failures_end_the_run_failed():
    X, u1 = _line_data()
    W0 = -u1 @ u1.T

    def bad(t, W):
        if t > 0.5:
            raise ZeroDivisionError("boom")
        return t

    r = manifold_flow(X, None, W0, 2, 2.0, record={"bad": bad})
    assert r.status == "failed" and isinstance(r.error, ZeroDivisionError)
    assert "record['bad']" in r.message and r.records["bad"].size == r.t.size
    assert r.t[-1] <= 0.5 + 1e-12 and r.t_final == r.t[-1]

    def ev(t, W):
        return 1j if t > 0.3 else 1.0

    r = manifold_flow(X, None, W0, 2, 2.0, events=ev)
    assert r.status == "failed" and "events[0] (ev)" in r.message and "real number" in r.message
    assert r.t_final <= 0.3 + 1e-12
    # a record whose shape changes
    r = manifold_flow(X, None, W0, 2, 2.0, record={"v": lambda t, W: np.ones(1 + (t > 0.1))})
    assert r.status == "failed" and "one shape" in r.message
    # at the start there is no trajectory: the call raises, naming the callback
    with pytest.raises(ValueError, match=r"record\['bad'\]"):
        manifold_flow(X, None, W0, 2, 2.0, record={"bad": lambda t, W: 1 / 0})


def test_bad_event_and_record_options_are_refused():
    X, u1 = _line_data()
    W0 = -u1 @ u1.T

    def ev(t, W):
        return 1.0

    ev.terminal = "yes"
    with pytest.raises(ValueError, match=r"events\[0\]\.terminal"):
        manifold_flow(X, None, W0, 2, 1.0, events=ev)
    with pytest.raises(TypeError, match=r"events\[1\]"):
        manifold_flow(X, None, W0, 2, 1.0, events=[lambda t, W: 1.0, 3])
    with pytest.raises(TypeError, match="record"):
        manifold_flow(X, None, W0, 2, 1.0, record=[len])
    with pytest.raises(TypeError, match="ftol"):
        manifold_flow(X, None, W0, 2, 1.0, ftol="0.1")
    with pytest.raises(ValueError, match="rdwindow"):
        manifold_flow(X, None, W0, 2, 1.0, rdtol=1e-3, rdwindow=0.0)
