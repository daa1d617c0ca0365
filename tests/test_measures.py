"""Tests of linrank.measures: effective rank against closed forms and mpmath; the error on
unobserved entries against the dense masked formula, in both of its routes."""

import mpmath
import numpy as np
import pytest

from linrank import effective_rank, unobserved_error


def _erank_mp(s):
    """exp(-sum p log p) with 50 digits (independent reference)."""
    mpmath.mp.dps = 50
    sv = [mpmath.mpf(float(x)) for x in s if x > 0]
    tot = mpmath.fsum(sv)
    return float(mpmath.exp(-mpmath.fsum((x / tot) * mpmath.log(x / tot) for x in sv)))


@pytest.mark.parametrize("r", [1, 2, 7, 100])
def test_effective_rank_of_equal_singular_values_is_their_count(r):
    assert effective_rank(np.full(r, 0.3)) == pytest.approx(r, rel=1e-13)
    Q = np.linalg.qr(np.random.default_rng(r).standard_normal((r + 3, r)))[0]
    assert effective_rank(2.5 * Q @ Q.T) == pytest.approx(r, rel=1e-11)


def test_effective_rank_two_values_closed_form():
    for a, b in [(1.0, 1e-3), (3.0, 2.0), (1.0, 1e-12)]:
        p = a / (a + b)
        expected = np.exp(-(p * np.log(p) + (1 - p) * np.log1p(-p)))
        assert effective_rank([a, b]) == pytest.approx(expected, rel=1e-13)


def test_effective_rank_geometric_sequence_closed_form():
    # s_i = q^i, i = 0..n-1: p_i = q^i (1 - q) / (1 - q^n), H = -log((1-q)/(1-q^n)) - log(q) E[i]
    n, q = 40, 0.8
    c = (1 - q) / (1 - q**n)
    mean_i = sum(i * q**i for i in range(n)) * c
    expected = np.exp(-np.log(c) - np.log(q) * mean_i)
    assert effective_rank(q ** np.arange(n)) == pytest.approx(expected, rel=1e-12)


def test_effective_rank_against_mpmath_and_scale_invariance():
    rng = np.random.default_rng(3)
    s = np.sort(rng.random(30) ** 4)[::-1]
    ref = _erank_mp(s)
    for scale in (1.0, 1e-300, 1e300, 1e-150):
        assert effective_rank(s * scale) == pytest.approx(ref, rel=1e-12)
    u = np.linalg.qr(rng.standard_normal((40, 30)))[0]
    v = np.linalg.qr(rng.standard_normal((35, 30)))[0]
    assert effective_rank((u * s) @ v.T) == pytest.approx(ref, rel=1e-9)
    assert effective_rank((u, s, v.T)) == pytest.approx(ref, rel=1e-12)


def test_effective_rank_ignores_zero_singular_values_and_refuses_bad_input():
    assert effective_rank([2.0, 2.0, 0.0, 0.0]) == pytest.approx(2.0, rel=1e-14)
    with pytest.raises(ValueError, match="zero matrix"):
        effective_rank(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="non-negative"):
        effective_rank([1.0, -1.0])
    with pytest.raises(ValueError, match="finite"):
        effective_rank([1.0, np.nan])
    with pytest.raises(TypeError, match="complex"):
        effective_rank(np.eye(2) * 1j)
    with pytest.raises(TypeError):
        effective_rank(["a", "b"])


def _planted(m=40, n=50, r=3, seed=0):
    rng = np.random.default_rng(seed)
    A, B = rng.standard_normal((m, r)), rng.standard_normal((n, r))
    mask = rng.random((m, n)) < 0.3
    rows, cols = np.nonzero(mask)
    return A, B, mask, rows, cols, rng


def test_unobserved_error_dense_and_factored_match_the_masked_formula():
    A, B, mask, rows, cols, rng = _planted()
    M = A @ B.T
    for noise in (1e-3, 1.0, 1e-9):  # the last: W - M cancels (the blockwise route)
        W = M + noise * rng.standard_normal((4, 1)).sum() * np.outer(
            rng.standard_normal(M.shape[0]), rng.standard_normal(M.shape[1]))
        ref = np.linalg.norm((W - M)[~mask]) / np.linalg.norm(M[~mask])
        u, s, vt = np.linalg.svd(W, full_matrices=False)
        k = 4
        point = (u[:, :k], s[:k], vt[:k])
        planted = (A, np.ones(3), B.T)
        for Wi in (W, point):
            for Mi in (M, planted):
                assert unobserved_error(Wi, Mi, rows, cols) == pytest.approx(ref, rel=1e-7)
        absolute = np.linalg.norm((W - M)[~mask])
        assert unobserved_error(point, planted, rows, cols, relative=False) == pytest.approx(
            absolute, rel=1e-7)


def test_unobserved_error_gram_route_is_taken_and_accurate(monkeypatch):
    """Far from M the factored route uses the Gram form (no m x n block): forbid the blockwise
    sum and compare with the dense formula."""
    import linrank.measures as ms

    A, B, mask, rows, cols, rng = _planted(seed=5)
    M = A @ B.T
    C = rng.standard_normal((M.shape[0], 2)) @ rng.standard_normal((2, M.shape[1]))
    W = M + C
    ref = np.linalg.norm((W - M)[~mask]) / np.linalg.norm(M[~mask])
    u, s, vt = np.linalg.svd(W, full_matrices=False)

    def forbidden(*a, **k):
        raise AssertionError("blockwise sum used")

    monkeypatch.setattr(ms, "_blockwise", forbidden)
    got = unobserved_error((u[:, :5], s[:5], vt[:5]), (A, np.ones(3), B.T), rows, cols)
    assert got == pytest.approx(ref, rel=1e-8)


def test_unobserved_error_blocks_and_extreme_scales(monkeypatch):
    import linrank.measures as ms

    monkeypatch.setattr(ms, "_ROW_BLOCK_ENTRIES", 7)  # several rows per block, ragged end
    A, B, mask, rows, cols, rng = _planted(m=13, n=5, seed=2)
    M = A @ B.T * 1e200
    W = M * (1 + 1e-3) + 1e197
    ref = np.linalg.norm(((W - M) / 1e200)[~mask]) / np.linalg.norm((M / 1e200)[~mask])
    assert unobserved_error(W, M, rows, cols) == pytest.approx(ref, rel=1e-10)


def test_unobserved_error_refuses_undefined_and_bad_input():
    A, B, mask, rows, cols, _ = _planted(m=4, n=3)
    M = A @ B.T
    allr, allc = np.nonzero(np.ones((4, 3)))
    with pytest.raises(ValueError, match="every entry is observed"):
        unobserved_error(M, M, allr, allc)
    Z = np.zeros((4, 3))
    with pytest.raises(ValueError, match="relative=False"):
        unobserved_error(M, Z, [0], [0])
    assert unobserved_error(M, Z, [0], [0], relative=False) == pytest.approx(
        np.sqrt(np.sum(M**2) - M[0, 0] ** 2), rel=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        unobserved_error(M, M.T, rows, cols)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        unobserved_error(M, M, [4], [0])
    with pytest.raises(TypeError, match="integers"):
        unobserved_error(M, M, [0.5], [0])
    with pytest.raises(ValueError, match="finite"):
        unobserved_error(M * np.nan, M, rows, cols)
    # an entry listed twice counts once
    assert unobserved_error(M + 1, M, [0, 0], [1, 1]) == pytest.approx(
        unobserved_error(M + 1, M, [0], [1]), rel=1e-15)
