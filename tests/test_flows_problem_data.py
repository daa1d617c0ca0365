"""linrank.flows.problem_data: what the flows' checkpoint fingerprints cover for a problem."""

from __future__ import annotations

import numpy as np
import pytest

from linrank import (
    DeepLinearFixedRank,
    ambient_problem,
    balanced_factors,
    factor_flow,
    gaussian_data,
    least_squares_problem,
    riemannian_flow,
)
from linrank.flows.problem_data import ProblemData

X = gaussian_data(5, seed=7)
RNG = np.random.default_rng(7)
W0 = RNG.standard_normal((5, 2)) @ RNG.standard_normal((2, 5)) * 0.3


def _regularised(lam, interrupt_after=None):
    """0.5 ||W X - X||^2 + lam ||W - W0||^4: the regulariser and its gradient vanish at the
    start W0, so the loss and gradient there do not tell lam = 0 from lam = 5."""
    calls = {"n": 0}

    def cost(W):
        calls["n"] += 1
        if interrupt_after is not None and calls["n"] == interrupt_after:
            raise KeyboardInterrupt
        D = W - W0
        return 0.5 * float(np.sum((W @ X - X) ** 2)) + lam * float(np.sum(D * D)) ** 2

    def grad(W):
        D = W - W0
        return (W @ X - X) @ X.T + 4.0 * lam * float(np.sum(D * D)) * D

    return ambient_problem(DeepLinearFixedRank(5, 5, 2, 2), cost, grad)


@pytest.mark.parametrize("flow", ["riemannian", "factor"])
def test_a_changed_problem_is_not_resumed(tmp_path, flow):
    path = tmp_path / "ck.npz"
    fs = balanced_factors(W0, (5, 2, 5), seed=0)

    def run(P, **kw):
        if flow == "riemannian":
            return riemannian_flow(P, W0, 5.0, checkpoint=path, checkpoint_steps=1, **kw)
        return factor_flow(P, None, fs, 5.0, checkpoint=path, checkpoint_steps=1, **kw)

    with pytest.warns(UserWarning, match="interrupted"):
        part = run(_regularised(0.0, interrupt_after=60))
    assert part.status == "interrupted" and path.exists()
    # the start's loss and gradient agree; the probes of the rule do not
    with pytest.raises(ValueError, match="different run .*problem"):
        run(_regularised(5.0))
    # the same problem resumes and ends as an uninterrupted run
    resumed = run(_regularised(0.0))
    full = (riemannian_flow(_regularised(0.0), W0, 5.0) if flow == "riemannian"
            else factor_flow(_regularised(0.0), None, fs, 5.0))
    assert resumed.status == "completed"
    np.testing.assert_array_equal(resumed.W, full.W)


def test_declared_fingerprints_are_used():
    P = _regularised(0.0)
    data = ProblemData(P)
    data.start = W0
    probed = data.fingerprint_arrays()
    assert len(probed) == 1 + 3 * 2  # shape, then (loss, gradient) at the start and 2 probes
    P.fingerprint = lambda: "lam=0"
    a = ProblemData(P).fingerprint_arrays()
    P.fingerprint = lambda: "lam=5"
    b = ProblemData(P).fingerprint_arrays()
    assert len(a) == 2 and not np.array_equal(a[1], b[1])
    # least_squares_problem declares its data
    L = least_squares_problem(DeepLinearFixedRank(5, 5, 2, 2), X)
    arrays = ProblemData(L).fingerprint_arrays()
    np.testing.assert_array_equal(arrays[1], X)
