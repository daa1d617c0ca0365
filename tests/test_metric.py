"""Weights of A_W against 60-digit mpmath references, and input validation."""

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linrank.metric import check_depth, core_weights, side_weights

mp.mp.dps = 60


def ref_core(a: float, b: float, N: int) -> mp.mpf:
    """sum_j a^{2(N-j)/N} b^{2(j-1)/N} in 60 digits: the sum itself for small N, else the closed
    form (a^2 - b^2)/(a^{2/N} - b^{2/N}) evaluated with enough digits to survive cancellation."""
    a, b = mp.mpf(a), mp.mpf(b)
    if N <= 300:
        return mp.fsum(
            a ** (2 * mp.mpf(N - j) / N) * b ** (2 * mp.mpf(j - 1) / N) for j in range(1, N + 1)
        )
    with mp.workdps(120):
        A, B = a ** (mp.mpf(2) / N), b ** (mp.mpf(2) / N)
        if A == B:
            return N * a ** (2 * mp.mpf(N - 1) / N)
        return (a**2 - b**2) / (A - B)


SVALS = [1e-8, 3.3e-5, 1e-2, 0.7, 1.0, 42.0, 1e5, 1e8]
RATIOS = [0.0, 1e-15, 3e-14, 1e-12, 1e-9, 1e-6, 1e-3, 0.1, 1.0, 1e3, 1e8]
DEPTHS = [1, 2, 3, 4, 7, 50, 1000, 10**6]


@pytest.mark.parametrize("N", DEPTHS)
def test_core_weights_against_mpmath(N):
    worst = 0.0
    for s1 in SVALS:
        for r in RATIOS:
            s2 = s1 * (1.0 + r)
            if s2 > 1e8 * (1 + 1e-15) and r > 1:
                s2 = s1 / (1.0 + r)
            w = core_weights(np.array([s1, s2]), N)
            ref = ref_core(s1, s2, N)
            worst = max(worst, abs(mp.mpf(w[0, 1]) - ref) / ref, abs(mp.mpf(w[1, 0]) - ref) / ref)
            ref_diag = N * mp.mpf(s1) ** (2 * mp.mpf(N - 1) / N)
            worst = max(worst, abs(mp.mpf(w[0, 0]) - ref_diag) / ref_diag)
    assert worst <= 1e-12, worst


@pytest.mark.parametrize("N", DEPTHS)
def test_side_weights_against_mpmath(N):
    s = np.array(SVALS)
    p = side_weights(s, N)
    for si, pi in zip(s, p):
        ref = mp.mpf(si) ** (2 * mp.mpf(N - 1) / N)
        assert abs(mp.mpf(pi) - ref) / ref <= 1e-12


@settings(max_examples=200, deadline=None)
@given(
    logs=st.floats(-18.0, 18.0),
    logr=st.floats(-35.0, 5.0),
    N=st.integers(1, 10**6),
)
def test_core_weights_property(logs, logr, N):
    s1 = float(np.exp(logs))
    s2 = s1 * (1.0 + float(np.exp(logr)))
    w = core_weights(np.array([s1, s2]), N)
    ref = ref_core(s1, s2, N)
    assert abs(mp.mpf(w[0, 1]) - ref) / ref <= 1e-12
    assert w[0, 1] == w[1, 0]


def test_depth_one_is_euclidean():
    s = np.array([3.0, 1.0, 1e-3])
    assert np.array_equal(core_weights(s, 1), np.ones((3, 3)))
    assert np.array_equal(side_weights(s, 1), np.ones(3))


def test_logarithmic_mean_limit():
    """Remark 10: w / N -> (s_i^2 - s_k^2) / (log s_i^2 - log s_k^2) as N -> infinity."""
    s = np.array([2.0, 0.5])
    lm = (4.0 - 0.25) / (np.log(4.0) - np.log(0.25))
    w = core_weights(s, 10**8)[0, 1] / 10**8
    assert abs(w - lm) / lm < 1e-7


def test_huge_singular_values_do_not_overflow():
    # s^2 overflows past 1e154, the weights themselves (~ s for N = 2) do not
    s = np.array([1e200, 3e199])
    w = core_weights(s, 2)
    assert np.all(np.isfinite(w))
    # w = s_i + s_k for N = 2; stated accuracy: a few ulps times log(s) ~ 460
    assert abs(w[0, 1] - 1.3e200) / 1.3e200 < 10 * np.finfo(float).eps * np.log(1e200)


@pytest.mark.parametrize("bad", [0, -3])
def test_depth_value_errors(bad):
    with pytest.raises(ValueError, match="depth"):
        check_depth(bad)


@pytest.mark.parametrize("bad", [2.0, "3", True, None])
def test_depth_type_errors(bad):
    with pytest.raises(TypeError, match="depth"):
        check_depth(bad)


@pytest.mark.parametrize("s", [[1.0, 0.0], [1.0, -1.0], [np.nan, 1.0], [np.inf, 1.0]])
def test_bad_singular_values(s):
    with pytest.raises(ValueError, match="singular values"):
        core_weights(np.array(s), 3)
    with pytest.raises(ValueError, match="singular values"):
        side_weights(np.array(s), 3)
