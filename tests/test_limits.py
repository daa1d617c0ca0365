"""The closed-form Figure 3 limit: the algebra on constructed limits, and a long integration."""

from __future__ import annotations

import numpy as np
import pytest

from linrank.experiments.reproduce.limits import escape_rate_fit, figure3_limit
from linrank.experiments.shared.starts import gaussian_start, top_eigenbasis
from linrank.flows import factor_flow
from linrank.network import conserved_quantities


@pytest.mark.parametrize("r", [1, 2, 4])
def test_closed_form_on_constructed_limits(r):
    """Any W_1 = M U_r^T, W_2 = U_r M^-1: ||W_2 - W_1^T|| is the closed form of its D."""
    rng = np.random.default_rng(r)
    d = 7
    U = np.linalg.qr(rng.standard_normal((d, r)))[0]
    for scale in (1e-4, 0.3, 3.0):
        M = np.eye(r) + scale * rng.standard_normal((r, r))
        W1, W2 = M @ U.T, U @ np.linalg.inv(M)
        assert np.allclose(W2 @ W1, U @ U.T, atol=1e-12)
        D = conserved_quantities([W1, W2])[0]
        assert figure3_limit(D) == pytest.approx(np.linalg.norm(W2 - W1.T), rel=1e-10, abs=1e-15)
    # D = 0 (balanced: M orthogonal) gives 0; small D gives ~||D||_F / 2
    Q = np.linalg.qr(rng.standard_normal((r, r)))[0]
    assert figure3_limit(conserved_quantities([Q @ U.T, U @ Q.T])[0]) < 1e-14
    D = 1e-6 * np.diag(np.arange(1.0, r + 1))
    assert figure3_limit(D) == pytest.approx(np.linalg.norm(D) / 2, rel=1e-10)


def test_closed_form_against_a_long_integration():
    """Non-balanced N = 2 flow to t = 400 (RK45, rtol 1e-11): the plateau is the closed form."""
    d, r = 6, 2
    X = np.random.default_rng(0).standard_normal((d, 3 * d)) / np.sqrt(d)
    U, _ = top_eigenbasis(X, r)
    fs = gaussian_start(d, r, 2, np.random.default_rng(1))
    D = conserved_quantities(fs)[0]
    res = factor_flow(X, None, fs, 400.0, rtol=1e-11, atol=1e-14, target=U @ U.T)
    W1, W2 = res.factors
    assert res.distance[-1] < 1e-8  # converged to U_r U_r^T
    lim = figure3_limit(D)
    assert lim > 0.05
    assert np.linalg.norm(W2 - W1.T) == pytest.approx(lim, rel=1e-8)
    assert np.linalg.norm(W2 - np.linalg.pinv(W1)) < 1e-8


def test_figure3_limit_bad_input():
    with pytest.raises(ValueError):
        figure3_limit(np.ones((2, 3)))
    with pytest.raises(ValueError):
        figure3_limit(np.full((2, 2), np.nan))


def test_escape_rate_fit():
    lam1 = 2.5
    pts = [(x, 3.0 + np.log(1 / x) / lam1, lam1) for x in (1e-9, 1e-6, 1e-3)]
    fit = escape_rate_fit(pts + [(1e-2, None, lam1)])
    assert fit["rate"] == pytest.approx(lam1, rel=1e-10) and fit["intercept"] == pytest.approx(3)
    assert escape_rate_fit(pts[:1]) is None
