"""linrank.experiments.shared.starts: the paper's starts, condition (47) and its bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest

from linrank.experiments.shared.starts import (
    condition_47,
    gaussian_start,
    inside_47_start,
    near_boundary_start,
    outside_47_start,
    paper_start,
    perturbed_start,
    special_start,
    top_eigenbasis,
)
from linrank.network import conserved_quantities, imbalance, product


def _data(d, seed=0):
    return np.random.default_rng(seed).standard_normal((d, 3 * d)) / np.sqrt(d)


def _diag(W, U):
    return np.array([U[:, i] @ W @ U[:, i] for i in range(U.shape[1])])


# ---------------------------------------------------------------- condition (47) on constructed W
def test_condition_47_constructed_inside_and_outside():
    d, r = 6, 3
    X = _data(d)
    U, lam = top_eigenbasis(X, r)
    # reference for U_r: eigh of X X^T, descending
    w, V = np.linalg.eigh(X @ X.T)
    assert np.allclose(lam, w[::-1], rtol=1e-12, atol=1e-14)
    assert np.allclose(np.abs(U.T @ V[:, ::-1][:, :r]), np.eye(r), atol=1e-10)
    Up = np.linalg.svd(X)[0][:, r:]
    # inside: u_i^T W u_i = (0.5, 0.2, 0.1) by construction, plus a skew part and a normal part
    C = np.diag([0.5, 0.2, 0.1]) + np.array([[0, 1, -2], [-1, 0, 3], [2, -3, 0.0]])
    W_in = (U @ C + Up @ np.ones((d - r, r))) @ U.T
    holds, m, rank_ok = condition_47(W_in, X, r)
    assert holds and rank_ok
    assert m == pytest.approx(0.1, abs=1e-13)
    # same with U_r given directly, and with the factors of W_in
    assert condition_47(W_in, U, r) == (holds, m, rank_ok)
    fs = [np.eye(d), W_in]
    assert condition_47(fs, U, r, basis=True).holds
    # outside: one diagonal entry negative
    C2 = C.copy()
    C2[1, 1] = -0.2
    res = condition_47(U @ C2 @ U.T, X, r)
    assert not res.holds and res.rank_ok and res.min_u_W0_u == pytest.approx(-0.2, abs=1e-13)
    # positive diagonal but rank W U_r < r: W U_r = U_r diag(1, 1, 0)+... fails the rank test
    W_rank = U @ np.diag([1.0, 1.0, 0.0]) @ U.T + 0.3 * Up[:, :1] @ Up[:, :1].T
    res = condition_47(W_rank, X, r)
    assert not res.rank_ok and not res.holds and res.min_u_W0_u == pytest.approx(0, abs=1e-14)
    # a balanced start can violate (47): the special start does
    res = condition_47(special_start(X, r, 3), X, r)
    assert res.rank_ok and not res.holds and res.min_u_W0_u == pytest.approx(-1.0, abs=1e-12)


def test_condition_47_bad_input():
    X = _data(5)
    with pytest.raises(ValueError, match="5 x 5"):
        condition_47(np.eye(4), X, 2)
    with pytest.raises(ValueError, match="rank"):
        condition_47(np.eye(5), X, 0)
    with pytest.raises(ValueError, match="NaN"):
        condition_47(np.full((5, 5), np.nan), X, 2)
    with pytest.raises(TypeError, match="real"):
        condition_47(np.eye(5) * 1j, X, 2)
    with pytest.raises(ValueError, match="orthonormal"):
        condition_47(np.eye(5), np.ones((5, 2)), 2, basis=True)


# ---------------------------------------------------------------- the paper's starts
@pytest.mark.parametrize("depth", [2, 3, 4])
@pytest.mark.parametrize("hidden", [None, "wide"])
def test_paper_start_balanced_and_shaped(depth, hidden):
    d, r = 7, 3
    hw = None if hidden is None else tuple(r + 1 + j for j in range(depth - 1))
    fs = paper_start(d, r, depth, np.random.default_rng(1), hw)
    dims = [d, *(hw or [r] * (depth - 1)), d]
    assert [f.shape for f in fs] == [(dims[j + 1], dims[j]) for j in range(depth)]
    assert imbalance(fs) < 1e-13
    W = product(fs)
    s = np.linalg.svd(W, compute_uv=False)
    assert np.all(s[r:] < 1e-13 * s[0]) and s[r - 1] > 1e-6
    if depth == 2:
        assert np.allclose(s[:r], 1.0, atol=1e-13)  # the paper's N = 2 start: all ones
        if hw is None:
            assert np.allclose(fs[0] @ fs[0].T, np.eye(r), atol=1e-14)  # W_1 = V_r^T


def test_paper_start_n3_is_truncated_gaussian():
    """N > 2: the top r singular values of the d x d Gaussian drawn with the same generator."""
    d, r, N = 8, 3, 3
    fs = paper_start(d, r, N, np.random.default_rng(5))
    G = np.random.default_rng(5).standard_normal((d, d)) / np.sqrt(d)
    U, s, Vt = np.linalg.svd(G)
    assert np.allclose(product(fs), (U[:, :r] * s[:r]) @ Vt[:r], atol=1e-13)
    for W in fs:
        assert np.allclose(np.linalg.svd(W, compute_uv=False)[:r], s[:r] ** (1 / N), atol=1e-13)


# ---------------------------------------------------------------- conditioned starts
@pytest.mark.parametrize("depth", [2, 3, 5])
def test_inside_and_outside_47(depth):
    d, r = 9, 4
    X = _data(d, 2)
    U, _ = top_eigenbasis(X, r)
    rng = np.random.default_rng(3)
    for _ in range(5):
        fs = inside_47_start(X, r, depth, rng)
        c = condition_47(fs, X, r)
        assert c.holds and c.min_u_W0_u > 0
        assert imbalance(fs) < 1e-13
        fo = outside_47_start(X, r, depth, rng)
        c = condition_47(fo, X, r)
        assert not c.holds and c.rank_ok and c.min_u_W0_u < 0
        assert imbalance(fo) < 1e-13
    fo = outside_47_start(U, r, depth, rng, negative=[0, 2])
    assert np.array_equal(_diag(product(fo), U) < 0, [True, False, True, False])
    with pytest.raises(ValueError, match="negative"):
        outside_47_start(U, r, depth, rng, negative=[4])


def test_reflection_keeps_the_other_entries_and_the_singular_values():
    """Conditioning reflects W_1 only: singular values of W(0) and u_j^T W u_j outside S stay."""
    d, r = 8, 3
    X = _data(d, 4)
    U, _ = top_eigenbasis(X, r)
    base = paper_start(d, r, 3, np.random.default_rng(7))
    flipped = inside_47_start(X, r, 3, np.random.default_rng(7))
    a, b = _diag(product(base), U), _diag(product(flipped), U)
    assert np.allclose(np.abs(a), np.abs(b), atol=1e-14) and np.all(b > 0)
    sa = np.linalg.svd(product(base), compute_uv=False)
    sb = np.linalg.svd(product(flipped), compute_uv=False)
    assert np.allclose(sa, sb, atol=1e-14)


def test_inside_47_frequency_matches_sign_symmetry():
    """Each sign pattern has probability 2^-r for the paper's start: (47) holds ~ 1/8 for r = 3."""
    d, r = 6, 3
    X = _data(d, 1)
    rng = np.random.default_rng(0)
    hits = sum(condition_47(paper_start(d, r, 3, rng), X, r).holds for _ in range(800))
    assert abs(hits / 800 - 1 / 8) < 4 * np.sqrt(1 / 8 * 7 / 8 / 800)


@pytest.mark.parametrize("eps", [1e-2, 1e-6])
@pytest.mark.parametrize("depth", [2, 4])
def test_near_boundary_start(eps, depth):
    d, r = 7, 3
    X = _data(d, 5)
    U, _ = top_eigenbasis(X, r)
    fs = near_boundary_start(X, r, depth, np.random.default_rng(2), eps=eps, normal=0.5)
    c = condition_47(fs, X, r)
    assert c.holds and c.rank_ok
    assert np.allclose(_diag(product(fs), U), eps, rtol=1e-8, atol=1e-14)
    assert imbalance(fs) < 1e-12
    W = product(fs)
    K = U.T @ W @ U - eps * np.eye(r)
    assert np.allclose(K, -K.T, atol=1e-13)
    with pytest.raises(ValueError, match="eps"):
        near_boundary_start(X, r, depth, np.random.default_rng(2), eps=0.0)


@pytest.mark.parametrize("depth", [2, 3, 6])
def test_special_start(depth):
    d, r = 6, 2
    X = _data(d, 6)
    U, _ = top_eigenbasis(X, r)
    fs = special_start(X, r, depth)
    # rounding of products of d-vectors of an orthonormal U (itself orthonormal to ~d eps):
    # at most ~d eps per entry; 10 d eps leaves room on every BLAS kernel (1e-15 did not on
    # Prescott)
    tol = 10 * d * np.finfo(float).eps
    assert np.allclose(product(fs), -U @ U.T, rtol=0, atol=tol)
    assert all(np.max(np.abs(D)) < tol for D in conserved_quantities(fs))  # I - U^T U
    if depth == 2:
        assert np.array_equal(fs[0], U.T) and np.array_equal(fs[1], -U)
    hw = [r + 2] * (depth - 1)
    fw = special_start(X, r, depth, np.random.default_rng(0), hw)
    assert np.allclose(product(fw), -U @ U.T, atol=1e-14) and imbalance(fw) < 1e-14
    with pytest.raises(ValueError, match="rng"):
        special_start(X, r, depth, None, hw)


def test_nonbalanced_starts():
    d, r = 8, 3
    rng = np.random.default_rng(0)
    g = gaussian_start(d, r, 3, rng, hidden_widths=(4, 5))
    assert [f.shape for f in g] == [(4, 8), (5, 4), (8, 5)]
    assert imbalance(g) > 0.1
    base = paper_start(d, r, 3, rng)
    for scale in (1e-6, 1e-3):
        p = perturbed_start(base, scale, rng)
        for a, b in zip(base, p):
            assert np.linalg.norm(a - b) == pytest.approx(scale * np.linalg.norm(a), rel=1e-12)
        assert scale / 100 < imbalance(p) < 10 * scale
    with pytest.raises(ValueError, match="hidden widths"):
        paper_start(d, r, 3, rng, hidden_widths=(2, 3))
    with pytest.raises(ValueError, match="depth"):
        paper_start(d, r, 1, rng)
