"""The minimum nuclear norm completion (cvxpy + SCS, optional): checked against its optimality
conditions (a dual certificate), exact recovery where theory guarantees it, and the size guard.
Skipped cleanly when cvxpy is not installed."""

import numpy as np
import pytest

from linrank import nuclear_norm_completion

cvxpy = pytest.importorskip("cvxpy")


def _instance(m, n, r, frac, seed):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((m, r)) @ rng.standard_normal((r, n))
    mask = rng.random((m, n)) < frac
    rows, cols = np.nonzero(mask)
    return M, rows, cols


@pytest.mark.parametrize("m, n, r, frac, seed", [(12, 15, 2, 0.4, 0), (10, 8, 3, 0.5, 1)])
def test_solution_satisfies_the_optimality_conditions(m, n, r, frac, seed):
    """X is optimal iff feasible and some Y supported on Omega has ||Y||_2 <= 1 and
    <Y, X> = ||X||_* (checked here from the returned arrays, independently of the reported
    residuals). Consequence checked too: no feasible perturbation X + Z (Z zero on Omega)
    has a smaller nuclear norm."""
    M, rows, cols = _instance(m, n, r, frac, seed)
    res = nuclear_norm_completion((m, n), rows, cols, M[rows, cols])
    X, Y = res.X, res.certificate
    assert res.status == "optimal"
    scale = np.abs(M[rows, cols]).max()
    assert np.max(np.abs(X[rows, cols] - M[rows, cols])) <= 1e-6 * scale
    off = np.ones((m, n), bool)
    off[rows, cols] = False
    assert np.all(Y[off] == 0)
    nuc = np.linalg.svd(X, compute_uv=False).sum()
    assert np.linalg.norm(Y, 2) <= 1 + 1e-6
    assert np.sum(Y * X) == pytest.approx(nuc, rel=1e-6)
    # subgradient form: P_T(Y) = U V^T on the numerical support of X
    U, s, Vt = np.linalg.svd(X)
    k = int(np.sum(s > 1e-5 * s[0]))
    U1, V1 = U[:, :k], Vt[:k].T
    PT = U1 @ (U1.T @ Y) + (Y @ V1) @ V1.T - U1 @ (U1.T @ Y @ V1) @ V1.T
    np.testing.assert_allclose(PT, U1 @ V1.T, atol=1e-4)
    rng = np.random.default_rng(seed + 10)
    for _ in range(20):
        Z = rng.standard_normal((m, n)) * off * 1e-3
        assert np.linalg.svd(X + Z, compute_uv=False).sum() >= nuc * (1 - 1e-7)
    assert res.feasibility <= 1e-6 and res.certificate_norm <= 1 + 1e-6 and abs(res.gap) <= 1e-6


def test_recovers_a_low_rank_matrix_from_many_entries():
    M, rows, cols = _instance(15, 15, 1, 0.7, 3)
    res = nuclear_norm_completion((15, 15), rows, cols, M[rows, cols])
    assert np.linalg.norm(res.X - M) / np.linalg.norm(M) < 1e-5


def test_all_entries_observed_and_bad_input():
    M, _, _ = _instance(4, 5, 2, 1.0, 4)
    rows, cols = np.nonzero(np.ones((4, 5)))
    res = nuclear_norm_completion((4, 5), rows, cols, M[rows, cols])
    np.testing.assert_allclose(res.X, M, atol=1e-6 * np.abs(M).max())
    with pytest.raises(ValueError, match="max_entries"):
        nuclear_norm_completion((1000, 1000), [0], [0], [1.0])
    with pytest.raises(ValueError, match="shape"):
        nuclear_norm_completion((0, 3), [], [], [])
    with pytest.raises(ValueError, match="duplicated"):
        nuclear_norm_completion((3, 3), [0, 0], [1, 1], [1.0, 2.0])
    with pytest.raises(TypeError, match="real"):
        nuclear_norm_completion((3, 3), [0], [1], [1j])
