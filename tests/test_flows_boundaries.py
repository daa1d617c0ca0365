"""The flows at their boundaries (issue 8): checkpoint files, hostile inputs, extreme scales."""

from __future__ import annotations

import numpy as np
import pytest

from linrank import factor_flow, gaussian_data


def test_checkpoint_of_another_factor_shape_is_refused(tmp_path):
    """Depth 2 (2 x 3, 3 x 2) and depth 3 (three 2 x 2) have 12 parameters each: the same flat
    start vector must not resume the other run."""
    X = gaussian_data(2, seed=0)
    y0 = np.random.default_rng(0).standard_normal(12) / 2
    depth2 = [y0[:6].reshape(3, 2), y0[6:].reshape(2, 3)]
    depth3 = [y0[:4].reshape(2, 2), y0[4:8].reshape(2, 2), y0[8:].reshape(2, 2)]
    path = tmp_path / "ck.npz"
    r2 = factor_flow(X, None, depth2, 1.0, checkpoint=path)
    assert r2.status == "completed"
    with pytest.raises(ValueError, match="different run"):
        factor_flow(X, None, depth3, 1.0, checkpoint=path)
    r3 = factor_flow(X, None, depth3, 1.0, checkpoint=path, resume=False)
    assert len(r3.factors) == 3 and r3.status == "completed"
    ref = factor_flow(X, None, depth3, 1.0)
    assert np.array_equal(r3.W, ref.W)
