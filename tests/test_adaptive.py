"""adaptive_rank_flow (issue 18, item 4) against full-width references.

References: the full-width layer-wise flow (factor_flow) from small balanced starts at depths 2,
3, 4; for a decoupled loss the scalar ODE of each singular value solved by scipy's solve_ivp;
dense SVDs for the normal part's top singular pairs.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
import pymanopt
import pytest
import scipy.sparse as sp
from scipy.integrate import solve_ivp

from linrank import (
    DeepLinearFixedRank,
    FixedRankPoint,
    adaptive_rank_flow,
    ambient_problem,
    balanced_factors,
    factor_flow,
    matrix_completion_problem,
    product,
)
from linrank.flows.adaptive import normal_top_pairs

TOL = {"rtol": 1e-10, "atol": 1e-14}


def _diag_problem(a, m=6, n=5):
    A = np.zeros((m, n))
    A[np.arange(len(a)), np.arange(len(a))] = a

    def make(man):
        return ambient_problem(man, cost=lambda W: 0.5 * np.sum((W - A) ** 2),
                               euclidean_gradient=lambda W: W - A)
    return A, make


def _scalar(N, a, alpha, t):
    """s(t) of ds/dt = N s^(2(N-1)/N) (a - s), s(0) = alpha (a singular value of the decoupled
    flow), by solve_ivp at rtol 1e-12."""
    rhs = lambda _, s: N * np.abs(s) ** (2 * (N - 1) / N) * (a - s)  # noqa: E731
    tu, inv = np.unique(t, return_inverse=True)
    sol = solve_ivp(rhs, (0, max(tu[-1], 1e-12)), [alpha], t_eval=tu, rtol=1e-12, atol=1e-15,
                    method="DOP853")
    return sol.y[0][inv]


@pytest.mark.parametrize("N", [2, 3, 4])
def test_decoupled_shift_is_the_insertion_time(N):
    """f = 1/2 ||W - diag(3, 2, 1)||^2: every singular value follows its own scalar ODE, in the
    full-width flow from alpha * I and in the adaptive flow from its insertion time tau_(i-1);
    so s_i^adaptive(t + tau_(i-1)) = s_i^full(t) exactly (the shift of the decoupled case)."""
    a, alpha = np.array([3.0, 2.0, 1.0]), 1e-3
    A, make = _diag_problem(a)
    T = {2: 25.0, 3: 50.0, 4: 120.0}[N]
    r = adaptive_rank_flow(make, shape=(6, 5), depth=N, t_end=T, init_scale=alpha,
                           stall_tol=1e-4, **TOL)
    assert [k for _, k in r.ranks] == [1, 2, 3] and r.status == "completed"
    taus = [t for t, _ in r.ranks]
    for i in range(3):
        sel = r.diagnostics["rank"] >= i + 1
        t_loc = r.t[sel] - taus[i]
        got = r.singular_values[sel, i]
        np.testing.assert_allclose(got, _scalar(N, a[i], alpha, t_loc), rtol=1e-6)
    # the stall rule held at each increase: ||P_T G|| = |s_i - a_i| <= tau a_(i+1)
    for i, t_stall in enumerate(taus[1:]):
        j = np.flatnonzero(r.t == t_stall)[0]  # last point on M_(i+1)
        assert abs(r.singular_values[j, i] - a[i]) <= 1e-4 * a[i + 1] * (1 + 1e-6)
    np.testing.assert_allclose(r.W, A, atol=1e-6)
    # the full-width flow's singular values follow the same ODE from t = 0
    te = np.linspace(0, T / 2, 41)
    fac = balanced_factors(alpha * np.eye(6, 5), [5] * N + [6], seed=0)
    man = DeepLinearFixedRank(6, 5, 5, N)
    rf = factor_flow(make(man), None, fac, t_end=te[-1], t_eval=te, trajectory=True, **TOL)
    S = np.array([np.linalg.svd(product(f), compute_uv=False) for f in rf.trajectory])
    for i in range(3):
        np.testing.assert_allclose(S[:, i], _scalar(N, a[i], alpha, te), rtol=1e-6)


def _completion(seed=0, m=8, n=7, r=2, frac=0.7):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, r)) @ rng.standard_normal((r, n)) / np.sqrt(r)
    rows, cols = np.nonzero(rng.random((m, n)) < frac)
    vals = A[rows, cols]
    G0 = np.zeros((m, n))
    G0[rows, cols] = vals  # -grad f(0)
    return rows, cols, vals, G0


def _switch(t, S, levels):
    """First time s_i(t) reaches half of levels[i] (linear interpolation between records)."""
    out = []
    for i, lev in enumerate(levels):
        j = int(np.flatnonzero(S[:, i] >= 0.5 * lev)[0])
        t0, t1, s0, s1 = t[j - 1], t[j], S[j - 1, i], S[j, i]
        out.append(t0 + (0.5 * lev - s0) * (t1 - t0) / (s1 - s0) if s1 > s0 else t1)
    return np.array(out)


@pytest.mark.parametrize("N", [2, 3, 4])
def test_completion_against_full_width(N):
    """Deep matrix completion (8 x 7, planted rank 2, 70% observed) from W(0) = alpha polar(-grad
    f(0)) (every direction of -grad f(0) at scale alpha, balanced, full width):

    * final W: the adaptive flow's limit is the full-width flow's as alpha -> 0; at N >= 3 the
      relative difference falls like alpha, at N = 2 like a small power of alpha (the third
      direction of the full-width flow grows from alpha like alpha^(1 - sigma_3/sigma_2),
      docs/theory.rst): measured 0.32, 0.065, 0.0073 for alpha = 1e-2, 1e-4, 1e-6 at N = 2;
      7.6e-2, 6.7e-3, 6.1e-4 (N = 3), 4.0e-2, 3.4e-3, 3.2e-4 (N = 4) for alpha = 1e-2 ... 1e-4;
    * the same two singular values are learned, in the same order; the full-width ones beyond
      them stay small;
    * the first switch-on time agrees (same start along the top pair), the second is shifted by
      the phase-clock model of docs/theory.rst: Delta = tau_1 - T_1 + T_1 sigma_2(-grad f(0)) /
      ||P_N grad f(W_1)||_2 (measured within 1% at N = 2, 4% at N = 3, 8% at N = 4)."""
    rows, cols, vals, G0 = _completion()
    m, n = G0.shape
    U, sig0, Vt = np.linalg.svd(G0, full_matrices=False)
    make = lambda man: matrix_completion_problem(man, rows, cols, vals)  # noqa: E731
    errs = []
    alphas = (1e-2, 1e-4, 1e-6) if N == 2 else (1e-2, 1e-3, 1e-4)
    for alpha in alphas:
        ra = adaptive_rank_flow(make, shape=(m, n), depth=N, t_end=2000, init_scale=alpha,
                                ftol=1e-14, rtol=1e-9, atol=1e-14)
        assert ra.status == "converged" and [k for _, k in ra.ranks] == [1, 2]
        fac = balanced_factors(alpha * (U @ Vt), [n] * N + [m], seed=1)
        te = np.linspace(0, ra.t_final, 1001)
        rf = factor_flow(make(DeepLinearFixedRank(m, n, n, N)), None, fac, t_end=te[-1],
                         t_eval=te, trajectory=True, rtol=1e-9, atol=1e-14)
        S = np.array([np.linalg.svd(product(f), compute_uv=False) for f in rf.trajectory])
        errs.append(np.linalg.norm(ra.W - rf.W) / np.linalg.norm(rf.W))
        lev = ra.singular_values[-1]
        sa, sf = _switch(ra.t, ra.singular_values, lev), _switch(rf.t, S, lev)
        assert abs(sa[0] - sf[0]) <= 2 * (te[1] - te[0]) + 1e-2 * sa[0]
        tau1 = ra.ranks[1][0]
        pred = tau1 - sa[0] + sa[0] * sig0[1] / ra.diagnostics["stall_normal_sigma"][0]
        assert abs((sa[1] - sf[1]) - pred) <= 0.1 * pred
    errs = np.array(errs)
    assert np.all(errs[1:] < errs[:-1] / 3), errs  # the difference vanishes as alpha -> 0
    assert errs[-1] < (2e-2 if N == 2 else 1e-3), errs
    np.testing.assert_allclose(S[-1, :2], ra.singular_values[-1], rtol=2e-2)
    assert S[-1, 2] < 1e-2 * S[-1, 1]


def test_options_records_and_stops():
    a = np.array([3.0, 2.0, 1.0])
    _, make = _diag_problem(a)
    r = adaptive_rank_flow(make, shape=(6, 5), depth=3, t_end=30, init_scale=1e-3, max_rank=2,
                           **TOL)
    assert [k for _, k in r.ranks] == [1, 2] and r.status == "completed" and r.t_final == 30
    assert r.singular_values.shape == (r.t.size, 2) and r.point.s.size == 2
    assert np.all(np.diff(r.t) >= 0) and r.ranks[0] == (0.0, 1)
    np.testing.assert_allclose(np.sort(r.point.s)[::-1], [3, 2], rtol=1e-6)
    # ftol: stops where f = ftol (located on the last step's continuous extension)
    r = adaptive_rank_flow(make, shape=(6, 5), depth=2, t_end=100, init_scale=1e-3, ftol=1e-6)
    assert r.status == "converged" and r.loss[-2] > 1e-6
    np.testing.assert_allclose(r.loss[-1], 1e-6, rtol=1e-6)
    # t_eval: only those times (and the stall / final points) are recorded; the padding is zero
    te = np.linspace(0, 20, 11)
    r = adaptive_rank_flow(make, shape=(6, 5), depth=2, t_end=20, init_scale=1e-3, t_eval=te,
                           trajectory=True, target=np.zeros((6, 5)))
    stalls = [t for t, _ in r.ranks[1:]]
    assert set(np.round(r.t, 12)) <= set(np.round(np.concatenate((te, stalls)), 12))
    assert len(r.trajectory) == r.t.size == r.distance.size
    early = r.diagnostics["rank"] == 1
    assert np.all(r.singular_values[early, 1:] == 0)
    np.testing.assert_allclose(r.distance, np.sqrt(np.sum(r.singular_values ** 2, axis=1)),
                               rtol=1e-10)


def test_tie_warns_and_zero_gradient_refused():
    _, make = _diag_problem(np.array([2.0, 2.0]))
    with pytest.warns(RuntimeWarning, match="nearly equal"):
        adaptive_rank_flow(make, shape=(6, 5), depth=2, t_end=1, init_scale=1e-3)
    _, zero = _diag_problem(np.zeros(1))
    with pytest.raises(ValueError, match="critical point"):
        adaptive_rank_flow(zero, shape=(6, 5), depth=2, t_end=1, init_scale=1e-3)


def test_bad_input():
    _, make = _diag_problem(np.array([3.0, 1.0]))
    ok = {"shape": (6, 5), "depth": 2, "t_end": 1.0, "init_scale": 1e-3}
    for key, bad, exc in [("shape", (6,), ValueError), ("shape", (6, 0), ValueError),
                          ("depth", 0, ValueError), ("t_end", -1, ValueError),
                          ("init_scale", 0.0, ValueError), ("init_scale", "x", TypeError),
                          ("max_rank", 6, ValueError), ("stall_tol", -1.0, ValueError),
                          ("ftol", np.nan, ValueError)]:
        with pytest.raises(exc, match=key):
            adaptive_rank_flow(make, **{**ok, key: bad})
    with pytest.raises(ValueError, match="checkpoint"):
        adaptive_rank_flow(make, **ok, checkpoint="x.npz")
    with pytest.raises(ValueError, match="method"):
        adaptive_rank_flow(make, **ok, method="nope")
    with pytest.raises(TypeError, match="pymanopt.Problem"):
        adaptive_rank_flow(lambda man: None, **ok)
    other = DeepLinearFixedRank(6, 5, 2, 2)
    with pytest.raises(ValueError, match="manifold it was"):
        adaptive_rank_flow(lambda man: make(other), **ok)

    def autodiff(man):
        @pymanopt.function.autograd(man)
        def cost(u, s, vt):
            return anp.sum(s ** 2)
        return pymanopt.Problem(man, cost)
    with pytest.raises(TypeError, match="Euclidean gradient"):
        adaptive_rank_flow(autodiff, **ok)


@pytest.mark.parametrize("form", ["dense", "sparse", "operator", "factored"])
def test_normal_top_pairs(form):
    """Against the dense SVD of (I - uu^T) G (I - vv^T); m n = 300,000 > the dense limit for
    the sparse and operator forms (ARPACK path)."""
    rng = np.random.default_rng(3)
    m, n, k = (600, 500, 3) if form in ("sparse", "operator") else (30, 20, 3)
    G = sp.random(m, n, density=0.02, random_state=4, format="csr") if form != "factored" \
        else None
    if form == "factored":
        F = (rng.standard_normal((m, 4)), np.diag([4.0, 3.0, 2.0, 1.0]),
             rng.standard_normal((n, 4)))
        Gd = F[0] @ F[1] @ F[2].T
        G = F
    else:
        Gd = G.toarray()
        if form == "dense":
            G = Gd
        elif form == "operator":
            G = sp.linalg.aslinearoperator(G)
    u = np.linalg.qr(rng.standard_normal((m, k)))[0]
    v = np.linalg.qr(rng.standard_normal((n, k)))[0]
    P = (np.eye(m) - u @ u.T) @ Gd @ (np.eye(n) - v @ v.T)
    ref = np.linalg.svd(P, compute_uv=True)
    a, sig, b = normal_top_pairs(G, FixedRankPoint(u, np.ones(k), v.T), m, n, count=2)
    np.testing.assert_allclose(sig, ref[1][:2], rtol=1e-8)
    for i in range(2):
        np.testing.assert_allclose(abs(a[:, i] @ ref[0][:, i]), 1, atol=1e-6)
        np.testing.assert_allclose(a[:, i] @ P @ b[:, i], sig[i], rtol=1e-8)
    assert np.abs(u.T @ a).max() < 1e-12 and np.abs(v.T @ b).max() < 1e-12


def test_records_and_rdtol_across_pieces():
    """record callables see the run's time; values whose shape grows with the rank are padded
    with NaN; a relative-decrease stop (rdtol, status "stalled") is not taken for a rank stall."""
    _, make = _diag_problem(np.array([3.0, 2.0, 1.0]))
    seen = []

    def rec_t(t, W):
        seen.append(t)
        return t

    r = adaptive_rank_flow(make, shape=(6, 5), depth=2, t_end=20, init_scale=1e-3,
                           record={"t": rec_t, "s": lambda t, W: W[1]}, **TOL)
    np.testing.assert_array_equal(r.records["t"], r.t)
    s = r.records["s"]
    assert s.shape == (r.t.size, 3)
    np.testing.assert_allclose(np.nan_to_num(s), r.singular_values, rtol=1e-14)
    assert np.isnan(s[r.diagnostics["rank"] == 1, 1:]).all()
    with pytest.raises(ValueError, match="events"):
        adaptive_rank_flow(make, shape=(6, 5), depth=2, t_end=20, init_scale=1e-3,
                           events=[lambda t, W: t - 1])
    r = adaptive_rank_flow(make, shape=(6, 5), depth=3, t_end=200, init_scale=1e-3, rdtol=1e-3)
    assert r.status == "stalled" and "rdtol" in r.message and r.ranks == [(0.0, 1)]
