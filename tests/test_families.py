"""Counterexample families, predicates and certificates against independent references: an own
layer-flow integration (scipy DOP853 at tight tolerance), the scalar ODE of the diagonal
invariant set, the invariant-set argument, and Proposition 29's closed-form critical values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from linrank.experiments.reproduce.amended import Case, decide
from linrank.experiments.shared import families as fam
from linrank.flows import factor_flow
from linrank.network import product


def _eig(X, r):
    lam, V = np.linalg.eigh(X @ X.T)
    return lam[::-1], V[:, ::-1][:, :r], V[:, ::-1]


def _data(d, seed=0):
    return np.random.default_rng(seed).standard_normal((d, 3 * d)) / np.sqrt(d)


def _own_layer_flow(S, factors, T, t_eval):
    """Reference: dW_i/dt = -W_{>i}^T (W - I) S W_{<i}^T by DOP853, rtol 1e-12."""
    shapes = [f.shape for f in factors]
    sizes = [a * b for a, b in shapes]

    def unpack(y):
        out, i = [], 0
        for (a, b), n in zip(shapes, sizes):
            out.append(y[i:i + n].reshape(a, b))
            i += n
        return out

    def rhs(t, y):
        fs = unpack(y)
        G = (product(fs) - np.eye(S.shape[0])) @ S
        out = []
        for i in range(len(fs)):
            L = np.eye(S.shape[0])
            for j in range(len(fs) - 1, i, -1):
                L = L @ fs[j]
            R = np.eye(S.shape[0])
            for j in range(i):
                R = fs[j] @ R
            out.append(-(L.T @ G @ R.T).ravel())
        return np.concatenate(out)

    sol = solve_ivp(rhs, (0, T), np.concatenate([f.ravel() for f in factors]), method="DOP853",
                    rtol=1e-12, atol=1e-14, t_eval=t_eval)
    return [product(unpack(sol.y[:, k])) for k in range(sol.y.shape[1])]


@pytest.mark.parametrize("N", [3, 4])
def test_family_a_stays_on_the_invariant_set_and_away_from_the_minimizer(N):
    X = _data(8)
    lam, U, _ = _eig(X, 2)
    fs = fam.family_a_start(U, 2, N, np.random.default_rng(1))
    W0 = product(fs)
    M = fam.family_a_matrix(2)
    assert np.allclose(W0, U @ M @ U.T, atol=1e-13)
    assert fam.conjecture32(W0, U, 2) and not fam.amended_det(W0, U, 2)
    assert not fam.amended(W0, U, 2) and fam.compressed_det(W0, U, 2) == pytest.approx(-0.91)
    grid = np.linspace(0, 60, 7)
    ref = _own_layer_flow(X @ X.T, fs, 60.0, grid)
    res = factor_flow(X, None, fs, 60.0, rtol=1e-11, atol=1e-13, t_eval=grid, trajectory=True)
    P = U @ U.T
    for Wr, f in zip(ref, res.trajectory):
        W = product(f)
        assert np.linalg.norm(W - Wr) <= 1e-7 * max(1.0, np.linalg.norm(Wr))
        assert fam.invariant_defect(Wr, U, 2) <= 1e-10  # the argument: W stays U_r M(t) U_r^T
        assert fam.compressed_det(Wr, U, 2) < 0  # the sign of det M is kept
        assert np.linalg.norm(Wr - P) >= 1 - 1e-9  # distance from I_2 to singular matrices
    # and the limit is u_1 u_1^T, a critical point W_J with J = {1}
    u1 = np.outer(U[:, 0], U[:, 0])
    assert np.linalg.norm(ref[-1] - u1) < 1e-4


@pytest.mark.parametrize("N", [3, 4])
def test_r_equals_d_negdet_follows_the_scalar_ode(N):
    """d = r = 2, diagonal data and W(0) = diag(1, -1): each entry solves
    m' = -N |m|^(2(N-1)/N) (m - 1) lambda; the negative one tends to 0, never to 1."""
    lam = np.array([2.0, 1.0])
    X = np.diag(np.sqrt(lam))
    _, U, _ = _eig(X, 2)
    fs = fam.negdet_start(U, 2, N, np.random.default_rng(0))
    T = 50.0
    res = factor_flow(X, None, fs, T, rtol=1e-11, atol=1e-14)
    W = U.T @ res.W @ U
    for i, m0 in enumerate([1.0, -1.0]):
        ode = solve_ivp(lambda t, m, li=lam[i]: -N * np.abs(m) ** (2 * (N - 1) / N) * (m - 1) * li,
                        (0, T), [m0], method="DOP853", rtol=1e-13, atol=1e-15)
        assert W[i, i] == pytest.approx(ode.y[0, -1], rel=1e-6, abs=1e-12)
    assert abs(W[0, 1]) + abs(W[1, 0]) < 1e-10
    assert -0.05 < W[1, 1] < 0 and np.linalg.det(res.W) < 0


def test_eigen_J_reads_the_critical_point_and_its_closed_form_value():
    X = _data(7)
    lam, U, V = _eig(X, 3)
    rng = np.random.default_rng(1)
    for J in [(0,), (1, 2), (0, 1, 3), (), (0, 1, 2)]:
        WJ = V[:, list(J)] @ V[:, list(J)].T
        got, LJ, Ls = fam.eigen_J(WJ + 1e-3 * rng.standard_normal((7, 7)), V, lam, 3)
        assert got == J
        # closed form (Proposition 29) against the dense loss at W_J and at U_rU_r^T
        assert LJ == pytest.approx(0.5 * np.linalg.norm(X - WJ @ X) ** 2, rel=1e-12)
        assert Ls == pytest.approx(0.5 * np.linalg.norm(X - U @ U.T @ X) ** 2, rel=1e-12)
    assert fam.eigen_J(np.eye(7), V, lam, 3)[0] is None  # |J| > r: no critical point of rank <= r


def _series(T=100.0, n=401):
    t = np.linspace(0.0, T, n)
    return t, 2.0 + 0.5 * np.exp(-0.1 * t), 0.3 * np.exp(-0.1 * t)


def test_critical_certificate_needs_a_measured_decay():
    t, loss, g = _series()
    ok = fam.critical_certificate(t, loss, g, (1,), 2.0, 1.0, (0,))
    assert ok.certified and ok.reason == "" and ok.J == (1,)
    assert ok.grad_ratio == pytest.approx(np.exp(-5.0), rel=1e-6)
    assert ok.rel_loss_diff == pytest.approx(0.5 * np.exp(-10.0), rel=1e-9)
    # the same final values, but the gradient grows over the last half (leaving a saddle)
    g_up = g.copy()
    g_up[t > 50] = g[t > 50][::-1]
    bad = fam.critical_certificate(t, loss, g_up, (1,), 2.0, 1.0, (0,))
    assert not bad.certified and "not decreasing" in bad.reason
    # the loss passes below L(W_J) (moving on), the gradient still decays
    dip = 2.0 - 0.5 * (t / 100.0) ** 3 * 1e-4
    assert "|L - L(W_J)| not decreasing" in fam.critical_certificate(
        t, dip, g, (1,), 2.0, 1.0, (0,)).reason
    # a gradient that hardly decays, a loss far from L(W_J), the minimizer, no W_J near
    flat = 0.3 * np.exp(-1e-4 * t)
    assert "fell only" in fam.critical_certificate(t, loss, flat, (1,), 2.0, 1.0, (0,)).reason
    assert "above" in fam.critical_certificate(t, loss + 0.1, g, (1,), 2.0, 1.0, (0,)).reason
    assert not fam.critical_certificate(t, loss, g, (0,), 2.0, 1.0, (0,)).certified
    assert not fam.critical_certificate(t, loss, g, None, np.nan, 1.0, (0,)).certified
    with pytest.raises(ValueError, match="1-d series"):
        fam.critical_certificate(t, loss[:-1], g, (1,), 2.0, 1.0, (0,))


def _run(X, factors, T, n=301):
    lam, U, V = _eig(X, factors[0].shape[0])
    res = factor_flow(X, None, factors, T, t_eval=np.linspace(0, T, n), trajectory=True,
                      rtol=1e-10, atol=1e-13)
    assert res.status != "interrupted"
    return res, lam, V


def test_certify_run_family_a_and_refusal_while_leaving_a_saddle():
    from linrank.network import balanced_factors

    X = _data(6, 3)
    lam, U, V = _eig(X, 2)
    rng = np.random.default_rng(0)
    fs = fam.family_a_start(U, 2, 3, rng)
    res, _, _ = _run(X, fs, 300.0)
    err = [np.linalg.norm(product(f) - U @ U.T) for f in res.trajectory]
    c = fam.certify_run(res.trajectory, V, 2, lam, res.t, res.loss, res.grad_norm, err, True)
    crit = c["extra"]["critical"]
    assert c["extra"]["invariant_certificate"] and crit["certified"] and crit["J"] == (0,)
    assert crit["rel_loss_diff"] <= fam.CRIT_RTOL and crit["grad_ratio"] <= fam.DECAY_FACTOR
    # rank 1 near the saddle u_2u_2^T (J = {2}): the flow leaves it towards u_1u_1^T; at a time
    # where it is leaving, the certificate refuses (its final values alone would not)
    W0 = np.outer(V[:, 1], V[:, 1]) + 1e-6 * np.outer(V[:, 0], V[:, 1])
    fs1 = balanced_factors(W0, [6, 1, 1, 6], seed=rng, rank=1)
    LJ = 0.5 * (lam.sum() - lam[1])
    res1, _, _ = _run(X, fs1, 400.0, n=801)
    leaving = np.flatnonzero(res1.loss < LJ - 2e-4 * (LJ - 0.5 * (lam.sum() - lam[0])))
    assert leaving.size and leaving[0] > 10
    k = int(leaving[0])
    err1 = [np.linalg.norm(product(f) - np.outer(V[:, 0], V[:, 0])) for f in res1.trajectory]
    c1 = fam.certify_run(res1.trajectory[:k + 1], V, 1, lam, res1.t[:k + 1], res1.loss[:k + 1],
                         res1.grad_norm[:k + 1], err1[:k + 1], False)
    assert not c1["extra"]["critical"]["certified"]
    assert c1["extra"]["critical"]["J"] == (1,) and "not decreasing" in c1["extra"]["critical"][
        "reason"]
    assert not c1["extra"]["invariant_certificate"]


def test_predicates_and_block_start():
    X = _data(9)
    _, U, _ = _eig(X, 4)
    rng = np.random.default_rng(0)
    W = product(fam.block_start(U, 4, 3, rng))
    assert fam.conjecture32(W, U, 4) and fam.amended_det(W, U, 4) and not fam.amended(W, U, 4)
    A = rng.standard_normal((4, 4))
    C = np.eye(4) + 3 * (A - A.T)  # symmetric part I: amended holds, so do (47) and det > 0
    W = U @ C @ U.T
    assert fam.amended(W, U, 4) and fam.amended_det(W, U, 4) and fam.conjecture32(W, U, 4)
    assert fam.theorem31(W, U, 4) and not fam.theorem31(U[:, :3] @ U[:, :3].T, U, 4)
    Wb = product(fam.family_b_start(U, 2, 3, rng, 1e-3))
    assert fam.invariant_defect(Wb, U, 2) == pytest.approx(1e-3 / np.linalg.norm(Wb), rel=1e-9)
    assert fam.conjecture32(Wb, U, 2)


def test_bad_input_is_refused():
    X = _data(4)
    _, U, _ = _eig(X, 4)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="rank"):
        fam.family_a_matrix(1)
    with pytest.raises(ValueError, match="0 < a < b"):
        fam.family_a_matrix(2, a=1.0, b=0.5)
    with pytest.raises(ValueError, match="rank < d"):
        fam.family_b_start(U, 4, 3, rng, 1e-3)
    with pytest.raises(ValueError, match="eta"):
        fam.family_b_start(U[:, :2], 2, 3, rng, -1.0)
    with pytest.raises(ValueError, match="pairs"):
        fam.block_start(U, 4, 3, rng, pairs=3)
    with pytest.raises(ValueError, match="orthonormal"):
        fam.compressed_det(np.eye(4), 2 * U, 2)


def test_eta_fit_never_fits_unresolved_runs():
    etas = [1e-1, 1e-2, 1e-3, 1e-4]
    times = [3.0 * e ** -0.5 for e in etas]
    assert fam.fit_eta_exponent(etas, times)["exponent"] == pytest.approx(0.5, rel=1e-12)
    out = fam.fit_eta_exponent(etas, times[:3] + [None])
    assert out["n_unresolved"] == 1 and out["n_fit"] == 3
    assert out["exponent"] == pytest.approx(0.5, rel=1e-12)
    assert fam.fit_eta_exponent(etas, [None, None, 5.0, None])["exponent"] is None
    lam = [5.0, 4.0, 3.0, 1.0]
    assert fam.predicted_eta_exponent(lam, 2, 4, 1) == pytest.approx(2 * 4 / 7)


def test_decide_counts_certified_and_converged():
    row = decide(Case("family_a", 2, 2, 3, 0), t_max=400.0, chunk=100.0)
    assert row["outcome"] == "critical" and row["det_end"] < 0 and row["distance"] >= 1 - 1e-6
    row = decide(Case("pd", 3, 3, 3, 0), t_max=400.0, chunk=100.0)
    assert row["amended"] and row["outcome"] == "converged"
