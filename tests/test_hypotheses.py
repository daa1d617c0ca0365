"""The hypotheses' predicates against hand-built starts (linrank.experiments.shared.hypotheses)."""

import numpy as np
import pytest

from linrank.experiments.shared.hypotheses import (
    HYPOTHESES,
    amended,
    amended_det,
    check_hypothesis,
    conjecture32,
    rank_margin,
    subspace_det,
    theorem31,
)
from linrank.experiments.shared.starts import condition_47


def _basis(d, seed=0):
    Q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return Q


def test_issue_counterexample_is_in_conjecture32_not_amended():
    # W(0) = U_r M U_r^T, diag M > 0, det M < 0: (47) holds, the amendment excludes it
    E = _basis(6)
    U = E[:, :2]
    M = np.array([[0.3, 1.0], [1.0, 0.3]])
    W0 = U @ M @ U.T
    c32, am, t31 = conjecture32(W0, U), amended_det(W0, U), theorem31(W0, U)
    assert c32.holds and c32.margin > 0 and t31.holds
    assert not am.holds and am.margin < 0
    assert not amended(W0, U).holds and amended(W0, U).margin < 0
    assert am.det_r == pytest.approx(0.09 - 1.0, rel=1e-12)
    assert c32.margin_47 == pytest.approx(0.3, rel=1e-12)
    assert c32.margin_47 == condition_47(W0, U, 2, basis=True).min_u_W0_u


def test_minimizer_and_its_negative():
    E = _basis(5, 1)
    U = E[:, :2]
    for name in HYPOTHESES:
        assert check_hypothesis(name, U @ U.T, U).holds
    neg = -U @ U.T  # (47) fails (u_i^T W u_i = -1), det(-I_2) = +1, rank 2
    assert theorem31(neg, U).holds
    assert not conjecture32(neg, U).holds and not amended(neg, U).holds
    assert not amended_det(neg, U).holds
    assert conjecture32(neg, U).margin == pytest.approx(-1 / 1.0, rel=1e-12)


def test_rank_conditions():
    E = _basis(5, 2)
    U = E[:, :2]
    low = np.outer(E[:, 0], E[:, 0])  # rank 1 < r = 2
    high = E[:, :3] @ E[:, :3].T  # rank 3 > r
    for W in (low, high):
        assert not theorem31(W, U).holds and theorem31(W, U).margin <= 0
    assert rank_margin(high, 2) == pytest.approx(-1.0, rel=1e-12)
    # rank r but W(0) U_r of rank < r: (47)'s rank part fails, Theorem 31 holds
    a = E[:, 0] + E[:, 1]
    W = np.outer(a, a) + np.outer(E[:, 2], E[:, 3])  # W u_1 = W u_2 = a, u_i^T a = 1 > 0
    c = condition_47(W, U, 2, basis=True)
    assert theorem31(W, U).holds and c.min_u_W0_u > 0.5 and not c.rank_ok
    assert not conjecture32(W, U).holds and conjecture32(W, U).margin < 0


def test_r_equals_d_determinant_sign():
    E = _basis(3, 3)
    M = np.diag([1.0, 0.5, 0.25])
    M[0, 2] = M[2, 0] = 1.0  # diag > 0, det = 0.5 * (0.25 - 1) < 0
    W0 = E @ M @ E.T
    assert subspace_det(W0, E) == pytest.approx(np.linalg.det(M), rel=1e-12)
    assert np.linalg.det(M) < 0
    assert theorem31(W0, E).holds and conjecture32(W0, E).holds
    assert not amended(W0, E).holds and not amended_det(W0, E).holds


def test_amended_is_the_positive_definite_symmetric_part_and_agrees_with_families():
    """The two amendments differ: two family-A blocks (r = 4) have det > 0 and (47) but a
    symmetric part with two negative eigenvalues; a large skew part keeps the amended hypothesis
    (x^T C x sees only the symmetric part). The predicate is the one of
    linrank.experiments.shared.families.amended."""
    from linrank.experiments.shared.families import amended as families_amended

    E = _basis(6, 5)
    U = E[:, :4]
    A = np.array([[0.3, 1.0], [1.0, 0.3]])
    M = np.zeros((4, 4))
    M[:2, :2] = M[2:, 2:] = A  # det M = det(A)^2 > 0, diag > 0
    W0 = U @ M @ U.T
    assert amended_det(W0, U).holds and not amended(W0, U).holds
    S = np.diag([1.0, 0.5, 0.2, 0.1])
    K = np.zeros((4, 4))
    K[0, 3], K[3, 0] = 30.0, -30.0
    W1 = U @ (S + K) @ U.T
    chk = amended(W1, U)
    assert chk.holds
    # margin: lambda_min of the symmetric part over ||W||_2, less 8 r eps ||C||_2 / ||W||_2
    C = S + K
    n = np.linalg.norm(C, 2)
    assert chk.margin == pytest.approx((0.1 - 32 * np.finfo(float).eps * n) / n, rel=1e-9)
    for W in (W0, W1, U @ U.T, -U @ U.T):
        assert amended(W, U).holds == families_amended(W, U, 4)


def test_margins_are_scale_free_and_checked():
    E = _basis(4, 4)
    U = E[:, :2]
    W0 = U @ np.array([[1.0, 0.2], [-0.3, 0.5]]) @ U.T + 0.1 * np.outer(E[:, 3], E[:, 0])
    for name in HYPOTHESES:
        a = check_hypothesis(name, W0, U)
        b = check_hypothesis(name, 1e6 * W0, U)
        assert a.holds == b.holds and a.margin == pytest.approx(b.margin, rel=1e-9)
    with pytest.raises(ValueError, match="hypothesis must be one of"):
        check_hypothesis("conj32", W0, U)
    with pytest.raises(ValueError, match="W0 is zero"):
        theorem31(np.zeros((4, 4)), U)
    with pytest.raises(ValueError, match="d x d"):
        theorem31(np.zeros((4, 3)), U)
